// Tests peerctl/failover.h: the server list as users write it, and the
// plan that picks a daemon and paces the logins when one stops answering.
#include "peerctl/failover.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "peerctl/config.h"

namespace pcfs {
namespace {

std::vector<std::string> Names(absl::string_view text) {
  absl::StatusOr<std::vector<DaemonAddress>> daemons = ParseServerList(text);
  EXPECT_TRUE(daemons.ok()) << daemons.status();
  std::vector<std::string> names;
  if (!daemons.ok()) return names;
  for (const DaemonAddress& daemon : *daemons) names.push_back(daemon.Name());
  return names;
}

// The message of the error ParseServerList gives `text` (empty if none).
std::string ErrorOf(absl::string_view text) {
  absl::StatusOr<std::vector<DaemonAddress>> daemons = ParseServerList(text);
  EXPECT_FALSE(daemons.ok()) << text;
  if (daemons.ok()) return "";
  EXPECT_TRUE(absl::IsInvalidArgument(daemons.status()));
  return std::string(daemons.status().message());
}

TEST(ServerListTest, OneAddressIsParsedAsBefore) {
  EXPECT_EQ(Names("example.org:6000"),
            std::vector<std::string>{"example.org:6000"});
  EXPECT_EQ(Names("example.org"),
            std::vector<std::string>{"example.org:50000"});
  EXPECT_EQ(Names("::1"), std::vector<std::string>{"[::1]:50000"});
  EXPECT_EQ(Names("[::1]:7"), std::vector<std::string>{"[::1]:7"});
  EXPECT_EQ(Names("6000"), std::vector<std::string>{"localhost:6000"});
  // The single form's own messages, unchanged.
  EXPECT_EQ(ErrorOf(""), "the server is empty");
  EXPECT_EQ(ErrorOf("host:99999"),
            std::string(ParseServerAddress("host:99999").status().message()));
}

TEST(ServerListTest, SeveralAddressesInTheirOrder) {
  EXPECT_EQ(Names("b.example:1,a.example:2, [::1]:3 ,c.example"),
            (std::vector<std::string>{"b.example:1", "a.example:2", "[::1]:3",
                                      "c.example:50000"}));
}

TEST(ServerListTest, AnEmptyEntryIsNamed) {
  const std::string middle = ErrorOf("a:1,,b:2");
  EXPECT_TRUE(absl::StrContains(middle, "entry 2 is empty")) << middle;
  const std::string trailing = ErrorOf("a:1,b:2,");
  EXPECT_TRUE(absl::StrContains(trailing, "entry 3 is empty")) << trailing;
  const std::string blank = ErrorOf(" ,a:1");
  EXPECT_TRUE(absl::StrContains(blank, "entry 1 is empty")) << blank;
}

TEST(ServerListTest, ABadPortIsNamed) {
  const std::string message = ErrorOf("a:1,b:99999");
  EXPECT_TRUE(absl::StrContains(message, "entry 2 'b:99999'")) << message;
  const std::string letters = ErrorOf("a:x,b:2");
  EXPECT_TRUE(absl::StrContains(letters, "entry 1 'a:x'")) << letters;
}

TEST(ServerListTest, ADuplicateIsNamed) {
  const std::string same = ErrorOf("a:1,b:2,a:1");
  EXPECT_TRUE(absl::StrContains(same, "entry 3 'a:1' repeats a:1")) << same;
  // The default port and the host's case do not make it another daemon.
  const std::string implied = ErrorOf("A,a:50000");
  EXPECT_TRUE(absl::StrContains(implied, "repeats a:50000")) << implied;
  // The same host on another port is another daemon.
  EXPECT_EQ(Names("a:1,a:2").size(), 2u);
}

TEST(FailoverPlanTest, StartsOnTheFirstAndMovesRoundTheList) {
  FailoverPlan plan(3);
  EXPECT_TRUE(plan.several());
  EXPECT_EQ(plan.current(), 0u);
  EXPECT_EQ(plan.StoppedAnswering(), 1u);
  EXPECT_EQ(plan.StoppedAnswering(), 2u);
  EXPECT_EQ(plan.StoppedAnswering(), 0u);
}

TEST(FailoverPlanTest, UnansweredLoginsTryEveryDaemonThenPause) {
  using Failure = FailoverPlan::LoginFailure;
  FailoverPlan plan(3);
  plan.StoppedAnswering();  // 0 died: on 1
  // 1 and 2 are silent too: 1 moves on at once, 2 has closed the round.
  EXPECT_EQ(plan.FailedLogin(Failure::kSilent, 1.0), absl::ZeroDuration());
  EXPECT_EQ(plan.current(), 2u);
  EXPECT_EQ(plan.FailedLogin(Failure::kSilent, 1.0), absl::Seconds(1));
  EXPECT_EQ(plan.current(), 0u);
  // The next round: two at once, then a longer pause.
  EXPECT_EQ(plan.FailedLogin(Failure::kSilent, 1.0), absl::ZeroDuration());
  EXPECT_EQ(plan.FailedLogin(Failure::kSilent, 1.0), absl::ZeroDuration());
  EXPECT_EQ(plan.FailedLogin(Failure::kSilent, 1.0), absl::Seconds(2));
  EXPECT_EQ(plan.current(), 0u);
}

TEST(FailoverPlanTest, ARefusalStaysAndBacksOffToFiveSeconds) {
  using Failure = FailoverPlan::LoginFailure;
  FailoverPlan plan(2);
  plan.StoppedAnswering();  // on 1, which refuses: "already logged in"
  const absl::Duration expected[] = {absl::Seconds(1), absl::Seconds(2),
                                     absl::Seconds(4), absl::Seconds(5),
                                     absl::Seconds(5)};
  for (absl::Duration pause : expected) {
    EXPECT_EQ(plan.FailedLogin(Failure::kRefused, 1.0), pause);
    EXPECT_EQ(plan.current(), 1u);  // never moves on a refusal
  }
  // Jitter scales the pause, within its bounds.
  EXPECT_EQ(plan.FailedLogin(Failure::kRefused, 0.75), absl::Seconds(3.75));
  EXPECT_EQ(plan.FailedLogin(Failure::kRefused, 9.0), absl::Seconds(6.25));
  // A login that succeeds starts the backoff again.
  plan.LoggedIn();
  EXPECT_EQ(plan.backoff_failures(), 0);
  EXPECT_EQ(plan.FailedLogin(Failure::kRefused, 1.0), absl::Seconds(1));
}

TEST(FailoverPlanTest, ARefusalAfterSilenceStartsANewRound) {
  using Failure = FailoverPlan::LoginFailure;
  FailoverPlan plan(3);
  plan.StoppedAnswering();  // on 1
  EXPECT_EQ(plan.FailedLogin(Failure::kRefused, 1.0), absl::Seconds(1));
  // 1 answered: then it goes silent; 2 is tried at once.
  EXPECT_EQ(plan.FailedLogin(Failure::kSilent, 1.0), absl::ZeroDuration());
  EXPECT_EQ(plan.current(), 2u);
}

TEST(FailoverPlanTest, OneDaemonPausesAfterEveryFailureAsBefore) {
  using Failure = FailoverPlan::LoginFailure;
  FailoverPlan plan(1);
  EXPECT_FALSE(plan.several());
  EXPECT_EQ(plan.StoppedAnswering(), 0u);
  EXPECT_EQ(plan.FailedLogin(Failure::kSilent, 1.0), absl::Seconds(1));
  EXPECT_EQ(plan.FailedLogin(Failure::kRefused, 1.0), absl::Seconds(2));
  EXPECT_EQ(plan.FailedLogin(Failure::kSilent, 1.0), absl::Seconds(4));
  EXPECT_EQ(plan.current(), 0u);
}

}  // namespace
}  // namespace pcfs
