#!/usr/bin/env bash
# Builds every libFuzzer target of tests/fuzz with clang (ASan + UBSan) and
# runs each for SECONDS (default 30) on its checked-in seeds.
#   scripts/fuzz.sh [SECONDS]
# The tree is build-fuzz/ (FUZZ_BUILD_DIR overrides). New inputs the fuzzer
# finds go to build-fuzz/corpus/<target>/, never into the checked-in seeds in
# tests/fuzz/corpus/<target>/; a crash leaves its input in
# build-fuzz/artifacts/<target>/ and fails the script. Line tables only
# (-g1): a crash's stack still names file and line. docs/TESTING.md says
# how to run longer and what to do with a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
targets=(protocol_fuzz handler_fuzz http_fuzz credentials_fuzz journal_fuzz)

CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPCFS_LINE_TABLES_ONLY=ON -DPCFS_FUZZ=ON \
  -DPCFS_SANITIZE=address,undefined -DPCFS_BUILD_BENCH=OFF \
  -DBUILD_TESTING=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" --target fuzz_targets

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
  corpus=$dir/corpus/$t
  artifacts=$dir/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzz $t for ${seconds}s"
  # -timeout: an input that takes 10 s is a hang worth reporting.
  if ! "$dir/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      "$corpus" "tests/fuzz/corpus/$t" >"$dir/$t.log" 2>&1; then
    tail -n 60 "$dir/$t.log"
    echo "fuzz: $t failed; its input is in $artifacts/" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' \
    "$dir/$t.log" | sed 's/^/  /'
done
echo "== fuzz: no crash in ${#targets[@]} targets"
