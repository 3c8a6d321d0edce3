# Python: the reader package in python/ (docs/python.md), tested with pytest on
# files the C++ library writes at test time (tests/python/write_fixtures.cpp)
# and on the demo's run. Debian's python3 has numpy, zstandard, xxhash,
# matplotlib and pytest (.ci/packages).
ckpt_test_selected(selected python no-asan)
if(selected)
  add_executable(python_fixture_writer python/write_fixtures.cpp)
  target_link_libraries(python_fixture_writer PRIVATE ckpt::ckpt)
  # The hostile files come from the reliability suite's headers.
  target_include_directories(python_fixture_writer PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_options(python_fixture_writer PRIVATE -Wall -Wextra -Wpedantic)

  set(python_test_environment CKPT_FIXTURE_WRITER=$<TARGET_FILE:python_fixture_writer> PYTHONDONTWRITEBYTECODE=1)
  if(TARGET train_mlp)
    list(APPEND python_test_environment CKPT_TRAIN_MLP=$<TARGET_FILE:train_mlp>)
  endif()
  ckpt_add_command_test(python.pytest
    COMMAND ${CMAKE_COMMAND} -E env ${python_test_environment}
            /usr/bin/python3 -m pytest -q -p no:cacheprovider --basetemp=${CMAKE_CURRENT_BINARY_DIR}/python_pytest
            ${PROJECT_SOURCE_DIR}/python/tests
    LABELS python no-asan
    TIMEOUT 600)
endif()
