#include "daemon/liveness.h"

#include "absl/time/time.h"
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

const absl::Time kStart = absl::UnixEpoch() + absl::Hours(1);

TEST(DrainClockTest, IsTheEarliestDrainOfAllTheReactors) {
  DrainClock drains(3);
  // Nobody has drained yet: nothing is.
  EXPECT_EQ(drains.Drained(0, kStart), absl::InfinitePast());
  EXPECT_EQ(drains.DrainedUntil(0, absl::InfinitePast(), absl::Seconds(3)),
            absl::InfinitePast());
  drains.Drained(1, kStart + absl::Milliseconds(30));
  drains.Drained(2, kStart + absl::Milliseconds(60));
  EXPECT_EQ(drains.Drained(0, kStart + absl::Milliseconds(100)), kStart);
  EXPECT_EQ(drains.DrainedUntil(0, kStart, absl::Seconds(3)),
            kStart + absl::Milliseconds(30));
}

// A stall of the whole process: every reactor's last drain is old, and
// the first to run again must wait for the others, however long it was.
TEST(DrainClockTest, AfterAWholeStallTheFirstReactorWaitsForTheOthers) {
  DrainClock drains(2);
  drains.Drained(0, kStart);
  drains.Drained(1, kStart + absl::Milliseconds(50));
  const absl::Time resumed = kStart + absl::Seconds(30);
  const absl::Time previous = drains.Drained(0, resumed);
  EXPECT_EQ(previous, kStart);
  EXPECT_EQ(drains.DrainedUntil(0, previous, absl::Seconds(3)),
            kStart + absl::Milliseconds(50));
  drains.Drained(1, resumed + absl::Milliseconds(5));
  EXPECT_EQ(drains.DrainedUntil(0, previous, absl::Seconds(3)), resumed);
}

// After a whole stall, the first reactor to run may tick again and again
// before another gets the CPU (a loaded machine): the other is not stuck
// until the first has turned for `stuck_after` since it resumed.
TEST(DrainClockTest, AfterAWholeStallTheOthersGetTimeToDrain) {
  DrainClock drains(2);
  drains.Drained(0, kStart);
  drains.Drained(1, kStart + absl::Milliseconds(50));
  const absl::Time resumed = kStart + absl::Seconds(30);
  absl::Time now = resumed;
  absl::Time previous = drains.Drained(0, now);
  // Up to and including the tick whose previous drain is 3 s after the
  // resume.
  for (int tick = 1; tick <= 31; ++tick) {
    now += absl::Milliseconds(100);
    previous = drains.Drained(0, now);
    EXPECT_EQ(drains.DrainedUntil(0, previous, absl::Seconds(3)),
              kStart + absl::Milliseconds(50))
        << tick;
  }
  now += absl::Milliseconds(100);
  previous = drains.Drained(0, now);
  EXPECT_EQ(drains.DrainedUntil(0, previous, absl::Seconds(3)), now);
}

// One reactor stuck while the others turn: after `stuck_after` of their
// drains it is left out, so expiries are held no longer for it.
TEST(DrainClockTest, AReactorStuckWhileTheOthersTurnIsLeftOut) {
  DrainClock drains(2);
  drains.Drained(1, kStart);
  absl::Time now = kStart;
  absl::Time previous = absl::InfinitePast();
  // Up to and including the tick whose previous drain is 3 s after it.
  for (int tick = 1; tick <= 31; ++tick) {
    now += absl::Milliseconds(100);
    previous = drains.Drained(0, now);
    EXPECT_EQ(drains.DrainedUntil(0, previous, absl::Seconds(3)), kStart)
        << tick;
  }
  now += absl::Milliseconds(100);
  previous = drains.Drained(0, now);
  EXPECT_EQ(drains.DrainedUntil(0, previous, absl::Seconds(3)), now);
}

}  // namespace
}  // namespace pcfs
