// Which AEAD seals control datagrams (core/auth/datagram_auth.h): AES-128-GCM
// and ChaCha20-Poly1305 through OpenSSL EVP, on a 64-byte and a 1 KB body
// with the 44-byte header as associated data, both with a context keyed once
// (only the nonce set per datagram) and with the key set again per datagram
// (a cache slot that meets another key). core/auth/datagram_auth.h gives
// the figures that chose AES-128-GCM; bench/run_all.sh reports this binary
// with the other micro-benchmarks in docs/PERFORMANCE.md.
// BM_SealAndOpenDatagram times what the daemon does to a request and its
// reply: OpenDatagram and SealDatagram under a session key, through the
// thread's cache of keyed ciphers, over as many sessions as the args say.
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/auth/datagram_auth.h"
#include "core/base/big_endian.h"
#include "core/proto/protocol.h"

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
    pcfs::StoreBigEndian(sequence, &nonce[4]);
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

// args: body bytes, sessions (their datagrams in turn, as a reactor meets
// them). One iteration opens a request and seals a reply.
void BM_SealAndOpenDatagram(benchmark::State& state) {
  const auto body_size = static_cast<size_t>(state.range(0));
  const auto sessions = static_cast<size_t>(state.range(1));
  std::vector<pcfs::SessionKey> keys(sessions);
  for (size_t i = 0; i < sessions; ++i) {
    keys[i].fill(static_cast<uint8_t>(i * 7 + 1));
    keys[i][0] = static_cast<uint8_t>(i);
    keys[i][1] = static_cast<uint8_t>(i >> 8);
  }
  std::vector<uint8_t> request(pcfs::protocol::kHeaderSize + body_size, 0x17);
  std::vector<uint8_t> sealed(sessions * request.size());
  for (size_t i = 0; i < sessions; ++i) {
    std::span<uint8_t> one(sealed.data() + i * request.size(), request.size());
    std::copy(request.begin(), request.end(), one.begin());
    pcfs::SealDatagram(keys[i], pcfs::Direction::kToDaemon, i + 1, one);
  }
  std::vector<uint8_t> body(body_size);
  std::vector<uint8_t> reply(request.size(), 0x29);
  size_t i = 0;
  uint64_t sequence = 0;
  for (auto _ : state) {
    const std::span<const uint8_t> datagram(sealed.data() + i * request.size(),
                                            request.size());
    benchmark::DoNotOptimize(pcfs::OpenDatagram(
        keys[i], pcfs::Direction::kToDaemon, datagram, body));
    pcfs::SealDatagram(keys[i], pcfs::Direction::kToClient, ++sequence, reply);
    benchmark::DoNotOptimize(reply.data());
    if (++i == sessions) i = 0;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SealAndOpenDatagram)
    ->ArgNames({"body", "sessions"})
    ->ArgsProduct({{64, 192, 1024}, {1, 1000}});

}  // namespace
