#include "peerctl/file_flusher.h"

#include <unistd.h>

#include <cerrno>

#include "core/base/thread_name.h"
#include "core/base/unique_fd.h"  // ErrnoStatus
#include "peerctl/exit_codes.h"

namespace pcfs {

FileFlusher::FileFlusher(int fd, uint64_t step_bytes)
    : fd_(fd), step_bytes_(step_bytes), thread_([this] {
        NameThisThread("flusher");
        Run();
      }) {}

FileFlusher::~FileFlusher() { (void)Stop(); }

void FileFlusher::Wrote(uint64_t bytes) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    written_ += bytes;
    wake = written_ - flushed_ >= step_bytes_;
  }
  if (wake) wake_.notify_one();
}

absl::Status FileFlusher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

absl::Status FileFlusher::Sync() {
  absl::Status stopped = Stop();
  if (!stopped.ok()) return stopped;
  if (::fsync(fd_) != 0) {
    return MarkFolderFailure(ErrnoStatus("fsync", errno));
  }
  return absl::OkStatus();
}

uint64_t FileFlusher::flushes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return flushes_;
}

uint64_t FileFlusher::written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

void FileFlusher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] {
      return stopping_ || written_ - flushed_ >= step_bytes_;
    });
    if (stopping_) return;
    flushed_ = written_;
    lock.unlock();
    const int result = ::fdatasync(fd_);
    const int error = result == 0 ? 0 : errno;
    lock.lock();
    ++flushes_;
    if (error != 0) {
      // No use flushing again: the caller's download fails with this.
      status_ = MarkFolderFailure(ErrnoStatus("fdatasync", error));
      return;
    }
  }
}

}  // namespace pcfs
