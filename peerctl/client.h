// ControlClient: peerctl's side of the UDP control protocol, a thin I/O
// driver around core/client's ClientSession, which knows the protocol (SCRAM
// login, sealing and sequence numbers, the retransmission schedule, which
// reply answers the request in flight, list paging). ControlClient owns the
// socket and the waiting: it sends what the session encodes, polls until
// the session's deadline, and feeds it what arrives. It also logs in again
// by itself when the daemon no longer knows its session (after a daemon
// restart, or an expiry).
//
// It may know several daemons that serve one index (Options::servers,
// peerctl --server A,B,...): it uses the first that answers, and when the
// one it uses stops answering (a request or a heartbeat gets no reply, or
// its port is closed) it moves to the next and logs in again there, as
// FailoverPlan (peerctl/failover.h) decides; a refusal is an answer and
// never moves it. Each move is told to Options::notify in two lines:
// "daemon A:P stopped answering; moving to B:Q", then "logged in on B:Q".
//
// Thread-safety: all methods may be called from any thread; one mutex
// serialises exchanges, so the heartbeat thread and the shell share the one
// socket and the one sequence of sealed datagrams.
#ifndef PCFS_PEERCTL_CLIENT_H_
#define PCFS_PEERCTL_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/auth/scram.h"
#include "core/base/unique_fd.h"
#include "core/client/client_session.h"
#include "core/io/net.h"
#include "core/proto/protocol.h"
#include "peerctl/failover.h"

namespace pcfs {

// Where to download a file from, as the daemon's GET reply says.
// Another holder of the file of a FileLocation (same size and root).
struct HolderLocation {
  std::string holder;
  SocketAddress address;
  std::string ticket;      // MAC'd with this holder's key
  Sha256Digest key_pin{};  // its TLS key; zero: plain HTTP
};

// What GET returns: the holder the daemon chose first, the file's size and
// root, and the other active holders of that content it named.
struct FileLocation {
  std::string holder;
  SocketAddress address;
  uint64_t size = 0;
  Sha256Digest root{};
  std::string ticket;
  Sha256Digest key_pin{};  // the holder's TLS key; zero: plain HTTP
  std::vector<HolderLocation> others;
};

class ControlClient {
 public:
  struct Options {
    std::string host = "localhost";
    uint16_t port = 50000;
    // The daemons, in order of preference; empty: host:port alone. With
    // more than one, an exchange that gets no reply for failover_after
    // counts as the daemon's silence, and the client moves to the next.
    std::vector<DaemonAddress> servers;
    absl::Duration failover_after = absl::Seconds(3);
    // Retransmission: the first wait, doubled after each silent try up to
    // max_timeout: 200+400+800+1000*5 ms, 6.4 s at most, in 8 tries (so
    // that a command outlives a few lost datagrams in a row).
    absl::Duration first_timeout = absl::Milliseconds(200);
    int attempts = 8;
    absl::Duration max_timeout = absl::Seconds(1);
    // When a one-shot command must be over (--timeout): no exchange waits
    // past it (Unavailable, "no reply before the deadline"), and an
    // exchange retransmits, every max_timeout at most, until it (up to 255
    // tries; `attempts` is then not used).
    absl::Time deadline = absl::InfiniteFuture();
    // Told of each change of the session's state, one line each (no
    // newline), from whichever thread saw it. Default: LogWarning.
    std::function<void(absl::string_view)> notify;
    // Called after each login on another daemon than the one before (a
    // move), with the new daemon's name, from whichever thread logged in
    // (the shell prints a notice). Default: nothing.
    std::function<void(absl::string_view)> on_move;
  };

  // Resolves the server and opens a UDP socket connected to it (so that an
  // ICMP "port unreachable" reports a stopped daemon at once).
  // Unavailable: the host does not resolve (with several servers: none
  // does; the first that does is used first).
  static absl::StatusOr<std::unique_ptr<ControlClient>> Connect(
      const Options& options);

