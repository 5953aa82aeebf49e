// The seed's session, end to end: a real daemon and three real peerctl
// shells on loopback, each in its own folder, and all in one. (A get that
// finds another file of the name: transfer_test.cc.)
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

TEST(SessionTest, SeedSessionWorksAsShown) {
  Daemon daemon;
  TempDir peers;
  const std::string hans_dir = peers.MakeSubdir("hans");
  const std::string vader_dir = peers.MakeSubdir("vader");
  const std::string yoda_dir = peers.MakeSubdir("yoda");
  WriteRandomFile(hans_dir + "/BitTrickle.mp4", 3 << 20, 7);

  Shell hans(daemon, "hans", "hanspass", hans_dir);
  ASSERT_TRUE(hans.logged_in());
  EXPECT_EQ(hans.Run("pub BitTrickle.mp4"), "");
  EXPECT_EQ(hans.Run("lpf"), "BitTrickle.mp4\n");

  Shell vader(daemon, "vader", "vaderpass", vader_dir);
  ASSERT_TRUE(vader.logged_in());
  EXPECT_EQ(vader.Run("sch BitTrickle"), "BitTrickle.mp4\n");
  EXPECT_EQ(vader.Run("get BitTrickle.mp4"),
            "Download successful: BitTrickle.mp4\n");
  EXPECT_EQ(ReadFileOrEmpty(vader_dir + "/BitTrickle.mp4"),
            ReadFileOrEmpty(hans_dir + "/BitTrickle.mp4"));

  Shell yoda(daemon, "yoda", "yodapass", yoda_dir);
  ASSERT_TRUE(yoda.logged_in());
  EXPECT_EQ(yoda.Run("lap"), "hans\nvader\n");
  CommandResult bye = yoda.Exit();
  EXPECT_EQ(bye.out, "");
  EXPECT_EQ(bye.exit_code, 0);
}

// The same session with every terminal in one folder: vader's get finds
// the published file already there, which is a finished download (nothing
// transferred, nothing touched).
TEST(SessionTest, SeedSessionWorksInOneFolder) {
  Daemon daemon;
  TempDir folder;
  WriteRandomFile(folder.path() + "/BitTrickle.mp4", 3 << 20, 7);
  const std::string before = ReadFileOrEmpty(folder.path() + "/BitTrickle.mp4");

  Shell hans(daemon, "hans", "hanspass", folder.path());
  ASSERT_TRUE(hans.logged_in());
  EXPECT_EQ(hans.Run("pub BitTrickle.mp4"), "");
  Shell vader(daemon, "vader", "vaderpass", folder.path());
  ASSERT_TRUE(vader.logged_in());
  EXPECT_EQ(vader.Run("sch BitTrickle"), "BitTrickle.mp4\n");
  EXPECT_EQ(vader.Run("get BitTrickle.mp4"),
            "Download successful: BitTrickle.mp4\n");
  EXPECT_EQ(ReadFileOrEmpty(folder.path() + "/BitTrickle.mp4"), before);
  // No partial file, no second copy.
  std::vector<std::string> files = ListFolder(folder.path());
  EXPECT_EQ(std::count(files.begin(), files.end(), "BitTrickle.mp4"), 1);
  for (const std::string& file : files) {
    EXPECT_FALSE(absl::StrContains(file, "pcfs-partial")) << file;
  }
}

TEST(SessionTest, EmptyListsAndFailuresPrintTheirMessages) {
  Daemon daemon;
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  EXPECT_EQ(hans.Run("lap"), "No active peers\n");
  EXPECT_EQ(hans.Run("lpf"), "No files published\n");
  EXPECT_EQ(hans.Run("sch anything"), "No files found\n");
  EXPECT_EQ(hans.Run("get nothing.bin"), "File not found\n");
  EXPECT_EQ(hans.Run("unp nothing.bin"),
            "File unpublication failed: you do not publish nothing.bin\n");
}

