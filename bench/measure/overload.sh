#!/usr/bin/env bash
# Overload on purpose: the soak's heartbeats against a daemon given less CPU
# than they need, so that what the daemon and its clients do past capacity
# can be seen on a quiet machine too (the soak collapses only when the
# machine happens to be busy). Not part of run_all.sh: a diagnosis, with no
# target.
#
#   bench/measure/overload.sh BUILD_DIR RESULTS_DIR [PEERS] [HOGS] [SECONDS]
#   bench/measure/overload.sh --help
#
# Two runs, each PEERS peers (default 60,000: 30,000 heartbeats a second)
# heartbeating for SECONDS (default 30) after their logins, against one
# epoll reactor pinned to CPU 0, peerload pinned to CPU 1:
#   control  CPU 0 is the daemon's alone;
#   cut      HOGS busy loops (default 3) share CPU 0 with it, so that the
#            scheduler gives the daemon about 1/(HOGS+1) of the CPU.
# Writes RESULTS_DIR/overload-RUN.json (peerload --json), .log, .daemon.log
# and .metrics (the daemon's CPU seconds over the peerload run, the
# machine's UDP receive-buffer drops meanwhile, the daemon's closing
# counters), and prints one summary line per run: how much of the offered
# load (PEERS/2 heartbeats a second) was answered, the retransmissions,
# timeouts and new logins it took, and the expiries the daemon put off
# because its socket had dropped datagrams (its count of sessions expired
# is left out: it includes the peers that stop at the end). Takes about
# 4 minutes; more if the cut run never logs everyone in (peerload
# measures anyway after --ramp 100s).
set -euo pipefail
usage="usage: overload.sh BUILD_DIR RESULTS_DIR [PEERS] [HOGS] [SECONDS]"
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
if [ $# -lt 2 ] || [ $# -gt 5 ]; then
  echo "overload.sh: $usage (--help for more)" >&2
  exit 2
fi
build=$1 results=$2
peers=${3:-60000} hogs=${4:-3} seconds=${5:-30}
for value in "$peers" "$hogs" "$seconds"; do
  if ! [[ "$value" =~ ^[0-9]+$ ]]; then
    echo "overload.sh: PEERS, HOGS and SECONDS must be whole numbers," \
         "not '$value'" >&2
    exit 2
  fi
done
if [ "$peers" -lt 1 ] || [ "$seconds" -lt 1 ]; then
  echo "overload.sh: PEERS and SECONDS must be at least 1" >&2
  exit 2
fi
if [ ! -x "$build/bench/peerload" ] || [ ! -x "$build/daemon/peerconnectd" ]; then
  echo "overload.sh: $build has no bench/peerload or daemon/peerconnectd" \
       "(build them first: ninja -C $build)" >&2
  exit 2
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "overload.sh: needs 2 CPUs (the daemon on CPU 0, peerload on CPU 1)" >&2
  exit 2
fi
mkdir -p "$results"
touch "$results/commands.txt" "$results/run.txt"
source "$(dirname "$0")/lib.sh"

peerload=$build/bench/peerload
credentials="$results/load-$peers.txt"
"$peerload" --make-credentials "$peers" > "$credentials"
for run in control cut; do
  n=0
  [ "$run" = cut ] && n=$hogs
  log "overload, $run: $peers peers, $n busy loops beside the daemon on CPU 0"
  hog_pids=()
  for ((h = 0; h < n; h++)); do
    taskset -c 0 timeout 900 bash -c 'while :; do :; done' &
    hog_pids+=($!)
    started_pids+=($!)
  done
  if ! start_daemon "overload-$run" 1 epoll 0 "$credentials"; then
    kill "${hog_pids[@]}" 2>/dev/null || true
    continue
  fi
  cpu_before=$(cpu_ticks "$daemon_pid")
  drops_before=$(udp_rcvbuf_errors)
  command=(taskset -c 1 "$peerload" --server "127.0.0.1:$daemon_port"
           --credentials "$credentials" --duration "${seconds}s"
           --peers "$peers" --mix none --ramp 100s --json)
  record "${command[@]}"
  timeout 600 "${command[@]}" > "$results/overload-$run.json" \
      2> "$results/overload-$run.log" ||
    log "peerload failed in the $run run (see overload-$run.log)"
  cpu_after=$(cpu_ticks "$daemon_pid")
  drops_after=$(udp_rcvbuf_errors)
  stop_daemon
  kill "${hog_pids[@]}" 2>/dev/null || true
  wait "${hog_pids[@]}" 2>/dev/null || true
  # The machine's UDP receive-buffer drops over the peerload run (any
  # socket's: nearly all the daemon's), and the counters the daemon
  # printed as it stopped.
  {
    cpu_seconds_line "$cpu_before" "$cpu_after"
    echo "rcvbuf_drops $((drops_after - drops_before))"
    echo "stopped $(grep -o 'stopped: .*' "$results/overload-$run.daemon.log" |
                    sed 's/^stopped: //' || true)"
  } > "$results/overload-$run.metrics"
  python3 - "$results/overload-$run.json" "$results/overload-$run.metrics" \
      "$run" "$peers" <<'PY'
import json, sys
path, metrics, run, peers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
try:
    d = json.load(open(path))
except (OSError, ValueError) as e:
    print(f"{run}: no peerload result ({e})")
    sys.exit(0)
m = dict(line.rstrip("\n").split(" ", 1) for line in open(metrics) if " " in line)
counters = dict(kv.split("=", 1) for kv in m.get("stopped", "").split() if "=" in kv)
offered = peers / 2
print(f"{run}: {d['logged_in']} of {peers} logged in; "
      f"{d['responses_per_s']:,.0f} responses/s of {offered:,.0f} offered "
      f"({d['responses_per_s'] / offered:.2f}); "
      f"{d['requests']} requests, {d['retransmissions']} retransmissions, "
      f"{d['timeouts']} timeouts, {d['relogins']} relogins, "
      f"{d['false_expiries']} false / {d['late_expiries']} late expiries; "
      f"daemon: {m.get('cpu_s', '?')} s CPU, "
      f"{m.get('rcvbuf_drops', '?')} rcvbuf drops, "
      f"{counters.get('expiries_held', '?')} expiries held")
PY
done
