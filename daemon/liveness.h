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

#include <atomic>
#include <cstddef>
#include <memory>

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

}  // namespace pcfs

#endif  // PCFS_DAEMON_LIVENESS_H_
