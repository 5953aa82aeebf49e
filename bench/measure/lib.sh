# Shared by the measuring scripts under bench/measure/ (sourced, not run).
# The sourcing script sets `build` (the build tree) and `results` (the run's
# result folder) first. Every part writes raw files into $results only;
# bench/report/write_report.py turns them into the document.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Seconds since run_all.sh started, in every script it runs.
: "${suite_start_epoch:=$(date +%s)}"
export suite_start_epoch
log() { echo "run_all.sh [$(($(date +%s) - suite_start_epoch))s]: $*" >&2; }

# Every command that produces a figure is recorded, as run (paths relative
# to the repository, $R for the result folder), for the document.
record() {
  local line="$*"
  line=${line//$results\//\$R/}
  echo "${line//$repo\//}" >> "$results/commands.txt"
}

# One "key value" line of run.txt, the run's facts that are not a tool's own
# output (machine, settings, notes on parts that did not run).
meta() {
  local key=$1; shift
  echo "$key $*" >> "$results/run.txt"
}

# True when the binary named $1 is in the build tree and did not fail to
# build in this run (a stale binary would measure old code).
has() {
  local dir
  if grep -qx "build_failed $1" "$results/run.txt" 2>/dev/null; then return 1; fi
  for dir in daemon peerctl bench; do
    if [ -x "$build/$dir/$1" ]; then return 0; fi
  done
  return 1
}

# A process's CPU time so far (user + system), in clock ticks
# (getconf CLK_TCK a second); 0 once it is gone.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# The metrics line "cpu_s S": the CPU seconds between two cpu_ticks readings
# ($1 before, $2 after).
cpu_seconds_line() {
  awk -v a="$1" -v b="$2" -v t="$(getconf CLK_TCK)" \
      'BEGIN { printf "cpu_s %.1f\n", (b - a) / t }'
}
# The machine's UDP datagrams dropped for a full receive buffer so far (any
# socket's: RcvbufErrors in /proc/net/snmp).
udp_rcvbuf_errors() { awk '/^Udp:/ { n++; if (n == 2) print $6 }' /proc/net/snmp; }

# Processes this script started, stopped on exit.
started_pids=()
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Starts peerconnectd; sets daemon_pid and daemon_port. $1: name of the run,
# $2: --threads, $3: --io, $4: CPU list to pin it to ("" for none),
# $5: credentials file. Flags in the array daemon_args (e.g. --redis=...)
# are added. Its state folder is $results/NAME.state, or
# $state_base/NAME.state when state_base is set. The binary is the build
# tree's, or $daemon_binary when set (ab.sh's two).
daemon_args=()
daemon_binary=""
start_daemon() {
  local name=$1 threads=$2 io=$3 cpus=$4 credentials=$5 i
  local command=("${daemon_binary:-$build/daemon/peerconnectd}" --port=0
                 --bind=127.0.0.1
                 --credentials="$credentials" --threads="$threads" --io="$io")
  # A daemon with --redis keeps no state folder (the two are refused
  # together).
  if [[ " ${daemon_args[*]} " != *" --redis="* ]]; then
    command+=(--state_dir="${state_base:-$results}/$name.state")
  fi
  command+=("${daemon_args[@]}")
  if [ -n "$cpus" ]; then command=(taskset -c "$cpus" "${command[@]}"); fi
  record "${command[@]}"
  # Created first, so that the wait below never greps a missing file.
  : > "$results/$name.daemon.log"
  "${command[@]}" 2> "$results/$name.daemon.log" &
  daemon_pid=$!
  started_pids+=("$daemon_pid")
  for ((i = 0; i < 200; i++)); do
    if grep -qF " (UDP" "$results/$name.daemon.log"; then break; fi
    if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! grep -qF " (UDP" "$results/$name.daemon.log"; then
    log "peerconnectd did not start for $name: $(tail -3 "$results/$name.daemon.log")"
    return 1
  fi
  daemon_port=$(grep -m1 -F " (UDP" "$results/$name.daemon.log" |
                sed -E 's/.*:([0-9]+) \(UDP.*/\1/')
}

# cpu_cgroup NAME PERCENT: makes (or reuses) a cgroup whose processes may
# run PERCENT of one CPU between them (CFS bandwidth: PERCENT/100 of every
# 10 ms) and prints its directory: cgroup v2 (cpu.max) or else v1's cpu
# controller (cpu.cfs_quota_us). Prints nothing and returns 1 where
# neither can be written (not root, no cpu controller).
cpu_cgroup() {
  local name=$1 quota=$(($2 * 100)) dir
  if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    dir=/sys/fs/cgroup/$name
    if mkdir -p "$dir" 2>/dev/null &&
       echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null &&
       echo "$quota 10000" > "$dir/cpu.max" 2>/dev/null; then
      echo "$dir"
      return 0
    fi
  fi
  dir=/sys/fs/cgroup/cpu/$name
  if [ -d /sys/fs/cgroup/cpu ] && mkdir -p "$dir" 2>/dev/null &&
     echo 10000 > "$dir/cpu.cfs_period_us" 2>/dev/null &&
     echo "$quota" > "$dir/cpu.cfs_quota_us" 2>/dev/null; then
    echo "$dir"
    return 0
  fi
  return 1
}

stop_daemon() {
  local i
  kill -TERM "$daemon_pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" 2>/dev/null || true
}

# Starts a redis-server as the daemons' cluster store would want it
# (appendonly, fsync at every write) on a free loopback port, its files in
# $results/$1.redis/; sets redis_pid and redis_port. $1: name, $2: CPU list
# to pin it to ("" for none).
start_redis() {
  local name=$1 cpus=${2:-} i dir="$results/$1.redis"
  mkdir -p "$dir"
  redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local command=(redis-server --bind 127.0.0.1 --port "$redis_port"
                 --dir "$dir" --appendonly yes --appendfsync always --save "")
  if [ -n "$cpus" ]; then command=(taskset -c "$cpus" "${command[@]}"); fi
  record "${command[@]}"
  "${command[@]}" > "$dir/redis.log" 2>&1 &
  redis_pid=$!
  started_pids+=("$redis_pid")
  for ((i = 0; i < 100; i++)); do
    if redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.1
  done
  log "redis-server did not start for $name: $(tail -3 "$dir/redis.log")"
  return 1
}

stop_redis() {
  kill -TERM "$redis_pid" 2>/dev/null || return 0
  wait "$redis_pid" 2>/dev/null || true
}

# Prints the port a udp_echo started with --port=0 prints on its first
# line, once it has ($1: its stdout file, $2: its pid); fails if it exits or
# has not printed within 10 s.
echo_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    if [ -s "$1" ]; then head -1 "$1"; return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Waits until the peerload whose stderr is $1 (pid $2) measures; fails if
# it exits first or has not begun within 60 s.
await_measuring() {
  local i
  for ((i = 0; i < 1200; i++)); do
    grep -q "measuring" "$1" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  grep -q "measuring" "$1"
}

# One capped round ($1: run name, $2: mix, $3: peers): the daemon (already
# started by start_daemon, pinned to CPU 0) in the cgroup $cgroup and a
# one-thread udp_echo pinned to CPU 0 in $echo_cgroup, each loaded at the
# same time by its own peerload on CPU 1 (cpu_cgroup makes the two). In
# an even round (RUN ends in .rK, K even) the two swap cgroups: two
# cgroups made with the same quota let the same server answer a few
# percent more in one than in the other, the same way throughout a run
# (bench/measure/ab.sh measures it), so a pair of rounds, one each way,
# cancels that out of the geometric mean of their ratios. The
# daemon's half runs 2 s longer and the echo's starts once the daemon's
# measures (its peers have logged in), so that the echo's whole measured
# span lies within the daemon's. Needs `peerload`, `credentials` and
# `seconds` (the echo half's measured span) set. When `capped_probe` names
# a function, it runs once both halves measure, as
# `$capped_probe RUN ECHO_PID`, and must return within `seconds`.
# Writes RUN.json and RUN.log (the daemon's half), RUN.raw.json and
# RUN.raw.log (the echo's), RUN.echo.out and RUN.echo.log, and
# RUN.throttle (cap_snapshot, from when both halves measure to when the
# echo's ends): whether each server was held back by its cap, and so
# limited the responses/s, or waited for its load generator.
capped_probe=""

# One line: the periods and the throttled periods of the daemon's cgroup
# ($1) and of the echo's ($2) (cpu.stat's nr_periods and nr_throttled, in
# cgroup v1 and v2 alike), then CPU 1's busy and total jiffies (/proc/stat).
cap_snapshot() {
  local dir
  for dir in "$1" "$2"; do
    awk '$1 == "nr_periods" { p = $2 } $1 == "nr_throttled" { t = $2 }
         END { printf "%d %d ", p, t }' "$dir/cpu.stat"
  done
  awk '$1 == "cpu1" { print $2 + $3 + $4 + $7 + $8 + $9,
                            $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
run_capped() {
  local run=$1 mix=$2 run_peers=$3 echo_pid eport load_pid raw_pid ok=1 i
  local daemon_group=$cgroup echo_group=$echo_cgroup round=${1##*.r}
  if [[ "$round" =~ ^[0-9]+$ ]] && ((round % 2 == 0)); then
    daemon_group=$echo_cgroup echo_group=$cgroup
  fi
  echo "$daemon_pid" > "$daemon_group/cgroup.procs"
  : > "$results/$run.echo.out"
  ( echo "$BASHPID" > "$echo_group/cgroup.procs"
    exec taskset -c 0 "$build/bench/udp_echo" --port=0 --bind=127.0.0.1 \
      --threads=1 ) > "$results/$run.echo.out" 2> "$results/$run.echo.log" &
  echo_pid=$!
  started_pids+=("$echo_pid")
  if ! eport=$(echo_port "$results/$run.echo.out" "$echo_pid"); then
    log "udp_echo did not start for $run (see $run.echo.log)"
    kill "$echo_pid" 2>/dev/null || true
    return 0
  fi
  local common=(--peers "$run_peers" --mix "$mix" --json --cpu 1)
  local daemon_half=("$peerload" --server "127.0.0.1:$daemon_port"
                     --credentials "$credentials"
                     --duration "$((seconds + 2))s" "${common[@]}")
  local echo_half=("$peerload" --raw --server "127.0.0.1:$eport"
                   --duration "${seconds}s" "${common[@]}")
  if [ "${run##*.r}" = 1 ]; then
    record "${daemon_half[@]}" "&"
    record "${echo_half[@]}"
  fi
  : > "$results/$run.log"
  : > "$results/$run.raw.log"
  timeout 180 "${daemon_half[@]}" > "$results/$run.json" \
    2> "$results/$run.log" &
  load_pid=$!
  if await_measuring "$results/$run.log" "$load_pid"; then
    timeout 180 "${echo_half[@]}" > "$results/$run.raw.json" \
      2> "$results/$run.raw.log" &
    raw_pid=$!
    local before=""
    if await_measuring "$results/$run.raw.log" "$raw_pid"; then
      # A cgroup without cpu.stat leaves the round unchecked, not failed.
      before=$(cap_snapshot "$daemon_group" "$echo_group" 2> /dev/null) ||
        before=""
      if [ -n "$capped_probe" ]; then
        "$capped_probe" "$run" "$echo_pid" ||
          log "the probe of $run failed"
      fi
    fi
    wait "$raw_pid" || ok=0
    # The differences over the echo half's span: "daemon_periods
    # daemon_throttled echo_periods echo_throttled cpu1_busy cpu1_total".
    local after=""
    if [ -n "$before" ] &&
       after=$(cap_snapshot "$daemon_group" "$echo_group" 2> /dev/null); then
      local -a from to spent=()
      read -r -a from <<< "$before"
      read -r -a to <<< "$after"
      for i in "${!from[@]}"; do spent+=($((to[i] - from[i]))); done
      echo "${spent[*]}" > "$results/$run.throttle"
    fi
  else
    ok=0
  fi
  wait "$load_pid" || ok=0
  [ "$ok" -eq 1 ] ||
    log "peerload $run failed (see $run.log and $run.raw.log)"
  kill -TERM "$echo_pid" 2>/dev/null || true
  wait "$echo_pid" 2>/dev/null || true
}
