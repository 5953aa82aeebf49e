#include "peerctl/client.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <optional>
#include <span>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
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

// A login refused because the user holds a session on another daemon of
// the cluster (not on the one asked).
bool ActiveOnAnotherDaemon(const absl::Status& login) {
  return absl::IsAlreadyExists(login) &&
         absl::EndsWith(login.message(), protocol::kActiveOnAnotherDaemon);
}

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

// Without a --timeout, how long a command keeps failing over (moving on,
// logging in, waiting out refusals) before it gives up: longer than the
// 10 s in which a peer is logged in on another daemon after a kill -9.
constexpr absl::Duration kFailoverBudget = absl::Seconds(15);
// How long the LOGOUT of a command whose --timeout ran out may still take.
constexpr absl::Duration kLogoutGrace = absl::Milliseconds(500);

std::vector<DaemonAddress> DaemonsOf(const ControlClient::Options& options) {
  if (!options.servers.empty()) return options.servers;
  return {DaemonAddress{options.host, options.port}};
}

double Jitter() { return absl::Uniform(absl::BitGen(), 0.75, 1.25); }

// A UDP socket connected to the first address of `daemon` that takes
// one; `chosen` receives that address.
absl::StatusOr<UniqueFd> OpenSocketTo(const DaemonAddress& daemon,
                                      SocketAddress* chosen) {
  absl::StatusOr<std::vector<SocketAddress>> addresses =
      Resolve(daemon.host, daemon.port);
  if (!addresses.ok()) {
    return Unreachable(daemon.Name(), addresses.status().message());
  }
  absl::Status last = absl::UnavailableError("no address");
  for (const SocketAddress& address : *addresses) {
    absl::StatusOr<UniqueFd> fd = OpenConnectedUdpSocket(address);
    if (!fd.ok()) {
      last = fd.status();
      continue;
    }
    *chosen = address;
    return fd;
  }
  return Unreachable(daemon.Name(), last.message());
}

}  // namespace

ControlClient::ControlClient(const Options& options)
    : options_(options),
      daemons_(DaemonsOf(options)),
      sequences_(std::make_shared<client::SequenceCounter>()),
      plan_(daemons_.size()),
      session_(absl::Uniform<uint32_t>(absl::BitGen()),
               CommandRetryPolicy(options), sequences_),
      // Quick retransmissions: a heartbeat must reach the daemon within
      // the second between the heartbeat interval and the session timeout.
      heartbeat_session_(absl::Uniform<uint32_t>(absl::BitGen()),
                         client::RetryPolicy{absl::Milliseconds(100), 10,
                                             absl::Milliseconds(200)},
                         sequences_) {}

absl::StatusOr<std::unique_ptr<ControlClient>> ControlClient::Connect(
    const Options& options) {
  std::unique_ptr<ControlClient> client(new ControlClient(options));
  MutexLock lock(&client->mu_);
  // The first daemon that resolves; the login finds the first that answers.
  absl::Status first;
  for (size_t i = 0; i < client->daemons_.size(); ++i) {
    absl::Status s = client->OpenCurrentLocked();
    if (s.ok()) return client;
    if (first.ok()) first = s;
    client->plan_.FailedLogin(FailoverPlan::LoginFailure::kSilent, 1.0);
  }
  return first;
}

absl::Status ControlClient::OpenCurrentLocked() {
  const DaemonAddress& daemon = daemons_[plan_.current()];
  const std::string name = daemon.Name();
  socket_.Reset();
  SocketAddress chosen;
  absl::StatusOr<UniqueFd> fd = OpenSocketTo(daemon, &chosen);
  absl::Status s = fd.status();
  if (fd.ok()) socket_ = *std::move(fd);
  open_error_ = s;
  MutexLock state_lock(&state_mu_);
  server_name_ = name;
  daemon_address_ = chosen;
  ++daemon_generation_;
  return s;
}

std::string ControlClient::server_name() const {
  MutexLock lock(&state_mu_);
  return server_name_;
}

void ControlClient::Notify(absl::string_view line) const {
  if (options_.notify) {
    options_.notify(line);
  } else {
    LogWarning(line);
  }
}

