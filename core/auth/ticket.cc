#include "core/auth/ticket.h"

#include <openssl/crypto.h>

#include <cstdint>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/auth/hmac_sha256.h"
#include "core/base/big_endian.h"
#include "core/base/names.h"

namespace pcfs {
namespace {

constexpr absl::string_view kTicketLabel = "PeerConnect ticket v2";
constexpr size_t kTicketMacBytes = 16;
constexpr size_t kExpiryBytes = sizeof(uint64_t);  // big-endian Unix ms
constexpr size_t kMaxFileNameLength = std::numeric_limits<uint16_t>::max();
static_assert(kMaxTicketBytes ==
              1 + kExpiryBytes + 2 * (1 + kMaxUserNameChars) + kTicketMacBytes);

// The fields before the MAC, as they appear in the ticket.
struct SignedPart {
  uint64_t expiry_ms = 0;
  absl::string_view holder;
  absl::string_view requester;
};

// The ticket's bytes (signed part, then MAC) being built in fixed storage.
class TicketBytes {
 public:
  void U8(uint8_t v) { bytes_[size_++] = v; }
  void U64(uint64_t v) {
    StoreBigEndian(v, bytes_ + size_);
    size_ += sizeof(v);
  }
  // REQUIRES: text.size() <= 255 and room for it.
  void ShortString(absl::string_view text) {
    U8(static_cast<uint8_t>(text.size()));
    std::memcpy(bytes_ + size_, text.data(), text.size());
    size_ += text.size();
  }
  void Append(std::span<const uint8_t> bytes) {
    std::memcpy(bytes_ + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
  }
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(bytes_), size_);
  }

 private:
  uint8_t bytes_[kMaxTicketBytes];
  size_t size_ = 0;
};

// REQUIRES: holder and requester at most kMaxUserNameChars bytes.
void EncodeSignedPart(const SignedPart& part, TicketBytes& out) {
  out.U8(kTicketVersion);
  out.U64(part.expiry_ms);
  out.ShortString(part.holder);
  out.ShortString(part.requester);
}

// The full MAC binding the signed part to `file_name`; the ticket carries
// its first kTicketMacBytes.
// REQUIRES: file_name.size() <= kMaxFileNameLength.
Sha256Digest TicketMac(const HmacSha256Key& holder_mac_key,
                       absl::string_view signed_part,
                       absl::string_view file_name) {
  uint8_t length[2];
  StoreBigEndian(static_cast<uint16_t>(file_name.size()), length);
  IncrementalHmacSha256 hmac{holder_mac_key};
  hmac.Update(kTicketLabel);
  hmac.Update(signed_part);
  hmac.Update(length);
  hmac.Update(file_name);
  return hmac.Finish();
}

// Base64url without padding (RFC 4648, section 5) of `bytes` into `out`;
// returns the length. REQUIRES: out.size() >= (bytes.size() * 4 + 2) / 3.
size_t EncodeBase64Url(absl::string_view bytes, std::span<char> out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t n = 0;
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint8_t>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t group = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6) {
      out[n++] = kAlphabet[(group >> shift) & 0x3f];
    }
  }
  const size_t left = bytes.size() - i;
  if (left > 0) {
    uint32_t group = byte(i) << 16;
    if (left == 2) group |= byte(i + 1) << 8;
    for (size_t k = 0; k <= left; ++k) {
      out[n++] = kAlphabet[(group >> (18 - 6 * k)) & 0x3f];
    }
  }
  return n;
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
    if (bytes_.size() < sizeof(*v)) return false;
    *v = LoadBigEndian<uint64_t>(
        reinterpret_cast<const uint8_t*>(bytes_.data()));
    bytes_.remove_prefix(sizeof(*v));
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

// Decodes ticket text into `bytes` and splits them (ParseTicket), the
// fields and the MAC viewing `bytes`.
absl::Status DecodeTicket(absl::string_view ticket, std::string* bytes,
                          SignedPart* part, absl::string_view* mac) {
  if (ticket.size() > kMaxTicketChars) return Malformed("too long");
  if (!DecodeBase64Url(ticket, bytes)) return Malformed("not base64url");
  return ParseTicket(*bytes, part, mac);
}

}  // namespace

