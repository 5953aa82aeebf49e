#include "core/auth/datagram_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

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

// One thread's AES-128-GCM contexts, each keyed for one key and kept so:
// keying a GCM context (the AES key schedule, GHASH's table) costs about as
// much as sealing a small datagram, and a session's datagrams mostly come
// back to the same thread (SO_REUSEPORT), so a datagram under a key seen
// before only sets the nonce. A set-associative cache per use (sealing,
// opening): kSets sets of kWays contexts, the set chosen by the key's first
// bytes (HKDF output: uniform), the least recently used context of a full
// set keyed again for a new key, which allocates nothing. A context is made
// on its slot's first use: a thread allocates at most 2 * kSets * kWays
// contexts in its life (1,176 bytes each with OpenSSL 3.0: 9.6 MB in all,
// for a reactor thread with some 4,000 sessions or more), a client thread a
// few.
class ThreadCiphers {
 public:
  static constexpr size_t kSets = 1024;
  static constexpr size_t kWays = 4;

  ThreadCiphers()
      : cipher_(EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr)),
        seal_(kSets * kWays),
        open_(kSets * kWays) {}

  // A context keyed with `key` for sealing (`seal`) or opening, or null if
  // libcrypto fails.
  EVP_CIPHER_CTX* For(const DatagramKey& key, bool seal) {
    if (cipher_ == nullptr) return nullptr;
    uint64_t index = 0;
    std::memcpy(&index, key.data(), sizeof(index));
    Slot* set = (seal ? seal_ : open_).data() + (index % kSets) * kWays;
    ++clock_;
    Slot* victim = set;
    for (Slot* slot = set; slot != set + kWays; ++slot) {
      if (slot->keyed && slot->key == key) {
        slot->used = clock_;
        return slot->context.get();
      }
      if (slot->used < victim->used) victim = slot;  // unused slots: 0
    }
    return Key(*victim, key, seal);
  }

 private:
  struct Slot {
    DatagramKey key{};
    bool keyed = false;
    uint64_t used = 0;      // clock_ at its last use; 0: never
    CipherContext context;  // null until the slot's first use
  };

  // Keys `slot` with `key`, making its context if it has none.
  EVP_CIPHER_CTX* Key(Slot& slot, const DatagramKey& key, bool seal) {
    slot.keyed = false;
    const EVP_CIPHER* cipher = nullptr;  // keep the slot's: no new fetch
    if (slot.context == nullptr) {
      slot.context.reset(EVP_CIPHER_CTX_new());
      if (slot.context == nullptr) return nullptr;
      cipher = cipher_.get();
    }
    const int keyed = seal ? EVP_EncryptInit_ex(slot.context.get(), cipher,
                                                nullptr, key.data(), nullptr)
                           : EVP_DecryptInit_ex(slot.context.get(), cipher,
                                                nullptr, key.data(), nullptr);
    if (keyed != 1) {
      slot.context.reset();  // made again, from scratch, next time
      return nullptr;
    }
    slot.key = key;
    slot.keyed = true;
    slot.used = clock_;
    return slot.context.get();
  }

  std::unique_ptr<EVP_CIPHER, CipherFree> cipher_;
  std::vector<Slot> seal_;
  std::vector<Slot> open_;
  uint64_t clock_ = 0;
};

// On the heap, made on the thread's first datagram: not in every thread's
// static TLS, sealing or not.
ThreadCiphers& Ciphers() {
  thread_local std::unique_ptr<ThreadCiphers> ciphers =
      std::make_unique<ThreadCiphers>();
  return *ciphers;
}

// Encrypts `body` in place and writes the tag. False if libcrypto fails.
// REQUIRES: `context` keyed for sealing (or null: then it fails).
bool Seal(EVP_CIPHER_CTX* context, const Nonce& nonce,
          std::span<const uint8_t> header, std::span<uint8_t> body,
          uint8_t (&tag)[kTagSize]) {
  int n = 0;
  if (context == nullptr ||
      EVP_EncryptInit_ex(context, nullptr, nullptr, nullptr, nonce.data()) !=
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
  // The tag through the parameter itself, not EVP_CIPHER_CTX_ctrl, which
  // in OpenSSL 3 builds the same parameter after a switch over every
  // control (measured: a tenth of a small datagram's sealing).
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(
                             OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagSize),
                         OSSL_PARAM_construct_end()};
  return EVP_EncryptFinal_ex(context, body.data() + body.size(), &n) == 1 &&
         n == 0 && EVP_CIPHER_CTX_get_params(context, params) == 1;
}

// Decrypts `body` into `out` and checks `tag`. False if it does not open.
// REQUIRES: `context` keyed for opening (or null: then it fails).
bool Open(EVP_CIPHER_CTX* context, const Nonce& nonce,
          std::span<const uint8_t> header, std::span<const uint8_t> body,
          uint8_t (&tag)[kTagSize], std::span<uint8_t> out) {
  int n = 0;
  // The expected tag goes with the nonce, in one call (see Seal).
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(
                                   OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagSize),
                               OSSL_PARAM_construct_end()};
  if (context == nullptr ||
      EVP_DecryptInit_ex2(context, nullptr, nullptr, nonce.data(), params) !=
          1 ||
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
      !Seal(Ciphers().For(keys.For(direction), /*seal=*/true),
            NonceOf(direction, sequence), datagram.first(kHeaderSize), body,
            tag)) {
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
  if (!Open(Ciphers().For(keys.For(direction), /*seal=*/false),
            NonceOf(direction, sequence), header, body, tag, out)) {
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
