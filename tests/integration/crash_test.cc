// kill -9 under a storm of PUB and UNP: several clients (core/client's
// ClientSession, as peerctl) publish new names and take back names they
// published, as fast as the daemon acknowledges them; the daemon is killed
// with SIGKILL at a random moment; then the state folder must hold every
// change the daemon acknowledged (a change sent but not acknowledged may or
// may not be there), and the daemon must start again on it. The trials run
// against one daemon and state folder, so later trials also restart from
// the snapshot and journal that earlier kills left.
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/client/client_session.h"
#include "core/index/registry.h"
#include "daemon/publication_log.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

using protocol::MessageType;
using protocol::ResultCode;

constexpr int kClients = 4;
constexpr int kTrialsPerBackend = 5;  // 10 in all

// What one client learned the daemon acknowledged in one trial.
struct Acknowledged {
  std::vector<std::string> published;    // PUB answered kOk
  std::vector<std::string> unpublished;  // UNP answered kOk
  std::vector<std::string> unknown;      // sent, no answer: either way
};

// Sends the request in flight (and its retries) until a reply comes;
// nullopt when every try went unanswered (the daemon is gone).
std::optional<client::Reply> Exchange(client::ClientSession& session,
                                      UdpSocket& socket, uint16_t port,
                                      const client::RequestBody& body,
                                      std::string& storage) {
  uint8_t out[protocol::kMaxDatagramSize];
  for (int attempt = 0; attempt < 4; ++attempt) {
    const size_t size = session.EncodeTry(absl::Now(), body, out);
    if (size == 0) return std::nullopt;
    socket.SendTo(port, std::string(reinterpret_cast<char*>(out), size));
    const absl::Time deadline = absl::Now() + absl::Milliseconds(250);
    while (absl::Now() < deadline) {
      std::optional<std::string> datagram =
          socket.Receive(deadline - absl::Now());
      if (!datagram.has_value()) break;
      storage = *std::move(datagram);
      std::optional<client::Reply> reply =
          session.Receive(std::span<const uint8_t>(
              reinterpret_cast<const uint8_t*>(storage.data()),
              storage.size()));
      if (reply.has_value()) return reply;
    }
  }
  session.Abandon();
  return std::nullopt;
}

// One client's storm: logs in as `user`, then until the daemon stops
// answering (or 20 s pass), publishes a new name, and every third request
// takes back its oldest acknowledged name.
void Storm(uint16_t port, const std::string& user, const std::string& prefix,
           uint32_t seed, std::atomic<int>* logged_in, Acknowledged* ack) {
  std::mt19937 random(seed);
  client::ClientSession session(static_cast<uint32_t>(random()));
  UdpSocket socket;
  std::string storage;
  if (!session.StartLogin(user, user + "pass", 0).ok()) return;
  while (session.in_flight()) {
    std::optional<client::Reply> reply =
        Exchange(session, socket, port, client::RequestBody(), storage);
    if (!reply.has_value() || !session.ContinueLogin(*reply).ok()) {
      ADD_FAILURE() << user << " could not log in";
      return;
    }
  }
  logged_in->fetch_add(1);
  size_t oldest = 0;  // of ack->published, the next to take back
  const absl::Time end = absl::Now() + absl::Seconds(20);
  for (int k = 0; absl::Now() < end; ++k) {
    const bool unpublish = k % 3 == 2 && oldest < ack->published.size();
    const std::string name = unpublish ? ack->published[oldest]
                                       : absl::StrCat(prefix, "-", k, ".dat");
    client::RequestBody body;
    if (unpublish) {
      body.name.name = name;
    } else {
      body.publish.name = name;
      body.publish.size = static_cast<uint64_t>(k);
    }
    if (!session
             .StartRequest(unpublish ? MessageType::kUnpublish
                                     : MessageType::kPublish)
             .ok()) {
      return;
    }
    std::optional<client::Reply> reply =
        Exchange(session, socket, port, body, storage);
    if (!reply.has_value()) {
      ack->unknown.push_back(name);  // the kill came first
      return;
    }
    if (reply->code != ResultCode::kOk) {
      ADD_FAILURE() << user << ": " << (unpublish ? "unp " : "pub ") << name
                    << " answered " << protocol::ResultCodeName(reply->code);
      return;
    }
    if (unpublish) {
      ack->unpublished.push_back(name);
      ++oldest;
    } else {
      ack->published.push_back(name);
    }
  }
}

