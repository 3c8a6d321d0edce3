# Installs ckpt the way ports/ckpt/portfile.cmake does, then builds and runs a
# consumer that uses the package exactly as ports/ckpt/usage tells users to.
# vcpkg cannot run here, so the portfile's options are parsed from the
# portfile itself: the test follows any change to the port.
#
# cmake -DSOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -DCXX_COMPILER=...
#       -DFEATURES=<;-list of port features> -P install_like_vcpkg.cmake
cmake_minimum_required(VERSION 3.21)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "failed (${result}): ${command}\n${output}")
  endif()
  set(run_output "${output}" PARENT_SCOPE)
endfunction()

file(READ "${SOURCE_DIR}/ports/ckpt/portfile.cmake" portfile)

# -DNAME=VALUE options given to vcpkg_cmake_configure.
string(REGEX MATCH "vcpkg_cmake_configure\\([^)]*\\)" configure_call "${portfile}")
string(REGEX MATCHALL "-D[A-Za-z0-9_]+=[^ \t\n)]+" port_options "${configure_call}")
if(NOT port_options)
  message(FATAL_ERROR "no -D options found in the portfile's vcpkg_cmake_configure call")
endif()

# vcpkg_check_features turns each "feature OPTION" pair into -DOPTION=ON|OFF.
string(REGEX MATCH "vcpkg_check_features\\([^)]*\\)" features_call "${portfile}")
string(REGEX MATCHALL "\n[ \t]+[a-z0-9-]+[ \t]+[A-Z0-9_]+" feature_pairs "${features_call}")
foreach(pair IN LISTS feature_pairs)
  string(STRIP "${pair}" pair)
  string(REGEX REPLACE "[ \t]+" ";" pair "${pair}")
  list(GET pair 0 feature)
  list(GET pair 1 option)
  if(feature IN_LIST FEATURES)
    list(APPEND port_options "-D${option}=ON")
  else()
    list(APPEND port_options "-D${option}=OFF")
  endif()
endforeach()
if(portfile MATCHES "set\\(VCPKG_BUILD_TYPE release\\)")
  list(APPEND port_options "-DCMAKE_BUILD_TYPE=Release")
endif()
message(STATUS "portfile options: ${port_options}")

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/data")
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_INSTALL_PREFIX=${prefix} ${port_options})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run(${CMAKE_COMMAND} --install "${WORK_DIR}/build")

# vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/ckpt) expects the package
# config there, and vcpkg rejects packages that record where they were built.
if(NOT EXISTS "${prefix}/share/cmake/ckpt/ckptConfig.cmake")
  message(FATAL_ERROR "the install tree has no share/cmake/ckpt/ckptConfig.cmake (the portfile's CONFIG_PATH)")
endif()
foreach(binary_dir IN ITEMS bin lib64)
  if(EXISTS "${prefix}/${binary_dir}")
    message(FATAL_ERROR "the header-only port installed ${binary_dir}/, which vcpkg rejects")
  endif()
endforeach()
file(GLOB_RECURSE config_files "${prefix}/share/*.cmake" "${prefix}/share/*.pc" "${prefix}/lib/*.pc")
foreach(config IN LISTS config_files)
  file(READ "${config}" text)
  foreach(absolute IN ITEMS "${prefix}" "${SOURCE_DIR}" "${WORK_DIR}/build")
    string(FIND "${text}" "${absolute}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${config} names the absolute path ${absolute}: the package is not relocatable")
    endif()
  endforeach()
endforeach()

# The consumer's CMakeLists.txt is the usage file's CMake lines, verbatim.
file(STRINGS "${SOURCE_DIR}/ports/ckpt/usage" usage_lines REGEX "^    ")
list(JOIN usage_lines "\n" usage_cmake)
file(MAKE_DIRECTORY "${WORK_DIR}/consumer")
file(COPY "${CMAKE_CURRENT_LIST_DIR}/consumer/main.cpp" DESTINATION "${WORK_DIR}/consumer")
file(WRITE "${WORK_DIR}/consumer/CMakeLists.txt"
  "cmake_minimum_required(VERSION 3.21)\nproject(consumer CXX)\nadd_executable(main main.cpp)\n${usage_cmake}\n")
run(${CMAKE_COMMAND} -S "${WORK_DIR}/consumer" -B "${WORK_DIR}/consumer/build" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer/build")
run("${WORK_DIR}/consumer/build/main" "${WORK_DIR}/data")

if("zstd" IN_LIST FEATURES)
  set(expected "zstd: yes")
else()
  set(expected "zstd: no")
endif()
if(NOT run_output MATCHES "${expected}")
  message(FATAL_ERROR "the consumer printed '${run_output}', expected '${expected}': "
                      "the zstd feature did not reach the installed package")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
