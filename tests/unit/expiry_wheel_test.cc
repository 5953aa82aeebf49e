#include "core/index/expiry_wheel.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "absl/base/config.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Counts heap allocations, to show that the wheel's steady state allocates
// nothing. (GCC inlines these replacements into the tests' own news and
// deletes and then mistakes malloc/free for a mismatched pair.)
// Not in ThreadSanitizer builds: clang links TSan's own operator new and
// delete into every binary, so a replacement would be defined twice. The
// counting tests skip there (the TSan stage runs only the threaded tests).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#ifndef ABSL_HAVE_THREAD_SANITIZER
#define PCFS_COUNTS_ALLOCATIONS
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) std::abort();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#endif  // ABSL_HAVE_THREAD_SANITIZER

namespace pcfs {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kStart = absl::UnixEpoch() + absl::Hours(1000);
constexpr absl::Duration kSlot = absl::Milliseconds(100);
constexpr size_t kSlots = 8;  // a span of 800 ms

absl::Time At(absl::Duration since_start) { return kStart + since_start; }
absl::Duration Ms(int64_t ms) { return absl::Milliseconds(ms); }

// Advances `wheel` to `now` and returns the keys fired, in firing order.
std::vector<uint64_t> AdvanceTo(ExpiryWheel& wheel, absl::Time now) {
  std::vector<uint64_t> fired;
  wheel.Advance(now, [&](uint64_t key) { fired.push_back(key); });
  return fired;
}

TEST(ExpiryWheelTest, StartsEmpty) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.slot_width(), kSlot);
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(5000))), IsEmpty());
}

TEST(ExpiryWheelTest, FiresExactlyAtAnAlignedDeadline) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(Ms(300)));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(300) - absl::Nanoseconds(1))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(300))), ElementsAre(7));
}

TEST(ExpiryWheelTest, UnalignedDeadlineFiresAtTheNextSlotBoundary) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(Ms(250)));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(250))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(299))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(300))), ElementsAre(7));
}

TEST(ExpiryWheelTest, FiresOnceOnly) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(Ms(100)));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(100))), ElementsAre(7));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(5000))), IsEmpty());
}

// For every deadline on a 1 ms grid and an irregular sequence of Advance()
// calls, the key fires at the first call at or past its deadline rounded up
// to a slot boundary, and so never before its deadline.
TEST(ExpiryWheelTest, FiresAtTheFirstAdvanceAtOrPastTheRoundedDeadline) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  constexpr int kKeys = 700;  // deadlines 1..700 ms, all within the span
  for (int ms = 1; ms <= kKeys; ++ms) wheel.Schedule(ms, At(Ms(ms)));
  std::vector<absl::Time> fired_at(kKeys + 1, absl::InfinitePast());
  std::vector<absl::Time> calls;
  for (int ms = 0; ms <= 1000; ms += 7 + ms % 13) {
    calls.push_back(At(Ms(ms)));
    wheel.Advance(At(Ms(ms)),
                  [&](uint64_t key) { fired_at[key] = At(Ms(ms)); });
  }
  for (int ms = 1; ms <= kKeys; ++ms) {
    const absl::Time boundary = At(kSlot * ((ms + 99) / 100));
    absl::Time expected = absl::InfinitePast();
    for (absl::Time call : calls) {
      if (call >= boundary) {
        expected = call;
        break;
      }
    }
    EXPECT_EQ(fired_at[ms], expected) << "deadline " << ms << " ms";
    EXPECT_GE(fired_at[ms], At(Ms(ms))) << "deadline " << ms << " ms";
  }
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(ExpiryWheelTest, DeadlineInThePastFiresOnTheNextAdvance) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  AdvanceTo(wheel, At(Ms(1050)));
  wheel.Schedule(7, At(Ms(1020)));  // its slot boundary (1100) is ahead
  wheel.Schedule(8, At(Ms(10)));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(1051))), UnorderedElementsAre(7, 8));
}

TEST(ExpiryWheelTest,
     DeadlineEqualToNowFiresOnTheNextAdvanceEvenAtTheSameTime) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  AdvanceTo(wheel, At(Ms(420)));
  wheel.Schedule(7, At(Ms(420)));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(420))), ElementsAre(7));
}

