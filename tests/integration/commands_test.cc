// peerctl's script subcommands (peerctl/commands.h): results on stdout one
// per line and nothing else, errors on stderr, and the exit codes of
// peerctl/exit_codes.h.
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "peerctl/exit_codes.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

// `peerctl ARGS...` with nothing else: no --server, no password.
Process::Options Peerctl(const std::vector<std::string>& args,
                         const std::string& cwd) {
  // The test's own environment must not hand peerctl a password.
  ::unsetenv("PEERCTL_PASSWORD");
  Process::Options options;
  options.argv = {PCFS_PEERCTL_PATH};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.cwd = cwd;
  return options;
}

// Expects a failure with `code`: a message on stderr, nothing on stdout.
void ExpectFailure(const CommandResult& result, int code) {
  EXPECT_EQ(result.exit_code, code) << result.err;
  EXPECT_EQ(result.out, "");
  EXPECT_TRUE(absl::StartsWith(result.err, "peerctl: ")) << result.err;
}

TEST(CommandsTest, ListsPrintOneNamePerLineAndNothingElse) {
  Daemon daemon;
  TempDir dir;
  dir.WriteFile("a.txt", "a");
  dir.WriteFile("b.txt", "b");
  Shell vader(daemon, "vader", "vaderpass", dir.path());
  Shell yoda(daemon, "yoda", "yodapass", dir.path());
  ASSERT_TRUE(vader.logged_in() && yoda.logged_in());

  CommandResult lap =
      RunPeerctl(daemon, "hans", "hanspass", {"lap"}, dir.path());
  EXPECT_EQ(lap.exit_code, 0) << lap.err;
  EXPECT_EQ(lap.out, "vader\nyoda\n");
  EXPECT_EQ(lap.err, "");

  for (const char* name : {"b.txt", "a.txt"}) {
    CommandResult pub =
        RunPeerctl(daemon, "hans", "hanspass", {"pub", name}, dir.path());
    EXPECT_EQ(pub.exit_code, 0) << pub.err;
    EXPECT_EQ(pub.out + pub.err, "");
  }
  CommandResult lpf =
      RunPeerctl(daemon, "hans", "hanspass", {"lpf"}, dir.path());
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
  EXPECT_EQ(lpf.out, "a.txt\nb.txt\n");
  EXPECT_EQ(lpf.err, "");
}

TEST(CommandsTest, SchPrintsTheHitsOrNothing) {
  Daemon daemon;
  TempDir dir;
  dir.WriteFile("song.mp3", "la");
  dir.WriteFile("tune.mp3", "la");
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub song.mp3"), "");
  ASSERT_EQ(hans.Run("pub tune.mp3"), "");

  CommandResult hits =
      RunPeerctl(daemon, "vader", "vaderpass", {"sch", ".mp3"}, dir.path());
  EXPECT_EQ(hits.exit_code, 0) << hits.err;
  EXPECT_EQ(hits.out, "song.mp3\ntune.mp3\n");
  EXPECT_EQ(hits.err, "");

  CommandResult none =
      RunPeerctl(daemon, "vader", "vaderpass", {"sch", "nothing"}, dir.path());
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(none.err, "");
}

// 150 names of 60 bytes take several pages, which the daemon fills in its
// index order (by name hash): peerctl prints them sorted, once each.
TEST(CommandsTest, SchPrintsAListingOfManyPagesSortedOnceEach) {
  Daemon daemon;
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  std::vector<std::string> names;
  for (int i = 0; i < 150; ++i) {
    names.push_back(
        absl::StrCat("holiday-", std::string(40, 'x'), "-", i, ".dat"));
    dir.WriteFile(names.back(), "x");
    ASSERT_EQ(hans.Run("pub " + names.back()), "");
  }
  std::sort(names.begin(), names.end());
  std::string expected;
  for (const std::string& name : names) absl::StrAppend(&expected, name, "\n");

  CommandResult hits =
      RunPeerctl(daemon, "vader", "vaderpass", {"sch", "holiday-"}, dir.path());
  EXPECT_EQ(hits.exit_code, 0) << hits.err;
  EXPECT_EQ(hits.out, expected);
  EXPECT_EQ(hits.err, "");
}

TEST(CommandsTest, GetLandsTheFileAndPrintsItsPath) {
  Daemon daemon;
  TempDir hans_dir;
  TempDir vader_dir;
  WriteRandomFile(hans_dir.path() + "/data.bin", 1 << 20, 21);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub data.bin"), "");

  CommandResult get = RunPeerctl(daemon, "vader", "vaderpass",
                                 {"get", "data.bin"}, vader_dir.path());
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "./data.bin\n");
  EXPECT_EQ(get.err, "");
  EXPECT_EQ(ReadFileOrEmpty(vader_dir.path() + "/data.bin"),
            ReadFileOrEmpty(hans_dir.path() + "/data.bin"));
}

