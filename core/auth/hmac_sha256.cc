// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP,
// but EVP allocates a provider context on every initialisation in 3.0, and
// the request path must not allocate. The block functions remain in 3.x,
// run the same accelerated code, and keep their whole state in a struct we
// own. The suppression is confined to this file: nothing else may use them.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "core/auth/hmac_sha256.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

namespace pcfs {
namespace {

constexpr size_t kBlockBytes = SHA256_CBLOCK;  // 64
constexpr uint8_t kInnerPad = 0x36;
constexpr uint8_t kOuterPad = 0x5c;

template <typename State>
SHA256_CTX* AsContext(State& state) {
  static_assert(sizeof(State) == sizeof(SHA256_CTX));
  static_assert(alignof(State) >= alignof(SHA256_CTX));
  return reinterpret_cast<SHA256_CTX*>(state.bytes);
}

}  // namespace

IncrementalHmacSha256::IncrementalHmacSha256(absl::string_view key)
    : IncrementalHmacSha256(std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(key.data()), key.size())) {}

IncrementalHmacSha256::IncrementalHmacSha256(std::span<const uint8_t> key) {
  uint8_t block[kBlockBytes] = {};
  if (key.size() > kBlockBytes) {
    SHA256(key.data(), key.size(), block);
  } else if (!key.empty()) {
    std::memcpy(block, key.data(), key.size());
  }
  uint8_t pad[kBlockBytes];
  for (size_t i = 0; i < kBlockBytes; ++i) pad[i] = block[i] ^ kInnerPad;
  SHA256_Init(AsContext(inner_));
  SHA256_Update(AsContext(inner_), pad, kBlockBytes);
  for (size_t i = 0; i < kBlockBytes; ++i) pad[i] = block[i] ^ kOuterPad;
  SHA256_Init(AsContext(outer_));
  SHA256_Update(AsContext(outer_), pad, kBlockBytes);
  OPENSSL_cleanse(block, sizeof(block));
  OPENSSL_cleanse(pad, sizeof(pad));
}

IncrementalHmacSha256::~IncrementalHmacSha256() {
  OPENSSL_cleanse(&inner_, sizeof(inner_));
  OPENSSL_cleanse(&outer_, sizeof(outer_));
}

void IncrementalHmacSha256::Update(std::span<const uint8_t> bytes) {
  SHA256_Update(AsContext(inner_), bytes.data(), bytes.size());
}

void IncrementalHmacSha256::Update(absl::string_view bytes) {
  SHA256_Update(AsContext(inner_), bytes.data(), bytes.size());
}

IncrementalHmacSha256::Digest IncrementalHmacSha256::Finish() {
  uint8_t inner_digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(inner_digest, AsContext(inner_));
  SHA256_Update(AsContext(outer_), inner_digest, sizeof(inner_digest));
  Digest mac;
  SHA256_Final(mac.data(), AsContext(outer_));
  OPENSSL_cleanse(inner_digest, sizeof(inner_digest));
  return mac;
}

HkdfSha256::HkdfSha256(std::span<const uint8_t> input_key) {
  static constexpr uint8_t kZeroSalt[kSha256Size] = {};  // HashLen zeros
  IncrementalHmacSha256 extract{std::span<const uint8_t>(kZeroSalt)};
  extract.Update(input_key);
  prk_ = extract.Finish();
}

HkdfSha256::~HkdfSha256() { OPENSSL_cleanse(prk_.data(), prk_.size()); }

void HkdfSha256::Expand(absl::string_view info, std::span<uint8_t> out) const {
  IncrementalHmacSha256 expand{std::span<const uint8_t>(prk_)};
  expand.Update(info);
  expand.Update(absl::string_view("\x01", 1));
  Sha256Digest okm = expand.Finish();
  std::memcpy(out.data(), okm.data(), std::min(out.size(), okm.size()));
  OPENSSL_cleanse(okm.data(), okm.size());
}

}  // namespace pcfs
