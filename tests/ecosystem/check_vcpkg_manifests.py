"""Checks the vcpkg ports and the root manifest against the rules vcpkg and
its registry apply (vcpkg itself cannot run in the test environment):

- both manifests: valid JSON in the canonical form `vcpkg format-manifest`
  writes (field order, sorted dependencies and features, two-space indent;
  the registry's CI fails on anything else), the required fields, a version
  equal to include/ckpt/version.hpp;
- the overlay port ports/ckpt builds the clone it sits in and downloads
  nothing; the registry port that cmake/ckptRegistryPort.cmake writes from it
  downloads the release with vcpkg_from_github and is otherwise the same;
- both portfiles: every port feature maps to a CKPT_ option, every
  dependency switch of the build (option CKPT_WITH_*) is passed explicitly,
  so nothing is auto-detected, and the programs and tests are switched off.

usage: check_vcpkg_manifests.py SOURCE_DIR CMAKE_COMMAND WORK_DIR"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

source, cmake, work_dir = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
errors = []


def fail(message):
    errors.append(message)


# vcpkg's serialize_manifest: fields in this order after the "$"-comments,
# which come first, sorted.
TOP_LEVEL_ORDER = ["configuration", "vcpkg-configuration", "name", "version", "version-semver", "version-date",
                   "version-string", "port-version", "maintainers", "contacts", "summary", "description",
                   "homepage", "documentation", "license", "supports", "builtin-baseline", "dependencies",
                   "default-features", "features", "overrides"]
FEATURE_ORDER = ["description", "supports", "license", "dependencies"]
DEPENDENCY_ORDER = ["name", "host", "default-features", "features", "platform", "version>="]


def ordered(mapping, order, where):
    """mapping's fields, "$"-fields first (sorted), then in `order`."""
    unknown = [key for key in mapping if not key.startswith("$") and key not in order]
    for key in unknown:
        fail(f"{where}: unknown field '{key}'")
    keys = sorted(key for key in mapping if key.startswith("$")) + [key for key in order if key in mapping]
    return {key: mapping[key] for key in keys}


def single_or_list(value):
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def canonical_dependency(dependency, where):
    if isinstance(dependency, str):
        return dependency
    dependency = ordered(dependency, DEPENDENCY_ORDER, where)
    if list(dependency) == ["name"]:
        return dependency["name"]  # vcpkg writes a dependency with nothing but a name as a string
    if "default-features" in dependency and dependency["default-features"]:
        del dependency["default-features"]  # true is the default, which vcpkg leaves out
    return dependency


def dependency_name(dependency):
    return dependency if isinstance(dependency, str) else dependency["name"]


def canonical_dependencies(dependencies, where):
    return sorted((canonical_dependency(item, where) for item in dependencies), key=dependency_name)


def canonical_manifest(manifest, where):
    """The manifest as `vcpkg format-manifest` would write it."""
    result = ordered(manifest, TOP_LEVEL_ORDER, where)
    for field in ("maintainers", "summary", "description"):
        if field in result:
            result[field] = single_or_list(result[field])
    if "dependencies" in result:
        result["dependencies"] = canonical_dependencies(result["dependencies"], where)
    if "default-features" in result:
        result["default-features"] = sorted(result["default-features"], key=dependency_name)
    if "features" in result:
        features = {}
        for name in sorted(result["features"]):
            feature = ordered(result["features"][name], FEATURE_ORDER, f"{where}: feature '{name}'")
            feature["description"] = single_or_list(feature.get("description", ""))
            if "dependencies" in feature:
                feature["dependencies"] = canonical_dependencies(feature["dependencies"], where)
            features[name] = feature
        result["features"] = features
    return result


def format_manifest(manifest, where):
    return json.dumps(canonical_manifest(manifest, where), indent=2, ensure_ascii=False) + "\n"


def load(path):
    try:
        text = path.read_text(encoding="utf-8")
        manifest = json.loads(text)
    except (OSError, ValueError) as error:
        fail(f"{path}: not valid JSON: {error}")
        return None
    if text != format_manifest(manifest, str(path)):
        fail(f"{path}: not in vcpkg's canonical form (field order, sorted dependencies and features, "
             f"two-space indent); it should read:\n{format_manifest(manifest, str(path))}")
    return manifest


