// `peerctl url NAME`: a ready curl command that downloads a file from its
// holder while the daemon's ticket lives. curl checks the holder's key with
// --pinnedpubkey (the pin the daemon registered for it); -k only turns off
// the CA check, which has nothing to check here (self-signed keys, no CA).
//
// Pure; thread-safe.
#ifndef PCFS_PEERCTL_DOWNLOAD_URL_H_
#define PCFS_PEERCTL_DOWNLOAD_URL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "peerctl/client.h"

namespace pcfs {

// `text` quoted for a POSIX shell: in single quotes, each ' as '\''.
std::string ShellQuote(absl::string_view text);

// The curl command for `location` (a GET reply) of file `name`:
//   curl --fail --no-clobber --remove-on-error -k --pinnedpubkey
//   'sha256//BASE64'
//     -H 'Authorization: Bearer TICKET' -o 'NAME'
//     'https://HOST:PORT/f/NAME-percent-encoded'
// (one line). A holder with a zero pin serves plain HTTP: then http://,
// without -k and --pinnedpubkey.
std::string FormatCurlCommand(absl::string_view name,
                              const FileLocation& location);

// The expiry a ticket carries (read, not verified: only the holder can
// check its MAC). InvalidArgument for a malformed ticket.
absl::StatusOr<absl::Time> TicketExpiry(absl::string_view ticket);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_DOWNLOAD_URL_H_
