// peerctl/shell.h's ShellCompletions and peerctl/downloader.h's progress
// line format: the pure parts of the interactive shell.
#include "peerctl/shell.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "peerctl/downloader.h"

namespace pcfs {
namespace {

using Names = std::vector<std::string>;

// The arguments each command would complete with, in these tests.
Names ArgumentsOf(absl::string_view command) {
  if (command == "pub") return {"local.txt"};
  if (command == "get") return {"found.bin"};
  return {};
}

TEST(ShellCompletionsTest, FirstWordCompletesACommand) {
  size_t start = 99;
  const Names all = {"get", "lap", "lpf", "pub", "sch", "unp", "xit"};
  EXPECT_EQ(ShellCompletions("", &start, ArgumentsOf), all);
  EXPECT_EQ(start, 0u);
  EXPECT_EQ(ShellCompletions("  pu", &start, ArgumentsOf), all);
  EXPECT_EQ(start, 2u);
}

TEST(ShellCompletionsTest, ArgumentCompletesFromItsCommandsSource) {
  size_t start = 0;
  EXPECT_EQ(ShellCompletions("pub lo", &start, ArgumentsOf),
            Names{"local.txt"});
  EXPECT_EQ(start, 4u);
  EXPECT_EQ(ShellCompletions("get  ", &start, ArgumentsOf), Names{"found.bin"});
  EXPECT_EQ(start, 5u);
  EXPECT_EQ(ShellCompletions("lap x", &start, ArgumentsOf), Names{});
}

TEST(ShellCompletionsTest, ArgumentWithSpacesIsOneWord) {
  size_t start = 0;
  ShellCompletions("get my fi", &start, ArgumentsOf);
  EXPECT_EQ(start, 4u);  // "my fi" is the word: names may hold spaces
}

TEST(ProgressLineTest, FormatsBytesPercentRateAndTimeLeft) {
  EXPECT_EQ(ProgressLine::Format(uint64_t{50} << 20, uint64_t{200} << 20,
                                 absl::Seconds(5)),
            "50.0 MiB / 200.0 MiB (25%)  10.0 MiB/s  0:15 left");
  EXPECT_EQ(ProgressLine::Format(0, 1000, absl::ZeroDuration()),
            "0 B / 1000 B (0%)  0 B/s  --:-- left");
  EXPECT_EQ(ProgressLine::Format(1, uint64_t{1} << 40, absl::Seconds(1)),
            "1 B / 1.0 TiB (0%)  1 B/s  305419896:36:15 left");
}

TEST(ProgressLineTest, PrintsNothingWhenNotATerminal) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  {
    ProgressLine line(file);
    line.Update(10, 100);
    line.Update(100, 100);
  }
  EXPECT_EQ(std::ftell(file), 0);
  std::fclose(file);
}

}  // namespace
}  // namespace pcfs
