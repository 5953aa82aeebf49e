// peerctl/client.h's ControlClient against an in-process daemon (Server on
// a loopback port): heartbeats, commands and the file server's reads of the
// session key run on their own threads at once, each on its own lock (the
// TSan build checks it), and a session the daemon forgets is taken up again.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/io/reactor.h"
#include "daemon/server.h"
#include "gtest/gtest.h"
#include "peerctl/client.h"

namespace pcfs {
namespace {

class ControlClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(BlockSignals({SIGINT, SIGTERM, SIGHUP}).ok());
    char pattern[] = "/tmp/pcfs-control-client-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    std::ofstream(dir_ + "/credentials.txt") << "hans hanspass\n";
    ServerOptions options;
    options.port = 0;
    options.bind = "127.0.0.1";
    options.credentials_path = dir_ + "/credentials.txt";
    options.state_dir = dir_ + "/state";
    options.io = "epoll";
    options.threads = 1;
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    thread_ = std::thread([this] { server_->Run().IgnoreError(); });
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<ControlClient> Connect() {
    ControlClient::Options options;
    options.host = "127.0.0.1";
    options.port = server_->address().port();
    options.notify = [this](absl::string_view line) {
      notes_.fetch_add(1);
      (void)line;
    };
    absl::StatusOr<std::unique_ptr<ControlClient>> client =
        ControlClient::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::string dir_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::atomic<int> notes_{0};
};

TEST_F(ControlClientTest, HeartbeatsCommandsAndKeyReadsRunAtOnce) {
  std::unique_ptr<ControlClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Login("hans", "hanspass", 0).ok());
  std::atomic<int> failures{0};
  std::thread heartbeats([&] {
    for (int i = 0; i < 40; ++i) {
      if (!client->Heartbeat().ok()) failures.fetch_add(1);
    }
  });
  std::thread readers([&] {
    for (int i = 0; i < 2000; ++i) {
      if (!client->logged_in() || client->user() != "hans") {
        failures.fetch_add(1);
      }
      client->session_key();
      client->NextHeartbeatIn();
    }
  });
  for (int i = 0; i < 40; ++i) {
    const std::string name = absl::StrCat("file", i % 3);
    if (!client->Publish(name, 1, Sha256Digest{}).ok()) failures.fetch_add(1);
    if (!client->ListPublished().ok()) failures.fetch_add(1);
  }
  heartbeats.join();
  readers.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(notes_.load(), 0);  // nothing changed: nothing to tell
  EXPECT_TRUE(client->Logout().ok());
  EXPECT_FALSE(client->logged_in());
}

TEST_F(ControlClientTest, ASessionTheDaemonForgetsIsTakenUpAgain) {
  std::unique_ptr<ControlClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Login("hans", "hanspass", 0).ok());
  const SessionKey before = client->session_key();
  // A second client logs in as hans after the first one's session is gone
  // (it logs out behind the first's back by the same means: a logout).
  {
    std::unique_ptr<ControlClient> other = Connect();
    ASSERT_NE(other, nullptr);
    // While hans is active, a second login is refused...
    EXPECT_TRUE(absl::IsAlreadyExists(other->Login("hans", "hanspass", 0)));
  }
  // ...and once the daemon forgets the session (its heartbeats stop for
  // longer than the timeout), the next heartbeat logs in again.
  absl::SleepFor(absl::Milliseconds(3500));
  EXPECT_TRUE(client->Heartbeat().ok());
  EXPECT_TRUE(client->logged_in());
  EXPECT_NE(client->session_key(), before);
  EXPECT_GE(notes_.load(), 2);  // "no longer knows", "logged in again"
  EXPECT_TRUE(client->Logout().ok());
}

}  // namespace
}  // namespace pcfs
