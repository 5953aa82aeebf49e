#!/usr/bin/env bash
# Runs clang-tidy with the repository's .clang-tidy (warnings are errors)
# over the sources of a configured build tree, in parallel.
#   scripts/tidy.sh BUILD_DIR [--all]
# BUILD_DIR must hold compile_commands.json (every configure writes one);
# the test suite passes its clang tree. By default it checks core/, daemon/
# and peerctl/ (the library and the binaries, and through them every header
# they include); --all adds tests/ and bench/, about twice the time (see
# docs/TESTING.md for both timings).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/tidy.sh BUILD_DIR [--all]}
folders='core|daemon|peerctl'
if [ "${2:-}" = "--all" ]; then folders='core|daemon|peerctl|tests|bench'; fi
if [ ! -f "$dir/compile_commands.json" ]; then
  echo "tidy: $dir/compile_commands.json missing; configure $dir first" >&2
  exit 1
fi
# run-clang-tidy matches the regex against the absolute paths of the
# compile database; it exits non-zero if any file has a finding.
run-clang-tidy -quiet -j "$(nproc)" -p "$dir" \
  "^$(pwd)/($folders)/.*\.cc$" >"$dir/tidy.log" 2>&1 || {
  sed 's/\x1b\[[0-9;]*m//g' "$dir/tidy.log" | grep -E 'error:|warning:' -A3 |
    head -n 200
  echo "tidy: findings above (whole output in $dir/tidy.log)" >&2
  exit 1
}
echo "tidy: clean ($folders)"
