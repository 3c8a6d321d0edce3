#!/usr/bin/env bash
# The "Distributed" figures of BENCHMARKS.md: N ranks saving against N raw
# writers, and loads with another number of ranks against raw reads.
# usage: bash benchmarks/distributed.sh [MIB] [REPS]   (from a build tree's parent: BUILD=build/dev by default)
set -euo pipefail
mib=${1:-512}
reps=${2:-7}
build=${BUILD:-build/dev}
bench=$build/benchmarks/distributed_bench
data=${BENCH_DIR:-$build/bench-distributed}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$data"
echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
mpirun --oversubscribe -np 2 "$bench" save "$data" "$mib" "$reps"
mpirun --oversubscribe -np 1 "$bench" load "$data" "$reps"
mpirun --oversubscribe -np 3 "$bench" load "$data" "$reps"
mpirun --oversubscribe -np 4 "$bench" save "$data" "$mib" "$reps"
mpirun --oversubscribe -np 2 "$bench" load "$data" "$reps"
echo "== load average $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$data"
