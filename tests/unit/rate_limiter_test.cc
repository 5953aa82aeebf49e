#include "core/auth/rate_limiter.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

// The fake clock: any fixed instant will do.
const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

RateLimiter::Options FiveEveryTenSeconds(size_t max_keys = 100000) {
  return RateLimiter::Options{5, absl::Seconds(10), max_keys};
}

// Takes every token `key` has at `now`.
void Exhaust(RateLimiter& limiter, absl::string_view key, absl::Time now) {
  for (int i = 0; i < 100 && limiter.TryAcquire(key, now); ++i) {
  }
}

TEST(RateLimiterTest, NewKeyStartsFull) {
  RateLimiter limiter(FiveEveryTenSeconds());
  EXPECT_EQ(limiter.Available("hans", kStart), 5);
}

TEST(RateLimiterTest, AllowsABurstThenRefusesWithRetryAfter) {
  RateLimiter limiter(FiveEveryTenSeconds());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.TryAcquire("hans", kStart));
  absl::Duration retry_after;
  EXPECT_FALSE(limiter.TryAcquire("hans", kStart, &retry_after));
  EXPECT_EQ(retry_after, absl::Seconds(10));
}

TEST(RateLimiterTest, RetryAfterCountsDownToTheNextToken) {
  RateLimiter limiter(FiveEveryTenSeconds());
  Exhaust(limiter, "hans", kStart);
  absl::Duration retry_after;
  EXPECT_FALSE(
      limiter.TryAcquire("hans", kStart + absl::Seconds(4), &retry_after));
  EXPECT_EQ(retry_after, absl::Seconds(6));
}

TEST(RateLimiterTest, WaitForSaysWhenTheNextTokenComesWithoutTakingOne) {
  RateLimiter limiter(FiveEveryTenSeconds());
  EXPECT_EQ(limiter.WaitFor("hans", kStart), absl::ZeroDuration());
  Exhaust(limiter, "hans", kStart);
  EXPECT_EQ(limiter.WaitFor("hans", kStart + absl::Seconds(4)),
            absl::Seconds(6));
  EXPECT_EQ(limiter.WaitFor("hans", kStart + absl::Seconds(10)),
            absl::ZeroDuration());
  EXPECT_TRUE(limiter.TryAcquire("hans", kStart + absl::Seconds(10)));
}

TEST(RateLimiterTest, RefillsOneTokenPerRefillTime) {
  RateLimiter limiter(FiveEveryTenSeconds());
  Exhaust(limiter, "hans", kStart);
  const absl::Time later = kStart + absl::Seconds(10);
  EXPECT_TRUE(limiter.TryAcquire("hans", later));
  EXPECT_FALSE(limiter.TryAcquire("hans", later));
}

TEST(RateLimiterTest, RefillsFractionsOfATokenAndKeepsThem) {
  RateLimiter limiter(FiveEveryTenSeconds());
  Exhaust(limiter, "hans", kStart);
  EXPECT_DOUBLE_EQ(limiter.Available("hans", kStart + absl::Seconds(25)), 2.5);
  absl::Duration retry_after;
  const absl::Time later = kStart + absl::Seconds(25);
  EXPECT_TRUE(limiter.TryAcquire("hans", later));
  EXPECT_TRUE(limiter.TryAcquire("hans", later));
  EXPECT_FALSE(limiter.TryAcquire("hans", later, &retry_after));
  EXPECT_EQ(retry_after, absl::Seconds(5));
}

TEST(RateLimiterTest, RefillStopsAtTheBurst) {
  RateLimiter limiter(FiveEveryTenSeconds());
  EXPECT_TRUE(limiter.TryAcquire("hans", kStart));
  EXPECT_EQ(limiter.Available("hans", kStart + absl::Hours(1)), 5);
}

TEST(RateLimiterTest, RefusedAttemptsRunUpNoDebt) {
  RateLimiter limiter(FiveEveryTenSeconds());
  Exhaust(limiter, "hans", kStart);
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(limiter.TryAcquire("hans", kStart + absl::Seconds(1)));
  }
  EXPECT_TRUE(limiter.TryAcquire("hans", kStart + absl::Seconds(10)));
}

