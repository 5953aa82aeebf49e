#include "peerctl/download_url.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/auth/ticket.h"
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
  // --no-clobber: a file of that name already here is kept (curl writes
  // NAME.1); --remove-on-error: a transfer cut short leaves no file that
  // passes for the whole one (curl 7.83 and later: Debian 12 has 7.88).
  std::string command = "curl --fail --no-clobber --remove-on-error";
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
  absl::StatusOr<absl::Time> expiry = ReadTicketExpiry(ticket);
  if (!expiry.ok()) {
    return absl::InvalidArgumentError("the daemon sent a malformed ticket");
  }
  return expiry;
}

}  // namespace pcfs
