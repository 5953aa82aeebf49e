#include "peerctl/client.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/auth/datagram_auth.h"
#include "core/base/mutex_lock.h"

namespace pcfs {
namespace {

using protocol::Header;
using protocol::MessageType;
using protocol::ResultCode;

constexpr int kMaxListRestarts = 3;

// Sorted, once each: what users see of an SCH listing.
void SortUnique(std::vector<std::string>& names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
}

absl::Status Unreachable(absl::string_view server, absl::string_view why) {
  return absl::UnavailableError(
      absl::StrCat("cannot reach the daemon at ", server, ": ", why));
}

}  // namespace

absl::Status StatusFromResult(const protocol::ReplyStatus& status) {
  const std::string message(status.message);
  switch (status.code) {
    case ResultCode::kOk:
      return absl::OkStatus();
    case ResultCode::kAuthFailed:
      return absl::UnauthenticatedError(message);
    case ResultCode::kAlreadyActive:
      return absl::AlreadyExistsError(message);
    case ResultCode::kNotFound:
      return absl::NotFoundError(message);
    case ResultCode::kInvalidName:
    case ResultCode::kMalformed:
      return absl::InvalidArgumentError(message);
    case ResultCode::kSessionMismatch:
      return absl::PermissionDeniedError(message);
    case ResultCode::kRateLimited:
      return absl::ResourceExhaustedError(message);
    case ResultCode::kCursorExpired:
      return absl::AbortedError(message);
    case ResultCode::kUnknownSession:
    case ResultCode::kUnsupportedVersion:
      return absl::FailedPreconditionError(message);
    case ResultCode::kUnknownType:
    case ResultCode::kInternal:
      break;
  }
  return absl::InternalError(message);
}

ControlClient::ControlClient(const Options& options, UniqueFd socket,
                             std::string server_name)
    : options_(options),
      server_name_(std::move(server_name)),
      socket_(std::move(socket)) {
  absl::BitGen random;
  next_request_id_ = absl::Uniform<uint32_t>(random);
}

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

template <typename Encode>
absl::Status ControlClient::Exchange(MessageType type, Encode encode,
                                     Reply& reply) {
  const bool sealed =
      type != MessageType::kLogin && type != MessageType::kLoginFinish;
  Header header;
  header.type = static_cast<uint8_t>(type);
  header.request_id = next_request_id_++;
  header.session_id = sealed ? session_id_ : 0;
  uint8_t request[protocol::kMaxDatagramSize];
  absl::Duration wait = options_.first_timeout;
  absl::Duration waited;
  for (int attempt = 0; attempt < options_.attempts; ++attempt, wait *= 2) {
    // Every try is a new datagram to the replay window: a new sequence
    // number and MAC, the same request id.
    if (sealed) header.sequence = next_sequence_++;
    const size_t request_size = encode(header, std::span<uint8_t>(request));
    if (request_size == 0) {
      return absl::InvalidArgumentError("the request does not fit a datagram");
    }
    if (sealed) SealDatagram(key_, std::span<uint8_t>(request, request_size));
    if (::send(socket_.get(), request, request_size, 0) < 0) {
      if (errno == ECONNREFUSED) {
        return Unreachable(server_name_, "connection refused (not running?)");
      }
      return Unreachable(server_name_, ErrnoStatus("send", errno).message());
    }
    const absl::Time deadline = absl::Now() + wait;
    for (;;) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      pollfd pfd{socket_.get(), POLLIN, 0};
      int ready = ::poll(&pfd, 1,
                         static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno != EINTR) {
        return ErrnoStatus("poll", errno);
      }
      if (ready <= 0) continue;
      ssize_t n = ::recv(socket_.get(), reply.buffer, sizeof(reply.buffer), 0);
      if (n < 0) {
        if (errno == ECONNREFUSED) {
          return Unreachable(server_name_,
                             "connection refused (not running?)");
        }
        if (errno == EINTR || errno == EAGAIN) continue;
        return Unreachable(server_name_, ErrnoStatus("recv", errno).message());
      }
      reply.size = static_cast<size_t>(n);
      absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(
          std::span<const uint8_t>(reply.buffer, reply.size));
      // Anything but the answer to this very request (a late reply to an
      // earlier one, garbage) is skipped.
      if (!message.ok() || !message->header.is_response() ||
          message->header.request_id != header.request_id ||
          message->header.type != header.type) {
        continue;
      }
      absl::StatusOr<protocol::ReplyStatus> status =
          protocol::DecodeReplyStatus(message->body);
      // A session reply must carry our MAC. The one exception is "unknown
      // session", which the daemon cannot seal; it only makes us log in
      // again.
      const bool authentic =
          !sealed ||
          (status.ok() && status->code == ResultCode::kUnknownSession) ||
          VerifyDatagram(key_, std::span<const uint8_t>(reply.buffer,
                                                        reply.size));
      if (!authentic) continue;
      if (!status.ok()) {
        return absl::InternalError(absl::StrCat(
            "malformed reply from the daemon: ", status.status().message()));
      }
      reply.status = *status;
      return absl::OkStatus();
    }
    waited += wait;
  }
  return Unreachable(server_name_,
                     absl::StrFormat("no reply after %d tries in %.1f s",
                                     options_.attempts,
                                     absl::ToDoubleSeconds(waited)));
}

