// One-shot commands on a very lossy network: through a relay that drops 30%
// of the datagrams each way (seeded), at least 29 of 30 one-shot commands
// with --timeout 10s succeed within those 10 s (each retransmits, every
// second at most, until its deadline, instead of giving up after five
// tries). Labelled "slow" (PCFS_SLOW_TESTS).
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

constexpr int kUsers = 5;
constexpr int kCommands = 30;
// The daemon's default session timeout (3 s of silence).
constexpr absl::Duration kSessionTimeout = absl::Seconds(3);
constexpr absl::Duration kTimeout = absl::Seconds(10);
// What starting a process may add to the command's own bound.
constexpr absl::Duration kSlack = absl::Milliseconds(500);

TEST(LossOneShotTest, AtThirtyPercentLossOneShotsFinishWithinTheirTimeout) {
  std::string credentials;
  for (int u = 0; u < kUsers; ++u) {
    absl::StrAppend(&credentials, "user", u, " pass", u, "\n");
  }
  Daemon daemon(credentials);
  UdpRelay relay(daemon.port(), DropFraction(0.30, 7));
  TempDir share;
  share.WriteFile("shared.txt", "some bytes\n");

  int succeeded = 0;
  int run = 0;
  std::string failures;
  // Rounds of one command per user at once (a user holds one session, so
  // one user's commands run one after the other).
  while (run < kCommands) {
    struct Running {
      std::unique_ptr<Process> process;
      absl::Time start;
      std::string what;
    };
    std::vector<Running> round;
    for (int u = 0; u < kUsers && run < kCommands; ++u, ++run) {
      const std::vector<std::string> args =
          run % 2 == 0 ? std::vector<std::string>{"--timeout", "10s", "pub",
                                                  "shared.txt"}
                       : std::vector<std::string>{"--timeout", "10s", "lpf"};
      Process::Options options =
          PeerctlOptions(relay.address(), absl::StrCat("user", u),
                         absl::StrCat("pass", u), args, share.path());
      round.push_back({std::make_unique<Process>(options), absl::Now(),
                       absl::StrCat("#", run, " user", u, " ", args[2])});
      round.back().process->CloseStdin();
    }
    bool round_failed = false;
    for (Running& r : round) {
      const std::optional<int> code =
          r.process->Wait(kTimeout + kSlack + absl::Seconds(5));
      const absl::Duration took = absl::Now() - r.start;
      if (code == 0 && took <= kTimeout + kSlack) {
        ++succeeded;
      } else {
        round_failed = true;
        absl::StrAppend(&failures, r.what, ": exit ", code.value_or(-1),
                        " after ", absl::FormatDuration(took), ": ",
                        r.process->stderr_text(), "\n");
      }
    }
    // A command that ran out of time may leave its session live (its
    // LOGOUT lost), and a user holds one session: the same user's next
    // command would be refused as "already active" until the daemon
    // expires it (3 s). Let it expire, so that one unlucky command is
    // counted once, not again in the next round.
    if (round_failed) absl::SleepFor(kSessionTimeout + absl::Milliseconds(500));
  }
  EXPECT_GE(succeeded, kCommands - 1) << failures;
  relay.Stop();
  EXPECT_GT(relay.dropped(), 0u);
  RecordProperty("succeeded", succeeded);
}

}  // namespace
}  // namespace pcfs::testing
