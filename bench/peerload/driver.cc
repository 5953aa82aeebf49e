#include "bench/peerload/driver.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/peerload/sockets.h"
#include "core/base/log.h"

namespace pcfs::peerload {
namespace {

using protocol::MessageType;
using protocol::ResultCode;

constexpr int64_t kNsPerMs = 1'000'000;
constexpr int64_t kNsPerS = 1'000'000'000;
constexpr int kMaxEvents = 1024;
// While epoll keeps returning full batches, read up to this many before
// the timers run.
constexpr int kMaxDrainRounds = 16;
// Bounds the timers fired per loop turn, so that replies keep flowing.
constexpr int kMaxTimersPerTurn = 16384;
// A refused or rate-limited login waits this long before the next try.
constexpr int64_t kLoginRetryNs = 1 * kNsPerS;
// A request that met "connection refused" waits this long.
constexpr int64_t kRefusedRetryNs = 200 * kNsPerMs;
constexpr int kMaxFalseExpiriesLogged = 5;
// The epoll token of the window gate's descriptor (peers are 0..N-1).
constexpr uint32_t kGateToken = UINT32_MAX;

int64_t ToNs(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

// The loop's clock is CLOCK_MONOTONIC in nanoseconds; ClientSession takes
// absl::Time. Only differences matter, so the epoch stands in for boot.
absl::Time AtNs(int64_t ns) {
  return absl::UnixEpoch() + absl::Nanoseconds(ns);
}
int64_t NsOf(absl::Time t) { return absl::ToUnixNanos(t); }

// A reply that answers the request but does not decode.
bool Malformed(const client::Reply& reply) { return !reply.malformed.ok(); }

}  // namespace

// ---- Set-up ---------------------------------------------------------------

LoadDriver::LoadDriver(const LoadOptions& options, const SocketAddress& server,
                       std::vector<LoadUser> users, WindowGate* gate)
    : options_(options),
      server_(server),
      gate_(gate),
      users_(std::move(users)),
      publishers_(options.raw ? 0
                              : std::min(options.publishers, options.peers)),
      retry_{options.first_timeout, options.attempts} {
  uint32_t sum = 0;
  for (uint32_t weight : options_.mix.weights) {
    sum += weight;
    mix_table_.push_back(sum);
  }
}

absl::StatusOr<std::unique_ptr<LoadDriver>> LoadDriver::Create(
    const LoadOptions& options, const SocketAddress& server,
    std::vector<LoadUser> users, WindowGate* gate) {
  if (options.peers < 1)
    return absl::InvalidArgumentError("--peers must be >= 1");
  if (!options.raw && static_cast<size_t>(options.peers) > users.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--peers ", options.peers, " exceeds the ", users.size(),
        " users of the credentials file (make more with --make_credentials)"));
  }
  std::unique_ptr<LoadDriver> driver(
      new LoadDriver(options, server, std::move(users), gate));
  driver->epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!driver->epoll_) return ErrnoStatus("epoll_create1", errno);
  if (gate != nullptr) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = kGateToken;
    if (::epoll_ctl(driver->epoll_.get(), EPOLL_CTL_ADD, gate->fd(), &event) !=
        0) {
      return ErrnoStatus("epoll_ctl (window gate)", errno);
    }
  }

  const bool spread = options.spread_sources && IsIpv4Loopback(server);
  driver->slots_.resize(static_cast<size_t>(options.peers));
  for (uint32_t i = 0; i < driver->slots_.size(); ++i) {
    Slot& s = driver->slots_[i];
    const SocketAddress source = SpreadSourceAddress(
        options.first_peer_index + i, std::max(1, options.peers_per_source));
    absl::StatusOr<UniqueFd> fd =
        OpenPeerSocket(server, spread ? &source : nullptr);
    if (!fd.ok()) {
      return absl::Status(
          fd.status().code(),
          absl::StrCat("peer ", i, ": ", fd.status().message()));
    }
    s.fd = *std::move(fd);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = i;
    if (::epoll_ctl(driver->epoll_.get(), EPOLL_CTL_ADD, s.fd.get(), &event) !=
        0) {
      return ErrnoStatus("epoll_ctl", errno);
    }
    const uint32_t first_id = absl::Uniform<uint32_t>(driver->random_);
    s.session = client::ClientSession(first_id, driver->retry_);
    s.raw_request_id = first_id;
  }
  for (int p = 0; p < driver->publishers_; ++p) {
    for (int k = 0; k < options.names_per_publisher; ++k) {
      driver->catalog_.Add(Catalog::NameFor(driver->users_[p].name, k));
    }
  }
  driver->pending_publications_ =
      driver->publishers_ * options.names_per_publisher;
  if (!options.raw && !spread && options.peers > 200) {
    Log("peerload: warning: all peers share one source address; the "
        "daemon allows 200 LOGINs from one address, then 50 a second");
  }
  return driver;
}