TEST(CommandsTest, BadCommandLinesExitWithUsage) {
  Daemon daemon;
  TempDir dir;
  const std::string server = daemon.address();
  auto run = [&](const std::vector<std::string>& args) {
    Process::Options options = Peerctl(args, dir.path());
    options.env["PEERCTL_PASSWORD"] = "hanspass";
    return RunToCompletion(options, absl::Seconds(20));
  };
  ExpectFailure(run({"--server", server, "--user", "hans", "fly"}), kExitUsage);
  ExpectFailure(run({"--server", server, "--user", "hans", "pub"}), kExitUsage);
  ExpectFailure(run({"--server", server, "--user", "hans", "lap", "extra"}),
                kExitUsage);
  ExpectFailure(run({"--server", server, "lap"}), kExitUsage);
  // An unknown flag, in either spelling, is a usage error too.
  ExpectFailure(run({"--server", server, "--user", "hans", "--bogus", "lap"}),
                kExitUsage);
  ExpectFailure(
      run({"--server", server, "--user", "hans", "--password=x", "lap"}),
      kExitUsage);
  // So is a value that is not of its flag's kind (absl's parser alone
  // exited 1 on it), from the command line or the environment.
  ExpectFailure(
      run({"--server", server, "--user", "hans", "--json=maybe", "lap"}),
      kExitUsage);
  ExpectFailure(run({"--fromenv=server", "--user", "hans", "lap"}), kExitUsage);
  // No password source at all.
  ExpectFailure(
      RunToCompletion(
          Peerctl({"--server", server, "--user", "hans", "lap"}, dir.path()),
          absl::Seconds(20)),
      kExitUsage);
}

TEST(CommandsTest, RefusedLoginsExitWithThree) {
  Daemon daemon;
  TempDir dir;
  ExpectFailure(RunPeerctl(daemon, "hans", "wrongpass", {"lap"}, dir.path()),
                kExitLoginRefused);
  ExpectFailure(RunPeerctl(daemon, "nobody", "hanspass", {"lap"}, dir.path()),
                kExitLoginRefused);
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  ExpectFailure(RunPeerctl(daemon, "hans", "hanspass", {"lap"}, dir.path()),
                kExitLoginRefused);
}

TEST(CommandsTest, MissingThingsExitWithFour) {
  Daemon daemon;
  TempDir dir;
  ExpectFailure(RunPeerctl(daemon, "hans", "hanspass", {"get", "nothing.bin"},
                           dir.path()),
                kExitNotFound);
  ExpectFailure(RunPeerctl(daemon, "hans", "hanspass", {"unp", "nothing.bin"},
                           dir.path()),
                kExitNotFound);
  ExpectFailure(RunPeerctl(daemon, "hans", "hanspass", {"pub", "missing.bin"},
                           dir.path()),
                kExitNotFound);
  EXPECT_EQ(ListFolder(dir.path()), std::vector<std::string>{});
}

TEST(CommandsTest, ClosedPortFailsFastWithFive) {
  TempDir dir;
  uint16_t closed_port = 0;
  {
    UdpSocket probe;  // a port that was free a moment ago, and is again
    closed_port = probe.port();
  }
  const absl::Time start = absl::Now();
  CommandResult result =
      RunToCompletion(PeerctlOptions(absl::StrCat("127.0.0.1:", closed_port),
                                     "hans", "hanspass", {"lap"}, dir.path()),
                      absl::Seconds(20));
  const absl::Duration took = absl::Now() - start;
  ExpectFailure(result, kExitUnreachable);
  // ICMP port unreachable ends it at the first try; retransmitting until
  // the client gives up would take more than 3 s.
  EXPECT_LT(took, absl::Seconds(3));
}

TEST(CommandsTest, SilentDaemonExitsWithFiveAfterRetransmissions) {
  TempDir dir;
  UdpSocket silent;  // bound, never read: datagrams vanish, no ICMP
  CommandResult result =
      RunToCompletion(PeerctlOptions(absl::StrCat("127.0.0.1:", silent.port()),
                                     "hans", "hanspass", {"lap"}, dir.path()),
                      absl::Seconds(20));
  ExpectFailure(result, kExitUnreachable);
  EXPECT_TRUE(absl::StrContains(result.err, "no reply")) << result.err;
}

TEST(CommandsTest, PasswordFileGivesItsFirstLine) {
  Daemon daemon;
  TempDir dir;
  dir.WriteFile("right", "hanspass\nnot this line\n");
  dir.WriteFile("wrong", "vaderpass\nhanspass\n");
  auto run = [&](const std::string& file) {
    return RunToCompletion(
        Peerctl({"--server", daemon.address(), "--user", "hans",
                 "--password-file", dir.path() + "/" + file, "lap"},
                dir.path()),
        absl::Seconds(20));
  };
  CommandResult right = run("right");
  EXPECT_EQ(right.exit_code, 0) << right.err;
  EXPECT_EQ(right.out + right.err, "");
  ExpectFailure(run("wrong"), kExitLoginRefused);
}

}  // namespace
}  // namespace pcfs::testing
