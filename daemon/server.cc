#include "daemon/server.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdint>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/base/clock.h"
#include "core/base/file_util.h"
#include "core/base/log.h"

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

namespace {

// Login rate limits: every LOGIN from one address (generous: scripts run
// many one-shot commands), and failed logins per user name.
RateLimiter::Options AddressLimits() {
  RateLimiter::Options o;
  o.burst = 200;
  o.refill = absl::Milliseconds(20);  // 50 a second sustained
  return o;
}
RateLimiter::Options UserLimits() {
  RateLimiter::Options o;
  o.burst = 10;
  o.refill = absl::Seconds(6);  // 10 a minute sustained
  return o;
}

}  // namespace

Server::Server(const ServerOptions& options)
    : options_(options),
      address_limiter_(AddressLimits()),
      user_limiter_(UserLimits()) {}
Server::~Server() = default;

absl::StatusOr<std::unique_ptr<Server>> Server::Create(
    const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server(options));
  absl::StatusOr<CredentialTable> table =
      LoadCredentials(options.credentials_path);
  if (!table.ok()) return table.status();
  const size_t users = table->size();
  absl::StatusOr<std::unique_ptr<CredentialStore>> store =
      CredentialStore::Create(*std::move(table));
  if (!store.ok()) return store.status();
  server->credentials_ = *std::move(store);

  absl::StatusOr<std::unique_ptr<PublicationLog>> log =
      PublicationLog::Open(options.state_dir, server->registry_);
  if (!log.ok()) return log.status();
  server->log_ = *std::move(log);

  RequestHandler::Shared shared;
  shared.registry = &server->registry_;
  shared.sessions = &server->sessions_;
  shared.credentials = server->credentials_.get();
  shared.log = server->log_.get();
  shared.counters = &server->counters_;
  shared.address_limiter = &server->address_limiter_;
  shared.user_limiter = &server->user_limiter_;
  shared.used_nonces = &server->used_nonces_;
  if (RAND_bytes(shared.login_secret.data(),
                 static_cast<int>(shared.login_secret.size())) != 1) {
    return absl::InternalError("RAND_bytes failed for the login secret");
  }

  absl::StatusOr<ReactorBackend> backend = server->ChooseBackend();
  if (!backend.ok()) return backend.status();
  absl::StatusOr<SocketAddress> bind =
      SocketAddress::FromNumeric(options.bind, options.port);
  if (!bind.ok()) return bind.status();
  const int threads =
      options.threads > 0
          ? options.threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) {
    // Every socket after the first binds the port the first one got.
    SocketAddress at = i == 0 ? *bind : server->address_;
    if (absl::Status s = server->AddWorker(*backend, at, shared, i == 0);
        !s.ok()) {
      return s;
    }
  }
  Log("peerconnectd listening on ", server->address_.ToString(), " (UDP, ",
      server->backend_note_, ", ", threads, threads == 1 ? " thread" : " threads",
      "), ", users, " users, ", server->log_->loaded(),
      " publications loaded from ", options.state_dir);
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
  Log("io_uring is unavailable here (", probe.status().message(),
      "); using epoll");
  backend_note_ = "epoll";
  return ReactorBackend::kEpoll;
}

absl::Status Server::AddWorker(ReactorBackend backend,
                               const SocketAddress& bind,
                               const RequestHandler::Shared& shared,
                               bool first) {
  Worker worker;
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
  if (first) {
    absl::StatusOr<SocketAddress> local = LocalAddress(socket->get());
    if (!local.ok()) return local.status();
    address_ = *local;
  }

  RequestHandler::Options handler_options;
  handler_options.verbose = options_.verbose;
  worker.handler = std::make_unique<RequestHandler>(shared, handler_options,
                                                    MonotonicNow());
  RequestHandler* handler = worker.handler.get();
  absl::Status s = worker.reactor->AddDatagramSocket(
      *std::move(socket),
      [handler](std::span<const uint8_t> datagram, const SocketAddress& from,
                std::span<uint8_t> reply) {
        return handler->Handle(datagram, from.ToEndpoint(), MonotonicNow(),
                               reply);
      });
  if (!s.ok()) return s;

  // Only the first worker pets the watchdog and takes the signals.
  uint64_t watchdog_usec = 0;
  const bool watchdog = first && sd_watchdog_enabled(0, &watchdog_usec) > 0;
  s = worker.reactor->AddTimer(handler_options.wheel_slot,
                               [handler, watchdog] {
                                 handler->Tick(MonotonicNow());
                                 if (watchdog) sd_notify(0, "WATCHDOG=1");
                               });
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
  }
  workers_.push_back(std::move(worker));
  return absl::OkStatus();
}

absl::Status Server::Run() {
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(workers_.size());
  for (size_t i = 1; i < workers_.size(); ++i) {
    threads.emplace_back(
        [this, i, &results] { results[i] = workers_[i].reactor->Run(); });
  }
  sd_notifyf(0, "READY=1\nSTATUS=serving on %s",
             address_.ToString().c_str());
  results[0] = workers_[0].reactor->Run();
  sd_notify(0, "STOPPING=1");
  Stop();  // if the first worker failed, the others stop too
  for (std::thread& t : threads) t.join();
  Log("peerconnectd stopped: ", counters_.ToString());
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void Server::Stop() {
  for (Worker& worker : workers_) worker.reactor->Stop();
}

void Server::ReloadCredentials() {
  absl::StatusOr<CredentialTable> table =
      LoadCredentials(options_.credentials_path);
  if (!table.ok()) {
    Log("SIGHUP: keeping the old credentials: ", table.status().message());
    return;
  }
  const size_t users = table->size();
  auto kept = std::make_shared<const CredentialTable>(*table);
  credentials_->Replace(*std::move(table));
  std::vector<uint64_t> ended_ids;
  const size_t ended = registry_.EndSessionsIf(
      [&](absl::string_view user) { return kept->Find(user) == nullptr; },
      &ended_ids);
  for (uint64_t id : ended_ids) sessions_.Erase(id);
  Log("SIGHUP: reloaded ", users, " users from ", options_.credentials_path,
      "; ended ", ended, " sessions of users no longer there");
}

}  // namespace pcfs
