#!/usr/bin/env bash
# Cluster mode (peerconnectd --redis) against standalone, and how fast a
# change crosses the cluster (docs/SCALING.md):
#   throughput   one daemon (--threads 1, pinned to CPU 0, the load on
#                CPU 1) standalone, then the same daemon with --redis (the
#                redis-server unpinned), each under peerload's heartbeat and
#                get mixes; ROUNDS rounds, the two modes in turn, so that
#                both see the same machine. Target: cluster >= 0.9x
#                standalone. For docs/SCALING.md also the pub/unp mix
#                (every change committed to Redis, or to the journal) and
#                the CPU seconds redis-server spent in each cluster run
#                (cl-cluster-MIX.rK.redis_cpu).
#   propagation  three daemons and one redis-server; cluster_propagation
#                publishes through the first and times how long until `sch`
#                on each of the others finds the name. Target: p99 < 1 s.
#
#   bench/measure/cluster.sh BUILD_DIR RESULTS_DIR [--quick]
#
# Writes RESULTS_DIR/cl-MODE-MIX.rK.json (peerload --json; MODE standalone
# or cluster, MIX heartbeat or get) with .log and .daemon.log beside, and
# cl-propagation.json (cluster_propagation --json). --quick: one round of
# 1 s, 50 publications.
set -euo pipefail
build=$1 results=$2 quick=0
[ "${3:-}" = --quick ] && quick=1
source "$(dirname "$0")/lib.sh"

if ! command -v redis-server > /dev/null; then
  meta cluster_skipped "redis-server is not installed (packaging/install-deps.sh)"
  log "cluster: redis-server missing; skipped"
  exit 0
fi
peers=1000 seconds=5 rounds=3 count=500
[ "$quick" -eq 1 ] && seconds=1 rounds=1 count=50
meta cluster_peers $peers
meta cluster_seconds $seconds
meta cluster_rounds $rounds
meta cluster_propagation_count $count

# User + system CPU seconds of process $1 so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' \
    "/proc/$1/stat" 2>/dev/null || echo 0
}

peerload=$build/bench/peerload
credentials="$results/cl-load-$peers.txt"
record "$peerload" --make-credentials $peers ">" "$credentials"
"$peerload" --make-credentials $peers > "$credentials"
for ((round = 1; round <= rounds; round++)); do
  for mix in heartbeat get pubunp; do
    mix_arg="$mix=1"
    [ "$mix" = pubunp ] && mix_arg="pub=1,unp=1"
    for mode in standalone cluster; do
      run="cl-$mode-$mix.r$round"
      log "cluster: $mode, --mix $mix=1, round $round of $rounds"
      daemon_args=()
      if [ "$mode" = cluster ]; then
        start_redis "$run" || continue
        daemon_args=(--redis="127.0.0.1:$redis_port")
      fi
      if start_daemon "$run" 1 auto 0 "$credentials"; then
        command=("$peerload" --server "127.0.0.1:$daemon_port"
                 --credentials "$credentials" --duration "${seconds}s"
                 --peers $peers --mix "$mix_arg" --cpu 1 --json)
        [ "$round" -eq 1 ] && record "${command[@]}"
        [ "$mode" = cluster ] && redis_cpu_before=$(cpu_seconds "$redis_pid")
        timeout 180 "${command[@]}" > "$results/$run.json" 2> "$results/$run.log" ||
          log "peerload $run failed (see $run.log)"
        if [ "$mode" = cluster ]; then
          echo "$(cpu_seconds "$redis_pid") $redis_cpu_before" |
            awk '{ printf "%.3f\n", $1 - $2 }' > "$results/$run.redis_cpu"
        fi
        stop_daemon
      fi
      daemon_args=()
      [ "$mode" = cluster ] && stop_redis
    done
  done
done

# Propagation: three daemons, one store.
log "cluster: propagation over three daemons"
start_redis cl-propagation || exit 0
prop_credentials="$results/cl-propagation-users.txt"
for u in prop0 prop1 prop2; do echo "$u prop-pass"; done > "$prop_credentials"
daemon_args=(--redis="127.0.0.1:$redis_port")
servers=() pids=()
for d in a b c; do
  if ! start_daemon "cl-propagation-$d" 1 auto "" "$prop_credentials"; then
    exit 0
  fi
  servers+=("127.0.0.1:$daemon_port") pids+=("$daemon_pid")
done
command=("$build/bench/cluster_propagation"
         --servers "$(IFS=,; echo "${servers[*]}")" --password prop-pass
         --count $count --json)
record "${command[@]}"
timeout 300 "${command[@]}" > "$results/cl-propagation.json" \
  2> "$results/cl-propagation.log" ||
  log "cluster_propagation failed (see cl-propagation.log)"
for daemon_pid in "${pids[@]}"; do stop_daemon; done
stop_redis
