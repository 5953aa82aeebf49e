// ClientSession: the client side of one control-protocol session, sans I/O.
// It makes the datagrams to send and takes the datagrams received; the
// caller owns the socket and the clock and passes the time in. It knows:
//   - the SCRAM-SHA-256 login in two exchanges (LOGIN, LOGIN_FINISH), which
//     yields the session id and key;
//   - sealing: every later request carries the session id and the next
//     sequence number, its body encrypted and its tag in the MAC field
//     (core/auth/datagram_auth.h), and each
//     retransmission is a new datagram to the daemon's replay window (a new
//     sequence number) with the same request id;
//   - the retransmission schedule (RetryPolicy: 200 ms doubling, 5 tries,
//     unless the caller asks otherwise);
//   - which datagram answers the request in flight: a response with its
//     request id and type that opens under the session's key for replies
//     with the sequence number of one of its tries (or a reply the daemon
//     cannot seal: kUnknownSession, kUnsupportedVersion, with an all-zero
//     MAC field). Anything else -- a late reply to an earlier request,
//     a duplicate of a reply already taken, a forgery -- is dropped.
// One request is in flight at a time. Lists are read page by page with
// ListPager (core/client/list_pager.h).
//
// A blocking driver (peerctl's ControlClient) runs, per request:
//   StartRequest(type) (or StartLogin); then until a reply or !can_retry():
//   send EncodeTry(now, body, out); feed each datagram received before
//   deadline() to Receive().
// An event loop (peerload) does the same from its timers and readiness.
//
// Thread-safety: not thread-safe. Its owner serialises every call (peerctl
// under its mutex, peerload on its one event-loop thread). Distinct
// sessions share nothing but a SequenceCounter given to both.
#ifndef PCFS_CORE_CLIENT_CLIENT_SESSION_H_
#define PCFS_CORE_CLIENT_CLIENT_SESSION_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/auth/datagram_auth.h"
#include "core/auth/scram.h"
#include "core/proto/protocol.h"

namespace pcfs::client {

// How a request is retransmitted: try n (from 1) waits first_timeout *
// 2^(n-1), but at most max_timeout, for its reply, and there are `attempts`
// tries in all, at most 255 (the defaults: 200+400+800+1600+3200 ms, 6.2 s
// at most).
struct RetryPolicy {
  absl::Duration first_timeout = absl::Milliseconds(200);
  int attempts = 5;
  absl::Duration max_timeout = absl::InfiniteDuration();

