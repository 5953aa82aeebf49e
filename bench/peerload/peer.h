// Peer: the protocol side of one simulated peer, without sockets or clock.
// It does what peerctl's ControlClient (peerctl/client.cc) does, request by
// request instead of blocking: SCRAM login in two exchanges, then every
// datagram sealed with the session key and the next sequence number (a
// retransmission is a new datagram with the same request id), and a reply
// accepted only if it answers the request in flight (request id and type)
// and carries the session's MAC, except an unsealed kUnknownSession.
//
// In raw mode (against udp_echo) a request is a bare 44-byte HEARTBEAT
// header, unsealed, and its echo (the same bytes) is the answer.
//
// Not thread-safe: owned by peerload's single event loop.
#ifndef PCFS_BENCH_PEERLOAD_PEER_H_
#define PCFS_BENCH_PEERLOAD_PEER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "bench/peerload/catalog.h"
#include "bench/peerload/options.h"
#include "core/proto/protocol.h"
#include "core/auth/scram.h"

namespace pcfs::peerload {

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
// the same request.
struct PendingRequest {
  Purpose purpose = Purpose::kNone;
  protocol::MessageType type = protocol::MessageType::kHeartbeat;
  RequestKind kind = RequestKind::kHeartbeat;  // for kMix
  uint8_t attempt = 0;                         // tries sent so far
  uint8_t pattern_offset = 0;                  // SCH: the piece of the name
  uint8_t pattern_length = 0;
  uint32_t id = 0;
  uint32_t name = 0;  // catalog index: PUB, GET, SCH
  int64_t first_sent_ns = 0;
  int64_t last_sent_ns = 0;
  int64_t deadline_ns = 0;  // when the current try counts as lost

  bool in_flight() const { return purpose != Purpose::kNone; }
};

// What a datagram turned out to be for the request in flight.
struct MatchedReply {
  protocol::ResultCode code = protocol::ResultCode::kOk;
  std::span<const uint8_t> payload;  // after the code, when kOk
  bool malformed = false;  // it answers the request but does not decode
};

class Peer {
 public:
  Peer();
  ~Peer();
  Peer(Peer&&) noexcept;
  Peer& operator=(Peer&&) noexcept;

  bool logged_in() const { return session_id_ != 0; }
  uint32_t heartbeat_interval_ms() const { return heartbeat_interval_ms_; }
  uint32_t session_timeout_ms() const { return session_timeout_ms_; }

  // Request ids count up from a random start, as peerctl's do.
  void SeedRequestIds(uint32_t first) { next_request_id_ = first; }
  uint32_t NextRequestId() { return next_request_id_++; }

  // Forgets the session and starts a SCRAM login; the next request to send
  // is LOGIN. Errors: InvalidArgument (empty user), Internal (libcrypto).
  absl::Status StartLogin(absl::string_view user, absl::string_view password);
  // LOGIN's payload (after kOk): computes client-final (one PBKDF2).
  // Errors: those of ScramClient::HandleServerFirst and the decoder.
  absl::Status AcceptLoginReply(std::span<const uint8_t> payload);
  // LOGIN_FINISH's payload (after kOk): checks the daemon's signature and
  // starts the session. Errors: PermissionDenied (the daemon failed to prove
  // its identity), those of the decoder.
  absl::Status AcceptLoginFinishReply(std::span<const uint8_t> payload);
  // Forgets the session (after LOGOUT, or an expiry).
  void EndSession();

  // Encodes the next try of `request` into `out` (kMaxDatagramSize bytes):
  // the same datagram again for LOGIN and LOGIN_FINISH, a newly sealed one
  // with the next sequence number for the others. Returns the size, 0 if it
  // does not fit (a bug) or a login step is asked for out of order.
  size_t EncodeTry(const PendingRequest& request, const Catalog& catalog,
                   std::span<uint8_t> out);
  // The answer to `request` in `datagram`, or nullopt if it is not one
  // (a late reply to an earlier request, a bad MAC, garbage).
  std::optional<MatchedReply> Match(const PendingRequest& request,
                                    std::span<const uint8_t> datagram) const;

  // Raw mode: the echo request and the check of its echo.
  static size_t EncodeEcho(const PendingRequest& request, uint64_t peer_index,
                           std::span<uint8_t> out);
  static bool MatchEcho(const PendingRequest& request,
                        std::span<const uint8_t> datagram);

 private:
  // What a login keeps between its two exchanges.
  struct LoginState;

  size_t EncodeSessionBody(const PendingRequest& request,
                           const Catalog& catalog,
                           const protocol::Header& header,
                           std::span<uint8_t> out) const;

  std::unique_ptr<LoginState> login_;
  uint64_t session_id_ = 0;
  uint64_t next_sequence_ = 1;
  SessionKey key_{};
  uint32_t next_request_id_ = 0;
  uint32_t heartbeat_interval_ms_ = 2000;
  uint32_t session_timeout_ms_ = 3000;
};

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_PEER_H_
