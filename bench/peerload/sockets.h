// The operating-system set-up peerload needs: enough file descriptors for
// one socket per simulated peer, CPU pinning, and the peer sockets
// themselves (connected UDP, non-blocking, each with its own source port).
//
// Thread-safety: plain functions; they change process-wide settings
// (RLIMIT_NOFILE, the CPU affinity), so call them from main only.
#ifndef PCFS_BENCH_PEERLOAD_SOCKETS_H_
#define PCFS_BENCH_PEERLOAD_SOCKETS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"

namespace pcfs::peerload {

// Raises RLIMIT_NOFILE to at least `descriptors` (the hard limit too, if
// the process may). Errors: ResourceExhausted saying the limit and how to
// raise it.
absl::Status RaiseFileLimit(uint64_t descriptors);

// Parses a CPU list "2" or "0,1". Errors: InvalidArgument.
absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text);
// The CPUs the calling process may run on now, as a list "0,1".
absl::StatusOr<std::string> CurrentCpuList();
// Pins the calling process to `cpus` (sched_setaffinity).
absl::Status PinToCpus(const std::vector<int>& cpus);

// Resolves "host" for UDP, preferring an IPv4 address when the name has
// both (so that the peers can spread over loopback source addresses).
// Errors: Unavailable naming the host.
absl::StatusOr<SocketAddress> ResolveServer(absl::string_view host,
                                            uint16_t port);

// True for 127.0.0.0/8 (plain or IPv4-mapped).
bool IsIpv4Loopback(const SocketAddress& address);

// The loopback source address of peer `index` when peers are spread
// `per_source` to an address: 127.1.0.1, 127.1.0.2, ... (last octet
// 1..250). REQUIRES: per_source >= 1.
SocketAddress SpreadSourceAddress(uint64_t index, int per_source);

// A non-blocking, close-on-exec UDP socket connected to `server`, bound
// first to `source` when it is given (port 0: the kernel picks one).
absl::StatusOr<UniqueFd> OpenPeerSocket(const SocketAddress& server,
                                        const SocketAddress* source);

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_SOCKETS_H_