  // How long try `try_number` (1 for the first) waits.
  absl::Duration TimeoutOf(int try_number) const {
    const int doublings = try_number - 1 < 20 ? try_number - 1 : 20;
    return std::min(first_timeout * (int64_t{1} << doublings), max_timeout);
  }
  // How long all the tries wait together.
  absl::Duration TotalWait() const {
    absl::Duration total;
    for (int n = 1; n <= attempts; ++n) total += TimeoutOf(n);
    return total;
  }
};

// The sequence numbers of one client's sealed datagrams, when more than one
// ClientSession seals for the same session (peerctl's heartbeats go out on
// a path of their own, beside a command that may be retransmitting): each
// datagram takes the next number, so no two reuse one, and the daemon's
// replay window, which accepts numbers out of order within its width,
// admits both streams. The counter never goes back, not even when a new
// login starts a new session (its window accepts any first number).
//
// Thread-safe: Take() may be called from any thread.
class SequenceCounter {
 public:
  uint64_t Take() { return next_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> next_{1};
};

// The body of a session request: views into the caller's memory, which
// must stay valid (and unchanged) while the request is in flight, since
// every try encodes it again. Only the member of the request's type is read:
// `list` for LAP, LPF and SCH, `publish` for PUB, `name` for UNP and GET;
// HEARTBEAT and LOGOUT have no body.
struct RequestBody {
  protocol::ListRequest list;
  protocol::PublishRequest publish;
  protocol::NameRequest name;
};

// The reply to the request in flight, as Receive() found it. The views
// point into the datagram passed to Receive() (a login step's reply, or an
// unsealed one) or into the ClientSession's decrypted copy of its body; they
// stay valid until the next Receive() or the session's end, whichever is
// first.
struct Reply {
  protocol::MessageType type = protocol::MessageType::kHeartbeat;
  protocol::ResultCode code = protocol::ResultCode::kOk;
  absl::string_view message;         // when code is not kOk
  std::span<const uint8_t> payload;  // after the code, when kOk
  // Not OK when the datagram answers the request (and is authentic) but
  // its body does not decode; `code` is then meaningless.
  absl::Status malformed;
  int tries = 0;  // how many tries of the request had been sent
};

// Turns a result code into a Status (kOk -> OK), keeping the daemon's
// message: kAuthFailed -> Unauthenticated, kAlreadyActive -> AlreadyExists,
// kNotFound -> NotFound, kInvalidName and kMalformed -> InvalidArgument,
// kRateLimited -> ResourceExhausted, kCursorExpired -> Aborted,
// kUnknownSession and kUnsupportedVersion -> FailedPrecondition, and so on.
absl::Status StatusFromResult(protocol::ResultCode code,
                              absl::string_view message);

class ClientSession {
 public:
  // Request ids count up from `first_request_id` (peerctl and peerload
  // start at a random one, so that a restarted client's ids do not meet
  // the daemon's reply cache of its last run).
  explicit ClientSession(uint32_t first_request_id = 0,
                         RetryPolicy retry = RetryPolicy());
  // The same, sealing with numbers from `sequences`, shared with other
  // sessions (see SequenceCounter) instead of a counter of its own.
  ClientSession(uint32_t first_request_id, RetryPolicy retry,
                std::shared_ptr<SequenceCounter> sequences);
  ~ClientSession();
  ClientSession(ClientSession&&) noexcept;
  ClientSession& operator=(ClientSession&&) noexcept;

  // ---- Login.

  // Forgets any session and request in flight and starts a SCRAM login as
  // `user` with a fresh random nonce: LOGIN is the request in flight.
  // `file_port` is where this peer's file server listens (0: none); the
  // daemon learns it from LOGIN_FINISH. Errors: InvalidArgument (an empty
  // user), Internal (libcrypto).
  absl::Status StartLogin(absl::string_view user, absl::string_view password,
                          uint16_t file_port);
  // Carries the login on with the reply to its LOGIN (LOGIN_FINISH becomes
  // the request in flight) or to its LOGIN_FINISH (the session starts:
  // logged_in()). Errors: the refusal, as StatusFromResult maps it
  // (Unauthenticated, AlreadyExists, ResourceExhausted, ...); Internal (a
  // malformed reply, or one to no login step of this login);
  // PermissionDenied (the daemon failed to prove that it knows the user's
  // verifier: an impostor). After an error the login is over.
  absl::Status ContinueLogin(const Reply& reply);
  // The pin of this peer's TLS key (all zero, the default: it serves plain
  // HTTP), sent in every later LOGIN_FINISH.
  void SetKeyPin(const Sha256Digest& pin) { key_pin_ = pin; }

  // ---- Requests.

  // Makes a `type` request (a session request, not a login step) the one in
  // flight, with the next request id, abandoning any earlier one.
  // FailedPrecondition: not logged in; InvalidArgument: a login step.
  absl::Status StartRequest(protocol::MessageType type);
  // Encodes the next try of the request in flight into `out` and returns
  // its size; the try's timeout starts at `now`. Login steps are the same
  // datagram each try; session requests are sealed, each try with the next
  // sequence number. Returns 0 (and sends nothing) when no request is in
  // flight, every try was sent, or the datagram does not fit `out` or
  // kMaxDatagramSize. Does not allocate.
  size_t EncodeTry(absl::Time now, const RequestBody& body,
                   std::span<uint8_t> out);
  size_t EncodeTry(absl::Time now, std::span<uint8_t> out) {
    return EncodeTry(now, RequestBody(), out);
  }
  // When the last try sent counts as lost.
  absl::Time deadline() const { return deadline_; }
  // Tries sent of the request in flight (0 before the first).
  int tries() const { return tries_; }
  // True if the request in flight may be sent once more.
  bool can_retry() const { return in_flight() && tries_ < retry_.attempts; }
  // Gives up the request in flight (its last try timed out, or the caller
  // moves on); later replies to it are dropped.
  void Abandon() { in_flight_ = false; }
  bool in_flight() const { return in_flight_; }
  protocol::MessageType request_type() const { return type_; }
  const RetryPolicy& retry_policy() const { return retry_; }

