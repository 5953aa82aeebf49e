#!/usr/bin/python3
"""Unit tests of the report writer, on synthetic result folders written by
the tests themselves (no benchmark runs). Run by ctest (bench_report_test)
or directly: python3 bench/report/write_report_test.py"""

import json
import os
import sys
import tempfile
import unittest

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import charts  # noqa: E402
import cost_split  # noqa: E402
import fmt  # noqa: E402
import results  # noqa: E402
import sections  # noqa: E402
import targets  # noqa: E402
import write_report  # noqa: E402

SCENARIOS = ("r1-epoll-heartbeat|1|epoll|0|heartbeat=1\n"
             "r1-uring-heartbeat|1|uring|0|heartbeat=1\n"
             "r1-epoll-get|1|epoll|0|get=1\n"
             "r1-uring-get|1|uring|0|get=1\n"
             "r2-uring-heartbeat|2|uring||heartbeat=1\n"
             "r2-uring-get|2|uring||get=1\n")
CAPPED = ("c1-epoll-heartbeat|1|epoll|0|heartbeat=1|40\n"
          "c1-uring-heartbeat|1|uring|0|heartbeat=1|40\n"
          "c1-epoll-get|1|epoll|0|get=1|40\n"
          "c1-uring-get|1|uring|0|get=1|40\n")


def peerload_json(ratio, rps=200000.0, **extra):
    run = {"mode": "daemon", "responses_per_s": rps, "p50_us": 4000.4,
           "p99_us": 5500.6, "p999_us": 8000.0, "errors": 0, "timeouts": 0,
           "false_expiries": 0, "late_expiries": 0, "logged_in": 1000,
           "baseline_responses_per_s": rps / ratio, "ratio": ratio}
    run.update(extra)
    return json.dumps(run)


def gbench_json(benchmarks):
    return json.dumps({
        "context": {"load_avg": [0.1, 0.974, 1.16], "library_build_type": "debug"},
        "benchmarks": [dict({"name": n, "run_type": "iteration", "iterations": 1,
                             "real_time": 2.5, "cpu_time": 2.5, "time_unit": "ms"},
                            **counters) for n, counters in benchmarks]})


class Folder:
    """A synthetic result folder, written file by file."""

    def __init__(self, test):
        self.dir = tempfile.mkdtemp(prefix="pcfs-report-test-")
        test.addCleanup(lambda: __import__("shutil").rmtree(self.dir))
        self.write("run.txt", "parts build,gbench,peerload,soak,transfer,doc\n"
                   "quick 0\nresults_dir build-bench/bench-results/T\n"
                   "run_date 2026-12-01 17:10 UTC\nload_rounds 3\nload_seconds 5\n"
                   "load_peers 1000\ngbench_min_time 0.05\n")
        self.write("commands.txt", "ninja -C build-bench\n")

    def write(self, name, text, append=False):
        with open(os.path.join(self.dir, name), "a" if append else "w",
                  encoding="utf-8") as f:
            f.write(text)

    def meta(self, text):
        self.write("run.txt", text + "\n", append=True)

    def load_rounds(self, ratios_by_scenario, capped=False):
        """`capped`: list the c1-* scenarios too, capped at 40%."""
        self.write("scenarios.txt", SCENARIOS + (CAPPED if capped else ""))
        if capped:
            self.write("run.txt", "load_cap_percent 40\n", append=True)
        for name, ratios in ratios_by_scenario.items():
            for k, ratio in enumerate(ratios, start=1):
                self.write("%s.r%d.load" % (name, k), "1.%d\n" % k)
                self.write("%s.r%d.json" % (name, k),
                           peerload_json(ratio) + "\n" if ratio else "")

    def transfer(self, nginx=True, tls=None):
        """`tls`: (TLS s, plaintext s, under slowloris s) to add the
        encrypted, plaintext and slowloris downloads of transfer.sh."""
        lines = {"bytes": 1073741824, "reps": 3, "load_start": "1.0 1.1 1.2",
                 "load_end": "1.3 1.4 1.5", "rawcopy_s": "1.137",
                 "rawcopy_all": "1.2 1.137 1.0", "rawcopy_nofsync_s": "0.886",
                 "rawcopy_nofsync_all": "0.9 0.886 0.8", "rawcopy_splice_s": "0.440",
                 "rawcopy_splice_all": "0.44 0.44 0.43", "peerctl_s": "0.688",
                 "peerctl_all": "0.6 0.688 0.7", "sha256_s": "0.680",
                 "sha256_all": "0.68 0.68 0.67", "peerctl_vs_rawcopy": "1.653",
                 "peerctl_vs_rawcopy_nofsync": "1.288",
                 "splice_vs_rawcopy": "2.584"}
        if nginx:
            lines.update({"nginx_curl_s": "1.824", "nginx_curl_all": "2.1 1.824 1.4",
                          "nginx_curl_nosync_s": "1.425",
                          "nginx_curl_nosync_all": "1.7 1.425 1.0",
                          "nginx_version": "nginx/1.22.1", "peerctl_vs_nginx": "2.651",
                          "peerctl_vs_nginx_nosync": "2.071"})
        else:
            lines["nginx_curl_s"] = "none"
        if tls:
            peer, plain, slow = tls
            splice = float(lines["rawcopy_splice_s"])
            lines.update({
                "peerctl_s": peer, "peerctl_plaintext_s": plain,
                "peerctl_plaintext_all": "%s %s %s" % (plain, plain, plain),
                "peerctl_slowloris_s": slow,
                "peerctl_slowloris_all": "%s %s %s" % (slow, slow, slow),
                "slowloris_vs_peerctl": "%.3f" % (float(peer) / float(slow)),
                "peerctl_vs_rawcopy_splice": "%.3f" % (splice / float(peer)),
                "peerctl_plaintext_vs_rawcopy_splice":
                    "%.3f" % (splice / float(plain))})
        self.write("transfer.out", "table\n" + "".join(
            "RESULT transfer_%s %s\n" % kv for kv in lines.items()))

    def results(self):
        return results.Results(self.dir)


