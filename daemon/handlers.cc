#include "daemon/handlers.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "core/names.h"

namespace pcfs {
namespace {

using protocol::Header;
using protocol::Message;
using protocol::MessageType;
using protocol::ResultCode;

void Bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

// Reads the header fields of a datagram whose version we do not speak, so
// that the reply can still echo its type and request id. Returns nullopt if
// even that much is missing.
std::optional<Header> HeaderOfOtherVersion(std::span<const uint8_t> datagram) {
  if (datagram.size() < protocol::kHeaderSize) return std::nullopt;
  protocol::Reader reader(datagram);
  Header header;
  uint16_t magic = 0;
  uint16_t reserved = 0;
  if (!reader.U16(&magic) || !reader.U8(&header.version) ||
      !reader.U8(&header.type) || !reader.U16(&header.flags) ||
      !reader.U16(&reserved) || !reader.U32(&header.request_id) ||
      !reader.U64(&header.session_id)) {
    return std::nullopt;
  }
  if (magic != ((protocol::kMagic[0] << 8) | protocol::kMagic[1])) {
    return std::nullopt;
  }
  return header;
}

bool IsMutating(uint8_t type) {
  return type == static_cast<uint8_t>(MessageType::kPublish) ||
         type == static_cast<uint8_t>(MessageType::kUnpublish);
}

}  // namespace

std::string DaemonCounters::ToString() const {
  auto v = [](const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  return absl::StrCat(
      "requests=", v(requests), " replies=", v(replies),
      " dropped_malformed=", v(dropped_malformed),
      " rejected_malformed=", v(rejected_malformed),
      " bad_version=", v(bad_version), " unknown_type=", v(unknown_type),
      " unknown_session=", v(unknown_session),
      " session_mismatch=", v(session_mismatch),
      " auth_failed=", v(auth_failed), " retransmissions=", v(retransmissions),
      " expired_sessions=", v(expired_sessions),
      " state_errors=", v(state_errors));
}

absl::string_view ClassicCommandName(uint8_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kLogin: return "AUTH";
    case MessageType::kHeartbeat: return "HBT";
    case MessageType::kLogout: return "XIT";
    case MessageType::kListActivePeers: return "LAP";
    case MessageType::kListPublished: return "LPF";
    case MessageType::kPublish: return "PUB";
    case MessageType::kUnpublish: return "UNP";
    case MessageType::kSearch: return "SCH";
    case MessageType::kGet: return "GET";
  }
  return "UNKNOWN";
}

RequestHandler::RequestHandler(Registry* registry,
                               const CredentialStore* credentials,
                               PublicationLog* log, DaemonCounters* counters,
                               Options options, absl::Time now)
    : registry_(registry),
      credentials_(credentials),
      log_(log),
      counters_(counters),
      options_(options),
      // The wheel spans twice the session timeout, so a heartbeat-extended
      // deadline is normally re-armed without wrapping.
      wheel_(options.wheel_slot,
             static_cast<size_t>(2 * options.session_timeout /
                                 options.wheel_slot) + 2,
             now) {}

size_t RequestHandler::Handle(std::span<const uint8_t> datagram,
                              const Endpoint& from, absl::Time now,
                              std::span<uint8_t> reply) {
  Bump(counters_->requests);
  log_user_[0] = '\0';
  absl::StatusOr<Message> message = protocol::ParseDatagram(datagram);
  size_t size = 0;
  if (!message.ok()) {
    std::optional<Header> other = HeaderOfOtherVersion(datagram);
    if (message.status().code() != absl::StatusCode::kFailedPrecondition ||
        !other.has_value() || other->is_response()) {
      Bump(counters_->dropped_malformed);
      return 0;
    }
    Bump(counters_->bad_version);
    size = Error(*other, ResultCode::kUnsupportedVersion,
                 absl::StrCat("protocol version ", other->version,
                              " is not supported; this daemon speaks ",
                              protocol::kVersion),
                 reply);
  } else if (message->header.is_response()) {
    // Replies are never answered: that could make two daemons loop.
    Bump(counters_->dropped_malformed);
    return 0;
  } else if (!protocol::IsKnownMessageType(message->header.type)) {
    Bump(counters_->unknown_type);
    size = Error(message->header, ResultCode::kUnknownType,
                 absl::StrCat("unknown message type ", message->header.type),
                 reply);
  } else if (message->header.message_type() == MessageType::kLogin) {
    size = HandleLogin(*message, from, now, reply);
  } else {
    size = HandleSessionRequest(*message, from, now, reply);
  }
  if (size > 0) {
    Bump(counters_->replies);
    if (options_.verbose) {
      bool ok = size > protocol::kHeaderSize &&
                reply[protocol::kHeaderSize] ==
                    static_cast<uint8_t>(ResultCode::kOk);
      LogReply(from, log_user_, ok);
    }
  }
  return size;
}

size_t RequestHandler::HandleLogin(const Message& m, const Endpoint& from,
                                   absl::Time now, std::span<uint8_t> reply) {
  absl::StatusOr<protocol::LoginRequest> request =
      protocol::DecodeLoginRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(m.header, ResultCode::kMalformed, request.status().message(),
                 reply);
  }
  if (absl::Status s = ValidateUserName(request->user); !s.ok()) {
    Bump(counters_->auth_failed);
    return Error(m.header, ResultCode::kInvalidName, s.message(), reply);
  }
  SetLogUser(request->user);
  LogRequest(m.header, from, request->user);
  std::shared_ptr<const CredentialTable> table = credentials_->Get();
  if (!table->CheckPassword(request->user, request->password)) {
    Bump(counters_->auth_failed);
    return Error(m.header, ResultCode::kAuthFailed,
                 "wrong user name or password", reply);
  }
  Registry::LoginParams params;
  params.user = request->user;
  params.control = from;
  params.file_port = request->tcp_port;
  params.nonce = request->client_nonce;
  absl::StatusOr<uint64_t> session = registry_->Login(params, now);
  if (!session.ok()) {
    return Error(m.header, ResultCode::kAlreadyActive,
                 absl::StrCat("user ", request->user, " is already active"),
                 reply);
  }
  wheel_.Schedule(*session, now + options_.session_timeout);
  protocol::LoginReply login;
  login.session_id = *session;
  login.heartbeat_interval_ms = static_cast<uint32_t>(
      absl::ToInt64Milliseconds(options_.heartbeat_interval));
  login.session_timeout_ms = static_cast<uint32_t>(
      absl::ToInt64Milliseconds(options_.session_timeout));
  return protocol::EncodeLoginReply(m.header, login, reply);
}

