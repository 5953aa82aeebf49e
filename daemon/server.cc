#include "daemon/server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/base/clock.h"
#include "core/base/file_util.h"
#include "core/base/log.h"
#include "core/base/thread_name.h"
#include "core/io/net.h"

namespace pcfs {

absl::StatusOr<CredentialTable> LoadCredentials(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<CredentialTable> table = CredentialTable::Parse(*text);
  if (!table.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", table.status().message()));
  }
  return table;
}

absl::StatusOr<std::string> ParseRedisPassword(absl::string_view text) {
  if (text.size() > kMaxRedisPasswordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("longer than ", kMaxRedisPasswordBytes,
                     " bytes; it must hold only the Redis password"));
  }
  absl::string_view password = text;
  if (absl::EndsWith(password, "\n")) password.remove_suffix(1);
  if (absl::EndsWith(password, "\r")) password.remove_suffix(1);
  if (password.empty()) {
    return absl::InvalidArgumentError(
        "empty; it must hold the Redis password on its one line");
  }
  if (password.find_first_of(absl::string_view("\r\n\0", 3)) !=
      absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "holds more than one line (or a NUL); it must hold only the Redis "
        "password, on one line");
  }
  return std::string(password);
}

absl::StatusOr<std::string> ReadRedisPassword(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(
        text.status().code(),
        absl::StrCat("--redis-password-file: ", text.status().message()));
  }
  absl::StatusOr<std::string> password = ParseRedisPassword(*text);
  if (!password.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--redis-password-file: ", path, " is ", password.status().message()));
  }
  return password;
}

absl::Status CheckRedisLogin(const ServerOptions& options) {
  if (options.redis.empty() && !options.redis_password_file.empty()) {
    return absl::InvalidArgumentError(
        "--redis-password-file has no use without --redis");
  }
  if (options.redis.empty() && !options.redis_user.empty()) {
    return absl::InvalidArgumentError(
        "--redis-user has no use without --redis");
  }
  if (!options.redis_user.empty() && options.redis_password_file.empty()) {
    return absl::InvalidArgumentError(
        "--redis-user needs --redis-password-file (the user's password)");
  }
  return absl::OkStatus();
}

absl::Status CheckCommitInterval(absl::Duration interval) {
  if (interval < absl::ZeroDuration() || interval > kMaxCommitInterval) {
    return absl::InvalidArgumentError(
        absl::StrCat("--commit-interval must be in [0, ",
                     absl::FormatDuration(kMaxCommitInterval), "]"));
  }
  return absl::OkStatus();
}

namespace {

// Login limits (docs/SECURITY.md, "Login limits"). Every login from one
// address (an IPv6 /64), charged at its LOGIN (and a LOGIN_FINISH that was
// not started here): generous, since scripts run many one-shot commands
// and a NAT hides many users.
RateLimiter::Options AddressLimits() {
  RateLimiter::Options o;
  o.burst = 200;                      // 200 logins at once
  o.refill = absl::Milliseconds(20);  // 50 logins a second sustained
  return o;
}
// Failed logins of one user from one address: a guesser there is slowed to
// 10 a minute, and nobody else is affected.
RateLimiter::Options FailureLimits() {
  RateLimiter::Options o;
  o.burst = 10;
  o.refill = absl::Seconds(6);  // 10 a minute sustained
  return o;
}
// The proof checks of the whole daemon (one bucket): what a flood from
// many addresses could make it spend, a few microseconds of CPU each, kept
// to a small part of one core.
RateLimiter::Options LoginBudget() {
  RateLimiter::Options o;
  o.burst = 5000;
  o.refill = absl::Microseconds(200);  // 5,000 a second sustained
  o.max_keys = 1;
  return o;
}

#ifndef PCFS_VERSION
#define PCFS_VERSION "unknown"
#endif

// A daemon id for the cluster: 16 random hex digits, new at every start
// (the sessions of a daemon that restarts are those of a new daemon; its
// old id's liveness lapses and its claims are freed).
absl::StatusOr<std::string> NewDaemonId() {
  uint8_t bytes[8];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("RAND_bytes failed for the daemon id");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

// The Redis password's file, readable by any user of the machine, is
// worth a warning (the daemon's own group may read it: root:peerconnect
// 0640 under the Debian package).
void WarnIfOthersRead(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) == 0 && (info.st_mode & S_IROTH) != 0) {
    LogWarning("peerconnectd: ", path,
               " (the Redis password) is readable by every user of this "
               "machine; chmod o-r it");
  }
}

}  // namespace