ALL_MET = {n: [0.85, 0.9, 0.82] for n in (
    "r1-epoll-heartbeat", "r1-uring-heartbeat", "r1-epoll-get", "r1-uring-get",
    "r2-uring-heartbeat", "r2-uring-get")}


class FormatTest(unittest.TestCase):
    def test_numbers_are_short(self):
        self.assertEqual(fmt.number(5720000.0), "5.72M")
        self.assertEqual(fmt.number(259268.4), "259,268")
        self.assertEqual(fmt.number(24.6), "24.6")
        self.assertEqual(fmt.number(1), "1")

    def test_quotient_rounds_like_earlier_documents(self):
        self.assertEqual(fmt.fixed(fmt.quotient("194396.0", "259384.0"), 2), "0.75")


class PeerloadTest(unittest.TestCase):
    def test_median_round_decides_and_every_round_is_listed(self):
        folder = Folder(self)
        folder.load_rounds({"r1-epoll-heartbeat": [0.9, 0.7, 0.8]})
        scenario = folder.results().scenarios["r1-epoll-heartbeat"]
        run, load = scenario.median_round()
        self.assertEqual(run["ratio"], 0.8)
        self.assertEqual(load, "1.3")
        self.assertEqual(scenario.round_ratios(), "0.900, 0.700, 0.800")

    def test_failed_round_is_named_and_lower_median_of_two_taken(self):
        folder = Folder(self)
        folder.load_rounds({"r1-epoll-get": [0.9, None, 0.7]})
        scenario = folder.results().scenarios["r1-epoll-get"]
        self.assertEqual(scenario.median_round()[0]["ratio"], 0.7)
        self.assertEqual(scenario.round_ratios(), "0.900, failed, 0.700")

    def test_throughput_met_when_every_one_reactor_ratio_reaches_0_8(self):
        folder = Folder(self)
        folder.load_rounds(ALL_MET)
        target = targets.throughput(folder.results())
        self.assertEqual(target.verdict, "**met**")
        self.assertIn("r1-uring-get 0.850x", target.figure)

    def test_throughput_reads_the_capped_scenarios_when_they_ran(self):
        folder = Folder(self)
        capped = {"c" + name[1:]: [0.6, 0.65, 0.7]
                  for name in ALL_MET if name.startswith("r1-")}
        folder.load_rounds(dict(ALL_MET, **capped), capped=True)
        r = folder.results()
        self.assertEqual(r.scenarios["c1-uring-get"].cap, "40")
        self.assertIn("capped at 40% of it", r.scenarios["c1-uring-get"].placement)
        target = targets.throughput(r)
        self.assertEqual(target.verdict, "**missed**")  # the r1-* ones met
        self.assertIn("c1-uring-get 0.650x", target.figure)
        self.assertNotIn("r1-", target.figure)
        self.assertIn("capped at 40%", target.detail)

    def test_capped_scenarios_read_their_own_round_count(self):
        folder = Folder(self)
        capped = {"c" + name[1:]: [0.9, 0.6, 0.85, 0.7, 0.81, 0.62, 0.83]
                  for name in ALL_MET if name.startswith("r1-")}
        folder.load_rounds(dict(ALL_MET, **capped), capped=True)
        folder.meta("load_capped_rounds 7")
        r = folder.results()
        self.assertEqual(len(r.scenarios["c1-epoll-get"].rounds), 7)
        self.assertEqual(len(r.scenarios["r1-epoll-get"].rounds), 3)
        # The fourth of seven: 0.81, not the 0.85 of the first three.
        self.assertIn("c1-epoll-get 0.810x", targets.throughput(r).figure)
        self.assertIn("Each of these scenarios ran 7 times",
                      sections.throughput(r, {}))

    def test_capped_rounds_default_to_the_load_rounds(self):
        # A folder from before load_capped_rounds: every scenario ran
        # load_rounds times.
        folder = Folder(self)
        capped = {"c" + name[1:]: [0.7, 0.72, 0.74]
                  for name in ALL_MET if name.startswith("r1-")}
        folder.load_rounds(dict(ALL_MET, **capped), capped=True)
        r = folder.results()
        self.assertEqual(len(r.scenarios["c1-epoll-get"].rounds), 3)
        self.assertIn("Each of these scenarios ran 3 times",
                      sections.throughput(r, {}))

    def few_peer_results(self, heartbeat, get):
        """Results with the c1-* scenarios at 0.72x and the 100-peer ones
        at the median ratios `heartbeat` and `get`."""
        folder = Folder(self)
        capped = {"c" + name[1:]: [0.7, 0.72, 0.74]
                  for name in ALL_MET if name.startswith("r1-")}
        capped.update({"c1-epoll-heartbeat-p100": [heartbeat] * 3,
                       "c1-epoll-get-p100": [get] * 3})
        folder.load_rounds(dict(ALL_MET, **capped), capped=True)
        folder.write("scenarios.txt",
                     "c1-epoll-heartbeat-p100|1|epoll|0|heartbeat=1|40|100\n"
                     "c1-epoll-get-p100|1|epoll|0|get=1|40|100\n", append=True)
        return folder.results()

    def test_few_peer_rounds_are_shown_beside_the_target_not_in_it(self):
        r = self.few_peer_results(0.91, 0.8)
        self.assertEqual(r.scenarios["c1-epoll-get-p100"].peers, "100")
        self.assertEqual(r.scenarios["c1-epoll-get"].peers, "")
        self.assertIn("100 peers", r.scenarios["c1-epoll-get-p100"].placement)
        target = targets.throughput(r)
        # 0.8 with 100 peers meets nothing: the target reads 1,000.
        self.assertEqual(target.verdict, "**missed**")
        self.assertNotIn("p100 0.", target.figure)
        self.assertIn("with 100 peers instead of 1000 read heartbeat 0.910x "
                      "(0.720x with 1000) and get 0.800x (0.720x with 1000): "
                      "the echo keeps nothing per peer", target.detail)
        self.assertIn("with 100 peers", sections.throughput(r, {}))
        self.assertIn("0.800", sections.throughput(r, {}))

    def test_few_peer_rounds_that_gain_nothing_get_no_explanation(self):
        detail = targets.throughput(self.few_peer_results(0.7, 0.75)).detail
        self.assertIn("heartbeat 0.700x (0.720x with 1000)", detail)
        self.assertNotIn("the echo keeps nothing per peer", detail)

    def test_capped_rounds_run_at_once_take_the_echo_half_beside_them(self):
        folder = Folder(self)
        folder.write("scenarios.txt", SCENARIOS + CAPPED)
        folder.meta("load_cap_percent 40\nload_cap_mode concurrent")
        for k, (daemon, echo) in enumerate(
                [(45000.0, 60000.0), (50000.0, 60000.0), (30000.0, None)],
                start=1):
            daemon_half = json.loads(peerload_json(1.0, rps=daemon))
            for key in ("baseline_responses_per_s", "ratio"):
                del daemon_half[key]  # run alone: no baseline of its own
            folder.write("c1-uring-get.r%d.json" % k,
                         json.dumps(daemon_half) + "\n")
            folder.write("c1-uring-get.r%d.raw.json" % k,
                         json.dumps({"mode": "raw", "responses_per_s": echo,
                                     "p99_us": 900.0, "timeouts": 2})
                         + "\n" if echo else "")
        r = folder.results()
        scenario = r.scenarios["c1-uring-get"]
        self.assertEqual(scenario.round_ratios(), "0.750, 0.833, failed")
        median = scenario.median_round()[0]
        self.assertEqual(median["baseline_responses_per_s"], 60000.0)
        self.assertEqual(median["baseline_timeouts"], 2)
        target = targets.throughput(r)
        self.assertIn("c1-uring-get 0.750x", target.figure)
        self.assertIn("at the same time", target.detail)
        self.assertIn("at the same time", sections.throughput(r, {}))

    def test_load_limited_round_is_marked_and_left_out_of_the_median(self):
        folder = Folder(self)
        folder.write("scenarios.txt", SCENARIOS + CAPPED)
        folder.meta("load_cap_percent 20\nload_cap_mode concurrent\n"
                    "load_capped_rounds 3")
        # Round 2's echo went unthrottled in 134 of 308 periods: its load
        # generator fell behind, which flattered the daemon.
        rounds = [((40000.0, 60000.0), "500 498 500 496 400 520"),
                  ((43000.0, 41000.0), "308 305 308 174 500 520"),
                  ((42000.0, 60000.0), "500 499 500 497 350 520")]
        for k, ((daemon, echo), shares) in enumerate(rounds, start=1):
            daemon_half = json.loads(peerload_json(1.0, rps=daemon))
            for key in ("baseline_responses_per_s", "ratio"):
                del daemon_half[key]
            folder.write("c1-epoll-get.r%d.json" % k,
                         json.dumps(daemon_half) + "\n")
            folder.write("c1-epoll-get.r%d.raw.json" % k,
                         json.dumps({"mode": "raw", "responses_per_s": echo})
                         + "\n")
            folder.write("c1-epoll-get.r%d.throttle" % k, shares + "\n")
        r = folder.results()
        scenario = r.scenarios["c1-epoll-get"]
        self.assertEqual(
            scenario.round_ratios(),
            "0.667, 1.049 (echo load-limited: capped in 56% of periods), "
            "0.700")
        # The lower median of the two rounds the servers limited; with the
        # load-limited round it would have been 0.700.
        self.assertAlmostEqual(scenario.median_round()[0]["ratio"], 40 / 60)
        table = sections.throughput(r, {})
        self.assertIn("marked load-limited below", table)
        self.assertIn("the cap held the daemon back in 99-100% of its "
                      "periods and the echo in 56-99%, with CPU 1 67-96% "
                      "busy; 1 round was load-limited", table)

    def test_swapped_rounds_are_judged_in_pairs(self):
        folder = Folder(self)
        folder.write("scenarios.txt", SCENARIOS + CAPPED)
        folder.meta("load_cap_percent 20\nload_cap_mode swapped\n"
                    "load_capped_rounds 7")
        # The first cgroup lets its server answer more: the daemon's odd
        # rounds read high, its even ones low. Round 5's echo waited for its
        # load, which leaves its pair unjudged; round 7 has no pair.
        rounds = [(43200.0, 60000.0, 200), (38400.0, 60000.0, 150),
                  (44400.0, 60000.0, 100), (39600.0, 60000.0, 300),
                  (50000.0, 50000.0, 0), (40000.0, 60000.0, 0),
                  (30000.0, 60000.0, 0)]
        for k, (daemon, echo, p99) in enumerate(rounds, start=1):
            daemon_half = json.loads(peerload_json(1.0, rps=daemon))
            for key in ("baseline_responses_per_s", "ratio"):
                del daemon_half[key]
            daemon_half["p99_us"] = p99
            folder.write("c1-epoll-get.r%d.json" % k,
                         json.dumps(daemon_half) + "\n")
            folder.write("c1-epoll-get.r%d.raw.json" % k,
                         json.dumps({"mode": "raw", "responses_per_s": echo,
                                     "timeouts": 1}) + "\n")
            folder.write("c1-epoll-get.r%d.throttle" % k,
                         ("500 300 500 498 510 520" if k == 5 else
                          "500 498 500 497 400 520") + "\n")
        r = folder.results()
        scenario = r.scenarios["c1-epoll-get"]
        self.assertTrue(scenario.paired)
        self.assertEqual(
            scenario.round_ratios(),
            "0.720 and 0.640 → 0.679; 0.740 and 0.660 → 0.699; "
            "1.000 (daemon load-limited: capped in 60% of periods) and "
            "0.667 → not judged; 0.500")
        # The lower median of the two judged pairs; a single round's lower
        # median would have been 0.667, the middle round 0.700.
        median, load = scenario.median_round()
        self.assertAlmostEqual(median["ratio"], (0.72 * 0.64) ** 0.5)
        self.assertAlmostEqual(median["responses_per_s"],
                               (43200.0 * 38400.0) ** 0.5)
        self.assertAlmostEqual(median["baseline_responses_per_s"], 60000.0)
        self.assertEqual(median["p99_us"], 200)
        self.assertEqual(median["baseline_timeouts"], 2)
        target = targets.throughput(r)
        self.assertIn("c1-epoll-get 0.679x", target.figure)
        self.assertIn("the median of pairs of rounds", target.detail)
        self.assertIn("rounds are judged in pairs", sections.throughput(r, {}))

    def test_concurrent_rounds_of_an_earlier_run_are_not_paired(self):
        folder = Folder(self)
        folder.write("scenarios.txt", SCENARIOS + CAPPED)
        folder.meta("load_cap_percent 20\nload_cap_mode concurrent")
        self.assertFalse(folder.results().scenarios["c1-epoll-get"].paired)

    def test_round_where_every_server_waited_is_not_measured(self):
        folder = Folder(self)
        folder.write("scenarios.txt", SCENARIOS + CAPPED)
        folder.meta("load_cap_percent 20\nload_cap_mode concurrent\n"
                    "load_capped_rounds 1")
        daemon_half = json.loads(peerload_json(1.0, rps=40000.0))
        for key in ("baseline_responses_per_s", "ratio"):
            del daemon_half[key]
        folder.write("c1-epoll-get.r1.json", json.dumps(daemon_half) + "\n")
        folder.write("c1-epoll-get.r1.raw.json",
                     json.dumps({"mode": "raw", "responses_per_s": 45000.0})
                     + "\n")
        folder.write("c1-epoll-get.r1.throttle", "500 300 500 498 510 520\n")
        r = folder.results()
        self.assertIsNone(r.scenarios["c1-epoll-get"].median_round())
        target = targets.throughput(r)
        self.assertEqual(target.verdict, "**missed**")
        self.assertIn("c1-epoll-get: not measured", target.figure)

    def test_short_throttle_file_reads_as_unknown(self):
        folder = Folder(self)
        folder.write("t.throttle", "500 498 500\n")
        self.assertIsNone(results.throttle(os.path.join(folder.dir, "t.throttle")))
        self.assertEqual(results.load_limited({"ratio": 0.8}), [])

    def test_throughput_missed_says_why(self):
        folder = Folder(self)
        folder.load_rounds(dict(ALL_MET, **{"r1-uring-get": [0.7, 0.75, 0.72]}))
        target = targets.throughput(folder.results())
        self.assertEqual(target.verdict, "**missed**")
        self.assertIn("r1-uring-get 0.720x", target.figure)
        self.assertIn("Why: a raw echo does one recv", target.detail)

    def test_missing_scenario_is_not_measured(self):
        folder = Folder(self)
        folder.load_rounds({"r1-epoll-get": [0.9, 0.9, 0.9]})
        target = targets.throughput(folder.results())
        self.assertEqual(target.verdict, "**missed**")
        self.assertIn("r1-uring-heartbeat: not measured", target.figure)


