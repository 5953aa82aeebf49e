#!/usr/bin/env bash
# Runs every Google Benchmark binary (bench/*_bench.cc) with JSON output:
#
#   bench/measure/gbench.sh BUILD_DIR RESULTS_DIR [--quick]
#
# Writes RESULTS_DIR/gbench-NAME.json (--benchmark_format=json) and .log,
# and to run.txt the minimum time used and one gbench_failed line per binary
# that did not run. --quick keeps only the cases the targets read, briefly.
set -euo pipefail
build=$1 results=$2 quick=0
[ "${3:-}" = --quick ] && quick=1
source "$(dirname "$0")/lib.sh"

# Per binary: extra arguments that keep the suite within its time. Google
# Benchmark reruns a benchmark's setup for every trial count it tries, and
# the 1M-name setups of registry_bench take tens of seconds each; search at
# 1M names is covered by search_bench and memory by memory_bench.
declare -A extra=(
  [registry_bench]='--benchmark_filter=-BM_(Locate|Search)/1000000'
)
min_time=0.05
if [ "$quick" -eq 1 ]; then
  min_time=0.01
  extra[registry_bench]='--benchmark_filter=/1000$'
  extra[search_bench]='--benchmark_filter=BM_RegistrySearchPageP99/[35]'
fi
meta gbench_min_time "$min_time"

for source in "$repo"/bench/*_bench.cc; do
  name=$(basename "$source" .cc)
  if ! has "$name"; then meta gbench_failed "$name (not built)"; continue; fi
  log "running $name"
  args=(--benchmark_min_time=$min_time --benchmark_format=json)
  if [ -n "${extra[$name]:-}" ]; then args+=("${extra[$name]}"); fi
  record "$build/bench/$name" "${args[@]}"
  status=0
  timeout 420 "$build/bench/$name" "${args[@]}" \
    > "$results/gbench-$name.json" 2> "$results/gbench-$name.log" || status=$?
  if [ "$status" -ne 0 ]; then
    rm -f "$results/gbench-$name.json"
    meta gbench_failed "$name (exit $status; see gbench-$name.log)"
  fi
done
