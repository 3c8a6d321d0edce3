"""Checks the vcpkg port and the root manifest against the rules vcpkg applies
(vcpkg itself cannot run in the test environment): valid JSON, the required
fields, a version equal to include/ckpt/version.hpp, and port features that
the portfile actually maps to CMake options."""
import json
import re
import sys
from pathlib import Path

source = Path(sys.argv[1])
errors = []


def fail(message):
    errors.append(message)


def load(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        fail(f"{path}: not valid JSON: {error}")
        return None


def library_version():
    text = (source / "include/ckpt/version.hpp").read_text(encoding="utf-8")
    parts = [re.search(rf"#define CKPT_VERSION_{part} (\d+)", text).group(1) for part in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def dependency_names(dependencies):
    return {item if isinstance(item, str) else item["name"] for item in dependencies}


def check_manifest(path, manifest, version):
    for field in ("name", "version", "description", "homepage", "license", "dependencies"):
        if field not in manifest:
            fail(f"{path}: missing field '{field}'")
    if manifest.get("name") != "ckpt":
        fail(f"{path}: name is {manifest.get('name')!r}, expected 'ckpt'")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", str(manifest.get("name", ""))):
        fail(f"{path}: name must be lowercase alphanumerics and hyphens")
    if manifest.get("version") != version:
        fail(f"{path}: version {manifest.get('version')!r} differs from version.hpp {version!r}")
    for library in ("nlohmann-json", "xxhash"):  # what CMakeLists.txt requires
        if library not in dependency_names(manifest.get("dependencies", [])):
            fail(f"{path}: {library} is not a dependency")
    features = manifest.get("features", {})
    if "zstd" not in dependency_names(features.get("zstd", {}).get("dependencies", [])):
        fail(f"{path}: feature 'zstd' must depend on zstd")
    for name, feature in features.items():
        if not feature.get("description"):
            fail(f"{path}: feature '{name}' has no description")
    for name in manifest.get("default-features", []):
        if name not in features:
            fail(f"{path}: default feature '{name}' is not declared")


def check_port(port_dir, manifest):
    host_tools = {item["name"] for item in manifest.get("dependencies", []) if isinstance(item, dict) and item.get("host")}
    for tool in ("vcpkg-cmake", "vcpkg-cmake-config"):
        if tool not in host_tools:
            fail(f"{port_dir}/vcpkg.json: {tool} must be a host dependency")
    portfile = (port_dir / "portfile.cmake").read_text(encoding="utf-8")
    for call in ("vcpkg_from_github", "vcpkg_check_features", "vcpkg_cmake_configure", "vcpkg_cmake_install",
                 "vcpkg_cmake_config_fixup", "vcpkg_install_copyright"):
        if call + "(" not in portfile:
            fail(f"{port_dir}/portfile.cmake: does not call {call}")
    if not re.search(r"set\(VCPKG_BUILD_TYPE release\)", portfile):
        fail(f"{port_dir}/portfile.cmake: a header-only port sets VCPKG_BUILD_TYPE release")
    mapping = re.search(r"vcpkg_check_features\(.*?FEATURES(.*?)\)", portfile, re.S)
    mapped = set(re.findall(r"^\s*(\S+)\s+CKPT_\w+", mapping.group(1), re.M)) if mapping else set()
    for name in manifest.get("features", {}):
        if name not in mapped:
            fail(f"{port_dir}/portfile.cmake: feature '{name}' is not mapped to a CKPT_ option")
    usage = (port_dir / "usage").read_text(encoding="utf-8")
    for line in ("find_package(ckpt CONFIG REQUIRED)", "ckpt::ckpt"):
        if line not in usage:
            fail(f"{port_dir}/usage: does not mention {line}")


version = library_version()
port_dir = source / "ports/ckpt"
port = load(port_dir / "vcpkg.json")
root = load(source / "vcpkg.json")
if port is not None:
    check_manifest(port_dir / "vcpkg.json", port, version)
    check_port(port_dir, port)
if root is not None:
    check_manifest(source / "vcpkg.json", root, version)

for message in errors:
    print(message, file=sys.stderr)
sys.exit(1 if errors else 0)