class GbenchTest(unittest.TestCase):
    def search_folder(self, p99_us):
        folder = Folder(self)
        counters = {"p99_us": p99_us, "p99_raw_us": 32.2, "max_us": 81.9,
                    "pages_per_query": 294.8, "pages_p99": 2624,
                    "listing_p99_us": 39033}
        folder.write("gbench-search_bench.json", gbench_json([
            ("BM_RegistrySearchPageP99/3/iterations:1", counters),
            ("BM_RegistrySearchPageP99/5/iterations:1", dict(counters, p99_us=45.1))]))
        return folder

    def test_search_met_per_request(self):
        target = targets.search(self.search_folder(29.8).results())
        self.assertEqual(target.verdict, "**met**")
        self.assertEqual(target.figure,
                         "per request p99 30 µs (3 bytes), 45 µs (5 bytes)")
        self.assertIn("p99 2,624 pages", target.detail)

    def test_search_missed_over_1_ms(self):
        target = targets.search(self.search_folder(1500.0).results())
        self.assertEqual(target.verdict, "**missed**")
        self.assertIn("kSearchPageBudget", target.detail)

    def test_memory_publications_missed_sessions_met(self):
        folder = Folder(self)
        folder.write("gbench-memory_bench.json", gbench_json([
            ("BM_MemoryPerSession/iterations:1",
             {"bytes_per_session": 240.0, "wheel_bytes_per_session": 8.4,
              "sizeof_session": 192}),
            ("BM_MemoryPerPublication/iterations:1",
             {"bytes_per_publication": 590.4,
              "bytes_per_publication_beyond_name": 565.7, "mean_name_bytes": 24.6})]))
        target = targets.memory(folder.results())
        self.assertEqual(target.verdict, "**missed**")
        self.assertTrue(target.detail.startswith(
            "**Memory**: sessions met; Publications missed: 566 bytes"))

    def test_micro_benchmark_rows_show_counters(self):
        folder = Folder(self)
        folder.write("gbench-protocol_bench.json", gbench_json([
            ("BM_Encode/Login", {"bytes": 78})]))
        text = write_report.render(folder.results(), {})
        self.assertIn("Google Benchmark library: 0.1 0.97 1.16 (library built as debug)", text)
        self.assertIn("| `BM_Encode/Login` | 2.5 ms | 2.5 ms | 1 | bytes=78 |", text)


