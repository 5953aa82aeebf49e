"""A result folder of bench/run_all.sh, read into plain Python values.

The measuring scripts (bench/run_all.sh, bench/measure/*.sh,
bench/transfer.sh) write only raw outputs; this module is the one place that
knows their file names and formats:

  run.txt            "key value" lines: the machine, the settings, notes on
                     parts that did not run (a key may repeat: gbench_failed)
  commands.txt       every command that produced a figure, as run
  gbench-NAME.json   Google Benchmark's --benchmark_format=json
  scenarios.txt      peerload scenarios, "name|reactors|io|cpus|mix[|cap
                     [|peers]]"
  NAME.rK.json       peerload --json of scenario NAME, round K (last line)
  NAME.rK.raw.json   a capped round's echo half (peerload --raw --json),
                     run at the same time as NAME.rK.json (whose run then
                     has no baseline of its own)
  NAME.rK.throttle   a capped round's "daemon_periods daemon_throttled
                     echo_periods echo_throttled cpu1_busy cpu1_total" over
                     the echo half's span (run_capped in lib.sh)
  NAME.rK.load       the 1-minute load average when that round started
  soak-IO.json       peerload --json of the soak with --io=IO
  gc-NAME.json       peerload --json of group_commit.sh's run NAME
                     (heartbeat, pubunp, stormmem; quiet.rK and storm.rK,
                     round K of the storm against the heartbeats alone;
                     an older folder's single storm and quiet)
  gc-NAME.stalls.json  stall_probe beside gc-storm.rK and gc-quiet.rK
  soak-IO.metrics    "key value" lines measured around that soak
  cl-MODE-MIX.rK.json  peerload --json of cluster.sh's run in MODE
                     (standalone, cluster) with MIX (heartbeat, get),
                     round K
  cl-cluster-MIX.rK.redis_cpu  redis-server's CPU seconds during that run
  cl-propagation.json  cluster_propagation --json
  transfer.out       bench/transfer.sh's "RESULT name value" lines
  split-MIX.rK.json, split-MIX.rK.raw.json
                     cost_split.sh's capped pair with MIX (heartbeat, get),
                     round K: the daemon's half and the echo's, as above
  split-MIX.rK.daemon.txt, split-MIX.rK.echo.txt
                     perf's samples of each server in that round, while
                     both halves measured: "samples|object|function" lines
"""

import glob
import itertools
import json
import math
import os

from fmt import lower_median, to_float

# The one-reactor scenarios of bench/measure/peerload.sh, and the same with
# the server capped to a share of its CPU (so that the server, not
# peerload, limits both halves of a run).
ONE_REACTOR = ("r1-epoll-heartbeat", "r1-uring-heartbeat", "r1-epoll-get",
               "r1-uring-get")
ONE_REACTOR_CAPPED = tuple("c" + name[1:] for name in ONE_REACTOR)


def few_peers_capped(scenarios):
    """For information: the capped scenarios run with peers of their own
    (bench/measure/peerload.sh names one NAME-pN after the target's NAME),
    as (name, the target's name), in the order they ran."""
    return [(name, name[:name.rindex("-p")]) for name, s in scenarios.items()
            if s.cap and s.peers and "-p" in name]


def _lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError:
        return []


def _key_values(path):
    """A "key value" file as a dict of lists (a key may repeat)."""
    values = {}
    for line in _lines(path):
        key, _, value = line.partition(" ")
        if key:
            values.setdefault(key, []).append(value)
    return values


