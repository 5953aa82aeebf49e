#include "core/auth/datagram_auth.h"

#include <openssl/crypto.h>

#include <cstring>

#include "core/auth/hmac_sha256.h"
#include "core/proto/protocol.h"

namespace pcfs {
namespace {

using protocol::kHeaderSize;
using protocol::kMacSize;

// The MAC field is the last one of the header (see core/proto/protocol.h).
constexpr size_t kMacOffset = kHeaderSize - kMacSize;
static_assert(kMacOffset == 28);

// Computes the truncated MAC of `datagram` with its MAC field taken as zero,
// feeding the bytes around the field instead of copying the datagram. On
// the stack throughout: no allocation, so no failure either.
// REQUIRES: datagram.size() >= kHeaderSize.
void ComputeMac(const SessionKey& key, std::span<const uint8_t> datagram,
                uint8_t (&mac)[kMacSize]) {
  static constexpr uint8_t kZeroMac[kMacSize] = {};
  IncrementalHmacSha256 hmac(key);
  hmac.Update(datagram.first(kMacOffset));
  hmac.Update(kZeroMac);
  hmac.Update(datagram.subspan(kHeaderSize));
  const IncrementalHmacSha256::Digest full = hmac.Finish();
  std::memcpy(mac, full.data(), kMacSize);
}

}  // namespace

void SealDatagram(const SessionKey& key, std::span<uint8_t> datagram) {
  uint8_t mac[kMacSize];
  ComputeMac(key, datagram, mac);
  std::memcpy(datagram.data() + kMacOffset, mac, kMacSize);
}

bool VerifyDatagram(const SessionKey& key, std::span<const uint8_t> datagram) {
  if (datagram.size() < kHeaderSize) return false;
  uint8_t expected[kMacSize];
  ComputeMac(key, datagram, expected);
  return CRYPTO_memcmp(expected, datagram.data() + kMacOffset, kMacSize) == 0;
}

}  // namespace pcfs
