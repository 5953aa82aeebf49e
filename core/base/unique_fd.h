// UniqueFd owns a file descriptor and closes it when destroyed. It is the
// only place in the project that calls close(2) on a descriptor it owns.
// Not thread-safe: one owner at a time, like std::unique_ptr.
#ifndef PCFS_CORE_BASE_UNIQUE_FD_H_
#define PCFS_CORE_BASE_UNIQUE_FD_H_

#include <utility>

#include "absl/status/status.h"

namespace pcfs {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  int Release() { return std::exchange(fd_, -1); }
  // Closes the current descriptor, if any, and takes ownership of `fd`.
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Returns an error status for a failed system call: "<call>: <strerror(err)>",
// with a status code chosen from errno (e.g. ENOENT -> NotFound).
absl::Status ErrnoStatus(absl::string_view call, int err);

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_UNIQUE_FD_H_