size_t RequestHandler::HandleSessionRequest(const Message& m,
                                            const Endpoint& from,
                                            absl::Time now,
                                            std::span<uint8_t> reply) {
  const Header& h = m.header;
  Caller caller;
  caller.session_id = h.session_id;
  bool mismatch = false;
  std::optional<ResultCode> cached;
  bool found = registry_->WithSession(h.session_id, now, [&](Session& s) {
    if (!(s.control == from)) {
      mismatch = true;
      return;
    }
    size_t n = std::min(s.user.size(), sizeof(caller.user) - 1);
    std::memcpy(caller.user, s.user.data(), n);
    caller.user[n] = '\0';
    for (const Session::CachedReply& c : s.reply_cache) {
      if (c.used && c.request_id == h.request_id && c.type == h.type) {
        cached = static_cast<ResultCode>(c.code);
      }
    }
  });
  if (!found) {
    Bump(counters_->unknown_session);
    LogRequest(h, from, "an unknown session");
    return Error(h, ResultCode::kUnknownSession,
                 "no such session (it expired or ended): log in again", reply);
  }
  if (mismatch) {
    Bump(counters_->session_mismatch);
    LogRequest(h, from, "a peer that does not hold the session");
    return Error(h, ResultCode::kSessionMismatch,
                 "this session belongs to another peer", reply);
  }
  SetLogUser(caller.name());
  LogRequest(h, from, caller.name());
  if (cached.has_value()) {
    // A retransmission of a request we already carried out: answer it the
    // same way without doing the work twice.
    Bump(counters_->retransmissions);
    return protocol::EncodeStatusReply(h, *cached,
                                       protocol::ResultCodeName(*cached),
                                       reply);
  }

  switch (h.message_type()) {
    case MessageType::kHeartbeat:
    case MessageType::kLogout: {
      if (absl::Status s = protocol::DecodeEmptyRequest(m.body); !s.ok()) {
        Bump(counters_->rejected_malformed);
        return Error(h, ResultCode::kMalformed, s.message(), reply);
      }
      absl::Status s = h.message_type() == MessageType::kHeartbeat
                           ? registry_->Heartbeat(h.session_id, from, now)
                           : registry_->Logout(h.session_id);
      if (!s.ok()) {
        return Error(h, ResultCode::kUnknownSession, s.message(), reply);
      }
      return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
    }
    case MessageType::kListActivePeers:
    case MessageType::kListPublished:
    case MessageType::kSearch:
      return HandleList(m, caller, now, reply);
    case MessageType::kPublish:
      return HandlePublish(m, caller, now, reply);
    case MessageType::kUnpublish:
      return HandleUnpublish(m, caller, now, reply);
    case MessageType::kGet:
      return HandleGet(m, caller, now, reply);
    case MessageType::kLogin:
      break;
  }
  return Error(h, ResultCode::kInternal, "unhandled message type", reply);
}

