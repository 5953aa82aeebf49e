#include "core/auth/rate_limiter.h"

#include <algorithm>
#include <utility>

#include "core/base/mutex_lock.h"

namespace pcfs {

RateLimiter::RateLimiter(Options options) : options_(options) {}

double RateLimiter::Refilled(const Bucket& bucket, absl::Time now) const {
  if (now <= bucket.updated) return bucket.tokens;
  // A zero refill time means no limit at all (and no division by zero).
  if (options_.refill <= absl::ZeroDuration()) return options_.burst;
  const double earned =
      absl::FDivDuration(now - bucket.updated, options_.refill);
  return std::min(options_.burst, bucket.tokens + earned);
}

void RateLimiter::EvictOne(absl::Time now) {
  Order::iterator victim = order_.begin();
  Order::iterator it = order_.begin();
  for (size_t scanned = 0; scanned < kEvictionScan && it != order_.end();
       ++scanned, ++it) {
    if (Refilled(*it, now) >= options_.burst) {
      victim = it;
      break;
    }
  }
  buckets_.erase(absl::string_view(victim->key));
  order_.erase(victim);
}

bool RateLimiter::TryAcquire(absl::string_view key, absl::Time now,
                             absl::Duration* retry_after) {
  MutexLock lock(&mu_);
  auto found = buckets_.find(key);
  Order::iterator bucket;
  if (found != buckets_.end()) {
    bucket = found->second;
    bucket->tokens = Refilled(*bucket, now);
    bucket->updated = std::max(bucket->updated, now);
    order_.splice(order_.end(), order_, bucket);  // now the most recent
  } else {
    if (buckets_.size() >= std::max<size_t>(options_.max_keys, 1)) {
      EvictOne(now);
    }
    bucket = order_.insert(order_.end(),
                           Bucket{std::string(key), options_.burst, now});
    buckets_.emplace(absl::string_view(bucket->key), bucket);
  }
  if (bucket->tokens >= 1) {
    bucket->tokens -= 1;
    return true;
  }
  if (retry_after != nullptr) {
    *retry_after = (1 - bucket->tokens) * options_.refill;
  }
  return false;
}

double RateLimiter::Available(absl::string_view key, absl::Time now) const {
  MutexLock lock(&mu_);
  auto found = buckets_.find(key);
  if (found == buckets_.end()) return options_.burst;
  return Refilled(*found->second, now);
}

absl::Duration RateLimiter::WaitFor(absl::string_view key,
                                    absl::Time now) const {
  const double tokens = Available(key, now);
  if (tokens >= 1) return absl::ZeroDuration();
  return (1 - tokens) * options_.refill;
}

}  // namespace pcfs
