// Registry operations at scale: login, heartbeat, locate,
// publish/unpublish, a `lap` page, search, and the expiry wheel.
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/search_listing.h"
#include "benchmark/benchmark.h"
#include "core/index/expiry_wheel.h"
#include "core/index/registry.h"
#include "core/proto/protocol.h"

namespace pcfs {
namespace {

const absl::Time kNow = absl::UnixEpoch() + absl::Hours(1);

Endpoint EndpointFor(int i) {
  Endpoint e;
  e.ip = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
          static_cast<uint8_t>(i)};
  e.port = 4000;
  return e;
}

std::vector<uint64_t> LogIn(Registry& registry, int n) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < n; ++i) {
    Registry::LoginParams p;
    std::string user = absl::StrCat("user", i);
    p.user = user;
    p.control = EndpointFor(i);
    ids.push_back(*registry.Login(p, kNow));
  }
  return ids;
}

// A login and the logout that frees the user again, among state.range(0)
// other live sessions.
void BM_LoginLogout(benchmark::State& state) {
  Registry registry;
  LogIn(registry, static_cast<int>(state.range(0)));
  Registry::LoginParams p;
  p.user = "newcomer";
  p.control = EndpointFor(-1);
  for (auto _ : state) {
    absl::StatusOr<uint64_t> id = registry.Login(p, kNow);
    if (!id.ok()) {
      state.SkipWithError("login refused");
      break;
    }
    benchmark::DoNotOptimize(registry.Logout(*id));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LoginLogout)->Arg(1000)->Arg(1000000);

void BM_Heartbeat(benchmark::State& state) {
  Registry registry;
  std::vector<uint64_t> ids = LogIn(registry, static_cast<int>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) {
    size_t k = i++ % ids.size();
    benchmark::DoNotOptimize(
        registry.Heartbeat(ids[k], EndpointFor(static_cast<int>(k)), kNow));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Heartbeat)->Arg(1000)->Arg(1000000);

void BM_Locate(benchmark::State& state) {
  Registry registry;
  const int n = static_cast<int>(state.range(0));
  LogIn(registry, n);
  for (int i = 0; i < n; ++i) {
    registry.Publish(absl::StrCat("user", i), absl::StrCat("file-", i),
                     FileMeta{});
  }
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back(absl::StrCat("file-", i));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        registry.Locate(names[i++ % names.size()], "nobody", kNow));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Locate)->Arg(1000)->Arg(1000000);

void BM_PublishUnpublish(benchmark::State& state) {
  Registry registry;
  LogIn(registry, 1);
  for (auto _ : state) {
    registry.Publish("user0", "some-file.bin", FileMeta{});
    benchmark::DoNotOptimize(registry.Unpublish("user0", "some-file.bin"));
  }
  state.SetItemsProcessed(state.iterations() * 2);
}
BENCHMARK(BM_PublishUnpublish);

// The first page of `lap` as the daemon answers it: a snapshot of the other
// active users (state.range(0) of them), and one reply datagram filled
// from it.
void BM_LapFirstPage(benchmark::State& state) {
  Registry registry;
  LogIn(registry, static_cast<int>(state.range(0)));
  protocol::Header request;
  request.type = static_cast<uint8_t>(protocol::MessageType::kListActivePeers);
  std::array<uint8_t, protocol::kMaxDatagramSize> out;
  for (auto _ : state) {
    std::vector<std::string> users = registry.ActiveUsers("user0", kNow);
    protocol::ListReplyWriter writer(request, 1,
                                     static_cast<uint32_t>(users.size()), out);
    size_t written = 0;
    while (written < users.size() && writer.Add(users[written])) ++written;
    const size_t next_cursor = written < users.size() ? written : 0;
    benchmark::DoNotOptimize(writer.Finish(static_cast<uint32_t>(next_cursor)));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LapFirstPage)->Arg(100)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_Search(benchmark::State& state) {
  Registry registry;
  LogIn(registry, 100);
  const int names = static_cast<int>(state.range(0));
  for (int i = 0; i < names; ++i) {
    registry.Publish(absl::StrCat("user", i % 100),
                     absl::StrCat("movie-", i, ".mkv"), FileMeta{});
  }
  for (auto _ : state) {
    // A rare substring: the cost is finding, not returning. The whole
    // listing, page after page, as a client reads it through the daemon.
    benchmark::DoNotOptimize(
        CountListing(registry, "e-12345.", "nobody", kNow));
  }
}
BENCHMARK(BM_Search)->Arg(10000)->Arg(1000000)->Unit(benchmark::kMillisecond);

void BM_ExpiryWheelScheduleAndFire(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  ExpiryWheel wheel(absl::Milliseconds(100), 64, kNow);
  absl::Time now = kNow;
  for (int i = 0; i < n; ++i) {
    wheel.Schedule(static_cast<uint64_t>(i), now + absl::Seconds(3));
  }
  for (auto _ : state) {
    // One slot's worth of time: fire what is due and re-arm it, as
    // heartbeating sessions are re-armed.
    now += absl::Milliseconds(100);
    wheel.Advance(now, [&](uint64_t key) {
      wheel.Schedule(key, now + absl::Seconds(3));
    });
  }
  state.SetItemsProcessed(state.iterations() * n / 30);
}
BENCHMARK(BM_ExpiryWheelScheduleAndFire)
    ->Arg(1000000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pcfs
