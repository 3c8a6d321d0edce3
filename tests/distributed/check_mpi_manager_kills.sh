#!/usr/bin/env bash
# The MPI demo under DistributedCheckpointManager. First, SIGUSR1 sent to
# one rank must make every rank save at one same step and stop. Then the demo
# is killed and resumed again and again: KILLS times (default 50), a run of 2
# to 4 ranks (synchronous or --async, keeping 2 steps) is SIGKILLed at a
# random moment after its first committed save: one rank (mpirun then ends
# the others) or every rank of the job at once, so that kills land in saves,
# rotations and async commits. After each kill, `ckpt ls` must list only
# readable committed steps, the newest at least the newest the killed run
# reported committed; the next run, with another random number of ranks, must
# resume from exactly the newest listed step. A last run of 3 ranks finishes,
# and its final weights must equal those of a run that never stopped: every
# resume loaded bit-exactly. A run that finishes before its kill lands (a
# fast machine) is retried from the same starting point, killed at its first
# save. The choices and delays come from SEED.
# usage: check_mpi_manager_kills.sh MPIEXEC TRAIN_MLP_MPI CKPT WORK_DIR [KILLS] [SEED]
set -euo pipefail
mpiexec=$1
train=$2
ckpt=$3
work=$4
kills_wanted=${5:-50}
RANDOM=${6:-1414}
steps=1000
rm -rf "$work"
mkdir -p "$work"

# shellcheck source=mpi_job.sh
source "$(dirname "$0")/mpi_job.sh"
final_hash() { sed -n "s/^final step=$steps weights_xxh3=\([0-9a-f]*\)\$/\1/p" "$1"; }
train_args=(--steps "$steps" --save-every 5 --keep 2)

"$mpiexec" --oversubscribe -np 2 "$train" --dir "$work/one-go" "${train_args[@]}" >"$work/one-go.log" 2>&1 ||
  fail "the uninterrupted run failed" "$work/one-go.log"
reference=$(final_hash "$work/one-go.log")
[ -n "$reference" ] || fail "the uninterrupted run printed no final line" "$work/one-go.log"
echo "ok: 2 ranks in one go -> $reference"


# The steps `ckpt ls` lists in $dir, one per line; fails unless each is "ok".
listed_steps() {
  local listing="$work/listing.json"
  "$ckpt" ls "$dir" --template 'step-{step:08}' --json >"$listing" 2>/dev/null || fail "ckpt ls failed" "$listing"
  if grep '"status"' "$listing" | grep -qv '"status": "ok"'; then fail "ckpt ls lists a step that is not ok" "$listing"; fi
  sed -n 's/^ *"step": \([0-9]*\),$/\1/p' "$listing"
}

# Preemption: SIGUSR1 to one rank of 3 (async saves) makes every rank save at
# the same step and stop; 2 ranks resume from that step and finish as if
# nothing had happened.
dir="$work/preempted"
log="$work/preempted.log"
"$mpiexec" --oversubscribe -np 3 "$train" --dir "$dir" "${train_args[@]}" --async >"$log" 2>&1 &
pid=$!
until grep -q '^saved step' "$log" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
mapfile -t ranks_of_job < <(pgrep -P "$pid" || true)
[ "${#ranks_of_job[@]}" = 3 ] || fail "expected 3 ranks under mpirun, found ${#ranks_of_job[@]}" "$log"
kill -USR1 "${ranks_of_job[$((RANDOM % 3))]}"
wait "$pid" || fail "the preempted run failed" "$log"
stopped=$(sed -n 's/^final step=\([0-9]*\) .*$/\1/p' "$log")
[ -n "$stopped" ] && [ "$stopped" -lt "$steps" ] || fail "the preempted run did not stop early" "$log"
[ "$(sed -n 's/^saved step \([0-9]*\)$/\1/p' "$log" | tail -n 1)" = "$stopped" ] ||
  fail "the preempted run did not save the step it stopped at ($stopped)" "$log"
log="$work/after-preemption.log"
"$mpiexec" --oversubscribe -np 2 "$train" --dir "$dir" "${train_args[@]}" >"$log" 2>&1 ||
  fail "the run after the preemption failed" "$log"
grep -q "^resumed from step $stopped (step-$(printf '%08d' "$stopped")) with 2 ranks\$" "$log" ||
  fail "the run after the preemption did not resume from step $stopped" "$log"