// ---- The loop -------------------------------------------------------------

int64_t LoadDriver::NowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerS + ts.tv_nsec;
}

absl::StatusOr<LoadStats> LoadDriver::Run() {
  stats_.peers = options_.peers;
  start_ns_ = NowNs();
  epoll_event events[kMaxEvents];
  while (phase_ != Phase::kDone && fatal_.ok()) {
    const int64_t now = NowNs();
    StartDueLogins(now);
    UpdatePhase(now);
    if (phase_ == Phase::kMeasure) IssueOpenLoop(now);
    if (phase_ == Phase::kLogout) SendDueLogouts(now);
    if (phase_ == Phase::kDone || !fatal_.ok()) break;
    // Replies first, timers after: a reply that is already here must not
    // be retransmitted because peerload itself fell behind.
    timespec timeout = WaitFor(NowNs());
    for (int round = 0; round < kMaxDrainRounds && fatal_.ok(); ++round) {
      const int n =
          ::epoll_pwait2(epoll_.get(), events, kMaxEvents, &timeout, nullptr);
      if (n < 0) {
        if (errno == EINTR) break;
        return ErrnoStatus("epoll_pwait2", errno);
      }
      for (int k = 0; k < n && fatal_.ok(); ++k) {
        if (events[k].data.u32 == kGateToken) {
          OnGateReadable();
        } else {
          OnReadable(events[k].data.u32, NowNs());
        }
      }
      if (n < kMaxEvents) break;
      timeout = timespec{};
    }
    FireTimers(NowNs());
  }
  if (!fatal_.ok()) return fatal_;
  return std::move(stats_);
}

void LoadDriver::Fail(absl::Status status) {
  if (fatal_.ok()) fatal_ = std::move(status);
}

void LoadDriver::OnGateReadable() {
  absl::StatusOr<bool> open = gate_->Poll();
  if (!open.ok()) {
    Fail(open.status());
  } else if (*open) {
    gate_open_ = true;
    // Nothing more to hear: a parent that closes the pipe later must not
    // wake the loop again.
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, gate_->fd(), nullptr);
  }
}

void LoadDriver::ArmTimer(uint32_t i, int64_t due_ns) {
  timers_.push(Timer{due_ns, i, ++slots_[i].timer_generation});
}

void LoadDriver::FireTimers(int64_t now) {
  for (int fired = 0; fired < kMaxTimersPerTurn && !timers_.empty() &&
                      timers_.top().due_ns <= now && fatal_.ok();) {
    const Timer timer = timers_.top();
    timers_.pop();
    // A newer ArmTimer for the slot made this entry stale.
    if (timer.generation != slots_[timer.slot].timer_generation) continue;
    ++fired;
    OnTimer(timer.slot, now);
  }
}

