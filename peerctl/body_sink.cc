#include "peerctl/body_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/base/unique_fd.h"

namespace pcfs {

absl::StatusOr<std::unique_ptr<BodySink>> BodySink::Create(int file_fd,
                                                           Options options) {
  if (options.hash_step_bytes == 0) {
    return absl::InvalidArgumentError("a BodySink needs a hash step");
  }
  const off_t start = ::lseek(file_fd, 0, SEEK_CUR);
  if (start < 0) return ErrnoStatus("lseek", errno);
  absl::StatusOr<Sha256Hasher> hasher = Sha256Hasher::Create();
  if (!hasher.ok()) return hasher.status();
  return std::unique_ptr<BodySink>(
      new BodySink(file_fd, start, options, *std::move(hasher)));
}

BodySink::BodySink(int file_fd, off_t start, Options options,
                   Sha256Hasher hasher)
    : file_fd_(file_fd),
      start_(start),
      options_(options),
      hasher_(std::move(hasher)),
      hash_buffer_(options_.hash_step_bytes) {
  thread_ = std::thread([this] { HashLoop(); });
}

BodySink::~BodySink() {
  if (!thread_.joinable()) return;  // Finish() joined it
  {
    std::lock_guard<std::mutex> lock(mu_);
    abandoned_ = true;  // nobody will ask for the digest
  }
  wake_.notify_one();
  thread_.join();
}

absl::Status BodySink::Append(absl::string_view bytes) {
  if (!write_status_.ok()) return write_status_;
  while (!bytes.empty()) {
    ssize_t n = ::write(file_fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      write_status_ = ErrnoStatus("write", errno);
      return write_status_;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    Advance(static_cast<size_t>(n));
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
    } else if (n == 0) {
      write_status_ = absl::DataLossError(
          absl::StrCat("the pipe ran dry with ", length, " bytes to go"));
      return write_status_;
    } else if (errno == EINVAL) {
      can_splice_ = false;  // this file system: read and write from now on
    } else if (errno != EINTR) {
      write_status_ = ErrnoStatus("splice(pipe -> file)", errno);
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
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    published_ = written_;
    // Woken only when a whole hash step is ready, not for every splice.
    wake = HasWorkOrStop();
  }
  if (wake) wake_.notify_one();
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
  writeback_started_ = written_;
}

bool BodySink::HasWorkOrStop() const {
  return published_ - hashed_ >= options_.hash_step_bytes || stopping_ ||
         abandoned_;
}

void BodySink::HashLoop() {
  for (;;) {
    uint64_t from = 0;
    uint64_t to = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return HasWorkOrStop(); });
      // Equal only once stopping: every byte is hashed.
      if (abandoned_ || published_ == hashed_) return;
      from = hashed_;
      to = std::min<uint64_t>(published_, from + options_.hash_step_bytes);
    }
    // Unlocked: the producer keeps receiving and writing meanwhile. The
    // bytes are read back from the page cache they were just written to.
    while (from < to && read_status_.ok()) {
      ssize_t n =
          ::pread(file_fd_, hash_buffer_.data(), static_cast<size_t>(to - from),
                  start_ + static_cast<off_t>(from));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        read_status_ = n < 0 ? ErrnoStatus("pread", errno)
                             : absl::DataLossError(
                                   "the file is shorter than what was written");
        break;
      }
      hasher_.Update(hash_buffer_.data(), static_cast<size_t>(n));
      from += static_cast<uint64_t>(n);
    }
    std::lock_guard<std::mutex> lock(mu_);
    // After a read error nothing more is hashed: skip to the end, so that
    // Finish() does not wait for bytes that will never be read.
    hashed_ = read_status_.ok() ? from : published_;
    if (!read_status_.ok() && stopping_) return;
  }
}

absl::StatusOr<Sha256Digest> BodySink::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;  // the hasher hashes what is left, then returns
  }
  wake_.notify_one();
  thread_.join();
  if (!read_status_.ok()) return read_status_;
  return hasher_.Finish();
}

}  // namespace pcfs
