// Small file helpers shared by the binaries (below the reactor line: they
// do I/O). Thread-safe.
#ifndef PCFS_CORE_BASE_FILE_UTIL_H_
#define PCFS_CORE_BASE_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pcfs {

// The whole contents of the file at `path`. NotFound if it does not exist;
// otherwise the errno of the failed call, naming it and the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Reads the file `fd` from its offset to its end, or `limit` bytes if it
// has more; the read errno naming `what` (the file's path) on failure.
absl::StatusOr<std::string> ReadUpTo(int fd, size_t limit,
                                     absl::string_view what);

// Writes all of `data` to the file `fd`; the write errno naming `what`
// (the file's path) on failure.
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what);

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_FILE_UTIL_H_
