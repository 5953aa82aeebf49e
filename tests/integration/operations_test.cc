// What an operator relies on, with real processes: `peerconnectd ping`,
// `peerconnectd check-config`, the Prometheus endpoint (checked by
// promtool), journald priorities, a reload that keeps the old credentials
// when the new file is bad, and the watchdog that every reactor must feed.
#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/base/unique_fd.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

TEST(PingTest, ExitsZeroWhenTheDaemonAnswers) {
  Daemon daemon;
  CommandResult r =
      RunDaemonCommand({"ping", daemon.address()}, daemon.folder());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "answered in")) << r.out;
  // The harness's daemon runs --verbose: a PING is logged as every
  // request is.
  EXPECT_TRUE(daemon.process()
                  .ReadStderrUntil("Received PING from an unknown peer",
                                   absl::Seconds(10))
                  .has_value())
      << daemon.process().stderr_text();
}

TEST(PingTest, FailsWithAClearMessageWhenNothingAnswers) {
  TempDir dir;
  UdpSocket silent;  // bound, so nothing refuses, but it never answers
  const absl::Time start = absl::Now();
  CommandResult r = RunDaemonCommand(
      {"ping", absl::StrCat("127.0.0.1:", silent.port()), "--timeout=600ms"},
      dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "no answer from 127.0.0.1:")) << r.err;
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(PingTest, SaysNothingListensWhenThePortIsClosed) {
  TempDir dir;
  uint16_t closed = 0;
  {
    UdpSocket probe;
    closed = probe.port();
  }
  CommandResult r = RunDaemonCommand(
      {"ping", absl::StrCat("127.0.0.1:", closed), "--timeout=2s"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "nothing listens on UDP")) << r.err;
}

// A name that does not resolve is a daemon not reached (exit 1), as a
// health check must read it, not a usage error (exit 2): the name may be
// good and its resolver down for a while.
TEST(PingTest, ANameThatDoesNotResolveIsNotReached) {
  TempDir dir;
  CommandResult r = RunDaemonCommand(
      {"ping", "nosuchhost.invalid:50000", "--timeout=1s"}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "cannot resolve nosuchhost.invalid"))
      << r.err;
}

TEST(CheckConfigTest, AcceptsAGoodConfigurationWithoutStarting) {
  TempDir dir;
  dir.WriteFile("credentials.txt", "hans hanspass\nvader vaderpass\n");
  CommandResult r = RunDaemonCommand(
      {"check-config", "--state_dir=state", "--metrics=127.0.0.1:9650"},
      dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "configuration is good: 2 users"))
      << r.out;
  EXPECT_FALSE(FileExists(dir.path() + "/state")) << "check-config created it";
}

TEST(CheckConfigTest, RefusesABadCredentialsFileAndSaysWhere) {
  TempDir dir;
  dir.WriteFile("credentials.txt", "hans hanspass\nvader\n");
  CommandResult r = RunDaemonCommand({"check-config"}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "credentials.txt")) << r.err;
}

TEST(CheckConfigTest, RefusesBadFlagsAndABadStateFolder) {
  TempDir dir;
  dir.WriteFile("credentials.txt", "hans hanspass\n");
  // A value of the right type that no daemon could use is a usage error
  // too, caught before any file is read: from check-config and from a
  // start alike.
  for (const auto& [flag, message] : {
           std::pair{"--io=poll",
                     "--io must be auto, uring or epoll, not "
                     "'poll'"},
           {"--metrics=9650", "--metrics wants ADDRESS:PORT"},
           {"--bind=notanaddress", "--bind: "},
           {"--redis=localhost", "--redis: 'localhost' is not HOST:PORT"},
           {"--redis-timeout=0", "--redis-timeout must be > 0"},
       }) {
    for (const char* command : {"check-config", "--port=0"}) {
      CommandResult bad = RunDaemonCommand({command, flag}, dir.path());
      EXPECT_EQ(bad.exit_code, 2) << command << " " << flag;
      EXPECT_TRUE(
          absl::StartsWith(bad.err, absl::StrCat("peerconnectd: ", message)))
          << bad.err;
      EXPECT_TRUE(absl::StrContains(bad.err, "usage:")) << bad.err;
    }
  }
  for (const char* interval :
       {"--commit-interval=2s", "--commit-interval=-1ms"}) {
    CommandResult commit =
        RunDaemonCommand({"check-config", interval}, dir.path());
    EXPECT_EQ(commit.exit_code, 2) << interval;  // a usage error
    EXPECT_TRUE(
        absl::StrContains(commit.err, "--commit-interval must be in [0, 1s]"))
        << commit.err;
  }
  EXPECT_EQ(
      RunDaemonCommand({"check-config", "--commit-interval=0"}, dir.path())
          .exit_code,
      0);
  // A value absl cannot parse: a usage error naming the flag, with the
  // usage, not absl's own message and exit 1.
  for (const auto& [flag, value] :
       {std::pair{"--threads", "x"}, {"--commit-interval", "soon"}}) {
    CommandResult bad = RunDaemonCommand(
        {"check-config", absl::StrCat(flag, "=", value)}, dir.path());
    EXPECT_EQ(bad.exit_code, 2) << flag;
    EXPECT_TRUE(
        absl::StartsWith(bad.err, absl::StrCat("peerconnectd: invalid value '",
                                               value, "' for ", flag, "\n")))
        << bad.err;
    EXPECT_TRUE(absl::StrContains(bad.err, "usage:")) << bad.err;
  }
  dir.WriteFile("not-a-folder", "x");
  CommandResult state = RunDaemonCommand(
      {"check-config", "--state_dir=not-a-folder"}, dir.path());
  EXPECT_EQ(state.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(state.err, "is not a folder")) << state.err;
  dir.MakeSubdir("damaged");
  dir.WriteFile("damaged/publications.snapshot", "X nonsense\n");
  CommandResult damaged =
      RunDaemonCommand({"check-config", "--state_dir=damaged"}, dir.path());
  EXPECT_EQ(damaged.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(damaged.err, "publications.snapshot"))
      << damaged.err;
}

