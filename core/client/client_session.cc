#include "core/client/client_session.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/auth/datagram_auth.h"

namespace pcfs::client {

using protocol::Header;
using protocol::MessageType;
using protocol::ResultCode;

absl::Status StatusFromResult(ResultCode code, absl::string_view message) {
  // The daemon leaves out a message that does not fit in a reply to a
  // request that proved no session (it is never larger than the request).
  const std::string text(message.empty() ? protocol::ResultCodeName(code)
                                         : message);
  switch (code) {
    case ResultCode::kOk:
      return absl::OkStatus();
    case ResultCode::kAuthFailed:
      return absl::UnauthenticatedError(text);
    case ResultCode::kAlreadyActive:
      return absl::AlreadyExistsError(text);
    case ResultCode::kNotFound:
      return absl::NotFoundError(text);
    case ResultCode::kInvalidName:
    case ResultCode::kMalformed:
      return absl::InvalidArgumentError(text);
    case ResultCode::kSessionMismatch:
      return absl::PermissionDeniedError(text);
    case ResultCode::kRateLimited:
      return absl::ResourceExhaustedError(text);
    case ResultCode::kCursorExpired:
      return absl::AbortedError(text);
    case ResultCode::kUnknownSession:
    case ResultCode::kUnsupportedVersion:
      return absl::FailedPreconditionError(text);
    case ResultCode::kUnknownType:
    case ResultCode::kInternal:
      break;
  }
  return absl::InternalError(text);
}

struct ClientSession::LoginState {
  ScramClient scram;
  std::string client_final;  // empty until LOGIN's reply
  uint16_t file_port = 0;
};

ClientSession::ClientSession(uint32_t first_request_id, RetryPolicy retry)
    : retry_(retry), next_request_id_(first_request_id) {}
ClientSession::ClientSession(uint32_t first_request_id, RetryPolicy retry,
                             std::shared_ptr<SequenceCounter> sequences)
    : retry_(retry),
      sequences_(std::move(sequences)),
      next_request_id_(first_request_id) {}
ClientSession::~ClientSession() = default;
ClientSession::ClientSession(ClientSession&&) noexcept = default;
ClientSession& ClientSession::operator=(ClientSession&&) noexcept = default;

void ClientSession::Begin(MessageType type) {
  type_ = type;
  request_id_ = next_request_id_++;
  tries_ = 0;
  first_sequence_ = 0;
  last_sequence_ = 0;
  deadline_ = absl::InfinitePast();
  in_flight_ = true;
}

absl::Status ClientSession::StartLogin(absl::string_view user,
                                       absl::string_view password,
                                       uint16_t file_port) {
  EndSession();
  absl::StatusOr<std::string> nonce = MakeScramNonce();
  if (!nonce.ok()) return nonce.status();
  absl::StatusOr<ScramClient> scram =
      ScramClient::Start(user, password, *nonce);
  if (!scram.ok()) return scram.status();
  login_ = std::make_unique<LoginState>(
      LoginState{*std::move(scram), std::string(), file_port});
  Begin(MessageType::kLogin);
  return absl::OkStatus();
}

absl::Status ClientSession::ContinueLogin(const Reply& reply) {
  absl::Status s;
  if (login_ == nullptr || (reply.type != MessageType::kLogin &&
                            reply.type != MessageType::kLoginFinish)) {
    s = absl::InternalError("a login reply outside a login");
  } else if (!reply.malformed.ok()) {
    s = absl::InternalError(absl::StrCat("malformed reply from the daemon: ",
                                         reply.malformed.message()));
  } else if (reply.code == ResultCode::kMalformed &&
             reply.type == MessageType::kLoginFinish &&
             absl::StrContains(reply.message, "trailing bytes")) {
    // A daemon older than TLS key pins reads the pin as trailing bytes.
    s = absl::FailedPreconditionError(absl::StrCat(
        "the daemon is older than this peerctl (it takes no TLS key pin at "
        "login: ",
        reply.message, "); upgrade peerconnectd"));
  } else if (reply.code != ResultCode::kOk) {
    s = StatusFromResult(reply.code, reply.message);
  } else if (reply.type == MessageType::kLogin) {
    s = AcceptServerFirst(reply.payload);
    if (s.ok()) {
      Begin(MessageType::kLoginFinish);
      return s;
    }
  } else {
    s = AcceptServerFinal(reply.payload);
  }
  login_.reset();
  return s;
}

absl::Status ClientSession::AcceptServerFirst(
    std::span<const uint8_t> payload) {
  // Step 1 answered: the salt, the iteration count and the daemon's part
  // of the nonce give the proof (one PBKDF2).
  absl::StatusOr<protocol::LoginReply> first =
      protocol::DecodeLoginReply(payload);
  if (!first.ok()) return first.status();
  absl::StatusOr<std::string> client_final =
      login_->scram.HandleServerFirst(first->server_first);
  if (!client_final.ok()) {
    return absl::InternalError(absl::StrCat("the daemon's login reply: ",
                                            client_final.status().message()));
  }
  login_->client_final = *std::move(client_final);
  return absl::OkStatus();
}

absl::Status ClientSession::AcceptServerFinal(
    std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::LoginFinishReply> accepted =
      protocol::DecodeLoginFinishReply(payload);
  if (!accepted.ok()) return accepted.status();
  // The daemon proves it holds the user's verifier: no impostor daemon.
  if (absl::Status s = login_->scram.HandleServerFinal(accepted->server_final);
      !s.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("the daemon failed to prove its identity: ", s.message()));
  }
  absl::StatusOr<SessionKey> key = login_->scram.session_key();
  if (!key.ok()) return key.status();
  absl::StatusOr<DatagramKeys> datagram_keys = DeriveDatagramKeys(*key);
  if (!datagram_keys.ok()) return datagram_keys.status();
  key_ = *key;
  datagram_keys_ = *datagram_keys;
  next_sequence_ = 1;  // unused with a shared counter, which never goes back
  session_id_ = accepted->session_id;
  heartbeat_interval_ms_ = accepted->heartbeat_interval_ms;
  session_timeout_ms_ = accepted->session_timeout_ms;
  return absl::OkStatus();
}

