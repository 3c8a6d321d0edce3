# Uses ckpt the way a project outside the repository does (see consumer/):
#   find_package                  install ckpt to a temporary prefix; find_package
#                                 twice; build and run a program that saves and
#                                 loads a checkpoint
#   find_package_without_zstd     the same, ckpt installed with CKPT_WITH_ZSTD=OFF
#                                 and zstd hidden from the consumer
#   find_package_zstd_1_5_6       the same, with zstd's newer target name
#                                 zstd::libzstd (see zstd_1_5_6/)
#   find_package_zstd_pkg_config  the same, zstd found only through pkg-config
#   find_package_compiled         ckpt built and installed with CKPT_BUILD_COMPILED=ON;
#                                 the program links ckpt::compiled (COMPONENTS compiled)
#   pkg_config                    the program compiled with the flags of
#                                 `pkg-config --cflags --libs ckpt`
#   add_subdirectory              the program, with ckpt added from its sources
#   version_too_new               find_package(ckpt 99 CONFIG) is not found
#
# cmake -DMODE=... -DSOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -DCXX_COMPILER=...
#       -DWITH_ZSTD=ON|OFF -DVERSION=x.y.z -P consumer_test.cmake
cmake_minimum_required(VERSION 3.21)

# Runs a command; stops the test with its output when it fails.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "failed (${result}): ${command}\n${output}")
  endif()
  message(STATUS "ok: ${ARGV0} ${ARGV1} ...\n${output}")
endfunction()

set(consumer_dir "${CMAKE_CURRENT_LIST_DIR}/consumer")
set(consumer_build "${WORK_DIR}/consumer-build")
set(program "${consumer_build}/consumer")
set(prefix "${WORK_DIR}/prefix")
set(generator_options -G "${GENERATOR}" -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
set(consumer_options -DCKPT_CONSUME=find_package -DCMAKE_PREFIX_PATH=${prefix})
set(install_with_zstd ${WITH_ZSTD})
set(install_compiled OFF)
if(MODE STREQUAL "find_package_without_zstd")
  set(install_with_zstd OFF)
  list(APPEND consumer_options -DCMAKE_DISABLE_FIND_PACKAGE_zstd=ON -DCKPT_EXPECT_ZSTD_TARGET=NONE)
elseif(MODE STREQUAL "find_package_zstd_1_5_6")
  list(APPEND consumer_options "-Dzstd_DIR=${CMAKE_CURRENT_LIST_DIR}/zstd_1_5_6"
       -DCKPT_EXPECT_ZSTD_TARGET=zstd::libzstd)
elseif(MODE STREQUAL "find_package_zstd_pkg_config")
  list(APPEND consumer_options -DCMAKE_DISABLE_FIND_PACKAGE_zstd=ON
       -DCKPT_EXPECT_ZSTD_TARGET=PkgConfig::ckpt_libzstd)
elseif(MODE STREQUAL "find_package_compiled")
  set(install_compiled ON)
  list(APPEND consumer_options -DCKPT_LINK_COMPILED=ON)
elseif(MODE STREQUAL "version_too_new")
  set(consumer_options -DCKPT_CONSUME=version_too_new -DCMAKE_PREFIX_PATH=${prefix} -DCKPT_EXPECTED_VERSION=${VERSION})
elseif(MODE STREQUAL "add_subdirectory")
  set(consumer_options -DCKPT_CONSUME=add_subdirectory -DCKPT_SOURCE_DIR=${SOURCE_DIR} -DCKPT_WITH_ZSTD=${WITH_ZSTD})
elseif(NOT MODE MATCHES "^(find_package|pkg_config)$")
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${consumer_build}")

if(NOT MODE STREQUAL "add_subdirectory")
  # Nothing is compiled: installing a header-only package must not need it.
  # Only the compiled mode's library is built, as its users do.
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/ckpt-build" ${generator_options}
      -DCMAKE_INSTALL_PREFIX=${prefix} -DCKPT_WITH_ZSTD=${install_with_zstd} -DCKPT_INSTALL=ON
      -DCKPT_BUILD_COMPILED=${install_compiled} -DCKPT_BUILD_TESTS=OFF -DCKPT_BUILD_EXAMPLES=OFF
      -DCKPT_BUILD_BENCHMARKS=OFF -DCKPT_BUILD_CLI=OFF)
  if(install_compiled)
    run(${CMAKE_COMMAND} --build "${WORK_DIR}/ckpt-build")
  endif()
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/ckpt-build")
endif()

if(MODE STREQUAL "pkg_config")
  set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
  execute_process(COMMAND pkg-config --cflags --libs ckpt RESULT_VARIABLE result OUTPUT_VARIABLE flags
                  ERROR_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "pkg-config --cflags --libs ckpt failed: ${flags}")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(${CXX_COMPILER} -std=c++17 "${consumer_dir}/main.cpp" -o "${program}" ${flags})
else()
  # For version_too_new, configuring the consumer is the test (see consumer/).
  run(${CMAKE_COMMAND} -S "${consumer_dir}" -B "${consumer_build}" ${generator_options} ${consumer_options})
  if(MODE STREQUAL "version_too_new")
    file(REMOVE_RECURSE "${WORK_DIR}")
    return()
  endif()
  run(${CMAKE_COMMAND} --build "${consumer_build}")
endif()
run("${program}" "${WORK_DIR}/consumer.ckpt")

file(REMOVE_RECURSE "${WORK_DIR}")
