# Optional targets with their own dependency: ckpt::npz
# (<ckpt/interop/npz.hpp>, libzip), ckpt::hdf5 (<ckpt/interop/hdf5.hpp>, the
# HDF5 C library) and ckpt::mpi (<ckpt/adapters/mpi.hpp>, MPI). Each defines
# CKPT_WITH_NPZ / CKPT_WITH_HDF5 / CKPT_WITH_MPI for code that uses it; the
# core ckpt::ckpt never links them.
#
# CKPT_WITH_NPZ / CKPT_WITH_HDF5 / CKPT_WITH_MPI say whether to look for the library at all.
# They default to ON only when this build compiles something that uses the
# targets (the ckpt tool, the tests), so that a packaged build (the vcpkg port,
# a plain install) never depends on what else is installed on the machine. A
# project that adds ckpt with add_subdirectory and links ckpt::npz sets
# CKPT_WITH_NPZ to ON. When ON and the library is missing, the target stays
# undefined and the configure says which package to install.
if(CKPT_BUILD_CLI OR CKPT_BUILD_TESTS)
  set(ckpt_interop_default ON)
else()
  set(ckpt_interop_default OFF)
endif()
option(CKPT_WITH_NPZ "Provide ckpt::npz for NumPy .npz files (looks for libzip)" ${ckpt_interop_default})
option(CKPT_WITH_HDF5 "Provide ckpt::hdf5 for HDF5 files (looks for the HDF5 C library)" ${ckpt_interop_default})
option(CKPT_WITH_MPI "Provide ckpt::mpi, the MPI communicator of distributed checkpoints (looks for MPI)"
       ${ckpt_interop_default})

if(CKPT_WITH_NPZ AND NOT TARGET ckpt::npz)
  find_package(libzip CONFIG QUIET)
  if(TARGET libzip::zip)
    add_library(ckpt_npz INTERFACE)
    add_library(ckpt::npz ALIAS ckpt_npz)
    target_link_libraries(ckpt_npz INTERFACE ckpt::ckpt libzip::zip)
    target_compile_definitions(ckpt_npz INTERFACE CKPT_WITH_NPZ=1)
  else()
    message(STATUS "ckpt: libzip not found (Debian: libzip-dev); ckpt::npz and .npz support in the ckpt tool are disabled")
  endif()
endif()

if(CKPT_WITH_HDF5 AND NOT TARGET ckpt::hdf5)
  # pkg-config first: CMake's FindHDF5 needs the C language enabled.
  include(${CMAKE_CURRENT_LIST_DIR}/ckptPkgConfig.cmake)
  ckpt_import_pkg_config_module(ckpt_hdf5_libraries hdf5)
  if(NOT ckpt_hdf5_libraries)
    include(CheckLanguage)
    check_language(C)
    if(CMAKE_C_COMPILER)
      enable_language(C)
      find_package(HDF5 COMPONENTS C QUIET)
    endif()
    if(HDF5_FOUND)
      set(ckpt_hdf5_libraries ${HDF5_C_LIBRARIES})
      set(ckpt_hdf5_include_dirs ${HDF5_C_INCLUDE_DIRS})
      set(ckpt_hdf5_definitions ${HDF5_C_DEFINITIONS})
    endif()
  endif()
  if(ckpt_hdf5_libraries)
    add_library(ckpt_hdf5 INTERFACE)
    add_library(ckpt::hdf5 ALIAS ckpt_hdf5)
    target_link_libraries(ckpt_hdf5 INTERFACE ckpt::ckpt ${ckpt_hdf5_libraries})
    target_include_directories(ckpt_hdf5 INTERFACE ${ckpt_hdf5_include_dirs})
    target_compile_definitions(ckpt_hdf5 INTERFACE CKPT_WITH_HDF5=1 ${ckpt_hdf5_definitions})
  else()
    message(STATUS "ckpt: HDF5 not found (Debian: libhdf5-dev); ckpt::hdf5 and .h5 support in the ckpt tool are disabled")
  endif()
endif()

# ckpt::mpi: <ckpt/adapters/mpi.hpp> with MPI's C library (the C++ bindings,
# deprecated in MPI 3, are not linked). The installed package offers it as
# the component `mpi` (see ckptConfig.cmake.in).
if(CKPT_WITH_MPI AND NOT TARGET ckpt::mpi)
  set(MPI_CXX_SKIP_MPICXX ON CACHE BOOL "ckpt uses MPI's C API only")
  find_package(MPI COMPONENTS CXX QUIET)
  if(TARGET MPI::MPI_CXX)
    add_library(ckpt_mpi INTERFACE)
    add_library(ckpt::mpi ALIAS ckpt_mpi)
    target_link_libraries(ckpt_mpi INTERFACE ckpt::ckpt MPI::MPI_CXX)
    target_compile_definitions(ckpt_mpi INTERFACE CKPT_WITH_MPI=1)
  else()
    message(STATUS "ckpt: MPI not found (Debian: libopenmpi-dev openmpi-bin); ckpt::mpi and its tests are disabled")
  endif()
endif()
