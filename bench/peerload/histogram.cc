#include "bench/peerload/histogram.h"

#include <bit>
#include <cmath>

namespace pcfs::peerload {
namespace {

constexpr int kSubBits = 7;  // 128 buckets per power of two
constexpr uint64_t kSub = uint64_t{1} << kSubBits;
// Values below kSub have exact buckets; exponents kSubBits..63 each have kSub.
constexpr size_t kBuckets = kSub + (64 - kSubBits) * kSub;

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

size_t LatencyHistogram::BucketOf(uint64_t nanos) {
  if (nanos < kSub) return static_cast<size_t>(nanos);
  const int exponent = std::bit_width(nanos) - 1;  // >= kSubBits
  const uint64_t sub = (nanos >> (exponent - kSubBits)) & (kSub - 1);
  return static_cast<size_t>((exponent - kSubBits + 1) * kSub + sub);
}

uint64_t LatencyHistogram::MidpointOf(size_t bucket) {
  if (bucket < kSub) return bucket;
  const int exponent = static_cast<int>(bucket / kSub) - 1 + kSubBits;
  const uint64_t sub = bucket % kSub;
  const int shift = exponent - kSubBits;
  const uint64_t low = (kSub + sub) << shift;
  return low + ((uint64_t{1} << shift) >> 1);
}

void LatencyHistogram::Record(int64_t nanos) {
  ++counts_[BucketOf(nanos < 0 ? 0 : static_cast<uint64_t>(nanos))];
  ++count_;
}

int64_t LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  double rank = std::ceil(q * static_cast<double>(count_));
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (static_cast<double>(seen) >= rank) {
      return static_cast<int64_t>(MidpointOf(i));
    }
  }
  return static_cast<int64_t>(MidpointOf(counts_.size() - 1));
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
}

std::vector<std::pair<uint32_t, uint64_t>> LatencyHistogram::NonEmptyBuckets()
    const {
  std::vector<std::pair<uint32_t, uint64_t>> buckets;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0)
      buckets.emplace_back(static_cast<uint32_t>(i), counts_[i]);
  }
  return buckets;
}

bool LatencyHistogram::AddToBucket(uint32_t bucket, uint64_t n) {
  if (bucket >= counts_.size()) return false;
  counts_[bucket] += n;
  count_ += n;
  return true;
}

}  // namespace pcfs::peerload
