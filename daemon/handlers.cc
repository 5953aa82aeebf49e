#include "daemon/handlers.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/auth/datagram_auth.h"
#include "core/base/big_endian.h"
#include "core/base/log.h"
#include "core/base/mutex_lock.h"
#include "core/base/names.h"
#include "core/io/net.h"
#include "daemon/handler_util.h"

// The request path: admission of a session request, dispatch, completion
// and sealing, and the expiry of sessions. The requests themselves are in
// login_handlers.cc, list_handlers.cc and publication_handlers.cc.

namespace pcfs {
namespace {

using handler_internal::Bump;
using handler_internal::SealReply;
using protocol::Header;
using protocol::Message;
using protocol::MessageType;
using protocol::ResultCode;

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
  if (magic != LoadBigEndian<uint16_t>(protocol::kMagic)) {
    return std::nullopt;
  }
  return header;
}

bool IsMutating(uint8_t type) {
  return type == static_cast<uint8_t>(MessageType::kPublish) ||
         type == static_cast<uint8_t>(MessageType::kUnpublish);
}

}  // namespace

// ---- DaemonCounters -------------------------------------------------------

std::string DaemonCounters::ToString() const {
  auto v = [](const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  return absl::StrCat(
      "requests=", v(requests), " replies=", v(replies),
      " dropped_malformed=", v(dropped_malformed),
      " rejected_malformed=", v(rejected_malformed),
      " bad_version=", v(bad_version), " unknown_type=", v(unknown_type),
      " unknown_session=", v(unknown_session), " bad_mac=", v(bad_mac),
      " replayed=", v(replayed), " auth_failed=", v(auth_failed),
      " rate_limited=", v(rate_limited),
      " retransmissions=", v(retransmissions),
      " expired_sessions=", v(expired_sessions),
      " expiries_held=", v(expiries_held), " state_errors=", v(state_errors));
}

absl::string_view ClassicCommandName(uint8_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kLogin:
    case MessageType::kLoginFinish:
      return "AUTH";
    case MessageType::kHeartbeat:
      return "HBT";
    case MessageType::kLogout:
      return "XIT";
    case MessageType::kPing:
      return "PING";
    case MessageType::kListActivePeers:
      return "LAP";
    case MessageType::kListPublished:
      return "LPF";
    case MessageType::kPublish:
      return "PUB";
    case MessageType::kUnpublish:
      return "UNP";
    case MessageType::kSearch:
      return "SCH";
    case MessageType::kGet:
      return "GET";
    case MessageType::kStat:
      return "STAT";
  }
  return "UNKNOWN";
}

// ---- RequestHandler -------------------------------------------------------

RequestHandler::RequestHandler(const Shared& shared, Options options,
                               absl::Time now)
    : shared_(shared),
      registry_(shared.registry),
      sessions_(shared.sessions),
      counters_(shared.counters),
      options_(options),
      // The wheel spans twice the session timeout, so a heartbeat-extended
      // deadline is normally re-armed without wrapping.
      wheel_(options.wheel_slot,
             static_cast<size_t>(2 * options.session_timeout /
                                 options.wheel_slot) +
                 2,
             now) {
  ping_budget_.per_second = options.pings_per_second;
}

size_t RequestHandler::Handle(std::span<const uint8_t> datagram,
                              const Endpoint& from, absl::Time now,
                              std::span<uint8_t> reply) {
  Bump(counters_->requests);
  log_user_[0] = '\0';
  deferred_ = false;
  sealed_code_.reset();
  absl::StatusOr<Message> message = protocol::ParseDatagram(datagram);
  size_t size = 0;
  // Where a reply to a datagram that has proven no session key goes: never
  // larger than the datagram, so that a spoofed sender cannot make the
  // daemon a reflector. Only an admitted session request uses all of
  // `reply` (HandleSessionRequest).
  const std::span<uint8_t> unsealed =
      reply.first(std::min(reply.size(), datagram.size()));
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
                 unsealed);
    // In the sender's version: its client checks the version before
    // anything else and would drop a reply in ours unread, and wait for
    // nothing. The header layout and the status reply (code, message) are
    // the same in versions 1, 2 and 3, and stay so for this one answer.
    if (size > protocol::kVersionOffset) {
      unsealed[protocol::kVersionOffset] = other->version;
    }
  } else if (message->header.is_response()) {
    // Replies are never answered: that could make two daemons loop.
    Bump(counters_->dropped_malformed);
    return 0;
  } else if (!protocol::IsKnownMessageType(message->header.type)) {
    Bump(counters_->unknown_type);
    size = Error(message->header, ResultCode::kUnknownType,
                 absl::StrCat("unknown message type ", message->header.type),
                 unsealed);
  } else if (message->header.message_type() == MessageType::kPing) {
    LogRequest(message->header, from, "an unknown peer");
    size = HandlePing(*message, now, unsealed);
  } else if (message->header.message_type() == MessageType::kLogin) {
    size = HandleLogin(*message, datagram.size(), from, now, unsealed);
  } else if (message->header.message_type() == MessageType::kLoginFinish) {
    size = HandleLoginFinish(*message, from, now, unsealed);
  } else {
    size = HandleSessionRequest(*message, datagram, from, now, reply);
  }
  // A deferred request is counted when its reply goes out.
  if (deferred_) return 0;
  const uint8_t code = sealed_code_.value_or(
      size > protocol::kHeaderSize ? reply[protocol::kHeaderSize] : 0);
  metrics_.Record(message.ok() ? message->header.type : 0, size > 0, code);
  if (size > 0) {
    Bump(counters_->replies);
    if (options_.verbose) {
      LogReply(from, log_user_, code == static_cast<uint8_t>(ResultCode::kOk));
    }
  }
  return size;
}

