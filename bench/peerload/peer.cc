#include "bench/peerload/peer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/auth/datagram_auth.h"

namespace pcfs::peerload {

using protocol::Header;
using protocol::MessageType;
using protocol::ResultCode;

// The file server port a simulated peer announces. Nothing listens there
// (peerload never downloads), but the daemon's GET skips holders that
// announce none (port 0), and GET should find the published names.
constexpr uint16_t kAnnouncedFilePort = 9;

struct Peer::LoginState {
  ScramClient scram;
  std::string client_final;  // empty until LOGIN's reply
};

Peer::Peer() = default;
Peer::~Peer() = default;
Peer::Peer(Peer&&) noexcept = default;
Peer& Peer::operator=(Peer&&) noexcept = default;

absl::Status Peer::StartLogin(absl::string_view user,
                              absl::string_view password) {
  EndSession();
  absl::StatusOr<std::string> nonce = MakeScramNonce();
  if (!nonce.ok()) return nonce.status();
  absl::StatusOr<ScramClient> scram =
      ScramClient::Start(user, password, *nonce);
  if (!scram.ok()) return scram.status();
  login_ = std::make_unique<LoginState>(LoginState{*std::move(scram), {}});
  return absl::OkStatus();
}

absl::Status Peer::AcceptLoginReply(std::span<const uint8_t> payload) {
  if (login_ == nullptr) return absl::FailedPreconditionError("no login");
  absl::StatusOr<protocol::LoginReply> first =
      protocol::DecodeLoginReply(payload);
  if (!first.ok()) return first.status();
  absl::StatusOr<std::string> client_final =
      login_->scram.HandleServerFirst(first->server_first);
  if (!client_final.ok()) return client_final.status();
  login_->client_final = *std::move(client_final);
  return absl::OkStatus();
}

absl::Status Peer::AcceptLoginFinishReply(std::span<const uint8_t> payload) {
  if (login_ == nullptr) return absl::FailedPreconditionError("no login");
  absl::StatusOr<protocol::LoginFinishReply> accepted =
      protocol::DecodeLoginFinishReply(payload);
  if (!accepted.ok()) return accepted.status();
  if (absl::Status s = login_->scram.HandleServerFinal(accepted->server_final);
      !s.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("the daemon failed to prove its identity: ", s.message()));
  }
  absl::StatusOr<SessionKey> key = login_->scram.session_key();
  if (!key.ok()) return key.status();
  key_ = *key;
  next_sequence_ = 1;
  session_id_ = accepted->session_id;
  heartbeat_interval_ms_ = accepted->heartbeat_interval_ms;
  session_timeout_ms_ = accepted->session_timeout_ms;
  login_.reset();
  return absl::OkStatus();
}

void Peer::EndSession() {
  session_id_ = 0;
  login_.reset();
}

size_t Peer::EncodeSessionBody(const PendingRequest& request,
                               const Catalog& catalog, const Header& header,
                               std::span<uint8_t> out) const {
  switch (request.type) {
    case MessageType::kHeartbeat:
    case MessageType::kLogout:
      return protocol::EncodeEmptyRequest(header, out);
    case MessageType::kGet:
      return protocol::EncodeNameRequest(
          header, protocol::NameRequest{catalog.name(request.name)}, out);
    case MessageType::kPublish: {
      protocol::PublishRequest publish;
      publish.name = catalog.name(request.name);
      publish.size = 4096;
      return protocol::EncodePublishRequest(header, publish, out);
    }
    case MessageType::kSearch:
    case MessageType::kListActivePeers:
    case MessageType::kListPublished: {
      protocol::ListRequest list;
      if (request.type == MessageType::kSearch) {
        list.pattern =
            catalog.name(request.name)
                .substr(request.pattern_offset, request.pattern_length);
      }
      return protocol::EncodeListRequest(header, list, out);
    }
    default:
      return 0;
  }
}

size_t Peer::EncodeTry(const PendingRequest& request, const Catalog& catalog,
                       std::span<uint8_t> out) {
  Header header;
  header.type = static_cast<uint8_t>(request.type);
  header.request_id = request.id;
  if (request.type == MessageType::kLogin) {
    if (login_ == nullptr) return 0;
    return protocol::EncodeLoginRequest(
        header, protocol::LoginRequest{login_->scram.client_first_message()},
        out);
  }
  if (request.type == MessageType::kLoginFinish) {
    if (login_ == nullptr || login_->client_final.empty()) return 0;
    protocol::LoginFinishRequest finish;
    finish.client_first = login_->scram.client_first_message();
    finish.client_final = login_->client_final;
    finish.tcp_port = kAnnouncedFilePort;
    return protocol::EncodeLoginFinishRequest(header, finish, out);
  }
  if (session_id_ == 0) return 0;
  // Every try is a new datagram to the daemon's replay window.
  header.session_id = session_id_;
  header.sequence = next_sequence_++;
  const size_t size = EncodeSessionBody(request, catalog, header, out);
  if (size != 0) SealDatagram(key_, out.first(size));
  return size;
}

std::optional<MatchedReply> Peer::Match(
    const PendingRequest& request, std::span<const uint8_t> datagram) const {
  absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(datagram);
  if (!message.ok() || !message->header.is_response() ||
      message->header.request_id != request.id ||
      message->header.type != static_cast<uint8_t>(request.type)) {
    return std::nullopt;
  }
  absl::StatusOr<protocol::ReplyStatus> status =
      protocol::DecodeReplyStatus(message->body);
  const bool sealed = request.type != MessageType::kLogin &&
                      request.type != MessageType::kLoginFinish;
  // "Unknown session" cannot be sealed (the daemon has no key for it).
  const bool authentic =
      !sealed || (status.ok() && status->code == ResultCode::kUnknownSession) ||
      VerifyDatagram(key_, datagram);
  if (!authentic) return std::nullopt;
  MatchedReply reply;
  if (!status.ok()) {
    reply.malformed = true;
    return reply;
  }
  reply.code = status->code;
  reply.payload = status->payload;
  return reply;
}

size_t Peer::EncodeEcho(const PendingRequest& request, uint64_t peer_index,
                        std::span<uint8_t> out) {
  Header header;
  header.type = static_cast<uint8_t>(MessageType::kHeartbeat);
  header.request_id = request.id;
  header.session_id = peer_index + 1;
  return protocol::EncodeEmptyRequest(header, out);
}

bool Peer::MatchEcho(const PendingRequest& request,
                     std::span<const uint8_t> datagram) {
  absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(datagram);
  return message.ok() && message->header.request_id == request.id &&
         message->header.type == static_cast<uint8_t>(MessageType::kHeartbeat);
}

}  // namespace pcfs::peerload
