# Provides ckpt::xxhash, the xxHash header that ckpt uses in header-only mode
# (XXH_INLINE_ALL). xxHash built with CMake (vcpkg, 0.8.1+) exports
# xxHash::xxhash; Debian's libxxhash-dev ships the header without a CMake
# package. Leaves ckpt::xxhash undefined when the header is missing, so the
# caller decides how to fail. Safe to include more than once; used both by the
# build and by the installed ckptConfig.cmake.
if(NOT TARGET ckpt::xxhash)
  find_package(xxHash CONFIG QUIET)
  if(TARGET xxHash::xxhash)
    add_library(ckpt::xxhash INTERFACE IMPORTED)
    set_target_properties(ckpt::xxhash PROPERTIES INTERFACE_LINK_LIBRARIES xxHash::xxhash)
  else()
    find_path(CKPT_XXHASH_INCLUDE_DIR xxhash.h)
    if(CKPT_XXHASH_INCLUDE_DIR)
      add_library(ckpt::xxhash INTERFACE IMPORTED)
      set_target_properties(ckpt::xxhash PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${CKPT_XXHASH_INCLUDE_DIR}")
    endif()
  endif()
endif()
