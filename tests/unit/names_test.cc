#include "core/base/names.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ::testing::HasSubstr;

// The message of a refused input, or "" if it was accepted.
std::string Refusal(const absl::Status& status) {
  if (status.ok()) return "";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

// ---- File names ----------------------------------------------------------

TEST(ValidateFileNameTest, AcceptsOrdinaryNames) {
  EXPECT_TRUE(ValidateFileName("a").ok());
  EXPECT_TRUE(ValidateFileName("report.pdf").ok());
  EXPECT_TRUE(ValidateFileName("my file (1).txt").ok());
  EXPECT_TRUE(ValidateFileName(".hidden").ok());
  EXPECT_TRUE(ValidateFileName("...").ok());
  EXPECT_TRUE(ValidateFileName("a..b").ok());
}

TEST(ValidateFileNameTest, AcceptsMultibyteUtf8) {
  EXPECT_TRUE(ValidateFileName("caf\xC3\xA9.txt").ok());           // é
  EXPECT_TRUE(ValidateFileName("\xE6\x97\xA5\xE6\x9C\xAC").ok());  // 日本
  EXPECT_TRUE(ValidateFileName("\xF0\x9F\x98\x80.png").ok());      // U+1F600
  EXPECT_TRUE(ValidateFileName("\xC2\xA0").ok());  // U+00A0, just past C1
}

TEST(ValidateFileNameTest, RefusesEmpty) {
  EXPECT_EQ(Refusal(ValidateFileName("")), "file name is empty");
}

TEST(ValidateFileNameTest, AcceptsExactly255Bytes) {
  EXPECT_TRUE(ValidateFileName(std::string(255, 'x')).ok());
}

TEST(ValidateFileNameTest, RefusesMoreThan255BytesWithoutTruncating) {
  EXPECT_THAT(Refusal(ValidateFileName(std::string(256, 'x'))),
              HasSubstr("file name is longer than 255 bytes"));
}

TEST(ValidateFileNameTest, CountsBytesNotCharacters) {
  // 128 two-byte characters: 128 characters but 256 bytes.
  std::string name;
  for (int i = 0; i < 128; ++i) name += "\xC3\xA9";
  EXPECT_THAT(Refusal(ValidateFileName(name)),
              HasSubstr("longer than 255 bytes"));
}

TEST(ValidateFileNameTest, RefusesDotAndDotDot) {
  EXPECT_THAT(Refusal(ValidateFileName(".")), HasSubstr("\".\" or \"..\""));
  EXPECT_THAT(Refusal(ValidateFileName("..")), HasSubstr("\".\" or \"..\""));
}

TEST(ValidateFileNameTest, RefusesSlash) {
  EXPECT_THAT(Refusal(ValidateFileName("dir/file")), HasSubstr("'/'"));
  EXPECT_THAT(Refusal(ValidateFileName("/")), HasSubstr("'/'"));
  EXPECT_THAT(Refusal(ValidateFileName("../etc")), HasSubstr("'/'"));
}

TEST(ValidateFileNameTest, RefusesNul) {
  EXPECT_THAT(Refusal(ValidateFileName(std::string("a\0b", 3))),
              HasSubstr("NUL"));
}

TEST(ValidateFileNameTest, RefusesC0Controls) {
  EXPECT_THAT(Refusal(ValidateFileName("a\tb")),
              HasSubstr("control character (U+0009"));
  EXPECT_THAT(Refusal(ValidateFileName("line\n")),
              HasSubstr("control character (U+000A"));
  EXPECT_THAT(Refusal(ValidateFileName("\x1F")),
              HasSubstr("control character (U+001F"));
}

TEST(ValidateFileNameTest, RefusesDel) {
  EXPECT_THAT(Refusal(ValidateFileName("a\x7F")),
              HasSubstr("control character (U+007F"));
}

TEST(ValidateFileNameTest, RefusesC1Controls) {
  EXPECT_THAT(Refusal(ValidateFileName("a\xC2\x80")),
              HasSubstr("control character (U+0080"));
  EXPECT_THAT(Refusal(ValidateFileName("\xC2\x9F")),
              HasSubstr("control character (U+009F"));
}

TEST(ValidateFileNameTest, RefusesInvalidUtf8) {
  EXPECT_THAT(Refusal(ValidateFileName("abc\xFF")),
              HasSubstr("file name is not valid UTF-8"));
  EXPECT_THAT(Refusal(ValidateFileName("\xC3")),  // truncated sequence
              HasSubstr("not valid UTF-8"));
}

TEST(ValidateFileNameTest, MessageNamesTheOffendingPosition) {
  EXPECT_THAT(Refusal(ValidateFileName("ab\x01")), HasSubstr("offset 2"));
}

// ---- Search patterns -----------------------------------------------------

TEST(ValidateSearchPatternTest, AcceptsEmpty) {
  EXPECT_TRUE(ValidateSearchPattern("").ok());
}

TEST(ValidateSearchPatternTest, AcceptsFileNameFragments) {
  EXPECT_TRUE(ValidateSearchPattern(".txt").ok());
  EXPECT_TRUE(ValidateSearchPattern("ar").ok());
  // No file name, but a substring of many.
  EXPECT_TRUE(ValidateSearchPattern(".").ok());
  EXPECT_TRUE(ValidateSearchPattern("..").ok());
  EXPECT_FALSE(ValidateFileName(".").ok());
  EXPECT_FALSE(ValidateFileName("..").ok());
}

TEST(ValidateSearchPatternTest, RefusesWhatAFileNameRefusesNamingThePattern) {
  EXPECT_EQ(Refusal(ValidateSearchPattern("a/b")),
            "search pattern contains '/' (at offset 1)");
  EXPECT_THAT(Refusal(ValidateSearchPattern(std::string(256, 'x'))),
              HasSubstr("search pattern is longer than 255 bytes"));
  EXPECT_THAT(Refusal(ValidateSearchPattern("\x07")),
              HasSubstr("control character"));
}

// ---- User names ----------------------------------------------------------

TEST(ValidateUserNameTest, AcceptsTheAllowedCharacters) {
  EXPECT_TRUE(ValidateUserName("luke").ok());
  EXPECT_TRUE(ValidateUserName("Darth.Vader_2-x").ok());
  EXPECT_TRUE(ValidateUserName("0").ok());
  EXPECT_TRUE(ValidateUserName("...").ok());
}

TEST(ValidateUserNameTest, RefusesEmpty) {
  EXPECT_EQ(Refusal(ValidateUserName("")), "user name is empty");
}

TEST(ValidateUserNameTest, AcceptsExactly64Characters) {
  EXPECT_TRUE(ValidateUserName(std::string(64, 'u')).ok());
}

TEST(ValidateUserNameTest, RefusesMoreThan64Characters) {
  EXPECT_THAT(Refusal(ValidateUserName(std::string(65, 'u'))),
              HasSubstr("user name is longer than 64 characters"));
}

TEST(ValidateUserNameTest, RefusesSpace) {
  EXPECT_THAT(Refusal(ValidateUserName("han solo")),
              HasSubstr("contains ' ' at offset 3"));
}

TEST(ValidateUserNameTest, RefusesPunctuationOutsideTheSet) {
  for (const char* user : {"a@b", "a/b", "a*b", "a+b", "a:b", "a$b"}) {
    EXPECT_THAT(Refusal(ValidateUserName(user)), HasSubstr("only letters"))
        << user;
  }
}

TEST(ValidateUserNameTest, RefusesNonAsciiShowingTheByteInHex) {
  EXPECT_THAT(Refusal(ValidateUserName("jos\xC3\xA9")), HasSubstr("byte 0xC3"));
  EXPECT_THAT(Refusal(ValidateUserName("a\nb")), HasSubstr("byte 0x0A"));
}

// ---- Passwords -----------------------------------------------------------

TEST(ValidatePasswordTest, AcceptsTheClassicSamples) {
  for (const char* password : {"falcon*solo", "do*!@#dedo", "(jedimaster)",
                               "darkside_%$run", "a=b+c"}) {
    EXPECT_TRUE(ValidatePassword(password).ok()) << password;
  }
}

TEST(ValidatePasswordTest, AcceptsSpacesAndUnicode) {
  EXPECT_TRUE(ValidatePassword("correct horse battery staple").ok());
  EXPECT_TRUE(ValidatePassword(" leading and trailing ").ok());
  EXPECT_TRUE(ValidatePassword("p\xC3\xA4ssw\xC3\xB6rd").ok());
}

TEST(ValidatePasswordTest, RefusesEmpty) {
  EXPECT_EQ(Refusal(ValidatePassword("")), "password is empty");
}

TEST(ValidatePasswordTest, AcceptsExactly256Bytes) {
  EXPECT_TRUE(ValidatePassword(std::string(256, 'p')).ok());
}

TEST(ValidatePasswordTest, RefusesMoreThan256Bytes) {
  EXPECT_THAT(Refusal(ValidatePassword(std::string(257, 'p'))),
              HasSubstr("password is longer than 256 bytes"));
}

TEST(ValidatePasswordTest, RefusesControlCharacters) {
  EXPECT_THAT(Refusal(ValidatePassword("tab\there")),
              HasSubstr("control character (U+0009)"));
  EXPECT_THAT(Refusal(ValidatePassword("del\x7F")),
              HasSubstr("control character (U+007F)"));
  EXPECT_THAT(Refusal(ValidatePassword("c1\xC2\x85")),
              HasSubstr("control character (U+0085)"));
  EXPECT_THAT(Refusal(ValidatePassword(std::string("nul\0", 4))),
              HasSubstr("control character (U+0000)"));
}

TEST(ValidatePasswordTest, RefusesInvalidUtf8) {
  EXPECT_EQ(Refusal(ValidatePassword("secret\xC0\xAF")),
            "password is not valid UTF-8");
}

TEST(ValidatePasswordTest, MessageNeverQuotesThePassword) {
  const std::string password = "hunter2\x01";
  EXPECT_FALSE(
      absl::StrContains(Refusal(ValidatePassword(password)), "hunter2"));
}

// ---- UTF-8 ---------------------------------------------------------------

TEST(IsValidUtf8Test, AcceptsEmptyAndAscii) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii ~"));
}

TEST(IsValidUtf8Test, AcceptsEachEncodingLengthAtItsLimits) {
  EXPECT_TRUE(IsValidUtf8("\x7F"));              // U+007F
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));          // U+0080
  EXPECT_TRUE(IsValidUtf8("\xDF\xBF"));          // U+07FF
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));      // U+0800
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));      // U+E000
  EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));      // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
}

TEST(IsValidUtf8Test, RefusesOverlongEncodings) {
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));  // '/' in two bytes
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xE0\x9F\xBF"));      // U+07FF in three
  EXPECT_FALSE(IsValidUtf8("\xF0\x8F\xBF\xBF"));  // U+FFFF in four
}

TEST(IsValidUtf8Test, RefusesSurrogates) {
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));  // U+D800
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));  // U+DFFF
}

TEST(IsValidUtf8Test, RefusesCodePointsAboveTheUnicodeRange) {
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(IsValidUtf8Test, RefusesStrayContinuationBytes) {
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("a\xBF"));
}

TEST(IsValidUtf8Test, RefusesTruncatedSequences) {
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));
  EXPECT_FALSE(IsValidUtf8("\xE2\x82z"));  // third byte not a continuation
}

}  // namespace
}  // namespace pcfs
