// Tests peerctl/agent.h's socket side without a daemon: the agent starts
// while the daemon is away (it keeps trying to log in), answers `status`
// and refuses commands with a clear error meanwhile, serves many clients at
// once, refuses clients beyond its bound, keeps a second agent off its
// socket (which the refused one leaves alone, as it does a file that is no
// socket), and stops cleanly, removing the socket.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/unique_fd.h"
#include "gtest/gtest.h"
#include "peerctl/agent.h"
#include "peerctl/control.h"
#include "peerctl/exit_codes.h"

namespace pcfs {
namespace {

class AgentSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs-agent-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    socket_ = absl::StrCat(dir_, "/run/peerctl.sock");
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf ", dir_).c_str());
  }

  AgentOptions Options(int max_clients = 64) {
    AgentOptions options;
    // Nothing answers on port 9 of loopback: logins fail at once
    // (connection refused), and the agent keeps trying.
    options.peer.server.host = "127.0.0.1";
    options.peer.server.port = 9;
    options.peer.share_dir = dir_;
    options.peer.download_dir = dir_;
    options.user = "hans";
    options.password = "hanspass";
    options.socket_path = socket_;
    options.max_clients = max_clients;
    options.first_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(100);
    return options;
  }

  std::string dir_;
  std::string socket_;
};

TEST_F(AgentSocketTest, AnswersWhileLoggedOutAndStopsCleanly) {
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(Options());
  ASSERT_TRUE(agent.ok()) << agent.status();
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(absl::StrCat(dir_, "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  absl::StatusOr<std::unique_ptr<control::AgentConnection>> connection =
      control::AgentConnection::Connect(socket_, "");
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ((*connection)->user(), "hans");
  EXPECT_FALSE((*connection)->logged_in());
  absl::StatusOr<std::vector<std::string>> lpf = (*connection)->ListPublished();
  ASSERT_FALSE(lpf.ok());
  EXPECT_EQ(ExitCodeFor(lpf.status()), kExitUnreachable);
  EXPECT_NE(lpf.status().message().find("not logged in"),
            absl::string_view::npos)
      << lpf.status();
  // A malformed request gets an error, and the connection stays usable.
  absl::StatusOr<std::vector<std::string>> bad =
      (*connection)->Call({"bogus", "", ""});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_TRUE((*connection)->Call({"status", "", ""}).ok());

  EXPECT_TRUE((*agent)->Stop().ok());
  EXPECT_NE(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(absl::IsNotFound(
      control::AgentConnection::Connect(socket_, "").status()));
}

TEST_F(AgentSocketTest, ServesManyClientsAtOnce) {
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(Options());
  ASSERT_TRUE(agent.ok()) << agent.status();
  std::vector<std::thread> threads;
  std::vector<int> answered(16, 0);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([this, i, &answered] {
      for (int round = 0; round < 20; ++round) {
        absl::StatusOr<std::unique_ptr<control::AgentConnection>> c =
            control::AgentConnection::Connect(socket_, "");
        if (c.ok() && (*c)->user() == "hans") ++answered[i];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < 16; ++i) EXPECT_EQ(answered[i], 20) << i;
}

TEST_F(AgentSocketTest, RefusesClientsBeyondItsBound) {
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(Options(2));
  ASSERT_TRUE(agent.ok()) << agent.status();
  auto first = control::AgentConnection::Connect(socket_, "");
  auto second = control::AgentConnection::Connect(socket_, "");
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = control::AgentConnection::Connect(socket_, "");
  ASSERT_FALSE(third.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(third.status())) << third.status();
  first->reset();
  // The slot frees once the agent sees the first one go (bounded wait).
  bool admitted = false;
  for (int i = 0; i < 100 && !admitted; ++i) {
    admitted = control::AgentConnection::Connect(socket_, "").ok();
    if (!admitted) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(admitted);
}

TEST_F(AgentSocketTest, ASecondAgentKeepsOffALiveSocketButReplacesAStaleOne) {
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(Options());
  ASSERT_TRUE(agent.ok()) << agent.status();
  absl::StatusOr<std::unique_ptr<Agent>> second = Agent::Start(Options());
  EXPECT_TRUE(absl::IsAlreadyExists(second.status())) << second.status();
  // The refused agent leaves the first one's socket file alone: commands
  // still find the first agent.
  struct stat st;
  ASSERT_EQ(::lstat(socket_.c_str(), &st), 0)
      << "the refused agent removed the running one's socket";
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  (void)(*agent)->Stop();
  EXPECT_NE(::lstat(socket_.c_str(), &st), 0) << "Stop left its socket";
  // A socket file nobody listens on (an agent killed with -9).
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_.data(), socket_.size());
  ASSERT_EQ(
      ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)),
      0);
  fd.Reset();
  absl::StatusOr<std::unique_ptr<Agent>> third = Agent::Start(Options());
  EXPECT_TRUE(third.ok()) << third.status();
}

// A --socket path that names a file of the user's is refused, and the file
// stays as it was.
TEST_F(AgentSocketTest, AFileAtTheSocketPathIsRefusedAndKept) {
  ASSERT_EQ(::mkdir(absl::StrCat(dir_, "/run").c_str(), 0700), 0);
  {
    std::ofstream file(socket_);
    file << "notes\n";
  }
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Start(Options());
  EXPECT_TRUE(absl::IsInvalidArgument(agent.status())) << agent.status();
  EXPECT_TRUE(absl::StrContains(agent.status().message(), "is not a socket"))
      << agent.status();
  std::ifstream file(socket_);
  std::string line;
  ASSERT_TRUE(std::getline(file, line)) << "the refused agent removed it";
  EXPECT_EQ(line, "notes");
}

}  // namespace
}  // namespace pcfs
