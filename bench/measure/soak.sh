#!/usr/bin/env bash
# The soak: PEERS peers heartbeating for SECONDS against one daemon (default
# reactors, unpinned), once per backend (epoll, io_uring). peerload splits
# the peers over worker processes, as its file descriptor limit requires.
#
#   bench/measure/soak.sh BUILD_DIR RESULTS_DIR PEERS SECONDS
#
# Writes RESULTS_DIR/soak-IO.json (peerload --json), soak-IO.log and
# soak-IO.metrics: the daemon's RSS before and at its peak (KiB), its CPU
# time over the run, the machine's UDP receive-buffer drops meanwhile and
# the load average after.
set -euo pipefail
build=$1 results=$2 peers=$3 seconds=$4
source "$(dirname "$0")/lib.sh"
meta soak_peers "$peers"
meta soak_seconds "$seconds"

vmrss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

peerload=$build/bench/peerload
credentials="$results/load-$peers.txt"
record "$peerload" --make-credentials "$peers" ">" "$credentials"
"$peerload" --make-credentials "$peers" > "$credentials"
for io in epoll uring; do
  name="soak-$io"
  log "soak with --io=$io: $peers peers for ${seconds}s"
  if ! start_daemon "$name" 0 "$io" "" "$credentials"; then continue; fi
  rss_before=$(vmrss_kib "$daemon_pid")
  # The highest RSS during the run, sampled every second.
  ( peak=0
    while kill -0 "$daemon_pid" 2>/dev/null; do
      now=$(vmrss_kib "$daemon_pid")
      if [ "${now:-0}" -gt "$peak" ]; then peak=$now; echo "$peak" > "$results/$name.rss"; fi
      sleep 1
    done ) &
  started_pids+=($!)
  drops_before=$(udp_rcvbuf_errors)
  cpu_before=$(cpu_ticks "$daemon_pid")
  # One socket per simulated peer: peerload splits the peers over as many
  # worker processes as its hard RLIMIT_NOFILE needs.
  command=("$peerload" --server "127.0.0.1:$daemon_port"
           --credentials "$credentials" --duration "${seconds}s"
           --peers "$peers" --mix none --ramp 240s --json)
  record "${command[@]}"
  timeout 600 "${command[@]}" > "$results/$name.json" 2> "$results/$name.log" ||
    log "the soak with --io=$io failed (see $name.log)"
  # The daemon's CPU (user + system) over the whole peerload run, and the
  # UDP datagrams the kernel dropped for full receive buffers meanwhile
  # (machine-wide: any UDP socket's).
  {
    echo "rss_before_kib $rss_before"
    echo "rss_peak_kib $(cat "$results/$name.rss" 2>/dev/null || echo 0)"
    cpu_seconds_line "$cpu_before" "$(cpu_ticks "$daemon_pid")"
    echo "rcvbuf_drops $(( $(udp_rcvbuf_errors) - drops_before ))"
    echo "load_after $(cut -d' ' -f1-3 /proc/loadavg)"
  } > "$results/$name.metrics"
  stop_daemon
done
