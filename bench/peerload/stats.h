// LoadStats: what one peerload run measured, and the two ways it is
// reported: a human-readable table and one line of JSON. The measurement
// counters cover the window only (from the moment every peer is logged in,
// for --duration), but for timeouts and expiries, which also cover the login
// phase (see driver.h); the login phase has its own counters too.
//
// A run split over worker processes (workers.h) sends each worker's
// LoadStats to the parent as text (EncodeStats / DecodeStats), and the
// parent adds them up (MergeStats): counters summed, histograms merged
// bucket by bucket, durations the longest.
//
// Not thread-safe: filled by peerload's single event loop, then read.
#ifndef PCFS_BENCH_PEERLOAD_STATS_H_
#define PCFS_BENCH_PEERLOAD_STATS_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/peerload/histogram.h"
#include "bench/peerload/options.h"

namespace pcfs::peerload {

struct LoadStats {
  // ---- Login phase (start until every peer logged in, or the ramp limit).
  int peers = 0;
  int logged_in = 0;            // peers logged in when the window opened
  double login_s = 0;           // how long that took
  uint64_t logins = 0;          // successful logins, re-logins included
  uint64_t login_retries = 0;   // refused (rate limited, still active) or lost
  uint64_t login_timeouts = 0;  // of those: no reply after every try
  uint64_t publications = 0;    // PUBs answered kOk
  LatencyHistogram login_latency;  // LOGIN sent to session established

  // ---- Measurement window.
  double measured_s = 0;
  uint64_t requests = 0;   // first tries sent
  uint64_t responses = 0;  // verified answers
  std::array<uint64_t, kRequestKinds> mix_responses{};
  uint64_t heartbeat_responses = 0;  // of the mandatory heartbeats
  uint64_t retransmissions = 0;
  uint64_t timeouts = 0;   // abandoned after every try (whole run)
  uint64_t not_found = 0;  // GET answered kNotFound (expected)
  // kUnknownSession answers (whole run; see driver.h): although the peer
  // kept the 3 s contract, and after peerload itself was late.
  uint64_t false_expiries = 0;
  uint64_t late_expiries = 0;
  uint64_t relogins = 0;
  uint64_t rate_missed = 0;    // open loop: no idle peer when one was due
  uint64_t stray_replies = 0;  // late duplicates, bad MACs: ignored
  // Errors: replies with a result code other than kOk (kNotFound of GET and
  // kUnknownSession are counted above), undecodable replies, refused sends.
  std::map<std::string, uint64_t> errors_by_kind;
  LatencyHistogram latency;  // first try to answer
  // Of the HEARTBEAT requests alone (mandatory and mix): how heartbeats
  // fare beside the rest of the mix (a PUB storm, say).
  LatencyHistogram heartbeat_latency;

  // ---- Logout.
  uint64_t logouts = 0;

  uint64_t errors() const;
  double responses_per_s() const;
  void CountError(const std::string& kind) { ++errors_by_kind[kind]; }
};

// Adds `from` to `into`: peers, counters and errors summed, histograms
// merged, login_s and measured_s the longest of the two (the workers of
// one run measure the same window, opened together).
void MergeStats(const LoadStats& from, LoadStats* into);

// A LoadStats as text, one field a line ("name value"), histograms as
// "bucket:count" pairs; DecodeStats reads it back exactly (doubles to
// within their printed 9 significant digits). Errors: InvalidArgument
// naming the bad line.
std::string EncodeStats(const LoadStats& stats);
absl::StatusOr<LoadStats> DecodeStats(absl::string_view text);

// What the report says about the run itself.
struct RunDescription {
  const LoadOptions* options = nullptr;
  std::string server;  // "127.0.0.1:50000"
  int processes = 1;   // peerload processes the peers were split over
};

// The human-readable report; `baseline`, when given, is the raw echo run
// shown beside the daemon run.
std::string FormatReport(const RunDescription& run, const LoadStats& stats,
                         const std::optional<LoadStats>& baseline);

// One line of JSON (no newline): responses_per_s, p50_us, p99_us, p999_us,
// heartbeat_p50_us, heartbeat_p99_us, heartbeat_responses,
// mix_responses (an object: kind -> answers),
// errors, timeouts, false_expiries, retransmissions, peers, duration_s, mix,
// login_s, and more; with `baseline` also baseline_responses_per_s and
// ratio (responses_per_s / baseline_responses_per_s).
std::string FormatJson(const RunDescription& run, const LoadStats& stats,
                       const std::optional<LoadStats>& baseline);

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_STATS_H_