void RequestHandler::Prefetch(std::span<const uint8_t> datagram) const {
  // The header's plaintext session id; ParseDatagram would check far more
  // than a prefetch needs.
  if (datagram.size() < protocol::kHeaderSize) return;
  uint64_t session_id = 0;
  protocol::Reader(datagram.subspan(protocol::kSessionIdOffset))
      .U64(&session_id);
  if (session_id != 0) session_hints_.Prefetch(session_id);
}

size_t RequestHandler::HandlePing(const Message& m, absl::Time now,
                                  std::span<uint8_t> reply) {
  absl::StatusOr<protocol::PingRequest> request =
      protocol::DecodePingRequest(m.body);
  // A bad or excess PING is dropped, never answered with an error: an error
  // reply could be larger than the request, and PING needs no login.
  if (!request.ok() || m.header.session_id != 0) {
    Bump(counters_->dropped_malformed);
    return 0;
  }
  if (!ping_budget_.TryTake(now)) {
    metrics_.pings_dropped.Add();
    return 0;
  }
  return protocol::EncodePingReply(m.header, request->token, reply);
}

bool RequestHandler::PingBudget::TryTake(absl::Time now) {
  if (now - window_start >= absl::Seconds(1)) {
    window_start = now;
    used = 0;
  }
  if (used >= per_second) return false;
  ++used;
  return true;
}

size_t RequestHandler::HandleSessionRequest(const Message& m,
                                            std::span<const uint8_t> datagram,
                                            const Endpoint& from,
                                            absl::Time now,
                                            std::span<uint8_t> reply) {
  const Header& h = m.header;
  // What this request reads of the session's state, for Prefetch.
  const SessionHints::Recorder recorder(session_hints_, h.session_id);
  // The body opens into opened_body_: the datagram itself stays as the
  // reactor received it.
  const SessionTable::Admission admission = sessions_->Admit(
      h.session_id, datagram, h.sequence, h.request_id, h.type, opened_body_);
  std::optional<UserName> user;
  if (admission.verdict == SessionTable::Admission::kAdmitted) {
    user = registry_->Admit(h.session_id, from, now,
                            h.message_type() == MessageType::kHeartbeat);
  } else if (admission.verdict != SessionTable::Admission::kUnknownSession &&
             registry_->IsLive(h.session_id, now)) {
    // Dropped: answering would help an attacker probe.
    Bump(admission.verdict == SessionTable::Admission::kBadMac
             ? counters_->bad_mac
             : counters_->replayed);
    return 0;
  }
  if (!user.has_value()) {
    // Unsealed: there is no key to seal it with. It only makes the client
    // log in again.
    Bump(counters_->unknown_session);
    LogRequest(h, from, "an unknown session");
    return Error(h, ResultCode::kUnknownSession,
                 "no such session (it expired or ended): log in again",
                 reply.first(std::min(reply.size(), datagram.size())));
  }
  Caller caller;
  caller.session_id = h.session_id;
  caller.sequence = h.sequence;
  caller.key = admission.key;
  caller.user = *user;
  caller.from = from;
  SetLogUser(caller.name());
  LogRequest(h, from, caller.name());
  size_t size;
  if (admission.pending) {
    // A retransmission of a request waiting for its journal batch: its
    // reply comes when the batch is durable; running it again would not
    // make that sooner.
    Bump(counters_->retransmissions);
    return 0;
  }
  if (admission.cached_code.has_value()) {
    // A retransmission of a request we already carried out: answer it the
    // same way without doing the work twice.
    Bump(counters_->retransmissions);
    const auto cached = static_cast<ResultCode>(*admission.cached_code);
    size = protocol::EncodeStatusReply(h, cached,
                                       protocol::ResultCodeName(cached), reply);
  } else {
    const Message opened{
        h, std::span<const uint8_t>(opened_body_).first(m.body.size())};
    size = DispatchSessionRequest(opened, caller, now, reply);
  }
  if (size > protocol::kHeaderSize) sealed_code_ = reply[protocol::kHeaderSize];
  return SealReply(caller.key, caller.sequence, reply, size);
}

