// The byte order of core/base/big_endian.h: known bytes, round trips, and
// loads and stores at every alignment.
#include "core/base/big_endian.h"

#include <array>
#include <cstdint>

#include "gtest/gtest.h"

namespace pcfs {
namespace {

TEST(BigEndianTest, StoresMostSignificantByteFirst) {
  std::array<uint8_t, 8> bytes{};
  StoreBigEndian(uint64_t{0x0102030405060708}, bytes.data());
  EXPECT_EQ(bytes, (std::array<uint8_t, 8>{1, 2, 3, 4, 5, 6, 7, 8}));
  std::array<uint8_t, 4> four{};
  StoreBigEndian(uint32_t{0xdeadbeef}, four.data());
  EXPECT_EQ(four, (std::array<uint8_t, 4>{0xde, 0xad, 0xbe, 0xef}));
  std::array<uint8_t, 2> two{};
  StoreBigEndian(uint16_t{0x5043}, two.data());  // the protocol's magic, "PC"
  EXPECT_EQ(two, (std::array<uint8_t, 2>{'P', 'C'}));
  uint8_t one = 0;
  StoreBigEndian(uint8_t{0x7f}, &one);
  EXPECT_EQ(one, 0x7f);
}

TEST(BigEndianTest, LoadsWhatItStores) {
  const std::array<uint8_t, 8> bytes{0x80, 0, 0, 0, 0, 0, 0, 0xff};
  EXPECT_EQ(LoadBigEndian<uint64_t>(bytes.data()), 0x80000000000000ffULL);
  EXPECT_EQ(LoadBigEndian<uint32_t>(bytes.data() + 4), 0x000000ffU);
  EXPECT_EQ(LoadBigEndian<uint16_t>(bytes.data()), 0x8000);
  EXPECT_EQ(LoadBigEndian<uint8_t>(bytes.data() + 7), 0xff);
  for (uint64_t v :
       {uint64_t{0}, uint64_t{1}, ~uint64_t{0}, uint64_t{0x0123456789abcdef}}) {
    std::array<uint8_t, 8> out{};
    StoreBigEndian(v, out.data());
    EXPECT_EQ(LoadBigEndian<uint64_t>(out.data()), v);
  }
}

TEST(BigEndianTest, NeedsNoAlignment) {
  // Every offset of a buffer, so that a load or store at an odd address is
  // covered (UBSan's alignment check runs in the sanitizer build).
  std::array<uint8_t, 16> buffer{};
  for (size_t at = 0; at + 8 <= buffer.size(); ++at) {
    buffer.fill(0);
    StoreBigEndian(uint64_t{0x1122334455667788}, buffer.data() + at);
    EXPECT_EQ(buffer[at], 0x11) << at;
    EXPECT_EQ(buffer[at + 7], 0x88) << at;
    EXPECT_EQ(LoadBigEndian<uint64_t>(buffer.data() + at), 0x1122334455667788U)
        << at;
  }
}

TEST(BigEndianTest, SwapsAtCompileTime) {
  static_assert(ByteSwap(uint16_t{0x1234}) == 0x3412);
  static_assert(ByteSwap(uint32_t{0x12345678}) == 0x78563412);
  static_assert(ByteSwap(uint64_t{0x0102030405060708}) == 0x0807060504030201);
  static_assert(HostToBigEndian(HostToBigEndian(uint32_t{42})) == 42);
}

}  // namespace
}  // namespace pcfs
