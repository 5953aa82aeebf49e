// Run-time metrics of peerconnectd, and the HTTP endpoint that serves them
// in Prometheus's text exposition format (version 0.0.4) at GET /metrics.
//
// The request path only bumps counters, so each is cheap and allocates
// nothing: RequestMetrics belongs to one reactor thread, which is its only
// writer (a relaxed load and store, no locked instruction); the metrics
// thread reads it with relaxed loads. A LatencyHistogram may have many
// writers (relaxed fetch_add). Sums over the reactors are made when
// /metrics is read.
#ifndef PCFS_DAEMON_METRICS_H_
#define PCFS_DAEMON_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"

namespace pcfs {

// A counter with one writer thread and any number of readers.
class SingleWriterCounter {
 public:
  void Add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n,
                 std::memory_order_relaxed);
  }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A histogram of durations with fixed buckets from 10 us to 1 s.
// Thread-safe: Observe() from any thread, reads from any thread.
class LatencyHistogram {
 public:
  // Upper bounds in seconds; a last bucket (+Inf) holds the rest.
  static constexpr std::array<double, 16> kBounds = {
      0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
      0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   0.5,   1.0};

  void Observe(uint64_t nanoseconds);
  // Appends "NAME_bucket{le=...}", "NAME_sum" and "NAME_count" lines, with
  // `labels` (e.g. `type="PUB"`, or empty) inside every set of braces.
  void Render(absl::string_view name, absl::string_view labels,
              std::string& out) const;
  // Adds another histogram's counts into this one (for sums over reactors).
  void MergeFrom(const LatencyHistogram& other);

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_nanoseconds_{0};
};

// What one reactor thread counted. One writer: that thread.
struct RequestMetrics {
  // Request types by index (TypeIndex); the last is "unknown".
  static constexpr size_t kTypes = 13;
  // Result codes by index (ResultIndex): 0..11, 255 as 12, no reply as 13.
  static constexpr size_t kResults = 14;
  static size_t TypeIndex(uint8_t type);
  static size_t ResultIndex(uint8_t code);
  static absl::string_view TypeLabel(size_t index);
  static absl::string_view ResultLabel(size_t index);

  // Records one handled request: its type byte (0 if not even a header),
  // the reply's result code and whether a reply was sent at all.
  void Record(uint8_t type, bool replied, uint8_t code);

  std::array<SingleWriterCounter, kTypes> requests;
  std::array<std::array<SingleWriterCounter, kResults>, kTypes> replies;
  SingleWriterCounter logins_ok;
  SingleWriterCounter logins_refused;
  SingleWriterCounter pings_dropped;  // over the ping rate limit
  LatencyHistogram latency;
};

// Serves GET /metrics on a TCP address from a thread of its own, the body
// made by `render` at each request. Anything else gets 404 (or 405 for a
// method other than GET). Thread-safety: Start() and Stop() from one thread;
// `render` runs on the metrics thread.
class MetricsServer {
 public:
  // Binds `address` ("127.0.0.1:9650", "[::1]:9650"). Errors: a malformed
  // address, or the bind failing.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      absl::string_view address, std::function<std::string()> render);
  ~MetricsServer();  // stops the thread
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  const SocketAddress& address() const { return address_; }

 private:
  MetricsServer(UniqueFd listener, UniqueFd wake,
                std::function<std::string()> render);
  void Serve();
  void Answer(int fd);

  UniqueFd listener_;
  UniqueFd wake_;  // eventfd: written to stop the thread
  std::function<std::string()> render_;
  SocketAddress address_;
  std::thread thread_;
};

// Parses a numeric "HOST:PORT" ("127.0.0.1:9650", "[::1]:9650"). Used by
// the daemon and by check-config.
absl::StatusOr<SocketAddress> ParseMetricsAddress(absl::string_view address);

// Appends one "# HELP", one "# TYPE" line for a metric family.
void AppendMetricHeader(absl::string_view name, absl::string_view type,
                        absl::string_view help, std::string& out);

}  // namespace pcfs

#endif  // PCFS_DAEMON_METRICS_H_
