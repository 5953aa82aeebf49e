// CRC32C against published check values (RFC 3720 appendix B.4 and the
// common "123456789" check), and extension over split input.
#include "core/base/crc32c.h"

#include <string>

#include "gtest/gtest.h"

namespace pcfs {
namespace {

TEST(Crc32cTest, StandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("a"), 0xC1D04330u);
}

TEST(Crc32cTest, Rfc3720Vectors) {
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  std::string descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(descending), 0x113FDB5Cu);
}

TEST(Crc32cTest, ExtendingEqualsOneRunAtEverySplit) {
  const std::string text = "P hans 7 0123456789abcdef name with spaces.txt";
  for (size_t split = 0; split <= text.size(); ++split) {
    EXPECT_EQ(Crc32cExtend(Crc32c(text.substr(0, split)), text.substr(split)),
              Crc32c(text))
        << "split at " << split;
  }
}

TEST(Crc32cTest, OneChangedCharacterChangesTheChecksum) {
  const std::string text = "P hans 1234 abc x.txt";
  for (size_t i = 0; i < text.size(); ++i) {
    std::string changed = text;
    changed[i] = static_cast<char>(changed[i] ^ 0x01);
    EXPECT_NE(Crc32c(changed), Crc32c(text)) << "at " << i;
  }
}

}  // namespace
}  // namespace pcfs
