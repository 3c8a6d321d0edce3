# The overlay port: builds ckpt from the clone this directory sits in, for
# `vcpkg install ckpt --overlay-ports=<clone>/ports`. The port for the vcpkg
# registry downloads a release instead: cmake/ckptRegistryPort.cmake writes it
# from this file at release time, replacing everything down to the
# set(SOURCE_PATH) line with vcpkg_from_github (see docs/ecosystem.md).
set(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../..")

# Header-only by default: one release configuration installs everything. The
# compiled feature adds a static library (ckpt::compiled, the compiled mode),
# built in both configurations as vcpkg expects of a library.
if("compiled" IN_LIST FEATURES)
    vcpkg_check_linkage(ONLY_STATIC_LIBRARY)
else()
    set(VCPKG_BUILD_TYPE release)
endif()

# vcpkg forbids auto-detected dependencies: zstd and MPI are used only when
# their feature asks for them, and the .npz (libzip) and HDF5 targets, which only the
# tool and the tests use, are not looked for.
vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        zstd CKPT_WITH_ZSTD
        mpi CKPT_WITH_MPI
        compiled CKPT_BUILD_COMPILED
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DCKPT_WITH_NPZ=OFF
        -DCKPT_WITH_HDF5=OFF
        -DCKPT_BUILD_TESTS=OFF
        -DCKPT_BUILD_EXAMPLES=OFF
        -DCKPT_BUILD_BENCHMARKS=OFF
        -DCKPT_BUILD_CLI=OFF
        -DCKPT_INSTALL=ON
)

vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/ckpt)
vcpkg_fixup_pkgconfig()
# The debug configuration (compiled feature) installs headers and package
# files again: vcpkg keeps only its library.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
