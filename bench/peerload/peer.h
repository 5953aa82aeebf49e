// What one simulated peer sends, beside the protocol itself. The protocol
// (SCRAM login, sealing with sequence numbers, the retransmission schedule,
// which reply answers the request in flight) is core/client's
// ClientSession, the one peerctl drives too; this file holds what is
// peerload's own: why a request is sent, how its body comes from the
// catalog, and raw mode.
//
// In raw mode (against udp_echo) a request is a bare 44-byte HEARTBEAT
// header, unsealed, and its echo (the same bytes) is the answer.
//
// Pure functions and plain structs; the driver's event loop owns them.
#ifndef PCFS_BENCH_PEERLOAD_PEER_H_
#define PCFS_BENCH_PEERLOAD_PEER_H_

#include <cstdint>
#include <span>
#include <string>

#include "bench/peerload/catalog.h"
#include "bench/peerload/options.h"
#include "core/client/client_session.h"
#include "core/proto/protocol.h"

namespace pcfs::peerload {

// The file server port a simulated peer announces. Nothing listens there
// (peerload never downloads), but the daemon's GET skips holders that
// announce none (port 0), and GET should find the published names.
inline constexpr uint16_t kAnnouncedFilePort = 9;

// Why a request is sent; decides what its reply does and what it counts as.
enum class Purpose : uint8_t {
  kNone,         // no request in flight
  kLogin,        // LOGIN
  kLoginFinish,  // LOGIN_FINISH
  kHeartbeat,    // the mandatory heartbeat every interval
  kMix,          // a request of the mix
  kPublish,      // a publisher's setup PUB
  kLogout,       // LOGOUT at the end
};

// The request a peer has in flight, kept whole so that each try re-encodes
// the same request. `attempt` and `deadline_ns` mirror the session's
// schedule for the driver's timers (raw mode keeps them itself).
struct PendingRequest {
  Purpose purpose = Purpose::kNone;
  protocol::MessageType type = protocol::MessageType::kHeartbeat;
  RequestKind kind = RequestKind::kHeartbeat;  // for kMix
  uint8_t attempt = 0;                         // tries sent so far
  uint8_t pattern_offset = 0;                  // SCH: the piece of the name
  uint8_t pattern_length = 0;
  uint32_t id = 0;  // raw mode: the echo's request id
  // Catalog index (setup PUB, GET, SCH), or for a mix PUB or UNP the
  // number of the peer's own name (OwnName).
  uint32_t name = 0;
  int64_t first_sent_ns = 0;
  int64_t last_sent_ns = 0;
  int64_t deadline_ns = 0;  // when the current try counts as lost

  bool in_flight() const { return purpose != Purpose::kNone; }
};

// The k-th name of the peer's own that a mix PUB publishes and a mix UNP
// takes back: "<user>-own-<k>.dat".
std::string OwnName(absl::string_view user, uint32_t k);

// True for a mix PUB or UNP (of one of the peer's own names).
bool IsOwnNameRequest(const PendingRequest& request);

// The body of `request`, viewing the catalog's names, or `own_name` for a
// mix PUB or UNP.
client::RequestBody BodyOf(const PendingRequest& request,
                           const Catalog& catalog, absl::string_view own_name);

// Raw mode: the echo request and the check of its echo. The request is as
// long as a heartbeat and sealed like one (AES-128-GCM, under a fixed key of
// the peer's), and its echo is opened again, so that peerload spends on a
// request what it spends on one to the daemon (a seal and an open): in
// --compare-raw the ratio is then the server's, not the load generator's.
size_t EncodeEcho(const PendingRequest& request, uint64_t peer_index,
                  std::span<uint8_t> out);
bool MatchEcho(const PendingRequest& request, uint64_t peer_index,
               std::span<const uint8_t> datagram);

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_PEER_H_
