// The daemon's request path without sockets: a datagram in, a reply out,
// through the codec, the MAC and replay checks, the session and the
// registry. This is the work a reactor thread does per request, less the
// system calls. Every request must carry a fresh sequence number and be
// sealed again, so each iteration also seals its request (the client's
// work; its body copied in the clear first); BM_SealDatagram measures that
// alone, to subtract.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "core/auth/datagram_auth.h"
#include "core/auth/ticket.h"
#include "daemon/handlers.h"

namespace pcfs {
namespace {

// As peerconnectd's main() does: Debian's abseil (built without NDEBUG)
// would otherwise run its deadlock detector, a process-wide spinlock, on
// every absl::Mutex::Lock.
[[maybe_unused]] const bool kNoDeadlockDetection = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

using protocol::Header;
using protocol::MessageType;

Endpoint EndpointFor(int i) {
  Endpoint e;
  e.ip = {127, 0, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8)};
  e.port = static_cast<uint16_t>(i);
  return e;
}

SessionKey KeyFor(int i) {
  SessionKey key{};
  key.fill(static_cast<uint8_t>(i));
  key[0] = static_cast<uint8_t>(i >> 8);
  return key;
}

// A registry with `sessions` live sessions, one publication each.
struct Fixture {
  explicit Fixture(int sessions)
      : credentials(*CredentialStore::Create(
            *CredentialTable::Parse("hans hanspass\n"))),
        handler(MakeShared(), RequestHandler::Options{}, now) {
    for (int i = 0; i < sessions; ++i) {
      Registry::LoginParams p;
      std::string user = absl::StrCat("user", i);
      p.user = user;
      p.control = EndpointFor(i);
      p.file_port = 7000;
      ids.push_back(*registry.Login(p, now));
      keys.push_back(*DeriveDatagramKeys(KeyFor(i)));
      session_table.Insert(ids.back(), KeyFor(i));
      registry.Publish(user, absl::StrCat("file-", i, ".bin"), FileMeta{});
    }
  }
  RequestHandler::Shared MakeShared() {
    RequestHandler::Shared shared;
    shared.registry = &registry;
    shared.sessions = &session_table;
    shared.credentials = credentials.get();
    shared.counters = &counters;
    return shared;
  }
  // Copies `plain` into `datagram`, stamps the next sequence number of
  // session k and seals it.
  void Seal(size_t k, const std::vector<uint8_t>& plain,
            std::vector<uint8_t>& datagram) {
    std::copy(plain.begin(), plain.end(), datagram.begin());
    SealDatagram(keys[k], Direction::kToDaemon, ++sequences[k], datagram);
  }

  absl::Time now = absl::UnixEpoch() + absl::Hours(1);
  Registry registry;
  SessionTable session_table;
  std::unique_ptr<CredentialStore> credentials;
  DaemonCounters counters;
  RequestHandler handler;
  std::vector<uint64_t> ids;
  std::vector<DatagramKeys> keys;  // of each session in ids
  std::vector<uint64_t> sequences = std::vector<uint64_t>(1 << 20, 0);
};

void BM_SealDatagram(benchmark::State& state) {
  std::vector<uint8_t> datagram(protocol::kHeaderSize);
  const DatagramKeys keys = *DeriveDatagramKeys(KeyFor(1));
  for (auto _ : state) {
    SealDatagram(keys, Direction::kToDaemon, 1, datagram);
    benchmark::DoNotOptimize(datagram.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SealDatagram);

// What a GET adds per local holder to issue its ticket: the holder's
// ticket key, derived from its session key each time (HKDF-SHA-256, two
// HMACs on the stack) rather than kept in the session table, where it
// would cost 32 bytes a session. BM_HandleGet includes it.
void BM_TicketKeyFor(benchmark::State& state) {
  SessionKey key = KeyFor(1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(key);
    TicketKey ticket_key = TicketKeyFor(key);
    benchmark::DoNotOptimize(ticket_key);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TicketKeyFor);

// One ticket as a GET writes it per holder: from the ticket key (Arg 0:
// the HMAC keyed anew each time) or from its HMAC states (Arg 1: what the
// daemon keeps, TicketMacKey).
void BM_WriteTicket(benchmark::State& state) {
  const TicketKey key = TicketKeyFor(KeyFor(1));
  const HmacSha256Key mac_key = TicketMacKey(key);
  const absl::Time expiry = absl::FromUnixSeconds(1'800'000'000);
  char text[kMaxTicketChars];
  for (auto _ : state) {
    const size_t size = state.range(0) == 0
                            ? WriteTicket(key, "user0001", "user0002",
                                          "0123456789ab.bin", expiry, text)
                            : WriteTicket(mac_key, "user0001", "user0002",
                                          "0123456789ab.bin", expiry, text);
    benchmark::DoNotOptimize(size);
    benchmark::DoNotOptimize(text);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WriteTicket)->Arg(0)->Arg(1);

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
  const std::vector<std::vector<uint8_t>> plain = requests;
  uint8_t reply[protocol::kMaxDatagramSize];
  size_t i = 0;
  for (auto _ : state) {
    size_t k = i++ % requests.size();
    f.Seal(k, plain[k], requests[k]);
    benchmark::DoNotOptimize(f.handler.Handle(
        requests[k], EndpointFor(static_cast<int>(k)), f.now, reply));
  }
  state.SetItemsProcessed(state.iterations());
  if (f.counters.replies.load() != f.counters.requests.load()) {
    state.SkipWithError("a request went unanswered");
  }
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
  const std::vector<std::vector<uint8_t>> plain = requests;
  uint8_t reply[protocol::kMaxDatagramSize];
  size_t i = 0;
  for (auto _ : state) {
    size_t k = i++ % n;
    f.Seal(k, plain[k], requests[k]);
    benchmark::DoNotOptimize(f.handler.Handle(
        requests[k], EndpointFor(static_cast<int>(k)), f.now, reply));
  }
  state.SetItemsProcessed(state.iterations());
  if (f.counters.replies.load() != f.counters.requests.load()) {
    state.SkipWithError("a request went unanswered");
  }
}
BENCHMARK(BM_HandleGet)->Arg(1000)->Arg(100000);

}  // namespace
}  // namespace pcfs