class TransferTest(unittest.TestCase):
    def test_met_against_rawcopy_and_nginx(self):
        folder = Folder(self)
        folder.transfer()
        target = targets.transfer(folder.results())
        self.assertEqual(target.verdict, "**met**")
        self.assertTrue(target.figure.startswith(
            "1.653x rawcopy (1.288x rawcopy without its fsync), 2.651x "
            "nginx+curl+sync (2.071x curl without sync); 0.640x the splice"))

    def test_without_nginx_row_says_how_to_get_it(self):
        folder = Folder(self)
        folder.transfer(nginx=False)
        r = folder.results()
        self.assertEqual(targets.transfer(r).verdict,
                         "**met** against rawcopy; nginx part not measured")
        text = write_report.render(r, {})
        self.assertIn("| nginx+curl | not measured: nginx is not installed", text)
        self.assertIn("| 1.137 | 944 | 1.2 1.137 1.0 | 1 |", text)


class TransferTlsTest(unittest.TestCase):
    def test_met_when_both_ratios_reach_their_targets(self):
        folder = Folder(self)
        folder.transfer(tls=("0.700", "0.480", "0.750"))
        r = folder.results()
        target = targets.transfer_tls(r)
        self.assertEqual(target.verdict, "**met**")
        self.assertTrue(target.figure.startswith(
            "TLS 0.629x, plaintext 0.917x the splice raw copy"))
        # 0.750 s under attack against 0.700 s: 0.933x.
        self.assertEqual(targets.slowloris(r).verdict, "**met**")
        text = write_report.render(r, {})
        self.assertIn("| 0.480 | 2237 | 0.480 0.480 0.480 |", text)

    def test_missed_tls_says_where_the_time_goes(self):
        folder = Folder(self)
        folder.transfer(tls=("0.900", "0.480", "1.200"))
        r = folder.results()
        target = targets.transfer_tls(r)
        self.assertEqual(target.verdict, "**missed**")
        self.assertIn("kernel TLS", target.detail)
        self.assertEqual(targets.slowloris(r).verdict, "**missed**")

    def test_old_target_reads_the_plaintext_download(self):
        folder = Folder(self)
        folder.transfer(tls=("2.000", "0.688", "2.000"))
        # rawcopy 1.137 s / plaintext 0.688 s, as in the met case above.
        self.assertTrue(targets.transfer(folder.results()).figure.startswith(
            "1.653x rawcopy (1.288x rawcopy without its fsync)"))

    def test_not_measured_without_the_tls_figures(self):
        folder = Folder(self)
        folder.transfer()
        r = folder.results()
        self.assertEqual(targets.transfer_tls(r).verdict, "not measured")
        self.assertEqual(targets.slowloris(r).verdict, "not measured")