template <typename Encode>
absl::Status ControlClient::SessionExchange(MessageType type, Encode encode,
                                            Reply& reply) {
  if (session_id_ == 0) return absl::FailedPreconditionError("not logged in");
  absl::Status s = Exchange(type, encode, reply);
  if (!s.ok() || reply.status.code != ResultCode::kUnknownSession) return s;
  // The daemon forgot us (it restarted, or we were silent too long): log in
  // again. That reply is the one the daemon cannot seal, so anyone may forge
  // it; if the new login is refused because we are still active, the reply
  // was forged (or stale): keep the old session and try with it again.
  const uint64_t old_session = session_id_;
  const SessionKey old_key = key_;
  const uint64_t old_sequence = next_sequence_;
  absl::Status relogin = LoginLocked();
  if (absl::IsAlreadyExists(relogin)) {
    session_id_ = old_session;
    key_ = old_key;
    next_sequence_ = old_sequence;
  } else if (!relogin.ok()) {
    return relogin;
  }
  return Exchange(type, encode, reply);
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
  session_id_ = 0;
  absl::StatusOr<std::string> nonce = MakeScramNonce();
  if (!nonce.ok()) return nonce.status();
  absl::StatusOr<ScramClient> scram =
      ScramClient::Start(user_, password_, *nonce);
  if (!scram.ok()) return scram.status();
  auto reply = std::make_unique<Reply>();

  // Step 1: client-first -> server-first (salt, iterations, nonce).
  protocol::LoginRequest start{scram->client_first_message()};
  absl::Status s = Exchange(
      MessageType::kLogin,
      [&](const Header& h, std::span<uint8_t> out) {
        return protocol::EncodeLoginRequest(h, start, out);
      },
      *reply);
  if (!s.ok()) return s;
  if (s = StatusFromResult(reply->status); !s.ok()) return s;
  absl::StatusOr<protocol::LoginReply> first =
      protocol::DecodeLoginReply(reply->status.payload);
  if (!first.ok()) return first.status();
  absl::StatusOr<std::string> client_final =
      scram->HandleServerFirst(first->server_first);
  if (!client_final.ok()) {
    return absl::InternalError(absl::StrCat("the daemon's login reply: ",
                                            client_final.status().message()));
  }

  // Step 2: the proof -> the daemon's signature and the session.
  protocol::LoginFinishRequest finish;
  finish.client_first = scram->client_first_message();
  finish.client_final = *client_final;
  finish.tcp_port = file_port_;
  s = Exchange(
      MessageType::kLoginFinish,
      [&](const Header& h, std::span<uint8_t> out) {
        return protocol::EncodeLoginFinishRequest(h, finish, out);
      },
      *reply);
  if (!s.ok()) return s;
  if (s = StatusFromResult(reply->status); !s.ok()) return s;
  absl::StatusOr<protocol::LoginFinishReply> accepted =
      protocol::DecodeLoginFinishReply(reply->status.payload);
  if (!accepted.ok()) return accepted.status();
  // The daemon proves it holds the user's verifier: no impostor daemon.
  if (s = scram->HandleServerFinal(accepted->server_final); !s.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the daemon failed to prove its identity: ", s.message()));
  }
  absl::StatusOr<SessionKey> key = scram->session_key();
  if (!key.ok()) return key.status();
  key_ = *key;
  next_sequence_ = 1;
  session_id_ = accepted->session_id;
  heartbeat_interval_ = absl::Milliseconds(accepted->heartbeat_interval_ms);
  return absl::OkStatus();
}

absl::Status ControlClient::Logout() {
  MutexLock lock(&mu_);
  if (session_id_ == 0) return absl::OkStatus();
  auto reply = std::make_unique<Reply>();
  absl::Status s = Exchange(MessageType::kLogout,
                            [](const Header& h, std::span<uint8_t> out) {
                              return protocol::EncodeEmptyRequest(h, out);
                            },
                            *reply);
  session_id_ = 0;
  if (!s.ok()) return s;
  // A retransmitted LOGOUT finds the session already gone: that is success.
  if (reply->status.code == ResultCode::kUnknownSession) {
    return absl::OkStatus();
  }
  return StatusFromResult(reply->status);
}

