#include "daemon/journal_writer.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/index/registry.h"
#include "daemon/publication_log.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using Kind = PublicationChange::Kind;

FileMeta Meta(uint64_t size) {
  FileMeta meta;
  meta.size = size;
  meta.root.fill(static_cast<uint8_t>(size));
  return meta;
}

PublicationChange Pub(absl::string_view user, absl::string_view name,
                      uint64_t size) {
  return PublicationChange{Kind::kPublish, std::string(user), std::string(name),
                           Meta(size)};
}

PublicationChange Unp(absl::string_view user, absl::string_view name) {
  return PublicationChange{Kind::kUnpublish, std::string(user),
                           std::string(name), FileMeta{}};
}

// The writer's clock: its interval is steady time, which wall-clock steps
// and slewing do not move.
using SteadyClock = std::chrono::steady_clock;

// An append that records what it was given, can be held (to let changes
// pile up) and can be made to fail. Thread-safe.
class FakeJournal {
 public:
  JournalWriter::AppendFn Fn() {
    return [this](std::span<const PublicationChange> batch) {
      absl::Status result;
      {
        std::unique_lock<std::mutex> lock(mu_);
        batch_starts_.push_back(SteadyClock::now());
        ++calls_in_progress_;
        released_.wait(lock, [this] { return !held_; });
        for (const PublicationChange& c : batch) {
          records_.push_back(absl::StrCat(
              c.kind == Kind::kPublish ? "P " : "U ", c.user, " ", c.name));
        }
        batch_sizes_.push_back(batch.size());
        result = fail_ ? absl::ResourceExhaustedError("No space left on device")
                       : absl::OkStatus();
      }
      return result;
    };
  }
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
    }
    released_.notify_all();
  }
  void SetFailing(bool fail) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = fail;
  }
  // Waits (bounded) until an append has started.
  bool WaitForCall() {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (calls_in_progress_ > 0) return true;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    return false;
  }
  std::vector<std::string> records() {
    std::lock_guard<std::mutex> lock(mu_);
    return records_;
  }
  std::vector<size_t> batch_sizes() {
    std::lock_guard<std::mutex> lock(mu_);
    return batch_sizes_;
  }
  std::vector<SteadyClock::time_point> batch_starts() {
    std::lock_guard<std::mutex> lock(mu_);
    return batch_starts_;
  }

 private:
  std::mutex mu_;
  std::condition_variable released_;
  bool held_ = false;
  bool fail_ = false;
  int calls_in_progress_ = 0;
  std::vector<std::string> records_;
  std::vector<size_t> batch_sizes_;
  std::vector<SteadyClock::time_point> batch_starts_;
};

std::unique_ptr<JournalWriter::CompletionQueue> NewQueue() {
  absl::StatusOr<std::unique_ptr<JournalWriter::CompletionQueue>> queue =
      JournalWriter::CompletionQueue::Create();
  EXPECT_TRUE(queue.ok()) << queue.status();
  return *std::move(queue);
}

// Runs `queue`'s completions as a reactor would (poll its fd, then run),
// until `want` have run or 10 s pass. Returns how many ran.
size_t RunUntil(JournalWriter::CompletionQueue& queue, size_t want) {
  size_t ran = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (ran < want && absl::Now() < deadline) {
    pollfd p{queue.fd(), POLLIN, 0};
    if (::poll(&p, 1, 100) == 1) ran += queue.RunCompletions();
  }
  return ran;
}

TEST(JournalWriterTest, ChangeIsAppliedOnlyOnceDurableAndCompletedOnItsQueue) {
  Registry registry;
  FakeJournal journal;
  journal.Hold();
  JournalWriter writer(journal.Fn(), &registry, {});
  auto queue = NewQueue();
  std::vector<absl::Status> outcomes;
  ASSERT_TRUE(writer
                  .Submit(Pub("leia", "plans.pdf", 10), queue.get(),
                          [&](const absl::Status& s) { outcomes.push_back(s); })
                  .ok());
  ASSERT_TRUE(journal.WaitForCall());
  // Being written, not yet durable: memory is as it was, nothing completed.
  EXPECT_EQ(registry.PublicationOf("leia", "plans.pdf"), std::nullopt);
  EXPECT_EQ(queue->RunCompletions(), 0u);
  journal.Release();
  ASSERT_EQ(RunUntil(*queue, 1), 1u);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_TRUE(outcomes[0].ok()) << outcomes[0];
  EXPECT_EQ(registry.PublicationOf("leia", "plans.pdf"), Meta(10));
}

