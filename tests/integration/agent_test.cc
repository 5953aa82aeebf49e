// `peerctl serve` (peerctl/agent.h) with real processes on loopback: one-shot
// commands and the shell go through it, it holds its session across daemon
// restarts and refused re-logins, serves only its own uid, and stops
// cleanly; --json output parses.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "peerctl/exit_codes.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

// An agent for hans, its socket and settings folder in a temporary folder.
class AgentTest : public ::testing::Test {
 protected:
  void StartAgent() {
    share_ = dir_.MakeSubdir("share");
    config_ = dir_.MakeSubdir("config");
    socket_ = absl::StrCat(dir_.path(), "/run/peerctl.sock");
    Process::Options options;
    options.argv = {
        PCFS_PEERCTL_PATH, "serve", "--server",    daemon_.address(),
        "--user",          "hans",  "--share-dir", share_,
        "--socket",        socket_};
    options.cwd = dir_.path();
    options.env = {{"PEERCTL_PASSWORD", "hanspass"},
                   {"XDG_CONFIG_HOME", config_}};
    agent_ = std::make_unique<Process>(options);
    ASSERT_TRUE(agent_->ReadStderrUntil("logged in as hans", absl::Seconds(20)))
        << agent_->stderr_text();
  }

  // `peerctl ARGS...` as a user of the agent: no --user, no password, so
  // it can only succeed through the agent.
  Process::Options ThroughAgent(const std::vector<std::string>& args,
                                const std::string& cwd) {
    Process::Options options;
    options.argv = {PCFS_PEERCTL_PATH};
    options.argv.insert(options.argv.end(), args.begin(), args.end());
    options.cwd = cwd;
    options.env = {{"PEERCTL_SOCKET", socket_},
                   {"XDG_CONFIG_HOME", config_},
                   {"PEERCTL_PASSWORD", ""}};
    return options;
  }

  // `peerctl --user USER ...` logging in for itself (the agent is hans's).
  Process::Options AsUser(const std::string& user, const std::string& password,
                          const std::vector<std::string>& args,
                          const std::string& cwd) {
    Process::Options options =
        PeerctlOptions(daemon_.address(), user, password, args, cwd);
    options.env["PEERCTL_SOCKET"] = socket_;
    options.env["XDG_CONFIG_HOME"] = config_;
    return options;
  }

  // Whether vader's `lap` lists hans, tried until `timeout`.
  bool HansActiveWithin(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (int tries = 0; tries < 200 && absl::Now() < deadline; ++tries) {
      CommandResult lap =
          RunToCompletion(AsUser("vader", "vaderpass", {"lap"}, dir_.path()),
                          absl::Seconds(15));
      if (lap.exit_code == 0 && absl::StrContains(lap.out, "hans\n")) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    return false;
  }

  Daemon daemon_;
  TempDir dir_;
  std::string share_;
  std::string config_;
  std::string socket_;
  std::unique_ptr<Process> agent_;
};

TEST_F(AgentTest, TwentyParallelCommandsWhileAnotherUserDownloads) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  WriteRandomFile(absl::StrCat(share_, "/big.bin"), 32 << 20, 7);
  for (int i = 0; i < 10; ++i) {
    dir_.WriteFile(absl::StrCat("share/f", i, ".txt"), absl::StrCat(i));
  }
  CommandResult pub =
      RunToCompletion(ThroughAgent({"pub", "big.bin"}, dir_.path()));
  ASSERT_EQ(pub.exit_code, 0) << pub.err;

