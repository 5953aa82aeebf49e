#!/usr/bin/env bash
# The transfer benchmark: a 1 GiB peer-to-peer download (peerctl get from a
# holder peerctl, through a real peerconnectd) against baselines measured in
# the same run, interleaved, each repeated and reported as the median:
#
#   rawcopy      sendfile() -> loopback TCP -> recv()+write() into a file,
#                fsync of the file and its folder (bench/rawcopy.cc: the
#                downloader's receive path, without its hashing); timed to
#                the durable file (rawcopy), and in the same run also to the
#                last byte written, before the fsyncs (rawcopy-nofsync: a
#                copy that a crash may lose, which the downloader never is)
#   rawcopy-splice  the same, receiving with splice() through a pipe
#   peerctl      `peerctl --user getter get big.bin`, timed around the whole
#                command: process start, SCRAM login, GET, ticket, TLS 1.3
#                handshake with the holder's pinned key, encrypted download
#                (userspace TLS unless the kernel has kTLS) of the leaves and
#                the file, chunk checks on a pool of threads, fsync, rename,
#                logout
#   peerctl-plaintext  the same from a second holder started with
#                --plaintext-transfers (plain HTTP, sendfile and splice),
#                of big-plain.bin, a hard link to the same file
#   peerctl-slowloris  the TLS `peerctl get` again while bench/slowloris.py
#                holds 100 connections to the holder's file server, each
#                from its own 127.0.0.x address, dribbling a byte every 2 s
#                of a TLS record that never completes (started 3 s before
#                the get, so that every connection is open and pending)
#   sha256       `openssl dgst -sha256` (the libcrypto peerctl uses; else
#                sha256sum) of the page-cached source file: the hashing the
#                downloader adds to rawcopy's path, for reading the gap
#   nginx+curl   a throwaway nginx (sendfile on) serving the folder, fetched
#                with `curl -o`, then `sync FILE FOLDER` (coreutils fsyncs
#                each; curl itself neither preallocates nor fsyncs); timed
#                to the durable file (nginx+curl+sync), and also curl alone
#                (nginx+curl-nosync), in the same run
#
# It builds nothing. Usage:
#   bench/transfer.sh [BUILD_DIR] [--install-nginx] [--size-mib N] [--reps N]
#                     [--keep]
# --reps defaults to 5 (about two minutes for 1 GiB on the 2-core machine).
# BUILD_DIR defaults to build-bench (relative to the repository). nginx is
# measured when /usr/sbin/nginx exists; --install-nginx first tries
# `apt-get install -y nginx-light`, then `nginx`. The big files live in
# /tmp/pcfs-bench-transfer; the source file is reused when it has the right
# size, and everything there is deleted at the end unless --keep.
#
# Output: a table, and one machine-readable line per figure:
#   RESULT <name> <value>     e.g. RESULT transfer_peerctl_s 9.81
# (seconds are medians, *_all every round in order, *_vs_* speed ratios
# "ours / theirs" from the medians: above 1 means peerctl is faster;
# transfer_load_start/end are /proc/loadavg's first three fields).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build="$repo/build-bench"
install_nginx=0
size_mib=1024
reps=5
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --install-nginx) install_nginx=1 ;;
    --size-mib) size_mib=$2; shift ;;
    --reps) reps=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "transfer.sh: unknown option $1" >&2; exit 2 ;;
    *) case "$1" in /*) build=$1 ;; *) build="$PWD/$1" ;; esac ;;
  esac
  shift
done

rawcopy="$build/bench/rawcopy"
daemon="$build/daemon/peerconnectd"
peerctl="$build/peerctl/peerctl"
for binary in "$rawcopy" "$daemon" "$peerctl"; do
  if [ ! -x "$binary" ]; then
    echo "transfer.sh: $binary is missing: build it first" \
         "(ninja -C $build rawcopy peerconnectd peerctl)" >&2
    exit 1
  fi
done

work=/tmp/pcfs-bench-transfer
share="$work/share"
downloads="$work/downloads"
file=big.bin
source_file="$share/$file"
bytes=$((size_mib * 1024 * 1024))
step_timeout=300  # seconds, for any one step

daemon_pid=""
holder_pid=""
plain_holder_pid=""
nginx_pid=""
cleanup() {
  exec 3>&-  # closing the fifos ends the holder shells
  exec 4>&-
  for pid in $holder_pid $plain_holder_pid $nginx_pid $daemon_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $holder_pid $plain_holder_pid $nginx_pid $daemon_pid; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$keep" -eq 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

log() { echo "transfer.sh: $*" >&2; }

# Waits until file $1 contains the text $3: at most $2 seconds, and only
# while process $4 (if given) lives.
wait_for_text() {
  local file=$1 seconds=$2 text=$3 pid=${4:-} deadline=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if grep -qF -- "$text" "$file" 2>/dev/null; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      grep -qF -- "$text" "$file" 2>/dev/null
      return
    fi
    sleep 0.1
  done
  return 1
}

now_ns() { date +%s%N; }
seconds_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

free_tcp_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the file

mkdir -p "$share" "$downloads"
chmod 755 "$work" "$share"
if [ "$(stat -c %s "$source_file" 2>/dev/null || echo 0)" != "$bytes" ]; then
  log "writing $size_mib MiB of random bytes to $source_file"
  head -c "$bytes" /dev/urandom > "$source_file"
fi
# The plaintext holder's name for the same bytes (a hard link: the holder
# serves only regular files of its folder, never a symlink).
plain_file=big-plain.bin
rm -f "$share/$plain_file"
ln "$source_file" "$share/$plain_file"
# peerctl keeps its TLS identity in the state folder: a throwaway one.
export XDG_STATE_HOME="$work/xdg-state"

# ---- nginx (optional)

nginx=""
if [ ! -x /usr/sbin/nginx ] && [ "$install_nginx" -eq 1 ]; then
  log "installing nginx"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq nginx-light >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 || true
      apt-get install -y -qq nginx-light >/dev/null 2>&1 ||
      apt-get install -y -qq nginx >/dev/null 2>&1 || true; }
  # The package may start a system nginx on port 80; this benchmark does
  # not need it.
  systemctl stop nginx >/dev/null 2>&1 ||
    /usr/sbin/nginx -s quit >/dev/null 2>&1 || true
fi
if [ -x /usr/sbin/nginx ]; then nginx=/usr/sbin/nginx; fi

start_nginx() {
  local prefix="$work/nginx" port
  port=$(free_tcp_port)
  mkdir -p "$prefix/logs" "$prefix/tmp"
  # One process, no workers, so it needs no user switch; sendfile on, as a
  # static file server is usually set up.
  cat > "$prefix/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $prefix/logs/error.log;
pid $prefix/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $prefix/tmp/body;
  proxy_temp_path $prefix/tmp/proxy;
  fastcgi_temp_path $prefix/tmp/fastcgi;
  uwsgi_temp_path $prefix/tmp/uwsgi;
  scgi_temp_path $prefix/tmp/scgi;
  types { application/octet-stream bin; }
  server {
    listen 127.0.0.1:$port;
    root $share;
  }
}
EOF
  "$nginx" -p "$prefix" -c "$prefix/nginx.conf" &
  nginx_pid=$!
  nginx_url="http://127.0.0.1:$port/$file"
  local i
  for ((i = 0; i < 100; i++)); do
    if curl -sf -o /dev/null -r 0-0 "$nginx_url"; then return 0; fi
    sleep 0.1
  done
  log "nginx did not start: $(cat "$prefix/logs/error.log" 2>/dev/null)"
  return 1
}

if [ -n "$nginx" ] && ! command -v curl >/dev/null; then
  log "curl is missing: skipping nginx"
  nginx=""
fi
if [ -n "$nginx" ] && ! start_nginx; then nginx=""; fi

# ---- peerconnectd and the holder

printf 'holder holder-secret\ngetter getter-secret\nplainholder plain-secret\n' \
  > "$work/credentials.txt"
printf 'getter-secret\n' > "$work/getter.password"
"$daemon" --port=0 --bind=127.0.0.1 --credentials="$work/credentials.txt" \
  --state_dir="$work/state" 2> "$work/daemon.log" &
daemon_pid=$!
if ! wait_for_text "$work/daemon.log" 20 " (UDP" "$daemon_pid"; then
  log "peerconnectd did not start:"; cat "$work/daemon.log" >&2; exit 1
fi
# "... listening on 127.0.0.1:PORT (UDP, ..."
port=$(grep -m1 -F " (UDP" "$work/daemon.log" | sed -E 's/.*:([0-9]+) \(UDP.*/\1/')
server="127.0.0.1:$port"

