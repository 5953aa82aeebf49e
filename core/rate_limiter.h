// RateLimiter: token buckets keyed by a string (a user name, an IP
// address), for login attempts. Pure: time is an argument.
//
// Thread-safety: all methods may be called from any thread (one mutex; the
// login path it guards is not the hot path).
#ifndef PCFS_CORE_RATE_LIMITER_H_
#define PCFS_CORE_RATE_LIMITER_H_

#include <cstddef>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pcfs {

class RateLimiter {
 public:
  struct Options {
    double burst = 5;                               // bucket size
    absl::Duration refill = absl::Seconds(10);      // time per new token
    size_t max_keys = 100000;  // beyond it, full buckets are forgotten first
  };

  explicit RateLimiter(Options options);

  // Takes one token from `key`'s bucket. False if it is empty; then
  // *retry_after (if not null) says when the next token comes.
  bool TryAcquire(absl::string_view key, absl::Time now,
                  absl::Duration* retry_after = nullptr);

  // Tokens left for `key` (burst for an unknown key).
  double Available(absl::string_view key, absl::Time now) const;

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };
  double Refilled(const Bucket& bucket, absl::Time now) const;

  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pcfs

#endif  // PCFS_CORE_RATE_LIMITER_H_
