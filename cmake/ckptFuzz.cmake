# libFuzzer targets for the readers and the CLI's argument parser
# (tests/fuzz/), in a build of their own: configure with clang and
# -DCKPT_BUILD_FUZZERS=ON, or run tests/fuzz/run_fuzzers.sh, which does both
# and runs every target for a bounded time on its seed corpus. The normal
# test suite replays the corpora and the regressions without libFuzzer
# (reliability_tests).
option(CKPT_BUILD_FUZZERS "Build the libFuzzer targets (clang only)" OFF)
if(NOT CKPT_BUILD_FUZZERS)
  return()
endif()
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "CKPT_BUILD_FUZZERS needs clang for libFuzzer, found ${CMAKE_CXX_COMPILER_ID}; "
                      "configure with -DCMAKE_CXX_COMPILER=clang++")
endif()

set(ckpt_fuzz_dir ${PROJECT_SOURCE_DIR}/tests/fuzz)
set(ckpt_fuzz_sanitizers -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)

# ckpt_add_fuzzer(NAME FUNCTION [LIBRARIES...]): the executable NAME_fuzzer
# calling ckpt::fuzz::FUNCTION.
function(ckpt_add_fuzzer name function)
  add_executable(${name}_fuzzer ${ckpt_fuzz_dir}/fuzzer_main.cpp)
  target_compile_definitions(${name}_fuzzer PRIVATE CKPT_FUZZ_TARGET=${function})
  target_include_directories(${name}_fuzzer PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name}_fuzzer PRIVATE ${ckpt_fuzz_sanitizers} -g -O1 -Wall -Wextra -Wpedantic)
  target_link_options(${name}_fuzzer PRIVATE ${ckpt_fuzz_sanitizers})
  target_link_libraries(${name}_fuzzer PRIVATE ckpt::ckpt ${ARGN})
endfunction()

ckpt_add_fuzzer(reader fuzz_reader)
ckpt_add_fuzzer(safetensors fuzz_safetensors_header)
ckpt_add_fuzzer(cli_arguments fuzz_cli_arguments)
if(TARGET ckpt::npz)
  ckpt_add_fuzzer(npz fuzz_npz ckpt::npz)
endif()

# Writes the seed corpora (tests/fuzz/corpus/<target>/) from the library itself.
add_executable(ckpt_fuzz_corpus ${ckpt_fuzz_dir}/make_corpus.cpp)
target_include_directories(ckpt_fuzz_corpus PRIVATE ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(ckpt_fuzz_corpus PRIVATE ckpt::ckpt)
if(TARGET ckpt::npz)
  target_link_libraries(ckpt_fuzz_corpus PRIVATE ckpt::npz)
endif()