  const std::string vader_dir = dir_.MakeSubdir("vader");
  Process download(AsUser("vader", "vaderpass", {"get", "big.bin"}, vader_dir));
  download.CloseStdin();
  std::vector<std::unique_ptr<Process>> commands;
  for (int i = 0; i < 20; ++i) {
    std::vector<std::string> args;
    switch (i % 4) {
      case 0:
        args = {"pub", absl::StrCat("f", i / 2, ".txt")};
        break;
      case 1:
        args = {"lpf"};
        break;
      case 2:
        args = {"lap"};
        break;
      default:
        args = {"sch", "f"};
    }
    commands.push_back(
        std::make_unique<Process>(ThroughAgent(args, dir_.path())));
    commands.back()->CloseStdin();
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    std::optional<int> code = commands[i]->Wait(absl::Seconds(60));
    EXPECT_EQ(code, 0) << "command " << i << ": " << commands[i]->stderr_text();
  }
  EXPECT_EQ(download.Wait(absl::Seconds(60)), 0) << download.stderr_text();
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat(vader_dir, "/big.bin")),
            ReadFileOrEmpty(absl::StrCat(share_, "/big.bin")));
  CommandResult lpf = RunToCompletion(ThroughAgent({"lpf"}, dir_.path()));
  EXPECT_EQ(lpf.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(lpf.out, "big.bin\n")) << lpf.out;
  EXPECT_TRUE(absl::StrContains(lpf.out, "f8.txt\n")) << lpf.out;
}

TEST_F(AgentTest, AnotherUidCannotUseTheSocket) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run as nobody";
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  const auto as_nobody = [&] {
    Process::Options options = ThroughAgent({"lpf"}, "/");
    options.env["XDG_CONFIG_HOME"] = "/nonexistent";
    options.argv.insert(options.argv.begin(),
                        {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                         "--clear-groups"});
    return RunToCompletion(options, absl::Seconds(20));
  };
  // The socket's mode (0600) and folder (0700) keep others out...
  CommandResult refused = as_nobody();
  EXPECT_EQ(refused.exit_code, kExitFailure) << refused.err;
  EXPECT_TRUE(absl::StrContains(refused.err, "Permission denied"))
      << refused.err;
  // ...and so does the agent itself if the modes are opened up.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(absl::StrCat(dir_.path(), "/run").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(socket_.c_str(), 0777), 0);
  CommandResult checked = as_nobody();
  EXPECT_EQ(checked.exit_code, kExitFailure) << checked.err;
  EXPECT_TRUE(absl::StrContains(checked.err, "serves uid 0 only"))
      << checked.err;
  EXPECT_EQ(checked.out, "");
  // The owner still gets in.
  EXPECT_EQ(RunToCompletion(ThroughAgent({"lpf"}, dir_.path())).exit_code, 0);
}

TEST_F(AgentTest, LogsInAgainWithin10SecondsOfADaemonRestart) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  daemon_.process().Signal(SIGKILL);
  ASSERT_TRUE(daemon_.process().Wait(absl::Seconds(10)).has_value());
  absl::SleepFor(absl::Seconds(3));  // the agent notices: heartbeats fail
  daemon_.Restart();
  const absl::Time back = absl::Now();
  EXPECT_TRUE(HansActiveWithin(absl::Seconds(10))) << agent_->stderr_text();
  EXPECT_LT(absl::Now() - back, absl::Seconds(10));
  CommandResult lpf = RunToCompletion(ThroughAgent({"lpf"}, dir_.path()));
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
}

TEST_F(AgentTest, RecoversFromARefusedRelogin) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  daemon_.process().Signal(SIGKILL);
  ASSERT_TRUE(daemon_.process().Wait(absl::Seconds(10)).has_value());
  const std::string credentials =
      absl::StrCat(daemon_.folder(), "/credentials.txt");
  const std::string good = ReadFileOrEmpty(credentials);
  {
    TempDir scratch;
    scratch.WriteFile("c", "hans otherpass\nvader vaderpass\n");
    ASSERT_EQ(::rename(absl::StrCat(scratch.path(), "/c").c_str(),
                       credentials.c_str()),
              0);
  }
  daemon_.Restart();
  ASSERT_TRUE(
      agent_->ReadStderrUntil("logging in again failed", absl::Seconds(15)))
      << agent_->stderr_text();
  // Meanwhile a command says why instead of hanging.
  CommandResult waiting = RunToCompletion(ThroughAgent({"lpf"}, dir_.path()));
  EXPECT_EQ(waiting.exit_code, kExitUnreachable) << waiting.err;
  EXPECT_TRUE(absl::StrContains(waiting.err, "not logged in")) << waiting.err;
  {
    TempDir scratch;
    scratch.WriteFile("c", good);
    ASSERT_EQ(::rename(absl::StrCat(scratch.path(), "/c").c_str(),
                       credentials.c_str()),
              0);
  }
  daemon_.process().Signal(SIGHUP);
  EXPECT_TRUE(HansActiveWithin(absl::Seconds(20))) << agent_->stderr_text();
  EXPECT_TRUE(absl::StrContains(agent_->stderr_text(), "logged in as hans"));
}

