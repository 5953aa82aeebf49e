#include "peerctl/body_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/base/unique_fd.h"
#include "core/proto/merkle.h"
#include "peerctl/exit_codes.h"

namespace pcfs {

absl::StatusOr<std::unique_ptr<BodySink>> BodySink::Create(int file_fd,
                                                           ChunkHashPool* pool,
                                                           Options options) {
  const off_t start = ::lseek(file_fd, 0, SEEK_CUR);
  if (start < 0) return ErrnoStatus("lseek", errno);
  const uint64_t file_size = pool->size();
  const auto offset = static_cast<uint64_t>(start);
  if (offset > file_size ||
      (offset % kMerkleChunkBytes != 0 && offset != file_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a body sink must start at a chunk boundary, not at byte ", offset));
  }
  return std::unique_ptr<BodySink>(
      new BodySink(file_fd, start, pool, file_size, options));
}

BodySink::BodySink(int file_fd, off_t start, ChunkHashPool* pool,
                   uint64_t file_size, Options options)
    : file_fd_(file_fd),
      start_(start),
      pool_(pool),
      file_size_(file_size),
      options_(options),
      next_chunk_(MerkleChunkCount(static_cast<uint64_t>(start))) {}

absl::Status BodySink::Append(absl::string_view bytes) {
  if (!write_status_.ok()) return write_status_;
  while (!bytes.empty()) {
    ssize_t n = ::write(file_fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      write_status_ = MarkFolderFailure(ErrnoStatus("write", errno));
      return write_status_;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    Advance(static_cast<size_t>(n));
    if (!write_status_.ok()) return write_status_;
  }
  return absl::OkStatus();
}

absl::Status BodySink::AppendFromPipe(int pipe_fd, size_t length) {
  if (!write_status_.ok()) return write_status_;
  while (length > 0 && can_splice_) {
    ssize_t n =
        ::splice(pipe_fd, nullptr, file_fd_, nullptr, length, SPLICE_F_MOVE);
    if (n > 0) {
      length -= static_cast<size_t>(n);
      Advance(static_cast<size_t>(n));
      if (!write_status_.ok()) return write_status_;
    } else if (n == 0) {
      write_status_ = absl::DataLossError(
          absl::StrCat("the pipe ran dry with ", length, " bytes to go"));
      return write_status_;
    } else if (errno == EINVAL) {
      can_splice_ = false;  // this file system: read and write from now on
    } else if (errno != EINTR) {
      write_status_ =
          MarkFolderFailure(ErrnoStatus("splice(pipe -> file)", errno));
      return write_status_;
    }
  }
  return CopyFromPipe(pipe_fd, length);
}

absl::Status BodySink::CopyFromPipe(int pipe_fd, size_t length) {
  char buffer[64 << 10];
  while (length > 0) {
    ssize_t n = ::read(pipe_fd, buffer, std::min(length, sizeof(buffer)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      write_status_ = ErrnoStatus("read(pipe)", errno);
      return write_status_;
    }
    if (n == 0) {
      write_status_ = absl::DataLossError(
          absl::StrCat("the pipe ran dry with ", length, " bytes to go"));
      return write_status_;
    }
    absl::Status status =
        Append(absl::string_view(buffer, static_cast<size_t>(n)));
    if (!status.ok()) return status;
    length -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

void BodySink::Advance(size_t length) {
  written_ += length;
  const uint64_t end = static_cast<uint64_t>(start_) + written_;
  const uint64_t chunks = MerkleChunkCount(file_size_);
  bool handed = false;
  while (next_chunk_ < chunks &&
         next_chunk_ * kMerkleChunkBytes +
                 MerkleChunkLength(file_size_, next_chunk_) <=
             end) {
    pool_->Submit(next_chunk_++);
    handed = true;
  }
  if (handed && write_status_.ok()) {
    // A chunk that failed its check ends the body: the rest is not wanted
    // from this holder.
    absl::Status checked = pool_->error();
    if (!checked.ok()) write_status_ = std::move(checked);
  }
  if (options_.writeback_step_bytes > 0 &&
      written_ - writeback_started_ >= options_.writeback_step_bytes) {
    StartWriteback();
  }
}

// Asks the kernel to start writing the bytes written since the last call,
// without waiting for them. Left alone, a page cache with room for the whole
// file holds it dirty until the fsync before the link, which then writes
// all of it while the download waits; started here, that write overlaps
// receiving. A hint only: a failure (a file system without support, say)
// is ignored, because the fsync that follows writes whatever is left and
// reports any I/O error.
void BodySink::StartWriteback() {
  (void)::sync_file_range(
      file_fd_, start_ + static_cast<off_t>(writeback_started_),
      static_cast<off_t>(written_ - writeback_started_), SYNC_FILE_RANGE_WRITE);
  if (options_.flusher != nullptr) {
    options_.flusher->Wrote(written_ - writeback_started_);
  }
  writeback_started_ = written_;
}

absl::Status BodySink::Finish() {
  absl::Status hashed = pool_->Wait();
  if (!write_status_.ok()) return write_status_;
  return hashed;
}

}  // namespace pcfs
