// Server: peerconnectd assembled. It loads the credentials and the durable
// publications, binds the UDP socket, and runs a reactor whose datagrams go
// to a RequestHandler, whose timer expires sessions, and whose signal handler
// stops (SIGINT, SIGTERM) or reloads the credentials (SIGHUP: the sessions
// of users whose entry changed or is gone end; the others go on). One
// daemon per UDP port: it holds a PortLock while it runs. It tells
// systemd when it is ready and says when it stops, and pets the watchdog
// only while every reactor thread makes progress (ReactorLiveness). With
// --metrics it serves Prometheus metrics over HTTP from a thread of its own.
//
// With --redis it is one daemon of a cluster (daemon/cluster_store.h): it
// starts its ClusterStore, whose stored state and stream of changes feed a
// ClusterReplica (the registry then holds the whole cluster's presence and
// publications), the journal writer commits PUB and UNP to the store
// instead of a PublicationLog (the state folder is unused), and logins are
// claimed in the store (daemon/handlers.h).
//
// Thread-safety: Create() and Run() from one thread; Stop() from any. Run()
// serves on the calling thread plus threads-1 more.
#ifndef PCFS_DAEMON_SERVER_H_
#define PCFS_DAEMON_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/auth/rate_limiter.h"
#include "core/index/registry.h"
#include "core/io/port_lock.h"
#include "core/io/reactor.h"
#include "core/io/send_batch.h"
#include "daemon/cluster_link.h"
#include "daemon/cluster_replica.h"
#include "daemon/handlers.h"
#include "daemon/journal_writer.h"
#include "daemon/liveness.h"
#include "daemon/metrics.h"
#include "daemon/publication_log.h"
#include "daemon/session_table.h"

namespace pcfs {

inline constexpr absl::Duration kDefaultCommitInterval = absl::Milliseconds(2);
inline constexpr absl::Duration kMaxCommitInterval = absl::Seconds(1);

// InvalidArgument, naming the flag, unless `interval` is in
// [0, kMaxCommitInterval] (--commit-interval).
absl::Status CheckCommitInterval(absl::Duration interval);

struct ServerOptions {
  uint16_t port = 50000;  // 0: the kernel picks one (tests)
  std::string bind = "::";
  std::string credentials_path = "credentials.txt";
  std::string state_dir = "peerconnect-state";
  bool verbose = false;
  // "auto" (io_uring where it works, else epoll), "uring" or "epoll".
  std::string io = "auto";
  // Reactor threads, each with its own SO_REUSEPORT socket, handler and
  // expiry wheel (the kernel keeps a peer's datagrams on one of them).
  // 0: one per core.
  int threads = 0;
  // "ADDRESS:PORT" to serve GET /metrics on; empty: no metrics endpoint.
  std::string metrics;
  // Start on damaged state, keeping what verifies (PublicationLog's
  // Options::recover).
  bool recover = false;
  // Cluster mode: the Redis the daemons of the cluster share, "HOST:PORT";
  // empty: standalone. The state folder is then unused (publications live
  // in Redis), and `recover` is refused with it.
  std::string redis;
  // The longest one Redis command may take before it counts as
  // unreachable (ClusterStore::Options::command_timeout).
  absl::Duration redis_timeout = absl::Seconds(1);
  // Cluster mode: a file holding the password the daemon logs in to Redis
  // with (ReadRedisPassword), as `redis_user` (an ACL user) or, when that
  // is empty, as Redis's default user; empty: no AUTH.
  std::string redis_password_file;
  std::string redis_user;
  // The journal writer's group-commit interval (JournalWriter::Options::
  // commit_interval), in both modes; in [0, kMaxCommitInterval].
  absl::Duration commit_interval = kDefaultCommitInterval;
};

// Checks the options that need no file, as the command line gives them:
// the I/O backend's name, the thread count, the bind, metrics and Redis
// addresses, the Redis login flags, the commit interval. InvalidArgument,
// naming the flag; peerconnectd reports it as a usage error (exit 2).
// Server::Create() and CheckConfiguration() check it again. Pure.
absl::Status CheckOptions(const ServerOptions& options);

// Checks what Server::Create() would load, without starting or changing
// anything: the options, the credentials file and the state folder. Returns
// a one-line summary ("N users, M publications"). For
// `peerconnectd check-config`.
absl::StatusOr<std::string> CheckConfiguration(const ServerOptions& options);

// Reads and parses a credentials file.
absl::StatusOr<CredentialTable> LoadCredentials(const std::string& path);

// InvalidArgument, naming the flags, for Redis login flags that do not go
// together: a password file or user without --redis, a user without a
// password file. Reads no file (ReadRedisPassword does).
absl::Status CheckRedisLogin(const ServerOptions& options);

// The Redis password in the text of a --redis-password-file: its one line,
// without the line end (LF or CRLF). InvalidArgument, without quoting the
// text, for an empty password, a second line, a NUL or more than
// kMaxRedisPasswordBytes. Pure.
inline constexpr size_t kMaxRedisPasswordBytes = 4096;
absl::StatusOr<std::string> ParseRedisPassword(absl::string_view text);
// The same read from the file at `path`, the errors naming it.
absl::StatusOr<std::string> ReadRedisPassword(const std::string& path);

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(
      const ServerOptions& options);
  // The same with the cluster link given (tests: a fake), in place of the
  // ClusterStore that options.redis would start. REQUIRES: options.redis
  // not empty; `start_link` starts the link with the listener it is given
  // and calls its on_snapshot before returning, as ClusterStore::Start.
  using LinkStarter =
      absl::AnyInvocable<absl::StatusOr<std::unique_ptr<ClusterLink>>(
          const std::string& daemon_id, ClusterStore::Listener listener)>;
  static absl::StatusOr<std::unique_ptr<Server>> Create(
      const ServerOptions& options, LinkStarter start_link);
  ~Server();

