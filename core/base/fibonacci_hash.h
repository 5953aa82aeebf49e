// FibonacciHash: a table index from a 64-bit key by Fibonacci hashing
// (Knuth, TAOCP vol. 3, 6.4): the key times 2^64 / phi, its top bits. Every
// bit of the key moves the result, so keys alike in their low bits (the
// registry's shard in a session id, counters in tests) still spread.
// Pure; constexpr.
#ifndef PCFS_CORE_BASE_FIBONACCI_HASH_H_
#define PCFS_CORE_BASE_FIBONACCI_HASH_H_

#include <cstddef>
#include <cstdint>

namespace pcfs {

// The top `bits` (1 to 63) bits of key * 2^64 / phi.
constexpr size_t FibonacciHash(uint64_t key, int bits) {
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15u) >> (64 - bits));
}

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_FIBONACCI_HASH_H_
