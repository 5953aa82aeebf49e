#include "core/auth/datagram_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "core/proto/protocol.h"

namespace pcfs {
namespace {

using protocol::kHeaderSize;
using protocol::kMacOffset;
using protocol::kMacSize;
using protocol::kMaxDatagramSize;
using protocol::kSequenceOffset;

// The MAC field is the last one of the header: the tag goes there, and the
// associated data is the header with it zeroed.
static_assert(kMacOffset + kMacSize == kHeaderSize);
constexpr size_t kNonceSize = 12;  // GCM's own: no GHASH of the nonce
constexpr size_t kTagSize = 16;
static_assert(kTagSize == kMacSize, "the tag replaces the MAC: no growth");

using Nonce = std::array<uint8_t, kNonceSize>;

Nonce NonceOf(Direction direction, uint64_t sequence) {
  Nonce nonce;
  protocol::Writer writer(nonce);
  writer.U32(static_cast<uint32_t>(direction));
  writer.U64(sequence);
  return nonce;
}

struct CipherFree {
  void operator()(EVP_CIPHER* cipher) const { EVP_CIPHER_free(cipher); }
};
struct CipherContextFree {
  void operator()(EVP_CIPHER_CTX* context) const {
    EVP_CIPHER_CTX_free(context);
  }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

// One thread's AES-128-GCM contexts: the cipher fetched from the provider
// once, and a sealing and an opening context initialised with it once, so
// that a datagram only sets key and nonce (which allocates nothing, where
// fetching or a new context would).
class ThreadCiphers {
 public:
  ThreadCiphers()
      : cipher_(EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr)),
        seal_(EVP_CIPHER_CTX_new()),
        open_(EVP_CIPHER_CTX_new()) {
    ok_ = cipher_ != nullptr && seal_ != nullptr && open_ != nullptr &&
          EVP_EncryptInit_ex(seal_.get(), cipher_.get(), nullptr, nullptr,
                             nullptr) == 1 &&
          EVP_DecryptInit_ex(open_.get(), cipher_.get(), nullptr, nullptr,
                             nullptr) == 1;
  }

  // Null if libcrypto could not make the contexts.
  EVP_CIPHER_CTX* seal() const { return ok_ ? seal_.get() : nullptr; }
  EVP_CIPHER_CTX* open() const { return ok_ ? open_.get() : nullptr; }

 private:
  std::unique_ptr<EVP_CIPHER, CipherFree> cipher_;
  CipherContext seal_;
  CipherContext open_;
  bool ok_ = false;
};

ThreadCiphers& Ciphers() {
  thread_local ThreadCiphers ciphers;
  return ciphers;
}

// Encrypts `body` in place and writes the tag. False if libcrypto fails.
bool Seal(EVP_CIPHER_CTX* context, const DatagramKey& key, const Nonce& nonce,
          std::span<const uint8_t> header, std::span<uint8_t> body,
          uint8_t (&tag)[kTagSize]) {
  int n = 0;
  if (context == nullptr ||
      EVP_EncryptInit_ex(context, nullptr, nullptr, key.data(), nonce.data()) !=
          1 ||
      EVP_EncryptUpdate(context, nullptr, &n, header.data(),
                        static_cast<int>(header.size())) != 1) {
    return false;
  }
  if (!body.empty() && (EVP_EncryptUpdate(context, body.data(), &n, body.data(),
                                          static_cast<int>(body.size())) != 1 ||
                        static_cast<size_t>(n) != body.size())) {
    return false;
  }
  return EVP_EncryptFinal_ex(context, body.data() + body.size(), &n) == 1 &&
         n == 0 &&
         EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, kTagSize, tag) ==
             1;
}

// Decrypts `body` into `out` and checks `tag`. False if it does not open.
bool Open(EVP_CIPHER_CTX* context, const DatagramKey& key, const Nonce& nonce,
          std::span<const uint8_t> header, std::span<const uint8_t> body,
          uint8_t (&tag)[kTagSize], std::span<uint8_t> out) {
  int n = 0;
  if (context == nullptr ||
      EVP_DecryptInit_ex(context, nullptr, nullptr, key.data(), nonce.data()) !=
          1 ||
      EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag) != 1 ||
      EVP_DecryptUpdate(context, nullptr, &n, header.data(),
                        static_cast<int>(header.size())) != 1) {
    return false;
  }
  if (!body.empty() && (EVP_DecryptUpdate(context, out.data(), &n, body.data(),
                                          static_cast<int>(body.size())) != 1 ||
                        static_cast<size_t>(n) != body.size())) {
    return false;
  }
  return EVP_DecryptFinal_ex(context, out.data() + body.size(), &n) == 1;
}