def last_json(path):
    """The JSON object on the last line of `path`, or None (peerload prints
    one line; a failed run leaves nothing or a partial line)."""
    lines = [line for line in _lines(path) if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _storm_pair(folder, suffix):
    """One round of group_commit.sh's storm against the heartbeats alone
    (`suffix` ".rK", or "" in a folder from before the rounds)."""
    found = {}
    for name in ("quiet", "storm"):
        base = os.path.join(folder, "gc-%s%s" % (name, suffix))
        found[name] = last_json(base + ".json")
        found[name + "_stalls"] = last_json(base + ".stalls.json")
    return found


def to_float_or_none(lines):
    """The number on the first line of `lines`, or None."""
    try:
        return float(lines[0])
    except (IndexError, ValueError):
        return None


def with_baseline(run, raw):
    """A daemon half's peerload JSON with the echo half that ran beside it
    as its baseline, in the fields --compare-raw writes; None unless both
    halves ran and the echo answered."""
    if run is None or raw is None:
        return None
    base = raw.get("responses_per_s")
    if not base:
        return None
    merged = dict(run)
    merged.update({"baseline_responses_per_s": base,
                   "baseline_p99_us": raw.get("p99_us"),
                   "baseline_timeouts": raw.get("timeouts"),
                   "ratio": float(run.get("responses_per_s") or 0) / base})
    return merged


# A capped round's server that its cap held back in fewer than this share
# of its cgroup's periods while the echo half measured spent the rest
# waiting for its load generator, so its responses/s say less than its
# CPU time would: such a round (load_limited) does not decide a median.
MIN_THROTTLED_SHARE = 0.9


def throttle(path):
    """A capped round's RUN.throttle (run_capped in lib.sh) as {"daemon",
    "echo": share of its periods its cap held it back, "cpu1_busy": share
    of CPU 1's time not idle}, or None when missing or short."""
    fields = " ".join(_lines(path)).split()
    if len(fields) != 6 or not all(f.isdigit() for f in fields):
        return None
    d_periods, d_throttled, e_periods, e_throttled, busy, total = map(
        int, fields)
    if not d_periods or not e_periods or not total:
        return None
    return {"daemon": d_throttled / d_periods, "echo": e_throttled / e_periods,
            "cpu1_busy": busy / total}


def load_limited(run):
    """The servers of a capped round that waited for their load (held back
    by the cap in under MIN_THROTTLED_SHARE of their periods), as a list of
    "daemon"/"echo"; empty when both were held back or it is not known."""
    shares = (run or {}).get("throttle") or {}
    return [server for server in ("daemon", "echo")
            if server in shares and shares[server] < MIN_THROTTLED_SHARE]


def perf_samples(path):
    """`perf report --sort dso,sym -F sample,dso,sym -t '|'` lines as
    {(object, function): samples}, the function with perf's "[k] " (kernel)
    or "[.] " (user) in front; {} when missing."""
    samples = {}
    for line in _lines(path):
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        key = (fields[1], fields[2])
        samples[key] = samples.get(key, 0) + int(fields[0])
    return samples


def pair_run(first, second):
    """Two capped rounds run one each way round in the cgroups (run_capped
    in lib.sh) as one run, or None unless both have a ratio and neither is
    load_limited. Rates and the ratio are the geometric means of the two
    (the ratio stays the rates' quotient), so that a cgroup that lets its
    server answer x% more in one round counts as much against it in the
    other; latencies are the higher round's; counts are summed."""
    runs = (first, second)
    if any(run is None or "ratio" not in run or load_limited(run)
           for run in runs):
        return None
    merged = dict(first)
    for key in ("responses_per_s", "baseline_responses_per_s", "ratio"):
        merged[key] = math.sqrt(to_float(first.get(key)) *
                                to_float(second.get(key)))
    for key in ("p50_us", "p99_us", "p999_us", "baseline_p99_us"):
        values = [run[key] for run in runs
                  if run.get(key) not in (None, "")]
        if values:
            merged[key] = max(values, key=to_float)
    for key in ("errors", "timeouts", "false_expiries", "baseline_timeouts"):
        if all(run.get(key) not in (None, "") for run in runs):
            merged[key] = sum(int(to_float(run[key])) for run in runs)
    return merged


class SplitRound:
    """One round of cost_split.sh: perf's samples of the daemon and of the
    echo over the same span, and each one's peerload JSON (None if it
    failed)."""

    def __init__(self, daemon, echo, run, raw):
        self.daemon, self.echo = daemon, echo
        self.run, self.raw = run, raw


class Scenario:
    """One peerload scenario and its rounds, in the order they ran."""

    def __init__(self, name, reactors, io, cpus, mix, cap="", peers=""):
        self.name, self.reactors, self.io = name, reactors, io
        self.cpus, self.mix = cpus, mix
        self.cap = cap  # percent of a CPU for the server; "" when uncapped
        self.peers = peers  # "" when the run's load_peers
        self.rounds = []  # (peerload JSON or None, load average text)
        # Rounds judged in pairs (r1 and r2, r3 and r4, ...): a capped
        # scenario whose daemon and echo swapped cgroups every other round
        # (load_cap_mode "swapped", run_capped in lib.sh).
        self.paired = False

    @property
    def placement(self):
        if self.cpus and self.cap:
            return ("server on CPU %s capped at %s%% of it, load on CPU 1%s"
                    % (self.cpus, self.cap,
                       ", %s peers" % self.peers if self.peers else ""))
        if self.cpus:
            return "daemon on CPU %s, load on CPU 1" % self.cpus
        return "unpinned"

    def median_round(self):
        """The round whose ratio is the median (the lower one of an even
        count), as (JSON, load), or None when no round has a ratio. A
        scenario's figures are those of one whole round, so that one run
        disturbed by other work on the machine does not decide a verdict.
        A capped round in which a server waited for its load
        (load_limited) is left out. Of a paired scenario, the pair whose
        ratio (pair_run) is the median, with its first round's load."""
        if self.paired:
            pairs = [(pair_run(self.rounds[i][0], self.rounds[i + 1][0]),
                      self.rounds[i][1])
                     for i in range(0, len(self.rounds) - 1, 2)]
            median = lower_median(
                (float(run["ratio"]), index)
                for index, (run, _) in enumerate(pairs) if run is not None)
            return None if median is None else pairs[median[1]]
        median = lower_median(
            (float(r[0]["ratio"]), index)
            for index, r in enumerate(self.rounds)
            if r[0] is not None and "ratio" in r[0] and
            not load_limited(r[0]))
        return None if median is None else self.rounds[median[1]]

    def round_ratios(self):
        """Every round's ratio, in order, as the document prints them; a
        load-limited one with the server that waited and how often its cap
        held it back."""
        def text(run):
            if run is None or "ratio" not in run:
                return "failed"
            waited = load_limited(run)
            return "%.3f%s" % (float(run["ratio"]), "".join(
                " (%s load-limited: capped in %.0f%% of periods)" % (
                    server, 100 * run["throttle"][server])
                for server in waited))
        if not self.paired:
            return ", ".join(text(r[0]) for r in self.rounds)
        # "a and b → mean" per pair; a round left without its pair alone.
        out = []
        for i in range(0, len(self.rounds), 2):
            first = self.rounds[i][0]
            if i + 1 == len(self.rounds):
                out.append(text(first))
                continue
            second = self.rounds[i + 1][0]
            pair = pair_run(first, second)
            out.append("%s and %s → %s" % (
                text(first), text(second),
                "%.3f" % pair["ratio"] if pair else "not judged"))
        return "; ".join(out)


class Results:
    """Everything a result folder holds. Missing files read as "not
    measured": empty dicts and lists, None."""

    def __init__(self, folder):
        self.folder = folder
        self.meta = _key_values(os.path.join(folder, "run.txt"))
        self.commands = "\n".join(
            _lines(os.path.join(folder, "commands.txt")))
        self.gbench = self._read_gbench()
        self.scenarios = self._read_scenarios()
        self.soak = self._read_soak()
        self.group_commit = {}
        for name in ("heartbeat", "pubunp", "stormmem"):
            run = last_json(os.path.join(folder, "gc-%s.json" % name))
            if run:
                self.group_commit[name] = run
        # The storm against the heartbeats alone, a dict per round:
        # {"quiet": JSON, "storm": JSON, "quiet_stalls": stall_probe JSON,
        # "storm_stalls": ...}, each None when missing.
        self.commit_rounds = []
        for k in itertools.count(1):
            if not glob.glob(os.path.join(folder, "gc-*.r%d.json" % k)):
                break
            self.commit_rounds.append(_storm_pair(folder, ".r%d" % k))
        if not self.commit_rounds:
            # A folder from before the rounds: one storm, one quiet run.
            found = _storm_pair(folder, "")
            if found["quiet"] is not None or found["storm"] is not None:
                self.commit_rounds.append(found)
        # cluster[mix] = [(standalone JSON or None, cluster JSON or None)],
        # a pair per round, in order.
        self.cluster = {}
        self.cluster_redis_cpu = {}  # mix -> [seconds per round]
        for mix in ("heartbeat", "get", "pubunp"):
            self.cluster_redis_cpu[mix] = [
                to_float_or_none(_lines(os.path.join(
                    folder, "cl-cluster-%s.r%d.redis_cpu" % (mix, k))))
                for k in range(1, int(self.get("cluster_rounds", "0") or 0) + 1)]
            pairs = []
            for k in range(1, int(self.get("cluster_rounds", "0") or 0) + 1):
                pairs.append(tuple(
                    last_json(os.path.join(folder, "cl-%s-%s.r%d.json" % (
                        mode, mix, k)))
                    for mode in ("standalone", "cluster")))
            self.cluster[mix] = pairs
        self.cluster_propagation = last_json(
            os.path.join(folder, "cl-propagation.json"))
        # split[mix] = [SplitRound], a round each, in order.
        self.split = {}
        for mix in ("heartbeat", "get"):
            rounds = []
            for k in range(1, int(self.get("split_rounds", "0") or 0) + 1):
                base = os.path.join(folder, "split-%s.r%d" % (mix, k))
                rounds.append(SplitRound(
                    perf_samples(base + ".daemon.txt"),
                    perf_samples(base + ".echo.txt"),
                    last_json(base + ".json"), last_json(base + ".raw.json")))
            self.split[mix] = rounds
        self.transfer = {}
        for line in _lines(os.path.join(folder, "transfer.out")):
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == "RESULT":
                self.transfer[parts[1]] = parts[2]

    def commit_median_round(self):
        """The storm round whose heartbeat p99 ratio (storm over quiet) is
        the median (the lower one of an even count), as (ratio, round), and
        every round's ratio in order (None for a failed round); (None,
        ratios) when no round has both halves."""
        ratios = []
        for found in self.commit_rounds:
            storm = to_float((found["storm"] or {}).get("heartbeat_p99_us"))
            quiet = to_float((found["quiet"] or {}).get("heartbeat_p99_us"))
            ratios.append(storm / quiet if storm and quiet else None)
        median = lower_median(
            (x, i) for i, x in enumerate(ratios) if x is not None)
        if median is None:
            return None, ratios
        ratio, index = median
        return (ratio, self.commit_rounds[index]), ratios

    def get(self, key, default=""):
        """The last value of `key` in run.txt."""
        values = self.meta.get(key)
        return values[-1] if values else default

    def all(self, key):
        return self.meta.get(key, [])

    def wants(self, part):
        return part in self.get("parts").split(",")

    def _read_gbench(self):
        runs = {}
        for path in sorted(glob.glob(os.path.join(self.folder, "gbench-*.json"))):
            name = os.path.basename(path)[len("gbench-"):-len(".json")]
            try:
                with open(path, encoding="utf-8") as f:
                    runs[name] = json.load(f)
            except (OSError, ValueError):
                continue
        return runs

    def _read_scenarios(self):
        scenarios = {}
        rounds = int(self.get("load_rounds", "0") or 0)
        # The capped scenarios ran as many rounds as the rest before
        # load_capped_rounds was written.
        capped_rounds = int(self.get("load_capped_rounds") or rounds)
        for line in _lines(os.path.join(self.folder, "scenarios.txt")):
            fields = line.split("|")
            if len(fields) not in (5, 6, 7):  # the cap, then peers came later
                continue
            s = Scenario(*fields)
            s.paired = bool(s.cap) and self.get("load_cap_mode") == "swapped"
            for k in range(1, (capped_rounds if s.cap else rounds) + 1):
                base = os.path.join(self.folder, "%s.r%d" % (s.name, k))
                load = " ".join(_lines(base + ".load")).strip()
                run = last_json(base + ".json")
                if os.path.exists(base + ".raw.json"):
                    run = with_baseline(run, last_json(base + ".raw.json"))
                    shares = throttle(base + ".throttle")
                    if run is not None and shares is not None:
                        run["throttle"] = shares
                s.rounds.append((run, load))
            scenarios[s.name] = s
        return scenarios

    def _read_soak(self):
        soak = {}
        for io in ("epoll", "uring"):
            path = os.path.join(self.folder, "soak-%s.json" % io)
            if os.path.exists(path) and os.path.getsize(path) > 0:
                metrics = {k: v[-1] for k, v in _key_values(
                    os.path.join(self.folder, "soak-%s.metrics" % io)).items()}
                soak[io] = (last_json(path) or {}, metrics)
        return soak

    def benchmark(self, binary, prefix, key):
        """The counter `key` of the first benchmark of gbench-BINARY.json
        whose name starts with `prefix`, or None if not measured."""
        for b in benchmarks(self.gbench.get(binary)):
            if b["name"].startswith(prefix) and key in b:
                return b[key]
        return None


def benchmarks(run):
    """A Google Benchmark JSON document's benchmarks, without aggregates."""
    if not run:
        return []
    return [b for b in run.get("benchmarks", [])
            if b.get("run_type") != "aggregate"]