class SoakTest(unittest.TestCase):
    def soak_folder(self, peers, false_expiries=0):
        folder = Folder(self)
        folder.meta("soak_peers %d\nsoak_seconds 60" % peers)
        for io in ("epoll", "uring"):
            folder.write("soak-%s.json" % io, peerload_json(
                1.0, logged_in=peers, false_expiries=false_expiries,
                processes=6, login_s=50.2, login_retries=0, requests=10,
                responses=10, retransmissions=0) + "\n")
            folder.write("soak-%s.metrics" % io, "rss_before_kib 41984\n"
                         "rss_peak_kib 65536\ncpu_s 34.5\nrcvbuf_drops 0\n"
                         "load_after 1.71 1.44 1.31\n")
        return folder

    def test_met_at_full_size(self):
        r = self.soak_folder(100000).results()
        self.assertEqual(targets.soak(r).verdict, "**met**")
        self.assertIn("| 41 → 64 MiB (241 B/peer) |", write_report.render(r, {}))

    def test_shortened_soak_is_not_verified(self):
        target = targets.soak(self.soak_folder(2000).results())
        self.assertTrue(target.verdict.startswith("**not verified** (a shortened soak"))

    def test_false_expiry_misses(self):
        target = targets.soak(self.soak_folder(100000, false_expiries=1).results())
        self.assertEqual(target.verdict, "**missed**")


