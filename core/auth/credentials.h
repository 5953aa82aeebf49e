// CredentialTable: the users who may join, parsed from credentials.txt.
//
// Format: one "USER SECRET" per line, split at the first space. SECRET is a
// plain password (the classic format) or a SCRAM-SHA-256 verifier in
// PostgreSQL's form "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
// (salt and keys in base64). Blank lines and lines whose first character is
// '#' are ignored; a trailing CR (CRLF files) is stripped; the last line may
// lack its newline. A duplicate user, a malformed user name or password, or a
// malformed verifier is an error naming the line: nothing is half-loaded.
//
// Pure (the daemon reads the file and passes its text). A CredentialTable is
// immutable after Parse(): const methods may be called from any thread.
#ifndef PCFS_CORE_AUTH_CREDENTIALS_H_
#define PCFS_CORE_AUTH_CREDENTIALS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/auth/scram.h"

namespace pcfs {

struct Credential {
  bool is_verifier = false;
  std::string password;    // when !is_verifier
  ScramVerifier verifier;  // when is_verifier
};

class CredentialTable {
 public:
  // Parses the whole file text. Errors: InvalidArgument "line N: ...".
  static absl::StatusOr<CredentialTable> Parse(absl::string_view text);

  // nullptr if `user` is not in the table.
  const Credential* Find(absl::string_view user) const;

  // True if `password` is the user's password: a constant-time comparison
  // with a plain secret, or a SCRAM derivation checked against a verifier.
  // False for an unknown user (after doing comparable work, so that timing
  // does not tell which users exist).
  bool CheckPassword(absl::string_view user, absl::string_view password) const;

  size_t size() const { return users_.size(); }

 private:
  absl::flat_hash_map<std::string, Credential> users_;
};

// The verifier the server side of SCRAM uses for `user`: the stored one when
// `credential` holds a verifier, else one derived on the fly from the plain
// password with kScramDefaultIterations and the salt
//   HMAC-SHA-256(salt_secret, "PeerConnect salt" || user), first 16 bytes.
// Why this salt: it is unpredictable to anyone without the secret, so nobody
// can precompute a dictionary for a user before asking for the salt; and it is
// the same for every login of a user while the secret lives, as a stored
// verifier's salt is, so repeated logins do not show which users have a plain
// password (a fresh random salt per login would). Across a daemon restart the
// secret, and so these salts, change; a stored verifier's do not.
// Cost: one PBKDF2 for a plain password, none for a verifier. A server that
// does not want timing to tell plain-password users from the others derives
// their verifiers once per table load (the table and the secret live equally
// long) rather than per login.
absl::StatusOr<ScramVerifier> ServerVerifierFor(absl::string_view user,
                                                const Credential& credential,
                                                const SaltSecret& salt_secret);

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_CREDENTIALS_H_
