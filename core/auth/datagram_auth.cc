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
#include "core/auth/aes_gcm.h"
#include "core/auth/hmac_sha256.h"
#include "core/base/fibonacci_hash.h"
#include "core/base/prefetch_hints.h"
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
// GCM's own nonce size: no GHASH of the nonce.
static_assert(AesGcm128::kNonceSize == 12);
static_assert(AesGcm128::kTagSize == kMacSize,
              "the tag replaces the MAC: no growth");
static_assert(AesGcm128::kKeySize == kDatagramKeySize);

using Nonce = AesGcm128::Nonce;

Nonce NonceOf(Direction direction, uint64_t sequence) {
  Nonce nonce;
  protocol::Writer writer(nonce);
  writer.U32(static_cast<uint32_t>(direction));
  writer.U64(sequence);
  return nonce;
}

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

// One thread's AES-128-GCM ciphers: per entry, one keyed with the
// to-daemon key and one with the to-client key of one session, kept so.
// Keying a cipher (the AES key schedule, GHASH's table) costs about as
// much as sealing a small datagram, and a session's datagrams stay on one
// reactor thread (SO_REUSEPORT), so a datagram of a session seen before
// only sets the nonce. An entry is found by what keyed it: a
// session key (the daemon's way: on a miss the two keys are derived from it
// here, so the session table keeps 32 bytes a session, not 64), or the two
// datagram keys themselves (a client's, which derived them once at login).
// Either is 32 bytes that change with every login, so a new key can never
// find a stale entry. A set-associative cache: kSets sets of kWays entries,
// the set chosen by a hash of the first 8 bytes of the 32, the least
// recently used entry of a full set keyed again for new keys, which
// allocates nothing. An entry's ciphers are made on its first use: a
// thread allocates at most 2 * kSets * kWays ciphers in its life (about
// 320 bytes each with AES-NI, GCM's state included; 1,176 through EVP with
// OpenSSL 3.0: 2.6 to 10 MB in all, for a reactor thread with some 4,000
// sessions or more), a client thread a few.
class ThreadCiphers {
 public:
  // 4,096 entries. Eight ways, so that a thread with 1,000 sessions (two
  // a set on average) almost never has more in one set than it holds: with
  // four, about one session in fifty missed on every datagram, each miss
  // costing an HKDF and the keying of two ciphers.
  static constexpr size_t kSets = 512;
  static constexpr size_t kWays = 8;

  // What an entry was keyed from.
  enum class Source : uint8_t { kNone, kSessionKey, kDatagramKeys };
  using Tag = SessionKey;  // or the two datagram keys, end to end
  static_assert(sizeof(DatagramKeys) == sizeof(Tag));

  ThreadCiphers() : entries_(kSets * kWays) {}

  // The cipher keyed with the key of `direction` of the session whose
  // session key (kSessionKey) or datagram keys (kDatagramKeys) `tag` holds,
  // or null if libcrypto fails.
  AesGcm128* For(Source source, const Tag& tag, Direction direction) {
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
    NotePrefetchHint(set, static_cast<size_t>(entry - set + 1) * sizeof(Entry));
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
    return FibonacciHash(bytes, std::countr_zero(kSets));
  }

  // One cache line: the tag, its source, the clock of its last use and
  // the two ciphers.
  struct alignas(64) Entry {
    Tag tag{};
    Source source = Source::kNone;
    uint64_t used = 0;                     // clock_ at its last use; 0: never
    std::unique_ptr<AesGcm128> to_daemon;  // null until the entry's first use
    std::unique_ptr<AesGcm128> to_client;
  };
  static_assert(sizeof(Entry) == 64);

  // Keys `entry`'s ciphers for `tag`, making them if it has none. False
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
    const bool keyed = KeyCipher(entry.to_daemon, keys.to_daemon) &&
                       KeyCipher(entry.to_client, keys.to_client);
    OPENSSL_cleanse(&keys, sizeof(keys));
    if (!keyed) return false;
    entry.tag = tag;
    entry.source = source;
    return true;
  }

  // Keys `cipher` with `key`, making it first if it is null. A cipher that
  // fails is freed, and made again, from scratch, next time.
  static bool KeyCipher(std::unique_ptr<AesGcm128>& cipher,
                        const DatagramKey& key) {
    if (cipher == nullptr) {
      cipher = AesGcm128::Make();
      if (cipher == nullptr) return false;
    }
    if (!cipher->SetKey(key)) {
      cipher.reset();
      return false;
    }
    return true;
  }

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
  AesGcm128::Tag mac;
  AesGcm128* cipher = datagram.size() <= kMaxDatagramSize
                          ? Ciphers().For(source, tag, direction)
                          : nullptr;
  if (cipher == nullptr ||
      !cipher->Seal(NonceOf(direction, sequence), datagram.first(kHeaderSize),
                    body, mac)) {
    std::fill(body.begin(), body.end(), 0);  // the MAC field stays zero
    return;
  }
  std::memcpy(datagram.data() + kMacOffset, mac.data(), mac.size());
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
  AesGcm128::Tag mac;
  std::memcpy(mac.data(), header + kMacOffset, mac.size());
  std::memset(header + kMacOffset, 0, kMacSize);
  AesGcm128* cipher = Ciphers().For(source, tag, direction);
  if (cipher == nullptr ||
      !cipher->Open(NonceOf(direction, sequence), header, body, mac, out)) {
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
