// Agent: `peerctl serve`, the background process that holds a user's
// session. It logs in, heartbeats (the Peer's heartbeat thread), serves the
// share folder (the Peer's file server), logs in again by itself whenever
// the session is lost (backoff with jitter, one log line per change of
// state, never giving up), and runs the user's commands for `peerctl`
// processes that connect to its unix socket (peerctl/control.h).
//
// The socket is created with mode 0600 in a folder of mode 0700, and every
// connection's peer credentials (SO_PEERCRED) are checked: only the agent's
// own uid is served; anyone else gets an error line and the connection is
// closed. Each connection has a thread of its own, at most
// Options::max_clients at once (more are refused with an error line).
//
// Thread-safety: Start() and Stop() are called by one owning thread; the
// agent's own threads (accept, supervisor, one per client) share only the
// Peer (thread-safe) and the client list (guarded by clients_mu_).
#ifndef PCFS_PEERCTL_AGENT_H_
#define PCFS_PEERCTL_AGENT_H_

#include <atomic>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "peerctl/control.h"
#include "peerctl/file_hash.h"
#include "peerctl/peer.h"

namespace pcfs {

struct AgentOptions {
  PeerOptions peer;  // serve_files is forced on
  std::string user;
  std::string password;
  std::string socket_path;
  int max_clients = 64;
  // First-login backoff: the first wait, doubled after each failure up to
  // the cap; each wait is jittered by +-25% so that many agents do not
  // return to a restarted daemon in step. (Once logged in, the session's
  // ControlClient logs in again by itself, with its own backoff.)
  absl::Duration first_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(8);
};

class Agent {
 public:
  // Creates the peer (and its file server) and listens on the socket; the
  // login happens on the supervisor thread, so a daemon that is down at
  // start does not stop the agent. AlreadyExists if another agent answers
  // on the socket; InvalidArgument for a path that is too long or not a
  // socket; the errno of the failing call otherwise.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(AgentOptions options);
  // Stop()s if not yet stopped.
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Stops accepting and re-logging in, waits for the commands in progress,
  // removes the socket file it made (if it is still there) and logs out.
  // Returns the logout's status.
  absl::Status Stop();

 private:
  struct Client {
    UniqueFd fd;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  explicit Agent(AgentOptions options);
  void SuperviseSession();
  void AcceptLoop();
  void ServeClient(Client* client);
  // Runs one request of the client on `client_fd` and returns its reply
  // lines (a get stops if that client goes away meanwhile).
  std::string Handle(const control::Request& request, int client_fd);
  // Joins the threads of clients that have gone (all of them if `all`).
  void ReapClients(bool all);
  // Waits `wait` or until Stop(); false once stopping.
  bool SleepUnlessStopping(absl::Duration wait);

  const AgentOptions options_;
  std::unique_ptr<Peer> peer_;
  UniqueFd listener_;
  // The socket file Start made (none if it failed before): Stop removes
  // it only while it is still that file.
  std::optional<FileIdentity> socket_file_;
  UniqueFd stop_event_;  // an eventfd, readable once stopping
  std::thread accept_thread_;
  std::thread supervisor_;
  bool stopped_ = false;  // the owning thread's

  // Plain std primitives: Debian's abseil is not TSan-instrumented.
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  // The last login failure, for the error a command gets meanwhile.
  std::mutex state_mu_;
  std::string login_problem_;  // guarded by state_mu_

  std::mutex clients_mu_;
  std::list<Client> clients_;  // guarded by clients_mu_
};

// `peerctl serve`: starts the agent, waits for SIGTERM or SIGINT, stops it.
// Returns the process exit code (0 after a clean stop).
int RunAgent(AgentOptions options);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_AGENT_H_
