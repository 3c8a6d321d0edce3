#!/usr/bin/env bash
# One rank of a 3-rank save SIGKILLed in each phase of the save: the previous
# checkpoint stays loadable; the directory of the killed save is refused by
# loads until the next save to it cleans it and commits (when the kill came
# after the commit point, the checkpoint is whole). Then a full disk on one
# rank: every rank fails with that rank's IoError and nothing is committed.
# usage: check_mpi_failures.sh MPIEXEC MPI_TOOL WORK_DIR
set -euo pipefail
mpiexec=$1
tool=$2
work=$3
rm -rf "$work"
mkdir -p "$work"

fail() {
  echo "FAIL: $1"
  [ -z "${2:-}" ] || echo "$2"
  exit 1
}
mpi() { "$mpiexec" --oversubscribe -np "$@" 2>&1; }
# mpirun ends the other ranks of a job one of whose ranks died, but they may
# outlive mpirun for a moment: nothing may run beside them.
wait_for_ranks_to_exit() {
  for _ in $(seq 1 600); do
    pgrep -f "^$tool( |$)" >/dev/null || return 0
    sleep 0.05
  done
  fail "ranks of a killed job still run after 30 s"
}
expect_loaded() {  # expect_loaded RANKS DIR STEP
  local output
  output=$(mpi "$1" "$tool" load "$2" "$3") || fail "$1 ranks could not load $2" "$output"
  [ "$(grep -c 'loaded OK' <<<"$output")" = "$1" ] || fail "$1 ranks loading $2" "$output"
}
# The rank files and the index, and nothing else, of a directory.
expect_only_checkpoint_files() {
  local stray
  stray=$(ls -A "$1" | grep -Ev '^model-0000[1-3]-of-0000[1-3]\.safetensors$|^model\.safetensors\.index\.json$' || true)
  [ -z "$stray" ] || fail "$1 holds more than the checkpoint's files" "$stray"
}

mpi 3 "$tool" save "$work/step-1" 1 >/dev/null || fail "the first save failed"

kills=0
for point in 1:describe 1:write 1:rename 1:fsync 1:gather 0:index-write 0:index-rename 0:broadcast; do
  dir="$work/step-2"
  set +e
  output=$(mpi 3 "$tool" save "$dir" 2 --kill "$point")
  status=$?
  set -e
  wait_for_ranks_to_exit
  [ "$status" -ne 0 ] || fail "the save with rank $point killed succeeded" "$output"
  grep -q "rank ${point%%:*} with PID .* exited on signal 9" <<<"$output" ||
    fail "rank ${point%%:*} did not die of SIGKILL at ${point#*:}" "$output"
  kills=$((kills + 1))
  expect_loaded 2 "$work/step-1" 1
  if [ "${point#*:}" = broadcast ]; then
    # Killed after the commit point: the checkpoint is whole.
    expect_loaded 2 "$dir" 2
    expect_only_checkpoint_files "$dir"
  else
    [ ! -e "$dir/model.safetensors.index.json" ] || fail "killed at $point, the save committed"
    output=$(mpi 2 "$tool" load "$dir" 2) && fail "a load accepted the uncommitted $dir" "$output"
    grep -Eq 'error 70[24]:' <<<"$output" || fail "a load of the uncommitted $dir failed otherwise" "$output"
    mpi 3 "$tool" save "$dir" 2 >/dev/null || fail "the save after the kill at $point failed"
    expect_only_checkpoint_files "$dir"
    expect_loaded 2 "$dir" 2
  fi
  echo "ok: killed at $point"
  rm -rf "$dir"
done
[ "$kills" = 8 ] || fail "expected 8 SIGKILLs, counted $kills"

set +e
output=$(mpi 3 "$tool" save "$work/full" 2 --full-disk 1)
status=$?
set -e
[ "$status" -eq 3 ] || fail "the save with a full disk on rank 1 exited $status" "$output"
[ "$(grep -c 'error 103: .*rank 1 of 3: the disk is full' <<<"$output")" = 3 ] ||
  fail "not every rank reported rank 1's full disk" "$output"
[ ! -e "$work/full/model.safetensors.index.json" ] || fail "the save with a full disk committed"
[ -z "$(ls -A "$work/full")" ] || fail "the failed save left files" "$(ls -A "$work/full")"
expect_loaded 3 "$work/step-1" 1
echo "ok: a full disk on rank 1 failed the save on every rank with IoError 103 and committed nothing"
rm -rf "$work"
