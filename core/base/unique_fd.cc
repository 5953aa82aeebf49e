#include "core/base/unique_fd.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace pcfs {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) {
    // POSIX leaves the descriptor state unspecified after EINTR; on Linux it
    // is always closed, so retrying would risk closing a reused number.
    ::close(fd_);
  }
  fd_ = fd;
}

absl::Status ErrnoStatus(absl::string_view call, int err) {
  return absl::ErrnoToStatus(err, call);
}

}  // namespace pcfs
