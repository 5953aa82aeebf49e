#include "core/ticket.h"

#include <openssl/crypto.h>

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/names.h"

namespace pcfs {
namespace {

constexpr uint8_t kTicketVersion = 1;
constexpr absl::string_view kTicketLabel = "PeerConnect ticket v1";
constexpr size_t kTicketMacBytes = 16;
constexpr size_t kExpiryBytes = 8;
constexpr size_t kMaxFileNameLength = std::numeric_limits<uint16_t>::max();
// The largest ticket: version, expiry, two names of the longest kind, MAC;
// and its base64url length without padding (4 characters per 3 bytes, a
// partial group taking one more character than it has bytes).
constexpr size_t kMaxTicketBytes =
    1 + kExpiryBytes + 2 * (1 + kMaxUserNameChars) + kTicketMacBytes;
constexpr size_t kMaxTicketChars = (kMaxTicketBytes * 4 + 2) / 3;

// The fields before the MAC, as they appear in the ticket.
struct SignedPart {
  uint64_t expiry_ms = 0;
  absl::string_view holder;
  absl::string_view requester;
};

void AppendU8(std::string& out, uint8_t v) {
  out.push_back(static_cast<char>(v));
}

void AppendBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

std::string EncodeSignedPart(const SignedPart& part) {
  std::string out;
  out.reserve(kMaxTicketBytes);
  AppendU8(out, kTicketVersion);
  AppendBigEndian(out, part.expiry_ms, kExpiryBytes);
  AppendU8(out, static_cast<uint8_t>(part.holder.size()));
  absl::StrAppend(&out, part.holder);
  AppendU8(out, static_cast<uint8_t>(part.requester.size()));
  absl::StrAppend(&out, part.requester);
  return out;
}

// The truncated MAC binding the signed part to `file_name`.
// REQUIRES: file_name.size() <= kMaxFileNameLength.
absl::StatusOr<std::string> TicketMac(const SessionKey& holder_key,
                                      absl::string_view signed_part,
                                      absl::string_view file_name) {
  std::string input = absl::StrCat(kTicketLabel, signed_part);
  AppendBigEndian(input, file_name.size(), 2);
  absl::StrAppend(&input, file_name);
  absl::StatusOr<Sha256Digest> mac = HmacSha256(
      absl::string_view(reinterpret_cast<const char*>(holder_key.data()),
                        holder_key.size()),
      input);
  if (!mac.ok()) return mac.status();
  return std::string(reinterpret_cast<const char*>(mac->data()),
                     kTicketMacBytes);
}

// Reads the ticket's fields off the front of `bytes`, which it advances.
class TicketReader {
 public:
  explicit TicketReader(absl::string_view bytes) : bytes_(bytes) {}

  bool U8(uint8_t* v) {
    if (bytes_.empty()) return false;
    *v = static_cast<uint8_t>(bytes_[0]);
    bytes_.remove_prefix(1);
    return true;
  }
  bool U64(uint64_t* v) {
    if (bytes_.size() < kExpiryBytes) return false;
    *v = 0;
    for (size_t i = 0; i < kExpiryBytes; ++i) {
      *v = (*v << 8) | static_cast<uint8_t>(bytes_[i]);
    }
    bytes_.remove_prefix(kExpiryBytes);
    return true;
  }
  // A u8 length and that many bytes.
  bool ShortString(absl::string_view* s) {
    uint8_t length = 0;
    if (!U8(&length) || bytes_.size() < length) return false;
    *s = bytes_.substr(0, length);
    bytes_.remove_prefix(length);
    return true;
  }
  absl::string_view rest() const { return bytes_; }

