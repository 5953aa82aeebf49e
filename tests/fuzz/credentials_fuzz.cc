// libFuzzer target for core/auth/credentials.h: the daemon parses
// credentials.txt at start and on every SIGHUP, and a verifier line is parsed
// by core/auth/scram.h's ParseVerifier. Besides crashes and sanitizer
// reports it checks that every stored verifier a table accepts formats back
// to a text that parses to the same verifier.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/auth/credentials.h"
#include "core/auth/scram.h"

namespace {

bool SameVerifier(const pcfs::ScramVerifier& a, const pcfs::ScramVerifier& b) {
  return a.iterations == b.iterations && a.salt == b.salt &&
         a.stored_key == b.stored_key && a.server_key == b.server_key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  // The whole text as a verifier: the one parser of that form.
  if (auto verifier = pcfs::ParseVerifier(text); verifier.ok()) {
    auto again = pcfs::ParseVerifier(pcfs::FormatVerifier(*verifier));
    if (!again.ok() || !SameVerifier(*again, *verifier)) __builtin_trap();
  }

  // The text as a credentials file. No CheckPassword here: it costs a PBKDF2
  // of up to kScramMaxIterations for a verifier line.
  absl::StatusOr<pcfs::CredentialTable> table =
      pcfs::CredentialTable::Parse(text);
  if (!table.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view user = line.substr(0, line.find(' '));
    const pcfs::Credential* credential = table->Find(user);
    if (credential == nullptr || !credential->is_verifier) continue;
    auto again =
        pcfs::ParseVerifier(pcfs::FormatVerifier(credential->verifier));
    if (!again.ok() || !SameVerifier(*again, credential->verifier)) {
      __builtin_trap();
    }
  }
  return 0;
}
