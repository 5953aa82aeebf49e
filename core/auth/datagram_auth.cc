#include "core/auth/datagram_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/auth/hmac_sha256.h"
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

// HKDF-SHA-256 (RFC 5869) of `session_key`, empty salt, one block of expand
// per label, on the stack (HkdfSha256): no allocation and no
// failure, so that a cache miss on the request path costs neither (EVP_KDF
// allocates a context per call). The result must equal DeriveDatagramKeys's
// (datagram_auth_test checks the sealed bytes).
void DeriveOnTheStack(const SessionKey& session_key, DatagramKeys& out) {
  const HkdfSha256 hkdf(session_key);
  hkdf.Expand(kToDaemonKeyLabel, out.to_daemon);
  hkdf.Expand(kToClientKeyLabel, out.to_client);
}

// One thread's AES-128-GCM contexts: per entry, one context keyed with the
// to-daemon key and one with the to-client key of one session, kept so.
// Keying a GCM context (the AES key schedule, GHASH's table) costs about as
// much as sealing a small datagram, and a session's datagrams stay on one
// reactor thread (SO_REUSEPORT), so a datagram of a session seen before
// only sets the nonce (and whether the context seals or opens: GCM uses the
// same key schedule both ways). An entry is found by what keyed it: a
// session key (the daemon's way: on a miss the two keys are derived from it
// here, so the session table keeps 32 bytes a session, not 64), or the two
// datagram keys themselves (a client's, which derived them once at login).
// Either is 32 bytes that change with every login, so a new key can never
// find a stale entry. A set-associative cache: kSets sets of kWays entries,
// the set chosen by a hash of the first 8 bytes of the 32, the least
// recently used entry of a full set keyed again for new keys, which
// allocates nothing. An entry's contexts are made on its first use: a
// thread allocates at most 2 * kSets * kWays contexts in its life (1,176
// bytes each with OpenSSL 3.0: 9.6 MB in all, for a reactor thread with
// some 4,000 sessions or more), a client thread a few.
class ThreadCiphers {
 public:
  // 4,096 entries. Eight ways, so that a thread with 1,000 sessions (two
  // a set on average) almost never has more in one set than it holds: with
  // four, about one session in fifty missed on every datagram, each miss
  // costing an HKDF and the keying of two contexts.
  static constexpr size_t kSets = 512;
  static constexpr size_t kWays = 8;

  // What an entry was keyed from.
  enum class Source : uint8_t { kNone, kSessionKey, kDatagramKeys };
  using Tag = SessionKey;  // or the two datagram keys, end to end
  static_assert(sizeof(DatagramKeys) == sizeof(Tag));

  ThreadCiphers()
      : cipher_(EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr)),
        entries_(kSets * kWays) {}

  // The context keyed with the key of `direction` of the session whose
  // session key (kSessionKey) or datagram keys (kDatagramKeys) `tag` holds,
  // or null if libcrypto fails.
  EVP_CIPHER_CTX* For(Source source, const Tag& tag, Direction direction) {
    if (cipher_ == nullptr) return nullptr;
    Entry* set = entries_.data() + SetOf(tag) * kWays;
    ++clock_;
    Entry* entry = nullptr;
    Entry* victim = set;
    for (Entry* way = set; way != set + kWays; ++way) {
      if (way->source == source && way->tag == tag) {
        entry = way;
        break;
      }
      if (way->used < victim->used) victim = way;  // unused entries: 0
    }
    if (entry == nullptr) {
      if (!Key(*victim, source, tag)) return nullptr;
      entry = victim;
    }
    entry->used = clock_;
    return (direction == Direction::kToDaemon ? entry->to_daemon
                                              : entry->to_client)
        .get();
  }

 private:
  // The set of `tag`: its first 8 bytes, mixed (Fibonacci hashing), so
  // that keys alike in their low bytes (as in tests and benchmarks; real
  // keys are HMAC output) still spread over every set.
  static size_t SetOf(const Tag& tag) {
    static_assert((kSets & (kSets - 1)) == 0 && kSets > 1);
    uint64_t bytes = 0;
    std::memcpy(&bytes, tag.data(), sizeof(bytes));
    constexpr int kSetBits = std::countr_zero(kSets);
    return static_cast<size_t>((bytes * 0x9E3779B97F4A7C15u) >>
                               (64 - kSetBits));
  }

  // One cache line: the tag, its source, the clock of its last use and
  // the two contexts.
  struct alignas(64) Entry {
    Tag tag{};
    Source source = Source::kNone;
    uint64_t used = 0;        // clock_ at its last use; 0: never
    CipherContext to_daemon;  // null until the entry's first use
    CipherContext to_client;
  };
  static_assert(sizeof(Entry) == 64);

  // Keys `entry`'s contexts for `tag`, making them if it has none. False
  // (and the entry left unused) if libcrypto fails.
  bool Key(Entry& entry, Source source, const Tag& tag) {
    entry.source = Source::kNone;
    entry.used = 0;
    DatagramKeys keys;
    if (source == Source::kSessionKey) {
      DeriveOnTheStack(tag, keys);  // the tag is the session key
    } else {
      std::memcpy(keys.to_daemon.data(), tag.data(), kDatagramKeySize);
      std::memcpy(keys.to_client.data(), tag.data() + kDatagramKeySize,
                  kDatagramKeySize);
    }
    const bool keyed = KeyContext(entry.to_daemon, keys.to_daemon) &&
                       KeyContext(entry.to_client, keys.to_client);
    OPENSSL_cleanse(&keys, sizeof(keys));
    if (!keyed) return false;
    entry.tag = tag;
    entry.source = source;
    return true;
  }

  // Keys `context` with `key` (for sealing; each use sets the way),
  // making it first if it is null. A context that fails is freed, and made
  // again, from scratch, next time.
  bool KeyContext(CipherContext& context, const DatagramKey& key) {
    const EVP_CIPHER* cipher = nullptr;  // keep the context's: no new fetch
    if (context == nullptr) {
      context.reset(EVP_CIPHER_CTX_new());
      if (context == nullptr) return false;
      cipher = cipher_.get();
    }
    if (EVP_CipherInit_ex(context.get(), cipher, nullptr, key.data(), nullptr,
                          /*enc=*/1) != 1) {
      context.reset();
      return false;
    }
    return true;
  }

  std::unique_ptr<EVP_CIPHER, CipherFree> cipher_;
  std::vector<Entry> entries_;
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
// REQUIRES: `context` keyed (or null: then it fails).
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
// REQUIRES: `context` keyed (or null: then it fails).
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