rm -f "$work/holder.in"
mkfifo "$work/holder.in"
"$peerctl" --server "$server" --share_dir "$share" \
  < "$work/holder.in" > "$work/holder.out" 2>&1 &
holder_pid=$!
exec 3> "$work/holder.in"
# pub prints nothing when it works, so lpf right after it shows the file
# after an empty prompt ("> > NAME"); a failed pub prints why instead.
printf 'holder\nholder-secret\npub %s\nlpf\n' "$file" >&3
log "publishing $file (the holder hashes it first)"
if ! wait_for_text "$work/holder.out" "$step_timeout" \
    "> > $file" "$holder_pid"; then
  log "the holder could not publish:"; cat "$work/holder.out" >&2; exit 1
fi

rm -f "$work/plain.in"
mkfifo "$work/plain.in"
"$peerctl" --server "$server" --share_dir "$share" --plaintext-transfers \
  < "$work/plain.in" > "$work/plain.out" 2>&1 &
plain_holder_pid=$!
exec 4> "$work/plain.in"
printf 'plainholder\nplain-secret\npub %s\nlpf\n' "$plain_file" >&4
log "publishing $plain_file from the --plaintext-transfers holder"
if ! wait_for_text "$work/plain.out" "$step_timeout" \
    "> > $plain_file" "$plain_holder_pid"; then
  log "the plaintext holder could not publish:"; cat "$work/plain.out" >&2
  exit 1