  // Serves until SIGINT/SIGTERM or Stop(). REQUIRES: SIGINT, SIGTERM and
  // SIGHUP are blocked in every thread (BlockSignals in main).
  absl::Status Run();
  void Stop();

  const SocketAddress& address() const { return address_; }
  const DaemonCounters& counters() const { return counters_; }
  // The metrics endpoint's address; only with options.metrics set.
  const SocketAddress* metrics_address() const {
    return metrics_server_ ? &metrics_server_->address() : nullptr;
  }

  // Prometheus text exposition of the daemon's metrics. Any thread.
  std::string RenderMetrics() const;
  // The datagram counters of every reactor, summed. Any thread.
  ReactorStats ReactorTotals() const;

 private:
  // One reactor thread's share of the daemon.
  struct Worker {
    std::unique_ptr<Reactor> reactor;
    std::unique_ptr<RequestHandler> handler;
    // Time from a datagram's arrival at the handler to its reply.
    std::unique_ptr<LatencyHistogram> latency;
    // Deferred PUB/UNP replies: their completions from the journal writer,
    // a duplicate of the worker's socket to send them on (the reactor owns
    // the socket; a plain sendmmsg works under either backend), and the
    // replies of one round of completions, sent together.
    std::unique_ptr<JournalWriter::CompletionQueue> completions;
    UniqueFd reply_socket;
    std::unique_ptr<DatagramSendBatch> deferred_replies;
    // The kernel's count of datagrams it dropped unread on the socket, as
    // last read (ReceiveDrops); the worker's thread only.
    uint32_t receive_drops = 0;
  };

