#include "daemon/liveness.h"

#include "gtest/gtest.h"

namespace pcfs {
namespace {

TEST(ReactorLivenessTest, AllReactorsMustBeatBeforeAPing) {
  ReactorLiveness liveness(3);
  EXPECT_FALSE(liveness.TakeAllAlive());
  liveness.Beat(0);
  liveness.Beat(2);
  EXPECT_FALSE(liveness.TakeAllAlive());
  EXPECT_EQ(liveness.FirstSilent(), 1u);
  liveness.Beat(1);
  EXPECT_TRUE(liveness.TakeAllAlive());
}

TEST(ReactorLivenessTest, EachPingNeedsFreshBeatsFromEveryReactor) {
  ReactorLiveness liveness(2);
  liveness.Beat(0);
  liveness.Beat(1);
  ASSERT_TRUE(liveness.TakeAllAlive());
  // Reactor 1 is stuck from here on: reactor 0 alone never earns a ping.
  for (int round = 0; round < 5; ++round) {
    liveness.Beat(0);
    EXPECT_FALSE(liveness.TakeAllAlive()) << round;
    EXPECT_EQ(liveness.FirstSilent(), 1u);
  }
  liveness.Beat(1);
  EXPECT_TRUE(liveness.TakeAllAlive());
}

TEST(ReactorLivenessTest, AFailedCheckKeepsTheBeatsSeenSoFar) {
  ReactorLiveness liveness(2);
  liveness.Beat(0);
  EXPECT_FALSE(liveness.TakeAllAlive());
  liveness.Beat(1);  // reactor 0's beat of this round still counts
  EXPECT_TRUE(liveness.TakeAllAlive());
  EXPECT_EQ(liveness.FirstSilent(), 0u);
}

TEST(ReactorLivenessTest, ASingleReactorPingsAfterEachBeat) {
  ReactorLiveness liveness(1);
  EXPECT_FALSE(liveness.TakeAllAlive());
  liveness.Beat(0);
  EXPECT_TRUE(liveness.TakeAllAlive());
  EXPECT_FALSE(liveness.TakeAllAlive());
}

}  // namespace
}  // namespace pcfs
