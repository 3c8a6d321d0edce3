#!/usr/bin/env bash
# ckpt against the disk, memory and its peers, in one run on the same state
# with the same durability (every save ends with fsync). See BENCHMARKS.md.
#
#   bash benchmarks/compare.sh [SIZES_MIB]     # default 256,1024 (MiB of float32 state)
#   bash benchmarks/compare.sh 256,1024,4096   # adds 4 GiB: about 14 GiB of free memory,
#                                              # 25 GiB of disk and 30+ minutes on a slow disk
#
# Each size runs on its own (the C++ half, then the Python peers) and every
# line of measurements.jsonl names its state_mib; the report groups by size.
# Environment: REPS (default 5; each figure is the median), BUILD_DIR (default
# build/bench in the repository), BENCH_DIR (where files are written; default
# BUILD_DIR/data, so on the repository's file system), RESULTS_DIR (default
# benchmarks/results), PYTHON (default /usr/bin/python3, the Debian python
# with numpy, torch and h5py).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sizes=${1:-256,1024}
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

mkdir -p "$results"
trap 'rm -rf "$data"' EXIT
measurements="$results/measurements.jsonl"
load="$results/load.txt"  # the machine's load around each size, quoted by the report
: > "$measurements"
: > "$load"
for size_mib in ${sizes//,/ }; do
  rm -rf "$data"
  mkdir -p "$data"
  echo "== ${size_mib} MiB state, median of $reps runs, files in $data"
  before=$(cut -d' ' -f1-3 /proc/loadavg)
  start=$(date -u +%H:%M)
  "$build/benchmarks/ckpt_compare" --dir "$data" --size-mib "$size_mib" --reps "$reps" >> "$measurements"
  "$python" "$repo/benchmarks/compare_peers.py" --dir "$data" --state "$data/state-float32-raw.safetensors" \
    --size-mib "$size_mib" --reps "$reps" >> "$measurements"
  echo "$size_mib MiB: $start-$(date -u +%H:%M) UTC, load average $before before, $(cut -d' ' -f1-3 /proc/loadavg) after" \
    | tee -a "$load"
done

filesystem=$(df -T "$data" | awk 'NR == 2 { print $2 }')
echo "== results in $results (results.json, results.csv, chart.png)"
"$python" "$repo/benchmarks/compare_report.py" --input "$measurements" --out "$results" --filesystem "$filesystem" \
  --load "$load" | tee "$results/table.md"
