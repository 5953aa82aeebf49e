// Encode and decode costs of every control protocol message, requests and
// replies (core/proto/protocol.h). Each message has a BM_Encode/<message>
// (writing the whole datagram, header included) and a BM_Decode/<message>
// (splitting the datagram and decoding its body, as the receiving side does).
// The values are the sizes the daemon sees in practice: a SCRAM exchange of the
// RFC 7677 shape, a 22-byte file name, a full list page.
#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "benchmark/benchmark.h"
#include "core/proto/protocol.h"
#include "tests/rfc7677_example.h"

namespace pcfs::protocol {
namespace {

using Encoder = size_t (*)(std::span<uint8_t> out);
// Decodes a whole datagram; true if every step succeeded.
using Decoder = bool (*)(std::span<const uint8_t> datagram);

using rfc7677::kClientFinal;
using rfc7677::kClientFirst;
using rfc7677::kServerFinal;
using rfc7677::kServerFirst;
constexpr absl::string_view kFileName = "summer-budget-4711.pdf";
// A ticket of the size core/auth/ticket.h issues (base64url text).
const std::string kTicket(120, 'T');

Header MakeHeader(MessageType type) {
  Header h;
  h.type = static_cast<uint8_t>(type);
  h.request_id = 42;
  h.session_id = 0x1122334455667788ULL;
  h.sequence = 7;
  return h;
}

// The header of a reply, as the client receives it.
Header ReplyHeader(MessageType type) {
  Header h = MakeHeader(type);
  h.flags = kFlagResponse;
  return h;
}

// Splits `datagram` and hands its body to `decode_body`.
template <typename DecodeBody>
bool DecodeWith(std::span<const uint8_t> datagram, DecodeBody decode_body) {
  absl::StatusOr<Message> message = ParseDatagram(datagram);
  return message.ok() && decode_body(message->body);
}

// Splits a reply datagram, reads its result code, and hands the payload to
// `decode_payload`.
template <typename DecodePayload>
bool DecodeReplyWith(std::span<const uint8_t> datagram,
                     DecodePayload decode_payload) {
  return DecodeWith(datagram, [&](std::span<const uint8_t> body) {
    absl::StatusOr<ReplyStatus> status = DecodeReplyStatus(body);
    return status.ok() && decode_payload(*status);
  });
}

// ---- requests --------------------------------------------------------------

size_t EncodeLogin(std::span<uint8_t> out) {
  return EncodeLoginRequest(MakeHeader(MessageType::kLogin),
                            LoginRequest{kClientFirst}, out);
}
bool DecodeLogin(std::span<const uint8_t> datagram) {
  return DecodeWith(datagram, [](std::span<const uint8_t> body) {
    return DecodeLoginRequest(body).ok();
  });
}

size_t EncodeLoginFinish(std::span<uint8_t> out) {
  LoginFinishRequest request;
  request.client_first = kClientFirst;
  request.client_final = kClientFinal;
  request.tcp_port = 40000;
  return EncodeLoginFinishRequest(MakeHeader(MessageType::kLoginFinish),
                                  request, out);
}
bool DecodeLoginFinish(std::span<const uint8_t> datagram) {
  return DecodeWith(datagram, [](std::span<const uint8_t> body) {
    return DecodeLoginFinishRequest(body).ok();
  });
}

size_t EncodeHeartbeat(std::span<uint8_t> out) {
  return EncodeEmptyRequest(MakeHeader(MessageType::kHeartbeat), out);
}
size_t EncodeLogout(std::span<uint8_t> out) {
  return EncodeEmptyRequest(MakeHeader(MessageType::kLogout), out);
}
bool DecodeEmpty(std::span<const uint8_t> datagram) {
  return DecodeWith(datagram, [](std::span<const uint8_t> body) {
    return DecodeEmptyRequest(body).ok();
  });
}

size_t EncodeLap(std::span<uint8_t> out) {
  return EncodeListRequest(MakeHeader(MessageType::kListActivePeers),
                           ListRequest{}, out);
}
size_t EncodeLpf(std::span<uint8_t> out) {
  return EncodeListRequest(MakeHeader(MessageType::kListPublished),
                           ListRequest{}, out);
}
size_t EncodeSch(std::span<uint8_t> out) {
  ListRequest request;
  request.snapshot = 9;
  request.cursor = 50;
  request.pattern = "budget";
  return EncodeListRequest(MakeHeader(MessageType::kSearch), request, out);
}
bool DecodeList(std::span<const uint8_t> datagram) {
  return DecodeWith(datagram, [](std::span<const uint8_t> body) {
    return DecodeListRequest(body).ok();
  });
}

size_t EncodePub(std::span<uint8_t> out) {
  PublishRequest request;
  request.name = kFileName;
  request.size = 1 << 30;
  request.root.fill(0xab);
  return EncodePublishRequest(MakeHeader(MessageType::kPublish), request, out);
}
bool DecodePub(std::span<const uint8_t> datagram) {
  return DecodeWith(datagram, [](std::span<const uint8_t> body) {
    return DecodePublishRequest(body).ok();
  });
}

size_t EncodeUnp(std::span<uint8_t> out) {
  return EncodeNameRequest(MakeHeader(MessageType::kUnpublish),
                           NameRequest{kFileName}, out);
}
size_t EncodeGet(std::span<uint8_t> out) {
  return EncodeNameRequest(MakeHeader(MessageType::kGet),
                           NameRequest{kFileName}, out);
}
bool DecodeName(std::span<const uint8_t> datagram) {
  return DecodeWith(datagram, [](std::span<const uint8_t> body) {
    return DecodeNameRequest(body).ok();
  });
}

// ---- replies ---------------------------------------------------------------

size_t EncodeOkReply(std::span<uint8_t> out) {
  return EncodeStatusReply(ReplyHeader(MessageType::kHeartbeat),
                           ResultCode::kOk, "", out);
}
size_t EncodeErrorReply(std::span<uint8_t> out) {
  return EncodeStatusReply(ReplyHeader(MessageType::kGet),
                           ResultCode::kNotFound, "File not found", out);
}
bool DecodeStatus(std::span<const uint8_t> datagram) {
  return DecodeReplyWith(datagram, [](const ReplyStatus&) { return true; });
}

size_t EncodeLoginReplyDatagram(std::span<uint8_t> out) {
  return EncodeLoginReply(ReplyHeader(MessageType::kLogin),
                          LoginReply{kServerFirst}, out);
}
bool DecodeLoginReplyDatagram(std::span<const uint8_t> datagram) {
  return DecodeReplyWith(datagram, [](const ReplyStatus& status) {
    return DecodeLoginReply(status.payload).ok();
  });
}

size_t EncodeLoginFinishReplyDatagram(std::span<uint8_t> out) {
  LoginFinishReply reply;
  reply.server_final = kServerFinal;
  reply.session_id = 0x1122334455667788ULL;
  reply.heartbeat_interval_ms = 2000;
  reply.session_timeout_ms = 3000;
  return EncodeLoginFinishReply(ReplyHeader(MessageType::kLoginFinish), reply,
                                out);
}
bool DecodeLoginFinishReplyDatagram(std::span<const uint8_t> datagram) {
  return DecodeReplyWith(datagram, [](const ReplyStatus& status) {
    return DecodeLoginFinishReply(status.payload).ok();
  });
}

size_t EncodeGetReplyDatagram(std::span<uint8_t> out) {
  GetReply reply;
  reply.size = 1 << 30;
  reply.root.fill(0xab);
  reply.holders[0].user = "hans";
  reply.holders[0].address.ip = {127, 0, 0, 1};
  reply.holders[0].address.port = 40000;
  reply.holders[0].ticket = kTicket;
  reply.holder_count = 1;
  return EncodeGetReply(ReplyHeader(MessageType::kGet), reply, out);
}
bool DecodeGetReplyDatagram(std::span<const uint8_t> datagram) {
  return DecodeReplyWith(datagram, [](const ReplyStatus& status) {
    return DecodeGetReply(status.payload).ok();
  });
}

// A full page of 22-byte names, as lap, lpf and sch send them.
size_t EncodeListPage(std::span<uint8_t> out) {
  ListReplyWriter writer(ReplyHeader(MessageType::kSearch), 9, 1000, out);
  while (writer.Add(kFileName)) {
  }
  return writer.Finish(50);
}
bool DecodeListPage(std::span<const uint8_t> datagram) {
  return DecodeReplyWith(datagram, [](const ReplyStatus& status) {
    return DecodeListReply(status.payload).ok();
  });
}

// ---- the benchmarks --------------------------------------------------------

void BM_Encode(benchmark::State& state, Encoder encode) {
  std::array<uint8_t, kMaxDatagramSize> out;
  size_t size = 0;
  for (auto _ : state) {
    size = encode(out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  if (size == 0) state.SkipWithError("the message did not encode");
  state.counters["bytes"] = static_cast<double>(size);
}

void BM_Decode(benchmark::State& state, Encoder encode, Decoder decode) {
  std::array<uint8_t, kMaxDatagramSize> out;
  const size_t size = encode(out);
  const std::span<const uint8_t> datagram(out.data(), size);
  bool ok = true;
  for (auto _ : state) {
    ok &= decode(datagram);
    benchmark::DoNotOptimize(ok);
  }
  if (size == 0 || !ok) state.SkipWithError("the message did not decode");
}

#define PCFS_CODEC_BENCHMARKS(message, encode, decode) \
  BENCHMARK_CAPTURE(BM_Encode, message, &(encode));    \
  BENCHMARK_CAPTURE(BM_Decode, message, &(encode), &(decode))

PCFS_CODEC_BENCHMARKS(Login, EncodeLogin, DecodeLogin);
PCFS_CODEC_BENCHMARKS(LoginFinish, EncodeLoginFinish, DecodeLoginFinish);
PCFS_CODEC_BENCHMARKS(Heartbeat, EncodeHeartbeat, DecodeEmpty);
PCFS_CODEC_BENCHMARKS(Logout, EncodeLogout, DecodeEmpty);
PCFS_CODEC_BENCHMARKS(Lap, EncodeLap, DecodeList);
PCFS_CODEC_BENCHMARKS(Lpf, EncodeLpf, DecodeList);
PCFS_CODEC_BENCHMARKS(Sch, EncodeSch, DecodeList);
PCFS_CODEC_BENCHMARKS(Pub, EncodePub, DecodePub);
PCFS_CODEC_BENCHMARKS(Unp, EncodeUnp, DecodeName);
PCFS_CODEC_BENCHMARKS(Get, EncodeGet, DecodeName);
PCFS_CODEC_BENCHMARKS(OkReply, EncodeOkReply, DecodeStatus);
PCFS_CODEC_BENCHMARKS(ErrorReply, EncodeErrorReply, DecodeStatus);
PCFS_CODEC_BENCHMARKS(LoginReply, EncodeLoginReplyDatagram,
                      DecodeLoginReplyDatagram);
PCFS_CODEC_BENCHMARKS(LoginFinishReply, EncodeLoginFinishReplyDatagram,
                      DecodeLoginFinishReplyDatagram);
PCFS_CODEC_BENCHMARKS(GetReply, EncodeGetReplyDatagram, DecodeGetReplyDatagram);
PCFS_CODEC_BENCHMARKS(ListPage, EncodeListPage, DecodeListPage);

}  // namespace
}  // namespace pcfs::protocol
