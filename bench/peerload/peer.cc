#include "bench/peerload/peer.h"

#include "absl/strings/str_cat.h"

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

size_t EncodeEcho(const PendingRequest& request, uint64_t peer_index,
                  std::span<uint8_t> out) {
  Header header;
  header.type = static_cast<uint8_t>(MessageType::kHeartbeat);
  header.request_id = request.id;
  header.session_id = peer_index + 1;
  // As long as a heartbeat (ClientSession pads it), for a fair comparison.
  return protocol::EncodeEmptyRequest(header, out,
                                      protocol::kEmptyRequestPaddingBytes);
}

bool MatchEcho(const PendingRequest& request,
               std::span<const uint8_t> datagram) {
  absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(datagram);
  return message.ok() && message->header.request_id == request.id &&
         message->header.type == static_cast<uint8_t>(MessageType::kHeartbeat);
}

}  // namespace pcfs::peerload
