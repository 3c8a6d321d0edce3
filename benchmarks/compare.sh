#!/usr/bin/env bash
# ckpt against the disk, memory and its peers, in one run on the same state
# with the same durability (every save ends with fsync). See BENCHMARKS.md.
#
#   bash benchmarks/compare.sh [SIZE_MIB]      # default 256 MiB of float32 state
#
# Environment: REPS (default 5; each figure is the median), BUILD_DIR (default
# build/bench in the repository), BENCH_DIR (where files are written; default
# BUILD_DIR/data, so on the repository's file system), RESULTS_DIR (default
# benchmarks/results), PYTHON (default /usr/bin/python3, the Debian python
# with numpy, torch and h5py).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mib=${1:-256}
reps=${REPS:-5}
build=${BUILD_DIR:-$repo/build/bench}
data=${BENCH_DIR:-$build/data}
results=${RESULTS_DIR:-$repo/benchmarks/results}
python=${PYTHON:-/usr/bin/python3}

echo "== building ckpt_compare (Release) in $build"
mkdir -p "$build"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCKPT_BUILD_BENCHMARKS=ON -DCKPT_BUILD_TESTS=OFF \
  -DCKPT_BUILD_EXAMPLES=OFF -DCKPT_BUILD_CLI=OFF > "$build/compare-configure.log"
cmake --build "$build" --target ckpt_compare -j2 > "$build/compare-build.log"

rm -rf "$data"
mkdir -p "$data" "$results"
trap 'rm -rf "$data"' EXIT
measurements="$results/measurements.jsonl"
echo "== ${size_mib} MiB state, median of $reps runs, files in $data"
"$build/benchmarks/ckpt_compare" --dir "$data" --size-mib "$size_mib" --reps "$reps" > "$measurements"
"$python" "$repo/benchmarks/compare_peers.py" --dir "$data" --state "$data/state-float32-raw.safetensors" \
  --reps "$reps" >> "$measurements"

filesystem=$(df -T "$data" | awk 'NR == 2 { print $2 }')
echo "== results in $results (results.json, results.csv, chart.png)"
"$python" "$repo/benchmarks/compare_report.py" --input "$measurements" --out "$results" --filesystem "$filesystem" \
  | tee "$results/table.md"