absl::Status CheckOptions(const ServerOptions& options) {
  if (options.io != "auto" && options.io != "uring" && options.io != "epoll") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--io must be auto, uring or epoll, not '", options.io, "'"));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError("--threads must be 0 or more");
  }
  if (absl::StatusOr<SocketAddress> bind =
          SocketAddress::FromNumeric(options.bind, options.port);
      !bind.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bind: ", bind.status().message()));
  }
  if (!options.metrics.empty()) {
    if (absl::StatusOr<SocketAddress> metrics =
            ParseMetricsAddress(options.metrics);
        !metrics.ok()) {
      return metrics.status();
    }
  }
  if (!options.redis.empty()) {
    if (options.redis.find(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--redis: '", options.redis,
                       "' is not HOST:PORT (e.g. 127.0.0.1:6379)"));
    }
    if (absl::StatusOr<std::pair<std::string, uint16_t>> redis =
            ParseHostPort(options.redis);
        !redis.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--redis: ", redis.status().message()));
    }
    if (options.recover) {
      return absl::InvalidArgumentError(
          "--recover repairs the state folder, which --redis does not use "
          "(publications live in Redis)");
    }
  }
  if (options.redis_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--redis-timeout must be > 0");
  }
  if (absl::Status s = CheckRedisLogin(options); !s.ok()) return s;
  return CheckCommitInterval(options.commit_interval);
}

absl::StatusOr<std::string> CheckConfiguration(const ServerOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<CredentialTable> table =
      LoadCredentials(options.credentials_path);
  if (!table.ok()) return table.status();
  if (!options.redis.empty()) {
    std::string login;
    if (!options.redis_password_file.empty()) {
      absl::StatusOr<std::string> password =
          ReadRedisPassword(options.redis_password_file);
      if (!password.ok()) return password.status();
      login = absl::StrCat(
          ", logging in as ",
          options.redis_user.empty() ? "the default user" : options.redis_user,
          " with the password in ", options.redis_password_file);
    }
    // The store is checked by starting: a check must not register a
    // daemon in it.
    return absl::StrCat(table->size(), " users in ", options.credentials_path,
                        "; publications in Redis at ", options.redis, login,
                        " (not checked; the state folder is unused)");
  }
  absl::StatusOr<size_t> publications =
      PublicationLog::Check(options.state_dir);
  if (!publications.ok()) return publications.status();
  return absl::StrCat(table->size(), " users in ", options.credentials_path,
                      ", ", *publications, " publications in ",
                      options.state_dir);
}

Server::Server(const ServerOptions& options)
    : options_(options),
      address_limiter_(AddressLimits()),
      failure_limiter_(FailureLimits()),
      login_budget_(LoginBudget()) {}
Server::~Server() {
  // The writer's thread pushes to the workers' completion queues, and so do
  // the store's claims; the writer commits to the store.
  if (journal_ != nullptr) journal_->Shutdown();
  if (cluster_ != nullptr) cluster_->Stop();
}

