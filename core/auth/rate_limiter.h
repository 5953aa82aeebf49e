// RateLimiter: token buckets keyed by a string (a user name, an IP
// address), for login attempts. Pure: time is an argument; pass a monotonic
// clock (a time earlier than a key's last update counts as no time passed).
//
// Memory is bounded by Options::max_keys. A new key past the bound evicts
// one: the first full bucket among the kEvictionScan least recently used
// (a full bucket carries no information, so forgetting it changes nothing),
// else the least recently used. Work per call is therefore bounded. Refusing
// new keys instead would let one flood lock everyone out, and not tracking
// them would let it bypass the limit. With eviction, resetting a key's
// bucket takes leaving that key alone while sending max_keys fresh keys:
// far more attempts than the burst it regains.
//
// Thread-safety: all methods may be called from any thread (one mutex; the
// login path it guards is not the hot path).
#ifndef PCFS_CORE_AUTH_RATE_LIMITER_H_
#define PCFS_CORE_AUTH_RATE_LIMITER_H_

#include <cstddef>
#include <list>
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
    double burst = 5;                           // bucket size
    absl::Duration refill = absl::Seconds(10);  // time per new token
    size_t max_keys = 100000;  // at least 1; see the eviction rule above
  };

  explicit RateLimiter(Options options);

  // Takes one token from `key`'s bucket. False if it is empty; then
  // *retry_after (if not null) says when the next token comes.
  bool TryAcquire(absl::string_view key, absl::Time now,
                  absl::Duration* retry_after = nullptr);

  // Tokens left for `key` (burst for an unknown key).
  double Available(absl::string_view key, absl::Time now) const;

  // How long until `key` holds a whole token: zero if it holds one now.
  absl::Duration WaitFor(absl::string_view key, absl::Time now) const;

 private:
  static constexpr size_t kEvictionScan = 32;

  struct Bucket {
    std::string key;
    double tokens = 0;
    absl::Time updated;
  };
  // Least recently used first; a list so that its nodes (and the keys the
  // index views) never move.
  using Order = std::list<Bucket>;

  double Refilled(const Bucket& bucket, absl::Time now) const;
  // Evicts one bucket as the class comment says. REQUIRES: !order_.empty().
  void EvictOne(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  Order order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<absl::string_view, Order::iterator> buckets_
      ABSL_GUARDED_BY(mu_);  // keys view order_'s
};

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_RATE_LIMITER_H_
