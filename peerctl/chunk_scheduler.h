// ChunkScheduler: who fetches which chunks of a download from several
// holders at once (peerctl/resumable_download.h). Each holder's worker
// takes a run of missing chunks (one Range request), reports each chunk of
// it verified or not, and takes the next run; a holder that fails is
// dropped, and the chunks it still had go back to the others. A worker
// waits for work (WaitForWork), connects, then takes a run (TryTake), so
// that a holder that does not answer holds no chunks meanwhile. The download
// ends when every chunk is verified, when every holder is dropped, or on
// Stop().
//
// Run size: a holder gets the free missing chunks from the first one on,
// contiguous, at most its fair share (the chunks not yet verified over the
// active holders, rounded up), and with more than one active holder at most
// `max_run_chunks`, so that a holder that stalls or crawls holds little.
// A lone holder takes everything in one run (one request, as fast as a
// download from one holder was before). starving() tells the download's
// watcher when holders wait for the others' runs: the moment to stop a
// holder that is much slower than the rest (peerctl/resumable_download.cc).
//
// Thread-safety: every method may be called from any thread. std::mutex
// and std::condition_variable rather than absl's: workers wait on
// conditions, and Debian's abseil is built without TSan (see
// core/base/mutex_lock.h).
#ifndef PCFS_PEERCTL_CHUNK_SCHEDULER_H_
#define PCFS_PEERCTL_CHUNK_SCHEDULER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace pcfs {

class ChunkScheduler {
 public:
  // Chunks [first, end).
  struct Run {
    uint64_t first = 0;
    uint64_t end = 0;
    friend bool operator==(const Run&, const Run&) = default;
  };

  // A download of `size` bytes (chunks of kMerkleChunkBytes) by `holders`
  // holders, numbered 0 to holders - 1; chunk i is in place already when
  // verified[i] (verified.size() is the chunk count).
  // REQUIRES: max_run_chunks >= 1.
  ChunkScheduler(uint64_t size, std::vector<bool> verified, size_t holders,
                 uint64_t max_run_chunks);
  ChunkScheduler(const ChunkScheduler&) = delete;
  ChunkScheduler& operator=(const ChunkScheduler&) = delete;

  // Waits while every missing chunk is out with other holders (one of them
  // may be dropped and give its chunks back). True once a chunk is free for
  // `holder`; false when the download has ended (every chunk verified, every
  // holder dropped, or Stop()) or `holder` is dropped.
  bool WaitForWork(size_t holder);
  // The next run for `holder`, now marked as its; nullopt if no chunk is
  // free (another holder took the last), the download has ended, or
  // `holder` is dropped.
  std::optional<Run> TryTake(size_t holder);

  // Chunk `index`, out with `holder`, arrived and matched its leaf.
  void MarkVerified(size_t holder, uint64_t index);
  // Chunk `index`, out with `holder`, did not arrive whole and verified:
  // back to the free chunks.
  void Release(size_t holder, uint64_t index);
  // Drops `holder` for `why` (not OK): it takes no more runs, and whatever
  // it still has goes back to the free chunks. Dropping a dropped holder
  // keeps the first reason.
  void Drop(size_t holder, absl::Status why);
  // Ends the download (a cancel, a deadline): WaitForWork returns false,
  // and stop_flag() becomes true.
  void Stop();

  // Waits at most `timeout` for the download to end (every chunk verified,
  // every holder dropped, or Stop()) or for any change (a chunk verified, a
  // holder dropped) since the last call. True if it has ended.
  bool WaitForEndOrChange(absl::Duration timeout);

  // True while a holder waits for work and no chunk is free: the others
  // hold every missing chunk (the end of a download, where a slow holder
  // is what everyone waits for).
  bool starving() const;
  bool complete() const;  // every chunk verified
  size_t active_holders() const;
  uint64_t verified_bytes() const;
  // Why each holder was dropped; OK for a holder still active.
  std::vector<absl::Status> drop_reasons() const;
  // True once Stop() ran: the workers' cancel flag (download_internal's
  // Bounds), so that a worker blocked on a holder returns soon.
  const std::atomic<bool>* stop_flag() const { return &stopped_; }

 private:
  static constexpr int64_t kFree = -1;
  static constexpr int64_t kDone = -2;

  bool EndedLocked() const;  // REQUIRES: mu_ held
  uint64_t ChunkBytes(uint64_t index) const;

  const uint64_t size_;
  const uint64_t max_run_chunks_;
  mutable std::mutex mu_;
  std::condition_variable changed_;  // any state change; guarded by mu_
  // Per chunk: kFree, kDone, or the holder it is out with. Guarded by mu_,
  // as are the members below.
  std::vector<int64_t> owner_;
  std::vector<absl::Status> dropped_;  // per holder; OK while active
  uint64_t free_ = 0;                  // chunks kFree
  uint64_t done_ = 0;                  // chunks kDone
  uint64_t done_bytes_ = 0;
  uint64_t first_free_hint_ = 0;  // no free chunk below it
  uint64_t changes_ = 0;          // bumped by every change
  uint64_t changes_seen_ = 0;     // by WaitForEndOrChange
  size_t active_ = 0;
  size_t waiting_ = 0;                // holders in WaitForWork
  std::atomic<bool> stopped_{false};  // written under mu_, read anywhere
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_CHUNK_SCHEDULER_H_
