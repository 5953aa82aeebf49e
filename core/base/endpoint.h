// Endpoint: an IPv4 or IPv6 address and a port as plain bytes, the one
// address type shared by the pure modules (registry, tickets) and the socket
// layer (core/io/net.h converts it to and from sockaddr). A value type: no
// shared state, safe to copy between threads.
#ifndef PCFS_CORE_BASE_ENDPOINT_H_
#define PCFS_CORE_BASE_ENDPOINT_H_

#include <array>
#include <cstdint>

namespace pcfs {

struct Endpoint {
  uint8_t family = 4;            // 4 or 6
  std::array<uint8_t, 16> ip{};  // IPv4 in the first 4 bytes
  uint16_t port = 0;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_ENDPOINT_H_
