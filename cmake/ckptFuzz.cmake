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
set(ckpt_fuzz_sanitizers address,undefined)
# Debug information comes from the build type (run_fuzzers.sh: line tables).
set(ckpt_fuzz_options -fno-sanitize-recover=undefined -O1 -Wall -Wextra -Wpedantic)

# The targets' code, compiled once with coverage instrumentation
# (fuzzer-no-link: libFuzzer's main comes with each executable).
add_library(ckpt_fuzz_entry_points STATIC ${ckpt_fuzz_dir}/fuzz_entry_points.cpp)
target_include_directories(ckpt_fuzz_entry_points PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_options(ckpt_fuzz_entry_points PRIVATE -fsanitize=fuzzer-no-link,${ckpt_fuzz_sanitizers}
                       ${ckpt_fuzz_options})
target_link_libraries(ckpt_fuzz_entry_points PUBLIC ckpt::ckpt)
if(TARGET ckpt::npz)
  target_link_libraries(ckpt_fuzz_entry_points PUBLIC ckpt::npz)
endif()

# `ckpt_fuzzers` builds every target (in parallel, unlike several --target
# arguments, which make builds one after another).
add_custom_target(ckpt_fuzzers)

# ckpt_add_fuzzer(NAME ENTRY_POINT): the executable NAME_fuzzer calling
# ENTRY_POINT of fuzz_entry_points.cpp.
function(ckpt_add_fuzzer name entry_point)
  add_executable(${name}_fuzzer ${ckpt_fuzz_dir}/fuzzer_main.cpp)
  target_compile_definitions(${name}_fuzzer PRIVATE CKPT_FUZZ_TARGET=${entry_point})
  target_compile_options(${name}_fuzzer PRIVATE -fsanitize=fuzzer,${ckpt_fuzz_sanitizers} ${ckpt_fuzz_options})
  target_link_options(${name}_fuzzer PRIVATE -fsanitize=fuzzer,${ckpt_fuzz_sanitizers})
  target_link_libraries(${name}_fuzzer PRIVATE ckpt_fuzz_entry_points)
  add_dependencies(ckpt_fuzzers ${name}_fuzzer)
endfunction()

ckpt_add_fuzzer(reader ckpt_fuzz_reader)
ckpt_add_fuzzer(safetensors ckpt_fuzz_safetensors_header)
ckpt_add_fuzzer(cli_arguments ckpt_fuzz_cli_arguments)
if(TARGET ckpt::npz)
  ckpt_add_fuzzer(npz ckpt_fuzz_npz)
endif()

# Writes the seed corpora (tests/fuzz/corpus/<target>/) from the library itself.
add_executable(ckpt_fuzz_corpus ${ckpt_fuzz_dir}/make_corpus.cpp)
target_include_directories(ckpt_fuzz_corpus PRIVATE ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(ckpt_fuzz_corpus PRIVATE ckpt::ckpt)
if(TARGET ckpt::npz)
  target_link_libraries(ckpt_fuzz_corpus PRIVATE ckpt::npz)
endif()
