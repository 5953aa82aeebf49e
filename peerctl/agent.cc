#include "peerctl/agent.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/base/log.h"
#include "core/base/thread_name.h"
#include "peerctl/exit_codes.h"

namespace pcfs {
namespace {

absl::StatusOr<sockaddr_un> SocketAddressOf(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path '", path, "' is empty or longer than ",
                     sizeof(address.sun_path) - 1, " bytes"));
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

// Creates the socket's folder (mode 0700) if it is missing: its parent
// ($XDG_RUNTIME_DIR) must exist.
absl::Status MakeSocketFolder(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return absl::OkStatus();
  const std::string folder = path.substr(0, slash);
  if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(absl::StrCat("mkdir ", folder), errno);
  }
  return absl::OkStatus();
}

// Binds and listens on `path`, mode 0600. A socket left by an agent that
// died is replaced; one that answers is another agent's.
// The file at `path` (not followed, as lstat(2) names it); nullopt if none.
std::optional<FileIdentity> FileAt(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
  return IdentityOf(st);
}

// Binds and listens at `path`, replacing a stale socket (one nobody
// listens at) but nothing else; `bound` is the socket file it made. A
// failure after bind(2) removes that file again.
absl::StatusOr<UniqueFd> Listen(const std::string& path, int backlog,
                                FileIdentity* bound) {
  absl::StatusOr<sockaddr_un> address = SocketAddressOf(path);
  if (!address.ok()) return address.status();
  if (absl::Status s = MakeSocketFolder(path); !s.ok()) return s;
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " exists and is not a socket"));
    }
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) return ErrnoStatus("socket", errno);
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&*address),
                  sizeof(*address)) == 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("an agent already listens at ", path));
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(absl::StrCat("unlink ", path), errno);
    }
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus("socket", errno);
  // The mode comes from the umask at bind(2): no moment with a wider one.
  const mode_t saved = ::umask(0177);
  const int bind_result = ::bind(
      fd.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(*address));
  const int bind_errno = errno;
  ::umask(saved);
  if (bind_result != 0) {
    return ErrnoStatus(absl::StrCat("bind ", path), bind_errno);
  }
  std::optional<FileIdentity> made = FileAt(path);
  absl::Status s;
  if (!made.has_value()) {
    s = ErrnoStatus(absl::StrCat("stat ", path), errno);
  } else if (::chmod(path.c_str(), 0600) != 0) {
    s = ErrnoStatus(absl::StrCat("chmod ", path), errno);
  } else if (::listen(fd.get(), backlog) != 0) {
    s = ErrnoStatus("listen", errno);
  }
  if (!s.ok()) {
    if (made.has_value()) ::unlink(path.c_str());
    return s;
  }
  *bound = *made;
  return fd;
}

void Write(int fd, absl::string_view text) {
  // A client that went away costs nothing more than this failed send.
  (void)control::WriteAll(fd, text);
}

}  // namespace

Agent::Agent(AgentOptions options) : options_(std::move(options)) {}

Agent::~Agent() {
  if (!stopped_) (void)Stop();
}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(AgentOptions options) {
  options.peer.serve_files = true;
  std::unique_ptr<Agent> agent(new Agent(std::move(options)));
  const AgentOptions& o = agent->options_;
  absl::StatusOr<std::unique_ptr<Peer>> peer = Peer::Create(o.peer);
  if (!peer.ok()) return peer.status();
  agent->peer_ = *std::move(peer);
  agent->stop_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!agent->stop_event_) return ErrnoStatus("eventfd", errno);
  FileIdentity bound;
  absl::StatusOr<UniqueFd> listener =
      Listen(o.socket_path, o.max_clients, &bound);
  if (!listener.ok()) return listener.status();
  agent->listener_ = *std::move(listener);
  agent->socket_file_ = bound;
  Log("peerctl serve: listening at ", o.socket_path, " for uid ", ::getuid());
  Agent* self = agent.get();
  agent->supervisor_ = std::thread([self] {
    NameThisThread("agent-session");
    self->SuperviseSession();
  });
  agent->accept_thread_ = std::thread([self] {
    NameThisThread("agent-accept");
    self->AcceptLoop();
  });
  return agent;
}

absl::Status Agent::Stop() {
  stopped_ = true;
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  // A login under way ends its wait for the start-up check at once.
  if (peer_ != nullptr) peer_->Interrupt();
  // A Start that failed before making the eventfd has no thread to wake.
  const uint64_t one = 1;
  if (stop_event_ && ::write(stop_event_.get(), &one, sizeof(one)) < 0) {
    LogError("peerctl serve: eventfd write: ", std::strerror(errno));
  }
  if (supervisor_.joinable()) supervisor_.join();
  if (accept_thread_.joinable()) accept_thread_.join();
  ReapClients(/*all=*/true);
  listener_.Reset();
  // Only the socket file this agent made: not another agent's, which a
  // start that found it listening left alone, nor a file that was there.
  if (socket_file_.has_value() &&
      FileAt(options_.socket_path) == socket_file_) {
    ::unlink(options_.socket_path.c_str());
  }
  if (peer_ == nullptr) return absl::OkStatus();
  absl::Status s = peer_->Logout();
  peer_.reset();
  return s;
}

