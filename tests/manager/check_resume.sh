#!/usr/bin/env bash
# Bit-exact resume of the train_mlp demo: a run to step 300 in one go, a run
# to 137 continued to 300, and runs SIGKILLed at random moments and restarted
# until they finish (full and incremental saves) must all print the same
# final weight hash.
# usage: check_resume.sh TRAIN_MLP WORK_DIR
set -euo pipefail
train=$1
work=$2
rm -rf "$work"
mkdir -p "$work"

final_hash() { sed -n 's/^final step=300 weights_xxh3=\([0-9a-f]*\)$/\1/p'; }
train_to() {  # train_to STEPS DIR [flags...]
  local steps=$1 dir=$2
  shift 2
  "$train" --dir "$dir" --steps "$steps" --save-every 10 --keep 2 "$@"
}
expect_same() {  # expect_same WHAT HASH
  if [ "$2" != "$reference" ]; then
    echo "FAIL: $1 ended with weights_xxh3='$2', the uninterrupted run with '$reference'"
    exit 1
  fi
  echo "ok: $1 -> $2"
}

# The delays come from bash's RANDOM, seeded so that a failure replays
# (CKPT_RESUME_SEED=<seed>; where each kill lands still depends on the machine).
seed=${CKPT_RESUME_SEED:-20261130}
RANDOM=$seed
echo "seed $seed (CKPT_RESUME_SEED replays the delays)"

# The newest checkpoint step in a run directory, or nothing.
newest_step() { { ls "$1" 2>/dev/null || true; } | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.safetensors$/\1/p' | sort -n | tail -n 1; }

started_ns=$(date +%s%N)
reference=$(train_to 300 "$work/one-go" | final_hash)
[ -n "$reference" ] || { echo "FAIL: the uninterrupted run printed no final line"; exit 1; }
# How long a whole run takes here, so that the kills below land inside runs
# on a fast machine as on a slow one.
run_ms=$(( ($(date +%s%N) - started_ns) / 1000000 ))

train_to 137 "$work/split" --codec zstd > /dev/null
expect_same "run to 137, then to 300 (zstd)" "$(train_to 300 "$work/split" --codec zstd | final_hash)"
train_to 137 "$work/split-incremental" --incremental > /dev/null
expect_same "run to 137, then to 300 (incremental)" \
  "$(train_to 300 "$work/split-incremental" --incremental | final_hash)"

# Killed at random moments (mid-step, mid-save, mid-rotation), restarted until it finishes.
# Incremental saves: a kill may land in a save that references its parent or
# in a rotation that keeps the files a kept checkpoint references.
for variant in "raw" "shuffle+zstd --async" "raw --incremental"; do
  dir="$work/killed-${variant// /_}"
  kills=0
  max_delay_ms=$(( run_ms > 20 ? run_ms / 2 : 10 ))
  for attempt in $(seq 1 200); do
    delay_ms=$(( RANDOM % max_delay_ms + 1 ))
    delay=$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))
    newest=$(newest_step "$dir")
    status=0
    output=$(timeout -s KILL "$delay" "$train" --dir "$dir" --steps 300 --save-every 10 --keep 2 --codec $variant) ||
      status=$?
    if [ "$status" -eq 0 ]; then
      # A run that finished after kills must say it resumed from the newest
      # checkpoint the killed runs left (its output is the only one complete:
      # a killed run's buffered output is lost with it).
      if [ -n "$newest" ] && ! grep -qx "resumed from step $newest (ckpt-0*$newest.safetensors)" <<< "$output"; then
        echo "FAIL: the run after the kills did not resume from step $newest; it printed:"
        echo "$output"
        exit 1
      fi
      if [ "$kills" -gt 0 ]; then break; fi
      # It finished before any kill: start over, aiming earlier.
      rm -rf "$dir"
      max_delay_ms=$(( max_delay_ms > 2 ? max_delay_ms / 2 : 2 ))
      continue
    fi
    # timeout reports a run it killed with SIGKILL as 128 + 9; anything else
    # is the program failing by itself, which no kill explains.
    if [ "$status" -ne 137 ]; then
      echo "FAIL: the $variant run exited with status $status, not by the SIGKILL; it printed:"
      echo "$output"
      exit 1
    fi
    kills=$((kills + 1))
  done
  [ "$kills" -gt 0 ] || { echo "FAIL: the $variant run was never killed; the test tested nothing"; exit 1; }
  [ -n "$newest" ] || { echo "FAIL: no $variant run was killed after a commit; no resume was tested"; exit 1; }
  expect_same "$variant, SIGKILLed $kills times and restarted (resumed from step $newest)" \
    "$(echo "$output" | final_hash)"
done
rm -rf "$work"
