// The shell on a terminal: peerctl runs on a pseudo-terminal (forkpty), and
// the test types at it as a user would: the Up arrow recalls the last
// command (and the history lands in $XDG_STATE_HOME), Tab completes
// commands and names, Ctrl-C clears the line at the prompt, and a `get`
// from a slow holder shows a progress line on stderr and stops at Ctrl-C
// without leaving the shell or a file behind.
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/unique_fd.h"
#include "gtest/gtest.h"
#include "peerctl/client.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

// peerctl on a pseudo-terminal: what it prints (escape sequences and all)
// is read from the pty's master side, and what the test "types" is written
// to it.
class Terminal {
 public:
  Terminal(const std::string& server, const std::string& cwd,
           const std::string& state_home) {
    winsize size{};
    size.ws_row = 24;
    size.ws_col = 100;
    int master = -1;
    pid_ = ::forkpty(&master, nullptr, nullptr, &size);
    if (pid_ == 0) {
      if (::chdir(cwd.c_str()) != 0) ::_exit(126);
      ::setenv("TERM", "xterm", 1);
      ::setenv("XDG_STATE_HOME", state_home.c_str(), 1);
      ::setenv("HOME", state_home.c_str(), 1);
      ::execl(PCFS_PEERCTL_PATH, "peerctl", "--server", server.c_str(),
              nullptr);
      ::_exit(127);
    }
    master_ = UniqueFd(master);
  }
  ~Terminal() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  void Type(const std::string& keys) {
    size_t done = 0;
    while (done < keys.size()) {
      ssize_t n =
          ::write(master_.get(), keys.data() + done, keys.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }

  // Waits until the output after the read position holds `text`; returns
  // everything up to it and moves past it. nullopt on timeout.
  std::optional<std::string> ReadUntil(
      const std::string& text, absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const size_t at = output_.find(text, position_);
      if (at != std::string::npos) {
        std::string before =
            output_.substr(position_, at + text.size() - position_);
        position_ = at + text.size();
        return before;
      }
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return std::nullopt;
      pollfd entry{master_.get(), POLLIN, 0};
      if (::poll(&entry, 1,
                 static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) {
        continue;
      }
      char buffer[4096];
      ssize_t n = ::read(master_.get(), buffer, sizeof(buffer));
      if (n <= 0) return std::nullopt;  // the child is gone (EIO)
      output_.append(buffer, static_cast<size_t>(n));
    }
  }

  std::optional<int> Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
      }
      ReadUntil("\x01never\x01", absl::Milliseconds(50));
    }
    return std::nullopt;
  }

  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  UniqueFd master_;
  std::string output_;
  size_t position_ = 0;
};

// Answers the login prompts on the terminal as hans.
void TypeCredentials(Terminal& terminal) {
  ASSERT_TRUE(terminal.ReadUntil("Username: ")) << terminal.output();
  terminal.Type("hans\r");
  ASSERT_TRUE(terminal.ReadUntil("Password: ")) << terminal.output();
  // The shell turns echo off (TCSAFLUSH: typed-ahead input is dropped)
  // just after the prompt; a person types later than that.
  absl::SleepFor(absl::Milliseconds(300));
  terminal.Type("hanspass\r");
}

// Logs in on the terminal as hans.
void LogIn(Terminal& terminal) {
  ASSERT_NO_FATAL_FAILURE(TypeCredentials(terminal));
  ASSERT_TRUE(terminal.ReadUntil("> ")) << terminal.output();
}