TEST(ExpiryWheelTest, DeadlineAtTheStartFiresOnTheFirstAdvance) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, kStart);
  EXPECT_THAT(AdvanceTo(wheel, kStart), ElementsAre(7));
}

TEST(ExpiryWheelTest, SchedulingAKeyTwiceFiresItTwice) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(Ms(200)));
  wheel.Schedule(7, At(Ms(200)));
  EXPECT_EQ(wheel.size(), 2u);
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(200))), ElementsAre(7, 7));
}

TEST(ExpiryWheelTest, SizeCountsKeysNotYetFired) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(1, At(Ms(100)));
  wheel.Schedule(2, At(Ms(300)));
  wheel.Schedule(3, At(Ms(-5)));
  EXPECT_EQ(wheel.size(), 3u);
  AdvanceTo(wheel, At(Ms(100)));
  EXPECT_EQ(wheel.size(), 1u);
  AdvanceTo(wheel, At(Ms(300)));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(ExpiryWheelTest, DeadlineBeyondTheSpanFiresEarlyWithinTheSpan) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(absl::Seconds(10)));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(600))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(800))), ElementsAre(7));
}

// The owner's side of the lazy design: on each early firing it re-arms the
// key with the real deadline, until the key fires at or after it.
TEST(ExpiryWheelTest, OwnerReArmingAFarDeadlineSeesItFireOnTime) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  const absl::Time deadline = At(absl::Milliseconds(3250));
  wheel.Schedule(7, deadline);
  absl::Time expired_at = absl::InfinitePast();
  for (absl::Time now = kStart; now <= At(absl::Seconds(5)); now += Ms(10)) {
    wheel.Advance(now, [&](uint64_t key) {
      if (now < deadline) {
        wheel.Schedule(key, deadline);
      } else if (expired_at == absl::InfinitePast()) {
        expired_at = now;
      }
    });
  }
  EXPECT_EQ(expired_at, At(Ms(3300)));
}

TEST(ExpiryWheelTest, KeyReArmedFromItsCallbackWaitsForItsNewDeadline) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(Ms(100)));
  int fired = 0;
  wheel.Advance(At(Ms(100)), [&](uint64_t key) {
    ++fired;
    wheel.Schedule(key, At(Ms(400)));
  });
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(399))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(400))), ElementsAre(7));
}

TEST(ExpiryWheelTest, KeyReArmedWithADueDeadlineFiresByTheNextAdvance) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(Ms(100)));
  int fired = 0;
  wheel.Advance(At(Ms(150)), [&](uint64_t key) {
    if (++fired == 1) wheel.Schedule(key, At(Ms(120)));
  });
  EXPECT_GE(fired, 1);
  if (fired == 1) {
    EXPECT_THAT(AdvanceTo(wheel, At(Ms(150))), ElementsAre(7));
  }
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(ExpiryWheelTest, CallbackThatAlwaysReArmsAPastDeadlineCannotLoopForever) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(Ms(100)));
  int fired = 0;
  const auto rearm = [&](uint64_t key) {
    ++fired;
    wheel.Schedule(key, kStart);
  };
  wheel.Advance(At(Ms(100)), rearm);
  EXPECT_LE(fired, 2);
  fired = 0;
  wheel.Advance(At(Ms(100)), rearm);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(wheel.size(), 1u);
}

TEST(ExpiryWheelTest, KeyScheduledFromACallbackForAnotherKeyFires) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(1, At(Ms(100)));
  wheel.Advance(At(Ms(100)), [&](uint64_t) { wheel.Schedule(2, At(Ms(700))); });
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(699))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(700))), ElementsAre(2));
}

TEST(ExpiryWheelTest, TimeGoingBackwardsIsIgnored) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  AdvanceTo(wheel, At(Ms(1000)));
  wheel.Schedule(7, At(Ms(1200)));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(100))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(1199))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(1200))), ElementsAre(7));
}

TEST(ExpiryWheelTest, BackwardAdvanceDoesNotFireADueKey) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  AdvanceTo(wheel, At(Ms(1000)));
  wheel.Schedule(7, At(Ms(500)));
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(999))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(1000))), ElementsAre(7));
}

