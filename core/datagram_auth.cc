#include "core/datagram_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <memory>

#include "core/protocol.h"

namespace pcfs {
namespace {

using protocol::kHeaderSize;
using protocol::kMacSize;

// The MAC field is the last one of the header (see core/protocol.h).
constexpr size_t kMacOffset = kHeaderSize - kMacSize;
static_assert(kMacOffset == 28);

struct MacContextFree {
  void operator()(EVP_MAC_CTX* context) const { EVP_MAC_CTX_free(context); }
};
using MacContext = std::unique_ptr<EVP_MAC_CTX, MacContextFree>;

// A fresh HMAC-SHA-256 context without a key; nullptr if libcrypto fails.
MacContext NewHmacSha256Context() {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
  if (mac == nullptr) return nullptr;
  MacContext context(EVP_MAC_CTX_new(mac));
  EVP_MAC_free(mac);  // the context holds its own reference
  if (context == nullptr) return nullptr;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(context.get(), params) != 1) return nullptr;
  return context;
}

// This thread's context, made once and re-keyed for every datagram: fetching
// the algorithm and the digest costs more than the MAC of a small datagram.
// One per thread, so SealDatagram and VerifyDatagram stay thread-safe.
EVP_MAC_CTX* ThreadHmacContext() {
  thread_local MacContext context = NewHmacSha256Context();
  return context.get();
}

// Computes the truncated MAC of `datagram` with its MAC field taken as zero,
// feeding the bytes around the field instead of copying the datagram.
// False if libcrypto failed (only on allocation failure in practice).
// REQUIRES: datagram.size() >= kHeaderSize.
bool ComputeMac(const SessionKey& key, std::span<const uint8_t> datagram,
                uint8_t (&mac)[kMacSize]) {
  static constexpr uint8_t kZeroMac[kMacSize] = {};
  EVP_MAC_CTX* context = ThreadHmacContext();
  uint8_t full[EVP_MAX_MD_SIZE];
  size_t length = 0;
  const bool ok = context != nullptr &&
                  EVP_MAC_init(context, key.data(), key.size(), nullptr) == 1 &&
                  EVP_MAC_update(context, datagram.data(), kMacOffset) == 1 &&
                  EVP_MAC_update(context, kZeroMac, kMacSize) == 1 &&
                  EVP_MAC_update(context, datagram.data() + kHeaderSize,
                                 datagram.size() - kHeaderSize) == 1 &&
                  EVP_MAC_final(context, full, &length, sizeof(full)) == 1 &&
                  length >= kMacSize;
  if (!ok) {
    ERR_clear_error();
    return false;
  }
  std::memcpy(mac, full, kMacSize);
  return true;
}

}  // namespace

void SealDatagram(const SessionKey& key, std::span<uint8_t> datagram) {
  uint8_t mac[kMacSize];
  // Should libcrypto fail, the field is left zero: the datagram then fails
  // verification and is dropped, as a lost datagram would be.
  if (!ComputeMac(key, datagram, mac)) std::memset(mac, 0, sizeof(mac));
  std::memcpy(datagram.data() + kMacOffset, mac, kMacSize);
}

bool VerifyDatagram(const SessionKey& key, std::span<const uint8_t> datagram) {
  if (datagram.size() < kHeaderSize) return false;
  uint8_t expected[kMacSize];
  if (!ComputeMac(key, datagram, expected)) return false;
  return CRYPTO_memcmp(expected, datagram.data() + kMacOffset, kMacSize) == 0;
}

}  // namespace pcfs
