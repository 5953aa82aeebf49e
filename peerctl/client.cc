#include "peerctl/client.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
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

absl::Status StatusOf(const Reply& reply) {
  return client::StatusFromResult(reply.code, reply.message);
}

}  // namespace

ControlClient::ControlClient(const Options& options, UniqueFd socket,
                             std::string server_name)
    : options_(options),
      server_name_(std::move(server_name)),
      socket_(std::move(socket)),
      session_(absl::Uniform<uint32_t>(absl::BitGen()),
               client::RetryPolicy{options.first_timeout, options.attempts}) {}

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
    UniqueFd fd(::socket(address.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) {
      last = ErrnoStatus("socket", errno);
      continue;
    }
    if (::connect(fd.get(), address.get(), address.length) != 0) {
      last = ErrnoStatus("connect", errno);
      continue;
    }
    return std::unique_ptr<ControlClient>(
        new ControlClient(options, std::move(fd), server_name));
  }
  return Unreachable(server_name, last.message());
}

absl::StatusOr<Reply> ControlClient::Exchange(const RequestBody& body,
                                              ReplyBuffer& buffer) {
  uint8_t request[protocol::kMaxDatagramSize];
  while (session_.can_retry()) {
    const size_t request_size =
        session_.EncodeTry(absl::Now(), body, std::span<uint8_t>(request));
    if (request_size == 0) {
      session_.Abandon();
      return absl::InvalidArgumentError("the request does not fit a datagram");
    }
    if (::send(socket_.get(), request, request_size, 0) < 0) {
      session_.Abandon();
      if (errno == ECONNREFUSED) {
        return Unreachable(server_name_, "connection refused (not running?)");
      }
      return Unreachable(server_name_, ErrnoStatus("send", errno).message());
    }
    for (;;) {
      const absl::Duration left = session_.deadline() - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      pollfd pfd{socket_.get(), POLLIN, 0};
      int ready = ::poll(&pfd, 1,
                         static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno != EINTR) {
        session_.Abandon();
        return ErrnoStatus("poll", errno);
      }
      if (ready <= 0) continue;
      ssize_t n = ::recv(socket_.get(), buffer.bytes, sizeof(buffer.bytes), 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        session_.Abandon();
        if (errno == ECONNREFUSED) {
          return Unreachable(server_name_, "connection refused (not running?)");
        }
        return Unreachable(server_name_, ErrnoStatus("recv", errno).message());
      }
      // Anything but the answer to this very request (a late reply to an
      // earlier one, a forgery, garbage) is skipped by the session.
      std::optional<Reply> reply = session_.Receive(
          std::span<const uint8_t>(buffer.bytes, static_cast<size_t>(n)));
      if (!reply.has_value()) continue;
      if (!reply->malformed.ok()) {
        return absl::InternalError(absl::StrCat(
            "malformed reply from the daemon: ", reply->malformed.message()));
      }
      return *reply;
    }
  }
  session_.Abandon();
  return Unreachable(
      server_name_,
      absl::StrFormat(
          "no reply after %d tries in %.1f s", options_.attempts,
          absl::ToDoubleSeconds(session_.retry_policy().TotalWait())));
}

absl::StatusOr<Reply> ControlClient::SessionExchange(MessageType type,
                                                     const RequestBody& body,
                                                     ReplyBuffer& buffer) {
  if (absl::Status s = session_.StartRequest(type); !s.ok()) return s;
  absl::StatusOr<Reply> reply = Exchange(body, buffer);
  if (!reply.ok() || reply->code != ResultCode::kUnknownSession) return reply;
  // The daemon forgot us (it restarted, or we were silent too long): log in
  // again. That reply is the one the daemon cannot seal, so anyone may forge
  // it; if the new login is refused because we are still active, the reply
  // was forged (or stale): keep the old session and try with it again.
  const client::ClientSession::Saved old = session_.Save();
  absl::Status relogin = LoginLocked();
  if (absl::IsAlreadyExists(relogin)) {
    session_.Restore(old);
  } else if (!relogin.ok()) {
    return relogin;
  }
  if (absl::Status s = session_.StartRequest(type); !s.ok()) return s;
  return Exchange(body, buffer);
}

absl::Status ControlClient::Login(absl::string_view user,
                                  absl::string_view password,
                                  uint16_t file_port) {
  MutexLock lock(&mu_);
  user_ = std::string(user);
  password_ = std::string(password);
  file_port_ = file_port;
  return LoginLocked();
}

absl::Status ControlClient::LoginLocked() {
  absl::Status s = session_.StartLogin(user_, password_, file_port_);
  if (!s.ok()) return s;
  auto buffer = std::make_unique<ReplyBuffer>();
  // Two exchanges: client-first -> server-first (salt, iterations, nonce),
  // then the proof -> the daemon's signature and the session.
  while (session_.in_flight()) {
    absl::StatusOr<Reply> reply = Exchange(RequestBody(), *buffer);
    if (!reply.ok()) {
      session_.EndSession();
      return reply.status();
    }
    if (s = session_.ContinueLogin(*reply); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ControlClient::Logout() {
  MutexLock lock(&mu_);
  if (absl::Status s = session_.StartRequest(MessageType::kLogout); !s.ok()) {
    return absl::OkStatus();  // not logged in
  }
  auto buffer = std::make_unique<ReplyBuffer>();
  absl::StatusOr<Reply> reply = Exchange(RequestBody(), *buffer);
  session_.EndSession();
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
  return SimpleRequest(MessageType::kHeartbeat, RequestBody());
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
                                    const Sha256Digest& sha256) {
  RequestBody body;
  body.publish.name = name;
  body.publish.size = size;
  body.publish.sha256 = sha256;
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
  FileLocation location;
  location.holder = std::string(get->holder);
  Endpoint endpoint;
  endpoint.family = get->address.family;
  endpoint.ip = get->address.ip;
  endpoint.port = get->address.port;
  location.address = SocketAddress::FromEndpoint(endpoint);
  location.size = get->size;
  location.sha256 = get->sha256;
  location.ticket = std::string(get->ticket);
  return location;
}

bool ControlClient::logged_in() const {
  MutexLock lock(&mu_);
  return session_.logged_in();
}

absl::Duration ControlClient::heartbeat_interval() const {
  MutexLock lock(&mu_);
  return session_.heartbeat_interval();
}

std::string ControlClient::user() const {
  MutexLock lock(&mu_);
  return user_;
}

SessionKey ControlClient::session_key() const {
  MutexLock lock(&mu_);
  return session_.key();
}

}  // namespace pcfs
