"""Where a datagram's CPU time goes: bench/measure/cost_split.sh's perf
samples of the daemon and of the echo, as the daemon's CPU time per
answered datagram in units of the echo's, by category of function.

Both servers are sampled over the same span, at the same frequency, on CPU
time only (perf's cpu-clock), so a server's samples over its responses/s
is its CPU time per datagram, up to one factor both share; the daemon's
over the echo's cancels it. A round's units add up to the inverse of the
ratio its samples imply, which should be close to the ratio of its
responses/s (the report prints both)."""

from fmt import fixed, lower_median, number, to_float

# A function's category: the first whose test matches its object or name.
# The names are those of the code at the time of writing; a function
# renamed since falls into "other", which the table shows.
CATEGORIES = (
    ("kernel: sockets, network, wake-ups",
     lambda obj, fn: fn.startswith("[k]")),
    ("sealing: AES-128-GCM both ways",
     lambda obj, fn: _any(fn, "AesNiGcm", "Ghash", "SealDatagram",
                          "OpenDatagram", "SealWith", "OpenWith", "SealReply",
                          "CRYPTO_memcmp", "Ciphers", "KeyStream")),
    ("get's ticket: HMAC-SHA-256, base64",
     lambda obj, fn: obj.startswith("libcrypto") or _any(
         fn, "WriteTicket", "TicketMac", "Hmac", "SHA256", "Base64")),
    ("get's name and holder lookup",
     lambda obj, fn: _any(fn, "SearchIndex", "LocateHolders", "GatherServing",
                          "HolderIfServing", "LiveFileServer",
                          "HolderTicketKey", "TicketKeyCache", "KeyOf",
                          "PresenceTable::FindUser", "mersenne", "shuffle")),
    ("session: lookup, replay window, expiry",
     lambda obj, fn: _any(fn, "SessionTable", "Admit", "SessionHints",
                          "Prefetch", "Renew", "ReplayWindow", "ExpiryWheel")),
    ("locks",
     lambda obj, fn: "absl_synchronization" in obj or "Mutex" in fn),
    ("clock reads",
     lambda obj, fn: obj == "[vdso]" or "absl_time" in obj or _any(
         fn, "MonotonicNow", "clock_gettime", "Duration", "UnixNanos",
         "Nanoseconds")),
    ("decoding, encoding, dispatch, metrics",
     lambda obj, fn: _any(fn, "protocol::", "RequestHandler", "DatagramBatch",
                          "Handle", "Dispatch", "Metrics", "Histogram",
                          "Validate", "any_invocable", "mmsg", "memcpy",
                          "memmove", "memcmp", "memset")),
)
OTHER = "other"
NAMES = tuple(name for name, _ in CATEGORIES) + (OTHER,)
KERNEL = CATEGORIES[0][0]
# The target's bound: a get at 0.8x the echo costs at most 1 / 0.8 echo
# datagrams' CPU time.
TARGET_RATIO = 0.8


def _any(text, *parts):
    return any(part in text for part in parts)


def category(obj, fn):
    for name, test in CATEGORIES:
        if test(obj, fn):
            return name
    return OTHER


def function_units(split_round):
    """{(object, function): the daemon's CPU time per datagram in it, in
    echo datagrams}, or None when a half of the round is missing."""
    run, raw = split_round.run, split_round.raw
    daemon_rate = to_float((run or {}).get("responses_per_s"))
    echo_rate = to_float((raw or {}).get("responses_per_s"))
    echo_samples = sum(split_round.echo.values())
    if not split_round.daemon or daemon_rate <= 0 or echo_rate <= 0 or \
            echo_samples <= 0:
        return None
    echo_per_datagram = echo_samples / echo_rate
    return {key: samples / daemon_rate / echo_per_datagram
            for key, samples in split_round.daemon.items()}


def category_units(split_round):
    """{category: units} over NAMES, or None (see function_units)."""
    units = function_units(split_round)
    if units is None:
        return None
    split = dict.fromkeys(NAMES, 0.0)
    for (obj, fn), value in units.items():
        split[category(obj, fn)] += value
    return split


def median_round(rounds):
    """The round whose total is the median (the lower of an even count), as
    (SplitRound, category units), or None when none was measured."""
    median = lower_median(
        (sum(units.values()), index, units)
        for index, units in ((i, category_units(r)) for i, r in
                             enumerate(rounds))
        if units is not None)
    if median is None:
        return None
    _, index, units = median
    return rounds[index], units


def _signed(v):
    """A difference with its sign; one that rounds to zero has none."""
    if fixed(abs(v), 3) == fixed(0, 3):
        return fixed(0, 3)
    return ("+" if v > 0 else "−") + fixed(abs(v), 3)