fi
# The TLS holder's file server port, for the slowloris attack: the TCP port
# its process listens on.
holder_file_port=$(ss -Hltnp 2>/dev/null |
  awk -v pid="pid=$holder_pid," 'index($0, pid) { sub(/.*:/, "", $4); print $4; exit }')
if [ -z "$holder_file_port" ]; then
  log "cannot find the holder's file server port (ss -ltnp)"; exit 1
fi

# ---- the runs, interleaved

declare -a t_raw t_raw_written t_splice t_peer t_plain t_slow t_nginx t_nginx_nosync

# Before each timed step: commit the file system's journal, so that the
# previous step's deleted 1 GiB file (its freed blocks, and their discards
# on a file system mounted with -o discard) is written now, not during the
# next step's transfer. Every path is measured from the same quiet disk.
settle() { sync -f "$downloads"; }

# $1: extra flag. Prints "SECONDS WRITTEN_SECONDS" as rawcopy measured them:
# to the durable file, and to the last byte written.
run_rawcopy() {
  local out
  settle
  out=$(timeout "$step_timeout" "$rawcopy" --file "$source_file" \
        --out "$downloads/$file" $1) ||
    { log "rawcopy $1 failed"; rm -f "$downloads/$file"; return 1; }
  rm -f "$downloads/$file"
  echo "$out" |
    sed -E 's/.* seconds=([0-9.]+) written_seconds=([0-9.]+).*/\1 \2/' |
    awk '{ printf "%.3f %.3f", $1, $2 }'
}

# $1: the name to get (big.bin from the TLS holder, big-plain.bin from the
# plaintext one).
run_peerctl() {
  local start took name=$1
  rm -f "$downloads/$name"
  settle
  start=$(now_ns)
  timeout "$step_timeout" "$peerctl" --server "$server" --user getter \
    --password-file "$work/getter.password" --download_dir "$downloads" \
    get "$name" > "$work/get.out" 2>&1 ||
    { log "peerctl get failed:"; cat "$work/get.out" >&2; return 1; }
  took=$(seconds_since "$start")
  if [ "$(stat -c %s "$downloads/$name")" != "$bytes" ]; then
    log "peerctl get wrote the wrong size"; return 1
  fi
  rm -f "$downloads/$name"
  echo "$took"
}

