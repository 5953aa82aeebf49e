#include "core/auth/ticket_key_cache.h"

#include <cstdint>
#include <random>
#include <vector>

#include "core/auth/ticket.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

SessionKey KeyNumbered(uint64_t n) {
  SessionKey key{};
  for (size_t i = 0; i < key.size(); ++i) {
    key[i] = static_cast<uint8_t>((n >> (8 * (i % 8))) + i);
  }
  return key;
}

HmacSha256Key Derived(const SessionKey& key) {
  return TicketMacKey(TicketKeyFor(key));
}

// Ids as the registry draws them: random, the low bits the shard.
std::vector<uint64_t> SessionIds(size_t count, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::vector<uint64_t> ids;
  ids.reserve(count);
  constexpr uint64_t kShardMask = 63;
  while (ids.size() < count) {
    const uint64_t id = (random() & ~kShardMask) | (ids.size() & kShardMask);
    if (id != 0) ids.push_back(id);
  }
  return ids;
}

TEST(TicketKeyCacheTest, GivesTheDerivedStatesAndKeepsThem) {
  TicketKeyCache cache;
  const SessionKey key = KeyNumbered(7);
  EXPECT_EQ(cache.MacKeyOf(42, key), Derived(key));
  EXPECT_EQ(cache.derivations(), 1u);
  EXPECT_EQ(cache.MacKeyOf(42, key), Derived(key));
  EXPECT_EQ(cache.derivations(), 1u);  // kept
}

TEST(TicketKeyCacheTest, AnIdWithAnotherKeyIsDerivedAgain) {
  TicketKeyCache cache;
  const SessionKey first = KeyNumbered(1), second = KeyNumbered(2);
  ASSERT_NE(Derived(first), Derived(second));
  EXPECT_EQ(cache.MacKeyOf(42, first), Derived(first));
  EXPECT_EQ(cache.MacKeyOf(42, second), Derived(second));
  EXPECT_EQ(cache.derivations(), 2u);
  // The new key replaced the old one's entry rather than taking another.
  EXPECT_EQ(cache.MacKeyOf(42, second), Derived(second));
  EXPECT_EQ(cache.MacKeyOf(42, first), Derived(first));
  EXPECT_EQ(cache.derivations(), 3u);
}

TEST(TicketKeyCacheTest, SessionIdZeroIsNeverKept) {
  TicketKeyCache cache;
  const SessionKey key = KeyNumbered(3);
  EXPECT_EQ(cache.MacKeyOf(0, key), Derived(key));
  EXPECT_EQ(cache.MacKeyOf(0, key), Derived(key));
  EXPECT_EQ(cache.derivations(), 2u);
}

// A thread whose GETs name a thousand holders in turn: each is derived
// once, and later rounds find nearly all (17 derived again a round with
// these ids: one set drew 17 of them). The direct-mapped table of 1,024
// this replaced derived about 600 again every round: each id that shared
// its slot.
TEST(TicketKeyCacheTest, AThousandHoldersInTurnStayCached) {
  TicketKeyCache cache;
  const std::vector<uint64_t> ids = SessionIds(1000, 20261205);
  for (size_t i = 0; i < ids.size(); ++i) {
    cache.MacKeyOf(ids[i], KeyNumbered(i));
  }
  ASSERT_EQ(cache.derivations(), ids.size());
  for (int round = 0; round < 3; ++round) {
    const uint64_t before = cache.derivations();
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_EQ(cache.MacKeyOf(ids[i], KeyNumbered(i)),
                Derived(KeyNumbered(i)));
    }
    EXPECT_LE(cache.derivations() - before, 20u) << "round " << round;
  }
}

// More holders than entries: every answer is still the right one.
TEST(TicketKeyCacheTest, PastItsCapacityItStillAnswersRight) {
  TicketKeyCache cache;
  const size_t count = 3 * TicketKeyCache::kSets * TicketKeyCache::kWays;
  const std::vector<uint64_t> ids = SessionIds(count, 7);
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_EQ(cache.MacKeyOf(ids[i], KeyNumbered(i)),
                Derived(KeyNumbered(i)));
    }
  }
}

}  // namespace
}  // namespace pcfs
