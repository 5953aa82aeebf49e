#include "daemon/session_table.h"

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "core/auth/datagram_auth.h"
#include "core/proto/protocol.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

constexpr uint8_t kPublish = 5;  // any request type but 0

SessionKey Key(uint8_t seed) {
  SessionKey key{};
  key.fill(seed);
  return key;
}

DatagramKeys KeysOf(const SessionKey& key) {
  absl::StatusOr<DatagramKeys> keys = DeriveDatagramKeys(key);
  EXPECT_TRUE(keys.ok()) << keys.status();
  return keys.ok() ? *keys : DatagramKeys();
}

// A request with an 8-byte body sealed with the keys of `key` (its bytes
// vary with `salt`).
std::vector<uint8_t> Sealed(const SessionKey& key, uint8_t salt) {
  std::vector<uint8_t> datagram(protocol::kHeaderSize + 8, salt);
  SealDatagram(KeysOf(key), Direction::kToDaemon, salt, datagram);
  return datagram;
}

// Where Admit decrypts a body to: one per thread, as in the daemon.
std::span<uint8_t> Scratch() {
  thread_local std::array<uint8_t, protocol::kMaxBodySize> body{};
  return body;
}

TEST(SessionTableTest, UnknownSessionIsNotAdmitted) {
  SessionTable table;
  const std::vector<uint8_t> datagram = Sealed(Key(1), 0);
  EXPECT_EQ(table.Admit(42, datagram, 1, 7, kPublish, Scratch()).verdict,
            SessionTable::Admission::kUnknownSession);
  EXPECT_EQ(table.KeyOf(42), std::nullopt);
}

TEST(SessionTableTest, AdmitsASealedDatagramOnceAndGivesItsKey) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  const std::vector<uint8_t> datagram = Sealed(Key(1), 5);
  SessionTable::Admission first =
      table.Admit(42, datagram, 1, 7, kPublish, Scratch());
  EXPECT_EQ(first.verdict, SessionTable::Admission::kAdmitted);
  EXPECT_EQ(first.key, Key(1));
  // The body, encrypted on the wire, is there in the clear.
  EXPECT_NE(datagram[protocol::kHeaderSize], 5);
  EXPECT_EQ(std::vector<uint8_t>(Scratch().begin(), Scratch().begin() + 8),
            std::vector<uint8_t>(8, 5));
  EXPECT_FALSE(first.cached_code.has_value());
  EXPECT_EQ(table.Admit(42, datagram, 1, 7, kPublish, Scratch()).verdict,
            SessionTable::Admission::kReplayed);
}

TEST(SessionTableTest, ForgedDatagramDoesNotMoveTheReplayWindow) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  EXPECT_EQ(
      table.Admit(42, Sealed(Key(2), 0), 1000, 7, kPublish, Scratch()).verdict,
      SessionTable::Admission::kBadMac);
  // Had the forgery recorded 1000, sequence 1 would be far behind it.
  EXPECT_EQ(
      table.Admit(42, Sealed(Key(1), 0), 1, 7, kPublish, Scratch()).verdict,
      SessionTable::Admission::kAdmitted);
}

TEST(SessionTableTest, RetransmissionFindsTheCachedAnswer) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  ASSERT_EQ(
      table.Admit(42, Sealed(Key(1), 0), 1, 7, kPublish, Scratch()).verdict,
      SessionTable::Admission::kAdmitted);
  table.Complete(42, 7, kPublish, 9);
  SessionTable::Admission again =
      table.Admit(42, Sealed(Key(1), 1), 2, 7, kPublish, Scratch());
  ASSERT_EQ(again.verdict, SessionTable::Admission::kAdmitted);
  EXPECT_EQ(again.cached_code, 9);
  // Another type with the same request id is another request.
  EXPECT_FALSE(table.Admit(42, Sealed(Key(1), 2), 3, 7, kPublish + 1, Scratch())
                   .cached_code);
}

