// The users peerload logs in as, taken from a daemon credentials file in
// file order, and the generator of such files for large loads.
//
// Passwords: a plain-password line gives its password. A verifier line
// ("SCRAM-SHA-256$...") cannot give one back, so peerload uses the password
// "pw-<user>" for it: the convention of WriteLoadCredentials, which makes
// users "load0", "load1", ... with passwords "pw-load0", "pw-load1", ...
// Why verifiers: a plain password costs the daemon and peerload one PBKDF2
// of 4096 iterations per login, far too slow for 100,000 peers; a verifier
// with 16 iterations costs next to nothing.
//
// Thread-safety: plain functions of their arguments.
#ifndef PCFS_BENCH_PEERLOAD_USERS_H_
#define PCFS_BENCH_PEERLOAD_USERS_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pcfs::peerload {

struct LoadUser {
  std::string name;
  std::string password;
};

// The password peerload uses for a user whose line holds a verifier.
std::string LoadPasswordFor(absl::string_view user);

// Parses credentials-file text (the daemon's format and rules, checked by
// CredentialTable::Parse) into its users, in file order.
// Errors: InvalidArgument "line N: ..." as the daemon would report it.
absl::StatusOr<std::vector<LoadUser>> ParseLoadUsers(absl::string_view text);

// Reads and parses the file at `path`. Errors: those of ParseLoadUsers
// prefixed with the path, and the failed open/read.
absl::StatusOr<std::vector<LoadUser>> ReadLoadUsers(const std::string& path);

// Writes `count` lines "load<i> SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:
// <ServerKey>" for the passwords "pw-load<i>", each with its own random salt.
// Errors: InvalidArgument (count < 1, iterations out of range), Internal
// (libcrypto), DataLoss (the write failed).
absl::Status WriteLoadCredentials(int count, uint32_t iterations,
                                  std::FILE* out);

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_USERS_H_
