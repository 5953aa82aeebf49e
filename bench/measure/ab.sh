#!/usr/bin/env bash
# Two peerconnectd binaries against each other, for a change to the request
# path: A (say, main's) and B (the change) run at once, each with one epoll
# reactor pinned to CPU 0 and capped at 20% of it in a cgroup of its own,
# each loaded by its own peerload on CPU 1, as run_capped (lib.sh) runs the
# daemon against the echo. Both see the same machine at the same moment, so
# B/A, the ratio of their responses/s, resolves far smaller differences
# than two separate runs, whose figures move by several percent from run to
# run on a shared machine.
#
# The two cgroups are not alike: with the same quota, one lets its server
# answer some 4-6% more than the other, the same way through a run, and
# either way after the cgroups are made again (measured 2026-12-06: the
# same binary as A and B read B/A 0.92-0.97 over 7 rounds, then 1.04-1.05
# over 6 after the cgroups were made anew). So the sides swap cgroups from
# one round to the next (and the order they start in), the rounds come in
# pairs, and the figure is the geometric mean of the rounds' B/A, in which
# the cgroups' difference cancels.
#
#   bench/measure/ab.sh DAEMON_A DAEMON_B RESULTS_DIR [--pairs N]
#                       [--mix MIX] [--peers N] [--seconds S]
#
# Defaults: 3 pairs of rounds of 5 s measured, --mix get=1, 1,000 peers.
# Prints a line per round ("round K: A R/s, B R/s, B/A X") and the
# geometric mean, and writes RESULTS_DIR/abK.{a,b}.{json,log} (each
# peerload's), abK.{a,b}.daemon.log (each daemon's, as start_daemon in
# lib.sh writes it) and RESULTS_DIR/ab.txt (the lines printed). Needs root (the
# cgroups). An A/A run (the same binary twice) shows the noise left. For
# information, never a target: the targets are bench/run_all.sh's.
set -euo pipefail
usage="usage: ab.sh DAEMON_A DAEMON_B RESULTS_DIR [--pairs N] [--mix MIX]"
usage+=" [--peers N] [--seconds S]"
case "${1:-}" in -h|--help) echo "$usage"; exit 0 ;; esac
[ $# -ge 3 ] || { echo "$usage" >&2; exit 2; }
daemon_a=$(realpath "$1") daemon_b=$(realpath "$2") results=$(realpath -m "$3")
shift 3
pairs=3 mix=get=1 peers=1000 seconds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs=$2; shift ;;
    --mix) mix=$2; shift ;;
    --peers) peers=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
for binary in "$daemon_a" "$daemon_b"; do
  [ -x "$binary" ] || { echo "ab.sh: not an executable: $binary" >&2; exit 2; }
done
mkdir -p "$results"
build=$(dirname "$(dirname "$daemon_a")")
source "$(dirname "$0")/lib.sh"
peerload=$repo/build-bench/bench/peerload
[ -x "$build/bench/peerload" ] && peerload=$build/bench/peerload
[ -x "$peerload" ] || { echo "ab.sh: no peerload next to $daemon_a" >&2; exit 2; }

cap=20
cgroup_one="" cgroup_two=""
if ! cgroup_one=$(cpu_cgroup pcfs-bench-ab-1 $cap) ||
   ! cgroup_two=$(cpu_cgroup pcfs-bench-ab-2 $cap); then
  echo "ab.sh: no writable cgroup with a cpu controller (run as root)" >&2
  exit 1
fi
credentials=$results/ab-credentials.txt
"$peerload" --make-credentials "$peers" > "$credentials"

declare -A port=()

responses() {
  python3 -c 'import json, sys
lines = [l for l in open(sys.argv[1]).read().splitlines() if l.strip()]
print(json.loads(lines[-1])["responses_per_s"])' "$1"
}

: > "$results/ab.txt"
ratios=()
for ((round = 1; round <= 2 * pairs; round++)); do
  # Odd rounds: A in the first cgroup, started first; even ones: swapped.
  if ((round % 2)); then
    order=(a b) cgroup_of_a=$cgroup_one cgroup_of_b=$cgroup_two
  else
    order=(b a) cgroup_of_a=$cgroup_two cgroup_of_b=$cgroup_one
  fi
  port=()
  for side in "${order[@]}"; do
    # lib.sh's start_daemon (one epoll reactor on CPU 0), with this side's
    # binary, then into this round's cgroup for it, as run_capped does.
    if [ "$side" = a ]; then
      daemon_binary=$daemon_a dir=$cgroup_of_a
    else
      daemon_binary=$daemon_b dir=$cgroup_of_b
    fi
    start_daemon "ab$round.$side" 1 epoll 0 "$credentials" || exit 1
    echo "$daemon_pid" > "$dir/cgroup.procs"
    port[$side]=$daemon_port
  done
  pids=()
  for side in "${order[@]}"; do
    timeout 180 "$peerload" --server "127.0.0.1:${port[$side]}" \
      --credentials "$credentials" --duration "${seconds}s" --peers "$peers" \
      --mix "$mix" --json --cpu 1 \
      > "$results/ab$round.$side.json" 2> "$results/ab$round.$side.log" &
    pids+=("$!")
  done
  wait "${pids[@]}" ||
    { echo "ab.sh: a peerload failed (see ab$round.*.log)" >&2; exit 1; }
  cleanup
  started_pids=()
  a=$(responses "$results/ab$round.a.json")
  b=$(responses "$results/ab$round.b.json")
  line=$(awk -v r="$round" -v a="$a" -v b="$b" \
    'BEGIN { printf "round %d: A %.0f/s, B %.0f/s, B/A %.3f", r, a, b, b / a }')
  ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", b / a }')")
  echo "$line" | tee -a "$results/ab.txt"
done
printf '%s\n' "${ratios[@]}" |
  awk -v mix="$mix" '{ sum += log($1) } END {
        printf "geometric mean B/A %.3f over %d rounds (mix %s)\n",
               exp(sum / NR), NR, mix }' | tee -a "$results/ab.txt"
# Empty once the daemons have exited.
rmdir "$cgroup_one" "$cgroup_two" 2>/dev/null || true
