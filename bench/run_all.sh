#!/usr/bin/env bash
# The whole benchmark suite, in one command: it measures, keeps the raw
# outputs in a result folder, then has bench/report/write_report.py write
# docs/PERFORMANCE.md and its charts (docs/performance/*.png) from them:
#
#   bench/run_all.sh [--soak] [--install-nginx] [--quick] [--build-dir DIR]
#                    [--only PARTS] [--out DIR] [--output FILE]
#                    [--soak-peers N] [--soak-seconds S]
#
# Parts, in order (all by default):
#   build     configure a Release tree (build-bench) if there is none, then
#             build each target the suite runs (ninja -j2); a target that
#             fails to build is reported and its benchmark skipped
#   gbench    every Google Benchmark binary (bench/measure/gbench.sh)
#   peerload  peerconnectd under peerload against a raw UDP echo, epoll vs
#             io_uring, 1 vs 2 reactors, 3 rounds of 5 s a scenario
#             (bench/measure/peerload.sh)
#   split     where a datagram's CPU time goes: the capped one-reactor pair
#             of heartbeats and of gets with perf sampling both servers,
#             3 rounds (bench/measure/cost_split.sh; needs perf, Debian's
#             linux-perf, and root); for information, not a target
#   commit    group commit: a pub/unp storm against heartbeats, one reactor
#             (bench/measure/group_commit.sh)
#   cluster   one daemon with --redis against the same daemon standalone,
#             and how fast a pub through one of three daemons is found
#             through the others (bench/measure/cluster.sh; needs
#             redis-server)
#   soak      only with --soak (about 5 minutes more): 100,000 peers
#             heartbeating for 60 s, once per backend (bench/measure/soak.sh)
#   transfer  bench/transfer.sh: a 1 GiB download against a raw loopback copy
#             and nginx+curl (nginx only if installed, or with
#             --install-nginx)
#   doc       bench/report/write_report.py: the document from the folder
#
# Without --soak the suite takes about 12 minutes on the project's 2-core
# machine once the build tree is up to date. --quick runs every part briefly
# (the targets' micro-benchmarks only, one 1 s round a scenario, a 64 MiB
# transfer twice, a soak of 2,000 peers for 5 s) to check the pipeline end
# to end in a few minutes; its figures decide nothing. With --quick or
# --only (e.g. --only gbench,doc) the document goes to the result folder
# unless --output says where, so that such a run never replaces
# docs/PERFORMANCE.md. The result folder is BUILD_DIR/bench-results/<UTC
# time>/ unless --out DIR; `bench/report/write_report.py DIR` rewrites the
# document from it at any time. --soak-peers and --soak-seconds (100000 and
# 60) shrink the soak.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build-bench"
soak=0 install_nginx=0 quick=0 only="" output="" results=""
soak_peers=100000 soak_seconds=60
while [ $# -gt 0 ]; do
  case "$1" in
    --soak) soak=1 ;;
    --install-nginx) install_nginx=1 ;;
    --quick) quick=1 ;;
    --build-dir) build=$(realpath -m "$2"); shift ;;
    --only) only=$2; shift ;;
    --out) results=$(realpath -m "$2"); shift ;;
    --output) output=$(realpath -m "$2"); shift ;;
    --soak-peers) soak_peers=$2; shift ;;
    --soak-seconds) soak_seconds=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_all.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
parts=${only:-build,gbench,peerload,split,commit,cluster,soak,transfer,doc}
wants() { [[ ",$parts," == *",$1,"* ]]; }
if [ "$quick" -eq 1 ]; then
  soak_peers=2000 soak_seconds=5
fi
[ -n "$results" ] || results="$build/bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
if [ -z "$output" ]; then
  output="$repo/docs/PERFORMANCE.md"
  if [ -n "$only" ] || [ "$quick" -eq 1 ]; then output="$results/PERFORMANCE.md"; fi
fi
if [ -e "$results/run.txt" ]; then
  echo "run_all.sh: $results already holds a run; to rewrite its document:" \
       "bench/report/write_report.py $results --output FILE" >&2
  exit 2
fi
mkdir -p "$results"
: > "$results/commands.txt"
: > "$results/run.txt"
suite_start=$SECONDS
source "$repo/bench/measure/lib.sh"

# ---- the machine and the run's settings

