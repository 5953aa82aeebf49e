// The client side of PING: `peerconnectd ping [HOST:PORT]`, a health check
// that needs no user or password. See docs/PROTOCOL.md for the datagram.
//
// Thread-safety: PingDaemon touches only its arguments and its own socket.
#ifndef PCFS_DAEMON_PING_H_
#define PCFS_DAEMON_PING_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/io/net.h"

namespace pcfs {

struct PingResult {
  SocketAddress answered_by;  // the address that answered
  absl::Duration round_trip;  // of the datagram that was answered
};

// Sends PING datagrams to `host`:`port` (each of its addresses in turn)
// and waits for the matching reply: retransmits after 200 ms, doubling,
// until `timeout` has passed. Errors: InvalidArgument (host does not
// resolve), Unavailable (refused, or no answer within `timeout`; the
// message says which and where).
absl::StatusOr<PingResult> PingDaemon(absl::string_view host, uint16_t port,
                                      absl::Duration timeout);

}  // namespace pcfs

#endif  // PCFS_DAEMON_PING_H_
