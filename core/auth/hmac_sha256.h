// IncrementalHmacSha256: HMAC-SHA-256 (RFC 2104) fed piece by piece, with
// every state on the stack, so that a MAC on the request path costs no heap
// allocation. OpenSSL 3.0's EVP digest and MAC contexts allocate on every
// (re)initialisation and copy (measured: one allocation per
// EVP_DigestInit_ex2, five per EVP_MAC init/update/final), so this is built
// on libcrypto's SHA-256 block functions instead (see hmac_sha256.cc).
//
// Pure (libcrypto only). An object is not thread-safe; make one per MAC, on
// the stack. Distinct objects may be used from any threads at once.
#ifndef PCFS_CORE_AUTH_HMAC_SHA256_H_
#define PCFS_CORE_AUTH_HMAC_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/strings/string_view.h"
#include "core/base/digest.h"

namespace pcfs {

// The keyed states of HMAC-SHA-256 under one key: SHA-256's chaining
// values after the block (key ^ ipad) and after (key ^ opad), 64 bytes. A
// MAC started from them (IncrementalHmacSha256(const HmacSha256Key&)) skips
// the two block functions that keying costs, which is most of a short
// message's MAC: for a key used again and again (a holder's ticket key),
// keep one of these instead of the key.
//
// A value like the key it is made from: copyable, and not wiped on
// destruction (wipe it as its key would be, if at all).
class HmacSha256Key {
 public:
  // All zeros: the states of no key, a placeholder to assign one to.
  HmacSha256Key() = default;
  // `key` of any length, as IncrementalHmacSha256 takes it.
  explicit HmacSha256Key(std::span<const uint8_t> key);

  friend bool operator==(const HmacSha256Key&, const HmacSha256Key&) = default;

 private:
  friend class IncrementalHmacSha256;
  std::array<uint32_t, 8> inner_{};  // after (key ^ ipad)
  std::array<uint32_t, 8> outer_{};  // after (key ^ opad)
};

class IncrementalHmacSha256 {
 public:
  using Digest = Sha256Digest;

  // Starts a MAC under `key` (any length; keys longer than a block are
  // hashed first, as RFC 2104 says).
  explicit IncrementalHmacSha256(std::span<const uint8_t> key);
  explicit IncrementalHmacSha256(absl::string_view key);
  // Starts a MAC under the key `key` was made from, without keying again.
  explicit IncrementalHmacSha256(const HmacSha256Key& key);
  // Wipes the keyed states.
  ~IncrementalHmacSha256();
  IncrementalHmacSha256(const IncrementalHmacSha256&) = delete;
  IncrementalHmacSha256& operator=(const IncrementalHmacSha256&) = delete;

  // Feeds the next bytes of the message.
  void Update(std::span<const uint8_t> bytes);
  void Update(absl::string_view bytes);

  // The MAC of everything fed so far. Call once; the object is spent after.
  Digest Finish();

 private:
  // Room for a SHA256_CTX (checked in the .cc), so that this header does
  // not expose libcrypto's deprecated block API to its includers.
  struct alignas(8) Sha256State {
    unsigned char bytes[112];
  };
  Sha256State inner_;  // SHA-256 of (key ^ ipad) || message so far
  Sha256State outer_;  // SHA-256 of (key ^ opad), finished by Finish()
};

// HKDF-SHA-256 (RFC 5869) with an empty salt, expanding one block per
// key: the constructor extracts, each Expand() writes T(1) for its `info`.
// HMACs on the stack, so no allocation and no failure, so that the request
// path may derive keys (the datagram keys on a cipher cache miss, a ticket
// key per GET). Equal to OpenSSL's EVP_KDF "HKDF" with the same inputs
// (hmac_sha256_test). Not thread-safe; make one per derivation.
class HkdfSha256 {
 public:
  explicit HkdfSha256(std::span<const uint8_t> input_key);
  ~HkdfSha256();  // wipes the pseudorandom key
  HkdfSha256(const HkdfSha256&) = delete;
  HkdfSha256& operator=(const HkdfSha256&) = delete;

  // REQUIRES: out.size() <= kSha256Size.
  void Expand(absl::string_view info, std::span<uint8_t> out) const;

 private:
  Sha256Digest prk_;
};

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_HMAC_SHA256_H_