  // ---- Replies.

  // Takes a datagram received. Returns the reply to the request in flight,
  // which ends that request, or nullopt if the datagram is not one (see the
  // file comment). Does not allocate unless the reply is malformed.
  std::optional<Reply> Receive(std::span<const uint8_t> datagram);

  // ---- The session.

  // Forgets the session and any login or request in flight (after LOGOUT,
  // or when the daemon no longer knows the session).
  void EndSession();

  // What a session is, so that a client that tried to log in again can go
  // back to the session it had (peerctl does when the "unknown session"
  // that made it log in again turns out to be forged).
  struct Saved {
    uint64_t session_id = 0;
    SessionKey key{};
    DatagramKeys datagram_keys;
    uint64_t next_sequence = 1;
    uint32_t heartbeat_interval_ms = 0;
    uint32_t session_timeout_ms = 0;
  };
  Saved Save() const;
  // Makes `saved` the session again; abandons any login or request. (With
  // a shared SequenceCounter, `saved.next_sequence` is not used.)
  void Restore(const Saved& saved);

  bool logged_in() const { return session_id_ != 0; }
  uint64_t session_id() const { return session_id_; }
  // The session key (it changes with every login), e.g. for checking
  // download tickets.
  const SessionKey& key() const { return key_; }
  // The keys its datagrams are sealed with, derived from key().
  const DatagramKeys& datagram_keys() const { return datagram_keys_; }
  // What the daemon announced in LOGIN_FINISH (defaults before a login).
  absl::Duration heartbeat_interval() const {
    return absl::Milliseconds(heartbeat_interval_ms_);
  }
  absl::Duration session_timeout() const {
    return absl::Milliseconds(session_timeout_ms_);
  }

 private:
  // What a login keeps between its two exchanges.
  struct LoginState;

  bool sealed() const {
    return type_ != protocol::MessageType::kLogin &&
           type_ != protocol::MessageType::kLoginFinish;
  }
  void Begin(protocol::MessageType type);
  size_t EncodeBody(const protocol::Header& header, const RequestBody& body,
                    std::span<uint8_t> out) const;
  absl::Status AcceptServerFirst(std::span<const uint8_t> payload);
  absl::Status AcceptServerFinal(std::span<const uint8_t> payload);

  // The sequence number the next sealed try carries.
  uint64_t TakeSequence() {
    return sequences_ != nullptr ? sequences_->Take() : next_sequence_++;
  }

  RetryPolicy retry_;
  std::shared_ptr<SequenceCounter> sequences_;  // null: next_sequence_
  std::unique_ptr<LoginState> login_;           // null outside a login
  uint64_t session_id_ = 0;
  SessionKey key_{};
  DatagramKeys datagram_keys_;  // derived from key_ at login
  uint64_t next_sequence_ = 1;
  // The request in flight: its tries carry sequence numbers from
  // first_sequence_ to last_sequence_ (others' datagrams may have taken
  // some numbers in between, from a shared counter).
  uint64_t first_sequence_ = 0;
  uint64_t last_sequence_ = 0;
  absl::Time deadline_ = absl::InfinitePast();
  uint32_t next_request_id_;
  Sha256Digest key_pin_{};
  uint32_t request_id_ = 0;
  uint32_t heartbeat_interval_ms_ = 2000;
  uint32_t session_timeout_ms_ = 3000;
  protocol::MessageType type_ = protocol::MessageType::kHeartbeat;
  uint8_t tries_ = 0;
  bool in_flight_ = false;
  // The decrypted body of the last sealed reply taken (Reply's views).
  std::array<uint8_t, protocol::kMaxBodySize> opened_body_{};
};

}  // namespace pcfs::client

#endif  // PCFS_CORE_CLIENT_CLIENT_SESSION_H_
