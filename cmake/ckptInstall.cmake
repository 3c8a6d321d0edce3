# Installs the headers, the exported target ckpt::ckpt with its CMake package
# (share/cmake/ckpt: architecture-independent, as the library is header-only),
# a pkg-config file and, when it has been built, the command-line tool.
# Installing the library needs no build: `cmake --install` right after the
# configure works.
include(CMakePackageConfigHelpers)

set(CKPT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/ckpt" CACHE STRING
    "Where to install ckpt's CMake package files, relative to the prefix")
# share/pkgconfig, the place for architecture-independent .pc files: ckpt.pc
# has no Libs line (see ckpt.pc.in), which is what vcpkg's post-build checks
# require there.
set(CKPT_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig" CACHE STRING
    "Where to install ckpt.pc, relative to the prefix")

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/ckpt" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp")
install(TARGETS ckpt EXPORT ckptTargets)
install(EXPORT ckptTargets NAMESPACE ckpt:: DESTINATION "${CKPT_INSTALL_CMAKEDIR}")
# The compiled mode's library, built only with CKPT_BUILD_COMPILED: its own
# export file, which ckptConfig.cmake loads when present, so the header-only
# package stays what it was and needs no build.
if(CKPT_BUILD_COMPILED)
  install(TARGETS ckpt_compiled EXPORT ckptCompiledTargets ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
  install(EXPORT ckptCompiledTargets NAMESPACE ckpt:: DESTINATION "${CKPT_INSTALL_CMAKEDIR}")
endif()

configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/ckptConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/ckptConfig.cmake"
  INSTALL_DESTINATION "${CKPT_INSTALL_CMAKEDIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/ckptConfigVersion.cmake"
  COMPATIBILITY SameMajorVersion
  ARCH_INDEPENDENT)
install(FILES
  "${PROJECT_BINARY_DIR}/ckptConfig.cmake"
  "${PROJECT_BINARY_DIR}/ckptConfigVersion.cmake"
  "${CMAKE_CURRENT_LIST_DIR}/ckptFindXxhash.cmake"
  "${CMAKE_CURRENT_LIST_DIR}/ckptFindZstd.cmake"
  "${CMAKE_CURRENT_LIST_DIR}/ckptPkgConfig.cmake"
  DESTINATION "${CKPT_INSTALL_CMAKEDIR}")

# ckpt.pc locates the prefix relative to itself, so the install tree can move.
file(RELATIVE_PATH ckpt_pc_prefix "/${CKPT_INSTALL_PKGCONFIGDIR}" "/")
string(REGEX REPLACE "/$" "" ckpt_pc_prefix "\${pcfiledir}/${ckpt_pc_prefix}")
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(ckpt_pc_includedir "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(ckpt_pc_includedir "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(ckpt_pc_requires "nlohmann_json >= 3.11.0, libxxhash")
set(ckpt_pc_cflags "")
if(CKPT_WITH_ZSTD)
  string(APPEND ckpt_pc_requires ", libzstd")
  string(APPEND ckpt_pc_cflags " -DCKPT_WITH_ZSTD=1")
endif()
configure_file("${CMAKE_CURRENT_LIST_DIR}/ckpt.pc.in" "${PROJECT_BINARY_DIR}/ckpt.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/ckpt.pc" DESTINATION "${CKPT_INSTALL_PKGCONFIGDIR}")

# OPTIONAL: the tool is installed when it has been built (`cmake --build
# build --target ckpt_cli`, or a full build), and a header-only install right
# after the configure skips it instead of failing.
if(TARGET ckpt_cli)
  install(TARGETS ckpt_cli RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" OPTIONAL)
endif()