[ "$(final_hash "$log")" = "$reference" ] || fail "the run after the preemption ended with other weights" "$log"
echo "ok: SIGUSR1 to one of 3 ranks: every rank saved step $stopped and stopped; 2 ranks resumed -> $reference"

dir="$work/killed"
mkdir -p "$dir"
expected_resume=""
retrying=""
kills=0
whole_job_kills=0
attempts=0
while [ "$kills" -lt "$kills_wanted" ]; do
  attempts=$((attempts + 1))
  [ "$attempts" -le $((kills_wanted * 3)) ] || fail "only $kills of $kills_wanted kills landed in $attempts runs"
  ranks=$((2 + RANDOM % 3))
  mode=()
  [ $((RANDOM % 2)) = 0 ] || mode=(--async)
  whole=$((RANDOM % 2))
  delay_ms=$((RANDOM % 60))
  [ -z "$retrying" ] || delay_ms=0
  log="$work/run-$attempts.log"
  rm -rf "$dir.before"
  cp -a "$dir" "$dir.before"
  "$mpiexec" --oversubscribe -np "$ranks" "$train" --dir "$dir" "${train_args[@]}" "${mode[@]}" >"$log" 2>&1 &
  pid=$!
  until grep -q '^saved step' "$log" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
  sleep "0.0$(printf '%02d' "$delay_ms")"
  mapfile -t victims < <(pgrep -P "$pid" || true)
  if [ "${#victims[@]}" -gt 0 ]; then
    if [ "$whole" = 1 ]; then
      kill -9 "${victims[@]}" 2>/dev/null || true
    else
      kill -9 "${victims[$((RANDOM % ${#victims[@]}))]}" 2>/dev/null || true
    fi
  fi
  wait "$pid" || true
  wait_for_ranks_to_exit "$train"
  if [ -n "$expected_resume" ]; then
    grep -q "^resumed from step $expected_resume (step-$(printf '%08d' "$expected_resume")) with $ranks ranks\$" "$log" ||
      fail "run $attempts did not resume from step $expected_resume, the newest listed" "$log"
  fi
  grep -q '^saved step' "$log" || fail "run $attempts ended before its first save" "$log"
  if grep -q "^final step=$steps" "$log"; then
    # Finished before the kill landed (a fast machine): again from the same
    # starting point, killed at the first save.
    [ -z "$retrying" ] || fail "run $attempts finished before a kill at its first save: raise the steps" "$log"
    retrying=1
    rm -rf "$dir"
    cp -a "$dir.before" "$dir"
    continue
  fi
  retrying=""
  grep -q 'signal 9' "$log" || fail "run $attempts ended without finishing and without a SIGKILL" "$log"
  kills=$((kills + 1))
  [ "$whole" = 1 ] && whole_job_kills=$((whole_job_kills + 1))
  reported=$(sed -n 's/^saved step \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  expected_resume=$(listed_steps | sort -n | tail -n 1)
  [ -n "$expected_resume" ] || fail "nothing listed after run $attempts reported step $reported committed" "$log"
  [ "$expected_resume" -ge "$reported" ] ||
    fail "after run $attempts reported step $reported committed, the newest listed is $expected_resume" "$log"
  echo "ok: kill $kills: $ranks ranks ${mode[*]:-sync}, $([ "$whole" = 1 ] && echo 'the whole job' || echo 'one rank') SIGKILLed $delay_ms ms after the first save; step $reported reported, $expected_resume listed"
done
[ "$whole_job_kills" -gt 0 ] && [ "$whole_job_kills" -lt "$kills" ] ||
  fail "expected kills of one rank and of whole jobs, counted $whole_job_kills whole-job kills of $kills"

log="$work/final.log"
"$mpiexec" --oversubscribe -np 3 "$train" --dir "$dir" "${train_args[@]}" >"$log" 2>&1 || fail "the last run failed" "$log"
grep -q "^resumed from step $expected_resume (step-$(printf '%08d' "$expected_resume")) with 3 ranks\$" "$log" ||
  fail "the last run did not resume from step $expected_resume" "$log"
hash=$(final_hash "$log")
[ "$hash" = "$reference" ] || fail "after $kills kills the final weights_xxh3 is '$hash', in one go '$reference'" "$log"
echo "ok: $kills kills ($whole_job_kills of the whole job), resumed each time with 2 to 4 ranks -> $hash"
rm -rf "$work"
