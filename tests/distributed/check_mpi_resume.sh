#!/usr/bin/env bash
# The MPI demo resumes bit-exactly across world sizes: a run of 4 ranks to
# step 300 in one go; 4 ranks to 137 (async) continued by 3 ranks to 300
# (zstd); and a run of 4 ranks SIGKILLed at a random moment, resumed by 3
# ranks with async saves SIGKILLed at a random moment, resumed by 2 ranks to
# the end: all print the same final weight hash. The kills hit one rank (mpirun then ends the
# others, and the next run waits until they are gone) after the run's first
# committed save; the moments are seeded.
# usage: check_mpi_resume.sh MPIEXEC TRAIN_MLP_MPI WORK_DIR [SEED]
set -euo pipefail
mpiexec=$1
train=$2
work=$3
RANDOM=${4:-2024}
rm -rf "$work"
mkdir -p "$work"

# shellcheck source=mpi_job.sh
source "$(dirname "$0")/mpi_job.sh"
run() {  # run RANKS DIR STEPS [flags...]
  local ranks=$1 dir=$2 steps=$3
  shift 3
  "$mpiexec" --oversubscribe -np "$ranks" "$train" --dir "$dir" --steps "$steps" --save-every 10 "$@"
}
final_hash() { sed -n 's/^final step=300 weights_xxh3=\([0-9a-f]*\)$/\1/p' "$1"; }
expect_same() {  # expect_same WHAT LOG
  local hash
  hash=$(final_hash "$2")
  [ "$hash" = "$reference" ] || fail "$1 ended with weights_xxh3='$hash', 4 ranks in one go with '$reference'" "$2"
  echo "ok: $1 -> $hash"
}

started_ns=$(date +%s%N)
run 4 "$work/one-go" 300 >"$work/one-go.log" 2>&1 || fail "the uninterrupted run failed" "$work/one-go.log"
run_ms=$((($(date +%s%N) - started_ns) / 1000000))
reference=$(final_hash "$work/one-go.log")
[ -n "$reference" ] || fail "the uninterrupted run printed no final line" "$work/one-go.log"
echo "ok: 4 ranks in one go -> $reference ($run_ms ms)"

run 4 "$work/split" 137 --async >"$work/split-1.log" 2>&1 || fail "4 ranks to 137 failed" "$work/split-1.log"
run 3 "$work/split" 300 --codec zstd >"$work/split-2.log" 2>&1 || fail "3 ranks to 300 failed" "$work/split-2.log"
grep -q '^resumed from step 137 (step-00000137) with 3 ranks$' "$work/split-2.log" || fail "no resume from 137" "$work/split-2.log"
expect_same "4 ranks to 137 (async), then 3 ranks to 300 (zstd)" "$work/split-2.log"

# Runs RANKS ranks on $dir toward step 300 and SIGKILLs one of them (a
# child of mpirun) at a random moment after the run's first save: the kill
# waits for the first "saved step" line, then a random 0-49 ms. A kill that
# comes too late (the run finished) is retried from the same starting point.
# Timing from the start would depend on the machine's load; the log does not.
kills=0
kill_at_random() {  # kill_at_random RANKS [flags...]
  local ranks=$1 log="$work/killed-$1.log" pid delay_ms victims victim
  shift
  rm -rf "$dir.before"
  cp -a "$dir" "$dir.before"
  for attempt in $(seq 1 40); do
    delay_ms=$((RANDOM % 50))
    "$mpiexec" --oversubscribe -np "$ranks" "$train" --dir "$dir" --steps 300 --save-every 10 "$@" >"$log" 2>&1 &
    pid=$!
    until grep -q '^saved step' "$log" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
    sleep "0.0$(printf '%02d' "$delay_ms")"
    mapfile -t victims < <(pgrep -P "$pid" || true)
    if [ "${#victims[@]}" -gt 0 ]; then
      victim=${victims[$((RANDOM % ${#victims[@]}))]}
      kill -9 "$victim" 2>/dev/null || true
    fi
    wait "$pid" || true
    wait_for_ranks_to_exit "$train"
    if grep -q '^final step=300' "$log"; then
      :  # finished before the kill landed: try again
    elif ! grep -q '^saved step' "$log"; then
      fail "$ranks ranks ended before their first save" "$log"
    elif grep -q 'exited on signal 9' "$log"; then
      kills=$((kills + 1))
      echo "ok: $ranks ranks SIGKILLed $delay_ms ms after their first save: $(grep -c '^saved step' "$log") saves, then killed"
      return 0
    else
      fail "$ranks ranks ended without finishing and without a SIGKILL" "$log"
    fi
    rm -rf "$dir"
    cp -a "$dir.before" "$dir"
  done
  fail "could not SIGKILL a run of $ranks ranks between its first save and its end" "$log"
}

dir="$work/killed"
mkdir -p "$dir"
kill_at_random 4
kill_at_random 3 --async
grep -Eq '^resumed from step [0-9]+ \(step-[0-9]{8}\) with 3 ranks$' "$work/killed-3.log" ||
  fail "the 3-rank run did not resume" "$work/killed-3.log"
run 2 "$dir" 300 >"$work/killed-2.log" 2>&1 || fail "the 2-rank run failed" "$work/killed-2.log"
grep -Eq '^resumed from step [0-9]+ \(step-[0-9]{8}\) with 2 ranks$' "$work/killed-2.log" ||
  fail "the 2-rank run did not resume" "$work/killed-2.log"
[ "$kills" = 2 ] || fail "expected 2 SIGKILLs, counted $kills"
expect_same "4 ranks SIGKILLed, resumed by 3 ranks SIGKILLed, resumed by 2 ranks" "$work/killed-2.log"
rm -rf "$work"
