# Header-only library: one release configuration installs everything.
vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO ckpt-dev/ckpt
    REF "v${VERSION}"
    SHA512 0
    HEAD_REF main
)

set(VCPKG_BUILD_TYPE release)

# vcpkg forbids auto-detected dependencies: zstd is linked only when the
# feature asks for it.
vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        zstd CKPT_WITH_ZSTD
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DCKPT_BUILD_TESTS=OFF
        -DCKPT_BUILD_EXAMPLES=OFF
        -DCKPT_BUILD_BENCHMARKS=OFF
        -DCKPT_BUILD_CLI=OFF
        -DCKPT_INSTALL=ON
)

vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/ckpt)
vcpkg_fixup_pkgconfig()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