class GroupCommitTest(unittest.TestCase):
    def commit_folder(self, pub=4000, unp=3000, heartbeats=10000.0,
                      storm_p99=900.0, quiet_p99=600.0, errors=0, extra=()):
        folder = Folder(self)
        for name, text in extra:
            folder.write(name, text)
        folder.meta("parts build,peerload,commit,doc")
        folder.write("gc-heartbeat.json", peerload_json(
            1.0, rps=heartbeats, heartbeat_p99_us=700.0) + "\n")
        folder.write("gc-pubunp.json", peerload_json(
            1.0, rps=1.0, duration_s=1.0, errors=errors,
            heartbeat_p99_us=99000.0,
            mix_responses={"heartbeat": 0, "pub": pub, "unp": unp}) + "\n")
        # A number: one round, as an older folder has it (gc-storm.json);
        # a tuple: rounds gc-storm.rK.json.
        storms = storm_p99 if isinstance(storm_p99, tuple) else None
        for k, p99 in enumerate(storms or (storm_p99,), start=1):
            suffix = ".r%d" % k if storms else ""
            folder.write("gc-storm%s.json" % suffix, peerload_json(
                1.0, duration_s=2.0, heartbeat_p99_us=p99,
                mix_responses={"pub": 3000, "unp": 2000}) + "\n")
            folder.write("gc-quiet%s.json" % suffix, "log line\n" + peerload_json(
                1.0, heartbeat_p99_us=quiet_p99) + "\n")
        return folder.results()

    def test_both_met(self):
        r = self.commit_folder()
        rate, p99 = targets.commit_rate(r), targets.commit_p99(r)
        self.assertEqual(rate.verdict, "**met**")
        self.assertTrue(rate.figure.startswith("0.700x (7,000 pub+unp/s"),
                        rate.figure)
        self.assertEqual(p99.verdict, "**met**")
        self.assertTrue(p99.figure.startswith("1.50x (p99 900 µs during 2,500 "
                                              "pub+unp/s"), p99.figure)
        text = write_report.render(r, {})
        self.assertIn("| `pub`/`unp`, one reactor: >= 0.5x the same run's "
                      "heartbeat throughput | 0.700x", text)

    def test_median_storm_round_decides(self):
        r = self.commit_folder(storm_p99=(3000.0, 900.0, 1500.0, 1100.0, 600.0))
        target = targets.commit_p99(r)
        self.assertEqual(target.verdict, "**met**")
        self.assertEqual(target.figure, "1.83x (p99 1100 µs during 2,500 "
                         "pub+unp/s, 600 µs without); rounds 5.00, 1.50, "
                         "2.50, 1.83, 1.00")
        self.assertIn("The pair ran 5 times in turn", target.detail)
        r = self.commit_folder(storm_p99=(3000.0, 900.0, 1500.0, 1300.0))
        self.assertEqual(targets.commit_p99(r).verdict, "**missed**")

    def test_failed_rounds_are_shown_and_all_failed_is_not_measured(self):
        folder = Folder(self)
        folder.meta("parts build,commit,doc")
        folder.write("gc-heartbeat.json", peerload_json(1.0) + "\n")
        folder.write("gc-pubunp.json", peerload_json(1.0) + "\n")
        folder.write("gc-quiet.r1.json", "")
        folder.write("gc-storm.r1.json", "")
        self.assertEqual(targets.commit_p99(folder.results()).verdict,
                         "not measured")
        folder.write("gc-quiet.r2.json", peerload_json(
            1.0, heartbeat_p99_us=500.0) + "\n")
        folder.write("gc-storm.r2.json", peerload_json(
            1.0, duration_s=1.0, heartbeat_p99_us=600.0) + "\n")
        target = targets.commit_p99(folder.results())
        self.assertEqual(target.verdict, "**met**")
        self.assertTrue(target.figure.endswith("; rounds failed, 1.20"),
                        target.figure)

    def test_slow_commit_and_slow_heartbeats_miss(self):
        r = self.commit_folder(pub=2000, unp=2000, storm_p99=1300.0)
        self.assertEqual(targets.commit_rate(r).verdict, "**missed**")
        self.assertEqual(targets.commit_p99(r).verdict, "**missed**")

    def test_errors_miss_even_at_speed(self):
        r = self.commit_folder(errors=3)
        self.assertEqual(targets.commit_rate(r).verdict, "**missed**")

    def test_controls_are_told_beside_but_do_not_change_the_verdict(self):
        plain = targets.commit_p99(self.commit_folder(storm_p99=1300.0))
        self.assertNotIn("stall_probe", plain.detail)
        self.assertNotIn("tmpfs", plain.detail)
        r = self.commit_folder(storm_p99=1300.0, extra=(
            ("gc-stormmem.json",
             peerload_json(1.0, heartbeat_p99_us=660.0) + "\n"),
            ("gc-storm.stalls.json",
             '{"cpus":2,"fifo":true,"sleeps":30000,"over_1ms":41,'
             '"over_5ms":37,"worst_ms":16.52,"stalled_ms":300.0}\n'),
            ("gc-quiet.stalls.json",
             '{"cpus":2,"fifo":true,"sleeps":38000,"over_1ms":0,'
             '"over_5ms":0,"worst_ms":0.42,"stalled_ms":0.0}\n')))
        target = targets.commit_p99(r)
        self.assertEqual(target.verdict, "**missed**")
        self.assertIn("counted 41 stalls over 1 ms (37 over 5 ms, the longest "
                      "16.5 ms) during the storm, and 0 stalls over 1 ms (0 "
                      "over 5 ms, the longest 0.4 ms) during the heartbeats "
                      "alone;", target.detail)
        self.assertIn("heartbeat p99 660 µs, 1.10x the run without the storm",
                      target.detail)

    def test_missing_run_and_part_not_run(self):
        folder = Folder(self)
        folder.meta("parts build,commit,doc")
        folder.write("gc-heartbeat.json", peerload_json(1.0) + "\n")
        self.assertEqual(targets.commit_rate(folder.results()).verdict,
                         "not measured")
        self.assertEqual(targets.commit_p99(Folder(self).results()).verdict,
                         "not measured")


