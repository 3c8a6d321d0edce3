# Writes the vcpkg port meant for a registry (microsoft/vcpkg's ports/ckpt, or
# a registry of your own) from the overlay port in ports/ckpt, at release time.
# The two differ only in where the sources come from: the overlay port builds
# the clone it sits in, the registry port downloads the release archive
# (tag v<version>, the version of ports/ckpt/vcpkg.json) with
# vcpkg_from_github. Manifest, usage and build steps are copied unchanged, so
# the registry port is never edited by hand.
#
#   cmake -DSHA512=<hash> -DOUT=<dir> -P cmake/ckptRegistryPort.cmake
#
# SHA512 is the hash of https://github.com/<repo>/archive/v<version>.tar.gz
# (`sha512sum` of the download, or the value vcpkg prints when it differs);
# <repo> comes from the manifest's homepage. OUT receives portfile.cmake,
# vcpkg.json and usage.
cmake_minimum_required(VERSION 3.21)

if(NOT SHA512 MATCHES "^[0-9a-f]+$")
  message(FATAL_ERROR "pass -DSHA512=<the release archive's SHA512, 128 hex digits>")
endif()
string(LENGTH "${SHA512}" sha512_length)
if(NOT sha512_length EQUAL 128)
  message(FATAL_ERROR "SHA512 has ${sha512_length} hex digits, expected 128")
endif()
if(NOT OUT)
  message(FATAL_ERROR "pass -DOUT=<directory to write the registry port to>")
endif()

set(overlay_port "${CMAKE_CURRENT_LIST_DIR}/../ports/ckpt")
file(READ "${overlay_port}/vcpkg.json" manifest)
string(JSON homepage GET "${manifest}" homepage)
if(NOT homepage MATCHES "^https://github\\.com/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)$")
  message(FATAL_ERROR "the manifest's homepage '${homepage}' is not a GitHub repository")
endif()
set(repo "${CMAKE_MATCH_1}")

# The overlay portfile's head, down to and including its one set(SOURCE_PATH)
# line, is the part that locates the sources.
file(READ "${overlay_port}/portfile.cmake" portfile)
string(REGEX MATCHALL "\nset\\(SOURCE_PATH [^\n]*\n" source_lines "\n${portfile}")
list(LENGTH source_lines source_line_count)
if(NOT source_line_count EQUAL 1)
  message(FATAL_ERROR "ports/ckpt/portfile.cmake must set SOURCE_PATH on exactly one line, found ${source_line_count}")
endif()
string(FIND "\n${portfile}" "${source_lines}" head_end)
string(LENGTH "${source_lines}" source_line_length)
math(EXPR body_start "${head_end} + ${source_line_length} - 1")
string(SUBSTRING "${portfile}" ${body_start} -1 body)

set(registry_head [=[
# The registry port: builds the release archive downloaded from GitHub.
# Written by cmake/ckptRegistryPort.cmake from the overlay port in the ckpt
# repository (ports/ckpt); change that one, not this copy.
vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO @repo@
    REF "v${VERSION}"
    SHA512 @SHA512@
    HEAD_REF main
)
]=])
string(CONFIGURE "${registry_head}" registry_head @ONLY)

file(MAKE_DIRECTORY "${OUT}")
file(WRITE "${OUT}/portfile.cmake" "${registry_head}${body}")
file(COPY "${overlay_port}/vcpkg.json" "${overlay_port}/usage" DESTINATION "${OUT}")
message(STATUS "wrote the registry port for ${repo} to ${OUT}")