def library_version():
    text = (source / "include/ckpt/version.hpp").read_text(encoding="utf-8")
    parts = [re.search(rf"#define CKPT_VERSION_{part} (\d+)", text).group(1) for part in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def dependency_names(dependencies):
    return {dependency_name(item) for item in dependencies}


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


def dependency_switches():
    """The CKPT_WITH_* options of the build: each decides whether a library is looked for."""
    files = [source / "CMakeLists.txt", *sorted((source / "cmake").glob("*.cmake"))]
    return {name for path in files for name in re.findall(r"option\((CKPT_WITH_\w+)", path.read_text(encoding="utf-8"))}


def check_port(port_dir, manifest, downloads):
    host_tools = {item["name"] for item in manifest.get("dependencies", []) if isinstance(item, dict) and item.get("host")}
    for tool in ("vcpkg-cmake", "vcpkg-cmake-config"):
        if tool not in host_tools:
            fail(f"{port_dir}/vcpkg.json: {tool} must be a host dependency")
    portfile = (port_dir / "portfile.cmake").read_text(encoding="utf-8")
    for call in ("vcpkg_check_features", "vcpkg_cmake_configure", "vcpkg_cmake_install", "vcpkg_cmake_config_fixup",
                 "vcpkg_fixup_pkgconfig", "vcpkg_install_copyright"):
        if call + "(" not in portfile:
            fail(f"{port_dir}/portfile.cmake: does not call {call}")
    download = re.search(r"vcpkg_from_github\((.*?)\)", portfile, re.S)
    if downloads:
        if not download:
            fail(f"{port_dir}/portfile.cmake: the registry port must download the release with vcpkg_from_github")
        else:
            if not re.search(r'REF "v\$\{VERSION\}"', download.group(1)):
                fail(f"{port_dir}/portfile.cmake: REF must be the release tag \"v${{VERSION}}\"")
            if not re.search(r"SHA512 [0-9a-f]{128}\b", download.group(1)):
                fail(f"{port_dir}/portfile.cmake: SHA512 must be the archive's 128-digit hash")
        if "CMAKE_CURRENT_LIST_DIR}/../.." in portfile:
            fail(f"{port_dir}/portfile.cmake: the registry port must not build from a clone")
    else:
        if not re.search(r'^set\(SOURCE_PATH "\$\{CMAKE_CURRENT_LIST_DIR\}/\.\./\.\."\)$', portfile, re.M):
            fail(f"{port_dir}/portfile.cmake: the overlay port must build the clone it sits in "
                 '(set(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.."))')
        for call in ("vcpkg_from_github", "vcpkg_from_git", "vcpkg_download_distfile"):
            if call + "(" in portfile:
                fail(f"{port_dir}/portfile.cmake: the overlay port downloads sources ({call})")
    if not re.search(r"set\(VCPKG_BUILD_TYPE release\)", portfile):
        fail(f"{port_dir}/portfile.cmake: the header-only install (no compiled feature) sets VCPKG_BUILD_TYPE release")
    mapping = re.search(r"vcpkg_check_features\(.*?FEATURES(.*?)\)", portfile, re.S)
    mapped = dict(re.findall(r"^\s*(\S+)\s+(CKPT_\w+)", mapping.group(1), re.M)) if mapping else {}
    for name in manifest.get("features", {}):
        if name not in mapped:
            fail(f"{port_dir}/portfile.cmake: feature '{name}' is not mapped to a CKPT_ option")
    configure = re.search(r"vcpkg_cmake_configure\((.*?)\)", portfile, re.S)
    passed = dict(re.findall(r"-D(CKPT_\w+)=(\w+)", configure.group(1))) if configure else {}
    for option in sorted(dependency_switches()):
        if option not in passed and option not in mapped.values():
            fail(f"{port_dir}/portfile.cmake: {option} is neither passed nor mapped to a feature, so the port's "
                 "build would look for its library on the machine (vcpkg allows no auto-detected dependency)")
    for option in ("CKPT_BUILD_TESTS", "CKPT_BUILD_EXAMPLES", "CKPT_BUILD_BENCHMARKS", "CKPT_BUILD_CLI"):
        if passed.get(option) != "OFF":
            fail(f"{port_dir}/portfile.cmake: must pass -D{option}=OFF")
    if passed.get("CKPT_INSTALL") != "ON":
        fail(f"{port_dir}/portfile.cmake: must pass -DCKPT_INSTALL=ON")
    usage = (port_dir / "usage").read_text(encoding="utf-8")
    for line in ("find_package(ckpt CONFIG REQUIRED)", "ckpt::ckpt"):
        if line not in usage:
            fail(f"{port_dir}/usage: does not mention {line}")


def registry_port():
    """Writes the registry port the way a release does, with a stand-in hash."""
    shutil.rmtree(work_dir, ignore_errors=True)
    result = subprocess.run([cmake, "-DSHA512=" + "0123456789abcdef" * 8, f"-DOUT={work_dir}",
                             "-P", str(source / "cmake/ckptRegistryPort.cmake")], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"cmake/ckptRegistryPort.cmake failed:\n{result.stdout}{result.stderr}")
        return None
    overlay = source / "ports/ckpt"
    for name in ("vcpkg.json", "usage"):
        if (work_dir / name).read_bytes() != (overlay / name).read_bytes():
            fail(f"the registry port's {name} differs from ports/ckpt/{name}")
    registry_body = (work_dir / "portfile.cmake").read_text(encoding="utf-8").split("\n)\n", 1)[-1]
    if not (overlay / "portfile.cmake").read_text(encoding="utf-8").endswith(registry_body):
        fail("the registry portfile's build steps differ from ports/ckpt/portfile.cmake's")
    return work_dir


version = library_version()
ports = source / "ports"
installable = sorted(path.name for path in ports.iterdir() if path.is_dir())
if installable != ["ckpt"]:
    fail(f"ports/ is the overlay directory and must hold only installable ports, found {installable}")
for port_dir, downloads in ((ports / "ckpt", False), (registry_port(), True)):
    if port_dir is None:
        continue
    port = load(port_dir / "vcpkg.json")
    if port is not None:
        check_manifest(port_dir / "vcpkg.json", port, version)
        check_port(port_dir, port, downloads)
root = load(source / "vcpkg.json")
if root is not None:
    check_manifest(source / "vcpkg.json", root, version)
shutil.rmtree(work_dir, ignore_errors=True)

for message in errors:
    print(message, file=sys.stderr)
sys.exit(1 if errors else 0)
