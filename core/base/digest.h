// Sha256Digest: the 32-byte SHA-256 (and HMAC-SHA-256) value that the
// protocol, the credentials, the registry and peerctl's file hashing all
// carry. A value type; safe to copy between threads.
#ifndef PCFS_CORE_BASE_DIGEST_H_
#define PCFS_CORE_BASE_DIGEST_H_

#include <array>
#include <cstddef>
#include <cstdint>

namespace pcfs {

inline constexpr size_t kSha256Size = 32;
using Sha256Digest = std::array<uint8_t, kSha256Size>;

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_DIGEST_H_
