#!/usr/bin/env bash
# The Debian package and its systemd unit under real systemd: boots a
# debootstrapped Debian 12 with systemd-nspawn, installs the package in it as
# an operator would (dpkg -i while systemd runs), and checks that
#   - the postinst enabled the unit and it reaches "active" (Type=notify),
#   - peerctl on the host logs in, publishes and lists through it,
#   - `systemctl reload` (SIGHUP) re-reads the credentials: a new user can
#     log in without a restart,
#   - publications survive `systemctl restart` (StateDirectory),
#   - the daemon runs as the peerconnect user, and the watchdog is armed,
#   - `systemd-analyze security` scores the unit (printed, and must stay
#     below 3.0, "OK").
# Not part of scripts/test.sh: it needs root, the network to Debian's
# archive the first time (debootstrap), and a few minutes.
#
#   tests/system/service_test.sh [BUILD_DIR]     (default: build)
#
# The base tree is cached in $PCFS_NSPAWN_BASE (default
# /var/tmp/pcfs-bookworm); each run boots a fresh copy of it and removes it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(realpath -m "${1:-$repo/build}")
base=${PCFS_NSPAWN_BASE:-/var/tmp/pcfs-bookworm}
machine=pcfs-service-test
log() { echo "service_test: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (systemd-nspawn)"
for tool in debootstrap systemd-nspawn; do
  if ! command -v "$tool" >/dev/null; then
    log "installing debootstrap and systemd-container"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends debootstrap systemd-container >/dev/null
    break
  fi
done

# ---- the package
log "building the package in $build"
cmake --build "$build" --target peerconnectd peerctl >/dev/null
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls -t "$build"/peerconnectfs_*_amd64.deb | head -1)
peerctl="$build/peerctl/peerctl"

# ---- the base tree: Debian 12 with systemd and the package's dependencies
if [ ! -x "$base/lib/systemd/systemd" ]; then
  log "debootstrapping Debian 12 into $base (once)"
  rm -rf "$base"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,adduser,libabsl20220623,liburing2,libssl3,libsystemd0,procps \
    bookworm "$base" http://deb.debian.org/debian >/dev/null
fi

work=$(mktemp -d /var/tmp/pcfs-service-test.XXXXXX)
root="$work/root"
nspawn_pid=""
cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true  # nspawn: shut down
    for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
log "copying the base tree"
cp -a "$base" "$root"
cp "$deb" "$root/var/tmp/peerconnectfs.deb"

# A UDP port free on the host: the container shares the host's network.
port=""
for _ in $(seq 1 50); do
  candidate=$((40000 + RANDOM % 20000))
  if ! ss -Hlun "sport = :$candidate" | grep -q .; then port=$candidate; break; fi
done
[ -n "$port" ] || fail "no free UDP port"

# ---- boot
log "booting $machine (console in $work/console.log)"
systemd-nspawn --quiet --boot --directory="$root" --machine="$machine" \
  --register=no --keep-unit --console=read-only > "$work/console.log" 2>&1 < /dev/null &
nspawn_pid=$!
leader=""
for _ in $(seq 1 100); do
  leader=$(pgrep -P "$nspawn_pid" | head -1 || true)
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || fail "the container did not start: $(tail -5 "$work/console.log")"
inside() { nsenter --target "$leader" --mount --uts --ipc --net --pid --root --wd -- "$@"; }
state=""
for _ in $(seq 1 300); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.2
done
case "$state" in running|degraded) ;; *) fail "systemd did not come up ($state)" ;; esac
log "systemd is $state"

# ---- install as an operator would
inside dpkg -i /var/tmp/peerconnectfs.deb > "$work/dpkg.log" 2>&1 ||
  fail "dpkg -i: $(tail -5 "$work/dpkg.log")"
inside systemctl is-enabled peerconnectd >/dev/null ||
  fail "the postinst did not enable peerconnectd.service"
inside sed -i "s/^--port=.*/--port=$port/" /etc/peerconnect/peerconnectd.flags
printf 'hans hanspass\nvader vaderpass\n' |
  inside tee /etc/peerconnect/credentials.txt >/dev/null
inside systemctl restart peerconnectd ||
  fail "start: $(inside journalctl -u peerconnectd --no-pager | tail -20)"
[ "$(inside systemctl is-active peerconnectd)" = active ] ||
  fail "not active: $(inside journalctl -u peerconnectd --no-pager | tail -20)"
log "peerconnectd.service is active on UDP port $port"
# Which reactor backend the sandbox left it (io_uring unless it fell back).
log "its log: $(inside journalctl -u peerconnectd -o cat --no-pager |
                grep -m1 -iE 'io_uring|epoll' || echo 'no backend line')"

# ---- drive it from the host
share="$work/share"
mkdir -p "$share"
echo "Do. Or do not." > "$share/BitTrickle.mp4"
echo hanspass > "$work/hans.password"
echo vaderpass > "$work/vader.password"
echo yodapass > "$work/yoda.password"
run() {  # run USER COMMAND [ARG]: peerctl's one-shot form, from the share
  local user=$1; shift
  (cd "$share" && timeout 30 "$peerctl" --server "127.0.0.1:$port" \
     --user "$user" --password-file "$work/$user.password" "$@")
}
run hans pub BitTrickle.mp4 > /dev/null || fail "pub through the service"
[ "$(run hans lpf)" = BitTrickle.mp4 ] || fail "lpf after pub"
log "pub and lpf work through the service"

# An unknown user is refused (exit 3) until a reload brings it in.
if run yoda lap > /dev/null 2>&1; then fail "yoda logged in before being added"; fi
echo "yoda yodapass" | inside tee -a /etc/peerconnect/credentials.txt >/dev/null
inside systemctl reload peerconnectd
ok=0
for _ in $(seq 1 20); do
  if run yoda lap > /dev/null 2>&1; then ok=1; break; fi
  sleep 0.25
done
[ "$ok" -eq 1 ] || fail "yoda still refused after systemctl reload"
log "systemctl reload re-read the credentials"

# Publications are durable state: they survive a restart.
inside systemctl restart peerconnectd
[ "$(inside systemctl is-active peerconnectd)" = active ] || fail "restart"
[ "$(run hans lpf)" = BitTrickle.mp4 ] || fail "the publication did not survive a restart"
log "publications survive systemctl restart"

# It runs as its own user, with the watchdog armed.
user=$(inside ps -o user= -C peerconnectd | head -1)
[ "$user" = peerconnect ] || fail "runs as '$user', not peerconnect"
watchdog=$(inside systemctl show peerconnectd -p WatchdogUSec --value)
[ "$watchdog" != 0 ] && [ "$watchdog" != infinity ] || fail "no watchdog ($watchdog)"
log "runs as $user; watchdog $watchdog"

# ---- the sandbox's score
score_line=$(systemd-analyze security --offline=true \
  "$repo/systemd/peerconnectd.service" 2>/dev/null | tail -1)
log "systemd-analyze security: $score_line"
score=$(echo "$score_line" | grep -oE '[0-9]+\.[0-9]+' | head -1)
[ -n "$score" ] || fail "no score from systemd-analyze"
awk -v s="$score" 'BEGIN { exit !(s < 3.0) }' || fail "exposure $score is not below 3.0"

echo "service_test: 6 passed, 0 failed"
