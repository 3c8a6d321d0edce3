#!/usr/bin/env bash
# Regenerates docs/figures/train_mlp_run.png, the README's picture of the
# demo's run: builds train_mlp, trains 2000 steps with a checkpoint every 25
# (all kept) into a temporary directory, and runs there the Python block the
# README shows under its "make_readme_figure.sh runs" marker.
#
# usage: bash python/scripts/make_readme_figure.sh [BUILD_DIR]    (default: build/main)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$repo/build/main}
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" --target train_mlp -j "${CKPT_JOBS:-2}" > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/examples/train_mlp/train_mlp" --dir "$work/train_mlp" --steps 2000 --save-every 25 --keep 0 > /dev/null
# The README's block: the lines after the marker, from the opening fence to the closing one.
code=$(sed -n '/make_readme_figure.sh runs the next block/,/^```$/p' "$repo/README.md" | sed '1,2d;$d')
(cd "$work" && PYTHONPATH="$repo/python" /usr/bin/python3 -c "$code")
cp "$work/train_mlp_run.png" "$repo/docs/figures/train_mlp_run.png"
echo "wrote docs/figures/train_mlp_run.png"