timespec LoadDriver::WaitFor(int64_t now) const {
  int64_t wake = now + 100 * kNsPerMs;
  if (!timers_.empty()) wake = std::min(wake, timers_.top().due_ns);
  if (phase_ <= Phase::kMeasure && logins_started_ < slots_.size()) {
    wake = std::min(wake,
                    start_ns_ + static_cast<int64_t>(logins_started_ * kNsPerS /
                                                     options_.login_rate));
  }
  if (phase_ == Phase::kLogin)
    wake = std::min(wake, start_ns_ + ToNs(options_.ramp));
  if (phase_ == Phase::kMeasure) {
    wake = std::min(wake, window_end_ns_);
    if (options_.rate > 0 && !idle_.empty()) {
      wake = std::min(wake, window_start_ns_ +
                                static_cast<int64_t>(
                                    static_cast<double>(open_loop_issued_ + 1) *
                                    kNsPerS / options_.rate));
    }
  }
  if (phase_ == Phase::kLogout) {
    wake = std::min(wake, logout_deadline_ns_);
    if (logouts_started_ < slots_.size()) {
      wake = std::min(wake, logout_start_ns_ + static_cast<int64_t>(
                                                   logouts_started_ * kNsPerS /
                                                   options_.logout_rate));
    }
  }
  int64_t wait = std::max<int64_t>(0, wake - now);
  // An open loop waits to the nanosecond (epoll_pwait2): rounded up to
  // whole milliseconds, its requests would go out in a burst each
  // millisecond, with the heartbeats due meanwhile right behind them,
  // rather than spread evenly. Otherwise (a closed loop, the soak's
  // heartbeats alone) whole milliseconds, so that a busy process sends
  // what falls due in one millisecond at one wake-up: tens of thousands of
  // peers a process would otherwise wake it for each heartbeat.
  if (phase_ != Phase::kMeasure || options_.rate <= 0) {
    wait = (wait + kNsPerMs - 1) / kNsPerMs * kNsPerMs;
  }
  timespec timeout{};
  timeout.tv_sec = static_cast<time_t>(wait / kNsPerS);
  timeout.tv_nsec = wait % kNsPerS;
  return timeout;
}

void LoadDriver::OnTimer(uint32_t i, int64_t now) {
  Slot& s = slots_[i];
  if (s.done) return;
  if (s.request.in_flight()) {
    if (now < s.request.deadline_ns) {
      ArmTimer(i, s.request.deadline_ns);
    } else if (s.request.attempt < options_.attempts) {
      Try(i, now);
    } else {
      OnAbandoned(i, now);
    }
    return;
  }
  if (phase_ >= Phase::kLogout) return;
  if (!s.active) {
    StartLogin(i, now);  // a retry after a refusal
    return;
  }
  Advance(i, now);
}

// ---- Phases ---------------------------------------------------------------

void LoadDriver::StartDueLogins(int64_t now) {
  if (phase_ >= Phase::kLogout) return;
  const double elapsed_s = static_cast<double>(now - start_ns_) / kNsPerS;
  const uint64_t allowed = std::min<uint64_t>(
      slots_.size(),
      static_cast<uint64_t>(elapsed_s * options_.login_rate) + 1);
  while (logins_started_ < allowed && fatal_.ok()) {
    StartLogin(logins_started_++, now);
  }
}

void LoadDriver::UpdatePhase(int64_t now) {
  switch (phase_) {
    case Phase::kLogin: {
      const bool ready =
          (active_once_ == options_.peers && pending_publications_ == 0) ||
          now >= start_ns_ + ToNs(options_.ramp);
      if (!ready) break;
      if (gate_ == nullptr) {
        OpenWindow(now);
        break;
      }
      if (!gate_told_ready_) {
        gate_told_ready_ = true;
        if (absl::Status s = gate_->Ready(); !s.ok()) {
          Fail(std::move(s));
          break;
        }
      }
      // The other workers may still be logging in: heartbeat meanwhile.
      if (gate_open_) OpenWindow(now);
      break;
    }
    case Phase::kMeasure:
      if (now >= window_end_ns_) CloseWindow(now);
      break;
    case Phase::kLogout:
      if ((logouts_started_ == slots_.size() && logouts_outstanding_ == 0) ||
          now >= logout_deadline_ns_) {
        phase_ = Phase::kDone;
      }
      break;
    case Phase::kDone:
      break;
  }
}

void LoadDriver::OpenWindow(int64_t now) {
  int active = 0;
  for (const Slot& s : slots_) active += s.active ? 1 : 0;
  stats_.logged_in = active;
  stats_.login_s = static_cast<double>(now - start_ns_) / kNsPerS;
  if (active < options_.peers) {
    Log("peerload: ramp limit reached: ", active, " of ", options_.peers,
        " peers logged in; measuring anyway");
  } else {
    Log(absl::StrFormat("peerload: %d peers %s in %.2f s; measuring for %s",
                        active, options_.raw ? "joined" : "logged in",
                        stats_.login_s,
                        absl::FormatDuration(options_.duration)));
  }
  phase_ = Phase::kMeasure;
  window_start_ns_ = now;
  window_end_ns_ = now + ToNs(options_.duration);
  // Idle peers sleep until their next heartbeat: wake them for the mix.
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].active && !slots_[i].request.in_flight()) Advance(i, now);
  }
}

