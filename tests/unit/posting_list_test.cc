#include "core/index/posting_list.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

std::vector<uint32_t> Walk(const PostingList& list) {
  std::vector<uint32_t> ids;
  for (PostingList::Cursor cursor(list); !cursor.done(); cursor.Next()) {
    ids.push_back(cursor.id());
  }
  return ids;
}

// The first id >= target by a cursor's seek, or -1 at the end.
int64_t Seek(const PostingList& list, uint32_t target) {
  PostingList::Cursor cursor(list);
  cursor.SeekAtLeast(target);
  return cursor.done() ? -1 : int64_t{cursor.id()};
}

TEST(PostingListTest, StartsEmpty) {
  PostingList list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(list.heap_bytes(), 0u);
  EXPECT_THAT(Walk(list), IsEmpty());
  EXPECT_EQ(Seek(list, 0), -1);
  EXPECT_FALSE(list.Erase(0));
}

TEST(PostingListTest, HoldsOneIdInline) {
  PostingList list;
  list.Insert(70000);
  EXPECT_EQ(list.size(), 1u);
  EXPECT_EQ(list.heap_bytes(), 0u);
  EXPECT_THAT(Walk(list), ElementsAre(70000u));
  EXPECT_EQ(Seek(list, 5), 70000);
  EXPECT_EQ(Seek(list, 70001), -1);
  EXPECT_TRUE(list.Erase(70000));
  EXPECT_TRUE(list.empty());
  EXPECT_THAT(Walk(list), IsEmpty());
}

TEST(PostingListTest, ErasingAnAbsentIdChangesNothing) {
  PostingList list;
  for (uint32_t id : {10u, 20u, 30u}) list.Insert(id);
  EXPECT_FALSE(list.Erase(5));   // below the first
  EXPECT_FALSE(list.Erase(15));  // between two
  EXPECT_FALSE(list.Erase(31));  // past the last
  EXPECT_THAT(Walk(list), ElementsAre(10u, 20u, 30u));
  EXPECT_EQ(list.size(), 3u);
}

TEST(PostingListTest, GrowsToTheHeapAndComesBackInline) {
  PostingList list;
  std::vector<uint32_t> ids;
  // Gaps of 300 take two varint bytes: 14 ids fill the inline block.
  for (uint32_t i = 0; i < 200; ++i) {
    list.Insert(i * 300);
    ids.push_back(i * 300);
    if (i < 14) {
      EXPECT_EQ(list.heap_bytes(), 0u) << i;
    }
  }
  EXPECT_GT(list.heap_bytes(), 0u);
  EXPECT_THAT(Walk(list), ElementsAreArray(ids));
  // Erase from the back, the front and the middle until one block is left.
  while (ids.size() > 5) {
    const size_t at = ids.size() % 3 == 0   ? 0
                      : ids.size() % 3 == 1 ? ids.size() - 1
                                            : ids.size() / 2;
    ASSERT_TRUE(list.Erase(ids[at]));
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(at));
    ASSERT_EQ(list.size(), ids.size());
  }
  EXPECT_EQ(list.heap_bytes(), 0u);
  EXPECT_THAT(Walk(list), ElementsAreArray(ids));
  // And out again, inserting in the middle this time.
  for (uint32_t i = 0; i < 100; ++i) {
    list.Insert(i * 300 + 1);
    ids.insert(std::lower_bound(ids.begin(), ids.end(), i * 300 + 1),
               i * 300 + 1);
  }
  EXPECT_GT(list.heap_bytes(), 0u);
  EXPECT_THAT(Walk(list), ElementsAreArray(ids));
}

TEST(PostingListTest, ReusesAnErasedId) {
  PostingList list;
  for (uint32_t id = 0; id < 100; ++id) list.Insert(id);
  ASSERT_TRUE(list.Erase(42));
  ASSERT_TRUE(list.Erase(99));
  list.Insert(42);
  list.Insert(99);
  std::vector<uint32_t> all(100);
  for (uint32_t id = 0; id < 100; ++id) all[id] = id;
  EXPECT_THAT(Walk(list), ElementsAreArray(all));
  EXPECT_EQ(Seek(list, 42), 42);
  EXPECT_EQ(Seek(list, 99), 99);
}