TEST(TerminalTest, UpArrowRecallsAndHistoryIsKept) {
  Daemon daemon;
  TempDir dir;
  TempDir state;
  Terminal terminal(daemon.address(), dir.path(), state.path());
  LogIn(terminal);
  terminal.Type("lpf\r");
  ASSERT_TRUE(terminal.ReadUntil("No files published")) << terminal.output();
  ASSERT_TRUE(terminal.ReadUntil("> "));
  terminal.Type("\x1b[A\r");  // Up, Enter: lpf again
  ASSERT_TRUE(terminal.ReadUntil("No files published")) << terminal.output();
  ASSERT_TRUE(terminal.ReadUntil("> "));
  // Ctrl-C clears a half-typed line: "bogus" never runs.
  terminal.Type("bogus\x03");
  ASSERT_TRUE(terminal.ReadUntil("^C")) << terminal.output();
  terminal.Type("lap\r");
  std::optional<std::string> lap = terminal.ReadUntil("No active peers");
  ASSERT_TRUE(lap) << terminal.output();
  EXPECT_FALSE(absl::StrContains(*lap, "Available commands")) << *lap;
  ASSERT_TRUE(terminal.ReadUntil("> "));
  terminal.Type("xit\r");
  EXPECT_EQ(terminal.Wait(absl::Seconds(10)), 0);
  const std::string history =
      ReadFileOrEmpty(state.path() + "/peerconnect/history");
  EXPECT_TRUE(absl::StrContains(history, "lpf")) << history;
  EXPECT_TRUE(absl::StrContains(history, "lap")) << history;
  EXPECT_FALSE(absl::StrContains(history, "hanspass")) << history;
}

TEST(TerminalTest, TabCompletesCommandsFilesPublicationsAndSearchResults) {
  Daemon daemon;
  TempDir dir;
  TempDir state;
  dir.WriteFile("BitTrickle.mp4", "a film\n");
  TempDir vader_dir;
  vader_dir.WriteFile("movie.bin", "vader's movie\n");
  Shell vader(daemon, "vader", "vaderpass", vader_dir.path());
  ASSERT_TRUE(vader.logged_in());
  ASSERT_EQ(vader.Run("pub movie.bin"), "");

  Terminal terminal(daemon.address(), dir.path(), state.path());
  LogIn(terminal);
  // "pu" Tab -> "pub ", "Bit" Tab -> the local file.
  terminal.Type("pu\t");
  ASSERT_TRUE(terminal.ReadUntil("pub ")) << terminal.output();
  terminal.Type("Bit\t\r");
  // (libedit redraws the completed word with cursor moves, so the line
  // does not read "pub BitTrickle.mp4" in one piece.)
  ASSERT_TRUE(terminal.ReadUntil("Trickle.mp4")) << terminal.output();
  std::optional<std::string> published = terminal.ReadUntil("> ");
  ASSERT_TRUE(published) << terminal.output();
  EXPECT_FALSE(absl::StrContains(*published, "failed")) << *published;
  // After unp: this user's publications (so the pub above worked).
  terminal.Type("unp B\t\r");
  ASSERT_TRUE(terminal.ReadUntil("Trickle.mp4")) << terminal.output();
  std::optional<std::string> unpublished = terminal.ReadUntil("> ");
  ASSERT_TRUE(unpublished) << terminal.output();
  EXPECT_FALSE(absl::StrContains(*unpublished, "failed")) << *unpublished;
  terminal.Type("lpf\r");
  ASSERT_TRUE(terminal.ReadUntil("No files published")) << terminal.output();
  ASSERT_TRUE(terminal.ReadUntil("> "));
  // After get: the names the last sch found.
  terminal.Type("sch mov\r");
  ASSERT_TRUE(terminal.ReadUntil("movie.bin")) << terminal.output();
  ASSERT_TRUE(terminal.ReadUntil("> "));
  terminal.Type("get m\t\r");
  ASSERT_TRUE(terminal.ReadUntil("Download successful: movie.bin"))
      << terminal.output();
  ASSERT_TRUE(terminal.ReadUntil("> "));
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/movie.bin"), "vader's movie\n");
  terminal.Type("xit\r");
  EXPECT_EQ(terminal.Wait(absl::Seconds(10)), 0);
}

// A holder that answers a download slowly: 16 KiB every 50 ms of a file
// announced as 64 MiB, until stopped (at most 60 s).
class SlowHolder {
 public:
  static constexpr uint64_t kSize = uint64_t{64} << 20;