void LoadDriver::CloseWindow(int64_t now) {
  stats_.measured_s = static_cast<double>(now - window_start_ns_) / kNsPerS;
  phase_ = Phase::kLogout;
  logout_start_ns_ = now;
  logout_deadline_ns_ =
      now + ToNs(options_.logout_grace) +
      static_cast<int64_t>(static_cast<double>(slots_.size()) * kNsPerS /
                           options_.logout_rate);
}

void LoadDriver::SendDueLogouts(int64_t now) {
  const double elapsed_s =
      static_cast<double>(now - logout_start_ns_) / kNsPerS;
  const uint64_t allowed = std::min<uint64_t>(
      slots_.size(),
      static_cast<uint64_t>(elapsed_s * options_.logout_rate) + 1);
  while (logouts_started_ < allowed) {
    const uint32_t i = logouts_started_++;
    Slot& s = slots_[i];
    ++s.timer_generation;          // cancels its timer
    s.request = PendingRequest{};  // abandons what it had in flight
    s.session.Abandon();
    if (options_.raw || !s.session.logged_in()) {
      s.done = true;
      continue;
    }
    PendingRequest logout;
    logout.purpose = Purpose::kLogout;
    logout.type = MessageType::kLogout;
    ++logouts_outstanding_;
    Send(i, logout, now);
  }
}

void LoadDriver::IssueOpenLoop(int64_t now) {
  if (options_.rate <= 0 || options_.mix.empty()) return;
  const uint64_t due = static_cast<uint64_t>(
      static_cast<double>(now - window_start_ns_) / kNsPerS * options_.rate);
  while (open_loop_issued_ < due) {
    if (idle_.empty()) {
      // No idle peer: the target rate is out of reach; do not build a
      // backlog that would burst later.
      stats_.rate_missed += due - open_loop_issued_;
      open_loop_issued_ = due;
      return;
    }
    const uint32_t i = idle_.front();
    idle_.pop_front();
    Slot& s = slots_[i];
    s.idle_queued = false;
    if (!s.active || s.request.in_flight()) continue;
    if (now >= s.heartbeat_due_ns) {
      Advance(i, now);  // the mandatory heartbeat comes first
      continue;
    }
    ++open_loop_issued_;
    SendMix(i, now);
  }
}

// ---- Per peer -------------------------------------------------------------

int64_t LoadDriver::HeartbeatIntervalNs(const Slot& s) const {
  if (options_.raw) return ToNs(options_.raw_heartbeat_interval);
  return ToNs(s.session.heartbeat_interval());
}

int LoadDriver::PublicationsOf(uint32_t i) const {
  return static_cast<int>(i) < publishers_ ? options_.names_per_publisher : 0;
}

void LoadDriver::StartLogin(uint32_t i, int64_t now) {
  Slot& s = slots_[i];
  s.active = false;
  if (phase_ >= Phase::kLogout) {  // too late: no new session now
    s.session.EndSession();
    return;
  }
  s.login_started_ns = now;
  if (options_.raw) {
    BecomeActive(i, now);
    return;
  }
  const LoadUser& user = users_[i];
  if (absl::Status st =
          s.session.StartLogin(user.name, user.password, kAnnouncedFilePort);
      !st.ok()) {
    Fail(absl::Status(st.code(), absl::StrCat("cannot start the login of ",
                                              user.name, ": ", st.message())));
    return;
  }
  PendingRequest login;
  login.purpose = Purpose::kLogin;
  login.type = MessageType::kLogin;
  Send(i, login, now);
}

void LoadDriver::BecomeActive(uint32_t i, int64_t now) {
  Slot& s = slots_[i];
  s.active = true;
  s.login_failures = 0;
  s.heartbeat_due_ns = now + HeartbeatIntervalNs(s);
  ++stats_.logins;
  stats_.login_latency.Record(now - s.login_started_ns);
  if (!s.ever_active) {
    s.ever_active = true;
    ++active_once_;
    const int step = std::max(1, options_.peers / 10);
    if (options_.peers >= 1000 && active_once_ % step == 0) {
      Log(absl::StrFormat("peerload: %d of %d peers %s (%.1f s)", active_once_,
                          options_.peers, options_.raw ? "joined" : "logged in",
                          static_cast<double>(now - start_ns_) / kNsPerS));
    }
  }
  Advance(i, now);
}