size_t RequestHandler::HandleList(const Message& m, const Caller& caller,
                                  absl::Time now, std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::ListRequest> request =
      protocol::DecodeListRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  const bool is_search = h.message_type() == MessageType::kSearch;
  if (!is_search && !request->pattern.empty()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, "only SCH takes a pattern", reply);
  }
  if (is_search) {
    if (absl::Status s = ValidateSearchPattern(request->pattern); !s.ok()) {
      return Error(h, ResultCode::kInvalidName, s.message(), reply);
    }
  }

  std::shared_ptr<const ListSnapshot> snapshot;
  if (request->cursor == 0) {
    auto fresh = std::make_shared<ListSnapshot>();
    fresh->id = next_snapshot_id_++;
    if (fresh->id == 0) fresh->id = next_snapshot_id_++;
    switch (h.message_type()) {
      case MessageType::kListActivePeers:
        fresh->names = registry_->ActiveUsers(caller.name(), now);
        break;
      case MessageType::kListPublished:
        fresh->names = registry_->PublishedBy(caller.name());
        break;
      default:
        fresh->names =
            registry_->Search(request->pattern, caller.name(), now);
        break;
    }
    snapshot = std::move(fresh);
    registry_->WithSession(caller.session_id, now,
                           [&](Session& s) { s.snapshot = snapshot; });
  } else {
    registry_->WithSession(caller.session_id, now,
                           [&](Session& s) { snapshot = s.snapshot; });
    if (snapshot == nullptr || snapshot->id != request->snapshot ||
        request->cursor > snapshot->names.size()) {
      return Error(h, ResultCode::kCursorExpired,
                   "the list changed while it was read: start again", reply);
    }
  }

  const std::vector<std::string>& names = snapshot->names;
  protocol::ListReplyWriter writer(h, snapshot->id,
                                   static_cast<uint32_t>(names.size()), reply);
  size_t next = request->cursor;
  while (next < names.size() && writer.Add(names[next])) ++next;
  return writer.Finish(next < names.size() ? static_cast<uint32_t>(next) : 0);
}