  explicit Server(const ServerOptions& options);
  // Starts the cluster link and the replica it feeds (cluster mode).
  absl::Status StartCluster(LinkStarter start_link);
  void ReloadCredentials();
  // Picks the backend --io asks for, probing io_uring for "auto".
  absl::StatusOr<ReactorBackend> ChooseBackend();
  // Makes worker `index` with its socket bound to `bind` (SO_REUSEPORT).
  absl::Status AddWorker(ReactorBackend backend, const SocketAddress& bind,
                         const RequestHandler::Shared& shared, size_t index);
  // The timer of worker `index`: expiry, its liveness beat and, on worker
  // 0, the watchdog.
  void OnTick(size_t index, bool watchdog);
  // Cluster mode, on worker 0's tick: logs the claims that held since the
  // last tick, and claims again each local session the replica found
  // released in the store (TakeReleasedOwnSessions), so that the other
  // daemons list it again.
  void ReclaimReleasedSessions();
  // A claim of ReclaimReleasedSessions answered (the store's writer
  // thread): the session goes on (claimed again, or held all along), or,
  // refused or not known to be made, it ends here (refused: the user keeps
  // its session on the other daemon).
  void Reclaimed(const UserName& user, uint64_t session_id,
                 const absl::StatusOr<ClusterStore::ClaimResult>& result);
  // Reads the kernel's drop count of worker `index`'s socket; if it grew,
  // the daemon lost datagrams by `now`: records that for the expiry
  // (last_loss_ns_) and the metrics, and says so in the log (at most once
  // every 10 s).
  void NoteReceiveDrops(size_t index, absl::Time now);

  ServerOptions options_;
  Registry registry_;
  SessionTable sessions_;  // the daemon's part of each session in registry_
  std::unique_ptr<CredentialStore> credentials_;
  RateLimiter address_limiter_;
  RateLimiter failure_limiter_;
  RateLimiter login_budget_;
  // Held while the daemon runs, on a port other than 0 (core/io/port_lock.h).
  std::optional<PortLock> port_lock_;
  UsedLoginNonces used_nonces_;
  std::unique_ptr<PublicationLog> log_;  // standalone only
  // Cluster mode only: the replica the store's listener feeds, and the
  // link. The link stops (Server's destructor, Run) before the workers
  // whose completion queues its claims push to go.
  std::unique_ptr<ClusterReplica> replica_;
  std::unique_ptr<ClusterLink> cluster_;
  // Group commit of PUB and UNP into log_ (one thread). Shut down before
  // the workers whose completion queues it feeds go away.
  std::unique_ptr<JournalWriter> journal_;
  DaemonCounters counters_;
  std::vector<Worker> workers_;
  std::string backend_note_;  // which backend runs
  SocketAddress address_;
  std::unique_ptr<ReactorLiveness> liveness_;
  std::unique_ptr<DrainClock> drains_;  // up to when every socket is drained
  bool watchdog_starving_ = false;      // worker 0's thread only
  int silent_ticks_ = 0;                // worker 0's thread only
  // Debugging aid for the watchdog test: this worker's first tick blocks
  // until Stop() ($PCFS_DEBUG_STALL_REACTOR); -1: none. Set by Create().
  int stall_worker_ = -1;
  std::atomic<bool> stopping_{false};
  // Datagrams the kernel dropped unread on the workers' sockets (a full
  // receive buffer), and when a tick last found more (Unix nanoseconds of
  // MonotonicNow; 0: never), and last said so in the log.
  std::atomic<uint64_t> receive_drops_{0};
  std::atomic<int64_t> last_loss_ns_{0};
  std::atomic<int64_t> last_loss_log_ns_{0};
  LatencyHistogram journal_flush_;
  // Cluster mode: ReclaimReleasedSessions's claims that held, and the
  // sessions that ended because theirs did not.
  std::atomic<uint64_t> sessions_reclaimed_{0};
  // How many of those ReclaimReleasedSessions has logged (worker 0's).
  uint64_t reclaims_logged_ = 0;
  std::atomic<uint64_t> sessions_ended_unclaimed_{0};
  std::unique_ptr<MetricsServer> metrics_server_;
};

}  // namespace pcfs

#endif  // PCFS_DAEMON_SERVER_H_
