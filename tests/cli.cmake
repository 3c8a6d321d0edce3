# The ckpt tool and the interop adapters (.npz, HDF5). The tool's tests run
# the real executable; the python tests check files against numpy, h5py and
# torch, bit-exact.
if(TARGET ckpt_cli)
  set(ckpt_cli_test_sources cli/commands_test.cpp cli/npy_test.cpp cli/trajectory_test.cpp cli/progress_test.cpp)
  # util: forkpty, to run the tool on a pseudo-terminal.
  set(ckpt_cli_test_libraries GTest::gmock util)
  foreach(adapter IN ITEMS npz hdf5)
    if(TARGET ckpt::${adapter})
      list(APPEND ckpt_cli_test_sources cli/${adapter}_test.cpp)
      list(APPEND ckpt_cli_test_libraries ckpt::${adapter})
    endif()
  endforeach()
  ckpt_add_test(cli_tests SOURCES ${ckpt_cli_test_sources} LIBRARIES ${ckpt_cli_test_libraries} LABELS cli)
  if(TARGET cli_tests)
    # The trajectory test runs tests/cli/trajectory_python.py with the Python package.
    target_compile_definitions(cli_tests PRIVATE CKPT_CLI_PATH="$<TARGET_FILE:ckpt_cli>"
                               CKPT_CLI_TEST_DIR="${CMAKE_CURRENT_SOURCE_DIR}/cli"
                               CKPT_PYTHON_PACKAGE_DIR="${PROJECT_SOURCE_DIR}/python")
    target_include_directories(cli_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli)
    add_dependencies(cli_tests ckpt_cli)
  endif()

  # client: the python module the test exercises; ARGN: the adapters it needs.
  function(ckpt_add_interop_test client)
    foreach(adapter IN LISTS ARGN)
      if(NOT TARGET ${adapter})
        return()
      endif()
    endforeach()
    ckpt_add_command_test(cli.interop_${client}
      COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/cli/interop_${client}.py $<TARGET_FILE:ckpt_cli>
      LABELS interop no-asan
      TIMEOUT 300)
  endfunction()
  ckpt_add_interop_test(numpy ckpt::npz)
  ckpt_add_interop_test(h5py ckpt::hdf5)
  ckpt_add_interop_test(torch)
endif()
