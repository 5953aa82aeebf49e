#include "core/auth/credentials.h"

#include <openssl/crypto.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/auth/scram.h"
#include "core/base/names.h"

namespace pcfs {
namespace {

struct Entry {
  std::string user;
  Credential credential;
};

// A secret is a verifier if it says so; otherwise it is a plain password
// (so a plain password cannot start with "SCRAM-SHA-256$").
absl::StatusOr<Credential> ParseSecret(absl::string_view secret) {
  Credential credential;
  if (absl::StartsWith(secret, kScramVerifierPrefix)) {
    absl::StatusOr<ScramVerifier> verifier = ParseVerifier(secret);
    if (!verifier.ok()) return verifier.status();
    credential.is_verifier = true;
    credential.verifier = *std::move(verifier);
    return credential;
  }
  absl::Status valid = ValidatePassword(secret);  // never quotes it
  if (!valid.ok()) return valid;
  credential.password = std::string(secret);
  return credential;
}

// Parses one "USER SECRET" line (CR already stripped). Errors carry no line
// number; the caller adds it.
absl::StatusOr<Entry> ParseLine(absl::string_view line) {
  size_t space = line.find(' ');
  if (space == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "expected \"USER SECRET\" (no space after the user name)");
  }
  absl::string_view user = line.substr(0, space);
  absl::Status valid = ValidateUserName(user);
  if (!valid.ok()) return valid;
  absl::StatusOr<Credential> credential = ParseSecret(line.substr(space + 1));
  if (!credential.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secret of user '", user, "': ", credential.status().message()));
  }
  return Entry{std::string(user), *std::move(credential)};
}

bool IsSkipped(absl::string_view line) {
  return absl::StripAsciiWhitespace(line).empty() ||
         absl::StartsWith(line, "#");
}

absl::Status LineError(size_t line_number, absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("line ", line_number, ": ", message));
}

// Compares fixed-size digests in constant time, so that neither the content
// nor the length of the secret shows in the timing.
bool PlainPasswordMatches(absl::string_view secret,
                          absl::string_view password) {
  absl::StatusOr<Sha256Digest> expected = Sha256(secret);
  absl::StatusOr<Sha256Digest> given = Sha256(password);
  if (!expected.ok() || !given.ok()) return false;
  return CRYPTO_memcmp(expected->data(), given->data(), expected->size()) == 0;
}

}  // namespace

absl::StatusOr<CredentialTable> CredentialTable::Parse(absl::string_view text) {
  CredentialTable table;
  absl::flat_hash_map<std::string, size_t> line_of_user;
  size_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    absl::ConsumeSuffix(&line, "\r");
    if (IsSkipped(line)) continue;
    absl::StatusOr<Entry> entry = ParseLine(line);
    if (!entry.ok()) return LineError(line_number, entry.status().message());
    auto [first, inserted] = line_of_user.try_emplace(entry->user, line_number);
    if (!inserted) {
      return LineError(line_number,
                       absl::StrCat("duplicate user '", entry->user,
                                    "' (first on line ", first->second, ")"));
    }
    table.users_.emplace(std::move(entry->user), std::move(entry->credential));
  }
  return table;
}

const Credential* CredentialTable::Find(absl::string_view user) const {
  auto it = users_.find(user);
  return it == users_.end() ? nullptr : &it->second;
}

bool CredentialTable::CheckPassword(absl::string_view user,
                                    absl::string_view password) const {
  const Credential* credential = Find(user);
  if (credential == nullptr) {
    // The same work as a plain password, against a secret nobody has. A
    // stored verifier costs a PBKDF2 more, so timing can still tell those
    // users from unknown ones; logins go through SCRAM instead (scram.h).
    PlainPasswordMatches("\n unknown user: no password matches \n", password);
    return false;
  }
  if (!credential->is_verifier) {
    return PlainPasswordMatches(credential->password, password);
  }
  absl::StatusOr<bool> matches =
      PasswordMatchesVerifier(credential->verifier, password);
  return matches.ok() && *matches;
}

absl::StatusOr<ScramVerifier> ServerVerifierFor(absl::string_view user,
                                                const Credential& credential,
                                                const SaltSecret& salt_secret) {
  if (credential.is_verifier) return credential.verifier;
  absl::StatusOr<std::vector<uint8_t>> salt = DerivedSaltFor(user, salt_secret);
  if (!salt.ok()) return salt.status();
  return MakeVerifier(credential.password, *salt, kScramDefaultIterations);
}

}  // namespace pcfs
