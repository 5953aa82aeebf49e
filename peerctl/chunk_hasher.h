// ChunkHashPool: hashes the Merkle leaves (core/proto/merkle.h) of a file's
// chunks on a bounded pool of threads, so that hashing a file, or verifying
// one as it arrives, runs on every core instead of one: SHA-256 runs at
// about 1.6 GB/s a core, slower than a loopback transfer.
//
// Each worker reads its chunk with pread (from the page cache, where a file
// being published or received still is) into a buffer of its own and hashes
// it there. Hashing the page cache in place through a mapping of the chunk
// saves that copy, yet measured slower: bench/leaf_hash_bench.cc read one
// thread's leaves at 1.34-1.36 GB/s through pread and 0.71-0.80 GB/s through
// mappings (the hashing alone 1.50 GB/s), and a 1 GiB TLS download took
// 1.4 s of user CPU instead of 2.2 s, 2.1 s instead of 2.6 s (2026-12-06). The
// chunks may be submitted in any order and from one producer thread at a time;
// each chunk at most once.
//
// With expected leaves (a download that knows them), every chunk is compared
// as soon as it is hashed, and the first mismatch is kept as a DataLoss
// naming the chunk; Verified() tells which chunks matched.
//
// Thread-safety: Submit(), Wait() and the accessors are called by one
// thread (the owner) at a time; error() may be called from any thread. The
// workers are internal; the destructor stops and joins them (chunks still
// queued are dropped).
#ifndef PCFS_PEERCTL_CHUNK_HASHER_H_
#define PCFS_PEERCTL_CHUNK_HASHER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/base/digest.h"

namespace pcfs {

// The most hashing threads a pool runs, whatever the core count says.
inline constexpr size_t kMaxHashThreads = 16;

class ChunkHashPool {
 public:
  struct Options {
    // Worker threads; 0: std::thread::hardware_concurrency(). Always
    // clamped to [1, kMaxHashThreads] and to the chunk count.
    size_t threads = 0;
    // If not empty, the leaves the chunks must have (one per chunk).
    std::vector<Sha256Digest> expected;
    // If given, the workers look at it before each chunk: once it is true,
    // the chunks still queued are dropped and Wait() returns Cancelled
    // (within a chunk's hashing, a millisecond or so). Outlives the pool.
    const std::atomic<bool>* cancel = nullptr;
  };

  // A pool over the chunks of the `size` bytes of `fd` (open for reading,
  // not owned; kept open by the caller for the pool's life), from file
  // offset 0. InvalidArgument if `expected` is given with a count that is
  // not MerkleChunkCount(size).
  static absl::StatusOr<std::unique_ptr<ChunkHashPool>> Create(int fd,
                                                               uint64_t size,
                                                               Options options);

  ChunkHashPool(const ChunkHashPool&) = delete;
  ChunkHashPool& operator=(const ChunkHashPool&) = delete;
  ~ChunkHashPool();

  // Queues chunk `index` for hashing. REQUIRES: its bytes are all in the
  // file, index < chunk_count(), and it was not submitted before.
  void Submit(uint64_t index);

  // Waits until every submitted chunk is hashed; returns the first error
  // (a failed or short read, or a mismatch with the expected leaf).
  absl::Status Wait();

  // The first error so far, without waiting (a producer polls it to stop a
  // transfer whose data already failed).
  absl::Status error() const;

  // After Wait(): the leaf of chunk `index` (zero if it was not submitted),
  // and whether it was hashed and, with expected leaves, matched.
  const Sha256Digest& leaf(uint64_t index) const { return leaves_[index]; }
  const std::vector<Sha256Digest>& leaves() const { return leaves_; }
  bool Verified(uint64_t index) const { return verified_[index] != 0; }

  uint64_t size() const { return size_; }
  uint64_t chunk_count() const { return leaves_.size(); }
  size_t thread_count() const { return threads_.size(); }

 private:
  ChunkHashPool(int fd, uint64_t size, std::vector<Sha256Digest> expected,
                const std::atomic<bool>* cancel);
  void Work();
  // Reads and hashes chunk `index` into leaves_[index]. Runs unlocked: each
  // chunk's slot is written by exactly one worker, and read by the owner
  // only after Wait() saw its completion under mu_.
  absl::Status HashChunk(uint64_t index, std::vector<char>& buffer);
  // Chunk `index`'s leaf through a pread copy into `buffer`.
  absl::Status ReadAndHash(uint64_t index, uint64_t offset, size_t length,
                           std::vector<char>& buffer);

  const int fd_;
  const uint64_t size_;
  const std::vector<Sha256Digest> expected_;
  const std::atomic<bool>* const cancel_;
  std::vector<Sha256Digest> leaves_;
  std::vector<uint8_t> verified_;  // one a chunk; written like leaves_

  // std primitives rather than absl's: the workers wait on conditions, and
  // Debian's abseil is built without TSan (see core/base/mutex_lock.h).
  mutable std::mutex mu_;
  std::condition_variable work_;  // workers wait for chunks (or stopping_)
  std::condition_variable done_;  // Wait() waits for pending_ == 0
  std::deque<uint64_t> queue_;    // guarded by mu_
  uint64_t pending_ = 0;          // submitted, not yet hashed; guarded by mu_
  absl::Status error_;            // the first error; guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  std::vector<std::thread> threads_;
};

// Hashes every chunk of the `size` bytes of `fd` on a pool and returns the
// leaves. DataLoss if the file is shorter than `size`; errno of a pread;
// Cancelled once `*cancel` (if given) is true.
absl::StatusOr<std::vector<Sha256Digest>> HashLeaves(
    int fd, uint64_t size, size_t threads = 0,
    const std::atomic<bool>* cancel = nullptr);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_CHUNK_HASHER_H_
