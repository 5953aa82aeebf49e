// Small file helpers shared by the binaries (below the reactor line: they
// do I/O). Thread-safe.
#ifndef PCFS_CORE_BASE_FILE_UTIL_H_
#define PCFS_CORE_BASE_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"

namespace pcfs {

// The whole contents of the file at `path`. NotFound if it does not exist;
// otherwise the errno of the failed call, naming it and the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_FILE_UTIL_H_
