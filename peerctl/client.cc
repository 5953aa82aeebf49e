#include "peerctl/client.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <span>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/base/mutex_lock.h"
#include "core/client/list_pager.h"

namespace pcfs {
namespace {

using client::Reply;
using client::RequestBody;
using protocol::MessageType;
using protocol::ResultCode;

absl::Status Unreachable(absl::string_view server, absl::string_view why) {
  return absl::UnavailableError(
      absl::StrCat("cannot reach the daemon at ", server, ": ", why));
}

// With a deadline, a command retransmits (every max_timeout at most) until
// the deadline rather than stopping after `attempts` tries: that is what
// lets a one-shot command through heavy loss within its --timeout.
client::RetryPolicy CommandRetryPolicy(const ControlClient::Options& options) {
  const bool bounded = options.deadline != absl::InfiniteFuture();
  return client::RetryPolicy{options.first_timeout,
                             bounded ? 255 : options.attempts,
                             options.max_timeout};
}

absl::Status StatusOf(const Reply& reply) {
  return client::StatusFromResult(reply.code, reply.message);
}

}  // namespace

ControlClient::ControlClient(const Options& options, UniqueFd socket,
                             UniqueFd heartbeat_socket, std::string server_name)
    : options_(options),
      server_name_(std::move(server_name)),
      sequences_(std::make_shared<client::SequenceCounter>()),
      socket_(std::move(socket)),
      session_(absl::Uniform<uint32_t>(absl::BitGen()),
               CommandRetryPolicy(options), sequences_),
      heartbeat_socket_(std::move(heartbeat_socket)),
      // Quick retransmissions: a heartbeat must reach the daemon within
      // the second between the heartbeat interval and the session timeout.
      heartbeat_session_(absl::Uniform<uint32_t>(absl::BitGen()),
                         client::RetryPolicy{absl::Milliseconds(100), 10,
                                             absl::Milliseconds(200)},
                         sequences_) {}

absl::StatusOr<std::unique_ptr<ControlClient>> ControlClient::Connect(
    const Options& options) {
  std::string server_name =
      absl::StrCat(options.host.find(':') != std::string::npos
                       ? absl::StrCat("[", options.host, "]")
                       : options.host,
                   ":", options.port);
  absl::StatusOr<std::vector<SocketAddress>> addresses =
      Resolve(options.host, options.port);
  if (!addresses.ok()) {
    return Unreachable(server_name, addresses.status().message());
  }
  absl::Status last = absl::UnavailableError("no address");
  for (const SocketAddress& address : *addresses) {
    UniqueFd fds[2];
    bool connected = true;
    for (UniqueFd& fd : fds) {
      fd = UniqueFd(::socket(address.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
      if (!fd) {
        last = ErrnoStatus("socket", errno);
        connected = false;
        break;
      }
      if (::connect(fd.get(), address.get(), address.length) != 0) {
        last = ErrnoStatus("connect", errno);
        connected = false;
        break;
      }
    }
    if (!connected) continue;
    return std::unique_ptr<ControlClient>(new ControlClient(
        options, std::move(fds[0]), std::move(fds[1]), server_name));
  }
  return Unreachable(server_name, last.message());
}

absl::StatusOr<Reply> ControlClient::Exchange(
    int fd, client::ClientSession& session, const RequestBody& body,
    ReplyBuffer& buffer, const std::atomic<bool>* cancel) const {
  uint8_t request[protocol::kMaxDatagramSize];
  bool out_of_time = false;
  while (session.can_retry()) {
    if (absl::Now() >= options_.deadline) {
      out_of_time = true;
      break;
    }
    const size_t request_size =
        session.EncodeTry(absl::Now(), body, std::span<uint8_t>(request));
    if (request_size == 0) {
      session.Abandon();
      return absl::InvalidArgumentError("the request does not fit a datagram");
    }
    if (::send(fd, request, request_size, 0) < 0) {
      session.Abandon();
      if (errno == ECONNREFUSED) {
        return Unreachable(server_name_, "connection refused (not running?)");
      }
      return Unreachable(server_name_, ErrnoStatus("send", errno).message());
    }
    for (;;) {
      if (cancel != nullptr && cancel->load()) {
        session.Abandon();
        return absl::CancelledError("stopped");
      }
      const absl::Time until = std::min(session.deadline(), options_.deadline);
      absl::Duration left = until - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      if (cancel != nullptr) left = std::min(left, absl::Milliseconds(100));
      pollfd pfd{fd, POLLIN, 0};
      int ready = ::poll(&pfd, 1,
                         static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno != EINTR) {
        session.Abandon();
        return ErrnoStatus("poll", errno);
      }
      if (ready <= 0) continue;
      ssize_t n = ::recv(fd, buffer.bytes, sizeof(buffer.bytes), 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        session.Abandon();
        if (errno == ECONNREFUSED) {
          return Unreachable(server_name_, "connection refused (not running?)");
        }
        return Unreachable(server_name_, ErrnoStatus("recv", errno).message());
      }
      // Anything but the answer to this very request (a late reply to an
      // earlier one, a forgery, garbage) is skipped by the session.
      std::optional<Reply> reply = session.Receive(
          std::span<const uint8_t>(buffer.bytes, static_cast<size_t>(n)));
      if (!reply.has_value()) continue;
      if (!reply->malformed.ok()) {
        return absl::InternalError(absl::StrCat(
            "malformed reply from the daemon: ", reply->malformed.message()));
      }
      return *reply;
    }
  }
  const int tries = session.tries();
  session.Abandon();
  if (out_of_time || absl::Now() >= options_.deadline) {
    return Unreachable(server_name_,
                       absl::StrFormat("no reply before the deadline (%d %s)",
                                       tries, tries == 1 ? "try" : "tries"));
  }
  return Unreachable(server_name_,
                     absl::StrFormat("no reply after %d tries in %.1f s", tries,
                                     absl::ToDoubleSeconds(
                                         session.retry_policy().TotalWait())));
}

void ControlClient::ChangeState(State state, absl::string_view line) {
  {
    MutexLock lock(&state_mu_);
    // A state is told once; a failing one again when its reason changes.
    const bool failing = state == State::kRefused || state == State::kSilent;
    if (state_ == state && (!failing || state_line_ == line)) return;
    const bool quiet = state_ == State::kLoggedOut && state == State::kLoggedIn;
    state_ = state;
    state_line_ = std::string(line);
    if (quiet || line.empty()) return;  // the first login says nothing
  }
  if (options_.notify) {
    options_.notify(line);
  } else {
    LogWarning(line);
  }
}

void ControlClient::PublishSessionLocked() {
  MutexLock lock(&state_mu_);
  current_ = session_.Save();
}

absl::StatusOr<Reply> ControlClient::SessionExchange(MessageType type,
                                                     const RequestBody& body,
                                                     ReplyBuffer& buffer) {
  if (!session_.logged_in() && ever_logged_in_ && !logged_out_) {
    // The session was lost and logging in again failed so far: the user
    // asks for something, so try at once.
    if (absl::Status s = ReloginLocked(0, false, true); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("not logged in (logging in again: ", s.message(), ")"));
    }
  }
  if (absl::Status s = session_.StartRequest(type); !s.ok()) return s;
  const uint64_t id = session_.session_id();
  absl::StatusOr<Reply> reply = Exchange(socket_.get(), session_, body, buffer);
  if (!reply.ok() || reply->code != ResultCode::kUnknownSession) return reply;
  if (absl::Status s = ReloginLocked(id, true, true); !s.ok()) return s;
  if (absl::Status s = session_.StartRequest(type); !s.ok()) return s;
  return Exchange(socket_.get(), session_, body, buffer);
}

absl::Status ControlClient::ReloginLocked(uint64_t lost, bool forgeable,
                                          bool now_or_wait) {
  if (logged_out_ || !ever_logged_in_) {
    return absl::FailedPreconditionError("not logged in");
  }
  if (session_.logged_in() && session_.session_id() != lost) {
    return absl::OkStatus();  // another thread logged in again already
  }
  if (!now_or_wait && absl::Now() < next_login_) {
    return absl::FailedPreconditionError("not logged in");
  }
  // "Unknown session" is the one reply the daemon cannot seal, so anyone
  // may forge it: if the new login is refused because we are still active,
  // the reply was forged (or stale): keep the old session.
  std::optional<client::ClientSession::Saved> old;
  if (session_.logged_in()) {
    old = session_.Save();
    ChangeState(State::kLost,
                "peerctl: the daemon no longer knows this session (restarted, "
                "or the session expired); logging in again");
  }
  absl::Status s = LoginLocked();
  if (s.ok()) {
    refusals_ = 0;
    ChangeState(State::kLoggedIn, "peerctl: logged in again");
    return s;
  }
  if (forgeable && old.has_value() && absl::IsAlreadyExists(s)) {
    session_.Restore(*old);
    PublishSessionLocked();
    return absl::OkStatus();
  }
  // Refused (credentials changed, rate limited, still active after an
  // expiry race) or unanswered: stay out and try again after a pause that
  // grows to 5 s, with jitter so that many clients do not come back as one.
  ++refusals_;
  absl::Duration pause =
      std::min(absl::Milliseconds(500) * (int64_t{1} << std::min(refusals_, 4)),
               absl::Seconds(5));
  pause *= absl::Uniform(absl::BitGen(), 0.75, 1.25);
  next_login_ = absl::Now() + pause;
  {
    MutexLock lock(&state_mu_);
    pause_ = pause;
  }
  ChangeState(State::kRefused,
              absl::StrCat("peerctl: logging in again failed: ", s.message(),
                           "; retrying"));
  return s;
}

absl::Status ControlClient::Login(absl::string_view user,
                                  absl::string_view password,
                                  uint16_t file_port) {
  MutexLock lock(&mu_);
  {
    MutexLock state_lock(&state_mu_);
    user_ = std::string(user);
  }
  password_ = std::string(password);
  file_port_ = file_port;
  logged_out_ = false;
  absl::Status s = LoginLocked();
  if (s.ok()) {
    ever_logged_in_ = true;
    ChangeState(State::kLoggedIn, "");
  }
  return s;
}

void ControlClient::SetKeyPin(const Sha256Digest& pin) {
  MutexLock lock(&mu_);
  session_.SetKeyPin(pin);
}

absl::Status ControlClient::LoginLocked() {
  std::string user;
  {
    MutexLock lock(&state_mu_);
    user = user_;
  }
  absl::Status s = session_.StartLogin(user, password_, file_port_);
  PublishSessionLocked();  // logged out while the login runs
  if (!s.ok()) return s;
  auto buffer = std::make_unique<ReplyBuffer>();
  // Two exchanges: client-first -> server-first (salt, iterations, nonce),
  // then the proof -> the daemon's signature and the session.
  while (session_.in_flight()) {
    absl::StatusOr<Reply> reply =
        Exchange(socket_.get(), session_, RequestBody(), *buffer);
    if (!reply.ok()) {
      session_.EndSession();
      return reply.status();
    }
    if (s = session_.ContinueLogin(*reply); !s.ok()) return s;
  }
  PublishSessionLocked();
  return absl::OkStatus();
}

absl::Status ControlClient::Logout() {
  MutexLock lock(&mu_);
  logged_out_ = true;
  if (absl::Status s = session_.StartRequest(MessageType::kLogout); !s.ok()) {
    return absl::OkStatus();  // not logged in
  }
  auto buffer = std::make_unique<ReplyBuffer>();
  absl::StatusOr<Reply> reply =
      Exchange(socket_.get(), session_, RequestBody(), *buffer);
  session_.EndSession();
  PublishSessionLocked();
  if (!reply.ok()) return reply.status();
  // A retransmitted LOGOUT finds the session already gone: that is success.
  if (reply->code == ResultCode::kUnknownSession) return absl::OkStatus();
  return StatusOf(*reply);
}

absl::Status ControlClient::SimpleRequest(MessageType type,
                                          const RequestBody& body) {
  MutexLock lock(&mu_);
  auto buffer = std::make_unique<ReplyBuffer>();
  absl::StatusOr<Reply> reply = SessionExchange(type, body, *buffer);
  if (!reply.ok()) return reply.status();
  return StatusOf(*reply);
}

absl::Status ControlClient::Heartbeat() {
  MutexLock lock(&heartbeat_mu_);
  if (heartbeats_stopped_.load()) return absl::CancelledError("stopped");
  client::ClientSession::Saved current;
  {
    MutexLock state_lock(&state_mu_);
    current = current_;
  }
  if (current.session_id == 0) {
    // Logged out after a lost session: log in again once the pause is over.
    MutexLock command_lock(&mu_);
    return ReloginLocked(0, false, false);
  }
  if (current.session_id != heartbeat_session_id_) {
    heartbeat_session_.Restore(current);
    heartbeat_session_id_ = current.session_id;
  }
  if (absl::Status s = heartbeat_session_.StartRequest(MessageType::kHeartbeat);
      !s.ok()) {
    return s;
  }
  auto buffer = std::make_unique<ReplyBuffer>();
  absl::StatusOr<Reply> reply =
      Exchange(heartbeat_socket_.get(), heartbeat_session_, RequestBody(),
               *buffer, &heartbeats_stopped_);
  if (absl::IsCancelled(reply.status())) return reply.status();
  if (!reply.ok()) {
    ChangeState(State::kSilent, absl::StrCat("peerctl: heartbeat failed: ",
                                             reply.status().message()));
    return reply.status();
  }
  if (reply->code == ResultCode::kUnknownSession) {
    MutexLock command_lock(&mu_);
    return ReloginLocked(current.session_id, true, true);
  }
  ChangeState(State::kLoggedIn, "peerctl: heartbeats answered again");
  return StatusOf(*reply);
}

absl::Duration ControlClient::NextHeartbeatIn() const {
  MutexLock lock(&state_mu_);
  if (current_.session_id == 0 && state_ == State::kRefused) return pause_;
  return absl::Milliseconds(
      current_.session_id != 0 ? current_.heartbeat_interval_ms : 2000);
}

absl::StatusOr<std::vector<std::string>> ControlClient::FetchList(
    MessageType type, absl::string_view pattern) {
  client::ListPager pager(type, pattern);
  auto buffer = std::make_unique<ReplyBuffer>();
  for (;;) {
    // The lock is taken per page, so that heartbeats go out between pages.
    MutexLock lock(&mu_);
    absl::StatusOr<Reply> reply = SessionExchange(type, pager.body(), *buffer);
    if (!reply.ok()) return reply.status();
    absl::StatusOr<bool> done = pager.Add(*reply);
    if (!done.ok()) return done.status();
    if (*done) return std::move(pager.names());
  }
}

absl::StatusOr<std::vector<std::string>> ControlClient::ListActivePeers() {
  return FetchList(MessageType::kListActivePeers, "");
}

absl::StatusOr<std::vector<std::string>> ControlClient::ListPublished() {
  return FetchList(MessageType::kListPublished, "");
}

absl::StatusOr<std::vector<std::string>> ControlClient::Search(
    absl::string_view pattern) {
  return FetchList(MessageType::kSearch, pattern);
}

absl::Status ControlClient::Publish(absl::string_view name, uint64_t size,
                                    const Sha256Digest& root) {
  RequestBody body;
  body.publish.name = name;
  body.publish.size = size;
  body.publish.root = root;
  return SimpleRequest(MessageType::kPublish, body);
}

absl::Status ControlClient::Unpublish(absl::string_view name) {
  RequestBody body;
  body.name.name = name;
  return SimpleRequest(MessageType::kUnpublish, body);
}

absl::StatusOr<FileLocation> ControlClient::Get(absl::string_view name) {
  RequestBody body;
  body.name.name = name;
  MutexLock lock(&mu_);
  auto buffer = std::make_unique<ReplyBuffer>();
  absl::StatusOr<Reply> reply =
      SessionExchange(MessageType::kGet, body, *buffer);
  if (!reply.ok()) return reply.status();
  if (absl::Status s = StatusOf(*reply); !s.ok()) return s;
  absl::StatusOr<protocol::GetReply> get =
      protocol::DecodeGetReply(reply->payload);
  if (!get.ok()) return get.status();
  auto address_of = [](const protocol::PeerAddress& address) {
    Endpoint endpoint;
    endpoint.family = address.family;
    endpoint.ip = address.ip;
    endpoint.port = address.port;
    return SocketAddress::FromEndpoint(endpoint);
  };
  const std::span<const protocol::GetHolder> holders = get->active_holders();
  FileLocation location;
  location.holder = std::string(holders[0].user);
  location.address = address_of(holders[0].address);
  location.size = get->size;
  location.root = get->root;
  location.ticket = std::string(holders[0].ticket);
  location.key_pin = holders[0].key_pin;
  for (const protocol::GetHolder& other : holders.subspan(1)) {
    location.others.push_back({std::string(other.user),
                               address_of(other.address),
                               std::string(other.ticket), other.key_pin});
  }
  return location;
}

bool ControlClient::logged_in() const {
  MutexLock lock(&state_mu_);
  return current_.session_id != 0;
}

absl::Duration ControlClient::heartbeat_interval() const {
  MutexLock lock(&state_mu_);
  return absl::Milliseconds(current_.heartbeat_interval_ms);
}

std::string ControlClient::user() const {
  MutexLock lock(&state_mu_);
  return user_;
}

SessionKey ControlClient::session_key() const {
  MutexLock lock(&state_mu_);
  return current_.key;
}

}  // namespace pcfs