absl::Status ClientSession::StartRequest(MessageType type) {
  if (type == MessageType::kLogin || type == MessageType::kLoginFinish) {
    return absl::InvalidArgumentError("a login step is not a session request");
  }
  if (!logged_in()) return absl::FailedPreconditionError("not logged in");
  Begin(type);
  return absl::OkStatus();
}

size_t ClientSession::EncodeBody(const Header& header, const RequestBody& body,
                                 std::span<uint8_t> out) const {
  switch (type_) {
    case MessageType::kLogin:
      if (login_ == nullptr) return 0;
      // Padded: the daemon answers a LOGIN only within its size
      // (docs/PROTOCOL.md, "Amplification").
      return protocol::EncodeLoginRequest(
          header,
          protocol::LoginRequest{
              login_->scram.client_first_message(),
              protocol::LoginPaddingFor(login_->scram.client_first_message())},
          out);
    case MessageType::kLoginFinish: {
      if (login_ == nullptr || login_->client_final.empty()) return 0;
      protocol::LoginFinishRequest finish;
      finish.client_first = login_->scram.client_first_message();
      finish.client_final = login_->client_final;
      finish.tcp_port = login_->file_port;
      finish.key_pin = key_pin_;
      return protocol::EncodeLoginFinishRequest(header, finish, out);
    }
    case MessageType::kHeartbeat:
    case MessageType::kLogout:
      return protocol::EncodeEmptyRequest(header, out,
                                          protocol::kEmptyRequestPaddingBytes);
    case MessageType::kListActivePeers:
    case MessageType::kListPublished:
    case MessageType::kSearch:
      return protocol::EncodeListRequest(header, body.list, out);
    case MessageType::kPublish:
      return protocol::EncodePublishRequest(header, body.publish, out);
    case MessageType::kUnpublish:
    case MessageType::kGet:
    case MessageType::kStat:
      return protocol::EncodeNameRequest(header, body.name, out);
    case MessageType::kPing:  // stateless: daemon/ping.cc sends it, no session
      return 0;
  }
  return 0;
}

