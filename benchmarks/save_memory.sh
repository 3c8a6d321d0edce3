#!/usr/bin/env bash
# Saves at 256 MiB, 1 GiB and 4 GiB of float32 state: peak extra memory
# (resident set) of raw and shuffle+zstd saves, and their speed against the
# raw write+fsync limit through the same atomic protocol, side by side in one
# run (BENCHMARKS.md, "Save memory"). Needs about twice the largest size in
# free memory and on disk.
#
#   bash benchmarks/save_memory.sh [SIZES_MIB]     # default 256,1024,4096
#
# Environment: REPS (default 3; each ratio is the median of per-repetition
# ratios), BUILD_DIR (default build/bench), BENCH_DIR (default BUILD_DIR/data),
# RESULTS_DIR (default benchmarks/results).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sizes=${1:-256,1024,4096}
build=${BUILD_DIR:-$repo/build/bench}
data=${BENCH_DIR:-$build/data}
results=${RESULTS_DIR:-$repo/benchmarks/results}

echo "== building ckpt_save_memory (Release) in $build"
mkdir -p "$build"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCKPT_BUILD_BENCHMARKS=ON -DCKPT_BUILD_TESTS=OFF \
  -DCKPT_BUILD_EXAMPLES=OFF -DCKPT_BUILD_CLI=OFF > "$build/save-memory-configure.log"
cmake --build "$build" --target ckpt_save_memory -j2 > "$build/save-memory-build.log"

rm -rf "$data"
mkdir -p "$data" "$results"
trap 'rm -rf "$data"' EXIT
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg); files in $data"
"$build/benchmarks/ckpt_save_memory" --dir "$data" --sizes-mib "$sizes" --reps "${REPS:-3}" \
  > "$results/save_memory.jsonl" 2> >(tee "$results/save_memory.txt" >&2)
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$results/save_memory.txt"