absl::Status Server::StartCluster(LinkStarter start_link) {
  absl::StatusOr<std::string> daemon_id = NewDaemonId();
  if (!daemon_id.ok()) return daemon_id.status();
  // The replica exists before the link starts: the link delivers the
  // stored state to it before returning.
  replica_ = std::make_unique<ClusterReplica>(&registry_, *daemon_id,
                                              [] { return MonotonicNow(); });
  ClusterReplica* replica = replica_.get();
  ClusterStore::Listener listener;
  listener.on_snapshot = [replica](const ClusterSnapshot& snapshot) {
    replica->ApplySnapshot(snapshot);
  };
  listener.on_event = [replica](const ClusterEvent& event) {
    replica->ApplyEvent(event);
  };
  // The store logs each change of its link itself (docs/OPERATIONS.md,
  // "Cluster mode"): no on_link.
  absl::StatusOr<std::unique_ptr<ClusterLink>> link =
      start_link(*daemon_id, std::move(listener));
  if (!link.ok()) return link.status();
  cluster_ = *std::move(link);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(
    const ServerOptions& options) {
  if (options.redis.empty()) return Create(options, nullptr);
  // Read here, before the start, so that a bad file is refused in its own
  // words (the other options are checked by the Create below).
  ClusterStore::Options store;
  store.address = options.redis;
  store.command_timeout = options.redis_timeout;
  if (!options.redis_password_file.empty()) {
    absl::StatusOr<std::string> password =
        ReadRedisPassword(options.redis_password_file);
    if (!password.ok()) return password.status();
    WarnIfOthersRead(options.redis_password_file);
    store.user = options.redis_user;
    store.password = *std::move(password);
  }
  return Create(options, [store = std::move(store)](
                             const std::string& daemon_id,
                             ClusterStore::Listener listener) mutable {
    store.daemon_id = daemon_id;
    return StartClusterStoreLink(std::move(store), std::move(listener));
  });
}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(
    const ServerOptions& options, LinkStarter start_link) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  std::unique_ptr<Server> server(new Server(options));
  absl::StatusOr<CredentialTable> table =
      LoadCredentials(options.credentials_path);
  if (!table.ok()) return table.status();
  const size_t users = table->size();
  absl::StatusOr<std::unique_ptr<CredentialStore>> store =
      CredentialStore::Create(*std::move(table));
  if (!store.ok()) return store.status();
  server->credentials_ = *std::move(store);

  JournalWriter::Options writer_options;
  writer_options.commit_interval = options.commit_interval;
  if (options.redis.empty()) {
    PublicationLog::Options log_options;
    log_options.recover = options.recover;
    absl::StatusOr<std::unique_ptr<PublicationLog>> log =
        PublicationLog::Open(options.state_dir, server->registry_, log_options);
    if (!log.ok()) return log.status();
    server->log_ = *std::move(log);
    server->log_->set_flush_latency(&server->journal_flush_);
    server->journal_ = std::make_unique<JournalWriter>(
        server->log_.get(), &server->registry_, writer_options);
  } else {
    // A daemon of a cluster does not start without its store.
    if (absl::Status s = server->StartCluster(std::move(start_link)); !s.ok()) {
      return absl::Status(
          s.code(),
          absl::StrCat("cluster store at ", options.redis, ": ", s.message()));
    }
    ClusterLink* link = server->cluster_.get();
    LatencyHistogram* flush = &server->journal_flush_;
    server->journal_ = std::make_unique<JournalWriter>(
        [link, flush](std::span<const PublicationChange> batch) {
          const absl::Time start = MonotonicNow();
          absl::Status s = link->CommitPublications(batch);
          flush->Observe(static_cast<uint64_t>(
              absl::ToInt64Nanoseconds(MonotonicNow() - start)));
          return s;
        },
        &server->registry_, writer_options);
  }

  RequestHandler::Shared shared;
  shared.registry = &server->registry_;
  shared.sessions = &server->sessions_;
  shared.credentials = server->credentials_.get();
  shared.log = server->log_.get();
  shared.journal = server->journal_.get();
  shared.counters = &server->counters_;
  shared.address_limiter = &server->address_limiter_;
  shared.failure_limiter = &server->failure_limiter_;
  shared.login_budget = &server->login_budget_;
  shared.used_nonces = &server->used_nonces_;
  shared.cluster = server->cluster_.get();
  shared.replica = server->replica_.get();
  if (RAND_bytes(shared.login_secret.data(),
                 static_cast<int>(shared.login_secret.size())) != 1) {
    return absl::InternalError("RAND_bytes failed for the login secret");
  }

  absl::StatusOr<ReactorBackend> backend = server->ChooseBackend();
  if (!backend.ok()) return backend.status();
  absl::StatusOr<SocketAddress> bind =
      SocketAddress::FromNumeric(options.bind, options.port);
  if (!bind.ok()) return bind.status();
  // One daemon per port, before any socket of ours binds it (port 0 is a
  // new port each time: no lock).
  if (options.port != 0) {
    absl::StatusOr<PortLock> lock = PortLock::Acquire(*bind);
    if (!lock.ok()) return lock.status();
    server->port_lock_.emplace(*std::move(lock));
  }
  const int threads =
      options.threads > 0
          ? options.threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  server->liveness_ =
      std::make_unique<ReactorLiveness>(static_cast<size_t>(threads));
  server->drains_ = std::make_unique<DrainClock>(static_cast<size_t>(threads));
  if (const char* stall = std::getenv("PCFS_DEBUG_STALL_REACTOR");
      stall != nullptr && !absl::SimpleAtoi(stall, &server->stall_worker_)) {
    server->stall_worker_ = -1;
  }
  for (int i = 0; i < threads; ++i) {
    // Every socket after the first binds the port the first one got.
    SocketAddress at = i == 0 ? *bind : server->address_;
    if (absl::Status s =
            server->AddWorker(*backend, at, shared, static_cast<size_t>(i));
        !s.ok()) {
      return s;
    }
  }
  if (!options.metrics.empty()) {
    Server* raw = server.get();
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(options.metrics,
                             [raw] { return raw->RenderMetrics(); });
    if (!metrics.ok()) return metrics.status();
    server->metrics_server_ = *std::move(metrics);
    Log("metrics at http://", server->metrics_server_->address().ToString(),
        "/metrics");
  }
  Log("peerconnectd listening on ", server->address_.ToString(), " (UDP, ",
      server->backend_note_, ", ", threads,
      threads == 1 ? " thread" : " threads", "), ", users, " users, ",
      server->log_ != nullptr
          ? absl::StrCat(server->log_->loaded(), " publications loaded from ",
                         options.state_dir)
          : absl::StrCat(server->registry_.publication_count(),
                         " publications in the cluster store at ",
                         options.redis, " (daemon ",
                         server->cluster_->daemon_id(), ")"));
  return server;
}

absl::StatusOr<ReactorBackend> Server::ChooseBackend() {
  if (options_.io == "epoll") {
    backend_note_ = "epoll";
    return ReactorBackend::kEpoll;
  }
  if (options_.io != "uring" && options_.io != "auto") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--io must be auto, uring or epoll, not '", options_.io, "'"));
  }
  // Probe: can this kernel (and sandbox) run the io_uring backend?
  absl::StatusOr<std::unique_ptr<Reactor>> probe =
      Reactor::Create(ReactorBackend::kUring);
  if (probe.ok()) {
    backend_note_ = "io_uring";
    return ReactorBackend::kUring;
  }
  if (options_.io == "uring") return probe.status();
  LogWarning("io_uring is unavailable here (", probe.status().message(),
             "); using epoll");
  backend_note_ = "epoll";
  return ReactorBackend::kEpoll;
}