# The TLS get while 100 slowloris connections hold the holder's file server.
run_peerctl_slowloris() {
  local took attack_pid
  python3 "$repo/bench/slowloris.py" 127.0.0.1 "$holder_file_port" \
    --connections 100 --interval 2 --max-seconds "$step_timeout" \
    > "$work/slowloris.out" 2>&1 &
  attack_pid=$!
  sleep 3
  if ! kill -0 "$attack_pid" 2>/dev/null; then
    log "slowloris.py failed:"; cat "$work/slowloris.out" >&2; return 1
  fi
  took=$(run_peerctl "$file") || { kill "$attack_pid"; wait "$attack_pid"; return 1; }
  kill "$attack_pid"; wait "$attack_pid" || true
  log "$(cat "$work/slowloris.out")"
  echo "$took"
}

# Prints "SECONDS CURL_SECONDS": curl then sync (the durable file), and
# curl alone, of the same fetch.
run_nginx() {
  local start curl_took took
  rm -f "$downloads/$file"
  settle
  start=$(now_ns)
  timeout "$step_timeout" curl -sf -o "$downloads/$file" "$nginx_url" ||
    { log "curl failed"; return 1; }
  curl_took=$(seconds_since "$start")
  sync "$downloads/$file" "$downloads" || return 1
  took=$(seconds_since "$start")
  if [ "$(stat -c %s "$downloads/$file")" != "$bytes" ]; then
    log "curl wrote the wrong size"; return 1
  fi
  rm -f "$downloads/$file"
  echo "$took $curl_took"
}

# The downloader hashes every byte it receives: how long SHA-256 of the
# (page-cached) file takes on this machine, to read the gap against rawcopy.
run_sha256() {
  local start
  start=$(now_ns)
  if command -v openssl >/dev/null; then
    openssl dgst -sha256 "$source_file" > /dev/null  # peerctl's libcrypto
  else
    sha256sum "$source_file" > /dev/null
  fi || return 1
  seconds_since "$start"
}

declare -a t_sha
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for ((rep = 1; rep <= reps; rep++)); do
  log "round $rep of $reps (load $(cut -d' ' -f1-3 /proc/loadavg))"
  out=$(run_rawcopy ""); read -r took written <<< "$out"; t_raw+=("$took")
  t_raw_written+=("$written")
  out=$(run_rawcopy --splice); read -r took _ <<< "$out"; t_splice+=("$took")
  took=$(run_peerctl "$file"); t_peer+=("$took")
  took=$(run_peerctl "$plain_file"); t_plain+=("$took")
  took=$(run_peerctl_slowloris); t_slow+=("$took")
  took=$(run_sha256); t_sha+=("$took")
  if [ -n "$nginx" ]; then
    out=$(run_nginx); read -r took curl_took <<< "$out"
    t_nginx+=("$took"); t_nginx_nosync+=("$curl_took")
  fi
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the figures

raw=$(median "${t_raw[@]}")
raw_written=$(median "${t_raw_written[@]}")
splice=$(median "${t_splice[@]}")
peer=$(median "${t_peer[@]}")
plain=$(median "${t_plain[@]}")
slow=$(median "${t_slow[@]}")
sha=$(median "${t_sha[@]}")
nginx_s=""
nginx_nosync_s=""
if [ -n "$nginx" ]; then
  nginx_s=$(median "${t_nginx[@]}")
  nginx_nosync_s=$(median "${t_nginx_nosync[@]}")
fi

mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
row() { printf '%-20s %10s %10s  %s\n' "$1" "$2" "$(mbps "$2")" "$3"; }

echo
echo "Transfer of $size_mib MiB on loopback, median of $reps interleaved rounds" \
  "(load $load_start at the start, $load_end at the end)"