bool Agent::SleepUnlessStopping(absl::Duration wait) {
  std::unique_lock<std::mutex> lock(stop_mu_);
  return !stop_cv_.wait_for(lock, absl::ToChronoMilliseconds(wait),
                            [this] { return stopping_; });
}

void Agent::SuperviseSession() {
  absl::BitGen random;
  absl::Duration backoff = options_.first_backoff;
  bool logged_in = false;
  bool ever_logged_in = false;
  std::string last_problem;
  for (;;) {
    {
      // A stop during a login: nothing more to say or do.
      std::lock_guard<std::mutex> lock(stop_mu_);
      if (stopping_) return;
    }
    if (peer_->logged_in()) {
      if (!logged_in) {
        Log("peerctl serve: logged in as ", options_.user, " at ",
            peer_->server_name(), ever_logged_in ? " again" : "");
        logged_in = ever_logged_in = true;
        backoff = options_.first_backoff;
        last_problem.clear();
        std::lock_guard<std::mutex> lock(state_mu_);
        login_problem_.clear();
      }
      if (!SleepUnlessStopping(absl::Milliseconds(250))) return;
      continue;
    }
    if (logged_in) {
      Log("peerctl serve: session lost; logging in again");
      logged_in = false;
    }
    if (ever_logged_in) {
      // From the first login on, the session's client logs in again by
      // itself (on its heartbeat path, with its own backoff, and says why
      // it fails): a Login() from here as well would race it, and the
      // loser's "already active" would end the winner's session.
      if (!SleepUnlessStopping(absl::Milliseconds(250))) return;
      continue;
    }
    absl::Status s = peer_->Login(options_.user, options_.password);
    if (s.ok()) continue;  // logged in: the next turn says so
    // The whole wait, jittered by +-25%.
    const absl::Duration wait = backoff * absl::Uniform(random, 0.75, 1.25);
    backoff = std::min(backoff * 2, options_.max_backoff);
    const std::string problem(s.message());
    if (problem != last_problem) {
      Log("peerctl serve: login failed: ", problem,
          "; retrying with backoff (at most ",
          absl::FormatDuration(options_.max_backoff), " between tries)");
      last_problem = problem;
      std::lock_guard<std::mutex> lock(state_mu_);
      login_problem_ = problem;
    }
    if (!SleepUnlessStopping(wait)) return;
  }
}

void Agent::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0},
                     {stop_event_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LogError("peerctl serve: poll: ", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) {
      // EMFILE and the like: wait a little rather than spin.
      if (errno != EINTR && errno != ECONNABORTED) {
        LogError("peerctl serve: accept: ", std::strerror(errno));
        if (!SleepUnlessStopping(absl::Milliseconds(100))) return;
      }
      continue;
    }
    ucred credentials{};
    socklen_t length = sizeof(credentials);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &credentials,
                     &length) != 0 ||
        credentials.uid != ::getuid()) {
      Log("peerctl serve: refused a connection from uid ", credentials.uid,
          " (pid ", credentials.pid, "): this agent serves uid ", ::getuid(),
          " only");
      Write(fd.get(), control::EncodeError(absl::PermissionDeniedError(
                          absl::StrCat("this agent serves uid ", ::getuid(),
                                       " only, not uid ", credentials.uid))));
      continue;
    }
    ReapClients(/*all=*/false);
    std::lock_guard<std::mutex> lock(clients_mu_);
    if (clients_.size() >= static_cast<size_t>(options_.max_clients)) {
      Write(fd.get(),
            control::EncodeError(absl::ResourceExhaustedError(
                absl::StrCat("the agent serves at most ", options_.max_clients,
                             " connections at once"))));
      continue;
    }
    Client& client = clients_.emplace_back();
    client.fd = std::move(fd);
    Client* raw = &client;
    client.thread = std::thread([this, raw] {
      NameThisThread("agent-client");
      ServeClient(raw);
    });
  }
}

void Agent::ReapClients(bool all) {
  std::list<Client> finished;
  {
    std::lock_guard<std::mutex> lock(clients_mu_);
    for (auto it = clients_.begin(); it != clients_.end();) {
      auto next = std::next(it);
      if (all || it->done.load()) {
        finished.splice(finished.end(), clients_, it);
      }
      it = next;
    }
  }
  // Joined outside the lock: a client thread never takes it, but a join may
  // wait for a command in progress.
  for (Client& client : finished) {
    if (client.thread.joinable()) client.thread.join();
  }
}

