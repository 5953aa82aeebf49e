// core/base/zeroed_array.h: zeroed, page-aligned tables from mmap.
#include "core/base/zeroed_array.h"

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace pcfs {
namespace {

struct alignas(64) Slot {
  uint64_t id = 0;
  std::array<uint64_t, 7> values{};
};

TEST(ZeroedArrayTest, StartsAllZeroAndKeepsWhatIsWritten) {
  constexpr size_t kSize = 1 << 16;  // 4 MiB of slots, 1,024 pages
  ZeroedArray<Slot> slots(kSize);
  ASSERT_EQ(slots.size(), kSize);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(slots.data()) % 4096, 0u);
  for (size_t i : {size_t{0}, size_t{1}, kSize / 2, kSize - 1}) {
    EXPECT_EQ(slots[i].id, 0u) << i;
    for (uint64_t value : slots[i].values) EXPECT_EQ(value, 0u) << i;
  }
  slots[kSize - 1].id = 7;
  slots[3].values[6] = 9;
  const ZeroedArray<Slot>& view = slots;
  EXPECT_EQ(view[kSize - 1].id, 7u);
  EXPECT_EQ(view[3].values[6], 9u);
  EXPECT_EQ(view[4].values[6], 0u);
}

TEST(ZeroedArrayTest, PointersStartNull) {
  ZeroedArray<std::string*> chunks(16384);
  EXPECT_EQ(chunks[0], nullptr);
  EXPECT_EQ(chunks[16383], nullptr);
}

TEST(ZeroedArrayTest, MovesItsPagesAndEmptiesTheSource) {
  ZeroedArray<uint8_t> bytes(100);
  bytes[99] = 1;
  const uint8_t* data = bytes.data();
  ZeroedArray<uint8_t> moved(std::move(bytes));
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(moved.size(), 100u);
  EXPECT_EQ(moved[99], 1);
  EXPECT_EQ(bytes.size(), 0u);  // NOLINT(bugprone-use-after-move): checked
  EXPECT_EQ(bytes.data(), nullptr);

  ZeroedArray<uint8_t> other(10);
  other = std::move(moved);
  EXPECT_EQ(other.size(), 100u);
  EXPECT_EQ(other[99], 1);
}

TEST(ZeroedArrayTest, AnEmptyArrayMapsNothing) {
  ZeroedArray<uint64_t> none(0);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.data(), nullptr);
}

}  // namespace
}  // namespace pcfs
