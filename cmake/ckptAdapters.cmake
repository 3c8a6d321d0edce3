# Targets for the optional adapter headers, used by the tests and examples:
# ckpt::eigen (<ckpt/adapters/eigen.hpp> + Eigen3) and ckpt::torch (<ckpt/adapters/torch.hpp> +
# libtorch), each defined only when its dependency is found. The installed
# package never looks for them: users of an adapter link its dependency
# themselves. Disable one with -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON (or _Eigen3).
if(NOT (CKPT_BUILD_TESTS OR CKPT_BUILD_EXAMPLES))
  return()
endif()

if(NOT TARGET ckpt::eigen)
  find_package(Eigen3 3.3 NO_MODULE QUIET)
  if(TARGET Eigen3::Eigen)
    add_library(ckpt_eigen INTERFACE)
    add_library(ckpt::eigen ALIAS ckpt_eigen)
    target_link_libraries(ckpt_eigen INTERFACE ckpt::ckpt Eigen3::Eigen)
  endif()
endif()

if(NOT TARGET ckpt::torch)
  find_package(Torch QUIET)
  if(TARGET torch)
    add_library(ckpt_torch INTERFACE)
    add_library(ckpt::torch ALIAS ckpt_torch)
    target_link_libraries(ckpt_torch INTERFACE ckpt::ckpt torch)
  endif()
endif()
foreach(adapter IN ITEMS eigen torch)
  if(TARGET ckpt::${adapter})
    message(STATUS "ckpt: building the ${adapter} adapter's tests and examples")
  else()
    message(STATUS "ckpt: ${adapter} not found, skipping its adapter's tests and examples")
  endif()
endforeach()
