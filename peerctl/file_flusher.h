// FileFlusher: makes a file being downloaded durable while it arrives, so
// that the fsync before the file is linked under its name waits for a few
// megabytes instead of the whole file.
//
// Why: sync_file_range (peerctl/body_sink.h) starts the writeback of what
// was written, but an fsync also flushes the device's volatile cache, and
// on a disk with one (a virtual disk whose host caches writes; an SSD with
// a write cache) that flush costs time in proportion to what reached the
// cache since the last one. Measured on the 2-core test machine, 1 GiB
// written then fsynced: the writes reached the device in 0.46 s, the fsync
// then took 1.0-1.2 s more. With an fdatasync every 32-128 MiB on another
// thread while the file was written, the last fsync took 0.02-0.23 s
// (docs/PERFORMANCE.md, "Transfer").
//
// A thread of its own calls fdatasync(2) on the file each time at least
// `step_bytes` more were written since its last call began (Wrote() counts
// them), so the flushes never hold up a receiving thread; when the disk is
// slower than the network they follow one another, never more than one at a
// time. A failure ends the flushing and is returned by Stop(): after a failed
// fdatasync the kernel reports that write error to the same open file only
// once, so a later fsync might not see it again, and the download must not
// be linked. Sync() is the one way a download ends: Stop(), then the fsync,
// the first error of the two.
//
// Thread-safety: Wrote() from any thread; Stop() (and the destructor) from
// the owner, once the writers are done.
#ifndef PCFS_PEERCTL_FILE_FLUSHER_H_
#define PCFS_PEERCTL_FILE_FLUSHER_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "absl/status/status.h"

namespace pcfs {

// How much a download writes between two background flushes: 64 MiB, a
// 16th of a 1 GiB file (the fixed cost of a flush, a few milliseconds on an
// SSD, tens on a spinning disk, stays small against the data it covers).
inline constexpr uint64_t kFlushStepBytes = uint64_t{64} << 20;

class FileFlusher {
 public:
  // Flushes `fd` (not owned; kept open by the caller until Stop() or
  // Sync()) after
  // every `step_bytes` written. REQUIRES: step_bytes > 0.
  FileFlusher(int fd, uint64_t step_bytes);
  FileFlusher(const FileFlusher&) = delete;
  FileFlusher& operator=(const FileFlusher&) = delete;
  // Stops (see Stop()), dropping its status.
  ~FileFlusher();

  // Counts `bytes` more written to the file.
  void Wrote(uint64_t bytes);

  // Waits for a flush in progress, ends the thread (no flush of what is
  // still unflushed: the caller's fsync does that) and returns the first
  // error: the errno of a failed fdatasync. Idempotent.
  absl::Status Stop();

  // Stop(), then fsync(2) of the file (what is left, and its metadata):
  // Stop()'s error if it has one, else the fsync's errno.
  absl::Status Sync();

  // How many fdatasync calls completed, failed ones included, and how many
  // bytes Wrote() counted.
  uint64_t flushes() const;
  uint64_t written() const;

 private:
  void Run();

  const int fd_;
  const uint64_t step_bytes_;
  // std primitives (not absl's): the thread waits on a condition, and
  // Debian's abseil is built without TSan (core/base/mutex_lock.h).
  mutable std::mutex mu_;
  std::condition_variable wake_;
  uint64_t written_ = 0;  // counted by Wrote()
  uint64_t flushed_ = 0;  // written_ when the last flush began
  uint64_t flushes_ = 0;
  bool stopping_ = false;
  absl::Status status_;
  std::thread thread_;  // last: started once the rest is set
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_FILE_FLUSHER_H_
