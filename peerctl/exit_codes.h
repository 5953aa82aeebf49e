// peerctl's exit codes, for scripts. Documented in docs/OPERATIONS.md and
// the peerctl(1) man page.
#ifndef PCFS_PEERCTL_EXIT_CODES_H_
#define PCFS_PEERCTL_EXIT_CODES_H_

#include "absl/status/status.h"

namespace pcfs {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // anything not listed below
inline constexpr int kExitUsage = 2;         // bad command line
inline constexpr int kExitLoginRefused = 3;  // wrong password, user active
inline constexpr int kExitNotFound = 4;      // no such file / publication
inline constexpr int kExitUnreachable = 5;   // no answer from the daemon

// The exit code a failed command's status maps to.
inline int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kUnavailable:
      return kExitUnreachable;
    case absl::StatusCode::kUnauthenticated:
      return kExitLoginRefused;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

}  // namespace pcfs

#endif  // PCFS_PEERCTL_EXIT_CODES_H_
