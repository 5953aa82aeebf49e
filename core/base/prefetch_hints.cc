#include "core/base/prefetch_hints.h"

#include <algorithm>

#include "core/base/fibonacci_hash.h"

namespace pcfs {
namespace {

constexpr uint64_t kLineBytes = 64;
constexpr int kLinesShift = 56;
constexpr uint64_t kAddressMask = (uint64_t{1} << kLinesShift) - 1;

size_t PowerOfTwoAtLeast(size_t n) {
  size_t power = 1;
  while (power < n) power <<= 1;
  return power;
}

}  // namespace

constinit thread_local SessionHints::Entry* SessionHints::recording_ = nullptr;

SessionHints::SessionHints(size_t sessions)
    : mask_(PowerOfTwoAtLeast(std::max<size_t>(sessions, 1)) - 1),
      entries_(mask_ + 1) {}

SessionHints::~SessionHints() = default;

SessionHints::Entry& SessionHints::SlotOf(uint64_t session_id) const {
  // Session ids are random, but need not be.
  return entries_[FibonacciHash(session_id, 32) & mask_];
}

SessionHints::Recorder::Recorder(SessionHints& hints, uint64_t session_id) {
  Entry& entry = hints.SlotOf(session_id);
  entry = Entry();
  entry.session_id = session_id;
  recording_ = &entry;
}

SessionHints::Recorder::~Recorder() { recording_ = nullptr; }

void SessionHints::Note(const void* address, size_t bytes) {
  const auto start = reinterpret_cast<uintptr_t>(address);
  if (bytes == 0 || (start & ~kAddressMask) != 0) return;
  const uint64_t first = start & ~(kLineBytes - 1);
  const uint64_t lines = std::min<uint64_t>(
      (start + bytes - first + kLineBytes - 1) / kLineBytes, kMaxLines);
  for (uint64_t& range : recording_->ranges) {
    if ((range & kAddressMask) == first) {  // noted already: keep the longer
      range = first | std::max(range >> kLinesShift, lines) << kLinesShift;
      return;
    }
    if (range == 0) {
      range = first | lines << kLinesShift;
      return;
    }
  }
}

void SessionHints::Prefetch(uint64_t session_id) const {
  const Entry& entry = SlotOf(session_id);
  if (entry.session_id != session_id) return;
  for (const uint64_t range : entry.ranges) {
    if (range == 0) return;
    const uint64_t first = range & kAddressMask;
    for (uint64_t line = 0; line < range >> kLinesShift; ++line) {
      // Only ever prefetched (see the header): the memory may be gone. The
      // address was packed with its line count, hence the cast back.
      const uint64_t at = first + line * kLineBytes;
      // NOLINTNEXTLINE(performance-no-int-to-ptr)
      __builtin_prefetch(reinterpret_cast<const void*>(at));
    }
  }
}

std::vector<std::pair<uintptr_t, size_t>> SessionHints::RangesOf(
    uint64_t session_id) const {
  std::vector<std::pair<uintptr_t, size_t>> ranges;
  const Entry& entry = SlotOf(session_id);
  if (entry.session_id != session_id) return ranges;
  for (const uint64_t range : entry.ranges) {
    if (range == 0) break;
    ranges.emplace_back(range & kAddressMask, range >> kLinesShift);
  }
  return ranges;
}

}  // namespace pcfs
