// ReplayWindow: a sliding window over sequence numbers, as in IPsec
// (RFC 4303 3.4.3). It accepts each number at most once, and refuses numbers
// more than kWidth - 1 below the highest accepted so far. Sequence number 0
// is never valid (senders start at 1). Pure and header-only, so that the
// daemon's session table can keep one per session.
//
// Not thread-safe: its owner (a session, under its session table shard lock)
// serialises calls.
#ifndef PCFS_CORE_AUTH_REPLAY_WINDOW_H_
#define PCFS_CORE_AUTH_REPLAY_WINDOW_H_

#include <cstdint>

namespace pcfs {

class ReplayWindow {
 public:
  static constexpr uint64_t kWidth = 64;

  // True if `sequence` would be accepted. Does not record it.
  bool Check(uint64_t sequence) const {
    if (sequence == 0) return false;
    if (sequence > highest_) return true;
    const uint64_t behind = highest_ - sequence;
    if (behind >= kWidth) return false;
    return (seen_ & (uint64_t{1} << behind)) == 0;
  }

  // Records `sequence` as seen. REQUIRES: Check(sequence).
  void Record(uint64_t sequence) {
    if (sequence > highest_) {
      const uint64_t shift = sequence - highest_;
      seen_ = shift >= kWidth ? 0 : seen_ << shift;
      seen_ |= 1;
      highest_ = sequence;
    } else {
      seen_ |= uint64_t{1} << (highest_ - sequence);
    }
  }

  uint64_t highest() const { return highest_; }

 private:
  uint64_t highest_ = 0;
  uint64_t seen_ = 0;  // bit i: highest_ - i was accepted
};

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_REPLAY_WINDOW_H_
