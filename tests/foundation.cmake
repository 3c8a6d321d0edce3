# Foundation: the headers compile alone and link together, the README's code
# is the code that is tested, and the package works for a consumer.

set(ckpt_include_dir ${PROJECT_SOURCE_DIR}/include)
file(GLOB_RECURSE ckpt_headers CONFIGURE_DEPENDS RELATIVE ${ckpt_include_dir} ${ckpt_include_dir}/ckpt/*.hpp)

# Headers that need an optional dependency, recognised by name (the adapter,
# its forwarding header at the old path and its internals), each compiled with
# the target that brings the dependency, and only when that target exists.
set(ckpt_optional_dependencies eigen torch hdf5 npz mpi)

# Every header, the forwarding headers at old paths included, compiles on its
# own, included twice, without warnings: one generated source per header,
# grouped per dependency set.
ckpt_test_selected(selected foundation no-asan)
if(selected)
  set(header_check_groups core)
  set(header_check_core_target ckpt::ckpt)
  foreach(header IN LISTS ckpt_headers)
    set(group core)
    foreach(dependency IN LISTS ckpt_optional_dependencies)
      if(header MATCHES "(^|/)${dependency}[_.]")
        set(group ${dependency})
      endif()
    endforeach()
    if(NOT group STREQUAL "core")
      if(NOT TARGET ckpt::${group})
        continue()
      endif()
      list(APPEND header_check_groups ${group})
      list(REMOVE_DUPLICATES header_check_groups)
      set(header_check_${group}_target ckpt::${group})
    endif()
    string(MAKE_C_IDENTIFIER ${header} source_name)
    set(source ${CMAKE_CURRENT_BINARY_DIR}/header_check/${source_name}.cpp)
    file(CONFIGURE OUTPUT ${source} CONTENT "#include <${header}>\n#include <${header}>\n")
    list(APPEND header_check_${group}_sources ${source})
  endforeach()
  foreach(group IN LISTS header_check_groups)
    add_library(foundation_header_check_${group} OBJECT ${header_check_${group}_sources})
    target_link_libraries(foundation_header_check_${group} PRIVATE ${header_check_${group}_target})
    target_compile_options(foundation_header_check_${group} PRIVATE -Wall -Wextra -Wpedantic -Werror)
  endforeach()
endif()

# Two translation units that include <ckpt/ckpt.hpp>, linked together.
ckpt_add_test(foundation_odr_test
  SOURCES foundation/odr_test.cpp foundation/odr_unit_a.cpp foundation/odr_unit_b.cpp
  LABELS foundation
  SEPARATE_UNITS)

# A program built against `library` without warnings and run as test
# foundation.<name> in a directory of its own (it writes its checkpoint there).
function(ckpt_foundation_program name source library)
  ckpt_test_selected(selected foundation)
  if(selected)
    add_executable(foundation_${name} ${source})
    target_link_libraries(foundation_${name} PRIVATE ${library})
    target_compile_options(foundation_${name} PRIVATE -Wall -Wextra -Wpedantic)
    file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/${name})
  endif()
  ckpt_add_command_test(foundation.${name}
    COMMAND foundation_${name}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/${name}
    LABELS foundation)
endfunction()

# The README's usage example, built and run; and the README quotes it verbatim.
ckpt_foundation_program(readme_example foundation/readme_example.cpp ckpt::ckpt)
ckpt_add_command_test(foundation.readme_quotes_tested_code
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/foundation/check_readme_code.cmake
  LABELS foundation)

# The optional compiled mode: the compile-cost program (benchmarks/compile_cost.sh)
# linked with ckpt::compiled, whose library supplies the instantiations that
# CKPT_COMPILED declares, saves a state and loads it back equal.
ckpt_foundation_program(compiled_mode ${PROJECT_SOURCE_DIR}/benchmarks/compile_cost/save_load.cpp ckpt::compiled)

# The incremental save is compiled only into programs that name a parent
# (ParentCheckpoint, incremental.hpp): header-only, the compile-cost program
# instantiates none of it, and the same program saving against a parent
# does (so the check sees the symbol when it is there).
ckpt_test_selected(selected foundation)
if(selected)
  add_library(foundation_parentless_save OBJECT ${PROJECT_SOURCE_DIR}/benchmarks/compile_cost/save_load.cpp)
  add_library(foundation_parent_save OBJECT foundation/parent_save.cpp)
  foreach(program IN ITEMS parentless_save parent_save)
    target_link_libraries(foundation_${program} PRIVATE ckpt::ckpt)
    # Instantiation is what is checked; optimising would only cost time.
    target_compile_options(foundation_${program} PRIVATE -O0 -Wall -Wextra -Wpedantic -Werror)
  endforeach()
endif()
set(ckpt_symbol_programs parentless_save parent_save)
set(ckpt_symbol_expected absent present)
foreach(program expected IN ZIP_LISTS ckpt_symbol_programs ckpt_symbol_expected)
  ckpt_add_command_test(foundation.incremental_save_in_${program}
    COMMAND ${CMAKE_COMMAND} -DNM=${CMAKE_NM} -DOBJECT=$<TARGET_OBJECTS:foundation_${program}>
            -DSYMBOL=ckpt::detail::save_against_parent -DEXPECT=${expected}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/foundation/check_symbols.cmake
    LABELS foundation)
endforeach()

# The layering docs/architecture.md describes: no cycle between folders,
# vocabulary headers free of dependencies, <ckpt/ckpt.hpp> reaching every
# public header without an optional dependency but the distributed checkpoint
# (which <ckpt/distributed.hpp> reaches), forwarding headers that only
# forward, zstd named in its two headers only.
ckpt_add_command_test(foundation.include_graph
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/foundation/check_include_graph.py ${ckpt_include_dir}
  LABELS foundation)

# Every C++ file formatted as .clang-format says, with Debian 12's
# clang-format 14 (.ci/packages); a tree without it skips the check.
find_program(CKPT_CLANG_FORMAT NAMES clang-format-14 clang-format)
if(CKPT_CLANG_FORMAT)
  ckpt_add_command_test(foundation.clang_format
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/foundation/check_format.sh ${CKPT_CLANG_FORMAT}
    LABELS foundation)
else()
  message(STATUS "ckpt: clang-format not found, foundation.clang_format not added")
endif()

# The package as a consumer sees it: installed and found with find_package
# (whatever zstd's package is called) or pkg-config, added with
# add_subdirectory, refused for a newer major version, and installed with
# the compiled mode's ckpt::compiled.
set(consumer_modes find_package pkg_config add_subdirectory version_too_new)
if(CKPT_WITH_ZSTD)
  list(APPEND consumer_modes find_package_without_zstd find_package_zstd_1_5_6 find_package_zstd_pkg_config)
endif()
list(APPEND consumer_modes find_package_compiled)
foreach(mode IN LISTS consumer_modes)
  ckpt_add_command_test(foundation.consumer_${mode}
    COMMAND ${CMAKE_COMMAND} -DMODE=${mode} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
            -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/consumer_${mode}
            -DGENERATOR=${CMAKE_GENERATOR} -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
            -DWITH_ZSTD=${CKPT_WITH_ZSTD} -DVERSION=${PROJECT_VERSION}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/foundation/consumer_test.cmake
    LABELS foundation package slow no-asan
    TIMEOUT 600)
endforeach()