namespace {

// What both SealDatagram overloads do, with the thread's context for the
// session (`source`, `tag`).
void SealWith(ThreadCiphers::Source source, const ThreadCiphers::Tag& tag,
              Direction direction, uint64_t sequence,
              std::span<uint8_t> datagram) {
  protocol::Writer(datagram.subspan(kSequenceOffset, sizeof(sequence)))
      .U64(sequence);
  std::fill_n(datagram.begin() + kMacOffset, kMacSize, 0);
  const std::span<uint8_t> body = datagram.subspan(kHeaderSize);
  uint8_t mac[kTagSize];
  if (datagram.size() > kMaxDatagramSize ||
      !Seal(Ciphers().For(source, tag, direction), NonceOf(direction, sequence),
            datagram.first(kHeaderSize), body, mac)) {
    std::fill(body.begin(), body.end(), 0);  // the MAC field stays zero
    return;
  }
  std::memcpy(datagram.data() + kMacOffset, mac, kTagSize);
}

// What both OpenDatagram overloads do (see SealWith).
std::optional<uint64_t> OpenWith(ThreadCiphers::Source source,
                                 const ThreadCiphers::Tag& tag,
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
  uint8_t mac[kTagSize];
  std::memcpy(mac, header + kMacOffset, kTagSize);
  std::memset(header + kMacOffset, 0, kMacSize);
  if (!Open(Ciphers().For(source, tag, direction), NonceOf(direction, sequence),
            header, body, mac, out)) {
    std::fill(out.begin(), out.end(), 0);
    return std::nullopt;
  }
  return sequence;
}

ThreadCiphers::Tag TagOf(const DatagramKeys& keys) {
  ThreadCiphers::Tag tag;
  std::memcpy(tag.data(), keys.to_daemon.data(), kDatagramKeySize);
  std::memcpy(tag.data() + kDatagramKeySize, keys.to_client.data(),
              kDatagramKeySize);
  return tag;
}

}  // namespace

void SealDatagram(const DatagramKeys& keys, Direction direction,
                  uint64_t sequence, std::span<uint8_t> datagram) {
  SealWith(ThreadCiphers::Source::kDatagramKeys, TagOf(keys), direction,
           sequence, datagram);
}

void SealDatagram(const SessionKey& session_key, Direction direction,
                  uint64_t sequence, std::span<uint8_t> datagram) {
  SealWith(ThreadCiphers::Source::kSessionKey, session_key, direction, sequence,
           datagram);
}

std::optional<uint64_t> OpenDatagram(const DatagramKeys& keys,
                                     Direction direction,
                                     std::span<const uint8_t> datagram,
                                     std::span<uint8_t> body_out) {
  return OpenWith(ThreadCiphers::Source::kDatagramKeys, TagOf(keys), direction,
                  datagram, body_out);
}

std::optional<uint64_t> OpenDatagram(const SessionKey& session_key,
                                     Direction direction,
                                     std::span<const uint8_t> datagram,
                                     std::span<uint8_t> body_out) {
  return OpenWith(ThreadCiphers::Source::kSessionKey, session_key, direction,
                  datagram, body_out);
}

bool IsUnsealed(std::span<const uint8_t> datagram) {
  const std::span<const uint8_t> mac = datagram.subspan(kMacOffset, kMacSize);
  return std::all_of(mac.begin(), mac.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace pcfs