absl::Status ControlClient::Heartbeat() {
  MutexLock lock(&mu_);
  auto reply = std::make_unique<Reply>();
  absl::Status s = SessionExchange(MessageType::kHeartbeat,
                                   [](const Header& h, std::span<uint8_t> out) {
                                     return protocol::EncodeEmptyRequest(h,
                                                                         out);
                                   },
                                   *reply);
  if (!s.ok()) return s;
  return StatusFromResult(reply->status);
}

absl::StatusOr<std::vector<std::string>> ControlClient::FetchList(
    MessageType type, absl::string_view pattern) {
  // SCH pages come straight from the daemon's index: in its order, with no
  // total, possibly empty mid-list, and a name may come twice (unpublished
  // and published again while we read).
  const bool is_search = type == MessageType::kSearch;
  std::vector<std::string> names;
  protocol::ListRequest request;
  request.pattern = pattern;
  auto reply = std::make_unique<Reply>();
  for (int restarts = 0;;) {
    MutexLock lock(&mu_);
    absl::Status s = SessionExchange(
        type,
        [&](const Header& h, std::span<uint8_t> out) {
          return protocol::EncodeListRequest(h, request, out);
        },
        *reply);
    if (!s.ok()) return s;
    if (reply->status.code == ResultCode::kCursorExpired &&
        ++restarts <= kMaxListRestarts) {
      names.clear();
      request.snapshot = 0;
      request.cursor = 0;
      continue;
    }
    if (s = StatusFromResult(reply->status); !s.ok()) return s;
    absl::StatusOr<protocol::ListReply> page =
        protocol::DecodeListReply(reply->status.payload);
    if (!page.ok()) return page.status();
    if (request.cursor == 0 && !is_search) names.reserve(page->total);
    for (absl::string_view name : page->names) names.emplace_back(name);
    if (page->next_cursor == 0) {
      if (is_search) SortUnique(names);
      return names;
    }
    if (page->names.empty() && !is_search) {
      return absl::InternalError("the daemon sent an empty page mid-list");
    }
    if (page->snapshot == request.snapshot &&
        page->next_cursor == request.cursor) {
      return absl::InternalError("the daemon's list cursor did not move");
    }
    request.snapshot = page->snapshot;
    request.cursor = page->next_cursor;
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
  protocol::PublishRequest request;
  request.name = name;
  request.size = size;
  request.sha256 = sha256;
  MutexLock lock(&mu_);
  auto reply = std::make_unique<Reply>();
  absl::Status s = SessionExchange(
      MessageType::kPublish,
      [&](const Header& h, std::span<uint8_t> out) {
        return protocol::EncodePublishRequest(h, request, out);
      },
      *reply);
  if (!s.ok()) return s;
  return StatusFromResult(reply->status);
}

absl::Status ControlClient::Unpublish(absl::string_view name) {
  protocol::NameRequest request{name};
  MutexLock lock(&mu_);
  auto reply = std::make_unique<Reply>();
  absl::Status s = SessionExchange(
      MessageType::kUnpublish,
      [&](const Header& h, std::span<uint8_t> out) {
        return protocol::EncodeNameRequest(h, request, out);
      },
      *reply);
  if (!s.ok()) return s;
  return StatusFromResult(reply->status);
}

absl::StatusOr<FileLocation> ControlClient::Get(absl::string_view name) {
  protocol::NameRequest request{name};
  MutexLock lock(&mu_);
  auto reply = std::make_unique<Reply>();
  absl::Status s = SessionExchange(
      MessageType::kGet,
      [&](const Header& h, std::span<uint8_t> out) {
        return protocol::EncodeNameRequest(h, request, out);
      },
      *reply);
  if (!s.ok()) return s;
  if (s = StatusFromResult(reply->status); !s.ok()) return s;
  absl::StatusOr<protocol::GetReply> get =
      protocol::DecodeGetReply(reply->status.payload);
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
  return session_id_ != 0;
}

absl::Duration ControlClient::heartbeat_interval() const {
  MutexLock lock(&mu_);
  return heartbeat_interval_;
}

std::string ControlClient::user() const {
  MutexLock lock(&mu_);
  return user_;
}

SessionKey ControlClient::session_key() const {
  MutexLock lock(&mu_);
  return key_;
}

}  // namespace pcfs
