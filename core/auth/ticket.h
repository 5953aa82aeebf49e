// Download tickets. When the daemon answers GET it hands the requester a
// ticket that the holder can check without asking the daemon: the claims
// (holder, requester, file name, expiry) MAC'd with the holder's ticket
// key. The ticket key is derived from the holder's session key
// (TicketKeyFor: HKDF-SHA-256, info "PeerConnect ticket key v1"), so that
// a daemon of a cluster that does not hold the holder's session can issue
// its tickets from the ticket key the cluster store carries, without ever
// knowing the session key (which alone seals the session's datagrams).
// Standalone, the daemon derives it the same way: one code path.
//
// Wire form (an opaque string to the requester, sent as "Authorization:
// Bearer <ticket>"): base64url without padding of
//   u8 version (2) | u64 expiry (Unix milliseconds, big-endian) |
//   u8 len + holder | u8 len + requester |
//   16-byte truncated HMAC-SHA-256(holder's ticket key,
//   "PeerConnect ticket v2" || every field above || u16 len + file name).
// The file name is not carried: the holder checks the MAC against the name
// it is asked for, so a ticket for one file opens no other.
// See docs/SECURITY.md.
//
// Pure (libcrypto only); all functions are thread-safe.
#ifndef PCFS_CORE_AUTH_TICKET_H_
#define PCFS_CORE_AUTH_TICKET_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/auth/hmac_sha256.h"
#include "core/auth/scram.h"
#include "core/base/names.h"

namespace pcfs {

// The wire form's first byte.
inline constexpr uint8_t kTicketVersion = 2;

// The longest ticket text: version, expiry, two user names of the longest
// kind and the MAC, in base64url without padding.
inline constexpr size_t kMaxTicketBytes =
    1 + 8 + 2 * (1 + kMaxUserNameChars) + 16;
inline constexpr size_t kMaxTicketChars = (kMaxTicketBytes * 4 + 2) / 3;

// The key that MACs a holder's tickets. A type of its own, so that a
// session key is never passed where a ticket key belongs.
struct TicketKey {
  std::array<uint8_t, 32> bytes{};
  friend bool operator==(const TicketKey&, const TicketKey&) = default;
};

// HKDF-SHA-256 (RFC 5869) of the session key, empty salt, info
// kTicketKeyLabel: the holder's ticket key. On the stack: allocates
// nothing and cannot fail (two HMACs, well under a microsecond).
inline constexpr char kTicketKeyLabel[] = "PeerConnect ticket key v1";
TicketKey TicketKeyFor(const SessionKey& session_key);

struct TicketClaims {
  std::string holder;     // whose file server may honour it
  std::string requester;  // who asked the daemon (for the holder's log)
  std::string file_name;
  absl::Time expiry;  // wall-clock time
};

// Makes a ticket for `claims`, MAC'd with the holder's ticket key.
// REQUIRES: holder and requester are valid user names, file_name a valid
// file name.
std::string IssueTicket(const TicketKey& holder_key,
                        const TicketClaims& claims);

// The same ticket as IssueTicket, written into `out` without allocating
// (the daemon issues one per GET). Returns its length, or 0 where
// IssueTicket returns an empty ticket.
// REQUIRES: out.size() >= kMaxTicketChars.
size_t WriteTicket(const TicketKey& holder_key, absl::string_view holder,
                   absl::string_view requester, absl::string_view file_name,
                   absl::Time expiry, std::span<char> out);

// The HMAC states keyed with `holder_key`: WriteTicket with these skips
// the two SHA-256 blocks of keying, two of the five a ticket's MAC costs
// (bench/handler_bench BM_WriteTicket), so the daemon keeps them, not the
// ticket key, for the holders it issues tickets for.
HmacSha256Key TicketMacKey(const TicketKey& holder_key);
size_t WriteTicket(const HmacSha256Key& holder_mac_key,
                   absl::string_view holder, absl::string_view requester,
                   absl::string_view file_name, absl::Time expiry,
                   std::span<char> out);

// Checks a ticket presented to holder `holder` (whose ticket key is
// `holder_key`, TicketKeyFor(its session key))
// for `file_name` at wall-clock time `now`. Returns the claims, or:
//   PermissionDenied  a well-formed ticket that names another holder
//   Unauthenticated   malformed, expired, or a MAC that does not verify
//                     (a forgery, or a ticket for another file: the two
//                     cannot be told apart)
absl::StatusOr<TicketClaims> VerifyTicket(const TicketKey& holder_key,
                                          absl::string_view holder,
                                          absl::string_view ticket,
                                          absl::string_view file_name,
                                          absl::Time now);

// The expiry `ticket` carries, read but not verified (only its holder can
// check the MAC): for the requester, to tell when it lapses. The ticket
// must parse as VerifyTicket parses it; Unauthenticated (malformed) if not.
absl::StatusOr<absl::Time> ReadTicketExpiry(absl::string_view ticket);

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_TICKET_H_