TEST(JournalWriterTest, ManySubmitsMakeFewerBatchesInOrder) {
  Registry registry;
  FakeJournal journal;
  journal.Hold();  // the first batch waits, so the rest pile up behind it
  JournalWriter writer(journal.Fn(), &registry, {});
  auto queue = NewQueue();
  constexpr int kChanges = 200;
  std::vector<int> completed;
  for (int i = 0; i < kChanges; ++i) {
    ASSERT_TRUE(writer
                    .Submit(Pub("leia", absl::StrCat("f", i), 1), queue.get(),
                            [&completed, i](const absl::Status& s) {
                              EXPECT_TRUE(s.ok()) << s;
                              completed.push_back(i);
                            })
                    .ok());
    if (i == 0) {
      ASSERT_TRUE(journal.WaitForCall());
    }
  }
  journal.Release();
  ASSERT_EQ(RunUntil(*queue, kChanges), static_cast<size_t>(kChanges));
  // One completion per request, in submission order.
  ASSERT_EQ(completed.size(), static_cast<size_t>(kChanges));
  for (int i = 0; i < kChanges; ++i) EXPECT_EQ(completed[i], i);
  const std::vector<size_t> sizes = journal.batch_sizes();
  EXPECT_LE(sizes.size(), 3u) << "the held first batch, then the rest";
  EXPECT_EQ(writer.stats().batches, sizes.size());
  const std::vector<std::string> records = journal.records();
  ASSERT_EQ(records.size(), static_cast<size_t>(kChanges));
  for (int i = 0; i < kChanges; ++i) {
    EXPECT_EQ(records[i], absl::StrCat("P leia f", i));
  }
  EXPECT_EQ(registry.publication_count(), static_cast<size_t>(kChanges));
}

TEST(JournalWriterTest, BatchCapBoundsEachAppend) {
  Registry registry;
  FakeJournal journal;
  journal.Hold();
  JournalWriter::Options options;
  options.max_batch = 16;
  JournalWriter writer(journal.Fn(), &registry, options);
  auto queue = NewQueue();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(writer
                    .Submit(Pub("leia", absl::StrCat("f", i), 1), queue.get(),
                            [](const absl::Status&) {})
                    .ok());
    if (i == 0) {
      ASSERT_TRUE(journal.WaitForCall());
    }
  }
  journal.Release();
  ASSERT_EQ(RunUntil(*queue, 100), 100u);
  for (size_t size : journal.batch_sizes()) EXPECT_LE(size, 16u);
}

// Submits a publication of `name` whose completion counts in `done`.
void SubmitCounted(JournalWriter& writer, JournalWriter::CompletionQueue* queue,
                   const std::string& name, int* done) {
  ASSERT_TRUE(writer
                  .Submit(Pub("leia", name, 1), queue,
                          [done](const absl::Status& s) {
                            EXPECT_TRUE(s.ok()) << s;
                            ++*done;
                          })
                  .ok());
}

TEST(JournalWriterTest, ChangesWhileBatchesFollowAreGatheredForTheInterval) {
  Registry registry;
  FakeJournal journal;
  JournalWriter::Options options;
  options.commit_interval = absl::Milliseconds(200);
  JournalWriter writer(journal.Fn(), &registry, options);
  auto queue = NewQueue();
  int done = 0;
  // The first change finds the writer idle: written at once. The writer
  // times the interval from when it took that batch, which is after this
  // submit and before the append the fake records; so the bound below is
  // from here, since the append can be late by any scheduling delay.
  const SteadyClock::time_point first_submitted = SteadyClock::now();
  SubmitCounted(writer, queue.get(), "a", &done);
  ASSERT_EQ(RunUntil(*queue, 1), 1u);
  // These come while the interval since that batch runs: one batch, which
  // starts no sooner than the interval after the first.
  for (const char* name : {"b", "c", "d"}) {
    SubmitCounted(writer, queue.get(), name, &done);
  }
  ASSERT_EQ(RunUntil(*queue, 3), 3u);
  EXPECT_EQ(done, 4);
  EXPECT_EQ(journal.batch_sizes(), (std::vector<size_t>{1, 3}));
  const std::vector<SteadyClock::time_point> starts = journal.batch_starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_GE(starts[1] - first_submitted, std::chrono::milliseconds(200));
}