def _largest_differences(get_round, heartbeat_round, count=6):
    """The functions whose units grow most from a heartbeat to a get."""
    get = function_units(get_round) or {}
    heartbeat = function_units(heartbeat_round) or {}
    growth = sorted(((value - heartbeat.get(key, 0.0), key)
                     for key, value in get.items()), reverse=True)
    return ", ".join(
        "`%s` (%s) %s" % (_short(fn), obj, _signed(value))
        for value, (obj, fn) in growth[:count] if value > 0)


def _short(fn):
    """A function's name without perf's "[k] "/"[.] " and its arguments."""
    if fn[:4] in ("[k] ", "[.] "):
        fn = fn[4:]
    fn = fn.replace("(anonymous namespace)::", "").split("(", 1)[0]
    return fn if len(fn) <= 60 else fn[:57] + "..."


def medians(r):
    """The median rounds of this run's split, as {mix: (SplitRound,
    category units)} for "heartbeat" and "get", or None unless both
    were measured."""
    if r.get("split_note") or not r.get("split_rounds"):
        return None
    chosen = {mix: median_round(r.split.get(mix, [])) for mix in
              ("heartbeat", "get")}
    return chosen if all(chosen.values()) else None


def budget_sentence(chosen):
    """What the target leaves a get, from `chosen` (medians' answer)."""
    heartbeat, get = chosen["heartbeat"][1], chosen["get"][1]
    own = {mix: sum(units.values()) - units[KERNEL] for mix, units in
           (("heartbeat", heartbeat), ("get", get))}
    budget = 1 / TARGET_RATIO
    return (
        "At the %.1fx target a datagram may cost the daemon %s of the echo's "
        "CPU time per datagram. A get took %s in the kernel alone (a "
        "heartbeat %s), which leaves %s for the daemon's own work, where a "
        "heartbeat's own work took %s and a get's %s." % (
            TARGET_RATIO, fixed(budget, 3), fixed(get[KERNEL], 3),
            fixed(heartbeat[KERNEL], 3), fixed(budget - get[KERNEL], 3),
            fixed(own["heartbeat"], 3), fixed(own["get"], 3)))


def section(r):
    """The document's section, or a line saying why it did not run."""
    note = r.get("split_note")
    if note or not r.get("split_rounds"):
        return "Not measured in this run (%s)." % (
            note or "the split part was not run")
    chosen = medians(r)
    if chosen is None:
        return ("Not measured in this run: no round of the heartbeat mix or "
                "of the get mix has both halves (see the split-*.log files).")
    heartbeat_round, heartbeat = chosen["heartbeat"]
    get_round, get = chosen["get"]
    rows = []
    for name in NAMES:
        rows.append("| %s | %s | %s | %s |" % (
            name, fixed(heartbeat[name], 3), fixed(get[name], 3),
            _signed(get[name] - heartbeat[name])))
    totals = {mix: sum(units.values()) for mix, units in
              (("heartbeat", heartbeat), ("get", get))}
    rows.append("| **total** | **%s** | **%s** | %s |" % (
        fixed(totals["heartbeat"], 3), fixed(totals["get"], 3),
        _signed(totals["get"] - totals["heartbeat"])))
    rows.append("| ratio the samples imply (1 / total) | %s | %s | |" % (
        fixed(1 / totals["heartbeat"], 3), fixed(1 / totals["get"], 3)))
    measured = {mix: to_float(run_round.run.get("responses_per_s")) /
                to_float(run_round.raw.get("responses_per_s"))
                for mix, run_round in (("heartbeat", heartbeat_round),
                                       ("get", get_round))}
    rows.append("| ratio of the round's responses/s | %s | %s | |" % (
        fixed(measured["heartbeat"], 3), fixed(measured["get"], 3)))
    rounds = r.get("split_rounds")
    return (
        "Where the daemon's CPU time per answered datagram goes, against the "
        "echo's: `bench/measure/cost_split.sh` runs the capped pair of the "
        "c1-epoll scenarios above (%s peers, one mix at a time, %s round%s) "
        "with `perf record` sampling both servers' CPU time for %s s while "
        "both halves measure. A figure is the daemon's samples in those "
        "functions per datagram it answered, over the echo's samples per "
        "datagram it answered: 1.000 is the echo's whole CPU time per "
        "datagram. Each column is the round of its mix with the median "
        "total; sampling costs both servers alike, so these rounds are not "
        "the target's. Functions fall into categories by name "
        "(bench/report/cost_split.py).\n\n"
        "| Where | heartbeat | get | get − heartbeat |\n"
        "| --- | --- | --- | --- |\n%s\n\n"
        "%s The functions that grow most from a heartbeat to a get: %s." % (
            number(to_float(r.get("split_peers"))), rounds,
            "" if rounds == "1" else "s", r.get("split_seconds"),
            "\n".join(rows), budget_sentence(chosen),
            _largest_differences(get_round, heartbeat_round)))
