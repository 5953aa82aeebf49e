// BodySink: where the downloader (peerctl/downloader.h) puts the bytes of a
// body. It appends them to a file, either from memory (Append) or straight
// from a pipe that the caller spliced them into from the socket
// (AppendFromPipe: the bytes then never pass through user space on their
// way in, one copy fewer than recv() + write()), hashes the file's bytes
// with SHA-256 on a thread of its own as they land, so that hashing overlaps
// receiving instead of following it, and starts their writeback to disk as
// it goes (sync_file_range with SYNC_FILE_RANGE_WRITE every
// Options::writeback_step_bytes), so that the fsync the caller does before
// linking the file finds little left to write. It never fsyncs, names or
// links the file: durability stays the caller's.
//
// The hasher reads back what was written (pread from the page cache, where
// the bytes still are), in order, so the digest covers exactly the bytes
// in the file [start offset, start + bytes_written()).
//
// Thread-safety: one thread (the producer) calls Append(), AppendFromPipe()
// and Finish(); the hasher thread is internal. The destructor stops and
// joins it.
#ifndef PCFS_PEERCTL_BODY_SINK_H_
#define PCFS_PEERCTL_BODY_SINK_H_

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "peerctl/file_hash.h"

namespace pcfs {

class BodySink {
 public:
  struct Options {
    // The hasher reads (and hashes) this much at a time; small enough to
    // stay in the cache between pread and hash.
    size_t hash_step_bytes = 256 << 10;
    // Writeback is started once this many bytes are written since the last
    // start; 0 never starts it (the caller's fsync then writes everything).
    uint64_t writeback_step_bytes = 8 << 20;
  };

  // Writes to `file_fd` (not owned; the caller keeps it open for the sink's
  // life; it must be open for reading too) from its current offset.
  // InvalidArgument for a zero hash step; the errno of lseek; Internal if
  // OpenSSL cannot set up SHA-256.
  static absl::StatusOr<std::unique_ptr<BodySink>> Create(int file_fd,
                                                          Options options);
  static absl::StatusOr<std::unique_ptr<BodySink>> Create(int file_fd) {
    return Create(file_fd, Options());
  }

  BodySink(const BodySink&) = delete;
  BodySink& operator=(const BodySink&) = delete;
  ~BodySink();

  // Writes `bytes` to the file. Returns the errno of a failed write; after
  // an error the sink takes no more bytes.
  absl::Status Append(absl::string_view bytes);

  // Moves exactly `length` bytes, which the caller has put into the pipe
  // whose read end is `pipe_fd`, into the file, with splice(2). On a file
  // system that cannot splice into a file it reads them and writes them
  // instead. Errors as Append(); DataLoss if the pipe holds fewer bytes.
  absl::Status AppendFromPipe(int pipe_fd, size_t length);

  // Waits until every appended byte is hashed and returns the digest, or
  // the errno of a failed read-back. REQUIRES: called once, after the last
  // Append.
  absl::StatusOr<Sha256Digest> Finish();

  uint64_t bytes_written() const { return written_; }

 private:
  BodySink(int file_fd, off_t start, Options options, Sha256Hasher hasher);

  absl::Status CopyFromPipe(int pipe_fd, size_t length);
  // Counts `length` more bytes as written: tells the hasher, and starts
  // writeback when a step is full.
  void Advance(size_t length);
  void StartWriteback();
  void HashLoop();
  // REQUIRES: mu_ held.
  bool HasWorkOrStop() const;

  const int file_fd_;
  const off_t start_;  // the file offset of the first byte
  const Options options_;
  // Touched only by the hasher thread until Finish() has joined it.
  Sha256Hasher hasher_;
  std::vector<char> hash_buffer_;
  absl::Status read_status_;
  // Touched only by the producer.
  uint64_t written_ = 0;
  uint64_t writeback_started_ = 0;  // bytes [0, this) have had it started
  absl::Status write_status_;
  bool can_splice_ = true;

  // std primitives rather than absl's: the hasher waits on a condition, and
  // Debian's abseil is built without TSan, which then cannot see that an
  // absl::Mutex orders what it guards (see core/base/mutex_lock.h).
  std::mutex mu_;
  std::condition_variable wake_;  // the hasher waits on it for work
  uint64_t published_ = 0;        // written, for the hasher; guarded by mu_
  uint64_t hashed_ = 0;           // guarded by mu_
  bool stopping_ = false;         // Finish(): hash the rest; guarded by mu_
  bool abandoned_ = false;        // destructor: stop now; guarded by mu_
  std::thread thread_;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_BODY_SINK_H_
