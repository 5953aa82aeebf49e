#include "core/auth/aes_gcm.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/modes.h>
#include <openssl/params.h>

#include <cstring>

#include "core/base/prefetch_hints.h"

// The AES-NI implementation exists on x86 only; elsewhere kAesNi is never
// Supported() and every cipher is EVP's.
#if defined(__x86_64__) || defined(__i386__)
#define PCFS_AES_NI_BUILT 1
#include <emmintrin.h>  // SSE2
#include <wmmintrin.h>  // AES-NI
#else
#define PCFS_AES_NI_BUILT 0
#endif

namespace pcfs {
namespace {

#if PCFS_AES_NI_BUILT
// ---- kAesNi: AES-128 with AES-NI, GCM from libcrypto's modes ----

#define PCFS_AESNI __attribute__((target("aes,sse2")))

// The 11 round keys of AES-128 (FIPS 197, 5.2), 16-byte aligned.
struct alignas(16) RoundKeys {
  __m128i k[11];
};

// One step of the key schedule; `assist` is aeskeygenassist of the previous
// round key with this round's constant.
PCFS_AESNI inline __m128i ExpandStep(__m128i key, __m128i assist) {
  assist = _mm_shuffle_epi32(assist, 0xff);
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  return _mm_xor_si128(key, assist);
}

PCFS_AESNI void ExpandKey(const uint8_t* key, RoundKeys& out) {
  __m128i* k = out.k;
  k[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  // The round constant must be an immediate, hence one line a round.
  k[1] = ExpandStep(k[0], _mm_aeskeygenassist_si128(k[0], 0x01));
  k[2] = ExpandStep(k[1], _mm_aeskeygenassist_si128(k[1], 0x02));
  k[3] = ExpandStep(k[2], _mm_aeskeygenassist_si128(k[2], 0x04));
  k[4] = ExpandStep(k[3], _mm_aeskeygenassist_si128(k[3], 0x08));
  k[5] = ExpandStep(k[4], _mm_aeskeygenassist_si128(k[4], 0x10));
  k[6] = ExpandStep(k[5], _mm_aeskeygenassist_si128(k[5], 0x20));
  k[7] = ExpandStep(k[6], _mm_aeskeygenassist_si128(k[6], 0x40));
  k[8] = ExpandStep(k[7], _mm_aeskeygenassist_si128(k[7], 0x80));
  k[9] = ExpandStep(k[8], _mm_aeskeygenassist_si128(k[8], 0x1b));
  k[10] = ExpandStep(k[9], _mm_aeskeygenassist_si128(k[9], 0x36));
}

PCFS_AESNI inline __m128i EncryptBlock(__m128i block, const RoundKeys& keys) {
  block = _mm_xor_si128(block, keys.k[0]);
  for (int round = 1; round < 10; ++round) {
    block = _mm_aesenc_si128(block, keys.k[round]);
  }
  return _mm_aesenclast_si128(block, keys.k[10]);
}

// libcrypto's block128_f: one block under the round keys `key` points to.
PCFS_AESNI void EncryptOne(const unsigned char in[16], unsigned char out[16],
                           const void* key) {
  const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   EncryptBlock(block, *static_cast<const RoundKeys*>(key)));
}

// libcrypto's ctr128_f: `blocks` blocks of CTR mode from the counter block
// `ivec`, whose last four bytes count big-endian (mod 2^32), XORed into
// `in` to give `out` (which may be `in`). Four blocks at a time, so that
// their rounds overlap in the AES unit.
PCFS_AESNI void Ctr32(const unsigned char* in, unsigned char* out,
                      size_t blocks, const void* key,
                      const unsigned char ivec[16]) {
  const RoundKeys& keys = *static_cast<const RoundKeys*>(key);
  int32_t words[3];
  std::memcpy(words, ivec, sizeof(words));
  uint32_t counter_be;
  std::memcpy(&counter_be, ivec + 12, sizeof(counter_be));
  uint32_t counter = __builtin_bswap32(counter_be);
  const auto block_of = [&](uint32_t n) {
    return _mm_set_epi32(static_cast<int32_t>(__builtin_bswap32(n)), words[2],
                         words[1], words[0]);
  };
  const auto xor_into = [&](__m128i stream, size_t i) {
    const __m128i data =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 16 * i));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * i),
                     _mm_xor_si128(data, stream));
  };
  size_t i = 0;
  for (; i + 4 <= blocks; i += 4, counter += 4) {
    __m128i b0 = _mm_xor_si128(block_of(counter), keys.k[0]);
    __m128i b1 = _mm_xor_si128(block_of(counter + 1), keys.k[0]);
    __m128i b2 = _mm_xor_si128(block_of(counter + 2), keys.k[0]);
    __m128i b3 = _mm_xor_si128(block_of(counter + 3), keys.k[0]);
    for (int round = 1; round < 10; ++round) {
      b0 = _mm_aesenc_si128(b0, keys.k[round]);
      b1 = _mm_aesenc_si128(b1, keys.k[round]);
      b2 = _mm_aesenc_si128(b2, keys.k[round]);
      b3 = _mm_aesenc_si128(b3, keys.k[round]);
    }
    xor_into(_mm_aesenclast_si128(b0, keys.k[10]), i);
    xor_into(_mm_aesenclast_si128(b1, keys.k[10]), i + 1);
    xor_into(_mm_aesenclast_si128(b2, keys.k[10]), i + 2);
    xor_into(_mm_aesenclast_si128(b3, keys.k[10]), i + 3);
  }
  for (; i < blocks; ++i, ++counter) {
    xor_into(EncryptBlock(block_of(counter), keys), i);
  }
}

