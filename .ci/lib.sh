# Shared by .ci/demo and .ci/test (sourced): installs the Debian packages
# listed in .ci/packages when missing, and names the build trees.
set -euo pipefail

ckpt_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ckpt_build_root=${CKPT_BUILD_ROOT:-$ckpt_repo/build}
ckpt_jobs=${CKPT_JOBS:-2}
# The main tree, shared by the demo and the test suite so that one build serves both.
ckpt_main_tree=$ckpt_build_root/main
# Optimised as users build (-O2) but without debug information, which made
# compiling ckpt's template-heavy code about 1.6x slower and serves no CI step.
ckpt_main_options=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)

ckpt_install_packages() {
  local line package wanted=() missing=()
  while read -r line; do
    package=${line%%#*}
    package=${package//[[:space:]]/}
    if [[ -n $package ]]; then wanted+=("$package"); fi
  done <"$ckpt_repo/.ci/packages"
  if ! command -v dpkg-query >/dev/null; then
    echo "not a Debian system: make sure these are installed: ${wanted[*]}" >&2
    return 0
  fi
  for package in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]} == 0)); then return 0; fi
  if ((EUID != 0)); then
    echo "missing Debian packages; run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "== installing ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

# ckpt_configure TREE [CMAKE OPTIONS...]
ckpt_configure() {
  local tree=$1
  shift
  cmake -S "$ckpt_repo" -B "$tree" "$@"
}
