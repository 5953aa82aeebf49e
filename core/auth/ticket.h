// Download tickets. When the daemon answers GET it hands the requester a
// ticket that the holder can check without asking the daemon: the claims
// (holder, requester, file name, expiry) MAC'd with the holder's own
// session key, which only the daemon and the holder know.
//
// Wire form (an opaque string to the requester, sent as "Authorization:
// Bearer <ticket>"): base64url without padding of
//   u8 version (1) | u64 expiry (Unix milliseconds, big-endian) |
//   u8 len + holder | u8 len + requester |
//   16-byte truncated HMAC-SHA-256(holder key, "PeerConnect ticket v1" ||
//   every field above || u16 len + file name).
// The file name is not carried: the holder checks the MAC against the name
// it is asked for, so a ticket for one file opens no other.
// See docs/SECURITY.md.
//
// Pure (libcrypto only); all functions are thread-safe.
#ifndef PCFS_CORE_AUTH_TICKET_H_
#define PCFS_CORE_AUTH_TICKET_H_

#include <cstddef>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/auth/scram.h"
#include "core/base/names.h"

namespace pcfs {

// The longest ticket text: version, expiry, two user names of the longest
// kind and the MAC, in base64url without padding.
inline constexpr size_t kMaxTicketBytes =
    1 + 8 + 2 * (1 + kMaxUserNameChars) + 16;
inline constexpr size_t kMaxTicketChars = (kMaxTicketBytes * 4 + 2) / 3;

struct TicketClaims {
  std::string holder;     // whose file server may honour it
  std::string requester;  // who asked the daemon (for the holder's log)
  std::string file_name;
  absl::Time expiry;  // wall-clock time
};

// Makes a ticket for `claims`, MAC'd with the holder's session key.
// REQUIRES: holder and requester are valid user names, file_name a valid
// file name.
std::string IssueTicket(const SessionKey& holder_key,
                        const TicketClaims& claims);

// The same ticket as IssueTicket, written into `out` without allocating
// (the daemon issues one per GET). Returns its length, or 0 where
// IssueTicket returns an empty ticket.
// REQUIRES: out.size() >= kMaxTicketChars.
size_t WriteTicket(const SessionKey& holder_key, absl::string_view holder,
                   absl::string_view requester, absl::string_view file_name,
                   absl::Time expiry, std::span<char> out);

// Checks a ticket presented to holder `holder` (whose key is `holder_key`)
// for `file_name` at wall-clock time `now`. Returns the claims, or:
//   PermissionDenied  a well-formed ticket that names another holder
//   Unauthenticated   malformed, expired, or a MAC that does not verify
//                     (a forgery, or a ticket for another file: the two
//                     cannot be told apart)
absl::StatusOr<TicketClaims> VerifyTicket(const SessionKey& holder_key,
                                          absl::string_view holder,
                                          absl::string_view ticket,
                                          absl::string_view file_name,
                                          absl::Time now);

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_TICKET_H_