void LoadDriver::Advance(uint32_t i, int64_t now) {
  Slot& s = slots_[i];
  if (phase_ >= Phase::kLogout || s.request.in_flight() || !s.active) return;
  if (now >= s.heartbeat_due_ns) {
    s.heartbeat_due_ns = now + HeartbeatIntervalNs(s);
    PendingRequest heartbeat;
    heartbeat.purpose = Purpose::kHeartbeat;
    heartbeat.type = MessageType::kHeartbeat;
    Send(i, heartbeat, now);
    return;
  }
  if (s.published < PublicationsOf(i)) {
    PendingRequest publish;
    publish.purpose = Purpose::kPublish;
    publish.type = MessageType::kPublish;
    publish.name = 1 + i * static_cast<uint32_t>(options_.names_per_publisher) +
                   s.published;
    Send(i, publish, now);
    return;
  }
  if (phase_ == Phase::kMeasure && !options_.mix.empty()) {
    if (options_.rate <= 0) {
      SendMix(i, now);
      return;
    }
    if (!s.idle_queued) {
      s.idle_queued = true;
      idle_.push_back(i);
    }
  }
  ArmTimer(i, s.heartbeat_due_ns);
}

void LoadDriver::SendMix(uint32_t i, int64_t now) {
  const uint32_t pick =
      absl::Uniform<uint32_t>(random_, 0, options_.mix.total());
  int kind = 0;
  while (pick >= mix_table_[kind]) ++kind;
  PendingRequest r;
  r.purpose = Purpose::kMix;
  r.kind = static_cast<RequestKind>(kind);
  switch (r.kind) {
    case RequestKind::kHeartbeat:
      r.type = MessageType::kHeartbeat;
      break;
    case RequestKind::kGet:
      r.type = MessageType::kGet;
      r.name = catalog_.PickPublished(absl::Uniform<uint64_t>(random_));
      break;
    case RequestKind::kSearch: {
      r.type = MessageType::kSearch;
      r.name = catalog_.PickPublished(absl::Uniform<uint64_t>(random_));
      const size_t size = catalog_.name(r.name).size();
      const size_t length =
          std::min<size_t>(absl::Bernoulli(random_, 0.5) ? 3 : 5, size);
      r.pattern_length = static_cast<uint8_t>(length);
      r.pattern_offset = static_cast<uint8_t>(
          absl::Uniform<size_t>(random_, 0, size - length + 1));
      break;
    }
    case RequestKind::kListActive:
      r.type = MessageType::kListActivePeers;
      break;
    case RequestKind::kListPublished:
      r.type = MessageType::kListPublished;
      break;
    case RequestKind::kPublish:
    case RequestKind::kUnpublish: {
      const Slot& s = slots_[i];
      // Nothing of its own to take back: publish instead.
      if (s.own_first == s.own_end) r.kind = RequestKind::kPublish;
      const bool publish = r.kind == RequestKind::kPublish;
      r.type = publish ? MessageType::kPublish : MessageType::kUnpublish;
      r.name = publish ? s.own_end : s.own_first;
      break;
    }
  }
  Send(i, r, now);
}

void LoadDriver::Send(uint32_t i, PendingRequest request,
                      int64_t /*turn_now*/) {
  Slot& s = slots_[i];
  if (options_.raw) {
    request.id = s.raw_request_id++;
  } else if (request.purpose != Purpose::kLogin &&
             request.purpose != Purpose::kLoginFinish) {
    // (A login step is already in flight: StartLogin or ContinueLogin
    // began it.)
    if (absl::Status st = s.session.StartRequest(request.type); !st.ok()) {
      Fail(absl::InternalError(absl::StrCat("peer ", i, ": ", st.message())));
      return;
    }
  }
  request.attempt = 0;
  // The clock now, not the loop turn's `now`: a turn that fires thousands
  // of timers, or a worker preempted on a busy machine, sends long after
  // the turn began, and an early first_sent_ns would make a heartbeat
  // peerload sent late look punctual (a false expiry that is peerload's).
  const int64_t sent_ns = NowNs();
  request.first_sent_ns = sent_ns;
  s.request = request;
  if (InWindow() && (request.purpose == Purpose::kHeartbeat ||
                     request.purpose == Purpose::kMix)) {
    ++stats_.requests;
  }
  Try(i, sent_ns);
}

