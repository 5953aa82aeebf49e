#!/usr/bin/env bash
# bench/measure/cost_split.sh end to end, briefly (a CTest of the release
# tree, bench/CMakeLists.txt): one --quick round of each mix against a real
# daemon and udp_echo, then the report's section from its result folder.
# Checks that perf's samples were split into the table, and that the ratio
# the samples imply is that of the round's responses/s within a factor of
# 1.5 (a wrong normalisation, per datagram or per second, is off by far
# more), and that the round recorded how often each server's cap held it
# back (run_capped's RUN.throttle, which the peerload part's report reads).
# Skipped (exit 77) where the part cannot run: no perf, no
# permission to sample, no writable cpu cgroup (not root).
#   bench/cost_split_smoke_test.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: cost_split_smoke_test.sh BUILD_DIR}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "cost_split_smoke_test: $*" >&2; exit 1; }

: > "$tmp/run.txt"
: > "$tmp/commands.txt"
bash bench/measure/cost_split.sh "$build" "$tmp" --quick 2> "$tmp/split.log" ||
  fail "cost_split.sh failed: $(tail -5 "$tmp/split.log")"
if note=$(grep -m1 '^split_note ' "$tmp/run.txt"); then
  echo "cost_split_smoke_test: skipped: ${note#split_note }"
  exit 77
fi
python3 - "$tmp" <<'PY' || fail "bad split (log: $(tail -5 "$tmp/split.log"))"
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, "bench/report")
import cost_split, results
r = results.Results(sys.argv[1])
chosen = cost_split.medians(r)
assert chosen is not None, "no round of a mix was measured"
for mix, (split_round, units) in chosen.items():
    total = sum(units.values())
    implied = 1 / total
    measured = (split_round.run["responses_per_s"] /
                split_round.raw["responses_per_s"])
    assert units[cost_split.KERNEL] > 0, mix + ": no kernel samples"
    assert total - units[cost_split.KERNEL] > 0, mix + ": no daemon samples"
    assert 1 / 1.5 < implied / measured < 1.5, (
        "%s: the samples imply %.3f, the responses/s %.3f"
        % (mix, implied, measured))
for mix in ("heartbeat", "get"):
    shares = results.throttle("%s/split-%s.r1.throttle" % (sys.argv[1], mix))
    assert shares is not None, mix + ": no throttle counts for the round"
    assert all(0 <= v <= 1 for v in shares.values()), shares
    assert shares["daemon"] > 0 and shares["echo"] > 0, (
        "%s: a cap never held its server back: %s" % (mix, shares))
text = cost_split.section(r)
assert "| **total** |" in text, text
print(text)
PY
echo "cost_split_smoke_test: passed"
