// Validation of the names users type: file names, user names and passwords.
// The rules are those of docs/PROTOCOL.md ("Names"); both the daemon and
// peerctl apply them, so malformed input is refused with the same message on
// either side and never truncated. Pure functions; thread-safe.
#ifndef PCFS_CORE_BASE_NAMES_H_
#define PCFS_CORE_BASE_NAMES_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pcfs {

inline constexpr size_t kMaxFileNameBytes = 255;
inline constexpr size_t kMaxUserNameChars = 64;
inline constexpr size_t kMaxPasswordBytes = 256;
// A search pattern obeys the file-name rules except that it may be empty
// (which matches every name).
inline constexpr size_t kMaxSearchPatternBytes = kMaxFileNameBytes;

// OK if `name` is 1 to 255 bytes of valid UTF-8 without '/', NUL or control
// characters (C0, DEL, C1), and is neither "." nor "..". Otherwise
// InvalidArgument with a message that says which rule failed.
absl::Status ValidateFileName(absl::string_view name);

// OK if `pattern` is a valid file name, "." or "..", or empty; used for
// `sch` (a substring of names: "." finds every name with a dot).
absl::Status ValidateSearchPattern(absl::string_view pattern);

// OK if `user` is 1 to 64 characters of [A-Za-z0-9._-].
absl::Status ValidateUserName(absl::string_view user);

// OK if `password` is 1 to 256 bytes of printable text: valid UTF-8 with no
// control characters (spaces are allowed).
absl::Status ValidatePassword(absl::string_view password);

// True if `text` is well-formed UTF-8 (no overlongs, surrogates or code
// points above U+10FFFF).
bool IsValidUtf8(absl::string_view text);

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_NAMES_H_