  // Logs in; `file_port` is where this peer serves files (0: it serves
  // none). With several servers, tries each in turn, from the current one,
  // until one answers (a refusal is an answer). Errors: Unauthenticated
  // (wrong user or password), AlreadyExists (the user is active
  // elsewhere), InvalidArgument (a malformed name), Unavailable (no answer
  // from the daemon, or from any of them), Cancelled (`cancel` was set
  // while it waited for an answer: looked at every 100 ms).
  absl::Status Login(absl::string_view user, absl::string_view password,
                     uint16_t file_port,
                     const std::atomic<bool>* cancel = nullptr);
  // The pin of this peer's TLS key that every login (and re-login)
  // registers; all zero (the default): the file server speaks plain HTTP.
  void SetKeyPin(const Sha256Digest& pin);
  // Ends the session (a session the daemon no longer knows counts as ended).
  absl::Status Logout();
  // One heartbeat, on the heartbeat path (its own socket and quick
  // retransmissions, 100 ms then every 200 ms, within 1.9 s). Logs in again
  // if the daemon has forgotten the session; when logged out after a
  // refused or unanswered re-login, tries to log in again once the pause
  // has passed. Meant for one thread (calls are serialised).
  absl::Status Heartbeat();
  // How long the heartbeat thread should wait before its next Heartbeat():
  // the daemon's heartbeat interval while logged in, the pause before the
  // next login attempt after a refused one.
  absl::Duration NextHeartbeatIn() const;
  // Ends a Heartbeat() in progress within about 100 ms (Cancelled), and
  // every later one at once: for a Peer about to log out, which joins its
  // heartbeat thread first. Any thread.
  void StopHeartbeats() { heartbeats_stopped_.store(true); }

  absl::StatusOr<std::vector<std::string>> ListActivePeers();
  absl::StatusOr<std::vector<std::string>> ListPublished();
  // The names other active users publish that contain `pattern`, sorted,
  // once each: every SCH page collected, then sorted and de-duplicated (the
  // daemon sends them in its index order, and may repeat a name that was
  // unpublished and published again meanwhile).
  absl::StatusOr<std::vector<std::string>> Search(absl::string_view pattern);
  absl::Status Publish(absl::string_view name, uint64_t size,
                       const Sha256Digest& root);
  // NotFound if this user does not publish `name`.
  absl::Status Unpublish(absl::string_view name);
  // NotFound ("File not found") if no other active user publishes `name`.
  absl::StatusOr<FileLocation> Get(absl::string_view name);
  // The size and root this user publishes `name` with (STAT); NotFound if
  // it does not publish it.
  // `cancel`, if given, ends the request (Cancelled) soon after it becomes
  // true: a background check that must not hold up a logout.
  absl::StatusOr<protocol::StatReply> Stat(
      absl::string_view name, const std::atomic<bool>* cancel = nullptr);

  // The daemon in use, "host:port" (it changes when the client moves).
  std::string server_name() const;
  bool logged_in() const;
  absl::Duration heartbeat_interval() const;
  // The user and the current session key (it changes when the client logs
  // in again), for checking download tickets.
  std::string user() const;
  SessionKey session_key() const;

 private:
  explicit ControlClient(const Options& options);

  // Where a reply datagram lands; the Reply a session returns views it.
  struct ReplyBuffer {
    uint8_t bytes[protocol::kMaxDatagramSize + 1];
  };
  // What the session is, as the notifier was last told.
  enum class State { kLoggedOut, kLoggedIn, kLost, kRefused, kSilent };