printf '%-20s %10s %10s  %s\n' "path" "seconds" "MB/s" "all rounds (s)"
row "rawcopy" "$raw" "${t_raw[*]}"
row "rawcopy-nofsync" "$raw_written" "${t_raw_written[*]}"
row "rawcopy-splice" "$splice" "${t_splice[*]}"
row "peerctl get (TLS)" "$peer" "${t_peer[*]}"
row "peerctl-plaintext" "$plain" "${t_plain[*]}"
row "peerctl-slowloris" "$slow" "${t_slow[*]}"
if [ -n "$nginx" ]; then
  row "nginx+curl+sync" "$nginx_s" "${t_nginx[*]}"
  row "nginx+curl-nosync" "$nginx_nosync_s" "${t_nginx_nosync[*]}"
else
  echo "nginx+curl: not measured (no /usr/sbin/nginx; run with --install-nginx)"
fi
row "sha256" "$sha" "${t_sha[*]}"
echo "peerctl speed / rawcopy speed (both durable): $(ratio "$raw" "$peer")"
echo "peerctl speed / rawcopy-nofsync speed:        $(ratio "$raw_written" "$peer")"
echo "peerctl (TLS) speed / rawcopy-splice speed:   $(ratio "$splice" "$peer")"
echo "peerctl-plaintext / rawcopy-splice speed:     $(ratio "$splice" "$plain")"
echo "peerctl under slowloris / peerctl speed:      $(ratio "$peer" "$slow")"
if [ -n "$nginx" ]; then
  echo "peerctl speed / nginx+curl+sync speed:        $(ratio "$nginx_s" "$peer")"
  echo "peerctl speed / nginx+curl-nosync speed:      $(ratio "$nginx_nosync_s" "$peer")"
fi
echo

echo "RESULT transfer_bytes $bytes"
echo "RESULT transfer_reps $reps"
echo "RESULT transfer_load_start $load_start"
echo "RESULT transfer_load_end $load_end"
echo "RESULT transfer_rawcopy_s $raw"
echo "RESULT transfer_rawcopy_nofsync_s $raw_written"
echo "RESULT transfer_rawcopy_splice_s $splice"
echo "RESULT transfer_peerctl_s $peer"
echo "RESULT transfer_rawcopy_all ${t_raw[*]}"
echo "RESULT transfer_rawcopy_nofsync_all ${t_raw_written[*]}"
echo "RESULT transfer_rawcopy_splice_all ${t_splice[*]}"
echo "RESULT transfer_peerctl_all ${t_peer[*]}"
echo "RESULT transfer_peerctl_plaintext_s $plain"
echo "RESULT transfer_peerctl_plaintext_all ${t_plain[*]}"
echo "RESULT transfer_peerctl_slowloris_s $slow"
echo "RESULT transfer_peerctl_slowloris_all ${t_slow[*]}"
echo "RESULT transfer_slowloris_vs_peerctl $(ratio "$peer" "$slow")"
echo "RESULT transfer_peerctl_vs_rawcopy_splice $(ratio "$splice" "$peer")"
echo "RESULT transfer_peerctl_plaintext_vs_rawcopy_splice $(ratio "$splice" "$plain")"
echo "RESULT transfer_sha256_s $sha"
echo "RESULT transfer_sha256_all ${t_sha[*]}"
echo "RESULT transfer_peerctl_vs_rawcopy $(ratio "$raw" "$peer")"
echo "RESULT transfer_peerctl_vs_rawcopy_nofsync $(ratio "$raw_written" "$peer")"
echo "RESULT transfer_splice_vs_rawcopy $(ratio "$raw" "$splice")"
if [ -n "$nginx" ]; then
  echo "RESULT transfer_nginx_curl_s $nginx_s"
  echo "RESULT transfer_nginx_curl_all ${t_nginx[*]}"
  echo "RESULT transfer_nginx_curl_nosync_s $nginx_nosync_s"
  echo "RESULT transfer_nginx_curl_nosync_all ${t_nginx_nosync[*]}"
  echo "RESULT transfer_nginx_version $("$nginx" -v 2>&1 | sed 's/.*: //')"
  echo "RESULT transfer_peerctl_vs_nginx $(ratio "$nginx_s" "$peer")"
  echo "RESULT transfer_peerctl_vs_nginx_nosync $(ratio "$nginx_nosync_s" "$peer")"
else
  echo "RESULT transfer_nginx_curl_s none"
fi
