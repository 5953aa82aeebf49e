#!/usr/bin/env bash
# The Debian packages and their systemd unit under real systemd: boots a
# debootstrapped Debian 12 with systemd-nspawn (a private network, so no port
# on the host is touched), installs peerconnectd and peerctl in it as an
# operator would (dpkg -i while systemd runs), and checks
#   - install: the service is enabled and started (dh_installsystemd),
#   - `peerconnectd ping` answers, and a peerctl session (login, pub, lpf)
#     works through it; the packaged flags serve metrics on 127.0.0.1:9650,
#   - reload with good credentials: a new user can log in,
#   - a failed login is in the journal at warning, with user and address,
#   - reload with bad credentials: `systemctl reload` fails, the journal says
#     why at err, and the old credentials stay in force,
#   - upgrade (a package with a higher version): the daemon is restarted (a
#     new MainPID) and the administrator's edit of the conffile is kept,
#   - a service the administrator disabled stays disabled across an upgrade,
#   - purge removes the state and the configuration, and keeps (and names)
#     a file the administrator put in /etc/peerconnect,
#   - `systemd-analyze security` scores the unit at or below 2.0.
#
#   tests/system/service_test.sh [DEBS_DIR]
#
# DEBS_DIR holds peerconnectd_*.deb and peerctl_*.deb (default: built now
# with packaging/build-debs.sh into build-debs/out). Needs root. The
# debootstrapped base tree is kept in .cache/service-test/base (ignored by
# git), so only the first run needs the network; each run boots an overlay
# of it that is thrown away.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache="$repo/.cache/service-test"
base="$cache/base"
machine=pcfs-service-test
log() { echo "service_test: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
passed=0
pass() { log "ok: $*"; passed=$((passed + 1)); }

[ "$(id -u)" -eq 0 ] || fail "needs root (systemd-nspawn)"
for tool in debootstrap systemd-nspawn dpkg-deb; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run packaging/install-deps.sh"
done

# ---- the packages
debs=${1:-}
if [ -z "$debs" ]; then
  debs="$repo/build-debs/out"
  log "building the packages into $debs"
  "$repo/packaging/build-debs.sh" "$debs" >/dev/null
fi
daemon_deb=$(ls -t "$debs"/peerconnectd_*_amd64.deb | head -1)
client_deb=$(ls -t "$debs"/peerctl_*_amd64.deb | head -1)
[ -f "$daemon_deb" ] && [ -f "$client_deb" ] || fail "no packages in $debs"
version=$(dpkg-deb -f "$daemon_deb" Version)

# ---- the base tree: Debian 12 with systemd and the packages' dependencies
# The dependencies are read from the packages themselves (first choice of
# each alternative), so a new library dependency cannot be forgotten here.
deps=$(for deb in "$daemon_deb" "$client_deb"; do dpkg-deb -f "$deb" Depends; done |
  tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g' | grep -v '^$' |
  sort -u | paste -sd, -)
include="systemd,systemd-sysv,dbus,adduser,procps,$deps"
if [ "$(cat "$base.ok" 2>/dev/null)" != "$include" ]; then
  log "debootstrapping Debian 12 into $base (once; needs the network)"
  rm -rf "$base" "$base.ok"
  mkdir -p "$cache"
  debootstrap --variant=minbase --include="$include" bookworm "$base" \
    http://deb.debian.org/debian > "$cache/debootstrap.log" 2>&1 ||
    fail "debootstrap: $(tail -5 "$cache/debootstrap.log")"
  echo "$include" > "$base.ok"
fi

work=$(mktemp -d "$cache/run.XXXXXX")
root="$work/root"
nspawn_pid=""
mounted=""
cleanup() {
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid" 2>/dev/null || true  # nspawn: shut down
    for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  if [ -n "$mounted" ]; then umount "$root" 2>/dev/null || umount -l "$root" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$root" "$work/upper" "$work/overlay-work"
# An overlay over the cached base: nothing is copied and the base stays
# clean. Where overlayfs is not available, a copy.
if mount -t overlay overlay \
     -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/overlay-work" \
     "$root" 2>/dev/null; then
  mounted=1
else
  log "no overlayfs here: copying the base tree"
  rmdir "$root"
  cp -a "$base" "$root"
fi

# The upgrades: the same packages with higher versions, repacked.
repack() {  # repack DEB VERSION OUT
  local tree="$work/repack"
  rm -rf "$tree"
  dpkg-deb -R "$1" "$tree"
  sed -i "s/^Version: .*/Version: $2/" "$tree/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$tree" "$3" >/dev/null
}
mkdir -p "$root/var/tmp/debs"
cp "$daemon_deb" "$root/var/tmp/debs/peerconnectd.deb"
cp "$client_deb" "$root/var/tmp/debs/peerctl.deb"
repack "$daemon_deb" "$version+upgrade1" "$root/var/tmp/debs/peerconnectd-2.deb"
repack "$daemon_deb" "$version+upgrade2" "$root/var/tmp/debs/peerconnectd-3.deb"

# ---- boot
log "booting $machine (console in $work/console.log)"
systemd-nspawn --quiet --boot --directory="$root" --machine="$machine" \
  --private-network --register=no --keep-unit --console=read-only \
  > "$work/console.log" 2>&1 < /dev/null &
nspawn_pid=$!
# The container's init is nspawn's child running systemd; nspawn may have
# short-lived children of its own first, so match the command, not the
# first child.
leader=""
for _ in $(seq 1 200); do
  leader=$(pgrep -P "$nspawn_pid" -x systemd | head -1 || true)
  [ -n "$leader" ] && break
  kill -0 "$nspawn_pid" 2>/dev/null || break
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
journal() { inside journalctl -u peerconnectd -o cat --no-pager | tail -20; }
main_pid() { inside systemctl show peerconnectd -p MainPID --value; }

# ---- install as an operator would
inside dpkg -i /var/tmp/debs/peerconnectd.deb /var/tmp/debs/peerctl.deb \
  > "$work/dpkg.log" 2>&1 || fail "dpkg -i: $(tail -5 "$work/dpkg.log")"
[ "$(inside systemctl is-enabled peerconnectd)" = enabled ] ||
  fail "the package did not enable peerconnectd.service"
active=""
for _ in $(seq 1 50); do
  active=$(inside systemctl is-active peerconnectd || true)
  [ "$active" = active ] && break
  sleep 0.1
done
[ "$active" = active ] || fail "not started on install ($active): $(journal)"
pass "install: enabled and started (peerconnectd $version)"

inside peerconnectd ping 127.0.0.1:50000 > "$work/ping.log" 2>&1 ||
  fail "peerconnectd ping: $(cat "$work/ping.log")"
pass "peerconnectd ping: $(cat "$work/ping.log")"
metrics=$(inside bash -c 'exec 3<>/dev/tcp/127.0.0.1/9650 &&
  printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' || true)
grep -q '^pcfs_build_info{version=' <<<"$metrics" ||
  fail "no metrics on 127.0.0.1:9650: $metrics"
pass "the packaged flags serve metrics on 127.0.0.1:9650"

# ---- a peerctl session through the service, after a good reload
inside sh -c 'mkdir -p /var/tmp/share && echo "Do. Or do not." > /var/tmp/share/BitTrickle.mp4
  for u in hans yoda; do echo "${u}pass" > /var/tmp/$u.password; done'
run() {  # run USER COMMAND [ARG]: the installed peerctl, one-shot
  local user=$1; shift
  inside timeout 30 peerctl --server 127.0.0.1:50000 --user "$user" \
    --password-file "/var/tmp/$user.password" --share-dir /var/tmp/share "$@"
}
echo "hans hanspass" | inside tee /etc/peerconnect/credentials.txt >/dev/null
inside systemctl reload peerconnectd || fail "reload with good credentials: $(journal)"
run hans pub BitTrickle.mp4 > /dev/null || fail "pub through the service: $(journal)"
[ "$(run hans lpf)" = BitTrickle.mp4 ] || fail "lpf after pub"
pass "a peerctl session (login, pub, lpf) through the service"

if run yoda lap > /dev/null 2>&1; then fail "yoda logged in before being added"; fi
inside journalctl -u peerconnectd -p warning -o cat --no-pager |
  grep -q "failed login for user yoda from 127.0.0.1:" ||
  fail "no failed-login warning with the user and address: $(journal)"
echo "yoda yodapass" | inside tee -a /etc/peerconnect/credentials.txt >/dev/null
inside systemctl reload peerconnectd || fail "reload: $(journal)"
run yoda lap > /dev/null || fail "yoda still refused after systemctl reload"
pass "reload with good credentials: a new user logs in"

pid_before=$(main_pid)
inside cp /etc/peerconnect/credentials.txt /var/tmp/credentials.good
printf 'hans hanspass\nluke\n' | inside tee /etc/peerconnect/credentials.txt >/dev/null
if inside systemctl reload peerconnectd 2> "$work/reload.log"; then
  fail "systemctl reload succeeded with a bad credentials file"
fi
inside journalctl -u peerconnectd -p err -o cat --no-pager | grep -q "check-config: .*credentials.txt" ||
  fail "the journal does not say at err why the reload failed: $(journal)"
[ "$(main_pid)" = "$pid_before" ] || fail "a failed reload restarted the daemon"
run yoda lap > /dev/null || fail "the old credentials are not in force after a failed reload"
inside cp /var/tmp/credentials.good /etc/peerconnect/credentials.txt
pass "reload with bad credentials fails, says why, keeps the old ones"

# A flag no daemon could use is a usage error of check-config (exit 2),
# and the journal says which at err, as for the credentials.
inside cp /etc/peerconnect/peerconnectd.flags /var/tmp/flags.good
echo "--io=poll" | inside tee -a /etc/peerconnect/peerconnectd.flags >/dev/null
if inside systemctl reload peerconnectd 2> "$work/reload.log"; then
  fail "systemctl reload succeeded with --io=poll in the flags"
fi
inside journalctl -u peerconnectd -p err -o cat --no-pager |
  grep -q "peerconnectd: --io must be auto, uring or epoll, not 'poll'" ||
  fail "the journal does not say at err which flag was refused: $(journal)"
[ "$(main_pid)" = "$pid_before" ] || fail "a refused reload restarted the daemon"
inside cp /var/tmp/flags.good /etc/peerconnect/peerconnectd.flags
inside systemctl reload peerconnectd || fail "reload with the flags restored: $(journal)"
pass "reload with a bad flag fails, and the journal names the flag at err"

# ---- upgrade: restarted, the edited conffile kept
echo "--threads=2" | inside tee -a /etc/peerconnect/peerconnectd.flags >/dev/null
pid_before=$(main_pid)
inside dpkg -i /var/tmp/debs/peerconnectd-2.deb > "$work/dpkg.log" 2>&1 ||
  fail "upgrade: $(tail -5 "$work/dpkg.log")"
[ "$(inside systemctl is-active peerconnectd)" = active ] || fail "not active after upgrade: $(journal)"
pid_after=$(main_pid)
[ "$pid_after" != "$pid_before" ] || fail "the upgrade did not restart the daemon (MainPID $pid_after)"
inside grep -qx -- "--threads=2" /etc/peerconnect/peerconnectd.flags ||
  fail "the upgrade reverted the edited peerconnectd.flags"
inside journalctl -u peerconnectd -o cat --no-pager | grep -q "2 threads" ||
  fail "the restarted daemon did not read the edited flags: $(journal)"
[ "$(run hans lpf)" = BitTrickle.mp4 ] || fail "the publication did not survive the upgrade"
pass "upgrade: restarted (MainPID $pid_before -> $pid_after), edited conffile kept"

# ---- disabled stays disabled across an upgrade
inside systemctl disable --now peerconnectd 2>/dev/null
inside dpkg -i /var/tmp/debs/peerconnectd-3.deb > "$work/dpkg.log" 2>&1 ||
  fail "upgrade: $(tail -5 "$work/dpkg.log")"
enabled=$(inside systemctl is-enabled peerconnectd || true)
[ "$enabled" = disabled ] || fail "the upgrade re-enabled a disabled service ($enabled)"
pass "a disabled service stays disabled across an upgrade"

# ---- the sandbox's score
score_line=$(inside systemd-analyze security --no-pager peerconnectd.service 2>/dev/null | tail -1)
score=$(echo "$score_line" | grep -oE '[0-9]+\.[0-9]+' | head -1)
[ -n "$score" ] || fail "no score from systemd-analyze security: $score_line"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score is above 2.0"
pass "systemd-analyze security: $score_line"

# ---- purge
inside systemctl start peerconnectd
inside dpkg --purge peerconnectd > "$work/dpkg.log" 2>&1 ||
  fail "purge: $(tail -5 "$work/dpkg.log")"
for gone in /etc/peerconnect /var/lib/peerconnect /usr/sbin/peerconnectd; do
  if inside test -e "$gone"; then fail "$gone is still there after purge"; fi
done
if inside pgrep -x peerconnectd >/dev/null; then fail "peerconnectd still runs after purge"; fi
pass "purge removes the state and the configuration"

# A file of the administrator's in /etc/peerconnect (a Redis password
# file, as docs/OPERATIONS.md suggests) stays, and the purge says so.
inside dpkg -i /var/tmp/debs/peerconnectd.deb > "$work/dpkg.log" 2>&1 ||
  fail "dpkg -i again: $(tail -5 "$work/dpkg.log")"
inside sh -c 'echo secret > /etc/peerconnect/redis-password'
inside dpkg --purge peerconnectd > "$work/dpkg.log" 2>&1 ||
  fail "purge: $(tail -5 "$work/dpkg.log")"
grep -q "/etc/peerconnect kept: it holds files the package did not install" \
  "$work/dpkg.log" || fail "purge did not say what it kept: $(tail -5 "$work/dpkg.log")"
inside test -e /etc/peerconnect/redis-password ||
  fail "purge removed the administrator's redis-password"
for gone in /etc/peerconnect/credentials.txt /etc/peerconnect/peerconnectd.flags \
            /var/lib/peerconnect; do
  if inside test -e "$gone"; then fail "$gone is still there after purge"; fi
done
pass "purge keeps the administrator's own files in /etc/peerconnect, and says so"

echo "service_test: $passed passed, 0 failed"
