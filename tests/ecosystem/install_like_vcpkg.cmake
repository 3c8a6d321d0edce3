# Installs ckpt the way ports/ckpt/portfile.cmake does, then builds and runs a
# consumer that uses the package exactly as ports/ckpt/usage tells users to.
# vcpkg cannot run here, so the portfile's source path and options are parsed
# from the portfile itself: the test follows any change to the port. Checks on
# the way what vcpkg and its registry reviewers check: the overlay port builds
# the clone it sits in, the configure looks for no library the port does not
# declare, the install holds no binaries and no misplaced pkg-config file, and
# nothing in it names the machine's paths.
#
# cmake -DSOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -DCXX_COMPILER=...
#       -DFEATURES=<port features, joined by + or ;> -P install_like_vcpkg.cmake
cmake_minimum_required(VERSION 3.21)
string(REPLACE "+" ";" FEATURES "${FEATURES}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "failed (${result}): ${command}\n${output}")
  endif()
  set(run_output "${output}" PARENT_SCOPE)
endfunction()

set(port_dir "${SOURCE_DIR}/ports/ckpt")
file(READ "${port_dir}/portfile.cmake" portfile)

# The overlay port's sources: the clone it sits in, not a download.
if(NOT portfile MATCHES "\nset\\(SOURCE_PATH \"([^\"]+)\"\\)")
  message(FATAL_ERROR "the portfile does not set SOURCE_PATH to a path")
endif()
string(REPLACE "\${CMAKE_CURRENT_LIST_DIR}" "${port_dir}" port_source "${CMAKE_MATCH_1}")
file(REAL_PATH "${port_source}" port_source)
file(REAL_PATH "${SOURCE_DIR}" clone)
if(NOT port_source STREQUAL clone)
  message(FATAL_ERROR "the overlay port builds ${port_source}, not the clone it sits in (${clone})")
endif()

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
run(${CMAKE_COMMAND} -S "${port_source}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_INSTALL_PREFIX=${prefix} ${port_options})

# No auto-detected dependency: every package the configure looked for
# (find_package leaves <Package>_DIR in the cache, found or not; pkg-config
# leaves __pkg_config_checked_<prefix>) is one the manifest declares for the
# features being built, and no C compiler was enabled (FindHDF5 needs one).
file(READ "${port_dir}/vcpkg.json" manifest)
set(declared_ports)
function(add_declared_dependencies json_path)
  string(JSON count ERROR_VARIABLE missing LENGTH "${manifest}" ${json_path} dependencies)
  if(missing)
    return()
  endif()
  math(EXPR last "${count} - 1")
  foreach(index RANGE ${last})
    string(JSON dependency GET "${manifest}" ${json_path} dependencies ${index})
    string(JSON name ERROR_VARIABLE not_object GET "${dependency}" name)
    if(not_object)
      set(name "${dependency}")
    endif()
    list(APPEND declared_ports ${name})
  endforeach()
  set(declared_ports ${declared_ports} PARENT_SCOPE)
endfunction()
add_declared_dependencies("")
foreach(feature IN LISTS FEATURES)
  if(NOT feature STREQUAL "core")
    add_declared_dependencies("features;${feature}")
  endif()
endforeach()
# vcpkg port -> the CMake packages (or find_path results, <name>_DIR) and
# pkg-config module ckpt's build asks for.
set(cmake_package_of_nlohmann-json nlohmann_json)
set(cmake_package_of_xxhash xxHash CKPT_XXHASH_INCLUDE)
set(cmake_package_of_zstd zstd)
set(pkg_config_prefix_of_zstd ckpt_libzstd)
set(allowed_packages)
set(allowed_pkg_config)
foreach(port IN LISTS declared_ports)
  list(APPEND allowed_packages ${cmake_package_of_${port}})
  list(APPEND allowed_pkg_config ${pkg_config_prefix_of_${port}})
endforeach()
file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" cache_lines)
foreach(line IN LISTS cache_lines)
  if(line MATCHES "^([A-Za-z0-9_]+)_DIR:PATH=" AND NOT CMAKE_MATCH_1 IN_LIST allowed_packages)
    message(FATAL_ERROR "the port's configure looked for ${CMAKE_MATCH_1}, which ports/ckpt/vcpkg.json does not "
                        "declare for features '${FEATURES}' (${line})")
  endif()
  if(line MATCHES "^__pkg_config_checked_([A-Za-z0-9_]+):" AND NOT CMAKE_MATCH_1 IN_LIST allowed_pkg_config)
    message(FATAL_ERROR "the port's configure asked pkg-config for an undeclared module (${line})")
  endif()
  if(line MATCHES "^CMAKE_C_COMPILER:")
    message(FATAL_ERROR "the port's configure enabled C, which only the HDF5 lookup does (${line})")
  endif()
endforeach()

run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run(${CMAKE_COMMAND} --install "${WORK_DIR}/build")

# vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/ckpt) expects the package
# config there, and vcpkg rejects packages that record where they were built.
if(NOT EXISTS "${prefix}/share/cmake/ckpt/ckptConfig.cmake")
  message(FATAL_ERROR "the install tree has no share/cmake/ckpt/ckptConfig.cmake (the portfile's CONFIG_PATH)")
endif()
foreach(binary_dir IN ITEMS bin lib64)
  if(EXISTS "${prefix}/${binary_dir}")
    message(FATAL_ERROR "the port installed ${binary_dir}/, which vcpkg rejects")
  endif()
endforeach()
# The only binary is the compiled feature's static library.
file(GLOB libraries RELATIVE "${prefix}" "${prefix}/lib/*.a" "${prefix}/lib/*.so*")
if("compiled" IN_LIST FEATURES)
  set(expected_libraries lib/libckpt_compiled.a)
else()
  set(expected_libraries)
endif()
if(NOT "${libraries}" STREQUAL "${expected_libraries}")
  message(FATAL_ERROR "the port installed the libraries '${libraries}', expected '${expected_libraries}' "
                      "for features '${FEATURES}'")
endif()
# vcpkg's post-build check on pkg-config files: lib/pkgconfig takes any,
# share/pkgconfig only those without a Libs or Libs.private value (header-only
# packages), anywhere else is misplaced. vcpkg_fixup_pkgconfig() then checks
# that pkg-config resolves the file with the declared dependencies.
file(GLOB_RECURSE pc_files RELATIVE "${prefix}" "${prefix}/*.pc")
if(NOT pc_files)
  message(FATAL_ERROR "the install has no pkg-config file")
endif()
foreach(pc IN LISTS pc_files)
  get_filename_component(pc_dir "${pc}" DIRECTORY)
  file(STRINGS "${prefix}/${pc}" libs_lines REGEX "^Libs[^:]*:[ ]*[^ ]")
  if(pc_dir STREQUAL "share/pkgconfig" AND libs_lines)
    message(FATAL_ERROR "${pc} has '${libs_lines}': vcpkg reports a misplaced pkgconfig directory "
                        "(share/pkgconfig is only for .pc files without Libs)")
  elseif(NOT pc_dir MATCHES "^(lib|share)/pkgconfig$")
    message(FATAL_ERROR "${pc}: vcpkg reports a misplaced pkgconfig directory")
  endif()
endforeach()
set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig:${prefix}/lib/pkgconfig")
run(pkg-config --print-errors --exists ckpt)

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

# The consumer's CMakeLists.txt is the usage file's CMake lines, verbatim: its
# first block, or with the compiled feature the block that links ckpt::compiled.
file(STRINGS "${SOURCE_DIR}/ports/ckpt/usage" usage_text)
set(usage_blocks)
set(block)
foreach(line IN LISTS usage_text ITEMS "")
  if(line MATCHES "^    ")
    string(APPEND block "${line}\n")
  elseif(block)
    list(APPEND usage_blocks "${block}")
    set(block)
  endif()
endforeach()
set(usage_cmake)
foreach(block IN LISTS usage_blocks)
  string(FIND "${block}" "ckpt::compiled" links_compiled)
  if("compiled" IN_LIST FEATURES AND NOT links_compiled EQUAL -1)
    set(usage_cmake "${block}")
  elseif(NOT "compiled" IN_LIST FEATURES AND NOT usage_cmake)
    set(usage_cmake "${block}")
  endif()
endforeach()
if(NOT usage_cmake)
  message(FATAL_ERROR "ports/ckpt/usage has no CMake block for features '${FEATURES}'")
endif()
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
if("compiled" IN_LIST FEATURES)
  string(APPEND expected ", compiled: yes")
else()
  string(APPEND expected ", compiled: no")
endif()
if(NOT run_output MATCHES "${expected}")
  message(FATAL_ERROR "the consumer printed '${run_output}', expected '${expected}': "
                      "a feature did not reach the installed package")
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