  // Sends the request in flight in `session` (started by the caller) on
  // `fd` and waits for its reply, retransmitting as the session schedules,
  // never past options_.deadline. Errors: Unavailable (no reply after
  // every try or by the deadline, or the daemon is not running), Internal
  // (a malformed reply), InvalidArgument (the request does not fit a
  // datagram). REQUIRES: the caller holds the lock guarding `session`.
  // `cancel`, if not null, ends the exchange (Cancelled) soon after it
  // becomes true.
  absl::StatusOr<client::Reply> Exchange(
      int fd, client::ClientSession& session, const client::RequestBody& body,
      ReplyBuffer& buffer, const std::atomic<bool>* cancel = nullptr) const;
  // Sends a `type` session request; logs in first when logged out after a
  // lost session, and again (then retries once) when the daemon answers
  // kUnknownSession. REQUIRES: mu_ held.
  // `cancel` as Exchange's.
  absl::StatusOr<client::Reply> SessionExchange(
      protocol::MessageType type, const client::RequestBody& body,
      ReplyBuffer& buffer, const std::atomic<bool>* cancel = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A session request whose reply is only a result code.
  absl::Status SimpleRequest(protocol::MessageType type,
                             const client::RequestBody& body);
  absl::Status LoginLocked(const std::atomic<bool>* cancel = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Resolves the current daemon of plan_ and connects socket_ to it; on
  // failure socket_ is closed and open_error_ says why (a login there
  // then fails as unanswered). REQUIRES: mu_ held.
  absl::Status OpenCurrentLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The current daemon stopped answering while logged in: ends the
  // session, moves to the next daemon and says so. REQUIRES: mu_ held.
  void MoveOnLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a failed login at the current daemon: asks plan_ for the pause
  // (and, for an unanswered login with several daemons, the move, told as
  // MoveOnLocked tells it). Returns the pause. REQUIRES: mu_ held.
  absl::Duration AfterFailedLoginLocked(const absl::Status& failure)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // SessionExchange with several daemons: an unanswered request moves to
  // the next daemon, logs in there and is sent again, until the deadline
  // (or kFailoverBudget without one). REQUIRES: mu_ held.
  absl::StatusOr<client::Reply> FailoverExchange(
      protocol::MessageType type, const client::RequestBody& body,
      ReplyBuffer& buffer, const std::atomic<bool>* cancel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the notifier `line`, whatever the state.
  void Notify(absl::string_view line) const;
  // Logs in again after session `lost` (0: none) was lost, unless another
  // thread did already. `forgeable`: the loss was told by an unsealed
  // "unknown session", so a refusal because we are still active means the
  // old session lives on (it is restored). `now_or_wait`: false to respect
  // the pause after a refusal. REQUIRES: mu_ held.
  absl::Status ReloginLocked(uint64_t lost, bool forgeable, bool now_or_wait)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes the session's id and key to the heartbeat path and readers.
  void PublishSessionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves to `state`, telling the notifier `line` if the state (or, for
  // kRefused and kSilent, the reason) changed. Lock order: heartbeat_mu_,
  // then mu_, then state_mu_.
  void ChangeState(State state, absl::string_view line);
  absl::StatusOr<std::vector<std::string>> FetchList(protocol::MessageType type,
                                                     absl::string_view pattern);

  const Options options_;
  // options_.deadline, or a moment past it for the LOGOUT of a command that
  // ran out of time (Logout); Unix nanoseconds.
  std::atomic<int64_t> deadline_ns_{options_.deadline == absl::InfiniteFuture()
                                        ? std::numeric_limits<int64_t>::max()
                                        : absl::ToUnixNanos(options_.deadline)};
  absl::Time Deadline() const;
  // Options::servers, or host:port alone.
  const std::vector<DaemonAddress> daemons_;
  const std::shared_ptr<client::SequenceCounter> sequences_;

  mutable absl::Mutex mu_;
  UniqueFd socket_ ABSL_GUARDED_BY(mu_);
  FailoverPlan plan_ ABSL_GUARDED_BY(mu_);
  absl::Status open_error_ ABSL_GUARDED_BY(mu_);
  // Moved since the last login: the next one is told ("logged in on B").
  bool moved_ ABSL_GUARDED_BY(mu_) = false;
  client::ClientSession session_ ABSL_GUARDED_BY(mu_);
  // Kept for logging in again after the daemon forgets the session.
  std::string password_ ABSL_GUARDED_BY(mu_);
  uint16_t file_port_ ABSL_GUARDED_BY(mu_) = 0;
  bool ever_logged_in_ ABSL_GUARDED_BY(mu_) = false;  // Login() succeeded
  bool logged_out_ ABSL_GUARDED_BY(mu_) = false;      // Logout() called
  absl::Time next_login_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  // The heartbeat path.
  mutable absl::Mutex heartbeat_mu_;
  UniqueFd heartbeat_socket_ ABSL_GUARDED_BY(heartbeat_mu_);
  // The daemon_generation_ heartbeat_socket_ is connected for (0: none).
  uint64_t heartbeat_generation_ ABSL_GUARDED_BY(heartbeat_mu_) = 0;
  client::ClientSession heartbeat_session_ ABSL_GUARDED_BY(heartbeat_mu_);
  uint64_t heartbeat_session_id_ ABSL_GUARDED_BY(heartbeat_mu_) = 0;
  std::atomic<bool> heartbeats_stopped_{false};

  // A copy of what the session is, for readers that must not wait for a
  // command (the heartbeat path, the file server checking tickets).
  mutable absl::Mutex state_mu_;
  client::ClientSession::Saved current_ ABSL_GUARDED_BY(state_mu_);
  std::string user_ ABSL_GUARDED_BY(state_mu_);
  // The daemon in use: its name, its resolved address (for the heartbeat
  // socket) and a number that grows with each move.
  std::string server_name_ ABSL_GUARDED_BY(state_mu_);
  SocketAddress daemon_address_ ABSL_GUARDED_BY(state_mu_);
  uint64_t daemon_generation_ ABSL_GUARDED_BY(state_mu_) = 0;
  State state_ ABSL_GUARDED_BY(state_mu_) = State::kLoggedOut;
  std::string state_line_ ABSL_GUARDED_BY(state_mu_);
  absl::Duration pause_ ABSL_GUARDED_BY(state_mu_);  // NextHeartbeatIn when out
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_CLIENT_H_
