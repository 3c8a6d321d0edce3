# Stands in for the package of zstd 1.5.6 and later, which exports
# zstd::libzstd, where Debian 12's zstd 1.5.4 exports only
# zstd::libzstd_shared and zstd::libzstd_static. It wraps the installed library.
if(NOT TARGET zstd::libzstd)
  find_library(zstd_1_5_6_library NAMES zstd REQUIRED)
  find_path(zstd_1_5_6_include_dir zstd.h REQUIRED)
  add_library(zstd::libzstd UNKNOWN IMPORTED)
  set_target_properties(zstd::libzstd PROPERTIES
    IMPORTED_LOCATION "${zstd_1_5_6_library}"
    INTERFACE_INCLUDE_DIRECTORIES "${zstd_1_5_6_include_dir}")
endif()
