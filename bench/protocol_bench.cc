// Encode and decode costs of the control protocol's messages.
#include <vector>

#include "benchmark/benchmark.h"
#include "core/protocol.h"

namespace pcfs::protocol {
namespace {

Header MakeHeader(MessageType type) {
  Header h;
  h.type = static_cast<uint8_t>(type);
  h.request_id = 42;
  h.session_id = 0x1122334455667788ULL;
  return h;
}

void BM_EncodeHeartbeat(benchmark::State& state) {
  uint8_t out[kMaxDatagramSize];
  Header h = MakeHeader(MessageType::kHeartbeat);
  for (auto _ : state) {
    benchmark::DoNotOptimize(EncodeEmptyRequest(h, out));
  }
}
BENCHMARK(BM_EncodeHeartbeat);

void BM_ParseHeartbeat(benchmark::State& state) {
  uint8_t out[kMaxDatagramSize];
  size_t n = EncodeEmptyRequest(MakeHeader(MessageType::kHeartbeat), out);
  for (auto _ : state) {
    auto message = ParseDatagram(std::span<const uint8_t>(out, n));
    benchmark::DoNotOptimize(message);
  }
}
BENCHMARK(BM_ParseHeartbeat);

void BM_EncodeDecodeGet(benchmark::State& state) {
  uint8_t out[kMaxDatagramSize];
  NameRequest request{"BitTrickle.mp4"};
  for (auto _ : state) {
    size_t n = EncodeNameRequest(MakeHeader(MessageType::kGet), request, out);
    auto message = ParseDatagram(std::span<const uint8_t>(out, n));
    auto decoded = DecodeNameRequest(message->body);
    benchmark::DoNotOptimize(decoded);
  }
}
BENCHMARK(BM_EncodeDecodeGet);

void BM_EncodeGetReply(benchmark::State& state) {
  uint8_t out[kMaxDatagramSize];
  GetReply reply;
  reply.holder = "hans";
  reply.address.ip = {127, 0, 0, 1};
  reply.address.port = 40000;
  reply.size = 1 << 30;
  Header h = MakeHeader(MessageType::kGet);
  for (auto _ : state) {
    benchmark::DoNotOptimize(EncodeGetReply(h, reply, out));
  }
}
BENCHMARK(BM_EncodeGetReply);

void BM_FillListPage(benchmark::State& state) {
  uint8_t out[kMaxDatagramSize];
  std::string name(20, 'n');
  Header h = MakeHeader(MessageType::kListActivePeers);
  for (auto _ : state) {
    ListReplyWriter writer(h, 1, 1000, out);
    while (writer.Add(name)) {
    }
    benchmark::DoNotOptimize(writer.Finish(0));
  }
}
BENCHMARK(BM_FillListPage);

}  // namespace
}  // namespace pcfs::protocol
