#!/usr/bin/env bash
# peerconnectd under peerload, each run against a raw UDP echo right after
# (--compare-raw): heartbeat-only and get-only mixes, one reactor pinned to
# CPU 0 with the load on CPU 1, epoll vs io_uring; then two reactors
# unpinned. Every scenario runs ROUNDS times, the scenarios in turn.
#
#   bench/measure/peerload.sh BUILD_DIR RESULTS_DIR [--quick]
#
# Writes RESULTS_DIR/scenarios.txt (name|reactors|io|daemon CPUs|mix) and,
# per scenario and round, NAME.rK.json (peerload --json), NAME.rK.log and
# NAME.rK.load (the 1-minute load average when the round started). The
# report takes each scenario's round with the median ratio. --quick: one
# round of 1 s per scenario.
set -euo pipefail
build=$1 results=$2 quick=0
[ "${3:-}" = --quick ] && quick=1
source "$(dirname "$0")/lib.sh"

peers=1000 seconds=5 rounds=3
# Three rounds, because run to run the same scenario varies by some 10% on
# the shared machine, and one disturbed run must not decide a verdict.
[ "$quick" -eq 1 ] && seconds=1 rounds=1
meta load_peers $peers
meta load_seconds $seconds
meta load_rounds $rounds
cat > "$results/scenarios.txt" <<'LIST'
r1-epoll-heartbeat|1|epoll|0|heartbeat=1
r1-uring-heartbeat|1|uring|0|heartbeat=1
r1-epoll-get|1|epoll|0|get=1
r1-uring-get|1|uring|0|get=1
r2-uring-heartbeat|2|uring||heartbeat=1
r2-uring-get|2|uring||get=1
LIST

peerload=$build/bench/peerload
credentials="$results/load-$peers.txt"
record "$peerload" --make-credentials $peers ">" "$credentials"
"$peerload" --make-credentials $peers > "$credentials"
for ((round = 1; round <= rounds; round++)); do
  while IFS='|' read -r -u 3 name reactors io cpus mix; do
    log "peerload $name, round $round of $rounds"
    run="$name.r$round"
    cut -d' ' -f1 /proc/loadavg > "$results/$run.load"
    if ! start_daemon "$run" "$reactors" "$io" "$cpus" "$credentials"; then
      continue
    fi
    command=("$peerload" --server "127.0.0.1:$daemon_port"
             --credentials "$credentials" --duration "${seconds}s"
             --peers $peers --mix "$mix" --compare-raw --json)
    if [ -n "$cpus" ]; then
      command+=(--cpu 1 --echo-cpu "$cpus" --echo-threads "$reactors")
    else
      command+=(--echo-threads "$reactors")
    fi
    [ "$round" -eq 1 ] && record "${command[@]}"
    timeout 180 "${command[@]}" > "$results/$run.json" 2> "$results/$run.log" ||
      log "peerload $name round $round failed (see $run.log)"
    stop_daemon
  done 3< "$results/scenarios.txt"
done