size_t RequestHandler::DispatchSessionRequest(const Message& m,
                                              const Caller& caller,
                                              absl::Time now,
                                              std::span<uint8_t> reply) {
  const Header& h = m.header;
  switch (h.message_type()) {
    case MessageType::kHeartbeat:
    case MessageType::kLogout: {
      if (absl::Status s = protocol::DecodeEmptyRequest(m.body); !s.ok()) {
        Bump(counters_->rejected_malformed);
        return Error(h, ResultCode::kMalformed, s.message(), reply);
      }
      // Admission already extended a heartbeat's deadline. A logout ends
      // the presence first: a request of the session that passes the
      // session table meanwhile is refused by the registry.
      if (h.message_type() == MessageType::kLogout) {
        absl::Status s = registry_->Logout(h.session_id);
        sessions_->Erase(h.session_id);
        if (!s.ok()) {
          return Error(h, ResultCode::kUnknownSession, s.message(), reply);
        }
        // The user may log in on any daemon at once.
        LocalSessionEnded(caller.name(), h.session_id, /*release=*/true);
        Log("logout: ", caller.name(),
            absl::StrFormat(" (session %016x)", h.session_id));
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
    case MessageType::kStat:
      return HandleStat(m, caller, reply);
    case MessageType::kLogin:
    case MessageType::kLoginFinish:
    case MessageType::kPing:
      break;
  }
  return Error(h, ResultCode::kInternal, "unhandled message type", reply);
}

void RequestHandler::Tick(absl::Time now, absl::Time last_loss,
                          absl::Time drained_until) {
  // Judged at the time up to which every socket's datagrams are handled: a
  // heartbeat that arrived before a deadline has then renewed its session.
  const absl::Time judged = std::min(now, drained_until);
  wheel_.Advance(now, [&](uint64_t session_id) {
    bool expired = false;
    bool held = false;
    UserName user;
    std::optional<absl::Time> deadline = registry_->ExpireIfDue(
        session_id, judged, &expired, &user, last_loss, &held);
    if (held) Bump(counters_->expiries_held);
    if (deadline.has_value()) {
      wheel_.Schedule(session_id, *deadline);
    } else {
      // The presence is gone (expired now, or ended before by a logout,
      // a reload or a new login of its user): so goes the daemon's part.
      sessions_->Erase(session_id);
    }
    if (expired) {
      Bump(counters_->expired_sessions);
      LocalSessionEnded(user.view(), session_id, /*release=*/true);
      Log(absl::StrFormat("expiry: session %016x had no heartbeat for %s",
                          session_id,
                          absl::FormatDuration(options_.session_timeout)));
    }
  });
}

size_t RequestHandler::Error(const Header& request, ResultCode code,
                             absl::string_view message,
                             std::span<uint8_t> reply) {
  // A message is sent whole or not at all: `reply` may be cut to the
  // request's size (Handle), and a client shows the code's name for an
  // empty message rather than half a sentence.
  constexpr size_t kFixed = protocol::kHeaderSize + 1 + 2;
  if (kFixed + message.size() >
      std::min(reply.size(), protocol::kMaxDatagramSize)) {
    message = {};
  }
  return protocol::EncodeStatusReply(request, code, message, reply);
}

void RequestHandler::RememberReply(const Caller& caller, const Header& request,
                                   ResultCode code) {
  if (!IsMutating(request.type)) return;
  sessions_->Complete(caller.session_id, request.request_id, request.type,
                      static_cast<uint8_t>(code));
}

void RequestHandler::LocalSessionEnded(absl::string_view user,
                                       uint64_t session_id, bool release) {
  if (shared_.cluster != nullptr && release) {
    shared_.cluster->Release(std::string(user), session_id);
  }
  if (shared_.replica != nullptr) shared_.replica->LocalSessionEnded(user);
}

void RequestHandler::EnableDeferredReplies(
    JournalWriter::CompletionQueue* completions, ReplySender send) {
  completions_ = completions;
  send_ = std::move(send);
}

void RequestHandler::SetLogUser(absl::string_view user) {
  size_t n = std::min(user.size(), sizeof(log_user_) - 1);
  std::memcpy(log_user_, user.data(), n);
  log_user_[n] = '\0';
}

void RequestHandler::LogRequest(const Header& header, const Endpoint& from,
                                absl::string_view user) const {
  if (!options_.verbose) return;
  LogDebug(from.port, ": Received ", ClassicCommandName(header.type), " from ",
           user);
}

void RequestHandler::LogReply(const Endpoint& from, absl::string_view user,
                              bool ok) const {
  if (user.empty()) user = "an unknown peer";
  LogDebug(from.port, ": Sent ", ok ? "OK" : "ERR", " to ", user);
}

}  // namespace pcfs