TEST(JournalWriterTest, AChangeAfterAnIdleIntervalIsWrittenAtOnce) {
  Registry registry;
  FakeJournal journal;
  JournalWriter::Options options;
  options.commit_interval = absl::Milliseconds(300);
  JournalWriter writer(journal.Fn(), &registry, options);
  auto queue = NewQueue();
  int done = 0;
  SubmitCounted(writer, queue.get(), "a", &done);
  ASSERT_EQ(RunUntil(*queue, 1), 1u);
  absl::SleepFor(absl::Milliseconds(400));  // the interval passes, idle
  const SteadyClock::time_point submitted = SteadyClock::now();
  SubmitCounted(writer, queue.get(), "b", &done);
  ASSERT_EQ(RunUntil(*queue, 1), 1u);
  const std::vector<SteadyClock::time_point> starts = journal.batch_starts();
  ASSERT_EQ(starts.size(), 2u);
  // Not held back for another interval (300 ms): only the writer's wake-up.
  EXPECT_LT(starts[1] - submitted, std::chrono::milliseconds(250));
}

TEST(JournalWriterTest, ShutdownDoesNotWaitOutTheInterval) {
  Registry registry;
  FakeJournal journal;
  JournalWriter::Options options;
  options.commit_interval = absl::Seconds(60);
  auto writer =
      std::make_unique<JournalWriter>(journal.Fn(), &registry, options);
  auto queue = NewQueue();
  int done = 0;
  SubmitCounted(*writer, queue.get(), "a", &done);
  ASSERT_EQ(RunUntil(*queue, 1), 1u);
  SubmitCounted(*writer, queue.get(), "b", &done);  // gathered for 60 s
  const absl::Time start = absl::Now();
  writer->Shutdown();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  // Drained: "b" was written and completed all the same.
  EXPECT_EQ(queue->RunCompletions(), 1u);
  EXPECT_EQ(done, 2);
  EXPECT_EQ(journal.batch_sizes(), (std::vector<size_t>{1, 1}));
}

TEST(JournalWriterTest, ChangesOfOneNameAreDecidedInOrderWithinABatch) {
  Registry registry;
  registry.Publish("leia", "old.pdf", Meta(1));
  FakeJournal journal;
  journal.Hold();
  JournalWriter writer(journal.Fn(), &registry, {});
  auto queue = NewQueue();
  std::vector<absl::StatusCode> codes;
  auto done = [&](const absl::Status& s) { codes.push_back(s.code()); };
  ASSERT_TRUE(writer.Submit(Pub("leia", "held", 1), queue.get(), done).ok());
  ASSERT_TRUE(journal.WaitForCall());
  // All in the next batch: the second unp finds the name gone, the second
  // pub finds it published as asked; neither is written.
  ASSERT_TRUE(writer.Submit(Unp("leia", "old.pdf"), queue.get(), done).ok());
  ASSERT_TRUE(writer.Submit(Unp("leia", "old.pdf"), queue.get(), done).ok());
  ASSERT_TRUE(writer.Submit(Pub("leia", "new.pdf", 5), queue.get(), done).ok());
  ASSERT_TRUE(writer.Submit(Pub("leia", "new.pdf", 5), queue.get(), done).ok());
  journal.Release();
  ASSERT_EQ(RunUntil(*queue, 5), 5u);
  EXPECT_EQ(codes, (std::vector<absl::StatusCode>{
                       absl::StatusCode::kOk, absl::StatusCode::kOk,
                       absl::StatusCode::kNotFound, absl::StatusCode::kOk,
                       absl::StatusCode::kOk}));
  EXPECT_EQ(journal.records(),
            (std::vector<std::string>{"P leia held", "U leia old.pdf",
                                      "P leia new.pdf"}));
  EXPECT_EQ(registry.PublicationOf("leia", "old.pdf"), std::nullopt);
  EXPECT_EQ(registry.PublicationOf("leia", "new.pdf"), Meta(5));
}