void LoadDriver::Try(uint32_t i, int64_t now) {
  Slot& s = slots_[i];
  PendingRequest& r = s.request;
  const int64_t sent_ns = NowNs();  // as in Send
  if (IsOwnNameRequest(r)) own_name_ = OwnName(users_[i].name, r.name);
  const size_t size =
      options_.raw
          ? EncodeEcho(r, i, buffer_)
          : s.session.EncodeTry(
                AtNs(sent_ns), BodyOf(r, catalog_, own_name_),
                std::span<uint8_t>(buffer_, protocol::kMaxDatagramSize));
  if (size == 0) {
    Fail(absl::InternalError(absl::StrCat(
        "cannot encode a ",
        protocol::MessageTypeName(static_cast<uint8_t>(r.type)), " request")));
    return;
  }
  if (r.attempt > 0 && InWindow()) ++stats_.retransmissions;
  r.last_sent_ns = sent_ns;
  if (options_.raw) {
    ++r.attempt;
    r.deadline_ns = sent_ns + ToNs(retry_.TimeoutOf(r.attempt));
  } else {
    r.attempt = static_cast<uint8_t>(s.session.tries());
    r.deadline_ns = NsOf(s.session.deadline());
  }
  ArmTimer(i, r.deadline_ns);
  if (::send(s.fd.get(), buffer_, size, 0) < 0 && errno == ECONNREFUSED) {
    OnRefused(i, now);
  }
  // Any other failure (a full buffer: EAGAIN, ENOBUFS) is a lost datagram:
  // the deadline retransmits it.
}

void LoadDriver::OnReadable(uint32_t i, int64_t now) {
  Slot& s = slots_[i];
  const ssize_t n = ::recv(s.fd.get(), buffer_, sizeof(buffer_), 0);
  if (n < 0) {
    if (errno == ECONNREFUSED) OnRefused(i, now);
    return;  // EAGAIN, EINTR: nothing after all
  }
  const std::span<const uint8_t> datagram(buffer_, static_cast<size_t>(n));
  std::optional<client::Reply> reply;
  if (s.request.in_flight()) {
    if (options_.raw) {
      if (MatchEcho(s.request, i, datagram)) reply.emplace();
    } else {
      reply = s.session.Receive(datagram);
    }
  }
  if (!reply.has_value()) {
    if (InWindow()) ++stats_.stray_replies;
    return;
  }
  heard_from_server_ = true;
  OnReply(i, *reply, now);
}

void LoadDriver::OnReply(uint32_t i, const client::Reply& reply, int64_t now) {
  Slot& s = slots_[i];
  const PendingRequest r = s.request;
  s.request = PendingRequest{};  // nothing in flight now
  switch (r.purpose) {
    case Purpose::kLogin:
      OnLoginReply(i, reply, now);
      return;
    case Purpose::kLoginFinish:
      OnLoginFinishReply(i, r, reply, now);
      return;
    case Purpose::kLogout:
      if (!Malformed(reply) && (reply.code == ResultCode::kOk ||
                                reply.code == ResultCode::kUnknownSession)) {
        ++stats_.logouts;
      }
      FinishLogout(i);
      return;
    case Purpose::kNone:
      return;
    default:
      OnSessionReply(i, r, reply, now);
  }
}

void LoadDriver::OnLoginReply(uint32_t i, const client::Reply& reply,
                              int64_t now) {
  if (Malformed(reply) || reply.code != ResultCode::kOk) {
    OnLoginRefused(i, Malformed(reply) ? ResultCode::kMalformed : reply.code,
                   now);
    return;
  }
  Slot& s = slots_[i];
  if (absl::Status st = s.session.ContinueLogin(reply); !st.ok()) {
    Fail(absl::InternalError(absl::StrCat("the daemon's LOGIN reply to ",
                                          users_[i].name, ": ", st.message())));
    return;
  }
  PendingRequest finish;
  finish.purpose = Purpose::kLoginFinish;
  finish.type = MessageType::kLoginFinish;
  Send(i, finish, now);
}

