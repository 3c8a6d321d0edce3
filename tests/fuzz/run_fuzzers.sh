#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer + UndefinedBehaviorSanitizer)
# in a build tree of their own and runs each for a bounded time on its seed corpus.
#
#   tests/fuzz/run_fuzzers.sh [SECONDS_PER_TARGET] [BUILD_DIR]   fuzz (default 60 s each)
#   tests/fuzz/run_fuzzers.sh --write-corpus [BUILD_DIR]         regenerate tests/fuzz/corpus/
#   tests/fuzz/run_fuzzers.sh --configure [BUILD_DIR]            only configure BUILD_DIR, whose
#                                   target ckpt_fuzzers builds every fuzzer (.ci/test builds it
#                                   with its other trees, then runs this script to fuzz)
#
# New inputs go to BUILD_DIR/fuzz-work/, never into the repository. A crash
# leaves its input in BUILD_DIR/fuzz-artifacts/<target>/ and makes the script
# exit 1: add the input to tests/fuzz/regressions/<target>/, where
# reliability_tests replays it in every build, then fix the bug.
set -euo pipefail

source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fuzz_dir=$source_dir/tests/fuzz
mode=fuzz
case ${1:-} in
  --write-corpus) mode=write-corpus; shift ;;
  --configure) mode=configure; shift ;;
  *) seconds=${1:-60}; shift || true ;;
esac
build=${1:-$source_dir/build-fuzz}
cxx=${CKPT_FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}
if [ -z "$cxx" ]; then
  echo "run_fuzzers.sh: clang++ not found (Debian: apt-get install -y clang)" >&2
  exit 2
fi

# Only what the fuzzers need: no other tests, programs or optional adapters.
# Line tables are all a crash report's stack needs, and compile faster than
# full debug information.
cmake -S "$source_dir" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -gline-tables-only -DNDEBUG" \
  -DCKPT_BUILD_FUZZERS=ON -DCKPT_TEST_LABELS=reliability -DCKPT_BUILD_EXAMPLES=OFF \
  -DCKPT_BUILD_BENCHMARKS=OFF -DCKPT_BUILD_CLI=OFF -DCKPT_INSTALL=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DCMAKE_DISABLE_FIND_PACKAGE_HDF5=ON >/dev/null

if [ $mode = configure ]; then
  exit 0
fi
if [ $mode = write-corpus ]; then
  cmake --build "$build" --target ckpt_fuzz_corpus -j2
  rm -rf "$fuzz_dir/corpus"
  "$build/tests/ckpt_fuzz_corpus" "$fuzz_dir/corpus"
  find "$fuzz_dir/corpus" -type f | sed "s|$fuzz_dir/||" | sort
  exit 0
fi

targets=(reader safetensors cli_arguments)
build_targets=$(cmake --build "$build" --target help)
if grep -q 'npz_fuzzer' <<<"$build_targets"; then
  targets+=(npz)
else
  echo "run_fuzzers.sh: ckpt::npz (libzip) not found, the npz target is not built" >&2
fi
cmake --build "$build" -j2 --target ckpt_fuzzers

# fuzz TARGET: runs one target; its verdict goes to BUILD_DIR/fuzz-work/TARGET.verdict.
fuzz() {
  local target=$1 work=$build/fuzz-work/$1 artifacts=$build/fuzz-artifacts/$1 dictionary=()
  local log=$build/fuzz-work/$1.log verdict=$build/fuzz-work/$1.verdict runs
  mkdir -p "$work" "$artifacts"
  case $target in
    reader|safetensors) dictionary=(-dict="$fuzz_dir/safetensors.dict") ;;  # both parse safetensors headers
  esac
  # Limits make a runaway allocation or a hang a reported crash, not a stuck CI job.
  # A fixed seed (CKPT_FUZZ_SEED picks another) makes a run's mutations replayable.
  if "$build/tests/${target}_fuzzer" -seed="${CKPT_FUZZ_SEED:-20261130}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -print_final_stats=1 -artifact_prefix="$artifacts/" "${dictionary[@]}" \
      "$work" "$fuzz_dir/corpus/$target" >"$log" 2>&1; then
    runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "[fuzz] $target: ${runs:-?} inputs in ${seconds} s, no crash" >"$verdict"
  else
    { echo "[fuzz] $target: FAILED; input in $artifacts/, log $log:"
      grep -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | head -20 || true; } >"$verdict"
  fi
}

# The targets run side by side, one per core (CKPT_JOBS, default 2): each is
# one process, and the time per target is fixed.
mkdir -p "$build/fuzz-work"
for target in "${targets[@]}"; do
  rm -f "$build/fuzz-work/$target.verdict"
  while (($(jobs -rp | wc -l) >= ${CKPT_JOBS:-2})); do wait -n || true; done
  fuzz "$target" &
done
wait

failed=()
for target in "${targets[@]}"; do
  verdict=$build/fuzz-work/$target.verdict
  if grep -q 'no crash$' "$verdict" 2>/dev/null; then
    cat "$verdict"
  else
    cat "$verdict" >&2 2>/dev/null || echo "[fuzz] $target: FAILED without a verdict" >&2
    failed+=("$target")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "run_fuzzers.sh: crashes in: ${failed[*]}" >&2; exit 1; }