TEST(JournalWriterTest, FailedAppendLeavesMemoryExactlyAsItWas) {
  Registry registry;
  registry.Publish("leia", "plans.pdf", Meta(10));
  registry.Publish("leia", "map.png", Meta(3));
  FakeJournal journal;
  journal.SetFailing(true);
  JournalWriter writer(journal.Fn(), &registry, {});
  auto queue = NewQueue();
  std::vector<absl::Status> outcomes;
  auto done = [&](const absl::Status& s) { outcomes.push_back(s); };
  ASSERT_TRUE(
      writer.Submit(Pub("leia", "plans.pdf", 11), queue.get(), done).ok());
  ASSERT_TRUE(writer.Submit(Unp("leia", "map.png"), queue.get(), done).ok());
  ASSERT_TRUE(writer.Submit(Pub("leia", "new.txt", 1), queue.get(), done).ok());
  ASSERT_EQ(RunUntil(*queue, 3), 3u);
  for (const absl::Status& s : outcomes) {
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  }
  EXPECT_EQ(registry.PublicationOf("leia", "plans.pdf"), Meta(10));
  EXPECT_EQ(registry.PublicationOf("leia", "map.png"), Meta(3));
  EXPECT_EQ(registry.PublicationOf("leia", "new.txt"), std::nullopt);
  EXPECT_EQ(registry.publication_count(), 2u);
  EXPECT_GE(writer.stats().failed_batches, 1u);
  // The disk recovers: the same change goes through.
  journal.SetFailing(false);
  ASSERT_TRUE(
      writer.Submit(Pub("leia", "plans.pdf", 11), queue.get(), done).ok());
  ASSERT_EQ(RunUntil(*queue, 1), 1u);
  EXPECT_TRUE(outcomes.back().ok());
  EXPECT_EQ(registry.PublicationOf("leia", "plans.pdf"), Meta(11));
}

// The daemon's own journal when the kernel refuses its writes: a file size
// limit of 0 (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC), set after
// Open. Every append fails, and memory stays as it was.
TEST(JournalWriterTest, RefusedJournalWriteLeavesEarlierPublicationsIntact) {
  char pattern[] = "/tmp/journal_writer_test.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  {
    Registry registry;
    absl::StatusOr<std::unique_ptr<PublicationLog>> log =
        PublicationLog::Open(dir, registry);
    ASSERT_TRUE(log.ok()) << log.status();
    JournalWriter writer(log->get(), &registry, {});
    auto queue = NewQueue();
    std::vector<absl::Status> outcomes;
    auto done = [&](const absl::Status& s) { outcomes.push_back(s); };
    // Published while the disk had room.
    ASSERT_TRUE(
        writer.Submit(Pub("leia", "plans.pdf", 10), queue.get(), done).ok());
    ASSERT_TRUE(
        writer.Submit(Pub("leia", "map.png", 3), queue.get(), done).ok());
    ASSERT_EQ(RunUntil(*queue, 2), 2u);
    ASSERT_TRUE(outcomes[0].ok() && outcomes[1].ok());
    outcomes.clear();

    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
    sighandler_t saved_handler = ::signal(SIGXFSZ, SIG_IGN);
    rlimit none = saved;
    none.rlim_cur = 0;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &none), 0);
    ASSERT_TRUE(
        writer.Submit(Pub("leia", "plans.pdf", 11), queue.get(), done).ok());
    ASSERT_TRUE(writer.Submit(Unp("leia", "map.png"), queue.get(), done).ok());
    ASSERT_TRUE(
        writer.Submit(Pub("leia", "new.txt", 1), queue.get(), done).ok());
    const size_t ran = RunUntil(*queue, 3);
    ::setrlimit(RLIMIT_FSIZE, &saved);
    ::signal(SIGXFSZ, saved_handler);
    ASSERT_EQ(ran, 3u);
    for (const absl::Status& s : outcomes) EXPECT_FALSE(s.ok());
    EXPECT_EQ(registry.PublicationOf("leia", "plans.pdf"), Meta(10));
    EXPECT_EQ(registry.PublicationOf("leia", "map.png"), Meta(3));
    EXPECT_EQ(registry.PublicationOf("leia", "new.txt"), std::nullopt);
    // And what is on disk agrees: a restart loads the same two.
    // (The log lets go of the state folder's lock first.)
    writer.Shutdown();
    log->reset();
    Registry reloaded;
    absl::StatusOr<std::unique_ptr<PublicationLog>> again =
        PublicationLog::Open(dir, reloaded);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(reloaded.PublicationOf("leia", "plans.pdf"), Meta(10));
    EXPECT_EQ(reloaded.PublicationOf("leia", "map.png"), Meta(3));
    EXPECT_EQ(reloaded.publication_count(), 2u);
  }
  std::filesystem::remove_all(dir);
}

