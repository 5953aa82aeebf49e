#include "bench/peerload/peer.h"

#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/auth/datagram_auth.h"

namespace pcfs::peerload {

using protocol::Header;
using protocol::MessageType;

std::string OwnName(absl::string_view user, uint32_t k) {
  return absl::StrCat(user, "-own-", k, ".dat");
}

bool IsOwnNameRequest(const PendingRequest& request) {
  return request.purpose == Purpose::kMix &&
         (request.kind == RequestKind::kPublish ||
          request.kind == RequestKind::kUnpublish);
}

client::RequestBody BodyOf(const PendingRequest& request,
                           const Catalog& catalog, absl::string_view own_name) {
  client::RequestBody body;
  if (IsOwnNameRequest(request)) {
    if (request.type == MessageType::kPublish) {
      body.publish.name = own_name;
      body.publish.size = 4096;
    } else {
      body.name.name = own_name;
    }
    return body;
  }
  switch (request.type) {
    case MessageType::kGet:
      body.name.name = catalog.name(request.name);
      break;
    case MessageType::kPublish:
      body.publish.name = catalog.name(request.name);
      body.publish.size = 4096;
      break;
    case MessageType::kSearch:
      body.list.pattern =
          catalog.name(request.name)
              .substr(request.pattern_offset, request.pattern_length);
      break;
    default:
      break;  // HEARTBEAT, LOGOUT, LAP, LPF: nothing of the catalog's
  }
  return body;
}

namespace {

// A peer's raw-mode keys: any fixed bytes do, distinct per peer as a
// session's are, so that the cipher cache sees as many keys.
DatagramKeys EchoKeys(uint64_t peer_index) {
  DatagramKeys keys;
  keys.to_daemon.fill(0x5a);
  keys.to_client.fill(0xa5);
  std::memcpy(keys.to_daemon.data(), &peer_index, sizeof(peer_index));
  std::memcpy(keys.to_client.data(), &peer_index, sizeof(peer_index));
  return keys;
}

}  // namespace

size_t EncodeEcho(const PendingRequest& request, uint64_t peer_index,
                  std::span<uint8_t> out) {
  Header header;
  header.type = static_cast<uint8_t>(MessageType::kHeartbeat);
  header.request_id = request.id;
  header.session_id = peer_index + 1;
  // As long as a heartbeat (ClientSession pads it), for a fair comparison.
  const size_t size = protocol::EncodeEmptyRequest(
      header, out, protocol::kEmptyRequestPaddingBytes);
  if (size != 0) {
    SealDatagram(EchoKeys(peer_index), Direction::kToDaemon, request.id,
                 out.first(size));
  }
  return size;
}

bool MatchEcho(const PendingRequest& request, uint64_t peer_index,
               std::span<const uint8_t> datagram) {
  uint8_t body[protocol::kMaxDatagramSize];  // the plaintext: unused
  const std::optional<uint64_t> sequence =
      OpenDatagram(EchoKeys(peer_index), Direction::kToDaemon, datagram, body);
  if (!sequence.has_value() || *sequence != request.id) return false;
  absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(datagram);
  return message.ok() && message->header.request_id == request.id &&
         message->header.type == static_cast<uint8_t>(MessageType::kHeartbeat);
}

}  // namespace pcfs::peerload