TEST(SessionTest, UnknownCommandOrMissingArgumentPrintsTheCommandList) {
  Daemon daemon;
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  const std::string list =
      "Available commands are: get, lap, lpf, pub, sch, unp, xit\n";
  EXPECT_EQ(hans.Run("fly"), list);
  EXPECT_EQ(hans.Run("pub"), list);
  EXPECT_EQ(hans.Run("get"), list);
}

TEST(SessionTest, PubRefusesWhatIsNotARegularFileOfTheShareFolder) {
  Daemon daemon;
  TempDir dir;
  dir.MakeSubdir("folder");
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  EXPECT_NE(hans.Run("pub missing.bin").find("File publication failed"),
            std::string::npos);
  EXPECT_NE(hans.Run("pub folder").find("File publication failed"),
            std::string::npos);
  EXPECT_EQ(hans.Run("lpf"), "No files published\n");
}

TEST(SessionTest, WrongPasswordThenTheRightOne) {
  Daemon daemon;
  TempDir dir;
  Process::Options options;
  options.argv = {PCFS_PEERCTL_PATH, "--server", daemon.address()};
  options.cwd = dir.path();
  Process shell(options);
  ASSERT_TRUE(shell.ReadStdoutUntil("Username: ", absl::Seconds(20)));
  shell.Write("hans\nwrongpass\n");
  std::optional<std::string> out =
      shell.ReadStdoutUntil("Username: ", absl::Seconds(20));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out,
            "Password: Authentication failed. Please try again.\n"
            "Username: ");
  shell.Write("hans\nhanspass\n");
  out = shell.ReadStdoutUntil("> ", absl::Seconds(20));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, "Password: > ");
  shell.Write("xit\n");
  EXPECT_EQ(shell.Wait(absl::Seconds(20)), 0);
  EXPECT_EQ(shell.ReadStdoutRest(), "");
}

TEST(SessionTest, SecondLoginOfAnActiveUserIsRefused) {
  Daemon daemon;
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  CommandResult second =
      RunPeerctl(daemon, "hans", "hanspass", {"lap"}, dir.path());
  EXPECT_EQ(second.exit_code, 3);
  EXPECT_NE(second.err.find("already active"), std::string::npos) << second.err;
  // After xit the user can log straight back in.
  hans.Exit();
  CommandResult third =
      RunPeerctl(daemon, "hans", "hanspass", {"lap"}, dir.path());
  EXPECT_EQ(third.exit_code, 0) << third.err;
}

TEST(SessionTest, EndOfInputActsAsXit) {
  Daemon daemon;
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  hans.process().CloseStdin();
  EXPECT_EQ(hans.process().Wait(absl::Seconds(20)), 0);
  EXPECT_EQ(hans.process().ReadStdoutRest(), "");
  // It logged out: hans can log in again at once.
  CommandResult again =
      RunPeerctl(daemon, "hans", "hanspass", {"lap"}, dir.path());
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST(SessionTest, KilledPeerLeavesLapWithinThreeAndAHalfSeconds) {
  Daemon daemon;
  TempDir dir;
  auto hans = std::make_unique<Shell>(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans->logged_in());
  Shell yoda(daemon, "yoda", "yodapass", dir.path());
  ASSERT_TRUE(yoda.logged_in());
  ASSERT_EQ(yoda.Run("lap"), "hans\n");

  hans->process().Signal(SIGKILL);
  const absl::Time killed = absl::Now();
  std::string lap;
  while (absl::Now() - killed < absl::Seconds(6)) {
    lap = yoda.Run("lap");
    if (lap == "No active peers\n") break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  const absl::Duration gone_after = absl::Now() - killed;
  EXPECT_EQ(lap, "No active peers\n");
  EXPECT_LE(gone_after, absl::Milliseconds(3500));
}

}  // namespace
}  // namespace pcfs::testing
