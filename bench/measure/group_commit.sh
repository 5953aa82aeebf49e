#!/usr/bin/env bash
# Group commit under peerload, one reactor (--threads=1, unpinned: the
# journal writer thread runs beside it), runs against a fresh state folder
# each:
#   gc-heartbeat  --mix heartbeat=1   closed loop: the heartbeat throughput
#   gc-pubunp     --mix pub=1,unp=1   closed loop: as many pub/unp as the
#                                     daemon answers, every reply sent once
#                                     its batch is durable
#   gc-quiet.rK   --mix none          mandatory heartbeats only
#   gc-storm.rK   --mix pub=1,unp=1 --rate 5000: a steady storm of
#                                     publications, open loop
# the last two in turn, 5 rounds (K = 1..5): a p99 of 4,000 heartbeats
# moves with the machine, and the quiet run's alone read from 237 to
# 932 us in six runs in a row on 2026-12-05. The report takes the round
# whose ratio is the median. Then, as controls for the storm's heartbeat
# p99 (not targets):
#   gc-stormmem   gc-storm once more with the state folder in /dev/shm
#                 (tmpfs), where fdatasync costs nothing: what the daemon's
#                 own work does to heartbeats, apart from the disk
#   stall_probe   beside every gc-storm.rK and gc-quiet.rK: how often the
#                 machine kept a ready real-time thread off a CPU for over
#                 1 and 5 ms (on a virtual machine, fdatasync can stall the
#                 virtual CPUs)
# The report compares gc-pubunp's pub+unp answers/s with gc-heartbeat's
# responses/s (target >= 0.5x), and the p99 of the mandatory heartbeats
# during the storm (gc-storm.rK) with their p99 without it (gc-quiet.rK of
# the same round; target <= 2x). The closed loop saturates the CPUs by
# design, so its heartbeat p99 measures CPU contention more than the disk;
# it is reported beside.
#
#   bench/measure/group_commit.sh BUILD_DIR RESULTS_DIR [--quick]
#
# Writes RESULTS_DIR/gc-NAME.json (peerload --json), gc-NAME.log,
# gc-NAME.daemon.log and, for storm and quiet rounds, gc-NAME.stalls.json
# (stall_probe; its log in gc-NAME.stalls.log). --quick: runs of 2 s, one
# round.
set -euo pipefail
build=$1 results=$2 quick=0
[ "${3:-}" = --quick ] && quick=1
source "$(dirname "$0")/lib.sh"

peers=2000 seconds=5 storm_rate=5000 rounds=5
[ "$quick" -eq 1 ] && seconds=2 rounds=1
meta gc_peers $peers
meta gc_seconds $seconds
meta gc_storm_rate $storm_rate
meta gc_storm_rounds $rounds

peerload=$build/bench/peerload
credentials="$results/gc-load-$peers.txt"
record "$peerload" --make-credentials $peers ">" "$credentials"
"$peerload" --make-credentials $peers > "$credentials"
runs=(heartbeat:heartbeat=1:0 pubunp:pub=1,unp=1:0)
for ((k = 1; k <= rounds; k++)); do
  runs+=(quiet.r$k:none:0 storm.r$k:pub=1,unp=1:$storm_rate)
done
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  runs+=(stormmem:pub=1,unp=1:$storm_rate)
fi
probe=$build/bench/stall_probe
probe_built=0
if has stall_probe; then probe_built=1; fi
for run in "${runs[@]}"; do
  name=gc-${run%%:*} rest=${run#*:}
  mix=${rest%%:*} rate=${rest#*:}
  log "group commit: $name (--mix $mix)"
  state_base=
  if [ "$name" = gc-stormmem ]; then
    state_base=$(mktemp -d /dev/shm/pcfs-bench.XXXXXX)
  fi
  if ! start_daemon "$name" 1 auto "" "$credentials"; then
    [ -z "$state_base" ] || rm -rf "$state_base"
    continue
  fi
  command=("$peerload" --server "127.0.0.1:$daemon_port"
           --credentials "$credentials" --duration "${seconds}s"
           --peers $peers --mix "$mix" --rate "$rate" --json)
  record "${command[@]}"
  probe_pid=
  if [ "$probe_built" = 1 ] && [[ $name == gc-storm.r* || $name == gc-quiet.r* ]]; then
    # peerload logs its peers in (about 1 s at 2,000 logins/s) before it
    # measures: the probe covers the measured seconds.
    probe_command=("$probe" --duration="$((seconds - 1))s")
    record "${probe_command[@]}" "(1.5 s after peerload starts, beside it)"
    (sleep 1.5; "${probe_command[@]}") > "$results/$name.stalls.json" \
      2> "$results/$name.stalls.log" &
    probe_pid=$!
  fi
  timeout 180 "${command[@]}" > "$results/$name.json" 2> "$results/$name.log" ||
    log "peerload $name failed (see $name.log)"
  [ -z "$probe_pid" ] || wait "$probe_pid" || log "stall_probe failed ($name)"
  stop_daemon
  [ -z "$state_base" ] || rm -rf "$state_base"
done
