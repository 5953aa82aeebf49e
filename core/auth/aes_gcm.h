// AesGcm128: AES-128-GCM (NIST SP 800-38D) with a 12-byte nonce and a
// 16-byte tag, keyed once and then used for many short messages: the cipher
// behind every sealed datagram (core/auth/datagram_auth.h).
//
// Two implementations, the same bytes (aes_gcm_test checks them against
// each other and against the NIST vectors):
//   kAesNi  AES with the CPU's AES-NI instructions and GHASH with its
//           carry-less multiply (PCLMULQDQ), the GCM mode around them
//           written here: the whole cipher is the round keys and GHASH's
//           key and powers, 304 bytes in the object, which every datagram
//           of a session reads (libcrypto's CRYPTO_gcm128_* kept another 440
//           bytes of state in another allocation). Built on x86 only, and
//           chosen where the CPU has AES-NI, PCLMULQDQ and SSSE3.
//   kEvp    OpenSSL's EVP interface. On OpenSSL 3 every message goes through
//           the provider's parameter lookups (strcmp by name), which for a
//           64-byte datagram cost more than the cipher itself
//           (bench/aead_bench.cc: BM_SealAndOpenDatagram). The fallback for
//           other CPUs.
// Both run in constant time with respect to the key and the data (AES-NI
// and PCLMULQDQ have no tables; the tag is compared with CRYPTO_memcmp).
//
// Pure (libcrypto only; no I/O). An object is not thread-safe; distinct
// objects may be used from any threads at once.
#ifndef PCFS_CORE_AUTH_AES_GCM_H_
#define PCFS_CORE_AUTH_AES_GCM_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace pcfs {

class AesGcm128 {
 public:
  static constexpr size_t kKeySize = 16;
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;
  using Key = std::array<uint8_t, kKeySize>;
  using Nonce = std::array<uint8_t, kNonceSize>;
  using Tag = std::array<uint8_t, kTagSize>;

  enum class Implementation { kAesNi, kEvp };

  // kAesNi where this CPU runs it, else kEvp.
  static Implementation Fastest();
  // True if this CPU runs `implementation`.
  static bool Supported(Implementation implementation);

  // An unkeyed cipher (SetKey before use), or null if libcrypto cannot make
  // one or the CPU does not run `implementation`. Allocates.
  static std::unique_ptr<AesGcm128> Make(
      Implementation implementation = Fastest());

  virtual ~AesGcm128() = default;
  AesGcm128(const AesGcm128&) = delete;
  AesGcm128& operator=(const AesGcm128&) = delete;

  // Keys the cipher. Does not allocate. False if libcrypto fails; the
  // object must then be keyed again before use.
  virtual bool SetKey(const Key& key) = 0;

  // Encrypts `body` in place and writes the tag of `aad` and the
  // ciphertext. False if libcrypto fails (the body is then undefined).
  virtual bool Seal(const Nonce& nonce, std::span<const uint8_t> aad,
                    std::span<uint8_t> body, Tag& tag) = 0;

  // Checks `tag` and decrypts `body` into `out` (the same memory or apart
  // from it, never overlapping otherwise). False if the tag does not
  // match: `out` then may hold unauthenticated bytes (kEvp decrypts as it
  // goes; kAesNi checks first and leaves `out` alone), which the caller
  // wipes.
  // REQUIRES: out.size() >= body.size().
  virtual bool Open(const Nonce& nonce, std::span<const uint8_t> aad,
                    std::span<const uint8_t> body, const Tag& tag,
                    std::span<uint8_t> out) = 0;

  virtual Implementation implementation() const = 0;

 protected:
  AesGcm128() = default;
};

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_AES_GCM_H_
