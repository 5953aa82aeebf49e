#!/usr/bin/env bash
# bench/measure/ab.sh end to end, briefly (a CTest of the release tree,
# bench/CMakeLists.txt): one pair of 1 s rounds of the build tree's daemon
# against itself. Checks the lines it prints (a round each, then the
# geometric mean), that both sides answered, that the mean of an A/A run
# is within a factor of 1.5 of 1 (a side that never ran, or a ratio taken
# the wrong way round, is off by far more), that it removed its cgroups,
# and that it refuses bad arguments. Skipped (exit 77) without a writable
# cpu cgroup (not root).
#   bench/ab_smoke_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: ab_smoke_test.sh BUILD_DIR}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "ab_smoke_test: $*" >&2; exit 1; }
daemon=$build/daemon/peerconnectd

bash bench/measure/ab.sh --help | grep -q "^usage: ab.sh DAEMON_A DAEMON_B" ||
  fail "--help prints no usage"
if bash bench/measure/ab.sh "$daemon" 2> "$tmp/usage.err"; then
  fail "too few arguments were accepted"
fi
grep -q "usage: ab.sh" "$tmp/usage.err" || fail "no usage line: $(cat "$tmp/usage.err")"
if bash bench/measure/ab.sh "$daemon" /nonexistent "$tmp/x" 2> "$tmp/bad.err"; then
  fail "a missing binary was accepted"
fi
grep -q "not an executable: /nonexistent" "$tmp/bad.err" ||
  fail "no word on the missing binary: $(cat "$tmp/bad.err")"

if ! bash bench/measure/ab.sh "$daemon" "$daemon" "$tmp/out" --pairs 1 \
     --seconds 1 > "$tmp/ab.out" 2> "$tmp/ab.err"; then
  if grep -q "no writable cgroup" "$tmp/ab.err"; then
    echo "ab_smoke_test: skipped: no writable cpu cgroup (run as root)"
    exit 77
  fi
  fail "ab.sh failed: $(tail -5 "$tmp/ab.err")"
fi
cat "$tmp/ab.out"
[ "$(grep -c '^round [12]: A [0-9]*/s, B [0-9]*/s, B/A [0-9.]*$' "$tmp/ab.out")" = 2 ] ||
  fail "not two round lines"
mean=$(sed -n 's/^geometric mean B\/A \([0-9.]*\) over 2 rounds (mix get=1)$/\1/p' \
  "$tmp/ab.out")
[ -n "$mean" ] || fail "no geometric mean line"
awk -v m="$mean" 'BEGIN { exit !(m > 1 / 1.5 && m < 1.5) }' ||
  fail "an A/A run's mean is $mean"
if grep -q ' A 0/s\| B 0/s' "$tmp/ab.out"; then fail "a side answered nothing"; fi
cmp -s "$tmp/ab.out" "$tmp/out/ab.txt" || fail "ab.txt is not what it printed"
for cgroup in /sys/fs/cgroup/cpu/pcfs-bench-ab-1 /sys/fs/cgroup/pcfs-bench-ab-1; do
  [ ! -d "$cgroup" ] || fail "$cgroup was left behind"
done
echo "ab_smoke_test: passed"
