#!/usr/bin/env bash
# What ckpt costs a program to compile, against nlohmann_json alone, measured
# side by side in one run (issue 11, item 4; README, "Compile time"):
#
#   (a) -fsyntax-only of `#include <ckpt/ckpt.hpp>` vs `#include <nlohmann/json.hpp>`
#       limit: ckpt at most 1.5x nlohmann
#   (b) -O2 -c of benchmarks/compile_cost/save_load.cpp (Checkpoint<State> save
#       and load of two vectors) vs json_only.cpp (the same round trip with
#       nlohmann_json alone)
#       limit: save_load.cpp at most 6 s
#   (c) (a) and (b) in the optional compiled mode (-DCKPT_COMPILED=1, what
#       linking ckpt::compiled adds): the program sees only the declarations
#       of the file format's code, which is compiled once in that library
#       (include/ckpt/compiled.hpp); the same limits
#
#   bash benchmarks/compile_cost.sh [REPS]     # default 5; each figure is the median
#
# The compilations alternate within each repetition, so a change in the
# machine's load affects all of them alike. CPU time (user + sys) is printed
# beside wall time because the machine may be shared. With valgrind installed
# (apt-get install valgrind), the instructions the compiler executes for the
# three includes are counted too (about a minute) and checked against the
# include limit beside the wall ratio: a count is the same however busy the
# machine is. INSTRUCTIONS=1 counts the -O2 compilations as well (each runs
# once, 20 to 60 times slower; about 20 minutes).
# Environment: CXX (default g++, what CMake picks on Debian), CXXFLAGS (added
# to every compilation), INSTRUCTIONS.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=${1:-${REPS:-5}}
cxx=${CXX:-g++}
sources=$repo/benchmarks/compile_cost
# The flags the ckpt::ckpt target gives its users (CKPT_WITH_ZSTD is on by default).
read -r -a flags <<< "-std=c++17 -DCKPT_WITH_ZSTD=1 -I$repo/include ${CXXFLAGS:-}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#include <nlohmann/json.hpp>\n' > "$work/include_json.cpp"
printf '#include <ckpt/ckpt.hpp>\n' > "$work/include_ckpt.cpp"

names=(include_json include_ckpt include_ckpt_compiled json_only save_load save_load_compiled)
declare -A command=(
  [include_json]="-fsyntax-only $work/include_json.cpp"
  [include_ckpt]="-fsyntax-only $work/include_ckpt.cpp"
  [include_ckpt_compiled]="-fsyntax-only -DCKPT_COMPILED=1 $work/include_ckpt.cpp"
  [json_only]="-O2 -c $sources/json_only.cpp -o $work/json_only.o"
  [save_load]="-O2 -c $sources/save_load.cpp -o $work/save_load.o"
  [save_load_compiled]="-O2 -c -DCKPT_COMPILED=1 $sources/save_load.cpp -o $work/save_load_compiled.o"
)
declare -A wall cpu

# Runs one compilation; appends its wall and CPU seconds to the lists of `name`.
measure() {
  local name=$1 times
  local -a arguments
  read -r -a arguments <<< "${command[$name]}"
  times=$( { TIMEFORMAT='%R %U %S'; time "$cxx" "${flags[@]}" "${arguments[@]}" > /dev/null 2> "$work/$name.err"; } 2>&1 ) || {
    echo "compile_cost: $cxx failed on $name:" >&2
    cat "$work/$name.err" >&2
    exit 1
  }
  read -r real user sys <<< "$times"
  wall[$name]+="$real "
  cpu[$name]+="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", u + s }') "
}

# Instructions executed by the compiler proper (cc1plus, the largest count
# among the processes g++ starts), in billions.
instructions() {
  local -a arguments
  read -r -a arguments <<< "${command[$1]}"
  valgrind --tool=cachegrind --cache-sim=no --trace-children=yes --cachegrind-out-file=/dev/null \
    "$cxx" "${flags[@]}" "${arguments[@]}" 2>&1 > /dev/null |
    awk '/I +refs:/ { gsub(",", "", $NF); if ($NF + 0 > most + 0) most = $NF + 0 } END { printf "%.2f", most / 1e9 }'
}