// The "http://ADDRESS/metrics" the daemon logged.
std::string MetricsUrl(Process& daemon) {
  const std::string& err = daemon.stderr_text();
  const size_t at = err.find("metrics at http://");
  if (at == std::string::npos) return "";
  const size_t start = at + std::strlen("metrics at ");
  return err.substr(start, err.find('\n', start) - start);
}

TEST(MetricsTest, ServesPrometheusTextThatPromtoolAccepts) {
  Daemon daemon("hans hanspass\nvader vaderpass\n",
                {"--metrics=127.0.0.1:0", "--threads=2"});
  const std::string url = MetricsUrl(daemon.process());
  ASSERT_FALSE(url.empty()) << daemon.process().stderr_text();
  TempDir work;
  work.WriteFile("song.mp3", "la la la\n");
  EXPECT_EQ(
      RunPeerctl(daemon, "hans", "hanspass", {"pub", "song.mp3"}, work.path())
          .exit_code,
      0);
  EXPECT_NE(
      RunPeerctl(daemon, "vader", "wrong", {"lap"}, work.path()).exit_code, 0);
  EXPECT_EQ(RunDaemonCommand({"ping", daemon.address()}, work.path()).exit_code,
            0);

  Process::Options curl;
  curl.argv = {"/usr/bin/curl",
               "-sS",
               "--fail",
               "-o",
               work.path() + "/metrics.txt",
               url};
  curl.cwd = work.path();
  CommandResult fetched = RunToCompletion(curl, absl::Seconds(20));
  ASSERT_EQ(fetched.exit_code, 0) << fetched.err;
  const std::string text = ReadFileOrEmpty(work.path() + "/metrics.txt");
  for (const char* line : {
           "pcfs_logins_total{result=\"ok\"} 1\n",
           "pcfs_logins_total{result=\"refused\"} 1\n",
           "pcfs_replies_total{type=\"PUB\",result=\"ok\"} 1\n",
           "pcfs_requests_total{type=\"PING\"} 1\n",
           "pcfs_publications 1\n",
           "pcfs_reactors 2\n",
           "pcfs_journal_flush_seconds_count 1\n",
           "pcfs_build_info{version=\"",
           "pcfs_reactor_backend_info{backend=\"",
           "pcfs_request_duration_seconds_bucket{le=\"+Inf\"} ",
           "pcfs_datagrams_dropped_total{reason=\"bad_mac\"} 0\n",
           "pcfs_session_expiries_total 0\n",
           "pcfs_session_expiries_held_total 0\n",
           "pcfs_datagrams_dropped_total{reason=\"receive_buffer\"} 0\n",
           "pcfs_datagrams_dropped_total{reason=\"oversized\"} 0\n",
           "pcfs_udp_replies_total{result=\"dropped\"} 0\n",
           "pcfs_socket_errors_total 0\n",
           "pcfs_sessions_active ",
       }) {
    EXPECT_TRUE(absl::StrContains(text, line)) << "missing " << line << "\n"
                                               << text;
  }
  const std::string refused_finish =
      absl::StrCat("pcfs_replies_total{type=\"LOGIN_FINISH\",",
                   "result=\"auth_failed\"} 1\n");
  EXPECT_TRUE(absl::StrContains(text, refused_finish)) << text;

  Process::Options promtool;
  promtool.argv = {"/bin/sh", "-c", "promtool check metrics < metrics.txt"};
  promtool.cwd = work.path();
  CommandResult checked = RunToCompletion(promtool, absl::Seconds(30));
  EXPECT_EQ(checked.exit_code, 0)
      << "promtool (Debian package prometheus; packaging/install-deps.sh "
         "installs it):\n"
      << checked.out << checked.err;

  // Anything but GET /metrics is refused.
  curl.argv = {"/usr/bin/curl",
               "-s",
               "-o",
               "/dev/null",
               "-w",
               "%{http_code}",
               absl::StrCat(url.substr(0, url.rfind('/')), "/other")};
  CommandResult other = RunToCompletion(curl, absl::Seconds(20));
  EXPECT_EQ(other.out, "404");

  // Its last line accounts for every reply: each one the handlers made,
  // the deferred PUB's included, was sent or counted as dropped.
  ASSERT_EQ(daemon.Stop(), 0);
  const std::string& err = daemon.process().stderr_text();
  const size_t stopped = err.find("peerconnectd stopped: ");
  ASSERT_NE(stopped, std::string::npos) << err;
  const std::string last =
      err.substr(stopped, err.find('\n', stopped) - stopped);
  const auto counter = [&last](absl::string_view name) -> int64_t {
    const std::string key = absl::StrCat(" ", name, "=");
    const size_t at = last.find(key);
    if (at == std::string::npos) return -1;
    int64_t value = -1;
    const size_t start = at + key.size();
    return absl::SimpleAtoi(last.substr(start, last.find(' ', start) - start),
                            &value)
               ? value
               : -1;
  };
  EXPECT_GE(counter("replies"), 7) << last;  // 4 hans, 2 vader, 1 ping
  EXPECT_EQ(counter("replies_sent"), counter("replies")) << last;
  EXPECT_EQ(counter("replies_dropped"), 0) << last;
}