// --timeout bounds a command that goes through the agent too: with the
// daemon stopped (SIGSTOP: silent, not gone), `lpf --timeout 1s` ends well
// before the agent's own retries would (6.4 s), as "daemon unreachable".
TEST_F(AgentTest, TimeoutBoundsACommandThroughTheAgent) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  daemon_.process().Signal(SIGSTOP);
  const absl::Time start = absl::Now();
  CommandResult lpf =
      RunToCompletion(ThroughAgent({"--timeout", "1s", "lpf"}, dir_.path()));
  const absl::Duration took = absl::Now() - start;
  daemon_.process().Signal(SIGCONT);
  EXPECT_EQ(lpf.exit_code, kExitUnreachable) << lpf.err;
  EXPECT_TRUE(absl::StrContains(lpf.err, "--timeout")) << lpf.err;
  EXPECT_LT(took, absl::Seconds(3));
  // The agent goes on, and answers once the daemon does.
  EXPECT_TRUE(HansActiveWithin(absl::Seconds(15))) << agent_->stderr_text();
}

TEST_F(AgentTest, SigtermLogsOutAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(absl::Seconds(15)), 0) << agent_->stderr_text();
  EXPECT_TRUE(absl::StrContains(agent_->stderr_text(), "logged out"));
  EXPECT_FALSE(FileExists(socket_));
  // Logged out, not merely silent: hans may log straight back in.
  CommandResult lpf = RunToCompletion(
      AsUser("hans", "hanspass", {"lpf"}, dir_.path()), absl::Seconds(15));
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
}

// Every line of `text` parsed by python3's json module; returns what
// python3 printed for each: "KEYS: sorted,keys error=NAME".
std::string Parse(const TempDir& dir, const std::string& text) {
  dir.WriteFile("json.txt", text);
  Process::Options options;
  options.argv = {"/usr/bin/python3", "-c",
                  "import json,sys\n"
                  "for line in open(sys.argv[1]):\n"
                  "  o = json.loads(line)\n"
                  "  print(','.join(sorted(o)), o.get('error', ''))\n",
                  absl::StrCat(dir.path(), "/json.txt")};
  CommandResult parsed = RunToCompletion(options, absl::Seconds(20));
  EXPECT_EQ(parsed.exit_code, 0) << text << parsed.err;
  return parsed.out;
}

TEST_F(AgentTest, JsonOutputOfEveryCommandParses) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  dir_.WriteFile("share/a \"quoted\" name.txt", "a");
  Shell vader(daemon_, "vader", "vaderpass", dir_.path());
  dir_.WriteFile("v.txt", "v");
  ASSERT_EQ(vader.Run("pub v.txt"), "");
  const std::string in = dir_.MakeSubdir("in");
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string keys;
  };
  const std::vector<Case> cases = {
      {{"pub", "a \"quoted\" name.txt"}, 0, "command,name,status \n"},
      {{"lpf"}, 0, "command,name \n"},
      {{"lap"}, 0, "command,user \n"},
      {{"sch", "v"}, 0, "command,name \n"},
      {{"get", "v.txt"}, 0, "command,name,path \n"},
      {{"unp", "a \"quoted\" name.txt"}, 0, "command,name,status \n"},
      {{"unp", "nothing"},
       kExitNotFound,
       "command,error,exit_code,message not-found\n"},
      {{"get", "nothing"},
       kExitNotFound,
       "command,error,exit_code,message not-found\n"},
      {{"pub", "a/b"}, kExitUsage, "command,error,exit_code,message usage\n"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--json"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CommandResult result = RunToCompletion(ThroughAgent(args, in));
    EXPECT_EQ(result.exit_code, c.code) << c.args[0] << ": " << result.err;
    EXPECT_EQ(Parse(dir_, c.code == 0 ? result.out : result.err), c.keys)
        << c.args[0] << " " << result.out << result.err;
    if (c.code != 0) {
      EXPECT_EQ(result.out, "");
    }
  }
  EXPECT_TRUE(FileExists(absl::StrCat(in, "/v.txt")));
  // Without an agent (a socket nobody listens on), errors are JSON too.
  Process::Options alone =
      AsUser("yoda", "wrongpass", {"--json", "lpf"}, dir_.path());
  CommandResult refused = RunToCompletion(alone);
  EXPECT_EQ(refused.exit_code, kExitLoginRefused) << refused.err;
  EXPECT_EQ(Parse(dir_, refused.err),
            "command,error,exit_code,message login-refused\n");
}