median() {
  tr ' ' '\n' <<< "$1" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "== compile cost: $("$cxx" --version | head -n 1), ${flags[*]//$repo/<repo>}"
echo "== machine: nproc $(nproc), load average $(cut -d ' ' -f 1-3 /proc/loadavg) (start)"
for ((rep = 1; rep <= reps; ++rep)); do
  for name in "${names[@]}"; do measure "$name"; done
done
echo "== machine: load average $(cut -d ' ' -f 1-3 /proc/loadavg) (end); median of $reps runs each"
echo

printf '%-44s %8s %8s\n' "compilation" "wall s" "cpu s"
describe=(
  "include_json|#include <nlohmann/json.hpp>, -fsyntax-only"
  "include_ckpt|#include <ckpt/ckpt.hpp>, -fsyntax-only"
  "include_ckpt_compiled|the same, compiled mode"
  "json_only|json_only.cpp, -O2 -c"
  "save_load|save_load.cpp, -O2 -c"
  "save_load_compiled|save_load.cpp, -O2 -c, compiled mode"
)
for entry in "${describe[@]}"; do
  name=${entry%%|*}
  printf '%-44s %8s %8s\n' "${entry#*|}" "$(median "${wall[$name]}")" "$(median "${cpu[$name]}")"
done
echo

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v value="$1" -v limit="$2" 'BEGIN { print (value <= limit ? "PASS" : "MISS") }'; }

# With valgrind, the include limit is also checked on the compiler's
# instructions, which are the same on every run: on a shared machine the wall
# ratio of these 1-2 s compilations moves by 0.1x between runs minutes apart
# (README, "Compile time"), about as much as the margin it is checked by.
declare -A giga
counted=(include_json include_ckpt include_ckpt_compiled)
if [[ ${INSTRUCTIONS:-0} == 1 ]]; then counted=("${names[@]}"); fi
if command -v valgrind > /dev/null; then
  for name in "${counted[@]}"; do giga[$name]=$(instructions "$name"); done
fi

# Prints the include line: `name` against nlohmann's include.
include_line() {
  local label=$1 name=$2 wall_ratio cpu_ratio
  wall_ratio=$(ratio "$(median "${wall[$name]}")" "$(median "${wall[include_json]}")")
  cpu_ratio=$(ratio "$(median "${cpu[$name]}")" "$(median "${cpu[include_json]}")")
  printf '%-34s%sx wall (%sx cpu), limit 1.5x  %s' "$label" "$wall_ratio" "$cpu_ratio" "$(verdict "$wall_ratio" 1.5)"
  if [[ -n ${giga[$name]:-} ]]; then
    local by_instructions
    by_instructions=$(ratio "${giga[$name]}" "${giga[include_json]}")
    printf '; %sx instructions  %s' "$by_instructions" "$(verdict "$by_instructions" 1.5)"
  fi
  echo
}
include_line "include ckpt / include nlohmann:" include_ckpt
include_line "include, compiled mode:" include_ckpt_compiled

program=$(median "${wall[save_load]}")
printf 'save_load.cpp at -O2:             %s s wall (%sx json_only.cpp), limit 6 s  %s\n' \
  "$program" "$(ratio "$program" "$(median "${wall[json_only]}")")" "$(verdict "$program" 6)"
compiled=$(median "${wall[save_load_compiled]}")
printf 'the same, compiled mode:          %s s wall (%sx json_only.cpp), limit 6 s  %s\n' \
  "$compiled" "$(ratio "$compiled" "$(median "${wall[json_only]}")")" "$(verdict "$compiled" 6)"

if [[ -n ${giga[include_json]:-} ]]; then
  echo
  printf 'instructions (valgrind): include nlohmann %s G, include ckpt %s G, compiled mode %s G\n' \
    "${giga[include_json]}" "${giga[include_ckpt]}" "${giga[include_ckpt_compiled]}"
fi
if [[ -n ${giga[save_load]:-} ]]; then
  printf 'instructions (valgrind): json_only.cpp %s G, save_load.cpp %s G (%sx), compiled mode %s G (%sx)\n' \
    "${giga[json_only]}" "${giga[save_load]}" "$(ratio "${giga[save_load]}" "${giga[json_only]}")" \
    "${giga[save_load_compiled]}" "$(ratio "${giga[save_load_compiled]}" "${giga[json_only]}")"
fi
