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

// Both contexts of an HMAC under `key` (any length; hashed first if longer
// than a block, as RFC 2104 says), each fed its one padded key block.
void StartKeyed(std::span<const uint8_t> key, SHA256_CTX* inner,
                SHA256_CTX* outer) {
  uint8_t block[kBlockBytes] = {};
  if (key.size() > kBlockBytes) {
    SHA256(key.data(), key.size(), block);
  } else if (!key.empty()) {
    std::memcpy(block, key.data(), key.size());
  }
  uint8_t pad[kBlockBytes];
  for (size_t i = 0; i < kBlockBytes; ++i) pad[i] = block[i] ^ kInnerPad;
  SHA256_Init(inner);
  SHA256_Update(inner, pad, kBlockBytes);
  for (size_t i = 0; i < kBlockBytes; ++i) pad[i] = block[i] ^ kOuterPad;
  SHA256_Init(outer);
  SHA256_Update(outer, pad, kBlockBytes);
  OPENSSL_cleanse(block, sizeof(block));
  OPENSSL_cleanse(pad, sizeof(pad));
}

// A SHA-256 context that has hashed one block, ending in chaining values
// `h`: as StartKeyed would leave it, without the block function.
void ResumeKeyed(const std::array<uint32_t, 8>& h, SHA256_CTX* ctx) {
  SHA256_Init(ctx);
  static_assert(sizeof(ctx->h) == sizeof(h));
  std::memcpy(ctx->h, h.data(), sizeof(ctx->h));
  ctx->Nl = kBlockBytes * 8;  // bits hashed so far
}

}  // namespace

HmacSha256Key::HmacSha256Key(std::span<const uint8_t> key) {
  SHA256_CTX inner, outer;
  StartKeyed(key, &inner, &outer);
  std::memcpy(inner_.data(), inner.h, sizeof(inner.h));
  std::memcpy(outer_.data(), outer.h, sizeof(outer.h));
  OPENSSL_cleanse(&inner, sizeof(inner));
  OPENSSL_cleanse(&outer, sizeof(outer));
}

IncrementalHmacSha256::IncrementalHmacSha256(const HmacSha256Key& key) {
  ResumeKeyed(key.inner_, AsContext(inner_));
  ResumeKeyed(key.outer_, AsContext(outer_));
}

IncrementalHmacSha256::IncrementalHmacSha256(absl::string_view key)
    : IncrementalHmacSha256(std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(key.data()), key.size())) {}

IncrementalHmacSha256::IncrementalHmacSha256(std::span<const uint8_t> key) {
  StartKeyed(key, AsContext(inner_), AsContext(outer_));
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