void LoadDriver::OnLoginFinishReply(uint32_t i, const PendingRequest& r,
                                    const client::Reply& reply, int64_t now) {
  if (Malformed(reply) || reply.code != ResultCode::kOk) {
    OnLoginRefused(i, Malformed(reply) ? ResultCode::kMalformed : reply.code,
                   now);
    return;
  }
  Slot& s = slots_[i];
  if (absl::Status st = s.session.ContinueLogin(reply); !st.ok()) {
    Fail(absl::Status(st.code(), absl::StrCat("login of ", users_[i].name, ": ",
                                              st.message())));
    return;
  }
  // The daemon started the session when it got LOGIN_FINISH, which was
  // first sent then: a lower bound of its deadline. (Not the LOGIN's start:
  // a login slowed by load would make the first heartbeat look late.)
  s.session_proof_ns = r.first_sent_ns;
  BecomeActive(i, now);
}

void LoadDriver::OnLoginRefused(uint32_t i, ResultCode code, int64_t now) {
  const bool retry = code == ResultCode::kRateLimited ||
                     code == ResultCode::kAlreadyActive ||
                     (code == ResultCode::kAuthFailed && stats_.logins > 0);
  if (!retry) {
    std::string hint;
    if (code == ResultCode::kAuthFailed) {
      hint = absl::StrCat(
          " (wrong password? for a verifier line peerload "
          "uses the password \"",
          LoadPasswordFor(users_[i].name), "\")");
    }
    Fail(absl::PermissionDeniedError(
        absl::StrCat("the daemon refused the login of ", users_[i].name, ": ",
                     protocol::ResultCodeName(code), hint)));
    return;
  }
  // Rate limited, still active from an earlier run (its session lasts 3 s),
  // or a login that expired under load: try again a little later.
  ++stats_.login_retries;
  RetryLoginLater(i, now);
}

void LoadDriver::RetryLoginLater(uint32_t i, int64_t now) {
  Slot& s = slots_[i];
  s.session.EndSession();
  const int64_t base = kLoginRetryNs << std::min<int>(s.login_failures, 3);
  if (s.login_failures < 255) ++s.login_failures;
  ArmTimer(i, now + base / 2 + absl::Uniform<int64_t>(random_, 0, base));
}

void LoadDriver::OnSessionReply(uint32_t i, const PendingRequest& r,
                                const client::Reply& reply, int64_t now) {
  Slot& s = slots_[i];
  if (!Malformed(reply) && reply.code == ResultCode::kUnknownSession) {
    OnExpired(i, r, now);
    return;
  }
  const bool ok = !Malformed(reply) && reply.code == ResultCode::kOk;
  if (ok && r.type == MessageType::kHeartbeat) {
    s.session_proof_ns = std::max(s.session_proof_ns, r.first_sent_ns);
  }
  if (IsOwnNameRequest(r) && !Malformed(reply)) {
    // The daemon answers a PUB or UNP only once it is durable. An UNP
    // refused as not found (its first reply lost, say) moves on too.
    if (r.type == MessageType::kPublish && ok && r.name == s.own_end) {
      ++s.own_end;
    } else if (r.type == MessageType::kUnpublish && r.name == s.own_first &&
               (ok || reply.code == ResultCode::kNotFound)) {
      ++s.own_first;
    }
  }
  if (r.purpose == Purpose::kPublish) {
    if (ok) {
      catalog_.MarkPublished(r.name);
      ++stats_.publications;
    } else {
      Log("peerload: PUB of ", catalog_.name(r.name), " failed: ",
          Malformed(reply) ? "malformed reply"
                           : protocol::ResultCodeName(reply.code));
    }
    ++s.published;
    --pending_publications_;
  } else if (InWindow()) {
    if (Malformed(reply)) {
      stats_.CountError("malformed reply");
    } else {
      ++stats_.responses;
      stats_.latency.Record(now - r.first_sent_ns);
      if (r.type == MessageType::kHeartbeat) {
        stats_.heartbeat_latency.Record(now - r.first_sent_ns);
      }
      if (r.purpose == Purpose::kHeartbeat) {
        ++stats_.heartbeat_responses;
      } else {
        ++stats_.mix_responses[static_cast<size_t>(r.kind)];
      }
      if (reply.code == ResultCode::kNotFound && r.type == MessageType::kGet) {
        ++stats_.not_found;
      } else if (!ok) {
        stats_.CountError(std::string(protocol::ResultCodeName(reply.code)));
      }
    }
  }
  Advance(i, now);
}

