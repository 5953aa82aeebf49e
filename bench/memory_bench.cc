// The registry at the scale of the targets in docs/PERFORMANCE.md:
//
//   BM_MemoryPerSession       1M live sessions: heap bytes per session, from
//                             mallinfo2() before and after filling a Registry
//                             (presence) and the daemon's SessionTable (key,
//                             replay window, cached answers), as a login
//                             does: bytes_per_session is both together,
//                             registry_/session_table_bytes_per_session each
//                             (and, separately, a daemon-sized ExpiryWheel
//                             holding every session once).
//   BM_MemoryPerPublication   1M publications (1,000 users x 1,000 names):
//                             heap bytes per publication beyond its name
//                             (the name's length is subtracted once).
//
// These measure the daemon's own data structures in one process, not a
// daemon's RSS: 1M real sessions would need 1M UDP peers. Every figure is a
// user counter in Google Benchmark's output (--benchmark_format=json).
#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "core/index/expiry_wheel.h"
#include "core/index/registry.h"
#include "daemon/session_table.h"

namespace pcfs {
namespace {

constexpr int kSessions = 1'000'000;
constexpr int kPublishers = 1'000;
constexpr int kNamesPerPublisher = 1'000;
const absl::Time kNow = absl::UnixEpoch() + absl::Hours(1);

// Heap bytes in use: small blocks from the arenas plus mmapped large ones
// (a big hash table's backing array is one of those).
int64_t HeapBytes() {
  struct mallinfo2 info = ::mallinfo2();
  return static_cast<int64_t>(info.uordblks + info.hblkhd);
}

Endpoint EndpointFor(int i) {
  Endpoint e;
  e.ip = {127, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
          static_cast<uint8_t>(i)};
  e.port = static_cast<uint16_t>(1024 + i % 60000);
  return e;
}

Registry::LoginParams LoginFor(const std::string& user, int i) {
  Registry::LoginParams p;
  p.user = user;
  p.control = EndpointFor(i);
  p.file_port = 4000;
  p.nonce[0] = static_cast<uint8_t>(i);
  return p;
}

// File names as people publish them: two words from a small vocabulary, a
// random tag and an extension, e.g. "holiday_concert_x7k2qa.mkv" (the words
// make short substrings common, as in real catalogues).
std::vector<std::string> MakeNames(size_t count) {
  static const char* const kWords[] = {
      "holiday",  "concert",  "report",  "summer",  "winter",  "project",
      "family",   "backup",   "invoice", "lecture", "podcast", "episode",
      "season",   "draft",    "final",   "photos",  "album",   "recipe",
      "budget",   "meeting",  "notes",   "slides",  "thesis",  "chapter",
      "garden",   "travel",   "paris",   "london",  "berlin",  "tokyo",
      "lisbon",   "madrid",   "video",   "music",   "scan",    "contract",
      "manual",   "linux",    "kernel",  "debian",  "images",  "archive",
      "export",   "import",   "review",  "design",  "sketch",  "poster",
      "birthday", "wedding",  "soccer",  "tennis",  "piano",   "guitar",
      "lesson",   "course",   "exam",    "paper",   "dataset", "model",
      "release",  "snapshot", "weekly",  "monthly"};
  static const char* const kExtensions[] = {"mkv",    "mp4", "pdf",  "jpg",
                                            "tar.gz", "zip", "flac", "txt"};
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937_64 random(20240601);
  auto pick = [&](size_t n) { return static_cast<size_t>(random() % n); };
  std::vector<std::string> names;
  names.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    std::string tag;
    for (int k = 0; k < 6; ++k) tag += kAlphabet[pick(sizeof(kAlphabet) - 1)];
    const char* first = kWords[pick(std::size(kWords))];
    const char* second = kWords[pick(std::size(kWords))];
    const char* extension = kExtensions[pick(std::size(kExtensions))];
    names.push_back(absl::StrCat(first, "_", second, "_", tag, ".", extension));
  }
  // The tag makes collisions rare; drop the few there are.
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

void BM_MemoryPerSession(benchmark::State& state) {
  std::vector<std::string> users;
  users.reserve(kSessions);
  for (int i = 0; i < kSessions; ++i) users.push_back(absl::StrCat("load", i));
  std::vector<uint64_t> ids(kSessions);
  for (auto _ : state) {
    const int64_t before = HeapBytes();
    auto registry = std::make_unique<Registry>();
    for (int i = 0; i < kSessions; ++i) {
      absl::StatusOr<uint64_t> id =
          registry->Login(LoginFor(users[i], i), kNow);
      if (!id.ok()) {
        state.SkipWithError("login refused");
        return;
      }
      ids[i] = *id;
    }
    const int64_t with_registry = HeapBytes();
    // The daemon's part of each session, as LOGIN_FINISH stores it.
    auto sessions = std::make_unique<SessionTable>();
    SessionKey key{};  // its value does not change the size
    for (int i = 0; i < kSessions; ++i) {
      key[0] = static_cast<uint8_t>(i);
      sessions->Insert(ids[i], key);
    }
    const int64_t with_sessions = HeapBytes();
    // A heartbeat-sized wheel (100 ms slots over twice the 3 s timeout)
    // holding each session once, as the daemon's reactors do.
    auto wheel =
        std::make_unique<ExpiryWheel>(absl::Milliseconds(100), 62, kNow);
    for (int i = 0; i < kSessions; ++i) {
      wheel->Schedule(static_cast<uint64_t>(i) + 1, kNow + absl::Seconds(3));
    }
    const int64_t with_wheel = HeapBytes();
    state.counters["sessions"] = static_cast<double>(registry->session_count());
    state.counters["bytes_per_session"] =
        static_cast<double>(with_sessions - before) / kSessions;
    state.counters["registry_bytes_per_session"] =
        static_cast<double>(with_registry - before) / kSessions;
    state.counters["session_table_bytes_per_session"] =
        static_cast<double>(with_sessions - with_registry) / kSessions;
    state.counters["wheel_bytes_per_session"] =
        static_cast<double>(with_wheel - with_sessions) / kSessions;
    // What one session's slots hold, for reading the figure: its presence
    // in the registry and its state in the daemon's table.
    state.counters["sizeof_session"] = sizeof(Presence) + sizeof(SessionState);
    state.counters["sizeof_presence"] = sizeof(Presence);
    state.counters["sizeof_session_state"] = sizeof(SessionState);
    state.PauseTiming();  // freeing is not part of the fill
    wheel.reset();
    sessions.reset();
    registry.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_MemoryPerSession)->Iterations(1)->Unit(benchmark::kMillisecond);

// 1M names published round robin by 1,000 users who hold a live session
// (their sessions are made before the measurement starts).
void BM_MemoryPerPublication(benchmark::State& state) {
  const std::vector<std::string> names =
      MakeNames(static_cast<size_t>(kPublishers) * kNamesPerPublisher);
  int64_t name_bytes = 0;
  for (const std::string& name : names) name_bytes += name.size();
  std::vector<std::string> users;
  for (int i = 0; i < kPublishers; ++i) users.push_back(absl::StrCat("pub", i));
  for (auto _ : state) {
    auto registry = std::make_unique<Registry>();
    for (int i = 0; i < kPublishers; ++i) {
      (void)registry->Login(LoginFor(users[i], i), kNow);
    }
    const int64_t before = HeapBytes();
    for (size_t i = 0; i < names.size(); ++i) {
      FileMeta meta;
      meta.size = i;
      registry->Publish(users[i % users.size()], names[i], meta);
    }
    const double heap = static_cast<double>(HeapBytes() - before);
    const double count = static_cast<double>(names.size());
    state.counters["publications"] =
        static_cast<double>(registry->publication_count());
    state.counters["mean_name_bytes"] = static_cast<double>(name_bytes) / count;
    state.counters["bytes_per_publication"] = heap / count;
    state.counters["bytes_per_publication_beyond_name"] =
        (heap - static_cast<double>(name_bytes)) / count;
    state.PauseTiming();  // freeing is not part of the fill
    registry.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_MemoryPerPublication)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pcfs
