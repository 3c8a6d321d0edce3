# Finds zstd and provides ckpt::zstd whatever the installed zstd calls its
# target: zstd::libzstd (1.5.6+), zstd::libzstd_shared / _static (Debian 12's
# 1.5.4), or only a pkg-config file. Safe to include more than once.
if(NOT TARGET ckpt::zstd)
  find_package(zstd CONFIG QUIET)
  if(TARGET zstd::libzstd)
    set(ckpt_zstd_target zstd::libzstd)
  elseif(TARGET zstd::libzstd_shared)
    set(ckpt_zstd_target zstd::libzstd_shared)
  elseif(TARGET zstd::libzstd_static)
    set(ckpt_zstd_target zstd::libzstd_static)
  else()
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(ckpt_libzstd REQUIRED IMPORTED_TARGET libzstd)
    set(ckpt_zstd_target PkgConfig::ckpt_libzstd)
  endif()
  add_library(ckpt::zstd INTERFACE IMPORTED)
  set_target_properties(ckpt::zstd PROPERTIES INTERFACE_LINK_LIBRARIES ${ckpt_zstd_target})
endif()
