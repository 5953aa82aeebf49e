// LatencyHistogram: a log-linear histogram of durations in nanoseconds, for
// percentiles. Below 128 ns every value has its own bucket; above, each power
// of two is split into 128 buckets, so a bucket is at most 1/128 (0.8%) of
// its values wide. Fixed memory (58 KiB), O(1) Record, no allocation
// after construction. Two histograms merge exactly (bucket by bucket), so
// the percentiles of a run split over worker processes are those of all
// its samples, not an average of per-worker percentiles.
//
// Not thread-safe: one owner (peerload's single event loop).
#ifndef PCFS_BENCH_PEERLOAD_HISTOGRAM_H_
#define PCFS_BENCH_PEERLOAD_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace pcfs::peerload {

class LatencyHistogram {
 public:
  LatencyHistogram();

  // Counts one duration; a negative one counts as 0.
  void Record(int64_t nanos);
  uint64_t count() const { return count_; }

  // The value at quantile `q` (0 < q <= 1: 0.5, 0.99, 0.999): the midpoint
  // of the bucket holding the ceil(q * count)-th smallest value, so within
  // 0.4% of it. 0 when empty.
  int64_t Quantile(double q) const;

  // Adds every sample of `other` to this one.
  void Merge(const LatencyHistogram& other);

  // The buckets that hold samples, as (bucket index, count), in index
  // order: what a worker process sends its parent.
  std::vector<std::pair<uint32_t, uint64_t>> NonEmptyBuckets() const;
  // Adds `n` samples to bucket `bucket` (an index NonEmptyBuckets gave).
  // Returns false, changing nothing, if there is no such bucket.
  bool AddToBucket(uint32_t bucket, uint64_t n);

 private:
  static size_t BucketOf(uint64_t nanos);
  static uint64_t MidpointOf(size_t bucket);

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
};

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_HISTOGRAM_H_
