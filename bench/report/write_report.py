#!/usr/bin/python3
"""Writes docs/PERFORMANCE.md, and its charts, from a result folder of
bench/run_all.sh:

  bench/report/write_report.py RESULTS_DIR [--output FILE] [--no-charts]

FILE defaults to RESULTS_DIR/PERFORMANCE.md; the charts go to a folder
`performance/` beside it (gnuplot, when installed). run_all.sh calls this
with --output docs/PERFORMANCE.md after a full run; run it again on a kept
folder to rewrite the document without measuring. Python 3 standard library
only. results.py reads the folder, targets.py judges the targets,
sections.py writes the tables (cost_split.py the split of a datagram's CPU
time) and charts.py draws.
"""

import argparse
import os
import sys

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import charts  # noqa: E402
import cost_split  # noqa: E402
import results  # noqa: E402
import sections  # noqa: E402
import targets  # noqa: E402

TEMPLATE = """\
# PeerConnectFS performance

Written by `bench/run_all.sh` on {run_date} from the figures it measured in
that run; do not edit by hand: rerun it. Raw outputs of the run:
`{results_dir}/`. The machine is shared and noisy, so every speed is
also given as a ratio against a baseline measured in the same run, and only
those ratios should be compared across runs.{quick}

## Machine

{machine}

## Targets

| Target | Measured | Verdict |
| --- | --- | --- |
{verdicts}

{details}

## Request throughput: epoll vs io_uring, 1 vs 2 reactors

{throughput}

## Where a datagram's time goes

{split}

## 100,000-peer soak

{soak}

## Transfer

{transfer}

## Memory per session and per publication

{memory}

## Search

The `sch` target is read from search_bench's BM_RegistrySearchPageP99
rows in the micro-benchmarks below: complete listings over 1,000,000
published names read as peerconnectd serves SCH, one Registry::SearchPage
per request, each request timed on its own; p99_us is per request, and
listing_p50_us / listing_p99_us sum a query's requests. BM_RegistrySearchP99
(the whole listing read through Registry::SearchPage in one go, with no
list page to fill) is shown for
comparison. The header of bench/search_bench.cc says how the patterns are
chosen and what each counter means.

## Micro-benchmarks

Google Benchmark, `--benchmark_min_time={gbench_min_time}`, one run each
(wall and CPU time per iteration; counters as the benchmark defines them).
registry_bench runs without its 1M-name Locate and Search cases, whose setup
Google Benchmark repeats for each trial and which search_bench and
memory_bench cover; run `build-bench/bench/registry_bench` alone for them.
{micro_benchmarks}

## Commands

Every command of the run that produced a figure, in order (paths relative to
the repository; `$R` is the run's result folder, `{results_dir}`):

```
{commands}
```

To reproduce: `bench/run_all.sh` (add `--soak` for the 100,000-peer soak,
`--install-nginx` to install nginx for the transfer comparison). The script
measures and keeps every raw output in the result folder;
`bench/report/write_report.py RESULT_FOLDER --output docs/PERFORMANCE.md`
writes this document and its charts (docs/performance/*.png, drawn with
gnuplot) from such a folder again. `bench/run_all.sh --quick` runs every
part briefly to check the pipeline in a few minutes; its figures decide
nothing, and it writes its document into its result folder.
"""

QUICK_NOTE = """

**A --quick run**: every part ran briefly (fewer cases, shorter runs, a
smaller transfer and soak), to check the pipeline; its figures and verdicts
decide nothing."""


def render(r, drawn):
    """The document for the Results `r`; `drawn` names the charts to embed
    (charts.draw_all's answer)."""
    judged = targets.judge(r)
    return TEMPLATE.format(
        run_date=r.get("run_date"), results_dir=r.get("results_dir"),
        quick=QUICK_NOTE if r.get("quick") == "1" else "",
        machine=sections.machine(r),
        verdicts="\n".join("| %s | %s | %s |" % (t.name, t.figure, t.verdict)
                           for t in judged),
        details="\n".join("- " + t.detail for t in judged),
        throughput=sections.throughput(r, drawn), split=cost_split.section(r),
        soak=sections.soak(r),
        transfer=sections.transfer(r, drawn), memory=sections.memory(r),
        gbench_min_time=r.get("gbench_min_time"),
        micro_benchmarks=sections.micro_benchmarks(r), commands=r.commands)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a result folder of bench/run_all.sh")
    parser.add_argument("--output", help="the document (default RESULTS/PERFORMANCE.md)")
    parser.add_argument("--no-charts", action="store_true", help="draw no charts")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.results, "run.txt")):
        parser.error("%s has no run.txt: not a result folder" % args.results)
    r = results.Results(args.results)
    output = args.output or os.path.join(args.results, "PERFORMANCE.md")
    drawn = {}
    if not args.no_charts:
        folder = os.path.join(os.path.dirname(os.path.abspath(output)), "performance")
        drawn = charts.draw_all(r, folder, "performance")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        f.write(render(r, drawn))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
