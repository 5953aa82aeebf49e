#include "peerctl/download_url.h"

#include <cstdint>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/auth/ticket.h"
#include "core/base/big_endian.h"
#include "peerctl/http.h"
#include "peerctl/tls.h"

namespace pcfs {

std::string ShellQuote(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

std::string FormatCurlCommand(absl::string_view name,
                              const FileLocation& location) {
  const bool tls = !IsPlaintextPin(location.key_pin);
  const std::string url =
      absl::StrCat(tls ? "https://" : "http://", location.address.ToString(),
                   "/f/", http::PercentEncode(name));
  std::string command = "curl --fail";
  if (tls) {
    absl::StrAppend(&command, " -k --pinnedpubkey ",
                    ShellQuote(CurlPinnedPublicKey(location.key_pin)));
  }
  absl::StrAppend(
      &command, " -H ",
      ShellQuote(absl::StrCat("Authorization: Bearer ", location.ticket)),
      " -o ", ShellQuote(name), " ", ShellQuote(url));
  return command;
}

absl::StatusOr<absl::Time> TicketExpiry(absl::string_view ticket) {
  // core/auth/ticket.h: u8 version (kTicketVersion), then u64 expiry in
  // Unix ms.
  std::string bytes;
  if (!absl::WebSafeBase64Unescape(ticket, &bytes) || bytes.size() < 9 ||
      bytes[0] != kTicketVersion) {
    return absl::InvalidArgumentError("the daemon sent a malformed ticket");
  }
  const auto millis =
      LoadBigEndian<uint64_t>(reinterpret_cast<const uint8_t*>(&bytes[1]));
  return absl::FromUnixMillis(static_cast<int64_t>(millis));
}

}  // namespace pcfs
