#!/usr/bin/env bash
# The benchmark tools end to end, briefly (a CTest of the release tree,
# bench/CMakeLists.txt):
# - peerload --compare-raw against a real daemon on loopback, 20 peers for
#   1 s a half: both halves answered, no errors or timeouts (the raw half
#   seals each request and opens its echo, so a request that the echo did
#   not give back whole, or a mismatch of keys, would time out);
# - peerload --echo-cgroup naming no cgroup: refused with a message;
# - bench/measure/overload.sh: --help, and its refusals of bad arguments;
# - the tools' refusals of a bad flag or value (exit 2).
#   bench/peerload_smoke_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: peerload_smoke_test.sh BUILD_DIR}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
daemon=""
trap '[ -n "$daemon" ] && kill "$daemon" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "peerload_smoke_test: $*" >&2; exit 1; }

peerload=$build/bench/peerload
"$peerload" --make-credentials 20 > "$tmp/credentials.txt"
: > "$tmp/daemon.log"
"$build/daemon/peerconnectd" --port=0 --bind=127.0.0.1 \
  --credentials="$tmp/credentials.txt" --threads=1 \
  --state_dir="$tmp/state" 2> "$tmp/daemon.log" &
daemon=$!
for ((i = 0; i < 100; i++)); do
  grep -qF " (UDP" "$tmp/daemon.log" && break
  kill -0 "$daemon" 2>/dev/null || fail "the daemon did not start: $(cat "$tmp/daemon.log")"
  sleep 0.1
done
port=$(grep -m1 -F " (UDP" "$tmp/daemon.log" | sed -E 's/.*:([0-9]+) \(UDP.*/\1/')
[ -n "$port" ] || fail "no port in the daemon's log"

timeout 60 "$peerload" --server "127.0.0.1:$port" \
  --credentials "$tmp/credentials.txt" --peers 20 --duration 1s \
  --mix heartbeat=1 --compare-raw --json > "$tmp/out.json" 2> "$tmp/peerload.log" ||
  fail "peerload --compare-raw failed: $(tail -3 "$tmp/peerload.log")"
python3 - "$tmp/out.json" <<'PY' || fail "bad --compare-raw result: $(cat "$tmp/out.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["responses_per_s"] > 0, "no responses from the daemon"
assert j["baseline_responses_per_s"] > 0, "no responses from the echo"
assert j["errors"] == 0 and j["timeouts"] == 0, "daemon half had errors"
assert j["baseline_timeouts"] == 0, "echo half had timeouts"
PY

if timeout 60 "$peerload" --server "127.0.0.1:$port" \
     --credentials "$tmp/credentials.txt" --peers 5 --duration 1s \
     --mix heartbeat=1 --compare-raw --echo-cgroup "$tmp/no-such-cgroup" \
     > /dev/null 2> "$tmp/cgroup.log"; then
  fail "--echo-cgroup with no cgroup there was not refused"
fi
grep -q "cannot move udp_echo into the cgroup $tmp/no-such-cgroup" \
  "$tmp/cgroup.log" || fail "no clear message: $(tail -2 "$tmp/cgroup.log")"

overload=bench/measure/overload.sh
bash "$overload" --help | grep -q "Overload on purpose" ||
  fail "overload.sh --help printed no help"
for args in "" "$build" "$build $tmp abc" "$build $tmp 0" "/nonexistent $tmp"; do
  status=0
  # shellcheck disable=SC2086
  bash "$overload" $args > /dev/null 2> "$tmp/overload.log" || status=$?
  [ "$status" -eq 2 ] || fail "overload.sh $args: exit $status, not 2"
  grep -q "^overload.sh: " "$tmp/overload.log" ||
    fail "overload.sh $args: no message"
done
# A bad flag or value is a usage error of the tool, exit 2, named.
for cmd in "peerload --peers=x" "peerload --compare-raw=2" "peerload --bogus" \
           "peerload extra" "udp_echo --port=abc" "stall_probe --duration" \
           "rawcopy --splice=maybe" "cluster_propagation --count=many"; do
  read -r -a words <<< "$cmd"
  tool=${words[0]}
  status=0
  "$build/bench/$tool" "${words[@]:1}" > /dev/null 2> "$tmp/flags.log" ||
    status=$?
  [ "$status" -eq 2 ] || fail "$cmd: exit $status, not 2"
  grep -q "^$tool: .*--\|^$tool: unexpected argument 'extra'" "$tmp/flags.log" ||
    fail "$cmd: no message naming it: $(cat "$tmp/flags.log")"
done
echo "peerload_smoke_test: passed"