TicketKey TicketKeyFor(const SessionKey& session_key) {
  TicketKey key;
  HkdfSha256(session_key).Expand(kTicketKeyLabel, key.bytes);
  return key;
}

HmacSha256Key TicketMacKey(const TicketKey& holder_key) {
  return HmacSha256Key(std::span<const uint8_t>(holder_key.bytes));
}

size_t WriteTicket(const TicketKey& holder_key, absl::string_view holder,
                   absl::string_view requester, absl::string_view file_name,
                   absl::Time expiry, std::span<char> out) {
  return WriteTicket(TicketMacKey(holder_key), holder, requester, file_name,
                     expiry, out);
}

size_t WriteTicket(const HmacSha256Key& holder_mac_key,
                   absl::string_view holder, absl::string_view requester,
                   absl::string_view file_name, absl::Time expiry,
                   std::span<char> out) {
  // Outside the REQUIRES the fields would not encode; an empty ticket is
  // refused by every holder.
  if (holder.size() > kMaxUserNameChars ||
      requester.size() > kMaxUserNameChars ||
      file_name.size() > kMaxFileNameLength || out.size() < kMaxTicketChars) {
    return 0;
  }
  const int64_t expiry_ms = absl::ToUnixMillis(expiry);
  TicketBytes bytes;
  EncodeSignedPart(
      {static_cast<uint64_t>(expiry_ms < 0 ? 0 : expiry_ms), holder, requester},
      bytes);
  const Sha256Digest mac = TicketMac(holder_mac_key, bytes.view(), file_name);
  bytes.Append(std::span<const uint8_t>(mac.data(), kTicketMacBytes));
  return EncodeBase64Url(bytes.view(), out);
}

std::string IssueTicket(const TicketKey& holder_key,
                        const TicketClaims& claims) {
  char text[kMaxTicketChars];
  const size_t size = WriteTicket(holder_key, claims.holder, claims.requester,
                                  claims.file_name, claims.expiry, text);
  return std::string(text, size);
}

absl::StatusOr<TicketClaims> VerifyTicket(const TicketKey& holder_key,
                                          absl::string_view holder,
                                          absl::string_view ticket,
                                          absl::string_view file_name,
                                          absl::Time now) {
  std::string bytes;
  SignedPart part;
  absl::string_view mac;
  if (absl::Status s = DecodeTicket(ticket, &bytes, &part, &mac); !s.ok()) {
    return s;
  }
  // Checked before the MAC, which could never verify with our key anyway.
  if (part.holder != holder) {
    return absl::PermissionDeniedError("ticket is for another holder");
  }
  const absl::string_view signed_part =
      absl::string_view(bytes).substr(0, bytes.size() - kTicketMacBytes);
  if (file_name.size() > kMaxFileNameLength) return DoesNotVerify();
  const Sha256Digest expected =
      TicketMac(TicketMacKey(holder_key), signed_part, file_name);
  if (CRYPTO_memcmp(expected.data(), mac.data(), kTicketMacBytes) != 0) {
    return DoesNotVerify();
  }
  const absl::Time expiry =
      absl::FromUnixMillis(static_cast<int64_t>(part.expiry_ms));
  if (now >= expiry) return absl::UnauthenticatedError("ticket has expired");
  return TicketClaims{std::string(part.holder), std::string(part.requester),
                      std::string(file_name), expiry};
}

absl::StatusOr<absl::Time> ReadTicketExpiry(absl::string_view ticket) {
  std::string bytes;
  SignedPart part;
  absl::string_view mac;
  if (absl::Status s = DecodeTicket(ticket, &bytes, &part, &mac); !s.ok()) {
    return s;
  }
  return absl::FromUnixMillis(static_cast<int64_t>(part.expiry_ms));
}

}  // namespace pcfs