size_t RequestHandler::HandlePublish(const Message& m, const Caller& caller,
                                     absl::Time now,
                                     std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::PublishRequest> request =
      protocol::DecodePublishRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  FileMeta meta;
  meta.size = request->size;
  meta.sha256 = request->sha256;
  if (registry_->Publish(caller.name(), request->name, meta) &&
      log_ != nullptr) {
    absl::Status s = log_->RecordPublish(caller.name(), request->name, meta);
    if (!s.ok()) {
      // Not durable, so not acknowledged: take it back.
      registry_->Unpublish(caller.name(), request->name).IgnoreError();
      Bump(counters_->state_errors);
      Log("cannot record a publication: ", s.ToString());
      return Error(h, ResultCode::kInternal,
                   "the daemon could not record the publication", reply);
    }
  }
  RememberReply(caller, h, ResultCode::kOk, now);
  return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
}

size_t RequestHandler::HandleUnpublish(const Message& m, const Caller& caller,
                                       absl::Time now,
                                       std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::NameRequest> request =
      protocol::DecodeNameRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  if (!registry_->Unpublish(caller.name(), request->name).ok()) {
    RememberReply(caller, h, ResultCode::kNotFound, now);
    return Error(h, ResultCode::kNotFound,
                 absl::StrCat("you do not publish ", request->name), reply);
  }
  if (log_ != nullptr) {
    absl::Status s = log_->RecordUnpublish(caller.name(), request->name);
    if (!s.ok()) {
      Bump(counters_->state_errors);
      Log("cannot record an unpublication: ", s.ToString());
      return Error(h, ResultCode::kInternal,
                   "the daemon could not record the unpublication", reply);
    }
  }
  RememberReply(caller, h, ResultCode::kOk, now);
  return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
}

size_t RequestHandler::HandleGet(const Message& m, const Caller& caller,
                                 absl::Time now, std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::NameRequest> request =
      protocol::DecodeNameRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  std::optional<Holder> holder =
      registry_->Locate(request->name, caller.name(), now);
  if (!holder.has_value()) {
    return Error(h, ResultCode::kNotFound, "File not found", reply);
  }
  protocol::GetReply get;
  get.holder = holder->user;
  get.address.family = holder->file_server.family;
  get.address.ip = holder->file_server.ip;
  get.address.port = holder->file_server.port;
  get.size = holder->meta.size;
  get.sha256 = holder->meta.sha256;
  return protocol::EncodeGetReply(h, get, reply);
}

void RequestHandler::Tick(absl::Time now) {
  wheel_.Advance(now, [&](uint64_t session_id) {
    std::optional<absl::Time> deadline =
        registry_->ExpireIfDue(session_id, now);
    if (deadline.has_value()) wheel_.Schedule(session_id, *deadline);
  });
}

size_t RequestHandler::Error(const Header& request, ResultCode code,
                             absl::string_view message,
                             std::span<uint8_t> reply) {
  return protocol::EncodeStatusReply(request, code, message, reply);
}

void RequestHandler::RememberReply(const Caller& caller, const Header& request,
                                   ResultCode code, absl::Time now) {
  if (!IsMutating(request.type)) return;
  registry_->WithSession(caller.session_id, now, [&](Session& s) {
    Session::CachedReply& slot = s.reply_cache[s.reply_cache_next];
    slot.request_id = request.request_id;
    slot.type = request.type;
    slot.code = static_cast<uint8_t>(code);
    slot.used = true;
    s.reply_cache_next =
        static_cast<uint8_t>((s.reply_cache_next + 1) % s.reply_cache.size());
  });
}

void RequestHandler::SetLogUser(absl::string_view user) {
  size_t n = std::min(user.size(), sizeof(log_user_) - 1);
  std::memcpy(log_user_, user.data(), n);
  log_user_[n] = '\0';
}

void RequestHandler::LogRequest(const Header& header, const Endpoint& from,
                                absl::string_view user) const {
  if (!options_.verbose) return;
  Log(from.port, ": Received ", ClassicCommandName(header.type), " from ",
      user);
}

void RequestHandler::LogReply(const Endpoint& from, absl::string_view user,
                              bool ok) const {
  if (user.empty()) user = "an unknown peer";
  Log(from.port, ": Sent ", ok ? "OK" : "ERR", " to ", user);
}

}  // namespace pcfs