TEST(PostingListTest, ClearLetsGoOfTheHeap) {
  PostingList list;
  for (uint32_t id = 0; id < 1000; ++id) list.Insert(id * 7);
  ASSERT_GT(list.heap_bytes(), 0u);
  list.Clear();
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.heap_bytes(), 0u);
  EXPECT_THAT(Walk(list), IsEmpty());
  list.Insert(3);
  EXPECT_THAT(Walk(list), ElementsAre(3u));
}

TEST(PostingListTest, HeapRoomStaysCloseToTheBlocksHeld) {
  PostingList list;
  // Consecutive ids: one-byte gaps, 27 ids a block, 371 blocks.
  for (uint32_t id = 0; id < 10000; ++id) list.Insert(id);
  const size_t blocks = (10000 + 26) / 27;
  // Growth by an eighth, not doubling (which would hold 512 blocks).
  EXPECT_LE(list.heap_bytes(), blocks * 32 * 6 / 5);
  EXPECT_GE(list.heap_bytes(), blocks * 32);
  // Shrinks as ids go.
  for (uint32_t id = 0; id < 9000; ++id) ASSERT_TRUE(list.Erase(id));
  EXPECT_LE(list.heap_bytes(), 38 * 32 * 6 / 5);
  EXPECT_EQ(Walk(list).size(), 1000u);
}

// Random inserts and erases, held against a std::set, walks and seeks
// checked all along.
TEST(PostingListTest, AgreesWithASetUnderRandomChanges) {
  std::mt19937 random(7);
  for (uint32_t range : {40u, 2000u, 1u << 20}) {
    PostingList list;
    std::set<uint32_t> model;
    for (int step = 0; step < 4000; ++step) {
      const uint32_t id = random() % range;
      if (random() % 3 == 0) {
        EXPECT_EQ(list.Erase(id), model.erase(id) == 1) << id;
      } else if (model.insert(id).second) {
        list.Insert(id);
      }
      ASSERT_EQ(list.size(), model.size());
      if (step % 97 == 0) {
        ASSERT_THAT(Walk(list), ElementsAreArray(model.begin(), model.end()));
        const uint32_t target = random() % range;
        auto it = model.lower_bound(target);
        EXPECT_EQ(Seek(list, target), it == model.end() ? -1 : int64_t{*it});
      }
    }
    EXPECT_THAT(Walk(list), ElementsAreArray(model.begin(), model.end()));
  }
}

// Every change checked at once, with gaps around the varint size steps
// (127/128, 16383/16384), so that splitting and joining gaps in place
// changes their byte counts, and with runs of consecutive ids, so that
// blocks fill, split and join.
TEST(PostingListTest, EveryChangeAgreesWithASetAcrossVarintSizes) {
  std::mt19937 random(11);
  const std::vector<uint32_t> steps = {1, 2, 127, 128, 129, 16383, 16384};
  for (int round = 0; round < 6; ++round) {
    PostingList list;
    std::set<uint32_t> model;
    std::vector<uint32_t> pool;
    uint32_t at = 0;
    for (int i = 0; i < 300; ++i) {
      at += steps[random() % steps.size()];
      pool.push_back(at);
    }
    for (int step = 0; step < 3000; ++step) {
      const uint32_t id = pool[random() % pool.size()];
      if (random() % 2 == 0) {
        ASSERT_EQ(list.Erase(id), model.erase(id) == 1) << id;
      } else if (model.insert(id).second) {
        list.Insert(id);
      }
      ASSERT_EQ(list.size(), model.size());
      ASSERT_THAT(Walk(list), ElementsAreArray(model.begin(), model.end()))
          << "round " << round << " step " << step;
    }
  }
}

// Erasing inside a block joins it with the next one once both fit in three
// quarters of one: erasing two of every three ids, from the back, leaves
// blocks of 18 ids, half as many as the 27 a full block holds.
TEST(PostingListTest, ErasingJoinsABlockWithTheNextOne) {
  PostingList list;
  for (uint32_t id = 0; id < 2700; ++id) list.Insert(id);  // 100 full blocks
  const size_t full = list.heap_bytes();
  std::vector<uint32_t> kept;
  for (uint32_t id = 2700; id-- > 0;) {
    if (id % 3 == 0) {
      kept.insert(kept.begin(), id);
    } else {
      ASSERT_TRUE(list.Erase(id)) << id;
    }
  }
  EXPECT_THAT(Walk(list), ElementsAreArray(kept));
  EXPECT_LE(list.heap_bytes(), full * 2 / 3);
  EXPECT_EQ(Seek(list, 1001), 1002);
}

}  // namespace
}  // namespace pcfs
