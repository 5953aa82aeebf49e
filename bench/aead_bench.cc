// Which AEAD seals control datagrams (core/auth/datagram_auth.h): AES-128-GCM
// and ChaCha20-Poly1305 through OpenSSL EVP, on a 64-byte and a 1 KB body
// with the 44-byte header as associated data, both with a context keyed once
// (only the nonce set per datagram) and with the key set again per datagram
// (a cache slot that meets another key). core/auth/datagram_auth.h gives
// the figures that chose AES-128-GCM; bench/run_all.sh reports this binary
// with the other micro-benchmarks in docs/PERFORMANCE.md.
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"

namespace {

constexpr size_t kHeader = 44;

const EVP_CIPHER* CipherOf(int which) {
  return which == 0 ? EVP_aes_128_gcm() : EVP_chacha20_poly1305();
}

// args: cipher (0 AES-128-GCM, 1 ChaCha20-Poly1305), body bytes, rekey (0/1).
void BM_AeadSeal(benchmark::State& state) {
  const EVP_CIPHER* cipher = CipherOf(static_cast<int>(state.range(0)));
  const auto body_size = static_cast<size_t>(state.range(1));
  const bool rekey = state.range(2) != 0;
  std::array<uint8_t, 32> key{};
  key.fill(0x42);
  std::vector<uint8_t> datagram(kHeader + body_size, 0x17);
  std::array<uint8_t, 12> nonce{};
  std::array<uint8_t, 16> tag{};
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, cipher, nullptr, key.data(), nonce.data());
  uint64_t sequence = 0;
  for (auto _ : state) {
    ++sequence;
    for (int i = 0; i < 8; ++i) {
      nonce[4 + i] = static_cast<uint8_t>(sequence >> (56 - 8 * i));
    }
    EVP_EncryptInit_ex(ctx, nullptr, nullptr, rekey ? key.data() : nullptr,
                       nonce.data());
    int n = 0;
    EVP_EncryptUpdate(ctx, nullptr, &n, datagram.data(), kHeader);
    EVP_EncryptUpdate(ctx, datagram.data() + kHeader, &n,
                      datagram.data() + kHeader, static_cast<int>(body_size));
    EVP_EncryptFinal_ex(ctx, datagram.data(), &n);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag.data());
    benchmark::DoNotOptimize(tag);
  }
  EVP_CIPHER_CTX_free(ctx);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body_size));
}
BENCHMARK(BM_AeadSeal)
    ->ArgNames({"chacha", "body", "rekey"})
    ->ArgsProduct({{0, 1}, {64, 1024}, {0, 1}});

}  // namespace