#undef PCFS_AESNI

class AesNiGcm final : public AesGcm128 {
 public:
  // Null if libcrypto cannot allocate the GCM state.
  static std::unique_ptr<AesGcm128> Make() {
    std::unique_ptr<AesNiGcm> cipher(new AesNiGcm());
    // Keyed with the all-zero key until SetKey: a GCM state always has a
    // key, so it is never used half made.
    cipher->gcm_ = CRYPTO_gcm128_new(&cipher->keys_, EncryptOne);
    if (cipher->gcm_ == nullptr) return nullptr;
    return cipher;
  }

  ~AesNiGcm() override {
    if (gcm_ != nullptr) CRYPTO_gcm128_release(gcm_);  // wipes it too
    OPENSSL_cleanse(&keys_, sizeof(keys_));
  }

  bool SetKey(const Key& key) override {
    ExpandKey(key.data(), keys_);
    // GHASH's key H = E(K, 0) and its tables, for the CPU's GHASH.
    CRYPTO_gcm128_init(gcm_, &keys_, EncryptOne);
    return true;
  }

  bool Seal(const Nonce& nonce, std::span<const uint8_t> aad,
            std::span<uint8_t> body, Tag& tag) override {
    NoteForPrefetch();
    CRYPTO_gcm128_setiv(gcm_, nonce.data(), nonce.size());
    if (CRYPTO_gcm128_aad(gcm_, aad.data(), aad.size()) != 0) return false;
    if (!body.empty() &&
        CRYPTO_gcm128_encrypt_ctr32(gcm_, body.data(), body.data(), body.size(),
                                    Ctr32) != 0) {
      return false;
    }
    CRYPTO_gcm128_tag(gcm_, tag.data(), tag.size());
    return true;
  }

  bool Open(const Nonce& nonce, std::span<const uint8_t> aad,
            std::span<const uint8_t> body, const Tag& tag,
            std::span<uint8_t> out) override {
    NoteForPrefetch();
    CRYPTO_gcm128_setiv(gcm_, nonce.data(), nonce.size());
    if (CRYPTO_gcm128_aad(gcm_, aad.data(), aad.size()) != 0) return false;
    if (!body.empty() &&
        CRYPTO_gcm128_decrypt_ctr32(gcm_, body.data(), out.data(), body.size(),
                                    Ctr32) != 0) {
      return false;
    }
    // 0 if the tags match, compared in constant time.
    return CRYPTO_gcm128_finish(gcm_, tag.data(), tag.size()) == 0;
  }

  Implementation implementation() const override {
    return Implementation::kAesNi;
  }

 private:
  // libcrypto's GCM state is opaque; OpenSSL 3.0's struct gcm128_context
  // is 440 bytes on x86-64 (six blocks, the 16-entry table of H's powers,
  // two function pointers, counts, the block function and its key, and a
  // 48-byte buffer). A hint need not be exact: it only sets what to
  // prefetch.
  static constexpr size_t kGcmStateBytes = 440;

  void NoteForPrefetch() const {
    NotePrefetchHint(this, sizeof(*this));
    NotePrefetchHint(gcm_, kGcmStateBytes);
  }

  AesNiGcm() = default;

