#include "peerctl/chunk_scheduler.h"

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "core/proto/merkle.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ChunkRun = ChunkScheduler::Run;

constexpr uint64_t kChunk = kMerkleChunkBytes;

// A file of `chunks` whole chunks, none verified.
ChunkScheduler Fresh(uint64_t chunks, size_t holders, uint64_t max_run = 16) {
  return ChunkScheduler(chunks * kChunk, std::vector<bool>(chunks, false),
                        holders, max_run);
}

TEST(ChunkSchedulerTest, ALoneHolderTakesEverythingInOneRun) {
  ChunkScheduler scheduler = Fresh(100, 1, 4);
  EXPECT_EQ(scheduler.TryTake(0), (ChunkRun{0, 100}));
  EXPECT_EQ(scheduler.TryTake(0), std::nullopt);
}

TEST(ChunkSchedulerTest, RunsSkipVerifiedChunks) {
  // Chunks 0, 1 and 4 of 6 are in place; the file's last chunk is short.
  ChunkScheduler scheduler(5 * kChunk + 7,
                           {true, true, false, false, true, false}, 1, 16);
  EXPECT_EQ(scheduler.verified_bytes(), 3 * kChunk);
  EXPECT_EQ(scheduler.TryTake(0), (ChunkRun{2, 4}));
  EXPECT_EQ(scheduler.TryTake(0), (ChunkRun{5, 6}));
  for (uint64_t i : {2, 3, 5}) scheduler.MarkVerified(0, i);
  EXPECT_TRUE(scheduler.complete());
  EXPECT_EQ(scheduler.verified_bytes(), 5 * kChunk + 7);
  EXPECT_FALSE(scheduler.WaitForWork(0));
}

TEST(ChunkSchedulerTest, SeveralHoldersShareFairlyUpToTheLargestRun) {
  ChunkScheduler small = Fresh(10, 2);
  EXPECT_EQ(small.TryTake(0), (ChunkRun{0, 5}));
  EXPECT_EQ(small.TryTake(1), (ChunkRun{5, 10}));
  ChunkScheduler large = Fresh(100, 2, 16);
  EXPECT_EQ(large.TryTake(0), (ChunkRun{0, 16}));
  EXPECT_EQ(large.TryTake(1), (ChunkRun{16, 32}));
}

TEST(ChunkSchedulerTest, ADroppedHoldersChunksGoToTheOthers) {
  ChunkScheduler scheduler = Fresh(8, 2);
  ASSERT_EQ(scheduler.TryTake(0), (ChunkRun{0, 4}));
  ASSERT_EQ(scheduler.TryTake(1), (ChunkRun{4, 8}));
  scheduler.MarkVerified(0, 0);
  scheduler.Drop(0, absl::DataLossError("chunk 1 is corrupt"));
  EXPECT_EQ(scheduler.active_holders(), 1u);
  EXPECT_EQ(scheduler.TryTake(0), std::nullopt) << "a dropped holder";
  // The one left takes the rest at once, the verified chunk 0 excepted.
  EXPECT_EQ(scheduler.TryTake(1), (ChunkRun{1, 4}));
  // A chunk from another holder's run cannot be reported by this one.
  scheduler.MarkVerified(0, 1);
  EXPECT_EQ(scheduler.verified_bytes(), kChunk);
  const std::vector<absl::Status> reasons = scheduler.drop_reasons();
  EXPECT_TRUE(absl::IsDataLoss(reasons[0]));
  EXPECT_TRUE(reasons[1].ok());
}

TEST(ChunkSchedulerTest, AReleasedChunkIsTakenAgain) {
  ChunkScheduler scheduler = Fresh(3, 1);
  ASSERT_EQ(scheduler.TryTake(0), (ChunkRun{0, 3}));
  scheduler.MarkVerified(0, 0);
  scheduler.Release(0, 1);
  scheduler.MarkVerified(0, 2);
  EXPECT_TRUE(scheduler.WaitForWork(0));
  EXPECT_EQ(scheduler.TryTake(0), (ChunkRun{1, 2}));
}

