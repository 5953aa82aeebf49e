// ControlClient: peerctl's side of the UDP control protocol. It logs in with
// SCRAM-SHA-256 (the password never leaves the process), seals every later
// datagram with the session key and a fresh sequence number, sends each
// request with retransmission (same request id, 200 ms doubling), checks the
// MAC of every reply, reads lists page by page, and logs in again by itself
// when the daemon no longer knows its session (after a daemon restart, or an
// expiry).
//
// Thread-safety: all methods may be called from any thread; one mutex
// serialises exchanges, so the heartbeat thread and the shell share the one
// socket and the one sequence of sealed datagrams.
#ifndef PCFS_PEERCTL_CLIENT_H_
#define PCFS_PEERCTL_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/io/net.h"
#include "core/proto/protocol.h"
#include "core/auth/scram.h"
#include "core/base/unique_fd.h"

namespace pcfs {

// Where to download a file from, as the daemon's GET reply says.
struct FileLocation {
  std::string holder;
  SocketAddress address;
  uint64_t size = 0;
  Sha256Digest sha256{};
  std::string ticket;
};

class ControlClient {
 public:
  struct Options {
    std::string host = "localhost";
    uint16_t port = 50000;
    // Retransmission: the first wait, doubled after each silent try.
    absl::Duration first_timeout = absl::Milliseconds(200);
    int attempts = 5;  // 200+400+800+1600+3200 ms: 6.2 s at most
  };

  // Resolves the server and opens a UDP socket connected to it (so that an
  // ICMP "port unreachable" reports a stopped daemon at once).
  // Unavailable: the host does not resolve.
  static absl::StatusOr<std::unique_ptr<ControlClient>> Connect(
      const Options& options);

  // Logs in; `file_port` is where this peer serves files (0: it serves
  // none). Errors: Unauthenticated (wrong user or password),
  // AlreadyExists (the user is active elsewhere), InvalidArgument (a
  // malformed name), Unavailable (no answer from the daemon).
  absl::Status Login(absl::string_view user, absl::string_view password,
                     uint16_t file_port);
  // Ends the session (a session the daemon no longer knows counts as ended).
  absl::Status Logout();
  // One heartbeat; logs in again if the daemon has forgotten the session.
  absl::Status Heartbeat();

  absl::StatusOr<std::vector<std::string>> ListActivePeers();
  absl::StatusOr<std::vector<std::string>> ListPublished();
  // The names other active users publish that contain `pattern`, sorted,
  // once each: every SCH page collected, then sorted and de-duplicated (the
  // daemon sends them in its index order, and may repeat a name that was
  // unpublished and published again meanwhile).
  absl::StatusOr<std::vector<std::string>> Search(absl::string_view pattern);
  absl::Status Publish(absl::string_view name, uint64_t size,
                       const Sha256Digest& sha256);
  // NotFound if this user does not publish `name`.
  absl::Status Unpublish(absl::string_view name);
  // NotFound ("File not found") if no other active user publishes `name`.
  absl::StatusOr<FileLocation> Get(absl::string_view name);

  const std::string& server_name() const { return server_name_; }
  bool logged_in() const;
  absl::Duration heartbeat_interval() const;
  // The user and the current session key (it changes when the client logs
  // in again), for checking download tickets.
  std::string user() const;
  SessionKey session_key() const;

 private:
  ControlClient(const Options& options, UniqueFd socket,
                std::string server_name);

  // A reply datagram and its decoded status.
  struct Reply {
    uint8_t buffer[protocol::kMaxDatagramSize + 1];
    size_t size = 0;
    protocol::ReplyStatus status;
  };

  // Sends the datagram built by `encode` (given the header to use) and
  // waits for its reply, retransmitting. Session requests (all but LOGIN
  // and LOGIN_FINISH) are sealed, each try with a new sequence number, and
  // their replies must verify. REQUIRES: mu_ held.
  template <typename Encode>
  absl::Status Exchange(protocol::MessageType type, Encode encode,
                        Reply& reply) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Like Exchange, but logs in again and retries once when the daemon
  // answers kUnknownSession. REQUIRES: mu_ held.
  template <typename Encode>
  absl::Status SessionExchange(protocol::MessageType type, Encode encode,
                               Reply& reply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoginLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<std::string>> FetchList(
      protocol::MessageType type, absl::string_view pattern);

  const Options options_;
  const std::string server_name_;
  mutable absl::Mutex mu_;
  UniqueFd socket_ ABSL_GUARDED_BY(mu_);
  uint32_t next_request_id_ ABSL_GUARDED_BY(mu_);
  uint64_t session_id_ ABSL_GUARDED_BY(mu_) = 0;
  SessionKey key_ ABSL_GUARDED_BY(mu_){};
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(2);
  // Kept for logging in again after the daemon forgets the session.
  std::string user_ ABSL_GUARDED_BY(mu_);
  std::string password_ ABSL_GUARDED_BY(mu_);
  uint16_t file_port_ ABSL_GUARDED_BY(mu_) = 0;
};

// Turns a reply's result code into a Status (kOk -> OK), keeping the
// daemon's message.
absl::Status StatusFromResult(const protocol::ReplyStatus& status);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_CLIENT_H_