void LoadDriver::OnExpired(uint32_t i, const PendingRequest& r, int64_t now) {
  Slot& s = slots_[i];
  if (InRun()) {
    const int64_t timeout_ns = ToNs(s.session.session_timeout());
    // The first try, not the refused one: if the peer spoke in time and
    // the daemon lost its tries (a full socket buffer) or let the session
    // lapse while they waited, the daemon broke the contract, not peerload.
    const int64_t since_proof = r.first_sent_ns - s.session_proof_ns;
    if (since_proof < timeout_ns) {
      ++stats_.false_expiries;
      if (false_expiries_logged_++ < kMaxFalseExpiriesLogged) {
        Log(absl::StrFormat(
            "peerload: false expiry: %s sent %s %.0f ms after its last "
            "acknowledged heartbeat (try %d, %.0f ms later), and the daemon "
            "no longer knew the session",
            users_[i].name,
            protocol::MessageTypeName(static_cast<uint8_t>(r.type)),
            static_cast<double>(since_proof) / kNsPerMs, r.attempt,
            static_cast<double>(r.last_sent_ns - r.first_sent_ns) / kNsPerMs));
      }
    } else {
      ++stats_.late_expiries;
    }
    if (InWindow()) ++stats_.relogins;
  }
  // Publish again after the new login if this was a PUB.
  StartLogin(i, now);
}

void LoadDriver::OnAbandoned(uint32_t i, int64_t now) {
  Slot& s = slots_[i];
  const PendingRequest r = s.request;
  s.request = PendingRequest{};
  s.session.Abandon();
  if (!heard_from_server_) {
    Fail(absl::UnavailableError(
        absl::StrFormat("no reply from %s after %d tries in %.1f s",
                        server_.ToString(), options_.attempts,
                        static_cast<double>(now - r.first_sent_ns) / kNsPerS)));
    return;
  }
  switch (r.purpose) {
    case Purpose::kLogin:
    case Purpose::kLoginFinish:
      ++stats_.login_retries;
      ++stats_.login_timeouts;
      RetryLoginLater(i, now);
      return;
    case Purpose::kLogout:
      FinishLogout(i);
      return;
    case Purpose::kPublish:
      Log("peerload: PUB of ", catalog_.name(r.name), " got no reply");
      ++s.published;
      --pending_publications_;
      break;
    default:
      break;
  }
  if (InRun()) ++stats_.timeouts;
  Advance(i, now);
}

void LoadDriver::OnRefused(uint32_t i, int64_t now) {
  if (!heard_from_server_) {
    Fail(absl::UnavailableError(
        absl::StrCat("connection refused by ", server_.ToString(),
                     options_.raw ? " (is udp_echo running?)"
                                  : " (is peerconnectd running?)")));
    return;
  }
  Slot& s = slots_[i];
  if (InWindow()) stats_.CountError("connection refused");
  const Purpose purpose = s.request.purpose;
  if (purpose == Purpose::kNone) return;  // a stale ICMP error
  s.request = PendingRequest{};
  s.session.Abandon();
  switch (purpose) {
    case Purpose::kLogout:
      FinishLogout(i);
      return;
    case Purpose::kLogin:
    case Purpose::kLoginFinish:
      RetryLoginLater(i, now);
      return;
    case Purpose::kPublish:
      ++s.published;
      --pending_publications_;
      break;
    default:
      break;
  }
  ArmTimer(i, now + kRefusedRetryNs);
}

void LoadDriver::FinishLogout(uint32_t i) {
  Slot& s = slots_[i];
  s.session.EndSession();
  s.active = false;
  s.done = true;
  --logouts_outstanding_;
}

}  // namespace pcfs::peerload
