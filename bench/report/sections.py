"""The document's measured sections: tables and the text that says how each
figure was taken. Each function takes a results.Results and returns
Markdown."""

from fmt import fixed, number, or_dash, quotient, to_float
import results as results_module

LOAD_HEADER = (
    "| Mix | I/O | Reactors | Placement | Responses/s | p50 / p99 / p99.9 (µs) "
    "| Raw echo responses/s | Ratio | Every round's ratio | Errors | Timeouts "
    "| False expiries | Load avg before |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def images(charts, *names):
    """Markdown image links to those of the charts named that were drawn
    (`charts`: name -> (file path relative to the document, caption)), each
    followed by a blank line."""
    return "".join("![%s](%s)\n\n" % (charts[n][1], charts[n][0])
                   for n in names if n in charts)


def _latency(run):
    return "%s / %s / %s" % (fixed(run.get("p50_us"), 0),
                             fixed(run.get("p99_us"), 0),
                             fixed(run.get("p999_us"), 0))


def _load_rows(r, names):
    rows = []
    for name in names:
        s = r.scenarios.get(name)
        median = s.median_round() if s else None
        if median is None or "responses_per_s" not in median[0]:
            rows.append("| %s | %s | %s | %s | not measured (see %s.r1.log) "
                        "| | | | | | | | |" % (
                            s.mix if s else "", s.io if s else "",
                            s.reactors if s else "", s.placement if s else "",
                            name))
            continue
        run, load = median
        rows.append("| %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | %s |" % (
            s.mix, s.io, s.reactors, s.placement,
            number(float(run["responses_per_s"])), _latency(run),
            number(to_float(run.get("baseline_responses_per_s"))),
            fixed(run.get("ratio"), 3), s.round_ratios(), run.get("errors", ""),
            run.get("timeouts", ""), run.get("false_expiries", ""), load))
    return "\n".join(rows)


def _two_against_one(r, mix):
    """Responses/s of two reactors over one (io_uring), or a dash."""
    one, two = (r.scenarios.get("r%d-uring-%s" % (n, mix)) for n in (1, 2))
    one, two = (s.median_round() if s else None for s in (one, two))
    if not one or not two:
        return "—"
    a, b = one[0].get("responses_per_s"), two[0].get("responses_per_s")
    if a in (None, "") or b in (None, ""):
        return "—"
    return fixed(quotient(b, a), 2)


def _capped(r):
    """The table of the capped one-reactor scenarios, if any ran."""
    names = results_module.ONE_REACTOR_CAPPED
    if not any(name in r.scenarios for name in names):
        return ""
    cap = r.get("load_cap_percent")
    if r.get("load_cap_mode") in ("concurrent", "swapped"):
        how = (
            "Here the daemon and the echo run at the same time, both on CPU "
            "0, each in a cgroup of its own that lets it use %s%% of the CPU "
            "(CFS bandwidth, every 10 ms), and each loaded by its own "
            "peerload process on CPU 1 (the echo's half starts once the "
            "daemon's peers have logged in, and ends within the daemon's "
            "half). The server limits both halves, other work on the machine "
            "slows both alike, and the ratio is the echo's CPU time per "
            "response over the daemon's. Whether each server was in fact "
            "the limit is checked: each round records in how many of its "
            "cgroup's periods the cap held the server back while the echo "
            "half measured (cpu.stat), and a round in which either server "
            "was held back in fewer than %.0f%% of them waited for its load "
            "generator part of the time; it is marked load-limited below "
            "and does not decide the median.%s" % (
                cap, 100 * results_module.MIN_THROTTLED_SHARE,
                _throttle_summary(r, names)))
        if r.get("load_cap_mode") == "swapped":
            how += (
                " Two cgroups given the same quota are not alike: one lets "
                "the same server answer a few percent more than the other, "
                "the same way throughout a run (bench/measure/ab.sh). So the "
                "daemon runs in the first cgroup and the echo in the second "
                "in odd rounds, the other way round in even ones, and the "
                "rounds are judged in pairs (the first and second, the third "
                "and fourth, ...): a pair's ratio and responses/s are the "
                "geometric means of its two rounds', in which the cgroups' "
                "difference cancels, its latencies the higher round's, its "
                "counts summed. A row gives the pair with the median ratio, "
                "and every pair as \"round and round → pair\"; a pair with a "
                "load-limited round is not judged.")
    else:
        how = (
            "Here the daemon, and the echo after it, run in a cgroup that "
            "lets them use %s%% of CPU 0 (CFS bandwidth, every 10 ms): the "
            "server limits both halves, and the ratio is the echo's CPU time "
            "per response over the daemon's." % cap)
    few = [name for name, _ in results_module.few_peers_capped(r.scenarios)]
    if few:
        how += (
            " The rows with %s peers, for information and not the target, "
            "run the same with those peers instead of %s: the echo keeps "
            "nothing per peer, while the daemon reads each caller's session "
            "state (and for a `get` a holder's too) with every datagram, and "
            "fewer sessions leave more of it in the caches."
            % (r.scenarios[few[0]].peers, r.get("load_peers")))
    rounds = r.get("load_capped_rounds") or r.get("load_rounds")
    return (
        "#### One reactor capped at %s%% of its CPU (the target's figures)\n\n"
        "One peerload process is at the limit of its CPU in both halves of "
        "the uncapped runs below, so there the load generator decides much "
        "of the ratio. %s Each of these scenarios ran %s times: a single "
        "round's ratio spreads wider than the gap a target judges.\n\n"
        "%s\n%s\n\n" % (
            cap, how, rounds, LOAD_HEADER,
            _load_rows(r, tuple(names) + tuple(few))))


def _throttle_summary(r, names):
    """How often the caps held the servers back over these scenarios'
    rounds, and how busy CPU 1 (the load) was, as a sentence; "" when no
    round recorded it."""
    checked = [run for name in names if name in r.scenarios
               for run, _ in r.scenarios[name].rounds
               if run is not None and run.get("throttle")]
    if not checked:
        return ""
    shares = [run["throttle"] for run in checked]
    def span(key):
        low, high = (100 * f(x[key] for x in shares) for f in (min, max))
        return "%.0f-%.0f%%" % (low, high)
    limited = sum(1 for run in checked if results_module.load_limited(run))
    return (" Over these %d rounds the cap held the daemon back in %s of "
            "its periods and the echo in %s, with CPU 1 %s busy; %d "
            "round%s load-limited." % (
                len(shares), span("daemon"), span("echo"), span("cpu1_busy"),
                limited, " was" if limited == 1 else "s were"))


def throughput(r, charts):
    note = r.get("peerload_note")
    if note or not r.wants("peerload"):
        return "Not measured in this run (%s)." % (
            note or "the peerload part was not run")
    return (
        "Each scenario ran %s times, the scenarios in turn; each run is a %s s "
        "peerload run (%s simulated peers, closed loop, each with its own "
        "session and UDP socket), immediately followed by the same load "
        "pattern against `udp_echo` (a plain recvmmsg/sendmmsg echo server, "
        "whose sockets are set up as the daemon's are: core/io/net.h's "
        "OpenUdpSocket) "
        "pinned the same way with as many threads as the daemon has reactors; "
        "*ratio* is the daemon's responses/s over the echo's. Against the "
        "echo, peerload seals each request and opens its echo as it does "
        "with the daemon, so that its own work per request is the same in "
        "both halves. A row gives the "
        "run with the median ratio, and every run's ratio in order. The two "
        "halves of a run go one after the other, not at once, so load from "
        "other work on the machine during one half and not the other moves "
        "the ratio (a ratio above 1 is such a case); the last column is the "
        "1-minute load average when the row started.\n\n"
        "%s%s#### One reactor (--threads 1): epoll vs io_uring\n\n%s\n%s\n\n"
        "#### One vs two reactors (io_uring)\n\n%s\n%s\n\n"
        "Two reactors against one (responses/s): heartbeat %sx, get %sx. With "
        "two reactors the daemon and peerload share both cores, so this ratio "
        "says how much a second core is worth when the load generator "
        "competes for it too." % (
            r.get("load_rounds"), r.get("load_seconds"), r.get("load_peers"),
            images(charts, "throughput", "latency"), _capped(r),
            LOAD_HEADER, _load_rows(r, results_module.ONE_REACTOR),
            LOAD_HEADER, _load_rows(r, ("r1-uring-heartbeat", "r2-uring-heartbeat",
                                        "r1-uring-get", "r2-uring-get")),
            _two_against_one(r, "heartbeat"), _two_against_one(r, "get")))


def soak(r):
    if not r.soak:
        return r.get("soak_note") or "Not measured in this run."
    rows = ""
    for io, (run, m) in r.soak.items():
        logged_in = run.get("logged_in", "")
        before = int(m.get("rss_before_kib", "0") or 0)
        peak = int(m.get("rss_peak_kib", "0") or 0)
        per_peer = ("%.0f" % ((peak - before) * 1024 / float(logged_in))
                    if to_float(logged_in) > 0 else "—")
        rows += ("| %s | %s | %s | %s (%s retried) | %s | %s | %s | %s | %s | %s "
                 "| %s | %s / %s | %s | %s s | %d → %d MiB (%s B/peer) | %s |\n" % (
                     io, logged_in, run.get("processes", ""),
                     fixed(run.get("login_s"), 1), run.get("login_retries", ""),
                     run.get("requests", ""), run.get("responses", ""),
                     number(to_float(run.get("responses_per_s"))), _latency(run),
                     run.get("retransmissions", ""), run.get("timeouts", ""),
                     run.get("errors", ""), run.get("false_expiries", ""),
                     run.get("late_expiries", ""), m.get("rcvbuf_drops", "—"),
                     m.get("cpu_s", "—"), before // 1024, peak // 1024, per_peer,
                     m.get("load_after", "—")))
    return (
        "%s simulated peers (`--mix none`: mandatory heartbeats only, one "
        "every 2 s each, each its own session and source port on 127.1.x.y) "
        "against one daemon (default reactors, unpinned) for %s s after all "
        "logged in; peerload splits them over worker processes (one socket "
        "per peer; RLIMIT_NOFILE is per process). Late expiries are "
        "peerload's own lateness (it heartbeated after the 3 s); rcvbuf drops "
        "are the machine's UDP RcvbufErrors during the run; daemon CPU is "
        "user + system over the whole run (logins, window, logouts); RSS "
        "growth per peer includes allocator slack and per-session caches. "
        "A run with timeouts, retransmissions several times its requests "
        "and rcvbuf drops had a daemon past its capacity (the machine was "
        "busy); `bench/measure/overload.sh` reproduces that on a quiet "
        "machine by giving the daemon a share of one CPU (a quarter with "
        "its default of three busy loops).\n\n"
        "| Backend | Peers logged in | Processes | Login phase (s) | Requests "
        "| Responses | Responses/s | p50 / p99 / p99.9 (µs) | Retransmissions "
        "| Timeouts | Errors | False / late expiries | Rcvbuf drops | Daemon CPU "
        "| Daemon RSS before → peak | Load average after |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
        "| --- | --- | --- | --- |\n%s" % (
            r.get("soak_peers"), r.get("soak_seconds"), rows))


def transfer(r, charts):
    t = r.transfer
    if not t.get("transfer_peerctl_s"):
        return "Not measured in this run (%s)." % (
            r.get("transfer_note") or "the transfer part was not run")
    size = int(t["transfer_bytes"])
    raw = t["transfer_rawcopy_s"]

    def row(path, key, vs=None):
        seconds = t[key + "_s"]
        if vs is None:
            vs = fixed(quotient(raw, seconds), 3)
        return "| %s | %s | %.0f | %s | %s" % (
            path, seconds, size / 1e6 / to_float(seconds), t.get(key + "_all", ""),
            "%s |" % vs if vs else "|")

    rows = [row("rawcopy: sendfile → recv()+write() into a 1 MiB buffer, "
                "fallocate, fsync of the file and its folder (the plain copy; "
                "no hashing)", "transfer_rawcopy", "1")]
    if t.get("transfer_rawcopy_nofsync_s"):
        rows.append(row("the same rawcopy timed to its last byte written, "
                        "before the fsyncs (not durable)", "transfer_rawcopy_nofsync"))
    rows.append(row("rawcopy --splice: socket → pipe → file with splice(), "
                    "fsync (the downloader's receive path, no hashing)",
                    "transfer_rawcopy_splice", t.get("transfer_splice_vs_rawcopy", "")))
    rows.append(row("`peerctl --user getter get big.bin` over TLS 1.3 with the "
                    "holder's pinned key (process start, login, GET, ticket, "
                    "handshake, the leaves, the body decrypted in user space "
                    "with each 1 MiB chunk verified on a pool of threads, "
                    "fsync, rename, logout)", "transfer_peerctl",
                    t.get("transfer_peerctl_vs_rawcopy", "")))
    if t.get("transfer_peerctl_plaintext_s"):
        rows.append(row("the same get of a hard link to the file from a second "
                        "holder started with `--plaintext-transfers` (sendfile "
                        "→ spliced into the file)", "transfer_peerctl_plaintext"))
    if t.get("transfer_peerctl_slowloris_s"):
        rows.append(row("the TLS get again while bench/slowloris.py holds 100 "
                        "connections to the holder, one byte every 2 s each",
                        "transfer_peerctl_slowloris"))
    if t.get("transfer_nginx_curl_s", "none") != "none":
        rows.append(row("nginx+curl+sync (%s, sendfile on; `curl -o` then `sync "
                        "FILE FOLDER`: durable, like the download)"
                        % t.get("transfer_nginx_version", ""), "transfer_nginx_curl"))
        if t.get("transfer_nginx_curl_nosync_s"):
            rows.append(row("the same fetch timed to the end of `curl -o` (not "
                            "durable)", "transfer_nginx_curl_nosync"))
    else:
        rows.append("| nginx+curl | not measured: nginx is not installed (run "
                    "with --install-nginx) | | | |")
    rows.append(row("for reference: `openssl dgst -sha256` of the cached file",
                    "transfer_sha256", ""))
    splice = t.get("transfer_splice_vs_rawcopy", "")
    faster = "faster" if to_float(splice) >= 1 else "slower"
    return (
        "A %d MiB file of random bytes, in the page cache, moved over loopback "
        "TCP into a file on the same disk (/tmp); %s rounds, each running every "
        "path once in turn; the table gives the median and every round. Every "
        "path ends with the file on disk: the downloader fsyncs the file and "
        "its folder, so rawcopy does too, and the nginx path runs `sync FILE "
        "FOLDER` (coreutils: an fsync of each) after curl; curl neither "
        "preallocates nor fsyncs by itself, and `sync` starts a process, which "
        "is inside the timing. The same runs are also timed before their "
        "fsyncs (rawcopy at its last byte written, curl at its exit), for the "
        "reading of the target as a copy into the page cache; the download is "
        "never judged that way, since it never renames a file that is not yet "
        "durable. From a plaintext holder the downloader splices the body "
        "from the socket into the file through a pipe; over TLS it decrypts "
        "into a buffer and writes that. Either way it verifies each 1 MiB "
        "chunk against its Merkle "
        "leaf on a pool of threads, one a core (each chunk read back from "
        "the page cache with pread, then hashed), starts writeback every "
        "8 MiB during the "
        "transfer (`sync_file_range`) and flushes the file every 64 MiB on "
        "a thread of its own (`fdatasync`: this virtual disk takes about a "
        "second to flush 1 GiB however early it was written, "
        "peerctl/file_flusher.h), so that its final fsync has little "
        "left; rawcopy does neither, and pays the whole flush in its "
        "fsync. Load average during the transfer part: %s at its start, %s at "
        "its end (a shared 2-core machine).\n\n"
        "%s| Path | Seconds (median) | MB/s | Every round (s) | Speed vs rawcopy |\n"
        "| --- | --- | --- | --- | --- |\n%s\n\n"
        "The guide's question, measured: in this run splice() from the socket "
        "into the file was **%s** than recv()+write() (speed ratio %s); the "
        "plaintext download splices (socket → pipe → file), and both verify "
        "1 MiB chunks on a pool of threads that read them back from the page "
        "cache." % (
            size // 1048576, t.get("transfer_reps", ""),
            t.get("transfer_load_start") or "?", t.get("transfer_load_end") or "?",
            images(charts, "transfer"),
            "\n".join(rows), faster, splice))


def memory(r):
    def counter(prefix, key):
        return r.benchmark("memory_bench", prefix, key)

    per_session = counter("BM_MemoryPerSession", "bytes_per_session")
    if per_session is None or counter("BM_MemoryPerPublication",
                                      "bytes_per_publication_beyond_name") is None:
        return "Not measured in this run."
    return (
        "From memory_bench (glibc `mallinfo2()`: arena bytes in use plus "
        "mmapped blocks, before and after), in one process: these are the "
        "daemon's own data structures (Registry, SessionTable, ExpiryWheel), "
        "not a daemon's "
        "RSS, because 1M real sessions would take 1M UDP peers. Publications: "
        "1,000 users with live sessions publishing 1,000 names each, names "
        "like `holiday_concert_x7k2qa.mkv`.\n\n"
        "| Figure | Bytes |\n| --- | --- |\n"
        "| Registry and session table, per live session (1M sessions) | %s |\n"
        "| ExpiryWheel, per scheduled session (1M) | %s |\n"
        "| sizeof(Presence) + sizeof(SessionState) | %s |\n"
        "| Registry, per publication, all (1M publications) | %s |\n"
        "| Registry, per publication beyond its name | %s |\n"
        "| mean name length | %s |" % (
            fixed(per_session, 1),
            fixed(counter("BM_MemoryPerSession", "wheel_bytes_per_session"), 1),
            fixed(counter("BM_MemoryPerSession", "sizeof_session"), 0),
            fixed(counter("BM_MemoryPerPublication", "bytes_per_publication"), 1),
            fixed(counter("BM_MemoryPerPublication",
                          "bytes_per_publication_beyond_name"), 1),
            fixed(counter("BM_MemoryPerPublication", "mean_name_bytes"), 1)))


# Google Benchmark's own fields; every other field of a benchmark is a
# counter the benchmark defines.
STANDARD = {"name", "run_name", "run_type", "repetitions", "repetition_index",
            "threads", "iterations", "real_time", "cpu_time", "time_unit",
            "family_index", "per_family_instance_index", "aggregate_name",
            "error_occurred", "error_message"}


def _gbench_rows(run):
    rows = []
    for b in results_module.benchmarks(run):
        if b.get("error_occurred"):
            rows.append("| `%s` | error: %s | | | |" % (
                b["name"], b.get("error_message", "")))
            continue
        counters = ", ".join("%s=%s" % (k, number(v)) for k, v in b.items()
                             if k not in STANDARD)
        rows.append("| `%s` | %s %s | %s %s | %s | %s |" % (
            b["name"], number(b["real_time"]), b["time_unit"],
            number(b["cpu_time"]), b["time_unit"], number(b["iterations"]),
            counters))
    return "\n".join(rows)


def micro_benchmarks(r):
    text = ""
    for name, run in r.gbench.items():
        context = run.get("context", {})
        text += (
            "\n### %s\n\nLoad average while it ran, and how Debian built the "
            "Google Benchmark library: %s (library built as %s).\n\n"
            "| Benchmark | Wall time | CPU time | Iterations | Counters |\n"
            "| --- | --- | --- | --- | --- |\n%s\n" % (
                name, " ".join(str(round(x, 2)) for x in context.get("load_avg", [])),
                context.get("library_build_type", "?"), _gbench_rows(run)))
    failed = r.all("gbench_failed")
    if failed:
        text += "\nNot measured: %s.\n" % "; ".join(failed)
    return text or "\nNot run in this run."


def machine(r):
    build = "Release (-O3 -DNDEBUG), built in %s s this run" % r.get("build_seconds", "0")
    if r.all("build_failed"):
        build += "; did not build: " + " ".join(r.all("build_failed"))
    rows = [("CPU", "%s, %s CPUs" % (r.get("cpu_model"), r.get("cpu_count"))),
            ("Memory", r.get("mem_total")), ("Kernel", r.get("kernel")),
            ("OS", r.get("os")), ("Compiler", r.get("compiler")),
            ("Build", build), ("Commit", r.get("commit")),
            ("Date", r.get("run_date")),
            ("Load average (1/5/15 min)", "%s at the start, %s at the end" % (
                r.get("load_start"), r.get("load_end"))),
            ("Suite time", "%s s of measurement (without the build)"
             % r.get("suite_seconds"))]
    return "| | |\n| --- | --- |\n" + "\n".join(
        "| %s | %s |" % (k, or_dash(v)) for k, v in rows)