// The replies of deferred PUB/UNP go out on another path than the
// reactor's own (a sendto on a duplicate of its socket): both backends.
class CrashTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CrashTest, KillNineUnderAPublicationStormLosesNoAcknowledgedChange) {
  std::string credentials;
  for (int c = 0; c < kClients; ++c) {
    absl::StrAppend(&credentials, "user", c, " user", c, "pass\n");
  }
  Daemon daemon(credentials, {"--io=" + GetParam(), "--threads=2"});
  const std::string state = daemon.folder() + "/peerconnect-state";
  std::mt19937 random(std::random_device{}());
  // Across trials: what must be published, and what must not be.
  absl::flat_hash_set<std::string> must_have;
  absl::flat_hash_set<std::string> must_not_have;
  size_t acknowledged = 0;
  for (int trial = 0; trial < kTrialsPerBackend; ++trial) {
    SCOPED_TRACE(absl::StrCat("trial ", trial));
    std::atomic<int> logged_in{0};
    std::vector<Acknowledged> acks(kClients);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back(Storm, daemon.port(), absl::StrCat("user", c),
                           absl::StrCat("t", trial, "-c", c),
                           static_cast<uint32_t>(random()), &logged_in,
                           &acks[c]);
    }
    const absl::Time login_deadline = absl::Now() + absl::Seconds(20);
    while (logged_in.load() < kClients && absl::Now() < login_deadline) {
      daemon.process().DrainOutput();
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(logged_in.load(), kClients);
    // The storm runs for a random while, then the daemon dies mid-batch.
    // (Its --verbose log is read meanwhile, so that it never blocks on a
    // full pipe.)
    const absl::Time kill_at =
        absl::Now() +
        absl::Milliseconds(std::uniform_int_distribution<int>(50, 600)(random));
    while (absl::Now() < kill_at) {
      daemon.process().DrainOutput();
      absl::SleepFor(absl::Milliseconds(5));
    }
    daemon.process().Signal(SIGKILL);
    ASSERT_TRUE(daemon.process().Wait(absl::Seconds(10)).has_value());
    for (std::thread& t : clients) t.join();

    for (const Acknowledged& ack : acks) {
      for (const std::string& name : ack.published) {
        must_have.insert(name);
        ++acknowledged;
      }
      for (const std::string& name : ack.unpublished) {
        must_have.erase(name);
        must_not_have.insert(name);
        ++acknowledged;
      }
      // Sent, not answered: it may be either way, now and from here on.
      for (const std::string& name : ack.unknown) {
        must_have.erase(name);
        must_not_have.erase(name);
      }
    }
    // What a restart loads (read as the daemon does, before it runs).
    {
      Registry loaded;
      absl::StatusOr<std::unique_ptr<PublicationLog>> log =
          PublicationLog::Open(state, loaded);
      ASSERT_TRUE(log.ok()) << log.status();
      absl::flat_hash_set<std::string> published;
      for (int c = 0; c < kClients; ++c) {
        for (std::string& name : loaded.PublishedBy(absl::StrCat("user", c))) {
          published.insert(std::move(name));
        }
      }
      for (const std::string& name : must_have) {
        EXPECT_TRUE(published.contains(name))
            << "acknowledged pub lost: " << name;
      }
      for (const std::string& name : must_not_have) {
        EXPECT_FALSE(published.contains(name))
            << "acknowledged unp undone: " << name;
      }
    }
    daemon.Restart();
    ASSERT_NE(daemon.port(), 0) << "the daemon did not start again";
  }
  // The storms did something worth checking.
  EXPECT_GT(acknowledged, static_cast<size_t>(kTrialsPerBackend * kClients));
  std::cerr << "crash_test (--io=" << GetParam() << "): " << kTrialsPerBackend
            << " kill -9 trials, " << acknowledged
            << " acknowledged changes checked\n";
  EXPECT_EQ(daemon.Stop(), 0);
}

// "auto" is io_uring where the kernel allows it (the daemon falls back to
// epoll, and says so, where it does not).
INSTANTIATE_TEST_SUITE_P(Backends, CrashTest,
                         ::testing::Values("epoll", "auto"));

}  // namespace
}  // namespace pcfs::testing