TEST(JournalWriterTest, FullQueueRefusesAtOnce) {
  Registry registry;
  FakeJournal journal;
  journal.Hold();
  JournalWriter::Options options;
  options.queue_capacity = 4;
  JournalWriter writer(journal.Fn(), &registry, options);
  auto queue = NewQueue();
  int completed = 0;
  auto done = [&](const absl::Status&) { ++completed; };
  ASSERT_TRUE(writer.Submit(Pub("leia", "f0", 1), queue.get(), done).ok());
  ASSERT_TRUE(journal.WaitForCall());  // f0 taken: the queue is empty
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(
        writer.Submit(Pub("leia", absl::StrCat("f", i), 1), queue.get(), done)
            .ok());
  }
  EXPECT_EQ(writer.Submit(Pub("leia", "f5", 1), queue.get(), done).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(writer.stats().refused, 1u);
  journal.Release();
  ASSERT_EQ(RunUntil(*queue, 5), 5u);
  EXPECT_EQ(completed, 5);
  EXPECT_EQ(registry.PublicationOf("leia", "f5"), std::nullopt);
}

TEST(JournalWriterTest, ShutdownDrainsAndCompletesWhatWasAccepted) {
  Registry registry;
  FakeJournal journal;
  journal.Hold();
  JournalWriter writer(journal.Fn(), &registry, {});
  auto queue = NewQueue();
  std::atomic<int> completed{0};
  auto done = [&](const absl::Status& s) {
    EXPECT_TRUE(s.ok()) << s;
    ++completed;
  };
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(
        writer.Submit(Pub("leia", absl::StrCat("f", i), 1), queue.get(), done)
            .ok());
    if (i == 0) {
      ASSERT_TRUE(journal.WaitForCall());
    }
  }
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(20));
    journal.Release();
  });
  writer.Shutdown();  // returns once all 50 are durable and queued
  releaser.join();
  EXPECT_EQ(registry.publication_count(), 50u);
  EXPECT_EQ(writer.Submit(Pub("leia", "late", 1), queue.get(), done).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue->RunCompletions(), 50u);
  EXPECT_EQ(completed.load(), 50);
}

TEST(JournalWriterTest, ManyThreadsEachGetTheirOwnCompletions) {
  Registry registry;
  FakeJournal journal;
  JournalWriter writer(journal.Fn(), &registry, {});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 300;
  std::vector<int> completed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto queue = NewQueue();
      const std::string user = absl::StrCat("user", t);
      int submitted = 0;
      for (int i = 0; i < kPerThread; ++i) {
        // Each name gets a pub, then an unp.
        const std::string name = absl::StrCat("f", (i / 2) % 20);
        PublicationChange change =
            i % 2 == 0 ? Pub(user, name, 1) : Unp(user, name);
        if (writer
                .Submit(std::move(change), queue.get(),
                        [&completed, t](const absl::Status& s) {
                          EXPECT_TRUE(s.ok() || absl::IsNotFound(s)) << s;
                          ++completed[t];  // this thread's only
                        })
                .ok()) {
          ++submitted;
        }
      }
      RunUntil(*queue, static_cast<size_t>(submitted));
      EXPECT_EQ(completed[t], submitted);
    });
  }
  for (std::thread& t : threads) t.join();
  // Every pub of a name came before its unp, and the last change of each
  // name was an unp.
  EXPECT_EQ(registry.publication_count(), 0u);
  const JournalWriter::Stats stats = writer.stats();
  EXPECT_EQ(stats.changes, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_LE(stats.batches, stats.changes);
}

}  // namespace
}  // namespace pcfs