  RoundKeys keys_{};
  GCM128_CONTEXT* gcm_ = nullptr;  // points at keys_
};

#endif  // PCFS_AES_NI_BUILT

// ---- kEvp: OpenSSL's EVP interface ----

class EvpGcm final : public AesGcm128 {
 public:
  static std::unique_ptr<AesGcm128> Make() {
    std::unique_ptr<EvpGcm> cipher(new EvpGcm());
    cipher->cipher_ = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    cipher->context_ = EVP_CIPHER_CTX_new();
    if (cipher->cipher_ == nullptr || cipher->context_ == nullptr) {
      return nullptr;
    }
    return cipher;
  }

  ~EvpGcm() override {
    EVP_CIPHER_CTX_free(context_);
    EVP_CIPHER_free(cipher_);
  }

  bool SetKey(const Key& key) override {
    // Keyed for sealing; each use sets the way (GCM uses the same key
    // schedule both ways).
    return EVP_CipherInit_ex(context_, cipher_, nullptr, key.data(), nullptr,
                             /*enc=*/1) == 1;
  }

  bool Seal(const Nonce& nonce, std::span<const uint8_t> aad,
            std::span<uint8_t> body, Tag& tag) override {
    int n = 0;
    if (EVP_EncryptInit_ex(context_, nullptr, nullptr, nullptr, nonce.data()) !=
            1 ||
        EVP_EncryptUpdate(context_, nullptr, &n, aad.data(),
                          static_cast<int>(aad.size())) != 1) {
      return false;
    }
    if (!body.empty() &&
        (EVP_EncryptUpdate(context_, body.data(), &n, body.data(),
                           static_cast<int>(body.size())) != 1 ||
         static_cast<size_t>(n) != body.size())) {
      return false;
    }
    // The tag through the parameter itself, not EVP_CIPHER_CTX_ctrl, which
    // in OpenSSL 3 builds the same parameter after a switch over every
    // control (measured: a tenth of a small datagram's sealing).
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG,
                                          tag.data(), tag.size()),
        OSSL_PARAM_construct_end()};
    return EVP_EncryptFinal_ex(context_, body.data() + body.size(), &n) == 1 &&
           n == 0 && EVP_CIPHER_CTX_get_params(context_, params) == 1;
  }

  bool Open(const Nonce& nonce, std::span<const uint8_t> aad,
            std::span<const uint8_t> body, const Tag& tag,
            std::span<uint8_t> out) override {
    int n = 0;
    // The expected tag goes with the nonce, in one call (see Seal).
    Tag expected = tag;  // OSSL_PARAM points at non-const bytes
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG,
                                          expected.data(), expected.size()),
        OSSL_PARAM_construct_end()};
    if (EVP_DecryptInit_ex2(context_, nullptr, nullptr, nonce.data(), params) !=
            1 ||
        EVP_DecryptUpdate(context_, nullptr, &n, aad.data(),
                          static_cast<int>(aad.size())) != 1) {
      return false;
    }
    if (!body.empty() &&
        (EVP_DecryptUpdate(context_, out.data(), &n, body.data(),
                           static_cast<int>(body.size())) != 1 ||
         static_cast<size_t>(n) != body.size())) {
      return false;
    }
    return EVP_DecryptFinal_ex(context_, out.data() + body.size(), &n) == 1;
  }

  Implementation implementation() const override {
    return Implementation::kEvp;
  }

 private:
  EvpGcm() = default;

  EVP_CIPHER* cipher_ = nullptr;
  EVP_CIPHER_CTX* context_ = nullptr;
};

}  // namespace

bool AesGcm128::Supported(Implementation implementation) {
  if (implementation == Implementation::kEvp) return true;
    // PCLMULQDQ too, so that libcrypto's GHASH is the carry-less multiply,
    // not its table (which is not constant time).
#if PCFS_AES_NI_BUILT
  static const bool aes_ni =
      __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
  return aes_ni;
#else
  return false;
#endif
}

AesGcm128::Implementation AesGcm128::Fastest() {
  return Supported(Implementation::kAesNi) ? Implementation::kAesNi
                                           : Implementation::kEvp;
}

std::unique_ptr<AesGcm128> AesGcm128::Make(Implementation implementation) {
  if (!Supported(implementation)) return nullptr;
#if PCFS_AES_NI_BUILT
  if (implementation == Implementation::kAesNi) return AesNiGcm::Make();
#endif
  return EvpGcm::Make();
}

}  // namespace pcfs
