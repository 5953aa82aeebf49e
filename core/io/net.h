// Socket addresses and socket set-up: the small layer of POSIX networking
// that the reactor, the daemon and peerctl share. Below the reactor line.
// All functions are thread-safe.
#ifndef PCFS_CORE_IO_NET_H_
#define PCFS_CORE_IO_NET_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/endpoint.h"
#include "core/base/unique_fd.h"

namespace pcfs {

// An IPv4 or IPv6 socket address. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d, as a dual-stack socket reports IPv4 peers) are treated as
// the IPv4 address they carry by ToEndpoint() and ToString().
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const {
    return reinterpret_cast<const sockaddr*>(&storage);
  }
  sockaddr* get_mutable() { return reinterpret_cast<sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;

  // "127.0.0.1:50000" or "[::1]:50000".
  std::string ToString() const;
  // Plain bytes for the registry (IPv4-mapped addresses become family 4).
  Endpoint ToEndpoint() const;
  // `v6_socket`: for sending on an IPv6 (dual-stack) socket, which reaches
  // an IPv4 endpoint at its IPv4-mapped address, ::ffff:a.b.c.d.
  static SocketAddress FromEndpoint(const Endpoint& endpoint,
                                    bool v6_socket = false);

  // Parses a numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "[::1]").
  static absl::StatusOr<SocketAddress> FromNumeric(absl::string_view host,
                                                   uint16_t port);
};

// Resolves `host` (a name or a numeric address) for UDP/TCP use, returning
// every address, IPv6 and IPv4, in getaddrinfo's order.
absl::StatusOr<std::vector<SocketAddress>> Resolve(absl::string_view host,
                                                   uint16_t port);

// Parses "HOST:PORT", "[V6]:PORT" or just "PORT" (host then "localhost").
absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(
    absl::string_view text);

// Parses a port number 1..65535.
absl::StatusOr<uint16_t> ParsePort(absl::string_view text);

struct UdpSocketOptions {
  bool reuse_port = false;  // SO_REUSEPORT, for one socket per reactor
  bool non_blocking = true;
  // SO_RCVBUFFORCE if > 0 and the process may (CAP_NET_ADMIN), else
  // SO_RCVBUF, which the kernel caps at net.core.rmem_max.
  int receive_buffer_bytes = 0;
  int send_buffer_bytes = 0;  // SO_SNDBUF if > 0
};

// A close-on-exec UDP socket bound to `bind`, with SetDontFragment. An IPv6
// wildcard ("::") is made dual-stack (IPV6_V6ONLY off) so it also serves
// IPv4.
absl::StatusOr<UniqueFd> OpenUdpSocket(const SocketAddress& bind,
                                       const UdpSocketOptions& options);

// A close-on-exec, blocking UDP socket connected to `to`, with
// SetDontFragment: only `to`'s datagrams arrive, and a closed port shows up
// as ECONNREFUSED rather than as silence. peerctl's and --ping's sockets.
absl::StatusOr<UniqueFd> OpenConnectedUdpSocket(const SocketAddress& to);

// Our datagrams are never IP-fragmented (docs/PROTOCOL.md, "Size"): sets
// IP_MTU_DISCOVER to IP_PMTUDISC_PROBE on the UDP socket `fd` (and, on an
// IPv6 socket, IPV6_MTU_DISCOVER to IPV6_PMTUDISC_PROBE as well as the
// IPv4 option for its IPv4-mapped traffic). Every IPv4 datagram then
// carries Don't Fragment; a router whose link is too small for it drops it
// rather than cutting it into fragments, and the kernel never fragments
// one itself, nor shrinks what it sends to a path MTU an ICMP message
// claims. A datagram larger than the interface's MTU fails to send
// (EMSGSIZE). With DF set the kernel also skips the hashed IP ID it draws
// for every unconnected datagram that may be fragmented.
absl::Status SetDontFragment(int fd, int family);

// A listening TCP socket bound to `bind` (port 0: the kernel picks one),
// with SO_REUSEADDR, close-on-exec and blocking (accept() waits; a caller
// that polls it sets O_NONBLOCK itself). "::" is dual-stack as above.
absl::StatusOr<UniqueFd> OpenTcpListener(const SocketAddress& bind,
                                         int backlog);

// The address a socket is bound to (getsockname).
absl::StatusOr<SocketAddress> LocalAddress(int fd);

// How many datagrams the kernel has dropped for the socket `fd` (mostly for
// a full receive buffer) since it was made: SO_MEMINFO's SK_MEMINFO_DROPS.
// The kernel keeps 32 bits, so it wraps: compare two readings by their
// uint32_t difference.
absl::StatusOr<uint32_t> ReceiveDrops(int fd);

}  // namespace pcfs

#endif  // PCFS_CORE_IO_NET_H_