// HKDF-SHA-256 of `session_key` with an empty salt and `label` as info.
absl::Status Derive(const SessionKey& session_key, absl::string_view label,
                    DatagramKey& out) {
  struct KdfFree {
    void operator()(EVP_KDF* kdf) const { EVP_KDF_free(kdf); }
    void operator()(EVP_KDF_CTX* context) const { EVP_KDF_CTX_free(context); }
  };
  std::unique_ptr<EVP_KDF, KdfFree> kdf(
      EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  std::unique_ptr<EVP_KDF_CTX, KdfFree> context(
      kdf != nullptr ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  if (context == nullptr) {
    return absl::InternalError("libcrypto has no HKDF");
  }
  // OSSL_PARAM takes non-const pointers; these copies are what it points to.
  char digest[] = "SHA256";
  SessionKey ikm = session_key;
  std::array<char, 64> info{};
  const size_t info_size = std::min(label.size(), info.size());
  std::memcpy(info.data(), label.data(), info_size);
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm.data(),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(),
                                        info_size),
      OSSL_PARAM_construct_end()};
  const int derived =
      EVP_KDF_derive(context.get(), out.data(), out.size(), params);
  OPENSSL_cleanse(ikm.data(), ikm.size());
  if (derived != 1) return absl::InternalError("HKDF-SHA-256 failed");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DatagramKeys> DeriveDatagramKeys(const SessionKey& session_key) {
  DatagramKeys keys;
  if (absl::Status s = Derive(session_key, kToDaemonKeyLabel, keys.to_daemon);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Derive(session_key, kToClientKeyLabel, keys.to_client);
      !s.ok()) {
    return s;
  }
  return keys;
}

void SealDatagram(const DatagramKeys& keys, Direction direction,
                  uint64_t sequence, std::span<uint8_t> datagram) {
  protocol::Writer(datagram.subspan(kSequenceOffset, sizeof(sequence)))
      .U64(sequence);
  std::fill_n(datagram.begin() + kMacOffset, kMacSize, 0);
  const std::span<uint8_t> body = datagram.subspan(kHeaderSize);
  uint8_t tag[kTagSize];
  if (datagram.size() > kMaxDatagramSize ||
      !Seal(Ciphers().seal(), keys.For(direction), NonceOf(direction, sequence),
            datagram.first(kHeaderSize), body, tag)) {
    std::fill(body.begin(), body.end(), 0);  // the MAC field stays zero
    return;
  }
  std::memcpy(datagram.data() + kMacOffset, tag, kTagSize);
}

std::optional<uint64_t> OpenDatagram(const DatagramKeys& keys,
                                     Direction direction,
                                     std::span<const uint8_t> datagram,
                                     std::span<uint8_t> body_out) {
  if (datagram.size() < kHeaderSize || datagram.size() > kMaxDatagramSize) {
    return std::nullopt;
  }
  const std::span<const uint8_t> body = datagram.subspan(kHeaderSize);
  const std::span<uint8_t> out = body_out.first(body.size());
  uint64_t sequence = 0;
  protocol::Reader(datagram.subspan(kSequenceOffset, sizeof(sequence)))
      .U64(&sequence);
  // The associated data: the header with its MAC field zeroed.
  uint8_t header[kHeaderSize];
  std::memcpy(header, datagram.data(), kHeaderSize);
  uint8_t tag[kTagSize];
  std::memcpy(tag, header + kMacOffset, kTagSize);
  std::memset(header + kMacOffset, 0, kMacSize);
  if (!Open(Ciphers().open(), keys.For(direction), NonceOf(direction, sequence),
            header, body, tag, out)) {
    std::fill(out.begin(), out.end(), 0);
    return std::nullopt;
  }
  return sequence;
}

bool IsUnsealed(std::span<const uint8_t> datagram) {
  const std::span<const uint8_t> mac = datagram.subspan(kMacOffset, kMacSize);
  return std::all_of(mac.begin(), mac.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace pcfs
