#include "core/auth/datagram_auth.h"

#include <openssl/crypto.h>

#include <cstring>

#include "core/auth/hmac_sha256.h"
#include "core/proto/protocol.h"

namespace pcfs {
namespace {

using protocol::kHeaderSize;
using protocol::kMacOffset;
using protocol::kMacSize;
using protocol::kSequenceOffset;

// The MAC field is the last one of the header, so the MAC input is the
// bytes before it, zeros in its place, and the body.
static_assert(kMacOffset + kMacSize == kHeaderSize);

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

void SealDatagram(const SessionKey& key, uint64_t sequence,
                  std::span<uint8_t> datagram) {
  protocol::Writer(datagram.subspan(kSequenceOffset, sizeof(sequence)))
      .U64(sequence);
  uint8_t mac[kMacSize];
  ComputeMac(key, datagram, mac);
  std::memcpy(datagram.data() + kMacOffset, mac, kMacSize);
}

std::optional<uint64_t> OpenDatagram(const SessionKey& key,
                                     std::span<const uint8_t> datagram) {
  if (datagram.size() < kHeaderSize) return std::nullopt;
  uint8_t expected[kMacSize];
  ComputeMac(key, datagram, expected);
  if (CRYPTO_memcmp(expected, datagram.data() + kMacOffset, kMacSize) != 0) {
    return std::nullopt;
  }
  uint64_t sequence = 0;
  protocol::Reader(datagram.subspan(kSequenceOffset, sizeof(sequence)))
      .U64(&sequence);
  return sequence;
}

}  // namespace pcfs
