#!/usr/bin/env bash
# Saved by 1 to 4 ranks, loaded by 1 to 4 ranks under another split (rows <->
# columns, 2-D blocks <-> flat ZeRO ranges, uneven, replicated, mixed), every
# byte compared; each saved directory read by a numpy-only Python reader that
# follows Hugging Face's convention; then an encoded, asynchronous save.
# usage: check_mpi_reshard.sh MPIEXEC MPI_TOOL WORK_DIR
set -euo pipefail
mpiexec=$1
tool=$2
work=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rm -rf "$work"
mkdir -p "$work"

run() {  # run RANKS ARGS...: the tool on RANKS ranks; its output, or FAIL with it
  local ranks=$1 output
  shift
  if ! output=$("$mpiexec" --oversubscribe -np "$ranks" "$tool" "$@" 2>&1); then
    echo "FAIL: $ranks ranks: $*"
    echo "$output"
    exit 1
  fi
  echo "$output"
}
expect_loaded() {  # expect_loaded RANKS DIR STEP
  local output
  output=$(run "$1" load "$2" "$3")
  if [ "$(grep -c 'loaded OK' <<<"$output")" != "$1" ]; then
    echo "FAIL: $1 ranks loading $2"
    echo "$output"
    exit 1
  fi
}

for saving in 1 2 3 4; do
  dir="$work/saved-by-$saving"
  run "$saving" save "$dir" $((100 + saving)) >/dev/null
  /usr/bin/python3 "$here/check_index.py" "$dir"
  for loading in 1 2 3 4; do
    expect_loaded "$loading" "$dir" $((100 + saving))
  done
  echo "ok: saved by $saving ranks, loaded byte for byte by 1, 2, 3 and 4 ranks"
done

run 3 save "$work/zstd-async" 7 --codec shuffle+zstd --async >/dev/null
for loading in 1 2 4; do
  expect_loaded "$loading" "$work/zstd-async" 7
done
echo "ok: an asynchronous shuffle+zstd save by 3 ranks, loaded by 1, 2 and 4 ranks"
rm -rf "$work"