absl::Status Server::AddWorker(ReactorBackend backend,
                               const SocketAddress& bind,
                               const RequestHandler::Shared& shared,
                               size_t index) {
  const bool first = index == 0;
  Worker worker;
  worker.latency = std::make_unique<LatencyHistogram>();
  absl::StatusOr<std::unique_ptr<Reactor>> reactor = Reactor::Create(backend);
  if (!reactor.ok()) return reactor.status();
  worker.reactor = *std::move(reactor);

  UdpSocketOptions socket_options;
  socket_options.reuse_port = true;
  // Room for a scheduling stall: at 25,000 datagrams/s a thread (100,000
  // peers heartbeating, two reactors) 16 MiB (the kernel doubles it) holds
  // about a second of requests, where the 4 MiB that net.core.rmem_max
  // usually allows holds a fifth, and a drop costs the peer a 200 ms
  // retransmission and risks its session. Beyond rmem_max only with
  // CAP_NET_ADMIN (OpenUdpSocket).
  socket_options.receive_buffer_bytes = 16 << 20;
  socket_options.send_buffer_bytes = 4 << 20;
  absl::StatusOr<UniqueFd> socket = OpenUdpSocket(bind, socket_options);
  if (!socket.ok()) return socket.status();
  worker.reply_socket = UniqueFd(::fcntl(socket->get(), F_DUPFD_CLOEXEC, 0));
  if (!worker.reply_socket) return ErrnoStatus("dup of the UDP socket", errno);
  absl::StatusOr<std::unique_ptr<JournalWriter::CompletionQueue>> completions =
      JournalWriter::CompletionQueue::Create();
  if (!completions.ok()) return completions.status();
  worker.completions = *std::move(completions);
  if (first) {
    absl::StatusOr<SocketAddress> local = LocalAddress(socket->get());
    if (!local.ok()) return local.status();
    address_ = *local;
  }

  RequestHandler::Options handler_options;
  handler_options.verbose = options_.verbose;
  worker.handler =
      std::make_unique<RequestHandler>(shared, handler_options, MonotonicNow());
  RequestHandler* handler = worker.handler.get();
  LatencyHistogram* latency = worker.latency.get();
  JournalWriter::CompletionQueue* completions_queue = worker.completions.get();
  worker.deferred_replies = std::make_unique<DatagramSendBatch>(
      worker.reply_socket.get(), bind.family() == AF_INET6,
      protocol::kMaxDatagramSize);
  DatagramSendBatch* deferred_replies = worker.deferred_replies.get();
  handler->EnableDeferredReplies(
      completions_queue,
      [deferred_replies](std::span<const uint8_t> reply, const Endpoint& to) {
        deferred_replies->Add(reply, to);
      });
  absl::Status s = worker.reactor->AddDatagramSocket(
      *std::move(socket),
      [handler, latency](std::span<const uint8_t> datagram,
                         const SocketAddress& from, std::span<uint8_t> reply) {
        const absl::Time start = MonotonicNow();
        const size_t size =
            handler->Handle(datagram, from.ToEndpoint(), start, reply);
        latency->Observe(static_cast<uint64_t>(
            absl::ToInt64Nanoseconds(MonotonicNow() - start)));
        return size;
      },
      [handler](std::span<const uint8_t> datagram) {
        handler->Prefetch(datagram);
      });
  if (!s.ok()) return s;
  s = worker.reactor->AddReadable(completions_queue->fd(),
                                  [completions_queue, deferred_replies] {
                                    completions_queue->RunCompletions();
                                    deferred_replies->Flush();
                                  });
  if (!s.ok()) return s;

  // Every worker's timer beats for its reactor; the first one pets the
  // watchdog when all have beaten, and takes the signals.
  uint64_t watchdog_usec = 0;
  const bool watchdog = first && sd_watchdog_enabled(0, &watchdog_usec) > 0;
  s = worker.reactor->AddTimer(
      handler_options.wheel_slot,
      [this, index, watchdog] { OnTick(index, watchdog); });
  if (!s.ok()) return s;
  if (first) {
    s = worker.reactor->AddSignals(
        {SIGINT, SIGTERM, SIGHUP}, [this](int signo) {
          if (signo == SIGHUP) {
            ReloadCredentials();
          } else {
            Log("received ", signo == SIGINT ? "SIGINT" : "SIGTERM",
                ", shutting down");
            Stop();
          }
        });
    if (!s.ok()) return s;
    if (port_lock_.has_value()) {
      // A second daemon that asks who holds the port waits in the lock's
      // backlog: let it go, so that the backlog never fills.
      s = worker.reactor->AddReadable(port_lock_->fd(),
                                      [this] { port_lock_->AnswerProbes(); });
      if (!s.ok()) return s;
    }
  }
  workers_.push_back(std::move(worker));
  return absl::OkStatus();
}