class ClusterTest(unittest.TestCase):
    def cluster_folder(self, ratios=((0.95, 0.97), (0.93, 0.99), (0.96, 0.92)),
                       p99_ms=(3.5, 4.0), missed=0, errors=0):
        folder = Folder(self)
        folder.meta("parts build,cluster,doc\ncluster_rounds %d" % len(ratios))
        for k, (heartbeat, get) in enumerate(ratios, start=1):
            for mix, ratio in (("heartbeat", heartbeat), ("get", get)):
                folder.write("cl-standalone-%s.r%d.json" % (mix, k),
                             peerload_json(1.0, rps=100000.0) + "\n")
                folder.write("cl-cluster-%s.r%d.json" % (mix, k), peerload_json(
                    1.0, rps=100000.0 * ratio, errors=errors) + "\n")
            folder.write("cl-standalone-pubunp.r%d.json" % k, peerload_json(
                1.0, duration_s=1.0,
                mix_responses={"pub": 5000, "unp": 5000}) + "\n")
            folder.write("cl-cluster-pubunp.r%d.json" % k, peerload_json(
                1.0, duration_s=1.0,
                mix_responses={"pub": 4000, "unp": 4000}) + "\n")
            folder.write("cl-cluster-pubunp.r%d.redis_cpu" % k, "0.400\n")
        readers = ", ".join(
            '{"server": "127.0.0.1:%d", "seen": 500, "p50_ms": 1.0, '
            '"p99_ms": %s, "max_ms": 9.0}' % (5000 + i, p)
            for i, p in enumerate(p99_ms))
        folder.write("cl-propagation.json", '{"count": 500, "missed": %d, '
                     '"readers": [%s]}\n' % (missed, readers))
        return folder.results()

    def test_median_round_of_each_mix_decides(self):
        target = targets.cluster_rate(self.cluster_folder())
        self.assertEqual(target.verdict, "**met**")
        self.assertTrue(target.figure.startswith("heartbeat 0.950x"), target.figure)
        self.assertIn("get 0.970x", target.figure)
        self.assertIn("`pub`/`unp` (every change a Redis commit in cluster "
                      "mode, a journal append standalone): 0.800x (8,000 "
                      "against 10,000 changes/s); redis-server spent 50.0 µs",
                      target.detail)

    def test_one_mix_below_0_9_misses(self):
        r = self.cluster_folder(ratios=((0.95, 0.85), (0.96, 0.88), (0.97, 0.95)))
        self.assertEqual(targets.cluster_rate(r).verdict, "**missed**")

    def test_errors_miss(self):
        r = self.cluster_folder(errors=2)
        self.assertEqual(targets.cluster_rate(r).verdict, "**missed**")

    def test_propagation_met_and_missed(self):
        self.assertEqual(targets.cluster_propagation(
            self.cluster_folder()).verdict, "**met**")
        self.assertEqual(targets.cluster_propagation(
            self.cluster_folder(p99_ms=(3.0, 1200.0))).verdict, "**missed**")
        self.assertEqual(targets.cluster_propagation(
            self.cluster_folder(missed=1)).verdict, "**missed**")

    def test_not_run_and_skipped(self):
        folder = Folder(self)
        folder.meta("parts build,doc")
        self.assertEqual(targets.cluster_rate(folder.results()).verdict,
                         "not measured")
        folder = Folder(self)
        folder.meta("parts build,cluster,doc\ncluster_skipped no redis")
        self.assertIn("no redis", targets.cluster_propagation(
            folder.results()).detail)


def perf_lines(samples):
    """perf report's -t '|' form: a header, then "samples|object|function"."""
    return "# Samples: 2K of event 'cpu-clock:ppp'\n" + "".join(
        " %-4d |%-20s |%s\n" % (n, obj, fn) for (obj, fn), n in samples.items())


