#include "bench/peerload/users.h"

#include <openssl/rand.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/auth/credentials.h"
#include "core/auth/scram.h"
#include "core/base/file_util.h"

namespace pcfs::peerload {

std::string LoadPasswordFor(absl::string_view user) {
  return absl::StrCat("pw-", user);
}

absl::StatusOr<std::vector<LoadUser>> ParseLoadUsers(absl::string_view text) {
  // The daemon's parser checks every line; this loop only keeps the order.
  absl::StatusOr<CredentialTable> table = CredentialTable::Parse(text);
  if (!table.ok()) return table.status();
  std::vector<LoadUser> users;
  users.reserve(table->size());
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::ConsumeSuffix(&line, "\r");
    if (absl::StripAsciiWhitespace(line).empty() ||
        absl::StartsWith(line, "#")) {
      continue;
    }
    const size_t space = line.find(' ');  // Parse checked that there is one
    LoadUser user;
    user.name = std::string(line.substr(0, space));
    const absl::string_view secret = line.substr(space + 1);
    user.password = absl::StartsWith(secret, kScramVerifierPrefix)
                        ? LoadPasswordFor(user.name)
                        : std::string(secret);
    users.push_back(std::move(user));
  }
  return users;
}

absl::StatusOr<std::vector<LoadUser>> ReadLoadUsers(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<LoadUser>> users = ParseLoadUsers(*text);
  if (!users.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", users.status().message()));
  }
  return users;
}

absl::Status WriteLoadCredentials(int count, uint32_t iterations,
                                  std::FILE* out) {
  if (count < 1) {
    return absl::InvalidArgumentError("--make_credentials needs N >= 1");
  }
  std::vector<uint8_t> salt(kScramSaltBytes);
  for (int i = 0; i < count; ++i) {
    if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
      return absl::InternalError("RAND_bytes failed for a salt");
    }
    const std::string user = absl::StrCat("load", i);
    absl::StatusOr<ScramVerifier> verifier =
        MakeVerifier(LoadPasswordFor(user), salt, iterations);
    if (!verifier.ok()) return verifier.status();
    const std::string line =
        absl::StrCat(user, " ", FormatVerifier(*verifier), "\n");
    if (std::fwrite(line.data(), 1, line.size(), out) != line.size()) {
      return absl::DataLossError("cannot write the credentials");
    }
  }
  if (std::fflush(out) != 0) {
    return absl::DataLossError("cannot write the credentials");
  }
  return absl::OkStatus();
}

}  // namespace pcfs::peerload
