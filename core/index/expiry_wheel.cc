#include "core/index/expiry_wheel.h"

#include <algorithm>
#include <limits>

namespace pcfs {
namespace {

// Ticks are capped far below INT64_MAX so that tick arithmetic never
// overflows, even for absl::InfiniteFuture().
constexpr int64_t kMaxTick = std::numeric_limits<int64_t>::max() / 4;

// The number of whole slot widths in `elapsed` (>= 0), and the remainder.
int64_t WholeTicks(absl::Duration elapsed, absl::Duration slot_width,
                   absl::Duration* remainder) {
  const int64_t ticks = absl::IDivDuration(elapsed, slot_width, remainder);
  return std::min(ticks, kMaxTick);
}

}  // namespace

ExpiryWheel::ExpiryWheel(absl::Duration slot_width, size_t slot_count,
                         absl::Time start)
    : slot_width_(std::max(slot_width, absl::Nanoseconds(1))),
      slots_(std::max<size_t>(slot_count, 2)),
      current_tick_(0),
      origin_(start),
      now_(start) {}

void ExpiryWheel::Schedule(uint64_t key, absl::Time deadline) {
  ++size_;
  if (deadline <= now_) {
    due_.push_back(key);
    return;
  }
  // The first tick at or after the deadline. Since deadline > now_, it is
  // past every tick already fired.
  absl::Duration remainder;
  int64_t tick = WholeTicks(deadline - origin_, slot_width_, &remainder);
  if (remainder > absl::ZeroDuration() && tick < kMaxTick) ++tick;
  const int64_t last_tick =
      current_tick_ + static_cast<int64_t>(slots_.size()) - 1;
  tick = std::clamp(tick, current_tick_, last_tick);  // far: end of the span
  slots_[static_cast<uint64_t>(tick) % slots_.size()].push_back(key);
}

void ExpiryWheel::Advance(absl::Time now,
                          absl::FunctionRef<void(uint64_t key)> fn) {
  if (now < now_) return;
  now_ = now;
  absl::Duration remainder;
  const int64_t target = WholeTicks(now - origin_, slot_width_, &remainder);
  if (target >= current_tick_) {
    const auto slot_count = static_cast<int64_t>(slots_.size());
    if (target - current_tick_ >= slot_count - 1) {
      // Every slot is due: gather them instead of walking tick by tick, so
      // that a jump of hours costs one pass over the slots.
      for (std::vector<uint64_t>& slot : slots_) {
        due_.insert(due_.end(), slot.begin(), slot.end());
        slot.clear();
      }
      current_tick_ = target + 1;
    } else {
      while (current_tick_ <= target) {
        std::vector<uint64_t>& slot =
            slots_[static_cast<uint64_t>(current_tick_) % slots_.size()];
        ++current_tick_;  // first, so that fn's Schedule() sees the new span
        FireFront(slot, slot.size(), fn);
      }
    }
  }
  // Keys that were due before this call, or that fn re-armed with a deadline
  // already passed. Those re-armed by this very pass wait for the next call.
  FireFront(due_, due_.size(), fn);
}

void ExpiryWheel::FireFront(std::vector<uint64_t>& keys, size_t count,
                            absl::FunctionRef<void(uint64_t key)> fn) {
  // Indexing, not iterators: fn may append to `keys` and so reallocate it.
  for (size_t i = 0; i < count; ++i) {
    const uint64_t key = keys[i];
    --size_;
    fn(key);
  }
  keys.erase(keys.begin(), keys.begin() + static_cast<ptrdiff_t>(count));
}

}  // namespace pcfs
