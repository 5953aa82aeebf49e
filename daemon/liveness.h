// ReactorLiveness: whether every reactor thread has made progress, for the
// systemd watchdog. Each reactor calls Beat() from its timer (which runs
// only when its loop turns); the watchdog pets systemd only when
// TakeAllAlive() says every reactor beat since the last ping, so a single
// stuck reactor stops the pings and systemd restarts the daemon.
//
// Pure logic, no clock. Thread-safety: Beat(i) from reactor i's thread,
// TakeAllAlive() from one thread (any); relaxed atomics suffice because the
// flags carry no other data.
#ifndef PCFS_DAEMON_LIVENESS_H_
#define PCFS_DAEMON_LIVENESS_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

#include "absl/time/time.h"

namespace pcfs {

class ReactorLiveness {
 public:
  explicit ReactorLiveness(size_t reactors)
      : count_(reactors), beat_(new std::atomic<bool>[reactors]) {
    for (size_t i = 0; i < count_; ++i) beat_[i].store(false);
  }

  // Reactor `index` made progress. REQUIRES: index < reactors.
  void Beat(size_t index) {
    beat_[index].store(true, std::memory_order_relaxed);
  }

  // True if every reactor beat since the last time this returned true; then
  // starts a new round. False leaves the beats seen so far in place.
  bool TakeAllAlive() {
    for (size_t i = 0; i < count_; ++i) {
      if (!beat_[i].load(std::memory_order_relaxed)) return false;
    }
    for (size_t i = 0; i < count_; ++i) {
      beat_[i].store(false, std::memory_order_relaxed);
    }
    return true;
  }

  // The first reactor that has not beaten in this round, or `reactors` if
  // all have (for the log line when the watchdog stops being petted).
  size_t FirstSilent() const {
    for (size_t i = 0; i < count_; ++i) {
      if (!beat_[i].load(std::memory_order_relaxed)) return i;
    }
    return count_;
  }

  size_t reactors() const { return count_; }

 private:
  const size_t count_;
  std::unique_ptr<std::atomic<bool>[]> beat_;
};

// DrainClock: up to when every reactor's socket has been drained, for the
// expiry (RequestHandler::Tick's `drained_until`). With SO_REUSEPORT a
// session's heartbeats may reach another reactor's socket than its login
// did, so the reactor that judges its expiry must wait until that socket
// was drained past its deadline too. Each reactor calls Drained() after
// the drain that starts its tick, with the time that drain began (every
// datagram that reached its socket before then is handled); DrainedUntil()
// is the earliest such time of all the reactors, leaving out any that has
// not drained for `stuck_after` before the asking reactor's own previous
// drain while the asking one kept turning: one stuck while the others kept
// turning (the watchdog's business), whose sessions' expiry is held no
// longer. After a stall of the whole process (stopped, or starved of CPU)
// no reactor looks stuck: the asking reactor counts its turning from the
// first drain after a gap of over `stall_gap` between its drains, so the
// others have `stuck_after` from then to drain what waited on their
// sockets, however often it ticks before they get the CPU.
//
// Pure logic: the times come in as arguments. Thread-safety: Drained(i)
// and DrainedUntil(i) from reactor i's thread; a release store and
// acquire loads, so that what a drain handled (renewed deadlines) is seen
// by the reactor that reads its time.
class DrainClock {
 public:
  explicit DrainClock(size_t reactors,
                      absl::Duration stall_gap = absl::Seconds(1))
      : count_(reactors),
        stall_gap_(stall_gap),
        drained_ns_(new std::atomic<int64_t>[reactors]),
        turning_since_ns_(new std::atomic<int64_t>[reactors]) {
    for (size_t i = 0; i < count_; ++i) {
      drained_ns_[i].store(kNever, std::memory_order_relaxed);
      turning_since_ns_[i].store(kNever, std::memory_order_relaxed);
    }
  }

  // Reactor `index`'s drain that began at `start` is done. Returns when
  // its previous one began (InfinitePast: none). REQUIRES: index <
  // reactors.
  absl::Time Drained(size_t index, absl::Time start) {
    const int64_t start_ns = absl::ToUnixNanos(start);
    const int64_t previous =
        drained_ns_[index].exchange(start_ns, std::memory_order_acq_rel);
    // The first drain after a stall starts a new stretch of turning (the
    // first drain of all does not: all the reactors start together).
    if (previous != kNever &&
        start - absl::FromUnixNanos(previous) > stall_gap_) {
      turning_since_ns_[index].store(start_ns, std::memory_order_relaxed);
    }
    return previous == kNever ? absl::InfinitePast()
                              : absl::FromUnixNanos(previous);
  }

  // For reactor `index`, whose previous drain began at `own_previous`: the
  // earliest drain start of the reactors that drained at or after
  // `own_previous - stuck_after`, or of all of them while `index` has
  // turned for less than `stuck_after` before `own_previous` since it last
  // stalled. REQUIRES: index < reactors; called from reactor index's thread.
  absl::Time DrainedUntil(size_t index, absl::Time own_previous,
                          absl::Duration stuck_after) const {
    const absl::Time stuck_before = own_previous - stuck_after;
    const int64_t since_ns =
        turning_since_ns_[index].load(std::memory_order_relaxed);
    const bool asker_turned_long_enough =
        since_ns == kNever || absl::FromUnixNanos(since_ns) < stuck_before;
    absl::Time earliest = absl::InfiniteFuture();
    for (size_t i = 0; i < count_; ++i) {
      const int64_t ns = drained_ns_[i].load(std::memory_order_acquire);
      const absl::Time drained =
          ns == kNever ? absl::InfinitePast() : absl::FromUnixNanos(ns);
      // Stuck: not drained since long before the asker's previous drain
      // (or never, once the asker has), while the asker kept turning.
      if (asker_turned_long_enough && drained < stuck_before) continue;
      earliest = std::min(earliest, drained);
    }
    return earliest;
  }

 private:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
  const size_t count_;
  const absl::Duration stall_gap_;
  std::unique_ptr<std::atomic<int64_t>[]> drained_ns_;
  // Written and read by reactor i's thread only (atomic for simplicity).
  std::unique_ptr<std::atomic<int64_t>[]> turning_since_ns_;
};

}  // namespace pcfs

#endif  // PCFS_DAEMON_LIVENESS_H_
