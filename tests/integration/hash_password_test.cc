// `peerconnectd hash-password`: the real binary, the password on stdin.
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/auth/credentials.h"
#include "core/auth/scram.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

// Runs `peerconnectd hash-password FLAGS...` with `input` on stdin.
CommandResult HashPassword(const std::string& input,
                           const std::vector<std::string>& flags = {}) {
  Process::Options options;
  options.argv = {PCFS_DAEMON_PATH, "hash-password"};
  options.argv.insert(options.argv.end(), flags.begin(), flags.end());
  Process process(options);
  process.Write(input);
  process.CloseStdin();
  CommandResult result;
  std::optional<int> exit_code = process.Wait(absl::Seconds(60));
  EXPECT_TRUE(exit_code.has_value()) << "hash-password did not exit";
  result.exit_code = exit_code.value_or(-1);
  result.out = process.stdout_text();
  result.err = process.stderr_text();
  return result;
}

// The verifier printed on stdout: one line and nothing else.
absl::StatusOr<ScramVerifier> PrintedVerifier(const CommandResult& result) {
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(!result.out.empty() && result.out.back() == '\n') << result.out;
  const absl::string_view line = absl::StripTrailingAsciiWhitespace(result.out);
  EXPECT_EQ(line.find('\n'), absl::string_view::npos) << result.out;
  return ParseVerifier(line);
}

// True if `password` derives `verifier` (a failure to check fails the test).
bool Matches(const ScramVerifier& verifier, absl::string_view password) {
  absl::StatusOr<bool> matches = PasswordMatchesVerifier(verifier, password);
  EXPECT_TRUE(matches.ok()) << matches.status();
  return matches.value_or(false);
}

TEST(HashPasswordTest, PrintsAVerifierThatMatchesOnlyThePassword) {
  absl::StatusOr<ScramVerifier> verifier =
      PrintedVerifier(HashPassword("c0rrect horse*@!#$()=+_%\n"));
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(verifier->iterations, kScramDefaultIterations);
  EXPECT_EQ(verifier->salt.size(), kScramSaltBytes);
  EXPECT_TRUE(Matches(*verifier, "c0rrect horse*@!#$()=+_%"));
  EXPECT_FALSE(Matches(*verifier, "c0rrect horse"));
}

TEST(HashPasswordTest, UsesTheIterationCountAsked) {
  absl::StatusOr<ScramVerifier> verifier =
      PrintedVerifier(HashPassword("hanspass\n", {"--iterations=1000"}));
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(verifier->iterations, 1000u);
  EXPECT_TRUE(Matches(*verifier, "hanspass"));
}

TEST(HashPasswordTest, ReadsOnlyTheFirstLineWithoutItsLineEnding) {
  absl::StatusOr<ScramVerifier> verifier = PrintedVerifier(
      HashPassword("hanspass\r\nsecond line\n", {"--iterations=1"}));
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_TRUE(Matches(*verifier, "hanspass"));
}

TEST(HashPasswordTest, SaltsEachRunAfresh) {
  absl::StatusOr<ScramVerifier> first =
      PrintedVerifier(HashPassword("hanspass\n", {"--iterations=1"}));
  absl::StatusOr<ScramVerifier> second =
      PrintedVerifier(HashPassword("hanspass\n", {"--iterations=1"}));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first->salt, second->salt);
}

TEST(HashPasswordTest, CredentialsFileAcceptsThePrintedVerifier) {
  CommandResult result = HashPassword("vaderpass\n", {"--iterations=1"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  absl::StatusOr<CredentialTable> table =
      CredentialTable::Parse(absl::StrCat("vader ", result.out));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->CheckPassword("vader", "vaderpass"));
}

TEST(HashPasswordTest, EmptyPasswordExitsTwo) {
  for (const std::string& input : {std::string(""), std::string("\n")}) {
    CommandResult result = HashPassword(input);
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_EQ(result.out, "");
    EXPECT_NE(result.err.find("password is empty"), std::string::npos)
        << result.err;
  }
}

TEST(HashPasswordTest, PasswordWithAControlCharacterExitsTwo) {
  CommandResult result = HashPassword("bad\tpass\n");
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err.find("bad"), std::string::npos) << "echoed the secret";
}

TEST(HashPasswordTest, IterationCountOutOfRangeExitsTwo) {
  CommandResult result = HashPassword("hanspass\n", {"--iterations=0"});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(result.out, "");
}

TEST(HashPasswordTest, ExtraArgumentExitsTwo) {
  CommandResult result = HashPassword("hanspass\n", {"extra"});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(result.out, "");
}

}  // namespace
}  // namespace pcfs::testing
