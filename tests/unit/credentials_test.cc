#include "core/auth/credentials.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// password "falcon*solo", salt "pcfs-test-salt16", 4096 iterations; computed
// with Python's hashlib (pbkdf2_hmac, hmac), independently of this code.
constexpr absl::string_view kFalconVerifier =
    "SCRAM-SHA-256$4096:cGNmcy10ZXN0LXNhbHQxNg==$"
    "TQX9U5p0azyD29ItWz4Nul9j+czYgo5itKaKYq0s8po=:"
    "fBgvCv1gNZ9y+MaHnyWCOI/OLc8VGAOtO3Zw3CQTJAk=";

// The password stored for `user`, or "<absent>" / "<verifier>".
std::string PasswordOf(const CredentialTable& table, absl::string_view user) {
  const Credential* credential = table.Find(user);
  if (credential == nullptr) return "<absent>";
  if (credential->is_verifier) return "<verifier>";
  return credential->password;
}

// The error message of parsing `text`, or "<ok>".
std::string ParseError(absl::string_view text) {
  absl::StatusOr<CredentialTable> table = CredentialTable::Parse(text);
  if (table.ok()) return "<ok>";
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(table.status().message());
}

TEST(CredentialTableTest, ParsesTheClassicSamples) {
  absl::StatusOr<CredentialTable> table = CredentialTable::Parse(
      "hans hanspass\n"
      "luke falcon*solo\n"
      "leia do*!@#dedo\n"
      "yoda (jedimaster)\n"
      "vader darkside_%$run\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 5u);
  EXPECT_EQ(PasswordOf(*table, "hans"), "hanspass");
  EXPECT_EQ(PasswordOf(*table, "luke"), "falcon*solo");
  EXPECT_EQ(PasswordOf(*table, "leia"), "do*!@#dedo");
  EXPECT_EQ(PasswordOf(*table, "yoda"), "(jedimaster)");
  EXPECT_EQ(PasswordOf(*table, "vader"), "darkside_%$run");
}

TEST(CredentialTableTest, SecretIsTheRestOfTheLineSpacesIncluded) {
  absl::StatusOr<CredentialTable> table =
      CredentialTable::Parse("han never tell me the odds\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(PasswordOf(*table, "han"), "never tell me the odds");
}

TEST(CredentialTableTest, SkipsBlankAndCommentLines) {
  absl::StatusOr<CredentialTable> table = CredentialTable::Parse(
      "# the rebels\n\n   \nhans hanspass\n\n#luke falcon*solo\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(PasswordOf(*table, "luke"), "<absent>");
}

TEST(CredentialTableTest, StripsTheCarriageReturnOfCrlfLines) {
  absl::StatusOr<CredentialTable> table =
      CredentialTable::Parse("hans hanspass\r\n\r\nleia do*!@#dedo\r\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(PasswordOf(*table, "hans"), "hanspass");
  EXPECT_EQ(PasswordOf(*table, "leia"), "do*!@#dedo");
}

TEST(CredentialTableTest, AcceptsAMissingFinalNewline) {
  absl::StatusOr<CredentialTable> table =
      CredentialTable::Parse("hans hanspass\nyoda (jedimaster)");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(PasswordOf(*table, "yoda"), "(jedimaster)");
}

TEST(CredentialTableTest, EmptyTextIsAnEmptyTable) {
  absl::StatusOr<CredentialTable> table = CredentialTable::Parse("");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 0u);
}

TEST(CredentialTableTest, DuplicateUserNamesBothLines) {
  EXPECT_EQ(ParseError("hans hanspass\n# again\nhans other\n"),
            "line 3: duplicate user 'hans' (first on line 1)");
}

TEST(CredentialTableTest, LineNumbersCountSkippedAndCrlfLines) {
  EXPECT_THAT(ParseError("# users\r\n\r\nhans hanspass\r\nbroken\r\n"),
              HasSubstr("line 4: "));
}

TEST(CredentialTableTest, RefusesALineWithoutASecret) {
  EXPECT_THAT(ParseError("hans hanspass\nluke\n"),
              AllOf(HasSubstr("line 2: "), HasSubstr("USER SECRET")));
}

TEST(CredentialTableTest, RefusesAnEmptySecret) {
  EXPECT_THAT(ParseError("hans \n"),
              AllOf(HasSubstr("line 1: "), HasSubstr("password is empty")));
}

TEST(CredentialTableTest, RefusesAMalformedUserName) {
  EXPECT_THAT(ParseError("ha$ns hanspass\n"),
              AllOf(HasSubstr("line 1: "), HasSubstr("user name")));
}

TEST(CredentialTableTest, RefusesALeadingSpace) {
  EXPECT_THAT(ParseError(" hans hanspass\n"),
              AllOf(HasSubstr("line 1: "), HasSubstr("user name is empty")));
}

TEST(CredentialTableTest, AcceptsAUserNameOfTheMaximumLength) {
  const std::string user(64, 'u');
  absl::StatusOr<CredentialTable> table =
      CredentialTable::Parse(absl::StrCat(user, " hanspass\n"));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(PasswordOf(*table, user), "hanspass");
}

TEST(CredentialTableTest, RefusesAnOverLongUserNameInsteadOfTruncating) {
  EXPECT_THAT(ParseError(absl::StrCat(std::string(65, 'u'), " hanspass\n")),
              AllOf(HasSubstr("line 1: "), HasSubstr("longer than 64")));
}

TEST(CredentialTableTest, AcceptsAPasswordOfTheMaximumLength) {
  const std::string password(256, 'p');
  absl::StatusOr<CredentialTable> table =
      CredentialTable::Parse(absl::StrCat("hans ", password));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(PasswordOf(*table, "hans"), password);
}

TEST(CredentialTableTest, RefusesAnOverLongPasswordInsteadOfTruncating) {
  EXPECT_THAT(ParseError(absl::StrCat("hans ", std::string(257, 'p'))),
              AllOf(HasSubstr("line 1: "), HasSubstr("longer than 256")));
}

TEST(CredentialTableTest, RefusesAControlCharacterInAPassword) {
  EXPECT_THAT(ParseError("hans hans\tpass\n"),
              AllOf(HasSubstr("line 1: "), HasSubstr("control character"),
                    Not(HasSubstr("hans\tpass"))));
}

TEST(CredentialTableTest, ParsesAVerifierLine) {
  absl::StatusOr<CredentialTable> table =
      CredentialTable::Parse(absl::StrCat("luke ", kFalconVerifier, "\n"));
  ASSERT_TRUE(table.ok()) << table.status();
  const Credential* luke = table->Find("luke");
  ASSERT_NE(luke, nullptr);
  ASSERT_TRUE(luke->is_verifier);
  EXPECT_EQ(luke->verifier.iterations, 4096u);
  EXPECT_EQ(std::string(luke->verifier.salt.begin(), luke->verifier.salt.end()),
            "pcfs-test-salt16");
  EXPECT_EQ(luke->verifier.stored_key[0], 0x4d);  // "TQ..." in base64
}

// Each malformed verifier shape is refused with the line and the part named.
struct MalformedVerifier {
  const char* test_name;
  const char* secret;
  const char* complaint;
};

class MalformedVerifierTest
    : public ::testing::TestWithParam<MalformedVerifier> {};

TEST_P(MalformedVerifierTest, IsRefusedNamingTheLine) {
  const MalformedVerifier& c = GetParam();
  EXPECT_THAT(ParseError(absl::StrCat("# header\nluke ", c.secret, "\n")),
              AllOf(HasSubstr("line 2: "), HasSubstr("verifier: "),
                    HasSubstr(c.complaint)));
}

// Pieces of kFalconVerifier.
#define SALT "cGNmcy10ZXN0LXNhbHQxNg=="
#define STORED "TQX9U5p0azyD29ItWz4Nul9j+czYgo5itKaKYq0s8po="
#define SERVER "fBgvCv1gNZ9y+MaHnyWCOI/OLc8VGAOtO3Zw3CQTJAk="

INSTANTIATE_TEST_SUITE_P(
    Shapes, MalformedVerifierTest,
    ::testing::Values(
        MalformedVerifier{"PrefixOnly", "SCRAM-SHA-256$", "expected"},
        MalformedVerifier{"NoKeys", "SCRAM-SHA-256$4096:" SALT, "expected"},
        MalformedVerifier{"ExtraDollar",
                          "SCRAM-SHA-256$4096:" SALT "$" STORED ":" SERVER "$",
                          "expected"},
        MalformedVerifier{"NoSalt", "SCRAM-SHA-256$4096$" STORED ":" SERVER,
                          "expected"},
        MalformedVerifier{"OneKey", "SCRAM-SHA-256$4096:" SALT "$" STORED,
                          "expected"},
        MalformedVerifier{"ThreeKeys",
                          "SCRAM-SHA-256$4096:" SALT "$" STORED ":" SERVER
                          ":" SERVER,
                          "expected"},
        MalformedVerifier{"ZeroIterations",
                          "SCRAM-SHA-256$0:" SALT "$" STORED ":" SERVER,
                          "iteration count"},
        MalformedVerifier{"TooManyIterations",
                          "SCRAM-SHA-256$10000001:" SALT "$" STORED ":" SERVER,
                          "iteration count"},
        MalformedVerifier{"NegativeIterations",
                          "SCRAM-SHA-256$-4096:" SALT "$" STORED ":" SERVER,
                          "iteration count"},
        MalformedVerifier{"LeadingZeroIterations",
                          "SCRAM-SHA-256$04096:" SALT "$" STORED ":" SERVER,
                          "iteration count"},
        MalformedVerifier{"EmptyIterations",
                          "SCRAM-SHA-256$:" SALT "$" STORED ":" SERVER,
                          "iteration count"},
        MalformedVerifier{"EmptySalt", "SCRAM-SHA-256$4096:$" STORED ":" SERVER,
                          "salt is empty"},
        MalformedVerifier{"SaltNotBase64",
                          "SCRAM-SHA-256$4096:s@lt!$" STORED ":" SERVER,
                          "salt is not canonical base64"},
        MalformedVerifier{"SaltWithoutPadding",
                          "SCRAM-SHA-256$4096:cGNmcy10ZXN0LXNhbHQxNg$" STORED
                          ":" SERVER,
                          "salt is not canonical base64"},
        MalformedVerifier{
            "ShortStoredKey",
            "SCRAM-SHA-256$4096:" SALT
            "$TQX9U5p0azyD29ItWz4Nul9j+czYgo5itKaKYq0s8g==:" SERVER,
            "StoredKey is 31 bytes"},
        MalformedVerifier{"EmptyServerKey",
                          "SCRAM-SHA-256$4096:" SALT "$" STORED ":",
                          "ServerKey is 0 bytes"},
        MalformedVerifier{"ServerKeyNotBase64",
                          "SCRAM-SHA-256$4096:" SALT "$" STORED ":not*base64",
                          "ServerKey is not canonical base64"}),
    [](const ::testing::TestParamInfo<MalformedVerifier>& shape) {
      return std::string(shape.param.test_name);
    });

#undef SALT
#undef STORED
#undef SERVER

TEST(CredentialTableTest, MalformedVerifierErrorDoesNotQuoteTheSecret) {
  const std::string secret = absl::StrCat(kFalconVerifier, "=");
  EXPECT_THAT(ParseError(absl::StrCat("luke ", secret)),
              AllOf(HasSubstr("ServerKey"), Not(HasSubstr(secret.substr(20)))));
}

TEST(CredentialTableTest, AcceptsTheIterationCountLimits) {
  absl::StatusOr<CredentialTable> table = CredentialTable::Parse(
      "a SCRAM-SHA-256$1:"
      "cGNmcy10ZXN0LXNhbHQxNg==$"
      "TQX9U5p0azyD29ItWz4Nul9j+czYgo5itKaKYq0s8po=:"
      "fBgvCv1gNZ9y+MaHnyWCOI/OLc8VGAOtO3Zw3CQTJAk=\n"
      "b SCRAM-SHA-256$10000000:"
      "cGNmcy10ZXN0LXNhbHQxNg==$"
      "TQX9U5p0azyD29ItWz4Nul9j+czYgo5itKaKYq0s8po=:"
      "fBgvCv1gNZ9y+MaHnyWCOI/OLc8VGAOtO3Zw3CQTJAk=\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->Find("a")->verifier.iterations, 1u);
  EXPECT_EQ(table->Find("b")->verifier.iterations, 10000000u);
}

class CheckPasswordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<CredentialTable> table =
        CredentialTable::Parse(absl::StrCat("hans hanspass\n"
                                            "han never tell me the odds\n"
                                            "luke ",
                                            kFalconVerifier, "\n"));
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = *std::move(table);
  }

  CredentialTable table_;
};

TEST_F(CheckPasswordTest, AcceptsTheRightPlainPassword) {
  EXPECT_TRUE(table_.CheckPassword("hans", "hanspass"));
}

TEST_F(CheckPasswordTest, AcceptsAPlainPasswordWithSpaces) {
  EXPECT_TRUE(table_.CheckPassword("han", "never tell me the odds"));
}

TEST_F(CheckPasswordTest, RefusesAWrongPlainPassword) {
  EXPECT_FALSE(table_.CheckPassword("hans", "hanspasS"));
}

TEST_F(CheckPasswordTest, RefusesAPrefixOrExtensionOfThePlainPassword) {
  EXPECT_FALSE(table_.CheckPassword("hans", "hanspas"));
  EXPECT_FALSE(table_.CheckPassword("hans", "hanspass "));
  EXPECT_FALSE(table_.CheckPassword("hans", ""));
}

TEST_F(CheckPasswordTest, RefusesAnotherUsersPassword) {
  EXPECT_FALSE(table_.CheckPassword("han", "hanspass"));
}

TEST_F(CheckPasswordTest, RefusesAnUnknownUser) {
  EXPECT_FALSE(table_.CheckPassword("leia", "hanspass"));
}

TEST_F(CheckPasswordTest, AcceptsTheRightPasswordForAVerifier) {
  EXPECT_TRUE(table_.CheckPassword("luke", "falcon*solo"));
}

TEST_F(CheckPasswordTest, RefusesAWrongPasswordForAVerifier) {
  EXPECT_FALSE(table_.CheckPassword("luke", "falcon*sol0"));
}

TEST_F(CheckPasswordTest, RefusesTheVerifierTextAsAPassword) {
  EXPECT_FALSE(table_.CheckPassword("luke", kFalconVerifier));
}

}  // namespace
}  // namespace pcfs