// Starts peerconnectd through sh so that $JOURNAL_STREAM names its stderr
// pipe, as systemd does for a service whose stderr is the journal.
TEST(JournalTest, LinesCarryTheirSyslogPriorityWhenStderrIsTheJournal) {
  TempDir dir;
  dir.WriteFile("credentials.txt", "hans hanspass\n");
  Process::Options options;
  options.argv = {
      "/bin/sh", "-c",
      absl::StrCat("JOURNAL_STREAM=$(stat -L -c %d:%i "
                   "/proc/self/fd/2) exec ",
                   PCFS_DAEMON_PATH, " --port=0 --bind=127.0.0.1 --threads=1")};
  options.cwd = dir.path();
  Process daemon(options);
  std::optional<std::string> line =
      daemon.ReadStderrUntil(" (UDP", absl::Seconds(20));
  ASSERT_TRUE(line.has_value()) << daemon.stderr_text();
  EXPECT_TRUE(absl::StrContains(*line, "<6>peerconnectd listening on"))
      << *line;
  const size_t colon = line->rfind(':');
  uint32_t port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      line->substr(colon + 1, line->rfind(" (UDP") - colon - 1), &port));
  TempDir work;
  CommandResult refused = RunToCompletion(PeerctlOptions(
      absl::StrCat("127.0.0.1:", port), "hans", "nope", {"lap"}, work.path()));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(daemon
                  .ReadStderrUntil("<4>failed login for user hans from "
                                   "127.0.0.1:",
                                   absl::Seconds(10))
                  .has_value())
      << daemon.stderr_text();
  CommandResult ok =
      RunToCompletion(PeerctlOptions(absl::StrCat("127.0.0.1:", port), "hans",
                                     "hanspass", {"lap"}, work.path()));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(
      daemon
          .ReadStderrUntil("<6>login: hans from 127.0.0.1:", absl::Seconds(10))
          .has_value());
  EXPECT_TRUE(
      daemon.ReadStderrUntil("<6>logout: hans", absl::Seconds(10)).has_value());
  dir.WriteFile("credentials.txt", "vader vaderpass\nluke\n");
  daemon.Signal(SIGHUP);
  EXPECT_TRUE(daemon
                  .ReadStderrUntil("<3>SIGHUP: keeping the old credentials",
                                   absl::Seconds(10))
                  .has_value())
      << daemon.stderr_text();
  // The old credentials stay in force.
  ok = RunToCompletion(PeerctlOptions(absl::StrCat("127.0.0.1:", port), "hans",
                                      "hanspass", {"lap"}, work.path()));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  daemon.Signal(SIGTERM);
  EXPECT_EQ(daemon.Wait(absl::Seconds(20)), 0);
}