absl::StatusOr<Reply> ControlClient::Exchange(
    int fd, client::ClientSession& session, const RequestBody& body,
    ReplyBuffer& buffer, const std::atomic<bool>* cancel) const {
  uint8_t request[protocol::kMaxDatagramSize];
  const std::string server_name = this->server_name();
  if (fd < 0) {
    session.Abandon();
    return Unreachable(server_name, "no socket");
  }
  // With several daemons, this much silence is the daemon's: the caller
  // moves on (within the deadline, which comes first if sooner).
  const absl::Time silent_at = daemons_.size() > 1
                                   ? absl::Now() + options_.failover_after
                                   : absl::InfiniteFuture();
  const absl::Time deadline = std::min(Deadline(), silent_at);
  bool out_of_time = false;
  while (session.can_retry()) {
    if (absl::Now() >= deadline) {
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
        return Unreachable(server_name, "connection refused (not running?)");
      }
      return Unreachable(server_name, ErrnoStatus("send", errno).message());
    }
    for (;;) {
      if (cancel != nullptr && cancel->load()) {
        session.Abandon();
        return absl::CancelledError("stopped");
      }
      const absl::Time until = std::min(session.deadline(), deadline);
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
          return Unreachable(server_name, "connection refused (not running?)");
        }
        return Unreachable(server_name, ErrnoStatus("recv", errno).message());
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
  if ((out_of_time || absl::Now() >= deadline) && Deadline() <= silent_at) {
    return Unreachable(server_name,
                       absl::StrFormat("no reply before the deadline (%d %s)",
                                       tries, tries == 1 ? "try" : "tries"));
  }
  if (out_of_time || absl::Now() >= deadline) {
    return Unreachable(
        server_name,
        absl::StrFormat("no reply in %.1f s (%d %s)",
                        absl::ToDoubleSeconds(options_.failover_after), tries,
                        tries == 1 ? "try" : "tries"));
  }
  return Unreachable(server_name,
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
  Notify(line);
}

void ControlClient::PublishSessionLocked() {
  MutexLock lock(&state_mu_);
  current_ = session_.Save();
}

absl::StatusOr<Reply> ControlClient::SessionExchange(
    MessageType type, const RequestBody& body, ReplyBuffer& buffer,
    const std::atomic<bool>* cancel) {
  if (plan_.several()) return FailoverExchange(type, body, buffer, cancel);
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
  absl::StatusOr<Reply> reply =
      Exchange(socket_.get(), session_, body, buffer, cancel);
  if (!reply.ok() || reply->code != ResultCode::kUnknownSession) return reply;
  if (absl::Status s = ReloginLocked(id, true, true); !s.ok()) return s;
  if (absl::Status s = session_.StartRequest(type); !s.ok()) return s;
  return Exchange(socket_.get(), session_, body, buffer, cancel);
}

absl::StatusOr<Reply> ControlClient::FailoverExchange(
    MessageType type, const RequestBody& body, ReplyBuffer& buffer,
    const std::atomic<bool>* cancel) {
  const absl::Time give_up =
      std::min(Deadline(), absl::Now() + kFailoverBudget);
  absl::Status last = absl::UnavailableError("no daemon answers");
  // Each turn sends the request once, or logs in once: bounded by the
  // deadline, and by a count in case every turn is quick.
  for (int turn = 0; turn < 64; ++turn) {
    if (!session_.logged_in() && ever_logged_in_ && !logged_out_) {
      // Lost (moved on, or refused so far): log in at the current daemon
      // once the pause after the last failure is over, if that is in time.
      const absl::Time at = std::max(next_login_, absl::Now());
      if (at >= give_up) break;
      absl::SleepFor(at - absl::Now());
      if (absl::Status s = ReloginLocked(0, false, true); !s.ok()) {
        last = s;
        // Unanswered, or refused for now (the user's session on the
        // daemon that died is not yet freed): try again; refused for
        // good (a wrong password): say so now.
        if (absl::IsUnavailable(s) || absl::IsAlreadyExists(s) ||
            absl::IsResourceExhausted(s)) {
          continue;
        }
        break;
      }
    }
    if (absl::Status s = session_.StartRequest(type); !s.ok()) return s;
    const uint64_t id = session_.session_id();
    absl::StatusOr<Reply> reply =
        Exchange(socket_.get(), session_, body, buffer, cancel);
    if (absl::IsCancelled(reply.status())) return reply;
    if (reply.ok() && reply->code != ResultCode::kUnknownSession) return reply;
    if (reply.ok()) {
      // Forgotten by a daemon that answers: log in again there, as with
      // one daemon (a refusal is told by the next turn's login).
      (void)ReloginLocked(id, true, true);
      last = absl::FailedPreconditionError("the daemon forgot the session");
      continue;
    }
    if (!absl::IsUnavailable(reply.status())) return reply;
    last = reply.status();
    if (absl::Now() >= Deadline()) return reply;
    MoveOnLocked();
  }
  if (absl::IsUnavailable(last)) return last;
  return absl::FailedPreconditionError(
      absl::StrCat("not logged in (logging in again: ", last.message(), ")"));
}

void ControlClient::MoveOnLocked() {
  const std::string from = daemons_[plan_.current()].Name();
  plan_.StoppedAnswering();
  (void)OpenCurrentLocked();
  session_.EndSession();
  PublishSessionLocked();
  next_login_ = absl::InfinitePast();
  moved_ = true;
  const std::string line =
      absl::StrCat("peerctl: daemon ", from, " stopped answering; moving to ",
                   daemons_[plan_.current()].Name());
  {
    MutexLock lock(&state_mu_);
    state_ = State::kLost;
    state_line_ = line;
  }
  Notify(line);
}

absl::Duration ControlClient::AfterFailedLoginLocked(
    const absl::Status& failure) {
  const size_t before = plan_.current();
  const absl::Duration pause = plan_.FailedLogin(
      absl::IsUnavailable(failure) ? FailoverPlan::LoginFailure::kSilent
                                   : FailoverPlan::LoginFailure::kRefused,
      Jitter());
  if (plan_.current() != before) {
    (void)OpenCurrentLocked();
    moved_ = true;
    Notify(absl::StrCat("peerctl: daemon ", daemons_[before].Name(),
                        " stopped answering; moving to ",
                        daemons_[plan_.current()].Name()));
  }
  return pause;
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
  // the reply was forged (or stale): keep the old session. Not when the
  // user is active on another daemon of the cluster: a daemon that still
  // held our session would have refused it as active here, so the old
  // session is gone (the cluster gave the user to another login while this
  // daemon was cut off), and keeping it would only meet the same reply.
  std::optional<client::ClientSession::Saved> old;
  if (session_.logged_in()) {
    old = session_.Save();
    ChangeState(State::kLost,
                "peerctl: the daemon no longer knows this session (restarted, "
                "or the session expired); logging in again");
  }
  absl::Status s = LoginLocked();
  if (s.ok()) {
    plan_.LoggedIn();
    if (moved_) {
      moved_ = false;
      const std::string name = daemons_[plan_.current()].Name();
      ChangeState(State::kLoggedIn,
                  absl::StrCat("peerctl: logged in on ", name));
      if (options_.on_move) options_.on_move(name);
    } else {
      ChangeState(State::kLoggedIn, "peerctl: logged in again");
    }
    return s;
  }
  if (forgeable && old.has_value() && absl::IsAlreadyExists(s) &&
      !ActiveOnAnotherDaemon(s)) {
    session_.Restore(*old);
    PublishSessionLocked();
    return absl::OkStatus();
  }
  // Refused (credentials changed, rate limited, still active after an
  // expiry race, or on another daemon that died and still holds the
  // session) or unanswered: stay out and try again after a pause that
  // grows to 5 s, with jitter so that many clients do not come back as
  // one. With several daemons, an unanswered login moves on first.
  const absl::Duration pause = AfterFailedLoginLocked(s);
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
                                  uint16_t file_port,
                                  const std::atomic<bool>* cancel) {
  MutexLock lock(&mu_);
  {
    MutexLock state_lock(&state_mu_);
    user_ = std::string(user);
  }
  password_ = std::string(password);
  file_port_ = file_port;
  logged_out_ = false;
  absl::Status s = LoginLocked(cancel);
  // With several daemons, the first that answers: each unanswered one
  // moves on (FailoverPlan), at most once round the list.
  std::string silent;
  for (size_t tried = 1; absl::IsUnavailable(s) && tried < daemons_.size() &&
                         absl::Now() < Deadline();
       ++tried) {
    absl::StrAppend(&silent, silent.empty() ? "" : "; ", s.message());
    (void)AfterFailedLoginLocked(s);
    s = LoginLocked(cancel);
  }
  if (s.ok()) {
    ever_logged_in_ = true;
    plan_.LoggedIn();
    ChangeState(State::kLoggedIn, "");
    if (moved_) {
      moved_ = false;
      Notify(absl::StrCat("peerctl: logged in on ",
                          daemons_[plan_.current()].Name()));
    }
    return s;
  }
  if (absl::IsUnavailable(s) && !silent.empty()) {
    // No daemon answered: the next Login() starts with the next one (a
    // quiet move: nothing was logged in).
    plan_.FailedLogin(FailoverPlan::LoginFailure::kSilent, 1.0);
    (void)OpenCurrentLocked();
    moved_ = false;
    return absl::UnavailableError(
        absl::StrCat("no daemon answers: ", silent, "; ", s.message()));
  }
  moved_ = false;
  return s;
}

void ControlClient::SetKeyPin(const Sha256Digest& pin) {
  MutexLock lock(&mu_);
  session_.SetKeyPin(pin);
}

absl::Status ControlClient::LoginLocked(const std::atomic<bool>* cancel) {
  std::string user;
  {
    MutexLock lock(&state_mu_);
    user = user_;
  }
  absl::Status s = session_.StartLogin(user, password_, file_port_);
  PublishSessionLocked();  // logged out while the login runs
  if (!s.ok()) return s;
  if (!socket_) {
    session_.EndSession();
    return open_error_.ok() ? absl::UnavailableError("no socket") : open_error_;
  }
  auto buffer = std::make_unique<ReplyBuffer>();
  // Two exchanges: client-first -> server-first (salt, iterations, nonce),
  // then the proof -> the daemon's signature and the session.
  while (session_.in_flight()) {
    absl::StatusOr<Reply> reply =
        Exchange(socket_.get(), session_, RequestBody(), *buffer, cancel);
    if (!reply.ok()) {
      session_.EndSession();
      return reply.status();
    }
    if (s = session_.ContinueLogin(*reply); !s.ok()) return s;
  }
  PublishSessionLocked();
  return absl::OkStatus();
}

absl::Time ControlClient::Deadline() const {
  const int64_t ns = deadline_ns_.load(std::memory_order_relaxed);
  return ns == std::numeric_limits<int64_t>::max() ? absl::InfiniteFuture()
                                                   : absl::FromUnixNanos(ns);
}

absl::Status ControlClient::Logout() {
  MutexLock lock(&mu_);
  logged_out_ = true;
  // A command that ran out of its --timeout still ends its session: a
  // moment more for the LOGOUT, or the daemon would refuse the user's next
  // login as active until the session expired.
  if (absl::Now() >= Deadline()) {
    deadline_ns_.store(absl::ToUnixNanos(absl::Now() + kLogoutGrace),
                       std::memory_order_relaxed);
  }
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
  SocketAddress address;
  uint64_t generation = 0;
  {
    MutexLock state_lock(&state_mu_);
    address = daemon_address_;
    generation = daemon_generation_;
  }
  if (generation != heartbeat_generation_) {
    // The client moved to another daemon since the last heartbeat.
    heartbeat_socket_.Reset();
    heartbeat_generation_ = generation;
    absl::StatusOr<UniqueFd> fd = OpenConnectedUdpSocket(address);
    if (!fd.ok()) return fd.status();
    heartbeat_socket_ = *std::move(fd);
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
  if (!reply.ok() && daemons_.size() > 1 &&
      absl::IsUnavailable(reply.status())) {
    // Heartbeats unanswered past the session timeout: with other daemons
    // to go to, this one has stopped answering. Unless a command moved on
    // meanwhile, move on and log in there.
    MutexLock command_lock(&mu_);
    if (session_.session_id() != current.session_id) return reply.status();
    MoveOnLocked();
    return ReloginLocked(0, false, true);
  }
  if (!reply.ok()) {
    // The command's --timeout ran out (before the heartbeat was even sent,
    // or while it waited): the command says so itself, and the daemon was
    // not found silent.
    if (absl::Now() >= Deadline()) return reply.status();
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

absl::StatusOr<protocol::StatReply> ControlClient::Stat(
    absl::string_view name, const std::atomic<bool>* cancel) {
  RequestBody body;
  body.name.name = name;
  MutexLock lock(&mu_);
  if (cancel != nullptr && cancel->load()) {
    return absl::CancelledError("stopped");
  }
  auto buffer = std::make_unique<ReplyBuffer>();
  absl::StatusOr<Reply> reply =
      SessionExchange(MessageType::kStat, body, *buffer, cancel);
  if (!reply.ok()) return reply.status();
  if (absl::Status s = StatusOf(*reply); !s.ok()) return s;
  return protocol::DecodeStatReply(reply->payload);
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