TEST(ChunkSchedulerTest, TheDownloadEndsWhenEveryHolderIsDropped) {
  ChunkScheduler scheduler = Fresh(4, 2);
  scheduler.Drop(0, absl::UnavailableError("refused"));
  EXPECT_FALSE(scheduler.WaitForEndOrChange(absl::ZeroDuration()));
  scheduler.Drop(1, absl::DeadlineExceededError("silent"));
  EXPECT_TRUE(scheduler.WaitForEndOrChange(absl::ZeroDuration()));
  EXPECT_FALSE(scheduler.complete());
  EXPECT_FALSE(scheduler.WaitForWork(1));
}

TEST(ChunkSchedulerTest, StopEndsItAndRaisesTheFlag) {
  ChunkScheduler scheduler = Fresh(4, 1);
  EXPECT_FALSE(scheduler.stop_flag()->load());
  scheduler.Stop();
  EXPECT_TRUE(scheduler.stop_flag()->load());
  EXPECT_FALSE(scheduler.WaitForWork(0));
  EXPECT_EQ(scheduler.TryTake(0), std::nullopt);
}

// Threads (run under TSan): a holder waiting for work while the other has
// every chunk is woken when that one is dropped, and takes them.
TEST(ChunkSchedulerTest, AWaitingHolderWakesWhenTheOtherIsDropped) {
  ChunkScheduler scheduler = Fresh(4, 2, 16);
  ASSERT_EQ(scheduler.TryTake(0), (ChunkRun{0, 2}));
  ASSERT_EQ(scheduler.TryTake(0), (ChunkRun{2, 4}));
  std::optional<ChunkRun> taken;
  std::thread waiter([&] {
    if (scheduler.WaitForWork(1)) taken = scheduler.TryTake(1);
  });
  absl::SleepFor(absl::Milliseconds(20));
  scheduler.Drop(0, absl::DeadlineExceededError("stalled"));
  waiter.join();
  EXPECT_EQ(taken, (ChunkRun{0, 4}));
}

// Starving: a holder waits while the others hold every missing chunk.
TEST(ChunkSchedulerTest, StarvingWhileAHolderWaitsWithNothingFree) {
  ChunkScheduler scheduler = Fresh(2, 2, 16);
  ASSERT_EQ(scheduler.TryTake(0), (ChunkRun{0, 1}));
  EXPECT_FALSE(scheduler.starving()) << "chunk 1 is free";
  ASSERT_EQ(scheduler.TryTake(0), (ChunkRun{1, 2}));
  EXPECT_FALSE(scheduler.starving()) << "nobody waits";
  std::thread waiter([&] { EXPECT_TRUE(scheduler.WaitForWork(1)); });
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!scheduler.starving() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_TRUE(scheduler.starving());
  scheduler.Release(0, 1);  // wakes the waiter: chunk 1 is free again
  waiter.join();
  EXPECT_FALSE(scheduler.starving());
}

// Threads: four holders race over 1000 chunks; every chunk is verified once
// and the download completes.
TEST(ChunkSchedulerTest, FourHoldersCompleteADownloadTogether) {
  ChunkScheduler scheduler = Fresh(1000, 4, 16);
  std::vector<std::atomic<int>> verified(1000);
  std::vector<std::thread> holders;
  for (size_t h = 0; h < 4; ++h) {
    holders.emplace_back([&, h] {
      while (scheduler.WaitForWork(h)) {
        std::optional<ChunkRun> run = scheduler.TryTake(h);
        if (!run) continue;
        for (uint64_t i = run->first; i < run->end; ++i) {
          ++verified[i];
          scheduler.MarkVerified(h, i);
        }
      }
    });
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!scheduler.WaitForEndOrChange(absl::Milliseconds(50)) &&
         absl::Now() < give_up) {
  }
  for (std::thread& holder : holders) holder.join();
  EXPECT_TRUE(scheduler.complete());
  for (const std::atomic<int>& count : verified) EXPECT_EQ(count.load(), 1);
}

}  // namespace
}  // namespace pcfs
