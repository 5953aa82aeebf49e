#include "core/auth/hmac_sha256.h"

#include <array>
#include <cstring>
#include <span>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

std::string Hex(const IncrementalHmacSha256::Digest& digest) {
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

// RFC 4231, test case 2: a key shorter than the block.
TEST(IncrementalHmacSha256Test, MatchesRfc4231ShortKey) {
  IncrementalHmacSha256 hmac(absl::string_view("Jefe"));
  hmac.Update(absl::string_view("what do ya want "));
  hmac.Update(absl::string_view("for nothing?"));
  EXPECT_EQ(Hex(hmac.Finish()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// RFC 4231, test case 6: a 131-byte key, hashed before use.
TEST(IncrementalHmacSha256Test, MatchesRfc4231KeyLongerThanABlock) {
  IncrementalHmacSha256 hmac(std::string(131, '\xaa'));
  hmac.Update(absl::string_view(
      "Test Using Larger Than Block-Size Key - Hash Key First"));
  EXPECT_EQ(Hex(hmac.Finish()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

// RFC 4231, test case 1: 20 bytes of 0x0b, "Hi There", fed byte by byte.
TEST(IncrementalHmacSha256Test, PiecesGiveTheSameMacAsTheWhole) {
  IncrementalHmacSha256 hmac(std::string(20, '\x0b'));
  for (char c : std::string("Hi There")) hmac.Update(absl::string_view(&c, 1));
  EXPECT_EQ(Hex(hmac.Finish()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

// The keyed states give the MAC the key gives, for the RFC 4231 keys of
// each kind: shorter than a block (test case 2), a whole block, longer
// (test case 6, hashed first), and empty.
TEST(HmacSha256KeyTest, StartsTheSameMacAsItsKey) {
  const std::string keys[] = {"Jefe", std::string(64, '\x0b'),
                              std::string(131, '\xaa'), ""};
  for (const std::string& key : keys) {
    SCOPED_TRACE(key.size());
    const HmacSha256Key keyed(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(key.data()), key.size()));
    IncrementalHmacSha256 from_states(keyed);
    IncrementalHmacSha256 from_key((absl::string_view(key)));
    // More than a block, in two pieces, so the resumed byte count matters.
    const std::string message(100, 'm');
    from_states.Update(absl::string_view(message).substr(0, 30));
    from_states.Update(absl::string_view(message).substr(30));
    from_key.Update(absl::string_view(message));
    EXPECT_EQ(Hex(from_states.Finish()), Hex(from_key.Finish()));
  }
  // And the RFC's own answer for test case 2.
  const HmacSha256Key jefe(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("Jefe"), 4));
  IncrementalHmacSha256 hmac(jefe);
  hmac.Update(absl::string_view("what do ya want for nothing?"));
  EXPECT_EQ(Hex(hmac.Finish()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacSha256KeyTest, DiffersBetweenKeys) {
  const uint8_t a[] = {1, 2, 3};
  const uint8_t b[] = {1, 2, 4};
  EXPECT_EQ(HmacSha256Key(a), HmacSha256Key(a));
  EXPECT_NE(HmacSha256Key(a), HmacSha256Key(b));
  EXPECT_NE(HmacSha256Key(a), HmacSha256Key());
}

// RFC 5869, test case 3: empty salt and info; T(1) is the first 32 bytes
// of its OKM.
TEST(HkdfSha256Test, MatchesRfc5869EmptySaltAndInfo) {
  const std::string ikm(22, '\x0b');
  const HkdfSha256 hkdf(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(ikm.data()), ikm.size()));
  IncrementalHmacSha256::Digest okm{};
  hkdf.Expand("", okm);
  EXPECT_EQ(Hex(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d");
  std::array<uint8_t, 16> half{};
  hkdf.Expand("", half);
  EXPECT_EQ(std::memcmp(half.data(), okm.data(), half.size()), 0);
}

}  // namespace
}  // namespace pcfs
