// peerctl's exit codes, for scripts. Documented in docs/CLI.md and the
// peerctl(1) man page; each has a name, which --json error objects carry.
#ifndef PCFS_PEERCTL_EXIT_CODES_H_
#define PCFS_PEERCTL_EXIT_CODES_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace pcfs {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // anything not listed below
inline constexpr int kExitUsage = 2;         // bad command line or setting
inline constexpr int kExitLoginRefused = 3;  // wrong password, user active
inline constexpr int kExitNotFound = 4;      // no such file / publication
inline constexpr int kExitUnreachable = 5;   // no answer from the daemon
// A download's holder failed: it refused the connection, was unreachable
// (no route), answered 503 (busy) or went silent.
inline constexpr int kExitHolderUnreachable = 6;
// A download's holder presented another TLS key than the one the daemon
// registered for it (a man in the middle, or a changed key): refused.
inline constexpr int kExitHolderKeyMismatch = 7;

// A status marked with the payload `type` (SetPayload does nothing to an
// OK status), and whether a status has that mark: the marks below, which
// tell apart what a status code alone does not.
inline absl::Status WithMark(absl::Status status, absl::string_view type) {
  status.SetPayload(type, absl::Cord("1"));
  return status;
}
inline bool HasMark(const absl::Status& status, absl::string_view type) {
  return status.GetPayload(type).has_value();
}

// A failure of a download's holder rather than of the daemon (peerctl/
// peer.cc marks Get failures).
inline constexpr absl::string_view kHolderFailurePayload =
    "type.peerconnectfs.org/holder-failure";
inline absl::Status MarkHolderFailure(absl::Status status) {
  return WithMark(std::move(status), kHolderFailurePayload);
}
inline bool IsHolderFailure(const absl::Status& status) {
  return HasMark(status, kHolderFailurePayload);
}

// A download refused for the holder's TLS key (peerctl/downloader.cc).
inline constexpr absl::string_view kKeyMismatchPayload =
    "type.peerconnectfs.org/holder-key-mismatch";
inline absl::Status MarkKeyMismatch(absl::Status status) {
  return WithMark(std::move(status), kKeyMismatchPayload);
}
inline bool IsKeyMismatch(const absl::Status& status) {
  return HasMark(status, kKeyMismatchPayload);
}

// A holder's "busy, try again in a moment" (HTTP 503: every download slot
// taken, or the file being checked against its publication; peerctl/
// http.cc), which a `get` waits out a few times before it gives up
// (peerctl/peer.cc).
inline constexpr absl::string_view kHolderBusyPayload =
    "type.peerconnectfs.org/holder-busy";
inline absl::Status MarkHolderBusy(absl::Status status) {
  return WithMark(std::move(status), kHolderBusyPayload);
}
inline bool IsHolderBusy(const absl::Status& status) {
  return HasMark(status, kHolderBusyPayload);
}

// A download failed in the download folder, not at a holder: the file
// could not be made, written, flushed, read back or named there (no space,
// no permission, a read-only or failing disk).
inline constexpr absl::string_view kFolderFailurePayload =
    "type.peerconnectfs.org/download-folder-failure";
inline absl::Status MarkFolderFailure(absl::Status status) {
  return WithMark(std::move(status), kFolderFailurePayload);
}
inline bool IsFolderFailure(const absl::Status& status) {
  return HasMark(status, kFolderFailurePayload);
}

// The exit code a failed command's status maps to.
inline int ExitCodeFor(const absl::Status& status) {
  // Whatever its code: not the daemon's, a holder's or the command line's.
  if (!status.ok() && IsFolderFailure(status)) return kExitFailure;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kPermissionDenied:
      return IsKeyMismatch(status) ? kExitHolderKeyMismatch : kExitFailure;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return IsHolderFailure(status) ? kExitHolderUnreachable
                                     : kExitUnreachable;
    // A holder's refusal (HTTP 401 to a ticket, 400) says nothing of the
    // user's own login or command line.
    case absl::StatusCode::kUnauthenticated:
      return IsHolderFailure(status) ? kExitFailure : kExitLoginRefused;
    case absl::StatusCode::kInvalidArgument:
      return IsHolderFailure(status) ? kExitFailure : kExitUsage;
    default:
      return kExitFailure;
  }
}

// The name of an exit code, as --json error objects and docs/CLI.md spell
// it ("daemon-unreachable"); "failure" for an unknown code.
inline absl::string_view ExitCodeName(int code) {
  switch (code) {
    case kExitOk:
      return "ok";
    case kExitUsage:
      return "usage";
    case kExitLoginRefused:
      return "login-refused";
    case kExitNotFound:
      return "not-found";
    case kExitUnreachable:
      return "daemon-unreachable";
    case kExitHolderUnreachable:
      return "holder-unreachable";
    case kExitHolderKeyMismatch:
      return "holder-key-mismatch";
    default:
      return "failure";
  }
}

}  // namespace pcfs

#endif  // PCFS_PEERCTL_EXIT_CODES_H_