  SlowHolder() {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address),
               sizeof(address)) != 0 ||
        ::listen(listener_.get(), 4) != 0) {
      ADD_FAILURE() << "SlowHolder: bind/listen: " << std::strerror(errno);
      return;
    }
    socklen_t length = sizeof(address);
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address),
                  &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~SlowHolder() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  bool served() const { return served_; }

 private:
  // A holder without Merkle leaves: "GET /m/" gets 404, and the downloader
  // comes back on a second connection for the whole file.
  void Run() {
    const absl::Time end = absl::Now() + absl::Seconds(60);
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (ServeOne(end)) return;
    }
  }

  // True once the file (or nothing, at the end) was the answer.
  bool ServeOne(absl::Time end) {
    pollfd entry{listener_.get(), POLLIN, 0};
    while (!stop_ && absl::Now() < end && ::poll(&entry, 1, 50) <= 0) {
    }
    if (stop_ || absl::Now() >= end) return true;
    UniqueFd connection(
        ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!connection) return true;
    std::string head;
    char buffer[4096];
    while (head.find("\r\n\r\n") == std::string::npos && !stop_) {
      ssize_t n = ::recv(connection.get(), buffer, sizeof(buffer), 0);
      if (n <= 0) return true;
      head.append(buffer, static_cast<size_t>(n));
    }
    if (absl::StartsWith(head, "GET /m/")) {
      const std::string none =
          "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n";
      ::send(connection.get(), none.data(), none.size(), MSG_NOSIGNAL);
      return false;
    }
    const std::string reply =
        absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", kSize, "\r\n\r\n");
    // Set before the bytes go: the downloader may print its progress line
    // before this thread runs again after send().
    served_ = true;
    if (::send(connection.get(), reply.data(), reply.size(), MSG_NOSIGNAL) <
        0) {
      return true;
    }
    const std::string chunk(16 << 10, 'x');
    while (!stop_ && absl::Now() < end) {
      if (::send(connection.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) <
          0) {
        return true;  // the downloader went away
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return true;
  }

  UniqueFd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> served_{false};
  std::thread thread_;
};

TEST(TerminalTest, GetShowsProgressAndCtrlCCancelsIt) {
  Daemon daemon;
  SlowHolder holder;
  // vader "holds" slow.bin: logged in with the slow holder as its file
  // server, heartbeating while the test runs.
  ControlClient::Options options;
  options.port = daemon.port();
  options.host = "127.0.0.1";
  absl::StatusOr<std::unique_ptr<ControlClient>> vader =
      ControlClient::Connect(options);
  ASSERT_TRUE(vader.ok()) << vader.status();
  ASSERT_TRUE((*vader)->Login("vader", "vaderpass", holder.port()).ok());
  ASSERT_TRUE(
      (*vader)->Publish("slow.bin", SlowHolder::kSize, Sha256Digest{}).ok());
  std::atomic<bool> stop{false};
  std::thread heartbeats([&] {
    for (int i = 0; i < 120 && !stop; ++i) {
      (*vader)->Heartbeat().IgnoreError();
      absl::SleepFor(absl::Milliseconds(500));
    }
  });

  TempDir dir;
  TempDir state;
  Terminal terminal(daemon.address(), dir.path(), state.path());
  LogIn(terminal);
  terminal.Type("get slow.bin\r");
  // The progress line: bytes, percent, rate and time left.
  std::optional<std::string> progress = terminal.ReadUntil(" left");
  EXPECT_TRUE(progress) << terminal.output();
  if (progress) {
    EXPECT_TRUE(absl::StrContains(*progress, "/ 64.0 MiB (")) << *progress;
    EXPECT_TRUE(absl::StrContains(*progress, "/s")) << *progress;
  }
  EXPECT_TRUE(holder.served());
  terminal.Type("\x03");  // Ctrl-C
  EXPECT_TRUE(
      terminal.ReadUntil("Download cancelled: slow.bin", absl::Seconds(5)))
      << terminal.output();
  ASSERT_TRUE(terminal.ReadUntil("> ")) << terminal.output();
  // Still in the shell, and nothing was left in the folder.
  EXPECT_EQ(ListFolder(dir.path()), std::vector<std::string>());
  terminal.Type("lpf\r");
  EXPECT_TRUE(terminal.ReadUntil("No files published")) << terminal.output();
  terminal.Type("xit\r");
  EXPECT_EQ(terminal.Wait(absl::Seconds(10)), 0);
  stop = true;
  heartbeats.join();
  (*vader)->Logout().IgnoreError();
}

// A shell of hans waiting, after its login, for the check of a file
// published earlier, whose read takes longer than the 2 s the start waits:
// big.bin, 8 GiB, published from a session that then ended with a root no
// file has, so the check reads all of it (seconds).
class StartWaitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    constexpr uint64_t kSize = uint64_t{8} << 30;
    dir_.WriteFile("big.bin", "");
    ASSERT_EQ(::truncate((dir_.path() + "/big.bin").c_str(), kSize), 0);
    std::unique_ptr<ControlClient> earlier =
        LoggedInClient(daemon_, "hans", "hanspass");
    ASSERT_NE(earlier, nullptr);
    ASSERT_TRUE(earlier->Publish("big.bin", kSize, Sha256Digest{}).ok());
    ASSERT_TRUE(earlier->Logout().ok());
    terminal_ = std::make_unique<Terminal>(daemon_.address(), dir_.path(),
                                           state_.path());
    ASSERT_NO_FATAL_FAILURE(TypeCredentials(*terminal_));
    absl::SleepFor(absl::Milliseconds(500));  // logged in, waiting
  }

  // The shell logged out: hans logs in again at once.
  void ExpectLoggedOut() {
    CommandResult again =
        RunPeerctl(daemon_, "hans", "hanspass", {"lap"}, dir_.path());
    EXPECT_EQ(again.exit_code, 0) << again.err;
  }

  Daemon daemon_;
  TempDir dir_;
  TempDir state_;
  std::unique_ptr<Terminal> terminal_;
};

