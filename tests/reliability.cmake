# Reliability: fault injection at every file-system call (saves and manager
# rotations), disk full, corruption mutants, hostile files, and the replay of
# the fuzzers' seed corpora and regressions. The fuzz targets themselves are
# built by cmake/ckptFuzz.cmake (CKPT_BUILD_FUZZERS, clang only).
set(ckpt_reliability_libraries)
if(TARGET ckpt::npz)
  list(APPEND ckpt_reliability_libraries ckpt::npz)
endif()
ckpt_add_test(reliability_tests
  SOURCES
    reliability/allocation_counter.cpp
    reliability/corruption_test.cpp
    reliability/crash_states_test.cpp
    reliability/disk_full_test.cpp
    reliability/fuzz_replay_test.cpp
    reliability/hostile_files_test.cpp
    reliability/manager_faults_test.cpp
    reliability/report_totals.cpp
    reliability/save_faults_test.cpp
    reliability/save_memory_test.cpp
    reliability/seam_test.cpp
  LIBRARIES ${ckpt_reliability_libraries}
  LABELS reliability)
if(TARGET reliability_tests)
  # Tests share reliability/ and fuzz/ headers; the fuzz targets include cli/args.hpp.
  target_include_directories(reliability_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${PROJECT_SOURCE_DIR})
  target_compile_definitions(reliability_tests PRIVATE CKPT_FUZZ_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fuzz")
endif()

include(${PROJECT_SOURCE_DIR}/cmake/ckptFuzz.cmake)

# The crash states of tests/reliability/crash_states_test.cpp explored with the
# long limits (docs/reliability.md, "A power loss loses no committed
# checkpoint"): minutes rather than seconds, so CI does not run it.
option(CKPT_CRASH_EXHAUSTIVE "Register the long crash-state run (ctest label crash-exhaustive)" OFF)
if(CKPT_CRASH_EXHAUSTIVE AND TARGET reliability_tests)
  ckpt_add_command_test(reliability.crash_states_long
    COMMAND ${CMAKE_COMMAND} -E env CKPT_CRASH_SPACE=long $<TARGET_FILE:reliability_tests> --gtest_filter=CrashStates.*
    LABELS crash-exhaustive slow
    TIMEOUT 3600)
endif()