void Agent::ServeClient(Client* client) {
  control::LineReader reader(client->fd.get());
  for (;;) {
    absl::StatusOr<std::string> line = reader.Next(stop_event_.get());
    if (!line.ok()) {
      if (absl::IsResourceExhausted(line.status())) {
        Write(client->fd.get(), control::EncodeError(absl::InvalidArgumentError(
                                    "request line too long")));
      }
      break;
    }
    absl::StatusOr<control::Request> request = control::ParseRequest(*line);
    const std::string reply = request.ok()
                                  ? Handle(*request, client->fd.get())
                                  : control::EncodeError(request.status());
    if (!control::WriteAll(client->fd.get(), reply).ok()) break;
  }
  client->done.store(true);
}

std::string Agent::Handle(const control::Request& request, int client_fd) {
  const bool live = peer_->logged_in();
  if (request.command == "status") {
    return absl::StrCat(control::EncodeItem(options_.user),
                        control::EncodeItem(live ? "logged-in" : "logged-out"),
                        control::EncodeOk());
  }
  if (!live) {
    std::string problem;
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      problem = login_problem_;
    }
    return control::EncodeError(absl::UnavailableError(absl::StrCat(
        "the agent is not logged in and keeps trying",
        problem.empty() ? "" : absl::StrCat(" (last: ", problem, ")"))));
  }
  const auto names = [](const absl::StatusOr<std::vector<std::string>>& list) {
    if (!list.ok()) return control::EncodeError(list.status());
    std::string reply;
    for (const std::string& name : *list) {
      absl::StrAppend(&reply, control::EncodeItem(name));
    }
    return absl::StrCat(reply, control::EncodeOk());
  };
  const auto done = [](const absl::Status& s) {
    return s.ok() ? control::EncodeOk() : control::EncodeError(s);
  };
  const std::string& arg = request.argument;
  if (request.command == "lap") return names(peer_->ListActivePeers());
  if (request.command == "lpf") return names(peer_->ListPublished());
  if (request.command == "sch") return names(peer_->Search(arg));
  if (request.command == "pub") return done(peer_->Publish(arg));
  if (request.command == "unp") return done(peer_->Unpublish(arg));
  if (request.command == "url") {
    absl::StatusOr<DownloadCommand> url = peer_->MakeDownloadCommand(arg);
    if (!url.ok()) return done(url.status());
    return absl::StrCat(
        control::EncodeItem(url->command),
        control::EncodeItem(absl::StrCat(absl::ToUnixMillis(url->expiry))),
        control::EncodeOk());
  }
  if (request.command == "get") {
    std::string folder = request.download_dir.empty()
                             ? options_.peer.download_dir
                             : request.download_dir;
    if (!request.download_dir.empty() && folder.front() != '/') {
      // The command could not make it absolute: its current folder is
      // gone (or unreadable).
      return done(absl::InvalidArgumentError(absl::StrCat(
          "the download folder ", folder,
          ": the command's current folder is gone or unreadable")));
    }
    // A client that goes away (Ctrl-C, its --timeout) stops its download,
    // as it would stop one of its own: what arrived stays in the partial.
    std::atomic<bool> cancel{false};
    std::atomic<bool> finished{false};
    std::thread watcher([&] {
      NameThisThread("agent-get-watch");
      while (!finished.load()) {
        pollfd entry{client_fd, POLLRDHUP, 0};
        if (::poll(&entry, 1, 100) > 0 &&
            (entry.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
          cancel.store(true);
          return;
        }
      }
    });
    absl::StatusOr<std::string> path = peer_->GetInto(arg, folder, &cancel);
    finished.store(true);
    watcher.join();
    if (!path.ok()) return done(path.status());
    return absl::StrCat(control::EncodeItem(*path), control::EncodeOk());
  }
  return done(absl::InvalidArgumentError(
      absl::StrCat("unknown command '", request.command, "'")));
}

int RunAgent(AgentOptions options) {
  // The signals are taken by sigwait below, on this thread; every thread
  // started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (int err = ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
      err != 0) {
    LogError("peerctl serve: pthread_sigmask: ", std::strerror(err));
    return kExitFailure;
  }
  absl::StatusOr<std::unique_ptr<Agent>> agent =
      Agent::Start(std::move(options));
  if (!agent.ok()) {
    LogError("peerctl serve: cannot start: ", agent.status().message());
    return absl::IsInvalidArgument(agent.status()) ? kExitUsage : kExitFailure;
  }
  int signo = 0;
  if (int err = ::sigwait(&stop_signals, &signo); err != 0) {
    LogError("peerctl serve: sigwait: ", std::strerror(err));
  }
  Log("peerctl serve: ", signo == SIGTERM ? "SIGTERM" : "SIGINT",
      ": logging out");
  // A stop is clean even if the daemon did not answer the logout: the
  // session then expires by itself within seconds.
  if (absl::Status s = (*agent)->Stop(); !s.ok()) {
    LogWarning("peerctl serve: logout: ", s.message());
  } else {
    Log("peerctl serve: logged out; goodbye");
  }
  return kExitOk;
}

}  // namespace pcfs