TEST(SessionTableTest, PendingRequestIsToldApartThenCompletedInPlace) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  table.Complete(42, 1, kPublish, 0);  // an older answer, kept throughout
  table.MarkPending(42, 7, kPublish);
  SessionTable::Admission pending =
      table.Admit(42, Sealed(Key(1), 1), 1, 7, kPublish, Scratch());
  ASSERT_EQ(pending.verdict, SessionTable::Admission::kAdmitted);
  EXPECT_TRUE(pending.pending);
  EXPECT_FALSE(pending.cached_code.has_value());
  table.Complete(42, 7, kPublish, 6);
  SessionTable::Admission done =
      table.Admit(42, Sealed(Key(1), 2), 2, 7, kPublish, Scratch());
  EXPECT_FALSE(done.pending);
  EXPECT_EQ(done.cached_code, 6);
  // Completed in the pending mark's slot: three more answers leave the
  // older one in the ring of four.
  for (uint32_t request = 10; request < 12; ++request) {
    table.Complete(42, request, kPublish, 0);
  }
  EXPECT_EQ(
      table.Admit(42, Sealed(Key(1), 3), 3, 1, kPublish, Scratch()).cached_code,
      0);
}

TEST(SessionTableTest, ForgottenPendingRequestRunsAgain) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  table.MarkPending(42, 7, kPublish);
  table.ForgetPending(42, 7, kPublish);
  SessionTable::Admission again =
      table.Admit(42, Sealed(Key(1), 1), 1, 7, kPublish, Scratch());
  EXPECT_FALSE(again.pending);
  EXPECT_FALSE(again.cached_code.has_value());
  // A cached answer is not a pending mark: ForgetPending leaves it.
  table.Complete(42, 8, kPublish, 6);
  table.ForgetPending(42, 8, kPublish);
  EXPECT_EQ(
      table.Admit(42, Sealed(Key(1), 2), 2, 8, kPublish, Scratch()).cached_code,
      6);
}

// The cached answer session 42 (key 1) gets for PUB `request`, asked as a
// retransmission would ask it: each call with the next sequence number.
class CachedAnswer {
 public:
  explicit CachedAnswer(SessionTable& table) : table_(table) {}
  std::optional<uint8_t> operator()(uint32_t request) {
    const uint64_t sequence = sequence_++;
    return table_
        .Admit(42, Sealed(Key(1), static_cast<uint8_t>(sequence)), sequence,
               request, kPublish, Scratch())
        .cached_code;
  }

 private:
  SessionTable& table_;
  uint64_t sequence_ = 1;
};

TEST(SessionTableTest, CacheKeepsTheLastFourAnswers) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  for (uint32_t request = 1; request <= 5; ++request) {
    table.Complete(42, request, kPublish, static_cast<uint8_t>(request));
  }
  CachedAnswer cached(table);
  EXPECT_FALSE(cached(1).has_value());  // the oldest, replaced
  for (uint32_t request = 2; request <= 5; ++request) {
    EXPECT_EQ(cached(request), request);
  }
}

// Request ids start anywhere (a random first id) and wrap past 2^32: the
// answer replaced is still the oldest request's, not the smallest number's.
TEST(SessionTableTest, CacheKeepsTheLastFourAnswersAcrossTheWrap) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  const uint32_t first = 0xFFFFFFFE;  // then 0xFFFFFFFF, 0, 1, 2
  for (uint32_t i = 0; i < 5; ++i) {
    table.Complete(42, first + i, kPublish, static_cast<uint8_t>(10 + i));
  }
  CachedAnswer cached(table);
  EXPECT_FALSE(cached(first).has_value());  // the oldest, replaced
  for (uint32_t i = 1; i < 5; ++i) {
    EXPECT_EQ(cached(first + i), 10 + i) << i;
  }
}