meta parts "$parts"
meta quick "$quick"
meta results_dir "${results#$repo/}"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta cpu_model "$(grep -m1 '^model name' /proc/cpuinfo | sed 's/.*: //')"
meta cpu_count "$(nproc)"
meta mem_total "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
meta kernel "$(uname -sr)"
meta os "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" || echo unknown)"
meta compiler "$(c++ --version 2>/dev/null | head -1 || echo unknown)"
meta run_date "$(date -u '+%Y-%m-%d %H:%M UTC')"
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit (with uncommitted changes)"
fi
meta commit "$commit"

# ---- build

build_seconds=0
if wants build; then
  if [ ! -f "$build/build.ninja" ] ||
     ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$build/CMakeCache.txt"; then
    log "configuring a Release tree in $build"
    record cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      > "$results/cmake.log" 2>&1 ||
      { log "cmake failed:"; tail -20 "$results/cmake.log" >&2; exit 1; }
  fi
  targets=(peerconnectd peerctl rawcopy peerload udp_echo stall_probe
           cluster_propagation)
  for source in "$repo"/bench/*_bench.cc; do targets+=("$(basename "$source" .cc)"); done
  build_start=$SECONDS
  for t in "${targets[@]}"; do
    log "building $t"
    ninja -C "$build" -j2 "$t" >> "$results/build.log" 2>&1 ||
      { meta build_failed "$t"; log "$t did not build (see $results/build.log)"; }
  done
  record ninja -C "$build" -j2 "${targets[@]}"
  build_seconds=$((SECONDS - build_start))
fi
meta build_seconds "$build_seconds"

# ---- measurements

quick_flag=()
[ "$quick" -eq 1 ] && quick_flag=(--quick)
wants gbench && "$repo/bench/measure/gbench.sh" "$build" "$results" "${quick_flag[@]}"

load_note=""
if ! has peerload || ! has udp_echo || ! has peerconnectd; then
  load_note="skipped: peerload, udp_echo or peerconnectd is not built in $build"
fi
if wants peerload; then
  if [ -n "$load_note" ]; then meta peerload_note "$load_note"
  else "$repo/bench/measure/peerload.sh" "$build" "$results" "${quick_flag[@]}"; fi
fi
if wants split; then
  if [ -n "$load_note" ]; then meta split_note "$load_note"
  else "$repo/bench/measure/cost_split.sh" "$build" "$results" "${quick_flag[@]}"; fi
fi
if wants commit; then
  if [ -n "$load_note" ]; then meta commit_note "$load_note"
  else "$repo/bench/measure/group_commit.sh" "$build" "$results" "${quick_flag[@]}"; fi
fi
if wants cluster; then
  if [ -n "$load_note" ]; then meta cluster_skipped "$load_note"
  elif ! has cluster_propagation; then
    meta cluster_skipped "skipped: cluster_propagation is not built in $build"
  else "$repo/bench/measure/cluster.sh" "$build" "$results" "${quick_flag[@]}"; fi
fi
if wants soak; then
  if [ "$soak" -eq 0 ]; then
    meta soak_note "not run: it needs --soak (about 5 more minutes: per backend 100,000 logins, then 60 s)"
  elif [ -n "$load_note" ]; then meta soak_note "$load_note"
  else "$repo/bench/measure/soak.sh" "$build" "$results" "$soak_peers" "$soak_seconds"; fi
fi

if wants transfer; then
  if has rawcopy && has peerconnectd && has peerctl; then
    command=("$repo/bench/transfer.sh" "$build")
    [ "$install_nginx" -eq 1 ] && command+=(--install-nginx)
    [ "$quick" -eq 1 ] && command+=(--size-mib 64 --reps 2)
    record "${command[@]}"
    log "transfer benchmark"
    timeout 900 "${command[@]}" > "$results/transfer.out" 2> "$results/transfer.log" ||
      meta transfer_note "failed: $(tail -3 "$results/transfer.log" | tr '\n' ' ')"
  else
    meta transfer_note "skipped: rawcopy, peerconnectd or peerctl is not built"
  fi
fi
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta suite_seconds "$((SECONDS - suite_start - build_seconds))"
log "measurements done; raw results in $results"

# ---- the document

if wants doc; then
  # Debian's python3, not a version manager's shim.
  python=/usr/bin/python3
  [ -x "$python" ] || python=python3
  "$python" "$repo/bench/report/write_report.py" "$results" --output "$output"
  log "wrote $output (raw results in $results)"
fi
