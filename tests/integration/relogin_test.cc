// The shell never stays logged out while the daemon answers: after a daemon
// restart whose re-login is refused (the password changed meanwhile), the
// shell says so on stderr, keeps trying, and is logged in again soon after
// the cause is gone (the password changed back, the daemon told by SIGHUP).
#include <signal.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

void WriteCredentials(const Daemon& daemon, const std::string& text) {
  std::ofstream(daemon.folder() + "/credentials.txt", std::ios::trunc) << text;
}

TEST(ReloginTest, RefusedReloginIsRetriedUntilItWorks) {
  Daemon daemon;
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());

  ASSERT_EQ(daemon.Stop(), 0);
  WriteCredentials(daemon, "hans changed\nvader vaderpass\n");
  daemon.Restart();
  // The heartbeat finds the session gone, and the login is refused.
  ASSERT_TRUE(hans.process().ReadStderrUntil("logging in again failed",
                                             absl::Seconds(10)))
      << hans.process().stderr_text();
  // A command meanwhile tries at once, and says why it cannot run.
  EXPECT_TRUE(absl::StrContains(hans.Run("lpf"), "not logged in"));

  WriteCredentials(daemon, "hans hanspass\nvader vaderpass\n");
  daemon.process().Signal(SIGHUP);
  const absl::Time fixed = absl::Now();
  ASSERT_TRUE(
      hans.process().ReadStderrUntil("logged in again", absl::Seconds(10)))
      << hans.process().stderr_text();
  EXPECT_LT(absl::Now() - fixed, absl::Seconds(8));
  EXPECT_EQ(hans.Run("lpf"), "No files published\n");
  const CommandResult exit = hans.Exit();
  EXPECT_EQ(exit.exit_code, 0);
  // One line per change, not one per attempt.
  const std::string& err = exit.err;
  size_t refusals = 0;
  for (size_t at = err.find("logging in again failed"); at != std::string::npos;
       at = err.find("logging in again failed", at + 1)) {
    ++refusals;
  }
  EXPECT_LE(refusals, 2u) << err;
}

}  // namespace
}  // namespace pcfs::testing
