// ExpiryWheel: a hashed timer wheel for session deadlines. Scheduling and
// firing are O(1) per key; nothing ever scans all keys.
//
// It is deliberately "lazy": a key fires at (or up to one slot after) the
// deadline it was scheduled with, and the owner re-checks the key against its
// own current deadline, re-scheduling it if that moved (a heartbeat extends a
// session without touching the wheel). Deadlines further away than the
// wheel's span fire early, at the end of the span, for the same re-check.
//
// Pure: time comes in as an argument. Not thread-safe: each reactor thread
// owns its own wheel.
#ifndef PCFS_CORE_INDEX_EXPIRY_WHEEL_H_
#define PCFS_CORE_INDEX_EXPIRY_WHEEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"

namespace pcfs {

class ExpiryWheel {
 public:
  // `slot_width` > 0 and `slot_count` >= 2. Time starts at `start`.
  ExpiryWheel(absl::Duration slot_width, size_t slot_count, absl::Time start);

  // Arranges for fn(key) to be called by the first Advance(now) with
  // now >= deadline (rounded up to the next slot boundary). A deadline in
  // the past fires on the next Advance(). Scheduling a key twice fires it
  // twice.
  void Schedule(uint64_t key, absl::Time deadline);

  // Moves the wheel to `now` and calls fn(key) for each key that is due.
  // fn may call Schedule() (the re-armed key is not fired again in this
  // call unless its new deadline is also due; even then it may wait for the
  // next Advance(), so that a callback that keeps re-arming a past deadline
  // cannot make one call loop forever). Time never moves backwards: a `now`
  // before the last one is ignored. The work done is bounded by the slot
  // count plus the keys fired, however far `now` jumps.
  void Advance(absl::Time now, absl::FunctionRef<void(uint64_t key)> fn);

  // Keys scheduled and not yet fired.
  size_t size() const { return size_; }
  absl::Duration slot_width() const { return slot_width_; }

 private:
  // Calls fn for the first `count` keys of `keys`, then drops them; keys
  // that fn appends meanwhile stay.
  void FireFront(std::vector<uint64_t>& keys, size_t count,
                 absl::FunctionRef<void(uint64_t key)> fn);

  absl::Duration slot_width_;
  // Tick t is the instant origin_ + t * slot_width_. Every key in slots_
  // belongs to a tick of [current_tick_, current_tick_ + slot_count), and
  // slots_[t % slot_count] holds the keys of tick t.
  std::vector<std::vector<uint64_t>> slots_;
  std::vector<uint64_t> due_;  // keys whose deadline had passed when scheduled
  int64_t current_tick_;       // the tick whose slot fires next
  absl::Time origin_;
  absl::Time now_;  // the latest time Advance() moved to
  size_t size_ = 0;
};

}  // namespace pcfs

#endif  // PCFS_CORE_INDEX_EXPIRY_WHEEL_H_
