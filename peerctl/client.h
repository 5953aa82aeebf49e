// ControlClient: peerctl's side of the UDP control protocol, a thin I/O
// driver around core/client's ClientSession, which knows the protocol (SCRAM
// login, sealing and sequence numbers, the retransmission schedule, which
// reply answers the request in flight, list paging). ControlClient owns the
// socket and the waiting: it sends what the session encodes, polls until
// the session's deadline, and feeds it what arrives. It also logs in again
// by itself when the daemon no longer knows its session (after a daemon
// restart, or an expiry).
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
#include "core/auth/scram.h"
#include "core/base/unique_fd.h"
#include "core/client/client_session.h"
#include "core/io/net.h"
#include "core/proto/protocol.h"

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

  // Where a reply datagram lands; the Reply a session returns views it.
  struct ReplyBuffer {
    uint8_t bytes[protocol::kMaxDatagramSize + 1];
  };

  // Sends the request in flight in session_ (started by the caller) and
  // waits for its reply, retransmitting as the session schedules. Errors:
  // Unavailable (no reply after every try, or the daemon is not running),
  // Internal (a malformed reply), InvalidArgument (the request does not fit
  // a datagram). REQUIRES: mu_ held.
  absl::StatusOr<client::Reply> Exchange(const client::RequestBody& body,
                                         ReplyBuffer& buffer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends a `type` session request; logs in again and retries once when
  // the daemon answers kUnknownSession. REQUIRES: mu_ held.
  absl::StatusOr<client::Reply> SessionExchange(protocol::MessageType type,
                                                const client::RequestBody& body,
                                                ReplyBuffer& buffer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A session request whose reply is only a result code.
  absl::Status SimpleRequest(protocol::MessageType type,
                             const client::RequestBody& body);
  absl::Status LoginLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<std::string>> FetchList(protocol::MessageType type,
                                                     absl::string_view pattern);

  const Options options_;
  const std::string server_name_;
  mutable absl::Mutex mu_;
  UniqueFd socket_ ABSL_GUARDED_BY(mu_);
  client::ClientSession session_ ABSL_GUARDED_BY(mu_);
  // Kept for logging in again after the daemon forgets the session.
  std::string user_ ABSL_GUARDED_BY(mu_);
  std::string password_ ABSL_GUARDED_BY(mu_);
  uint16_t file_port_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_CLIENT_H_
