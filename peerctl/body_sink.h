// BodySink: where the downloader (peerctl/downloader.h) puts the bytes of a
// body. It appends them to a file, hashes them with SHA-256 on a thread of
// its own, so that hashing overlaps receiving instead of following it, and
// starts their writeback to disk as it goes (sync_file_range with
// SYNC_FILE_RANGE_WRITE every Options::writeback_step_bytes), so that the
// fsync the caller does before linking the file finds little left to write.
// It never fsyncs, names or links the file: durability stays the caller's.
//
// The bytes travel in the buffers of a fixed pool. Acquire() hands one out,
// waiting while every buffer is in flight; the caller fills it and gives it
// back with Append(), which writes the bytes to the file and queues the
// buffer for the hasher; the hasher returns it to the pool once hashed. A
// Buffer destroyed without Append() goes back to the pool by itself. The
// digest covers exactly the bytes written, in the order written: a buffer is
// reused only after the hasher is done with it.
//
// Thread-safety: one thread (the producer) calls Acquire(), Append() and
// Finish(); the hasher thread is internal. Buffers must not outlive the
// sink. The destructor stops and joins the hasher (bytes queued but not yet
// hashed are dropped: without Finish() there is no digest to get).
#ifndef PCFS_PEERCTL_BODY_SINK_H_
#define PCFS_PEERCTL_BODY_SINK_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "peerctl/file_hash.h"

namespace pcfs {

class BodySink {
 public:
  struct Options {
    size_t buffer_bytes = 1 << 20;
    // In flight at once; while the hasher lags by this many buffers the
    // producer waits in Acquire().
    int buffers = 8;
    // Writeback is started once this many bytes are written since the last
    // start; 0 never starts it (the caller's fsync then writes everything).
    uint64_t writeback_step_bytes = 8 << 20;
  };

  // A buffer of the pool, owned by the producer until Append() (or its
  // destruction) returns it. Move-only.
  class Buffer {
   public:
    Buffer(Buffer&& other) noexcept;
    Buffer& operator=(Buffer&&) = delete;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer();

    char* data() const { return data_; }
    size_t size() const { return size_; }

   private:
    friend class BodySink;
    Buffer(BodySink* owner, char* data, size_t size)
        : owner_(owner), data_(data), size_(size) {}

    BodySink* owner_;  // null once given back
    char* data_;
    size_t size_;
  };

  // Writes to `file_fd` (not owned; the caller keeps it open for the sink's
  // life) from its current offset. InvalidArgument for options without a
  // buffer; Internal if OpenSSL cannot set up SHA-256.
  static absl::StatusOr<std::unique_ptr<BodySink>> Create(int file_fd,
                                                          Options options);
  static absl::StatusOr<std::unique_ptr<BodySink>> Create(int file_fd) {
    return Create(file_fd, Options());
  }

  BodySink(const BodySink&) = delete;
  BodySink& operator=(const BodySink&) = delete;
  ~BodySink();

  // A free buffer; waits while all are queued for the hasher.
  Buffer Acquire();

  // Writes the first `length` bytes of `buffer` (REQUIRES: length <=
  // buffer.size()) to the file and queues them for hashing. Returns the
  // errno of a failed write; after an error the sink takes no more bytes.
  absl::Status Append(Buffer buffer, size_t length);
  // The same for bytes the caller holds elsewhere: copied into buffers.
  absl::Status Append(absl::string_view bytes);

  // Waits until every appended byte is hashed and returns the digest.
  // REQUIRES: called once, after the last Append().
  Sha256Digest Finish();

  uint64_t bytes_written() const { return written_; }
  // Buffers in the pool now (neither held by the producer nor queued); for
  // tests.
  int free_buffers() const;

 private:
  struct Pending {
    char* data = nullptr;
    size_t length = 0;
  };

  BodySink(int file_fd, Options options, Sha256Hasher hasher);

  void Release(char* data);
  bool HasFreeBuffer() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasWorkOrStop() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HashLoop();
  void StartWriteback();

  const int file_fd_;
  const Options options_;
  std::vector<std::unique_ptr<char[]>> pool_;
  // Touched only by the hasher thread until Finish() has joined it.
  Sha256Hasher hasher_;
  // Touched only by the producer.
  uint64_t written_ = 0;
  uint64_t writeback_started_ = 0;  // bytes [0, this) have had it started
  absl::Status write_status_;

  mutable absl::Mutex mu_;
  std::vector<char*> free_ ABSL_GUARDED_BY(mu_);
  // A ring of at most options_.buffers entries, oldest at queue_head_.
  std::vector<Pending> queue_ ABSL_GUARDED_BY(mu_);
  size_t queue_head_ ABSL_GUARDED_BY(mu_) = 0;
  size_t queue_size_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_BODY_SINK_H_