size_t ClientSession::EncodeTry(absl::Time now, const RequestBody& body,
                                std::span<uint8_t> out) {
  if (!can_retry()) return 0;
  Header header;
  header.type = static_cast<uint8_t>(type_);
  header.request_id = request_id_;
  if (sealed()) header.session_id = session_id_;
  const size_t size = EncodeBody(header, body, out);
  if (size == 0) return 0;
  // Every try of a session request is a new datagram to the daemon's
  // replay window: a new sequence number and nonce, the same request id.
  if (sealed()) {
    const uint64_t sequence = TakeSequence();
    if (tries_ == 0) first_sequence_ = sequence;
    last_sequence_ = sequence;
    SealDatagram(datagram_keys_, Direction::kToDaemon, sequence,
                 out.first(size));
  }
  ++tries_;
  deadline_ = now + retry_.TimeoutOf(tries_);
  return size;
}

std::optional<Reply> ClientSession::Receive(std::span<const uint8_t> datagram) {
  if (!in_flight_) return std::nullopt;
  absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(datagram);
  if (!message.ok() || !message->header.is_response() ||
      message->header.request_id != request_id_ ||
      message->header.type != static_cast<uint8_t>(type_)) {
    return std::nullopt;
  }
  std::span<const uint8_t> body = message->body;
  if (sealed()) {
    // A session reply must open under our key for replies with the
    // sequence number of one of our tries (the daemon seals a reply with
    // its request's). The exceptions are the replies the daemon cannot
    // seal, "unknown session" and "unsupported version", which come in the
    // clear with a zero MAC field; they only make the client log in again
    // or stop with the daemon's message.
    if (IsUnsealed(datagram)) {
      absl::StatusOr<protocol::ReplyStatus> clear =
          protocol::DecodeReplyStatus(body);
      if (!clear.ok() || (clear->code != ResultCode::kUnknownSession &&
                          clear->code != ResultCode::kUnsupportedVersion)) {
        return std::nullopt;
      }
    } else {
      const std::optional<uint64_t> sequence = OpenDatagram(
          datagram_keys_, Direction::kToClient, datagram, opened_body_);
      if (!sequence.has_value() || *sequence < first_sequence_ ||
          *sequence > last_sequence_ || first_sequence_ == 0) {
        return std::nullopt;
      }
      body = std::span<const uint8_t>(opened_body_).first(body.size());
    }
  }
  absl::StatusOr<protocol::ReplyStatus> status =
      protocol::DecodeReplyStatus(body);
  in_flight_ = false;
  Reply reply;
  reply.type = type_;
  reply.tries = tries_;
  if (!status.ok()) {
    reply.malformed = status.status();
    return reply;
  }
  reply.code = status->code;
  reply.message = status->message;
  reply.payload = status->payload;
  return reply;
}

void ClientSession::EndSession() {
  session_id_ = 0;
  login_.reset();
  in_flight_ = false;
}

ClientSession::Saved ClientSession::Save() const {
  return Saved{session_id_,
               key_,
               datagram_keys_,
               next_sequence_,
               heartbeat_interval_ms_,
               session_timeout_ms_};
}

void ClientSession::Restore(const Saved& saved) {
  login_.reset();
  in_flight_ = false;
  session_id_ = saved.session_id;
  key_ = saved.key;
  datagram_keys_ = saved.datagram_keys;
  next_sequence_ = saved.next_sequence;
  heartbeat_interval_ms_ = saved.heartbeat_interval_ms;
  session_timeout_ms_ = saved.session_timeout_ms;
}

}  // namespace pcfs::client
