#!/usr/bin/env bash
# Checks the Debian packages as Debian would: lintian finds no error and no
# warning, and each package holds what an administrator expects of it.
#
#   tests/system/lintian_test.sh DEBS_DIR
#
# DEBS_DIR is packaging/build-debs.sh's output folder.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DEBS_DIR" >&2; exit 2; }
debs=$1
log() { echo "lintian_test: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
passed=0
pass() { log "ok: $*"; passed=$((passed + 1)); }
command -v lintian >/dev/null || fail "lintian is missing: run packaging/install-deps.sh"

daemon=$(ls -t "$debs"/peerconnectd_*_amd64.deb | head -1)
client=$(ls -t "$debs"/peerctl_*_amd64.deb | head -1)
[ -f "$daemon" ] && [ -f "$client" ] || fail "no packages in $debs"
version=$(dpkg-deb -f "$daemon" Version)
for dbgsym in "$debs/peerconnectd-dbgsym_${version}_amd64.deb" \
              "$debs/peerctl-dbgsym_${version}_amd64.deb"; do
  [ -f "$dbgsym" ] || fail "missing $(basename "$dbgsym")"
done
pass "peerconnectd, peerctl and their -dbgsym packages, version $version"

# lintian complains about running as root on stderr; that is not a tag.
if ! out=$(lintian --fail-on error,warning "$daemon" "$client" 2>/dev/null); then
  fail "lintian:\n$out"
fi
tags=$(grep -E '^[EW]: ' <<<"$out" || true)
[ -z "$tags" ] || fail "lintian errors or warnings:\n$tags"
pass "lintian: no errors, no warnings"

contents() { dpkg-deb -c "$1" | awk '{print $6}'; }
has() {  # has DEB PATH
  contents "$1" | grep -qx "$2" || fail "$(basename "$1") lacks $2"
}
has "$daemon" ./usr/sbin/peerconnectd
has "$daemon" ./lib/systemd/system/peerconnectd.service
has "$daemon" ./usr/share/man/man8/peerconnectd.8.gz
has "$daemon" ./usr/share/bash-completion/completions/peerconnectd
has "$daemon" ./usr/share/doc/peerconnectd/copyright
has "$client" ./usr/bin/peerctl
has "$client" ./usr/share/man/man1/peerctl.1.gz
has "$client" ./usr/share/bash-completion/completions/peerctl
has "$client" ./usr/share/doc/peerctl/copyright
has "$client" ./usr/lib/systemd/user/peerctl.service
if contents "$client" | grep -q peerconnectd; then
  fail "peerctl ships something of the daemon"
fi
pass "each package holds its binary, man page, completion and copyright"

conffiles=$(dpkg-deb --ctrl-tarfile "$daemon" | tar -xO ./conffiles)
[ "$conffiles" = /etc/peerconnect/peerconnectd.flags ] ||
  fail "conffiles: '$conffiles'"
flags=$(dpkg-deb --fsys-tarfile "$daemon" | tar -xO ./etc/peerconnect/peerconnectd.flags)
grep -qx -- "--metrics=127.0.0.1:9650" <<<"$flags" ||
  fail "the packaged flags do not turn the metrics on at 127.0.0.1:9650"
pass "the flags file is a conffile and turns metrics on at 127.0.0.1:9650"

# Stripped, hardened binaries: no .debug_info, BIND_NOW, and none of
# lintian's hardening-* tags (its info level names a binary built without
# bind-now, PIE, relro, stack protector or _FORTIFY_SOURCE where fortified
# functions exist). Outputs are captured first: `readelf | grep -q` would
# fail under pipefail when grep stops reading early.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
dpkg-deb -x "$daemon" "$tree"
dpkg-deb -x "$client" "$tree"
for bin in "$tree/usr/sbin/peerconnectd" "$tree/usr/bin/peerctl"; do
  sections=$(readelf -S "$bin")
  if grep -q '\.debug_info' <<<"$sections"; then fail "$bin is not stripped"; fi
  dynamic=$(readelf -d "$bin")
  grep -qE 'BIND_NOW|FLAGS_1.*NOW' <<<"$dynamic" || fail "$bin is not linked with -z now"
done
info=$(lintian -I "$daemon" "$client" 2>/dev/null || true)
hardening=$(grep -E 'hardening-' <<<"$info" || true)
[ -z "$hardening" ] || fail "lintian hardening tags:\n$hardening"
pass "binaries stripped and hardened (bind-now; no lintian hardening tags)"

echo "lintian_test: $passed passed, 0 failed"
