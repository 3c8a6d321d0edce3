# Provides ckpt::zstd whatever the installed zstd calls its target:
# zstd::libzstd (1.5.6+), zstd::libzstd_shared / _static (Debian 12's 1.5.4),
# or only a pkg-config file. Leaves ckpt::zstd undefined when zstd is missing,
# so the caller decides how to fail. Safe to include more than once; used both
# by the build and by the installed ckptConfig.cmake.
if(NOT TARGET ckpt::zstd)
  find_package(zstd CONFIG QUIET)
  if(TARGET zstd::libzstd)
    set(ckpt_zstd_target zstd::libzstd)
  elseif(TARGET zstd::libzstd_shared)
    set(ckpt_zstd_target zstd::libzstd_shared)
  elseif(TARGET zstd::libzstd_static)
    set(ckpt_zstd_target zstd::libzstd_static)
  else()
    include("${CMAKE_CURRENT_LIST_DIR}/ckptPkgConfig.cmake")
    ckpt_import_pkg_config_module(ckpt_zstd_target libzstd)
  endif()
  if(ckpt_zstd_target)
    add_library(ckpt::zstd INTERFACE IMPORTED)
    set_target_properties(ckpt::zstd PROPERTIES INTERFACE_LINK_LIBRARIES ${ckpt_zstd_target})
  endif()
  unset(ckpt_zstd_target)
endif()