// A download folder that is not there is a bad setting (exit 2) named as
// such, before the daemon or a holder is asked: through the agent (given
// relative) and without it.
TEST_F(AgentTest, AMissingDownloadFolderIsNamed) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  CommandResult through = RunToCompletion(ThroughAgent(
      {"--download-dir", "nonexistent", "get", "any.bin"}, dir_.path()));
  EXPECT_EQ(through.exit_code, kExitUsage) << through.err;
  EXPECT_TRUE(absl::StrContains(
      through.err, absl::StrCat("the download folder ", dir_.path(),
                                "/nonexistent: No "
                                "such file or directory")))
      << through.err;
  CommandResult direct = RunToCompletion(
      AsUser("vader", "vaderpass",
             {"--download-dir", dir_.path() + "/nonexistent", "get", "any.bin"},
             dir_.path()));
  EXPECT_EQ(direct.exit_code, kExitUsage) << direct.err;
  EXPECT_TRUE(absl::StrContains(direct.err, "the download folder "))
      << direct.err;
}

// A command killed while the agent downloads for it (Ctrl-C) stops that
// download: the next get is not refused as "another get is downloading".
TEST_F(AgentTest, AGetWhoseCommandIsGoneStops) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  TempDir vader_dir;
  vader_dir.WriteFile("held.txt", "held");
  auto vader =
      std::make_unique<Shell>(daemon_, "vader", "vaderpass", vader_dir.path());
  ASSERT_EQ(vader->Run("pub held.txt"), "");
  // Its file server never answers the handshake while stopped.
  vader->process().Signal(SIGSTOP);
  const std::string in = dir_.MakeSubdir("in");
  {
    Process first(ThroughAgent({"get", "held.txt"}, in));
    ASSERT_TRUE(
        daemon_.process()
            .ReadStderrUntil("Received GET from hans", absl::Seconds(10))
            .has_value())
        << daemon_.process().stderr_text();
    first.Signal(SIGKILL);
    first.Wait(absl::Seconds(10));
  }
  absl::SleepFor(absl::Milliseconds(400));  // the agent polls every 100 ms
  Process second(ThroughAgent({"get", "held.txt"}, in));
  absl::SleepFor(absl::Milliseconds(300));
  vader->process().Signal(SIGCONT);
  EXPECT_EQ(second.Wait(absl::Seconds(20)), kExitOk) << second.stderr_text();
  EXPECT_EQ(ReadFileOrEmpty(in + "/held.txt"), "held");
}

TEST_F(AgentTest, TheShellAttachesToTheAgent) {
  ASSERT_NO_FATAL_FAILURE(StartAgent());
  dir_.WriteFile("share/s.txt", "s");
  Process shell(ThroughAgent({}, dir_.path()));
  ASSERT_TRUE(shell.ReadStdoutUntil("> ", absl::Seconds(20)))
      << shell.stdout_text() << shell.stderr_text();
  EXPECT_TRUE(absl::StartsWith(shell.stdout_text(),
                               "Attached to the peerctl agent of hans"))
      << shell.stdout_text();
  shell.Write("pub s.txt\n");
  EXPECT_EQ(shell.ReadStdoutUntil("> ", absl::Seconds(20)), "> ");
  shell.Write("xit\n");
  EXPECT_EQ(shell.Wait(absl::Seconds(10)), 0);
  EXPECT_EQ(shell.ReadStdoutRest(), "");
  // The agent still holds the session.
  CommandResult lpf = RunToCompletion(ThroughAgent({"lpf"}, dir_.path()));
  EXPECT_EQ(lpf.out, "s.txt\n") << lpf.err;
}

