// Unsigned integers in big-endian (network) byte order, read from and
// written to byte buffers: the one place that knows the byte order of the
// wire and of the values we put in tickets and nonces (docs/PROTOCOL.md).
//
//   uint8_t buffer[8];
//   StoreBigEndian(uint64_t{1}, buffer);             // 00 00 00 00 00 00 00 01
//   uint64_t v = LoadBigEndian<uint64_t>(buffer);    // 1
//
// Each is a memcpy and, on a little-endian machine, a byte swap, which the
// compiler makes one load or store and one bswap. The buffer needs no
// alignment; the caller checks its length (see protocol::Reader and
// protocol::Writer for bounds-checked forms).
#ifndef PCFS_CORE_BASE_BIG_ENDIAN_H_
#define PCFS_CORE_BASE_BIG_ENDIAN_H_

#include <bit>
#include <concepts>
#include <cstdint>
#include <cstring>

namespace pcfs {

// `v` with its bytes in the opposite order (C++23 has std::byteswap).
template <std::unsigned_integral T>
constexpr T ByteSwap(T v) {
  if constexpr (sizeof(T) == 1) {
    return v;
  } else if constexpr (sizeof(T) == 2) {
    return __builtin_bswap16(v);
  } else if constexpr (sizeof(T) == 4) {
    return __builtin_bswap32(v);
  } else {
    static_assert(sizeof(T) == 8);
    return __builtin_bswap64(v);
  }
}

// `v` converted between host order and big-endian order (either way).
template <std::unsigned_integral T>
constexpr T HostToBigEndian(T v) {
  static_assert(std::endian::native == std::endian::little ||
                std::endian::native == std::endian::big);
  if constexpr (std::endian::native == std::endian::little) {
    return ByteSwap(v);
  } else {
    return v;
  }
}

// The sizeof(T) bytes at `p`, most significant first.
template <std::unsigned_integral T>
T LoadBigEndian(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return HostToBigEndian(v);
}

// Writes `v` to the sizeof(T) bytes at `p`, most significant first.
template <std::unsigned_integral T>
void StoreBigEndian(T v, uint8_t* p) {
  const T big = HostToBigEndian(v);
  std::memcpy(p, &big, sizeof(big));
}

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_BIG_ENDIAN_H_
