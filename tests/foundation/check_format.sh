#!/usr/bin/env bash
# Every C++ file of the repository is formatted as .clang-format says: the
# style is checked, not argued about in review. Formats with the clang-format
# given as $1 (Debian 12's clang-format 14, from .ci/packages) into memory and
# lists the files that would change; fix them with
#   clang-format -i $(git ls-files '*.cpp' '*.hpp')
# Tables laid out by hand sit between `// clang-format off` and `on`.
set -euo pipefail
clang_format=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
mapfile -t files < <(find include src cli examples tests benchmarks -name '*.cpp' -o -name '*.hpp' | sort)
unformatted=()
for file in "${files[@]}"; do
  if ! "$clang_format" --style=file "$file" | cmp -s - "$file"; then unformatted+=("$file"); fi
done
echo "${#files[@]} C++ files checked with $("$clang_format" --version)"
if ((${#unformatted[@]})); then
  printf 'not formatted as .clang-format says: %s\n' "${unformatted[@]}"
  exit 1
fi