TEST(CommandLineTest, HelpAndVersionForBothBinaries) {
  for (const char* binary : {PCFS_PEERCTL_PATH, PCFS_DAEMON_PATH}) {
    for (const char* flag : {"-h", "--help"}) {
      CommandResult help = RunToCompletion({{binary, flag}, "/", {}});
      EXPECT_EQ(help.exit_code, 0) << binary << " " << flag << help.err;
      EXPECT_TRUE(absl::StartsWith(help.out, "usage: ")) << help.out;
      // Flags from the environment pass the same checks (core/base/cli.h).
      EXPECT_TRUE(absl::StrContains(help.out, "\n  --fromenv")) << help.out;
      EXPECT_EQ(help.err, "");
    }
    CommandResult version = RunToCompletion({{binary, "--version"}, "/", {}});
    EXPECT_EQ(version.exit_code, 0);
    const std::string name =
        std::string(binary).substr(std::string(binary).rfind('/') + 1);
    EXPECT_EQ(version.out, absl::StrCat(name, " 0.2.0\n"));
  }
}

TEST(CommandLineTest, FlagsOverEnvironmentOverSettingsFile) {
  Daemon daemon;
  TempDir dir;
  dir.WriteFile("password", "vaderpass\n");
  const std::string config = dir.MakeSubdir("config");
  dir.MakeSubdir("config/peerconnect");
  dir.WriteFile("config/peerconnect/peerctl.conf",
                absl::StrCat("# vader's settings\nserver = ", daemon.address(),
                             "\nuser = vader\npassword_file = ", dir.path(),
                             "/password\n"));
  const auto run = [&](std::vector<std::string> args,
                       std::map<std::string, std::string> env) {
    Process::Options options;
    options.argv = {PCFS_PEERCTL_PATH};
    options.argv.insert(options.argv.end(), args.begin(), args.end());
    options.cwd = dir.path();
    env["XDG_CONFIG_HOME"] = config;
    env["PEERCTL_SOCKET"] = dir.path() + "/no-agent.sock";
    options.env = env;
    return RunToCompletion(options, absl::Seconds(30));
  };
  // The file alone: server, user and password.
  CommandResult from_file = run({"lpf"}, {});
  EXPECT_EQ(from_file.exit_code, 0) << from_file.err;
  // The environment over the file: a server where nothing answers.
  CommandResult from_env = run({"lpf"}, {{"PEERCTL_SERVER", "127.0.0.1:9"}});
  EXPECT_EQ(from_env.exit_code, kExitUnreachable) << from_env.err;
  // A flag over the environment.
  CommandResult from_flag = run({"--server", daemon.address(), "lpf"},
                                {{"PEERCTL_SERVER", "127.0.0.1:9"}});
  EXPECT_EQ(from_flag.exit_code, 0) << from_flag.err;
  // A broken file names itself and the line.
  dir.WriteFile("config/peerconnect/peerctl.conf", "user = vader\nsever = x\n");
  CommandResult broken = run({"lpf"}, {});
  EXPECT_EQ(broken.exit_code, kExitUsage);
  EXPECT_TRUE(absl::StrContains(broken.err, "peerctl.conf:2: unknown setting"))
      << broken.err;
}

// vader, in a shell of its own, publishing its "held.txt", which hans
// then fetches into in_ (the tests stop or kill vader first).
class HeldFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.WriteFile("held.txt", "held");
    in_ = dir_.MakeSubdir("in");
    vader_ =
        std::make_unique<Shell>(daemon_, "vader", "vaderpass", dir_.path());
    ASSERT_EQ(vader_->Run("pub held.txt"), "");
  }

  Daemon daemon_;
  TempDir dir_;
  std::string in_;
  std::unique_ptr<Shell> vader_;
};

