"""PNG charts of a result folder, drawn with gnuplot (Debian's gnuplot-nox,
pngcairo terminal), for the document to embed beside its tables:

  throughput.png  responses/s of the daemon and of the raw UDP echo, per
                  peerload scenario, with the ratio under each name
  latency.png     p50 / p99 / p99.9 latency, epoll against io_uring, per mix
                  (one reactor, the median round) and in the soak
  transfer.png    every round of every transfer path, with its median

Each function writes its data to a temporary folder, runs gnuplot once and
returns True when the PNG was written. Nothing here judges a figure.
"""

import os
import shutil
import subprocess
import tempfile

from fmt import fixed, to_float

# Room for two-line labels under the bars, and half a bar beyond each end.
TERMINAL = """set terminal pngcairo size 960,540 font "sans,10" noenhanced
set bmargin 4
set offsets 0.6, 0.6, 0, 0
set key above horizontal"""
EPOLL_COLOUR, URING_COLOUR = "#4477aa", "#ee6677"
DAEMON_COLOUR, ECHO_COLOUR = "#228833", "#bbbbbb"


def gnuplot_available():
    return shutil.which("gnuplot") is not None


def _plot(png, data, script):
    """Runs `script` with `$data` naming a file that holds `data` and
    `$png` the output. Returns True when gnuplot wrote a PNG."""
    with tempfile.TemporaryDirectory() as work:
        data_path = os.path.join(work, "data.txt")
        with open(data_path, "w", encoding="utf-8") as f:
            f.write(data)
        script = script.replace("$data", '"%s"' % data_path)
        script = "%s\nset output \"%s\"\n%s\n" % (TERMINAL, png, script)
        if os.path.exists(png):
            os.remove(png)
        done = subprocess.run(["gnuplot"], input=script, text=True,
                              capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError("gnuplot failed for %s: %s" % (png, done.stderr))
    return os.path.getsize(png) > 0


def _quote(text):
    return '"%s"' % text.replace('"', "'")


def _xtics(labels):
    """A gnuplot `set xtics` with one label at each whole x from 0."""
    return "set xtics scale 0 (%s)" % ", ".join(
        "%s %d" % (_quote(label), x) for x, label in enumerate(labels))


def throughput(r, png):
    rows, labels = [], []
    for s in r.scenarios.values():
        median = s.median_round()
        if median is None or "baseline_responses_per_s" not in median[0]:
            continue
        run = median[0]
        labels.append("%s %s%s\\n%s reactor%s: %sx" % (
            s.mix.split("=")[0], s.io,
            " (%s peers)" % s.peers if s.peers else "", s.reactors,
            "" if s.reactors == "1" else "s", fixed(run.get("ratio"), 3)))
        rows.append("%s %s" % (to_float(run["responses_per_s"]),
                               to_float(run["baseline_responses_per_s"])))
    if not rows:
        return False
    return _plot(png, "\n".join(rows) + "\n", """
set title "Responses/s: peerconnectd against the raw UDP echo (median round; the ratio under each bar)"
set style fill solid 0.85 border -1
set ylabel "responses/s"
set yrange [0:*]
set grid ytics
{xtics}
set format y "%.0s%c"
plot $data using ($0-0.2):1:(0.38) with boxes lc rgb "{daemon}" title "peerconnectd", \\
     '' using ($0+0.2):2:(0.38) with boxes lc rgb "{echo}" title "udp_echo"
""".format(daemon=DAEMON_COLOUR, echo=ECHO_COLOUR, xtics=_xtics(labels)))


def _latency_runs(r):
    """(label, {io: peerload JSON}) for each load measured on both
    backends: the one-reactor scenarios' median rounds, then the soak."""
    for mix in ("heartbeat", "get"):
        runs = {}
        for io in ("epoll", "uring"):
            s = r.scenarios.get("r1-%s-%s" % (io, mix))
            median = s.median_round() if s else None
            if median is not None and "p50_us" in median[0]:
                runs[io] = median[0]
        yield mix, runs
    yield "soak", {io: run for io, (run, _) in r.soak.items() if "p50_us" in run}


def latency(r, png):
    rows, labels = [], []
    for mix, runs in _latency_runs(r):
        if len(runs) < 2:
            continue
        for key, label in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
            labels.append("%s\\n%s" % (mix, label))
            rows.append("%s %s" % (to_float(runs["epoll"][key]),
                                   to_float(runs["uring"][key])))
    if not rows:
        return False
    return _plot(png, "\n".join(rows) + "\n", """
set title "Request latency, epoll against io_uring: one reactor (median round), and the soak if run"
set style fill solid 0.85 border -1
set ylabel "µs (log scale)"
set logscale y
set format y "%.0f"
set grid ytics
{xtics}
plot $data using ($0-0.2):1:(0.38) with boxes lc rgb "{epoll}" title "epoll", \\
     '' using ($0+0.2):2:(0.38) with boxes lc rgb "{uring}" title "io_uring"
""".format(epoll=EPOLL_COLOUR, uring=URING_COLOUR, xtics=_xtics(labels)))


TRANSFER_PATHS = (
    ("transfer_rawcopy", "rawcopy"),
    ("transfer_rawcopy_nofsync", "rawcopy,\\nno fsync"),
    ("transfer_rawcopy_splice", "rawcopy\\n--splice"),
    ("transfer_peerctl", "peerctl get\\n(TLS)"),
    ("transfer_peerctl_plaintext", "peerctl get\\n(plaintext)"),
    ("transfer_peerctl_slowloris", "TLS get\\n+slowloris"),
    ("transfer_nginx_curl", "nginx+curl\\n+sync"),
    ("transfer_nginx_curl_nosync", "curl,\\nno sync"),
    ("transfer_sha256", "sha256 of\\nthe file"),
)


def transfer(r, png):
    t = r.transfer
    if not t.get("transfer_peerctl_s"):
        return False
    medians, rounds = [], []
    for key, label in TRANSFER_PATHS:
        median = t.get(key + "_s", "none")
        if median in ("", "none"):
            continue
        x = len(medians)
        medians.append("%d %s %s" % (x, median, _quote(label)))
        rounds += ["%d %s" % (x, v) for v in t.get(key + "_all", "").split()]
    data = "\n".join(medians) + "\n\n\n" + "\n".join(rounds) + "\n"
    return _plot(png, data, """
set title "Transfer of %d MiB: seconds per round (dots) and the median (bar); lower is faster"
set style fill solid 0.5 border -1
set ylabel "seconds"
set yrange [0:*]
set grid ytics
set xtics scale 0
plot $data index 0 using 1:2:(0.6):xtic(3) with boxes lc rgb "{median}" title "median", \\
     '' index 1 using 1:2 with points pt 7 ps 1.2 lc rgb "{round}" title "one round"
""".format(median=EPOLL_COLOUR, round="#222222") % (int(t["transfer_bytes"]) // 1048576))


CHARTS = (
    ("throughput", throughput,
     "Responses/s of the daemon against the raw UDP echo, per scenario"),
    ("latency", latency, "Latency percentiles, epoll against io_uring"),
    ("transfer", transfer, "Every round of every transfer path, in seconds"),
)


def draw_all(r, folder, link_prefix):
    """Draws every chart the folder's figures allow into `folder`. Returns
    name -> (link_prefix/NAME.png, caption) for those drawn."""
    drawn = {}
    if not gnuplot_available():
        return drawn
    os.makedirs(folder, exist_ok=True)
    for name, draw, caption in CHARTS:
        png = os.path.join(folder, name + ".png")
        if draw(r, png):
            drawn[name] = ("%s/%s.png" % (link_prefix, name), caption)
        elif os.path.exists(png):
            os.remove(png)  # an earlier run's: its figures are not this one's
    return drawn
