// --timeout for one-shot commands: a silent daemon ends the command at its
// bound with exit 5 ("cannot reach the daemon"), not after the whole
// retransmission schedule; a bad duration is a usage error.
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

// A silent daemon (the relay drops everything): the command gives up at
// its --timeout with "cannot reach the daemon" (exit 5), not after its
// full retransmission schedule.
TEST(TimeoutTest, SilentDaemonEndsAtTheTimeout) {
  Daemon daemon;
  UdpRelay relay(daemon.port(), DropFraction(1.0, 1));
  TempDir dir;
  const absl::Time start = absl::Now();
  const CommandResult result = RunToCompletion(
      PeerctlOptions(relay.address(), "hans", "hanspass",
                     {"--timeout", "1500ms", "lpf"}, dir.path()),
      absl::Seconds(20));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(result.exit_code, 5) << result.err;
  EXPECT_NE(result.err.find("cannot reach the daemon"), std::string::npos)
      << result.err;
  EXPECT_GE(took, absl::Milliseconds(1400));
  EXPECT_LT(took, absl::Milliseconds(2500));
}

TEST(TimeoutTest, ABadDurationIsAUsageError) {
  Daemon daemon;
  TempDir dir;
  const CommandResult result =
      RunToCompletion(PeerctlOptions(daemon.address(), "hans", "hanspass",
                                     {"--timeout", "soon", "lpf"}, dir.path()),
                      absl::Seconds(20));
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("--timeout"), std::string::npos) << result.err;
}

TEST(TimeoutTest, AnAnsweringDaemonIsUnaffected) {
  Daemon daemon;
  TempDir dir;
  dir.WriteFile("a.txt", "a\n");
  const CommandResult result = RunToCompletion(
      PeerctlOptions(daemon.address(), "hans", "hanspass",
                     {"--timeout", "5s", "pub", "a.txt"}, dir.path()),
      absl::Seconds(20));
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

}  // namespace
}  // namespace pcfs::testing