// A unix datagram socket standing in for systemd's $NOTIFY_SOCKET.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(
        ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
  }
  // Waits up to `timeout` for a message containing `text`.
  bool WaitFor(const std::string& text, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (absl::Time now = absl::Now(); now < deadline; now = absl::Now()) {
      pollfd p = {fd_.get(), POLLIN, 0};
      if (::poll(&p, 1,
                 static_cast<int>(absl::ToInt64Milliseconds(deadline - now)) +
                     1) <= 0) {
        continue;
      }
      char buffer[4096];
      ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
      if (n > 0 &&
          absl::StrContains(absl::string_view(buffer, static_cast<size_t>(n)),
                            text)) {
        return true;
      }
    }
    return false;
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

Process::Options WatchedDaemon(const TempDir& dir, bool stall) {
  dir.WriteFile("credentials.txt", "hans hanspass\n");
  Process::Options options;
  options.argv = {PCFS_DAEMON_PATH, "--port=0", "--bind=127.0.0.1",
                  "--threads=2"};
  options.cwd = dir.path();
  options.env["NOTIFY_SOCKET"] = dir.path() + "/notify";
  options.env["WATCHDOG_USEC"] = "1000000";
  if (stall) options.env["PCFS_DEBUG_STALL_REACTOR"] = "1";
  return options;
}

// The names `top -H` and `ps -L` show for a daemon's threads: its first
// reactor runs on the main thread, which keeps the process's name.
std::vector<std::string> ThreadNames(pid_t pid) {
  std::vector<std::string> names;
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const std::string name =
        ReadFileOrEmpty(absl::StrCat(tasks, "/", entry->d_name, "/comm"));
    if (!name.empty()) {
      names.emplace_back(absl::StripTrailingAsciiWhitespace(name));
    }
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ThreadNamesTest, EachThreadSaysWhatItDoes) {
  Daemon daemon("hans hanspass\n", {"--threads=2"});
  // The daemon answers once every thread has started.
  ASSERT_NE(LoggedInClient(daemon, "hans", "hanspass"), nullptr);
  // "peerconnectd" once: none left unnamed besides the main thread. Each
  // thread names itself as it starts, which may be just after the login
  // is answered: a moment's grace.
  static constexpr std::array<const char*, 4> kExpected = {
      "peerconnectd", "reactor-1", "journal", "log-writer"};
  auto each_once = [](const std::vector<std::string>& names) {
    return std::all_of(kExpected.begin(), kExpected.end(), [&](const char* n) {
      return std::count(names.begin(), names.end(), n) == 1;
    });
  };
  std::vector<std::string> names = ThreadNames(daemon.process().pid());
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!each_once(names) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
    names = ThreadNames(daemon.process().pid());
  }
  for (const char* expected : kExpected) {
    EXPECT_EQ(std::count(names.begin(), names.end(), expected), 1)
        << expected << " in " << absl::StrJoin(names, ", ");
  }
}

TEST(WatchdogTest, EveryReactorAliveKeepsThePingsComing) {
  TempDir dir;
  NotifySocket notify(dir.path() + "/notify");
  Process daemon(WatchedDaemon(dir, false));
  EXPECT_TRUE(notify.WaitFor("READY=1", absl::Seconds(20)));
  EXPECT_TRUE(notify.WaitFor("WATCHDOG=1", absl::Seconds(2)));
  EXPECT_TRUE(notify.WaitFor("WATCHDOG=1", absl::Seconds(2)));
}

TEST(WatchdogTest, OneStuckReactorStopsThePings) {
  TempDir dir;
  NotifySocket notify(dir.path() + "/notify");
  Process daemon(WatchedDaemon(dir, true));
  EXPECT_TRUE(notify.WaitFor("READY=1", absl::Seconds(20)));
  EXPECT_FALSE(notify.WaitFor("WATCHDOG=1", absl::Seconds(2)));
  EXPECT_TRUE(daemon
                  .ReadStderrUntil("watchdog: reactor 1 has made no progress",
                                   absl::Seconds(5))
                  .has_value())
      << daemon.stderr_text();
  daemon.Signal(SIGTERM);
  EXPECT_EQ(daemon.Wait(absl::Seconds(20)), 0);
}

}  // namespace
}  // namespace pcfs::testing