TEST(ExpiryWheelTest, JumpOfHoursFiresEveryPendingKeyOnce) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(1, At(Ms(100)));
  wheel.Schedule(2, At(Ms(750)));
  wheel.Schedule(3, At(absl::Hours(1)));
  EXPECT_THAT(AdvanceTo(wheel, At(absl::Hours(5))),
              UnorderedElementsAre(1, 2, 3));
  EXPECT_EQ(wheel.size(), 0u);
}

// A wheel that walked tick by tick would take days here (about 3e15 ticks
// of 1 us in a century); the test would then time out.
TEST(ExpiryWheelTest, JumpOfACenturyIsBoundedBySlotsNotTicks) {
  ExpiryWheel wheel(absl::Microseconds(1), 1024, kStart);
  wheel.Schedule(1, kStart + absl::Microseconds(3));
  const absl::Time later = kStart + absl::Hours(24 * 365 * 100);
  EXPECT_THAT(AdvanceTo(wheel, later), ElementsAre(1));
  wheel.Schedule(2, later + absl::Microseconds(2));
  EXPECT_THAT(AdvanceTo(wheel, later + absl::Microseconds(1)), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, later + absl::Microseconds(2)), ElementsAre(2));
}

TEST(ExpiryWheelTest, AfterALargeJumpDeadlinesKeepTheirSlotBoundaries) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  AdvanceTo(wheel, At(absl::Hours(2) + Ms(30)));
  wheel.Schedule(7, At(absl::Hours(2) + Ms(250)));
  EXPECT_THAT(AdvanceTo(wheel, At(absl::Hours(2) + Ms(299))), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, At(absl::Hours(2) + Ms(300))), ElementsAre(7));
}

TEST(ExpiryWheelTest, KeyReArmedDuringALargeJumpWaitsForItsNewDeadline) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(7, At(Ms(100)));
  const absl::Time later = At(absl::Hours(3));
  int fired = 0;
  wheel.Advance(later, [&](uint64_t key) {
    ++fired;
    wheel.Schedule(key, later + Ms(200));
  });
  EXPECT_EQ(fired, 1);
  EXPECT_THAT(AdvanceTo(wheel, later + Ms(199)), IsEmpty());
  EXPECT_THAT(AdvanceTo(wheel, later + Ms(200)), ElementsAre(7));
}

TEST(ExpiryWheelTest, InfiniteTimesDoNotOverflow) {
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  wheel.Schedule(1, absl::InfiniteFuture());
  wheel.Schedule(2, absl::InfinitePast());
  EXPECT_THAT(AdvanceTo(wheel, At(Ms(1))), ElementsAre(2));
  EXPECT_THAT(AdvanceTo(wheel, absl::InfiniteFuture()), ElementsAre(1));
  wheel.Schedule(3, At(Ms(5)));
  EXPECT_THAT(AdvanceTo(wheel, absl::InfiniteFuture()), ElementsAre(3));
}

// The daemon's pattern: each firing re-arms the key a few slots later. Once
// every slot has seen its peak load, turning the wheel allocates nothing.
TEST(ExpiryWheelTest, SteadyStateDoesNotAllocate) {
#ifndef PCFS_COUNTS_ALLOCATIONS
  GTEST_SKIP() << "allocations are not counted under TSan";
#else
  ExpiryWheel wheel(kSlot, kSlots, kStart);
  constexpr int kKeys = 200;
  for (int key = 0; key < kKeys; ++key) {
    wheel.Schedule(key, At(Ms(10 * key % 700 + 1)));
  }
  absl::Time now = kStart;
  uint64_t fired = 0;
  const auto rearm = [&](uint64_t key) {
    ++fired;
    wheel.Schedule(key, now + Ms(300 + 10 * (key % 30)));
  };
  for (int step = 0; step < 200; ++step) {  // warm-up: 20 s of 100 ms steps
    now += kSlot;
    wheel.Advance(now, rearm);
  }
  const uint64_t fired_before = fired;
  const uint64_t allocations_before = g_allocations.load();
  for (int step = 0; step < 200; ++step) {
    now += kSlot;
    wheel.Advance(now, rearm);
  }
  const uint64_t allocations = g_allocations.load() - allocations_before;
  EXPECT_GT(fired, fired_before);
  EXPECT_EQ(allocations, 0u);
  EXPECT_EQ(wheel.size(), static_cast<size_t>(kKeys));
#endif
}

}  // namespace
}  // namespace pcfs