absl::Status Server::Run() {
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(workers_.size());
  for (size_t i = 1; i < workers_.size(); ++i) {
    threads.emplace_back([this, i, &results] {
      NameThisThread(absl::StrCat("reactor-", i));
      results[i] = workers_[i].reactor->Run();
    });
  }
  sd_notifyf(0, "READY=1\nSTATUS=serving on %s", address_.ToString().c_str());
  results[0] = workers_[0].reactor->Run();
  sd_notify(0, "STOPPING=1");
  Stop();  // if the first worker failed, the others stop too
  for (std::thread& t : threads) t.join();
  // What the writer accepted is made durable; the replies that completes
  // go out from here, the reactor threads having stopped.
  journal_->Shutdown();
  // Releases this daemon's sessions (their users may log in elsewhere at
  // once); no claim completes after it.
  if (cluster_ != nullptr) cluster_->Stop();
  for (Worker& worker : workers_) {
    worker.completions->RunCompletions();
    worker.deferred_replies->Flush();
  }
  const ReactorStats io = ReactorTotals();
  Log("peerconnectd stopped: ", counters_.ToString(),
      " datagrams_received=", io.datagrams_received,
      " datagrams_oversized=", io.datagrams_oversized,
      " replies_sent=", io.replies_sent,
      " replies_dropped=", io.replies_dropped,
      " socket_errors=", io.socket_errors);
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void Server::Stop() {
  stopping_.store(true, std::memory_order_relaxed);
  for (Worker& worker : workers_) worker.reactor->Stop();
}

void Server::ReclaimReleasedSessions() {
  // One line for the claims that held since the last tick (a daemon cut
  // off loses every session at once); one each for those that end.
  const uint64_t reclaimed =
      sessions_reclaimed_.load(std::memory_order_relaxed);
  if (const uint64_t claimed = reclaimed - reclaims_logged_; claimed > 0) {
    reclaims_logged_ = reclaimed;
    LogWarning("cluster: the index store had released ", claimed,
               claimed == 1 ? " session" : " sessions",
               " of this daemon (another daemon took this one for gone while "
               "it was cut off from the store); claimed ",
               claimed == 1 ? "it" : "them", " again");
  }
  for (const Registry::LocalSession& session :
       replica_->TakeReleasedOwnSessions()) {
    // No key: the session ended here meanwhile.
    const std::optional<SessionKey> key = sessions_.KeyOf(session.id);
    if (!key.has_value()) continue;
    cluster_->Claim(
        ClaimOf(*cluster_, session, *key),
        [this, user = session.user, id = session.id](
            const absl::StatusOr<ClusterStore::ClaimResult>& outcome) {
          Reclaimed(user, id, outcome);
        });
  }
}

void Server::Reclaimed(
    const UserName& user, uint64_t session_id,
    const absl::StatusOr<ClusterStore::ClaimResult>& result) {
  if (stopping_.load()) return;  // the store releases every session now
  if (result.ok()) {
    // The store had kept it after all: the replica took a claim that a
    // resync's snapshot read missed (a login claimed meanwhile) for a
    // released one. Nothing changed, and nothing is said.
    if (*result == ClusterStore::ClaimResult::kHeldAlready) return;
    if (!registry_.FindLocalSession(user, session_id).has_value()) {
      // It ended here while the claim was on its way, and its release may
      // have gone first: the claim goes too.
      cluster_->Release(std::string(user.view()), session_id);
      return;
    }
    sessions_reclaimed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const absl::Status& outcome = result.status();
  // Held by another daemon's session now (its user logged in there), or
  // not known to be made: the session ends here, and its client's next
  // request finds it unknown.
  if (!registry_.Logout(session_id).ok()) return;  // ended here meanwhile
  sessions_.Erase(session_id);
  replica_->LocalSessionEnded(user.view());
  if (!absl::IsAlreadyExists(outcome)) {
    cluster_->Release(std::string(user.view()), session_id);
  }
  sessions_ended_unclaimed_.fetch_add(1, std::memory_order_relaxed);
  LogWarning(
      absl::StrFormat("cluster: ended the session of %s (session %016x)",
                      user.view(), session_id),
      ": the index store had released it, and ",
      absl::IsAlreadyExists(outcome)
          ? std::string("the user is active on another daemon now")
          : absl::StrCat("claiming it again failed: ", outcome.message()));
}

void Server::OnTick(size_t index, bool watchdog) {
  if (static_cast<int>(index) == stall_worker_) {
    // The watchdog test's stuck reactor: its loop stops turning.
    LogWarning("debug: reactor ", index, " stalls ($PCFS_DEBUG_STALL_REACTOR)");
    while (!stopping_.load(std::memory_order_relaxed)) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    return;
  }
  // Every datagram already waiting on this reactor's socket first: a
  // heartbeat that arrived before the tick must extend its session before
  // the expiry judges it, however far behind an overload left the loop.
  // The other reactors' sockets are theirs to drain: the expiry judges at
  // the time up to which all are (DrainClock).
  const absl::Time drain_start = MonotonicNow();
  workers_[index].reactor->DrainDatagrams();
  const absl::Time previous_drain = drains_->Drained(index, drain_start);
  // What the kernel dropped instead of queueing (a full receive buffer)
  // may have held heartbeats too: the expiry holds sessions silent since.
  const absl::Time now = MonotonicNow();
  NoteReceiveDrops(index, now);
  const int64_t last_loss_ns = last_loss_ns_.load(std::memory_order_relaxed);
  workers_[index].handler->Tick(
      now,
      last_loss_ns == 0 ? absl::InfinitePast()
                        : absl::FromUnixNanos(last_loss_ns),
      drains_->DrainedUntil(index, previous_drain,
                            workers_[index].handler->session_timeout()));
  if (index == 0 && replica_ != nullptr) ReclaimReleasedSessions();
  liveness_->Beat(index);
  if (!watchdog) return;
  if (liveness_->TakeAllAlive()) {
    sd_notify(0, "WATCHDOG=1");
    if (watchdog_starving_) {
      Log("watchdog: every reactor is making progress again");
    }
    watchdog_starving_ = false;
    silent_ticks_ = 0;
    return;
  }
  // A reactor may simply not have ticked yet in this round; only say so
  // once per stall, when the round is over a second old.
  if (!watchdog_starving_) {
    if (++silent_ticks_ >= 10) {
      watchdog_starving_ = true;
      LogError("watchdog: reactor ", liveness_->FirstSilent(),
               " has made no progress for a second; not petting the "
               "watchdog");
    }
    return;
  }
}

void Server::NoteReceiveDrops(size_t index, absl::Time now) {
  Worker& worker = workers_[index];
  absl::StatusOr<uint32_t> drops = ReceiveDrops(worker.reply_socket.get());
  if (!drops.ok()) return;  // a kernel without the count: nothing is held
  const uint32_t fresh = *drops - worker.receive_drops;  // wraps at 2^32
  worker.receive_drops = *drops;
  if (fresh == 0) return;
  const uint64_t total =
      receive_drops_.fetch_add(fresh, std::memory_order_relaxed) + fresh;
  const int64_t now_ns = absl::ToUnixNanos(now);
  int64_t last = last_loss_ns_.load(std::memory_order_relaxed);
  while (last < now_ns && !last_loss_ns_.compare_exchange_weak(
                              last, now_ns, std::memory_order_relaxed)) {
  }
  int64_t logged = last_loss_log_ns_.load(std::memory_order_relaxed);
  if (now_ns - logged < absl::ToInt64Nanoseconds(absl::Seconds(10)) &&
      logged != 0) {
    return;
  }
  if (!last_loss_log_ns_.compare_exchange_strong(logged, now_ns,
                                                 std::memory_order_relaxed)) {
    return;  // another reactor says it
  }
  LogWarning("overload: the kernel dropped ", fresh,
             " datagrams unread on reactor ", index, "'s full receive buffer (",
             total,
             " since start); sessions silent since then get one more "
             "session timeout before they expire");
}

ReactorStats Server::ReactorTotals() const {
  ReactorStats total;
  for (const Worker& worker : workers_) {
    const ReactorStats one = worker.reactor->stats();
    total.datagrams_received += one.datagrams_received;
    total.datagrams_oversized += one.datagrams_oversized;
    // The deferred replies (PUB, UNP) go out beside the reactor.
    total.replies_sent += one.replies_sent + worker.deferred_replies->sent();
    total.replies_dropped +=
        one.replies_dropped + worker.deferred_replies->dropped();
    total.socket_errors +=
        one.socket_errors + worker.deferred_replies->errors();
  }
  return total;
}

std::string Server::RenderMetrics() const {
  std::string out;
  const auto counter = [&out](absl::string_view name, absl::string_view help,
                              auto&& lines) {
    AppendMetricHeader(name, "counter", help, out);
    lines();
  };
  counter("pcfs_requests_total", "Datagrams handled, by message type.", [&] {
    for (size_t t = 0; t < RequestMetrics::kTypes; ++t) {
      uint64_t n = 0;
      for (const Worker& w : workers_)
        n += w.handler->metrics().requests[t].Get();
      absl::StrAppend(&out, "pcfs_requests_total{type=\"",
                      RequestMetrics::TypeLabel(t), "\"} ", n, "\n");
    }
  });
  counter(
      "pcfs_replies_total",
      "Requests by message type and result (result no_reply: dropped).", [&] {
        for (size_t t = 0; t < RequestMetrics::kTypes; ++t) {
          for (size_t r = 0; r < RequestMetrics::kResults; ++r) {
            uint64_t n = 0;
            for (const Worker& w : workers_) {
              n += w.handler->metrics().replies[t][r].Get();
            }
            // Only the pairs that happened, and every type's ok.
            if (n == 0 && r != 0) continue;
            absl::StrAppend(&out, "pcfs_replies_total{type=\"",
                            RequestMetrics::TypeLabel(t), "\",result=\"",
                            RequestMetrics::ResultLabel(r), "\"} ", n, "\n");
          }
        }
      });
  const auto v = [](const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  const ReactorStats io = ReactorTotals();
  uint64_t pings_dropped = 0;
  uint64_t logins_ok = 0;
  uint64_t logins_refused = 0;
  for (const Worker& w : workers_) {
    pings_dropped += w.handler->metrics().pings_dropped.Get();
    logins_ok += w.handler->metrics().logins_ok.Get();
    logins_refused += w.handler->metrics().logins_refused.Get();
  }
  counter("pcfs_datagrams_dropped_total",
          "Datagrams dropped without a reply, by reason.", [&] {
            absl::StrAppend(
                &out, "pcfs_datagrams_dropped_total{reason=\"malformed\"} ",
                v(counters_.dropped_malformed),
                "\npcfs_datagrams_dropped_total{reason=\"bad_mac\"} ",
                v(counters_.bad_mac),
                "\npcfs_datagrams_dropped_total{reason=\"replayed\"} ",
                v(counters_.replayed),
                "\npcfs_datagrams_dropped_total{reason=\"ping_rate_limit\"} ",
                pings_dropped,
                "\npcfs_datagrams_dropped_total{reason=\"receive_buffer\"} ",
                receive_drops_.load(std::memory_order_relaxed),
                "\npcfs_datagrams_dropped_total{reason=\"oversized\"} ",
                io.datagrams_oversized, "\n");
          });
  counter("pcfs_udp_replies_total",
          "Replies handed to the kernel (sent) or not (dropped: a full send "
          "buffer or a send error; the client retransmits).",
          [&] {
            absl::StrAppend(&out, "pcfs_udp_replies_total{result=\"sent\"} ",
                            io.replies_sent,
                            "\npcfs_udp_replies_total{result=\"dropped\"} ",
                            io.replies_dropped, "\n");
          });
  counter("pcfs_socket_errors_total",
          "Failed receives and sends on the UDP sockets (EAGAIN aside).", [&] {
            absl::StrAppend(&out, "pcfs_socket_errors_total ", io.socket_errors,
                            "\n");
          });
  counter("pcfs_logins_total", "Completed logins, by result.", [&] {
    absl::StrAppend(&out, "pcfs_logins_total{result=\"ok\"} ", logins_ok,
                    "\npcfs_logins_total{result=\"refused\"} ", logins_refused,
                    "\n");
  });
  counter("pcfs_session_expiries_total",
          "Sessions ended because their heartbeats stopped.", [&] {
            absl::StrAppend(&out, "pcfs_session_expiries_total ",
                            v(counters_.expired_sessions), "\n");
          });
  counter("pcfs_session_expiries_held_total",
          "Expiries put off by one session timeout because the daemon had "
          "dropped datagrams unread since the session was last heard from.",
          [&] {
            absl::StrAppend(&out, "pcfs_session_expiries_held_total ",
                            v(counters_.expiries_held), "\n");
          });
  AppendMetricHeader("pcfs_sessions_active", "gauge",
                     "Sessions held, including any expired in the last tick.",
                     out);
  absl::StrAppend(&out, "pcfs_sessions_active ", registry_.session_count(),
                  "\n");
  AppendMetricHeader("pcfs_publications", "gauge",
                     "Publications (user, file name) in force.", out);
  absl::StrAppend(&out, "pcfs_publications ", registry_.publication_count(),
                  "\n");
  AppendMetricHeader("pcfs_request_duration_seconds", "histogram",
                     "Time to handle a datagram and make its reply.", out);
  LatencyHistogram requests;
  for (const Worker& w : workers_) requests.MergeFrom(*w.latency);
  requests.Render("pcfs_request_duration_seconds", "", out);
  AppendMetricHeader(
      "pcfs_journal_flush_seconds", "histogram",
      "Time to append and fdatasync one batch of publication records.", out);
  journal_flush_.Render("pcfs_journal_flush_seconds", "", out);
  if (cluster_ != nullptr) {
    const ClusterStore::Stats store = cluster_->stats();
    const ClusterReplica::Stats replica = replica_->stats();
    AppendMetricHeader("pcfs_cluster_link_up", "gauge",
                       "1 while the cluster store (Redis) is reachable.", out);
    absl::StrAppend(&out, "pcfs_cluster_link_up ", store.link_up ? 1 : 0, "\n");
    counter("pcfs_cluster_events_applied_total",
            "Changes from the cluster's stream applied to the replica.", [&] {
              absl::StrAppend(&out, "pcfs_cluster_events_applied_total ",
                              replica.events, "\n");
            });
    counter("pcfs_cluster_resyncs_total",
            "Replica reloads from the stored state after the first (the "
            "stream no longer reached back to the last change seen).",
            [&] {
              absl::StrAppend(&out, "pcfs_cluster_resyncs_total ",
                              store.resyncs, "\n");
            });
    counter("pcfs_cluster_claims_total",
            "Login claims in the cluster store, by result.", [&] {
              absl::StrAppend(
                  &out, "pcfs_cluster_claims_total{result=\"ok\"} ",
                  store.claims,
                  "\npcfs_cluster_claims_total{result=\"refused\"} ",
                  store.refused_claims, "\n");
            });
    counter("pcfs_cluster_reclaims_total",
            "Sessions of this daemon the cluster store had released (while "
            "this daemon was cut off from it) claimed again, by result: "
            "ok, or ended (the user is active elsewhere, or the claim "
            "failed).",
            [&] {
              absl::StrAppend(
                  &out, "pcfs_cluster_reclaims_total{result=\"ok\"} ",
                  sessions_reclaimed_.load(std::memory_order_relaxed),
                  "\npcfs_cluster_reclaims_total{result=\"ended\"} ",
                  sessions_ended_unclaimed_.load(std::memory_order_relaxed),
                  "\n");
            });
    AppendMetricHeader("pcfs_cluster_remote_sessions", "gauge",
                       "Sessions other daemons of the cluster hold.", out);
    absl::StrAppend(&out, "pcfs_cluster_remote_sessions ",
                    replica.remote_sessions, "\n");
    counter("pcfs_cluster_commits_total",
            "Batches of pub and unp committed to the cluster store, by "
            "result.",
            [&] {
              absl::StrAppend(
                  &out, "pcfs_cluster_commits_total{result=\"ok\"} ",
                  store.commits,
                  "\npcfs_cluster_commits_total{result=\"failed\"} ",
                  store.failed_commits, "\n");
            });
  }
  AppendMetricHeader("pcfs_reactors", "gauge", "Reactor threads.", out);
  absl::StrAppend(&out, "pcfs_reactors ", workers_.size(), "\n");
  AppendMetricHeader("pcfs_reactor_backend_info", "gauge",
                     "The I/O backend the reactors run (value 1).", out);
  absl::StrAppend(&out, "pcfs_reactor_backend_info{backend=\"", backend_note_,
                  "\"} 1\n");
  AppendMetricHeader("pcfs_build_info", "gauge",
                     "The daemon's version (value 1).", out);
  absl::StrAppend(&out, "pcfs_build_info{version=\"", PCFS_VERSION, "\"} 1\n");
  return out;
}

namespace {

// True if a user's entry is the same secret in both tables (a session
// started with the old one may go on).
bool SameSecret(const Credential& a, const Credential& b) {
  if (a.is_verifier != b.is_verifier) return false;
  if (!a.is_verifier) return a.password == b.password;
  return a.verifier.iterations == b.verifier.iterations &&
         a.verifier.salt == b.verifier.salt &&
         a.verifier.stored_key == b.verifier.stored_key &&
         a.verifier.server_key == b.verifier.server_key;
}

}  // namespace

void Server::ReloadCredentials() {
  absl::StatusOr<CredentialTable> table =
      LoadCredentials(options_.credentials_path);
  if (!table.ok()) {
    LogError("SIGHUP: keeping the old credentials: ", table.status().message());
    return;
  }
  const size_t users = table->size();
  const std::shared_ptr<const CredentialTable> old = credentials_->Get();
  auto kept = std::make_shared<const CredentialTable>(*table);
  credentials_->Replace(*std::move(table));
  // A session proves only that its user knew the secret in force at its
  // login: a user removed, or whose password or verifier changed, loses it.
  std::vector<std::pair<std::string, absl::string_view>> ended_users;
  std::vector<uint64_t> ended_ids;
  std::vector<UserName> ended_session_users;
  const size_t ended = registry_.EndSessionsIf(
      [&](absl::string_view user) {
        const Credential* now = kept->Find(user);
        const Credential* before = old->Find(user);
        absl::string_view why;
        if (now == nullptr) {
          why = "the user is no longer in the file";
        } else if (before != nullptr && !SameSecret(*before, *now)) {
          why = "the user's password changed";
        } else {
          return false;
        }
        ended_users.emplace_back(std::string(user), why);
        return true;
      },
      &ended_ids, &ended_session_users);
  for (uint64_t id : ended_ids) sessions_.Erase(id);
  for (size_t i = 0; cluster_ != nullptr && i < ended_ids.size(); ++i) {
    cluster_->Release(std::string(ended_session_users[i].view()), ended_ids[i]);
    replica_->LocalSessionEnded(ended_session_users[i].view());
  }
  for (const auto& [user, why] : ended_users) {
    Log("SIGHUP: ended the session of ", user, ": ", why);
  }
  Log("SIGHUP: reloaded ", users, " users from ", options_.credentials_path,
      "; ended ", ended, " sessions of users removed or with a new password");
}

}  // namespace pcfs
