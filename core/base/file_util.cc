#include "core/base/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/base/unique_fd.h"

namespace pcfs {

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", path), errno);
  return ReadUpTo(fd.get(), std::numeric_limits<size_t>::max(), path);
}

absl::StatusOr<std::string> ReadUpTo(int fd, size_t limit,
                                     absl::string_view what) {
  std::string text;
  char buffer[64 * 1024];
  while (text.size() < limit) {
    const ssize_t n =
        ::read(fd, buffer, std::min(sizeof(buffer), limit - text.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(absl::StrCat("read ", what), errno);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(absl::StrCat("write ", what), errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace pcfs