 private:
  absl::string_view bytes_;
};

absl::Status Malformed(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("ticket is malformed: ", why));
}

// A forgery and a ticket for another file cannot be told apart.
absl::Status DoesNotVerify() {
  return absl::UnauthenticatedError(
      "ticket does not verify (forged, or for another file)");
}

// Splits decoded ticket bytes into the signed part's fields and the MAC.
absl::Status ParseTicket(absl::string_view bytes, SignedPart* part,
                         absl::string_view* mac) {
  TicketReader reader(bytes);
  uint8_t version = 0;
  if (!reader.U8(&version)) return Malformed("empty");
  if (version != kTicketVersion) return Malformed("unknown version");
  if (!reader.U64(&part->expiry_ms) || !reader.ShortString(&part->holder) ||
      !reader.ShortString(&part->requester)) {
    return Malformed("truncated");
  }
  if (part->expiry_ms >
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Malformed("expiry out of range");
  }
  if (!ValidateUserName(part->holder).ok() ||
      !ValidateUserName(part->requester).ok()) {
    return Malformed("invalid user name");
  }
  if (reader.rest().size() != kTicketMacBytes) {
    return Malformed(reader.rest().size() < kTicketMacBytes ? "truncated"
                                                            : "trailing bytes");
  }
  *mac = reader.rest();
  return absl::OkStatus();
}

// Decodes unpadded base64url in its one canonical spelling (no padding, no
// stray bits in the last character), so that one ticket has one text.
bool DecodeBase64Url(absl::string_view text, std::string* bytes) {
  return absl::WebSafeBase64Unescape(text, bytes) &&
         absl::WebSafeBase64Escape(*bytes) == text;
}

}  // namespace

std::string IssueTicket(const SessionKey& holder_key,
                        const TicketClaims& claims) {
  // Outside the REQUIRES the fields would not encode; an empty ticket is
  // refused by every holder. So is one whose MAC libcrypto could not make.
  if (claims.holder.size() > kMaxUserNameChars ||
      claims.requester.size() > kMaxUserNameChars ||
      claims.file_name.size() > kMaxFileNameLength) {
    return std::string();
  }
  const int64_t expiry_ms = absl::ToUnixMillis(claims.expiry);
  const std::string signed_part =
      EncodeSignedPart({static_cast<uint64_t>(expiry_ms < 0 ? 0 : expiry_ms),
                        claims.holder, claims.requester});
  absl::StatusOr<std::string> mac =
      TicketMac(holder_key, signed_part, claims.file_name);
  if (!mac.ok()) return std::string();
  return absl::WebSafeBase64Escape(absl::StrCat(signed_part, *mac));
}

absl::StatusOr<TicketClaims> VerifyTicket(const SessionKey& holder_key,
                                          absl::string_view holder,
                                          absl::string_view ticket,
                                          absl::string_view file_name,
                                          absl::Time now) {
  if (ticket.size() > kMaxTicketChars) return Malformed("too long");
  std::string bytes;
  if (!DecodeBase64Url(ticket, &bytes)) return Malformed("not base64url");
  SignedPart part;
  absl::string_view mac;
  if (absl::Status s = ParseTicket(bytes, &part, &mac); !s.ok()) return s;
  // Checked before the MAC, which could never verify with our key anyway.
  if (part.holder != holder) {
    return absl::PermissionDeniedError("ticket is for another holder");
  }
  const absl::string_view signed_part =
      absl::string_view(bytes).substr(0, bytes.size() - kTicketMacBytes);
  if (file_name.size() > kMaxFileNameLength) return DoesNotVerify();
  absl::StatusOr<std::string> expected =
      TicketMac(holder_key, signed_part, file_name);
  if (!expected.ok()) return expected.status();
  if (CRYPTO_memcmp(expected->data(), mac.data(), kTicketMacBytes) != 0) {
    return DoesNotVerify();
  }
  const absl::Time expiry =
      absl::FromUnixMillis(static_cast<int64_t>(part.expiry_ms));
  if (now >= expiry) return absl::UnauthenticatedError("ticket has expired");
  return TicketClaims{std::string(part.holder), std::string(part.requester),
                      std::string(file_name), expiry};
}

}  // namespace pcfs