// Ctrl-C during the wait ends it and the prompt comes (the check goes on
// behind it), and `xit` logs out, so the user logs in again at once. It
// used to kill the shell with its session left to expire, and the next
// login was refused as "already active".
TEST_F(StartWaitTest, CtrlCGivesThePrompt) {
  terminal_->Type("\x03");  // Ctrl-C
  ASSERT_TRUE(terminal_->ReadUntil("> ", absl::Seconds(10)))
      << terminal_->output();
  terminal_->Type("xit\r");
  EXPECT_EQ(terminal_->Wait(absl::Seconds(10)), 0) << terminal_->output();
  ExpectLoggedOut();
}

// Ctrl-D typed during the wait (no line is read then) ends the shell once
// the prompt comes, as Ctrl-D at the prompt does: it logs out.
TEST_F(StartWaitTest, CtrlDEndsTheShell) {
  terminal_->Type("\x04");  // Ctrl-D
  EXPECT_EQ(terminal_->Wait(absl::Seconds(10)), 0) << terminal_->output();
  ExpectLoggedOut();
}

// Ctrl-C while the login waits for a daemon that does not answer ends the
// shell at once, as it does at the prompts (not logged in: nothing to end).
TEST(TerminalTest, CtrlCWhileTheDaemonIsWaitedForEndsTheShell) {
  Daemon daemon;
  UdpRelay relay(daemon.port(), DropFraction(1.0, 1));
  TempDir dir;
  TempDir state;
  Terminal terminal(relay.address(), dir.path(), state.path());
  ASSERT_NO_FATAL_FAILURE(TypeCredentials(terminal));
  absl::SleepFor(absl::Milliseconds(500));  // the login retransmits
  terminal.Type("\x03");
  // Killed by the SIGINT (the harness's 128), within moments.
  EXPECT_EQ(terminal.Wait(absl::Seconds(3)), 128) << terminal.output();
}

}  // namespace
}  // namespace pcfs::testing
