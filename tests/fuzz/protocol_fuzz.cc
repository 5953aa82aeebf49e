// libFuzzer entry point for core/proto/protocol.h: runs ParseDatagram and every
// Decode on arbitrary bytes. Besides crashes and sanitizer reports it checks
// one property: a request that decodes re-encodes to exactly the same bytes
// (the encoding is canonical: one datagram per value).
//
// Built by scripts/fuzz.sh (CMake option PCFS_FUZZ, clang); its seeds are
// in tests/fuzz/corpus/protocol_fuzz/, the test vectors of docs/PROTOCOL.md
// among them (random bytes seldom carry the magic and version).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "core/proto/protocol.h"

namespace pcfs::protocol {
namespace {

// Traps unless `encoded` bytes of `out` equal the datagram.
void CheckSame(std::span<const uint8_t> datagram, size_t encoded,
               std::span<const uint8_t> out) {
  if (encoded != datagram.size() ||
      std::memcmp(out.data(), datagram.data(), encoded) != 0) {
    __builtin_trap();
  }
}

void FuzzRequest(std::span<const uint8_t> datagram, const Message& m) {
  std::array<uint8_t, kMaxDatagramSize> out{};
  switch (m.header.message_type()) {
    case MessageType::kLogin:
      if (auto r = DecodeLoginRequest(m.body); r.ok()) {
        CheckSame(datagram, EncodeLoginRequest(m.header, *r, out), out);
      }
      break;
    case MessageType::kLoginFinish:
      if (auto r = DecodeLoginFinishRequest(m.body); r.ok()) {
        CheckSame(datagram, EncodeLoginFinishRequest(m.header, *r, out), out);
      }
      break;
    case MessageType::kHeartbeat:
    case MessageType::kLogout:
      if (DecodeEmptyRequest(m.body).ok()) {
        CheckSame(datagram, EncodeEmptyRequest(m.header, out, m.body.size()),
                  out);
      }
      break;
    case MessageType::kPing:
      if (auto r = DecodePingRequest(m.body); r.ok()) {
        CheckSame(datagram, EncodePingRequest(m.header, *r, out), out);
      }
      break;
    case MessageType::kListActivePeers:
    case MessageType::kListPublished:
    case MessageType::kSearch:
      if (auto r = DecodeListRequest(m.body); r.ok()) {
        CheckSame(datagram, EncodeListRequest(m.header, *r, out), out);
      }
      break;
    case MessageType::kPublish:
      if (auto r = DecodePublishRequest(m.body); r.ok()) {
        CheckSame(datagram, EncodePublishRequest(m.header, *r, out), out);
      }
      break;
    case MessageType::kUnpublish:
    case MessageType::kGet:
    case MessageType::kStat:
      if (auto r = DecodeNameRequest(m.body); r.ok()) {
        CheckSame(datagram, EncodeNameRequest(m.header, *r, out), out);
      }
      break;
  }
}

void FuzzReply(const Message& m) {
  auto status = DecodeReplyStatus(m.body);
  if (!status.ok() || status->code != ResultCode::kOk) return;
  (void)DecodeLoginReply(status->payload);
  (void)DecodeLoginFinishReply(status->payload);
  (void)DecodeGetReply(status->payload);
  (void)DecodeStatReply(status->payload);
  (void)DecodeListReply(status->payload);
}

}  // namespace
}  // namespace pcfs::protocol

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pcfs::protocol;
  std::span<const uint8_t> input(data, size);

  // Every decoder on the raw bytes, as if they were a body or a payload.
  (void)DecodeLoginRequest(input);
  (void)DecodeLoginFinishRequest(input);
  (void)DecodeEmptyRequest(input);
  (void)DecodeListRequest(input);
  (void)DecodePublishRequest(input);
  (void)DecodeNameRequest(input);
  (void)DecodeReplyStatus(input);
  (void)DecodeLoginReply(input);
  (void)DecodeLoginFinishReply(input);
  (void)DecodeGetReply(input);
  (void)DecodeListReply(input);

  // And the bytes as a datagram, the way the daemon and the client see it.
  auto message = ParseDatagram(input);
  if (!message.ok()) return 0;
  if (message->header.is_response()) {
    FuzzReply(*message);
  } else {
    FuzzRequest(input, *message);
  }
  return 0;
}
