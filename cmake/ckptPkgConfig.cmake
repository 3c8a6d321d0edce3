# ckpt_import_pkg_config_module(<out-var> <module>): imports the pkg-config
# module <module> as the target PkgConfig::ckpt_<module> and sets <out-var> to
# that name, or to "" when pkg-config or the module is missing. The fallback
# for libraries whose CMake package may be absent (zstd, HDF5); used by the
# build and by the installed ckptConfig.cmake, so it must stay self-contained.
# Safe to include more than once.
include_guard(GLOBAL)

function(ckpt_import_pkg_config_module out module)
  set(target PkgConfig::ckpt_${module})
  if(NOT TARGET ${target})
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(ckpt_${module} QUIET IMPORTED_TARGET ${module})
    endif()
  endif()
  if(TARGET ${target})
    set(${out} ${target} PARENT_SCOPE)
  else()
    set(${out} "" PARENT_SCOPE)
  endif()
endfunction()