TEST(RateLimiterTest, AClockGoingBackwardsEarnsNothing) {
  RateLimiter limiter(FiveEveryTenSeconds());
  Exhaust(limiter, "hans", kStart);
  EXPECT_FALSE(limiter.TryAcquire("hans", kStart - absl::Hours(1)));
  EXPECT_EQ(limiter.Available("hans", kStart), 0);
  EXPECT_TRUE(limiter.TryAcquire("hans", kStart + absl::Seconds(10)));
  EXPECT_FALSE(limiter.TryAcquire("hans", kStart + absl::Seconds(10)));
}

TEST(RateLimiterTest, KeysHaveSeparateBuckets) {
  RateLimiter limiter(FiveEveryTenSeconds());
  Exhaust(limiter, "hans", kStart);
  EXPECT_FALSE(limiter.TryAcquire("hans", kStart));
  EXPECT_TRUE(limiter.TryAcquire("vader", kStart));
  EXPECT_EQ(limiter.Available("vader", kStart), 4);
  EXPECT_EQ(limiter.Available("hans", kStart), 0);
}

TEST(RateLimiterTest, UnknownKeyLeavesNoTrace) {
  RateLimiter limiter(FiveEveryTenSeconds(/*max_keys=*/1));
  Exhaust(limiter, "hans", kStart);
  EXPECT_EQ(limiter.Available("vader", kStart), 5);
  EXPECT_EQ(limiter.Available("hans", kStart), 0);  // not evicted by a read
}

// ---- The max_keys bound.

TEST(RateLimiterTest, RemembersAtMostMaxKeys) {
  RateLimiter limiter(FiveEveryTenSeconds(/*max_keys=*/100));
  for (int i = 0; i < 1000; ++i) {
    Exhaust(limiter, absl::StrCat("10.0.", i / 256, ".", i % 256), kStart);
  }
  int remembered = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("10.0.", i / 256, ".", i % 256);
    if (limiter.Available(key, kStart) < 5) ++remembered;
    if (i >= 900) {
      EXPECT_EQ(limiter.Available(key, kStart), 0) << key;
    }
  }
  EXPECT_EQ(remembered, 100);
}

TEST(RateLimiterTest, WhenFullForgetsTheLeastRecentlyUsedKey) {
  RateLimiter limiter(FiveEveryTenSeconds(/*max_keys=*/2));
  Exhaust(limiter, "hans", kStart);
  Exhaust(limiter, "vader", kStart);
  EXPECT_FALSE(limiter.TryAcquire("hans", kStart));  // hans is now recent
  EXPECT_TRUE(limiter.TryAcquire("yoda", kStart));
  EXPECT_EQ(limiter.Available("hans", kStart), 0);
  EXPECT_EQ(limiter.Available("vader", kStart), 5);  // forgotten
}

TEST(RateLimiterTest, WhenFullForgetsAFullBucketBeforeAnOlderBusyOne) {
  RateLimiter limiter(FiveEveryTenSeconds(/*max_keys=*/2));
  Exhaust(limiter, "hans", kStart);  // least recently used
  EXPECT_TRUE(limiter.TryAcquire("vader", kStart + absl::Seconds(1)));
  const absl::Time later = kStart + absl::Seconds(11);  // vader full again
  EXPECT_TRUE(limiter.TryAcquire("yoda", later));
  EXPECT_DOUBLE_EQ(limiter.Available("hans", later), 1.1);  // remembered
  EXPECT_EQ(limiter.Available("yoda", later), 4);
}

TEST(RateLimiterTest, ThreadsShareOneBucketPerKey) {
  RateLimiter limiter(FiveEveryTenSeconds());
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (limiter.TryAcquire("hans", kStart)) ++granted;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(granted.load(), 5);
}

}  // namespace
}  // namespace pcfs