TEST_F(HeldFileTest, AHolderThatIsGoneIsNotADaemonThatIsGone) {
  // Killed: its file server is gone at once, its session for 3 s more.
  vader_->process().Signal(SIGKILL);
  ASSERT_TRUE(vader_->process().Wait(absl::Seconds(10)).has_value());
  CommandResult get =
      RunToCompletion(PeerctlOptions(daemon_.address(), "hans", "hanspass",
                                     {"--json", "get", "held.txt"}, in_),
                      absl::Seconds(20));
  EXPECT_EQ(get.exit_code, kExitHolderUnreachable) << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "\"error\":\"holder-unreachable\""))
      << get.err;
}

// A download that fails in the download folder (here: its partial's name
// taken by a folder) says so, with exit 1, and does not blame the holder.
TEST_F(HeldFileTest, AFailureInTheDownloadFolderIsTheFolders) {
  ASSERT_EQ(::mkdir(absl::StrCat(in_, "/.held.txt.pcfs-partial").c_str(), 0755),
            0);
  CommandResult get = RunToCompletion(
      PeerctlOptions(daemon_.address(), "hans", "hanspass",
                     {"--download-dir", in_, "get", "held.txt"}, in_),
      absl::Seconds(20));
  EXPECT_EQ(get.exit_code, kExitFailure) << get.err;
  EXPECT_TRUE(absl::StrContains(
      get.err, absl::StrCat("peerctl: cannot download held.txt into ", in_,
                            ": open .held.txt.pcfs-partial: Is a directory")))
      << get.err;
  EXPECT_FALSE(absl::StrContains(get.err, "vader")) << get.err;
  // One whose errno reads as "not found" (nothing can be made in /proc)
  // is exit 1 as well, and "failure" in JSON.
  get = RunToCompletion(
      PeerctlOptions(daemon_.address(), "hans", "hanspass",
                     {"--json", "--download-dir", "/proc", "get", "held.txt"},
                     in_),
      absl::Seconds(20));
  EXPECT_EQ(get.exit_code, kExitFailure) << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "\"error\":\"failure\"")) << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "cannot download held.txt into /proc"))
      << get.err;
}

// A file-size limit (ulimit -f) is the folder's failure too: the get says
// so and logs out, where SIGXFSZ used to kill it with its session open.
TEST_F(HeldFileTest, AFileSizeLimitFailsTheGetAndKeepsNoPartial) {
  dir_.WriteFile("big.bin", std::string(3 << 20, 'b'));
  ASSERT_EQ(vader_->Run("pub big.bin"), "");
  Process::Options options =
      PeerctlOptions(daemon_.address(), "hans", "hanspass",
                     {"--download-dir", in_, "get", "big.bin"}, in_);
  options.argv.insert(options.argv.begin(),
                      {"/usr/bin/prlimit", "--fsize=1000000"});
  CommandResult get = RunToCompletion(options, absl::Seconds(20));
  EXPECT_EQ(get.exit_code, kExitFailure) << get.err;
  EXPECT_TRUE(absl::StrContains(
      get.err, absl::StrCat("peerctl: cannot download big.bin into ", in_,
                            ": fallocate: File too large")))
      << get.err;
  EXPECT_TRUE(std::filesystem::is_empty(in_));
  // Logged out: the next login is not refused as active.
  CommandResult lap = RunPeerctl(daemon_, "hans", "hanspass", {"lap"}, in_);
  EXPECT_EQ(lap.exit_code, kExitOk) << lap.err;
}

