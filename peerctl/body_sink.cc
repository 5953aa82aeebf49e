#include "peerctl/body_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/unique_fd.h"

namespace pcfs {

BodySink::Buffer::Buffer(Buffer&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      data_(other.data_),
      size_(other.size_) {}

BodySink::Buffer::~Buffer() {
  if (owner_ != nullptr) owner_->Release(data_);
}

absl::StatusOr<std::unique_ptr<BodySink>> BodySink::Create(int file_fd,
                                                           Options options) {
  if (options.buffers < 1 || options.buffer_bytes == 0) {
    return absl::InvalidArgumentError("a BodySink needs at least one buffer");
  }
  absl::StatusOr<Sha256Hasher> hasher = Sha256Hasher::Create();
  if (!hasher.ok()) return hasher.status();
  return std::unique_ptr<BodySink>(
      new BodySink(file_fd, options, *std::move(hasher)));
}

BodySink::BodySink(int file_fd, Options options, Sha256Hasher hasher)
    : file_fd_(file_fd), options_(options), hasher_(std::move(hasher)) {
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < options_.buffers; ++i) {
    // Not value-initialized: every byte is received before it is read.
    pool_.push_back(std::make_unique_for_overwrite<char[]>(
        options_.buffer_bytes));
    free_.push_back(pool_.back().get());
  }
  queue_.resize(static_cast<size_t>(options_.buffers));
  thread_ = std::thread([this] { HashLoop(); });
}

BodySink::~BodySink() {
  if (!thread_.joinable()) return;  // Finish() joined it
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    queue_size_ = 0;  // abandoned: nobody will ask for the digest
  }
  thread_.join();
}

BodySink::Buffer BodySink::Acquire() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &BodySink::HasFreeBuffer));
  char* data = free_.back();
  free_.pop_back();
  return Buffer(this, data, options_.buffer_bytes);
}

void BodySink::Release(char* data) {
  absl::MutexLock lock(&mu_);
  free_.push_back(data);
}

bool BodySink::HasFreeBuffer() const { return !free_.empty(); }

bool BodySink::HasWorkOrStop() const { return queue_size_ > 0 || stopping_; }

int BodySink::free_buffers() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(free_.size());
}

absl::Status BodySink::Append(Buffer buffer, size_t length) {
  if (!write_status_.ok()) return write_status_;
  length = std::min(length, buffer.size());
  const char* data = buffer.data();
  for (size_t done = 0; done < length;) {
    ssize_t n = ::write(file_fd_, data + done, length - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      write_status_ = ErrnoStatus("write", errno);
      return write_status_;  // `buffer` goes back to the pool unhashed
    }
    done += static_cast<size_t>(n);
  }
  written_ += length;
  {
    absl::MutexLock lock(&mu_);
    queue_[(queue_head_ + queue_size_) % queue_.size()] =
        Pending{buffer.data(), length};
    ++queue_size_;
  }
  buffer.owner_ = nullptr;  // now the hasher's, which gives it back
  if (options_.writeback_step_bytes > 0 &&
      written_ - writeback_started_ >= options_.writeback_step_bytes) {
    StartWriteback();
  }
  return absl::OkStatus();
}

absl::Status BodySink::Append(absl::string_view bytes) {
  while (!bytes.empty()) {
    Buffer buffer = Acquire();
    const size_t chunk = std::min(bytes.size(), buffer.size());
    std::memcpy(buffer.data(), bytes.data(), chunk);
    absl::Status status = Append(std::move(buffer), chunk);
    if (!status.ok()) return status;
    bytes.remove_prefix(chunk);
  }
  return absl::OkStatus();
}

// Asks the kernel to start writing the bytes written since the last call,
// without waiting for them. Left alone, a page cache with room for the whole
// file holds it dirty until the fsync before the link, which then writes
// all of it while the download waits; started here, that write overlaps
// receiving. A hint only: a failure (a file system without support, say)
// is ignored, because the fsync that follows writes whatever is left and
// reports any I/O error.
void BodySink::StartWriteback() {
  (void)::sync_file_range(file_fd_, static_cast<off_t>(writeback_started_),
                          static_cast<off_t>(written_ - writeback_started_),
                          SYNC_FILE_RANGE_WRITE);
  writeback_started_ = written_;
}

void BodySink::HashLoop() {
  for (;;) {
    Pending next;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &BodySink::HasWorkOrStop));
      if (queue_size_ == 0) return;  // stopping, and nothing left
      next = queue_[queue_head_];
    }
    // Unlocked: the producer keeps receiving and writing meanwhile.
    hasher_.Update(next.data, next.length);
    absl::MutexLock lock(&mu_);
    if (queue_size_ > 0) {  // else the destructor abandoned the queue
      queue_head_ = (queue_head_ + 1) % queue_.size();
      --queue_size_;
    }
    free_.push_back(next.data);
  }
}

Sha256Digest BodySink::Finish() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;  // the hasher drains the queue, then returns
  }
  thread_.join();
  return hasher_.Finish();
}

}  // namespace pcfs
