// A busy shell on a lossy network: through a relay that drops 10% of the
// datagrams each way (seeded), a shell that runs commands back to back for
// 90 s never loses its session (its heartbeats go out on their own path,
// never behind a command that is retransmitting) and every command
// completes. Labelled "slow" (PCFS_SLOW_TESTS): it takes 90 s by design.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

TEST(LossTest, BusyShellAtTenPercentLossNeverExpires) {
  Daemon daemon;
  UdpRelay relay(daemon.port(), DropFraction(0.10, 20261202));
  TempDir hans_dir;
  hans_dir.WriteFile("lossy.txt", "datagrams go missing\n");
  TempDir vader_dir;
  vader_dir.WriteFile("held.txt", "vader's file\n");

  // vader, straight to the daemon, publishes a name hans can search for.
  Shell vader(daemon, "vader", "vaderpass", vader_dir.path());
  ASSERT_TRUE(vader.logged_in());
  ASSERT_EQ(vader.Run("pub held.txt"), "");

  Shell hans(relay.address(), "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in()) << hans.process().stderr_text();

  // Each command and what it must print; one bad answer is a failure.
  const std::pair<std::string, std::string> kCommands[] = {
      {"pub lossy.txt", ""},      {"lpf", "lossy.txt\n"},
      {"sch held", "held.txt\n"}, {"lap", "vader\n"},
      {"unp lossy.txt", ""},      {"lpf", "No files published\n"},
  };
  const absl::Time end = absl::Now() + absl::Seconds(90);
  int commands = 0;
  int failures = 0;
  int hans_missing = 0;
  while (absl::Now() < end && commands < 5000 && failures < 5) {
    const auto& [command, expected] = kCommands[commands % 6];
    const std::string output = hans.Run(command, absl::Seconds(20));
    ++commands;
    if (output != expected) {
      ++failures;
      ADD_FAILURE() << "command " << commands << " '" << command
                    << "' printed '" << output << "'";
    }
    // vader (no loss) sees hans online at every moment it looks.
    if (commands % 6 == 0 && vader.Run("lap") != "hans\n") ++hans_missing;
  }
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(hans_missing, 0);
  EXPECT_GE(commands, 60) << "too few commands ran to mean anything";
  // An expiry would have made hans log in again, which it says on stderr.
  EXPECT_FALSE(
      absl::StrContains(hans.process().stderr_text(), "no longer knows"))
      << hans.process().stderr_text();
  const CommandResult exit = hans.Exit();
  EXPECT_EQ(exit.exit_code, 0);
  std::vector<UdpRelay::Datagram> seen = relay.Stop();
  // The relay did drop about a tenth of what passed through it.
  EXPECT_GT(relay.dropped(), seen.size() / 20) << seen.size();
  EXPECT_LT(relay.dropped(), seen.size() / 5) << seen.size();
  RecordProperty("commands", commands);
  RecordProperty("datagrams", static_cast<int>(seen.size()));
  RecordProperty("dropped", static_cast<int>(relay.dropped()));
}

}  // namespace
}  // namespace pcfs::testing