TEST(SessionTableTest, RetransmittedLoginKeepsTheEntry) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  ASSERT_EQ(
      table.Admit(42, Sealed(Key(1), 0), 1, 7, kPublish, Scratch()).verdict,
      SessionTable::Admission::kAdmitted);
  EXPECT_FALSE(table.Insert(42, Key(1)));
  EXPECT_EQ(
      table.Admit(42, Sealed(Key(1), 0), 1, 7, kPublish, Scratch()).verdict,
      SessionTable::Admission::kReplayed);
}

TEST(SessionTableTest, EraseForgetsEverythingAndFreesTheSlotForReuse) {
  SessionTable table(/*shard_count=*/1);
  ASSERT_TRUE(table.Insert(42, Key(1)));
  table.SetSnapshot(42, std::make_shared<ListSnapshot>());
  table.Complete(42, 7, kPublish, 9);
  table.Erase(42);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.Snapshot(42), nullptr);
  EXPECT_EQ(table.KeyOf(42), std::nullopt);
  // The next session takes the slot, with nothing of the last one.
  ASSERT_TRUE(table.Insert(43, Key(2)));
  EXPECT_EQ(table.KeyOf(43), Key(2));
  EXPECT_EQ(table.Snapshot(43), nullptr);
  EXPECT_FALSE(table.Admit(43, Sealed(Key(2), 0), 1, 7, kPublish, Scratch())
                   .cached_code);
}

// The table keeps the session key alone; the keys that open a datagram come
// from the thread's cache of keyed contexts, found by that key. The same id
// with a new key (a new login) must never open with the old keys still
// cached, nor the old key's datagrams open under the new entry.
TEST(SessionTableTest, SameIdWithANewKeyOpensOnlyUnderTheNewKey) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(42, Key(1)));
  ASSERT_EQ(
      table.Admit(42, Sealed(Key(1), 0), 1, 7, kPublish, Scratch()).verdict,
      SessionTable::Admission::kAdmitted);  // Key(1)'s contexts now cached
  table.Erase(42);
  ASSERT_TRUE(table.Insert(42, Key(2)));
  EXPECT_EQ(
      table.Admit(42, Sealed(Key(1), 1), 2, 7, kPublish, Scratch()).verdict,
      SessionTable::Admission::kBadMac);
  SessionTable::Admission admitted =
      table.Admit(42, Sealed(Key(2), 1), 2, 7, kPublish, Scratch());
  EXPECT_EQ(admitted.verdict, SessionTable::Admission::kAdmitted);
  EXPECT_EQ(admitted.key, Key(2));
}

TEST(SessionTableTest, SnapshotIsPerSession) {
  SessionTable table;
  ASSERT_TRUE(table.Insert(1, Key(1)));
  ASSERT_TRUE(table.Insert(2, Key(2)));
  auto snapshot = std::make_shared<ListSnapshot>();
  snapshot->id = 5;
  table.SetSnapshot(1, snapshot);
  EXPECT_EQ(table.Snapshot(1), snapshot);
  EXPECT_EQ(table.Snapshot(2), nullptr);
  table.SetSnapshot(99, snapshot);  // no such session: nothing kept
  EXPECT_EQ(table.Snapshot(99), nullptr);
}

// Threads insert, admit, complete and erase sessions of their own in the
// same shards; each sees only its own entries (TSan checks the locking).
TEST(SessionTableTest, ConcurrentSessionsStayApart) {
  SessionTable table(/*shard_count=*/2);
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        const uint64_t id = static_cast<uint64_t>(round) * kThreads + t + 1;
        const SessionKey key = Key(static_cast<uint8_t>(t + 1));
        if (!table.Insert(id, key)) ++failures;
        const SessionTable::Admission a =
            table.Admit(id, Sealed(key, 0), 1, 7, kPublish, Scratch());
        if (a.verdict != SessionTable::Admission::kAdmitted) ++failures;
        table.Complete(id, 7, kPublish, static_cast<uint8_t>(t));
        if (table.KeyOf(id) != key) ++failures;
        if (round % 2 == 0) table.Erase(id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(table.size(), static_cast<size_t>(kThreads * kRounds / 2));
}

}  // namespace
}  // namespace pcfs
