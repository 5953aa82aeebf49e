// BodySink: where the downloader (peerctl/downloader.h) puts the bytes of a
// body. It writes them to a file, either from memory (Append) or straight
// from a pipe that the caller spliced them into from the socket
// (AppendFromPipe: the bytes then never pass through user space on their
// way in, one copy fewer than recv() + write()), hands every chunk
// (core/proto/merkle.h) it completes to a ChunkHashPool
// (peerctl/chunk_hasher.h), so that the chunks are hashed, and verified
// where the pool knows their leaves, on every core while the rest keeps
// arriving, and starts their writeback to disk as it goes (sync_file_range
// with SYNC_FILE_RANGE_WRITE every Options::writeback_step_bytes, counting
// those bytes to an Options::flusher if it has one, which flushes them in
// the background: peerctl/file_flusher.h), so that the fsync the caller
// does before linking the file finds little left to write or flush. It
// never fsyncs, names or links the file: durability stays the caller's.
//
// The sink writes from the file's offset at Create(), which must be a chunk
// boundary; a chunk is handed to the pool once its last byte is written
// (the file's last chunk, shorter, at the file's end). Several sinks may
// share one pool, each over its own range of chunks (a resumed download).
//
// Thread-safety: one thread (the producer) calls Append(), AppendFromPipe()
// and Finish(). The pool's threads only read the file.
#ifndef PCFS_PEERCTL_BODY_SINK_H_
#define PCFS_PEERCTL_BODY_SINK_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "peerctl/chunk_hasher.h"
#include "peerctl/file_flusher.h"

namespace pcfs {

class BodySink {
 public:
  struct Options {
    // Writeback is started once this many bytes are written since the last
    // start; 0 never starts it (the caller's fsync then writes everything).
    uint64_t writeback_step_bytes = 8 << 20;
    // If not null (not owned; it must outlive the sink), told of the bytes
    // each time their writeback is started. Several sinks of one file may
    // share it.
    FileFlusher* flusher = nullptr;
  };

  // Writes to `file_fd` (not owned; kept open by the caller for the sink's
  // life) from its current offset; `pool` (not owned; it must outlive the
  // sink) hashes the file's chunks. InvalidArgument if that offset is not a
  // chunk boundary within the pool's file; the errno of lseek.
  static absl::StatusOr<std::unique_ptr<BodySink>> Create(int file_fd,
                                                          ChunkHashPool* pool,
                                                          Options options);
  static absl::StatusOr<std::unique_ptr<BodySink>> Create(int file_fd,
                                                          ChunkHashPool* pool) {
    return Create(file_fd, pool, Options());
  }

  BodySink(const BodySink&) = delete;
  BodySink& operator=(const BodySink&) = delete;

  // Writes `bytes` to the file. Returns the errno of a failed write, or
  // the pool's first error (a chunk that failed its check: no use taking
  // more); after an error the sink takes no more bytes.
  absl::Status Append(absl::string_view bytes);

  // Moves exactly `length` bytes, which the caller has put into the pipe
  // whose read end is `pipe_fd`, into the file, with splice(2). On a file
  // system that cannot splice into a file it reads them and writes them
  // instead. Errors as Append(); DataLoss if the pipe holds fewer bytes.
  absl::Status AppendFromPipe(int pipe_fd, size_t length);

  // Waits until every chunk handed to the pool is hashed, and returns the
  // first write or pool error. A chunk of which only a part was written is
  // not handed over.
  absl::Status Finish();

  uint64_t bytes_written() const { return written_; }
  // The file offset of the sink's first byte.
  uint64_t start() const { return static_cast<uint64_t>(start_); }

 private:
  BodySink(int file_fd, off_t start, ChunkHashPool* pool, uint64_t file_size,
           Options options);

  absl::Status CopyFromPipe(int pipe_fd, size_t length);
  // Counts `length` more bytes as written: hands completed chunks to the
  // pool, and starts writeback when a step is full.
  void Advance(size_t length);
  void StartWriteback();

  const int file_fd_;
  const off_t start_;  // the file offset of the first byte
  ChunkHashPool* const pool_;
  const uint64_t file_size_;
  const Options options_;
  uint64_t next_chunk_;  // the first chunk not yet handed to the pool
  uint64_t written_ = 0;
  uint64_t writeback_started_ = 0;  // bytes [0, this) have had it started
  absl::Status write_status_;
  bool can_splice_ = true;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_BODY_SINK_H_
