// The daemon's request path without sockets: a datagram in, a reply out,
// through the codec, the session check and the registry. This is the work
// a reactor thread does per request, less the system calls.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "daemon/handlers.h"

namespace pcfs {
namespace {

using protocol::Header;
using protocol::MessageType;

Endpoint EndpointFor(int i) {
  Endpoint e;
  e.ip = {127, 0, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8)};
  e.port = static_cast<uint16_t>(i);
  return e;
}

// A registry with `sessions` live sessions and one publication each.
struct Fixture {
  explicit Fixture(int sessions)
      : credentials(*CredentialTable::Parse("hans hanspass\n")),
        handler(&registry, &credentials, nullptr, &counters,
                RequestHandler::Options{}, now) {
    for (int i = 0; i < sessions; ++i) {
      Registry::LoginParams p;
      std::string user = absl::StrCat("user", i);
      p.user = user;
      p.control = EndpointFor(i);
      p.file_port = 7000;
      ids.push_back(*registry.Login(p, now));
      registry.Publish(user, absl::StrCat("file-", i, ".bin"), FileMeta{});
    }
  }
  absl::Time now = absl::UnixEpoch() + absl::Hours(1);
  Registry registry;
  CredentialStore credentials;
  DaemonCounters counters;
  RequestHandler handler;
  std::vector<uint64_t> ids;
};

void BM_HandleHeartbeat(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)));
  std::vector<std::vector<uint8_t>> requests;
  for (size_t i = 0; i < f.ids.size(); ++i) {
    Header h;
    h.type = static_cast<uint8_t>(MessageType::kHeartbeat);
    h.session_id = f.ids[i];
    std::vector<uint8_t> d(protocol::kMaxDatagramSize);
    d.resize(protocol::EncodeEmptyRequest(h, d));
    requests.push_back(std::move(d));
  }
  uint8_t reply[protocol::kMaxDatagramSize];
  size_t i = 0;
  for (auto _ : state) {
    size_t k = i++ % requests.size();
    benchmark::DoNotOptimize(f.handler.Handle(
        requests[k], EndpointFor(static_cast<int>(k)), f.now, reply));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HandleHeartbeat)->Arg(1000)->Arg(100000);

void BM_HandleGet(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)));
  std::vector<std::vector<uint8_t>> requests;
  const size_t n = f.ids.size();
  for (size_t i = 0; i < n; ++i) {
    Header h;
    h.type = static_cast<uint8_t>(MessageType::kGet);
    h.session_id = f.ids[i];
    std::string name = absl::StrCat("file-", (i + 1) % n, ".bin");
    protocol::NameRequest request{name};
    std::vector<uint8_t> d(protocol::kMaxDatagramSize);
    d.resize(protocol::EncodeNameRequest(h, request, d));
    requests.push_back(std::move(d));
  }
  uint8_t reply[protocol::kMaxDatagramSize];
  size_t i = 0;
  for (auto _ : state) {
    size_t k = i++ % n;
    benchmark::DoNotOptimize(f.handler.Handle(
        requests[k], EndpointFor(static_cast<int>(k)), f.now, reply));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HandleGet)->Arg(1000)->Arg(100000);

}  // namespace
}  // namespace pcfs