// Ctrl-C (or SIGTERM) of a one-shot get stops the download, logs out and
// then ends the process by that signal: a script sees 130 (or 143), and the
// next command logs in at once, where a session left behind would be
// refused as active for 3 s.
TEST_F(HeldFileTest, AnInterruptedGetLogsOutAndEndsByItsSignal) {
  // Its file server never answers the handshake: the get waits.
  vader_->process().Signal(SIGSTOP);
  for (const int signo : {SIGINT, SIGTERM}) {
    Process get(PeerctlOptions(daemon_.address(), "hans", "hanspass",
                               {"get", "held.txt"}, in_));
    // Once the daemon has its GET, the command is in its download.
    ASSERT_TRUE(
        daemon_.process()
            .ReadStderrUntil("Received GET from hans", absl::Seconds(10))
            .has_value())
        << daemon_.process().stderr_text();
    absl::SleepFor(absl::Milliseconds(100));
    get.Signal(signo);
    EXPECT_EQ(get.Wait(absl::Seconds(10)), 128 + signo) << get.stderr_text();
    EXPECT_TRUE(absl::StrContains(get.stderr_text(), "download cancelled"))
        << get.stderr_text();
    CommandResult lap = RunPeerctl(daemon_, "hans", "hanspass", {"lap"}, in_);
    EXPECT_EQ(lap.exit_code, kExitOk) << lap.err;
  }
  vader_->process().Signal(SIGCONT);
}

// A user name or password that no daemon could take is a usage error
// (exit 2), as for serve, not a login refused (3); and with --json every
// usage error is one JSON object.
TEST(CommandLineTest, AMalformedNameOrPasswordIsAUsageError) {
  Daemon daemon;
  TempDir dir;
  CommandResult spaced =
      RunPeerctl(daemon, "han s", "hanspass", {"lap"}, dir.path());
  EXPECT_EQ(spaced.exit_code, kExitUsage) << spaced.err;
  EXPECT_TRUE(absl::StrContains(spaced.err, "user name")) << spaced.err;
  CommandResult empty = RunPeerctl(daemon, "hans", "", {"lap"}, dir.path());
  EXPECT_EQ(empty.exit_code, kExitUsage) << empty.err;
  EXPECT_TRUE(absl::StrContains(empty.err, "password")) << empty.err;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--json", "--timeout", "soon", "lap"},
           {"--json", "lap", "extra"},
           {"--json", "--user", "hans", "serve", "extra"},
           {"--json", "--bogus", "lap"}}) {
    CommandResult r = RunToCompletion(
        PeerctlOptions(daemon.address(), "hans", "hanspass", args, dir.path()));
    EXPECT_EQ(r.exit_code, kExitUsage) << r.err;
    EXPECT_TRUE(absl::StartsWith(r.err, "{\"")) << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, "\"error\":\"usage\"")) << r.err;
  }
  // The shell writes for a person: --json there is refused, not ignored.
  Process::Options shell;
  shell.argv = {PCFS_PEERCTL_PATH, "--json", "--server", daemon.address()};
  shell.cwd = dir.path();
  shell.env["PEERCTL_SOCKET"] = kNoAgentSocket;
  CommandResult json_shell = RunToCompletion(shell);
  EXPECT_EQ(json_shell.exit_code, kExitUsage) << json_shell.err;
  EXPECT_TRUE(absl::StrContains(json_shell.err, "--json goes with a COMMAND"))
      << json_shell.err;
}

// --timeout running out during a download is the command's time running
// out (exit 5, as every --timeout), not a holder failing (exit 6): the
// holder here only answers slower than the time the command was given.
// The command still logs out.
TEST_F(HeldFileTest, ATimeoutDuringADownloadIsTheTimeout) {
  // Stopped: its session lives 3 s more, and its file server accepts a
  // connection (the kernel does) but never answers the TLS handshake.
  vader_->process().Signal(SIGSTOP);
  CommandResult get = RunToCompletion(
      PeerctlOptions(daemon_.address(), "hans", "hanspass",
                     {"--json", "--timeout", "1s", "get", "held.txt"}, in_),
      absl::Seconds(20));
  vader_->process().Signal(SIGCONT);
  EXPECT_EQ(get.exit_code, kExitUnreachable) << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "\"error\":\"daemon-unreachable\""))
      << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "--timeout")) << get.err;
  // It logged out all the same: the next command logs in at once, where a
  // session left behind would refuse it as active for 3 s.
  CommandResult lap = RunPeerctl(daemon_, "hans", "hanspass", {"lap"}, in_);
  EXPECT_EQ(lap.exit_code, kExitOk) << lap.err;
}

}  // namespace
}  // namespace pcfs::testing
