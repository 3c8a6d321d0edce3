# Foundation: the headers compile alone and link together, the README's code
# is the code that is tested, and the package works for a consumer.

set(ckpt_include_dir ${PROJECT_SOURCE_DIR}/include)
file(GLOB_RECURSE ckpt_headers CONFIGURE_DEPENDS RELATIVE ${ckpt_include_dir} ${ckpt_include_dir}/ckpt/*.hpp)

# Optional adapter headers, each with the target that brings its dependency.
# The umbrella leaves them out; they are compiled only when the target exists.
set(ckpt_adapter_headers ckpt/eigen.hpp ckpt/torch.hpp ckpt/hdf5.hpp ckpt/npz.hpp)
set(ckpt_adapter_targets ckpt::eigen ckpt::torch ckpt::hdf5 ckpt::npz)

# Every header compiles on its own, included twice, without warnings: one
# generated source per header, grouped per dependency set.
ckpt_test_selected(selected foundation no-asan)
if(selected)
  set(header_check_groups core)
  set(header_check_core_target ckpt::ckpt)
  foreach(header IN LISTS ckpt_headers)
    list(FIND ckpt_adapter_headers ${header} adapter_index)
    if(adapter_index EQUAL -1)
      set(group core)
    else()
      list(GET ckpt_adapter_targets ${adapter_index} adapter_target)
      if(NOT TARGET ${adapter_target})
        continue()
      endif()
      string(REGEX REPLACE "^ckpt/(.*)\\.hpp$" "\\1" group ${header})
      list(APPEND header_check_groups ${group})
      set(header_check_${group}_target ${adapter_target})
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
  LABELS foundation)

# The README's usage example, built and run; and the README quotes it verbatim.
ckpt_test_selected(selected foundation)
if(selected)
  add_executable(foundation_readme_example foundation/readme_example.cpp)
  target_link_libraries(foundation_readme_example PRIVATE ckpt::ckpt)
  target_compile_options(foundation_readme_example PRIVATE -Wall -Wextra -Wpedantic)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/readme_example)
endif()
ckpt_add_command_test(foundation.readme_example
  COMMAND foundation_readme_example
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/readme_example
  LABELS foundation)
ckpt_add_command_test(foundation.readme_quotes_tested_code
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/foundation/check_readme_code.cmake
  LABELS foundation)

# <ckpt/ckpt.hpp> includes every public header but the optional adapters.
# (A ';' would split the command's argument, hence the commas.)
list(JOIN ckpt_adapter_headers "," adapter_list)
ckpt_add_command_test(foundation.umbrella_includes_public_headers
  COMMAND ${CMAKE_COMMAND} -DINCLUDE_DIR=${ckpt_include_dir} -DADAPTERS=${adapter_list}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/foundation/check_umbrella.cmake
  LABELS foundation)

# The package as a consumer sees it: installed and found with find_package
# (whatever zstd's package is called) or pkg-config, added with
# add_subdirectory, and refused for a newer major version.
set(consumer_modes find_package pkg_config add_subdirectory version_too_new)
if(CKPT_WITH_ZSTD)
  list(APPEND consumer_modes find_package_without_zstd find_package_zstd_1_5_6 find_package_zstd_pkg_config)
endif()
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