class CostSplitTest(unittest.TestCase):
    KERNEL = ("[kernel.kallsyms]", "[k] udp_sendmsg")
    SEAL = ("peerconnectd", "[.] pcfs::(anonymous namespace)::AesNiGcm::Seal")

    def split_folder(self, rounds):
        """`rounds`: {mix: [(daemon samples, daemon responses/s, echo
        responses/s)]}; the echo always has 100 samples, all in the
        kernel."""
        folder = Folder(self)
        count = len(next(iter(rounds.values())))
        folder.meta("split_rounds %d\nsplit_seconds 3\nsplit_peers 1000" % count)
        for mix, runs in rounds.items():
            for k, (samples, daemon_rate, echo_rate) in enumerate(runs, start=1):
                base = "split-%s.r%d" % (mix, k)
                folder.write(base + ".daemon.txt", perf_lines(samples))
                folder.write(base + ".echo.txt", perf_lines({self.KERNEL: 100}))
                folder.write(base + ".json", json.dumps(
                    {"responses_per_s": daemon_rate}) + "\n")
                folder.write(base + ".raw.json", json.dumps(
                    {"responses_per_s": echo_rate}) + "\n")
        return folder.results()

    def test_units_are_the_daemons_cpu_per_datagram_over_the_echos(self):
        r = self.split_folder({
            "heartbeat": [({self.KERNEL: 100, self.SEAL: 10,
                            ("peerconnectd", "[.] pcfs::Registry::Admit"): 5},
                           50.0, 100.0)],
            "get": [({self.KERNEL: 100, self.SEAL: 10,
                      ("libcrypto.so.3", "[.] 0x000000000029c463"): 10,
                      ("peerconnectd",
                       "[.] pcfs::Registry::Impl::LiveFileServer"): 5,
                      ("peerconnectd", "[.] pcfs::Mystery"): 5},
                     40.0, 100.0)]})
        self.assertEqual(r.split["get"][0].daemon[self.SEAL], 10)
        units = cost_split.category_units(r.split["get"][0])
        # 100 kernel samples over 40 datagrams a second, against the echo's
        # 100 samples over 100: 2.5 echo datagrams.
        self.assertAlmostEqual(units["kernel: sockets, network, wake-ups"], 2.5)
        self.assertAlmostEqual(units["get's ticket: HMAC-SHA-256, base64"], 0.25)
        self.assertAlmostEqual(units["get's name and holder lookup"], 0.125)
        self.assertAlmostEqual(units["other"], 0.125)
        text = cost_split.section(r)
        self.assertIn("| kernel: sockets, network, wake-ups | 2.000 | 2.500 "
                      "| +0.500 |", text)
        self.assertIn("| sealing: AES-128-GCM both ways | 0.200 | 0.250 | "
                      "+0.050 |", text)
        self.assertIn("| session: lookup, replay window, expiry | 0.100 | "
                      "0.000 | −0.100 |", text)
        self.assertIn("| **total** | **2.300** | **3.250** | +0.950 |", text)
        self.assertIn("| ratio of the round's responses/s | 0.500 | 0.400 | |",
                      text)
        self.assertIn("A get took 2.500 in the kernel alone (a heartbeat "
                      "2.000), which leaves -1.250 for the daemon's own work, "
                      "where a heartbeat's own work took 0.300 and a get's "
                      "0.750.", text)
        self.assertIn("`pcfs::Registry::Impl::LiveFileServer` (peerconnectd) "
                      "+0.125", text)
        self.assertIn("`pcfs::Mystery` (peerconnectd) +0.125", text)
        self.assertEqual(cost_split._short(self.SEAL[1]), "pcfs::AesNiGcm::Seal")
        self.assertEqual(cost_split._signed(-0.0001), "0.000")
        self.assertEqual(cost_split._signed(-0.25), "−0.250")

    def test_a_missed_throughput_target_quotes_the_split(self):
        r = self.split_folder({
            "heartbeat": [({self.KERNEL: 100}, 90.0, 100.0)],
            "get": [({self.KERNEL: 100, self.SEAL: 30}, 80.0, 100.0)]})
        r.scenarios = self.split_folder_scenarios()
        detail = targets.throughput(r).detail
        self.assertIn("This run's perf split (\"Where a datagram's time "
                      "goes\", in units of the echo's CPU time per datagram): "
                      "At the 0.8x target a datagram may cost the daemon "
                      "1.250 of the echo's CPU time per datagram. A get took "
                      "1.250 in the kernel alone (a heartbeat 1.111), which "
                      "leaves 0.000 for the daemon's own work, where a "
                      "heartbeat's own work took 0.000 and a get's 0.375.",
                      detail)
        folder = Folder(self)
        folder.load_rounds(dict(ALL_MET, **{"r1-epoll-get": [0.7] * 3}))
        self.assertIn("Where the CPU time goes was not measured in this run "
                      "(bench/measure/cost_split.sh, the split part).",
                      targets.throughput(folder.results()).detail)

    def split_folder_scenarios(self):
        folder = Folder(self)
        folder.load_rounds(dict(ALL_MET, **{"r1-epoll-get": [0.7] * 3}))
        return folder.results().scenarios

    def test_the_round_with_the_median_total_is_shown(self):
        heartbeat = [({self.KERNEL: n}, 100.0, 100.0) for n in (130, 110, 120)]
        r = self.split_folder({"heartbeat": heartbeat, "get": heartbeat})
        self.assertIn("| **total** | **1.200** | **1.200** |",
                      cost_split.section(r))

    def test_failed_rounds_and_skipped_part_are_said_so(self):
        r = self.split_folder({"heartbeat": [({self.KERNEL: 1}, 0.0, 100.0)],
                               "get": [({self.KERNEL: 1}, 10.0, 100.0)]})
        self.assertIn("no round of the heartbeat mix or of the get mix has "
                      "both halves", cost_split.section(r))
        folder = Folder(self)
        folder.meta("split_note skipped: perf is not installed")
        self.assertEqual(cost_split.section(folder.results()),
                         "Not measured in this run (skipped: perf is not "
                         "installed).")


class DocumentTest(unittest.TestCase):
    def test_parts_not_run_are_said_so(self):
        folder = Folder(self)
        folder.meta("parts gbench,doc\nsoak_note ignored")
        text = write_report.render(folder.results(), {})
        self.assertIn("| 100,000 peers heartbeating 60 s: zero false expiries, "
                      "all answered | — | not run |", text)
        self.assertIn("Not measured in this run (the peerload part was not run).", text)
        self.assertIn("Not measured in this run (the transfer part was not run).", text)
        self.assertIn("Not measured in this run (the split part was not run).", text)
        headings = [line for line in text.splitlines() if line.startswith("## ")]
        self.assertEqual(headings, [
            "## Machine", "## Targets",
            "## Request throughput: epoll vs io_uring, 1 vs 2 reactors",
            "## Where a datagram's time goes", "## 100,000-peer soak", "## Transfer",
            "## Memory per session and per publication", "## Search",
            "## Micro-benchmarks", "## Commands"])

    def test_quick_run_is_marked(self):
        folder = Folder(self)
        folder.meta("quick 1")
        self.assertIn("**A --quick run**", write_report.render(folder.results(), {}))

    def test_charts_are_drawn_and_embedded(self):
        self.assertTrue(charts.gnuplot_available(),
                        "gnuplot is missing: run packaging/install-deps.sh")
        folder = Folder(self)
        folder.load_rounds(ALL_MET)
        folder.transfer()
        out = os.path.join(folder.dir, "doc", "PERFORMANCE.md")
        self.assertEqual(write_report.main([folder.dir, "--output", out]), 0)
        for name in ("throughput", "latency", "transfer"):
            with open(os.path.join(folder.dir, "doc", "performance", name + ".png"),
                      "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)
        with open(out, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("](performance/latency.png)", text)
        self.assertIn("](performance/transfer.png)", text)


if __name__ == "__main__":
    unittest.main()
