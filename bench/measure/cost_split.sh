#!/usr/bin/env bash
# Where a datagram's CPU time goes, daemon against echo: the capped pair of
# peerload.sh's c1-epoll scenarios (one epoll reactor and a one-thread
# udp_echo at once on CPU 0, each capped at 20% of it (peerload.sh says why
# 20), each loaded by its own peerload on CPU 1), with `perf record` sampling
# both servers' CPU time for a few seconds while both halves measure. The
# report divides each side's samples by the datagrams it answered in the same
# span, and the daemon's by the echo's: the daemon's CPU time per datagram by
# function, in units of the echo's CPU time per datagram (the kernel's share
# and the daemon's own, by category). Those add up to the inverse of the run's
# ratio, and the get and heartbeat columns side by side show what a get costs
# beyond a heartbeat.
#
#   bench/measure/cost_split.sh BUILD_DIR RESULTS_DIR [--quick]
#
# For information, never a target: perf's sampling costs both servers some
# CPU time (both alike), so these rounds' responses/s are not the peerload
# part's. Mixes heartbeat and get, 3 rounds of 5 s each (--quick: one of
# 2 s), 1,000 peers, the mixes in turn. As in peerload.sh, the two servers
# swap cgroups in the second round (run_capped), so that a split's median
# round is not always taken with the same cgroup's few percent of bias.
#
# Writes per mix MIX and round K what run_capped (lib.sh) writes for run
# split-MIX.rK, and split-MIX.rK.daemon.txt and split-MIX.rK.echo.txt:
# `perf report --sort dso,sym` of each server's samples, "samples|object|
# function" lines. run.txt gets split_seconds (perf's span), split_rounds,
# and split_note when the part could not run (no perf, no writable cpu
# cgroup, or no permission to sample).
set -euo pipefail
build=$1 results=$2 quick=0
[ "${3:-}" = --quick ] && quick=1
source "$(dirname "$0")/lib.sh"

peers=1000 seconds=5 rounds=3 cap=20 profile_seconds=3
[ "$quick" -eq 1 ] && seconds=2 rounds=1 profile_seconds=1
# Sampling at a frequency no timer divides, so that the samples do not
# fall in step with the cgroup's 10 ms periods.
frequency=2999

if ! command -v perf > /dev/null; then
  meta split_note "skipped: perf is not installed (Debian package linux-perf)"
  exit 0
fi
if ! perf record -e cpu-clock -F "$frequency" -o /dev/null -- true \
     > /dev/null 2>&1; then
  meta split_note "skipped: perf cannot sample here (run as root, or lower" \
    "/proc/sys/kernel/perf_event_paranoid)"
  exit 0
fi
cgroup="" echo_cgroup=""
if ! cgroup=$(cpu_cgroup pcfs-bench-split $cap) ||
   ! echo_cgroup=$(cpu_cgroup pcfs-bench-split-echo $cap); then
  if [ -n "$cgroup" ]; then rmdir "$cgroup" 2>/dev/null || true; fi
  meta split_note "skipped: no writable cgroup with a cpu controller (run as root)"
  exit 0
fi
meta split_seconds $profile_seconds
meta split_rounds $rounds
meta split_peers $peers

peerload=$build/bench/peerload
# The peerload part's users, when it ran first in this folder.
credentials="$results/load-$peers.txt"
if [ ! -s "$credentials" ]; then
  record "$peerload" --make-credentials $peers ">" "$credentials"
  "$peerload" --make-credentials $peers > "$credentials"
fi

# run_capped's probe: both servers sampled over the same span.
profile() {
  local run=$1 echo_pid=$2 server pid
  local command=(perf record -e cpu-clock -F "$frequency" --quiet)
  [ "${run##*.r}" = 1 ] &&
    record "${command[@]}" -p "<server pid>" -o "<file>" -- sleep "$profile_seconds"
  "${command[@]}" -p "$daemon_pid" -o "$results/$run.daemon.data" \
    -- sleep "$profile_seconds" > /dev/null 2>&1 &
  local daemon_perf=$!
  "${command[@]}" -p "$echo_pid" -o "$results/$run.echo.data" \
    -- sleep "$profile_seconds" > /dev/null 2>&1 || return 1
  wait "$daemon_perf" || return 1
  for server in daemon echo; do
    perf report -i "$results/$run.$server.data" --stdio --no-children \
      --sort dso,sym -F sample,dso,sym -t '|' 2> /dev/null |
      grep -v '^#' > "$results/$run.$server.txt" || return 1
    rm -f "$results/$run.$server.data"
  done
}
capped_probe=profile

for ((round = 1; round <= rounds; round++)); do
  for mix in heartbeat get; do
    run="split-$mix.r$round"
    log "cost split: $mix, round $round of $rounds"
    if ! start_daemon "$run" 1 epoll 0 "$credentials"; then continue; fi
    run_capped "$run" "$mix=1" "$peers"
    stop_daemon
  done
done
rmdir "$cgroup" "$echo_cgroup" 2>/dev/null || true
