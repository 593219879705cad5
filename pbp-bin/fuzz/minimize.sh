#!/usr/bin/env bash
# Shrinks a fuzz target's corpus to what is worth keeping in the repository, after a fuzzing run:
# the seeds (files named seed-*, whatever their size) and, among the other inputs of at most MAX_BYTES
# (default 6144), a smallest-first set that reaches every edge they reach (libFuzzer's merge with hit counts
# ignored). Inputs that crashed a target once are kept by name (regression-*), like the seeds.
#
#   bash pbp-bin/fuzz/minimize.sh TARGET [MAX_BYTES] [cargo fuzz options, e.g. --target-dir DIR]
#
# Run from the repository root, with the nightly toolchain and cargo-fuzz installed.
set -euo pipefail
target=$1
max=${2:-6144}
shift $(( $# >= 2 ? 2 : 1 ))
corpus=pbp-bin/fuzz/corpus/$target
[ -d "$corpus" ] || { echo "no corpus at $corpus" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/inputs"
find "$corpus" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regression-*' -size "-$((max + 1))c" \
  -exec cp {} "$work/inputs/" \;
cargo +nightly fuzz cmin -O -a --fuzz-dir pbp-bin/fuzz "$@" "$target" "$work/inputs" -- -use_counters=0
find "$corpus" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'regression-*' \) -exec cp {} "$work/inputs/" \;
find "$corpus" -maxdepth 1 -type f -delete
cp "$work/inputs/"* "$corpus/"
echo "$target: $(find "$corpus" -type f | wc -l) files, $(du -sh --apparent-size "$corpus" | cut -f1)"
