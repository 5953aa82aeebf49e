#include "core/search_index.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// The names matching `pattern`, sorted (ForEachMatch has no order).
std::vector<std::string> Matches(const SearchIndex& index,
                                 absl::string_view pattern) {
  std::vector<std::string> names;
  index.ForEachMatch(pattern,
                     [&](absl::string_view name) { names.emplace_back(name); });
  std::sort(names.begin(), names.end());
  return names;
}

TEST(SearchIndexTest, StartsEmpty) {
  SearchIndex index;
  EXPECT_EQ(index.size(), 0u);
  EXPECT_THAT(Matches(index, ""), IsEmpty());
}

TEST(SearchIndexTest, FindsNamesContainingThePattern) {
  SearchIndex index;
  index.Add("starwars.mp4");
  index.Add("startrek.mkv");
  index.Add("notes.txt");
  EXPECT_THAT(Matches(index, "star"),
              ElementsAre("startrek.mkv", "starwars.mp4"));
  EXPECT_THAT(Matches(index, "wars"), ElementsAre("starwars.mp4"));
  EXPECT_THAT(Matches(index, ".txt"), ElementsAre("notes.txt"));
}

TEST(SearchIndexTest, EmptyPatternMatchesEveryName) {
  SearchIndex index;
  index.Add("a");
  index.Add("b");
  EXPECT_THAT(Matches(index, ""), ElementsAre("a", "b"));
}

TEST(SearchIndexTest, MatchesTheWholeName) {
  SearchIndex index;
  index.Add("exact.bin");
  EXPECT_THAT(Matches(index, "exact.bin"), ElementsAre("exact.bin"));
}

TEST(SearchIndexTest, PatternLongerThanTheNameMatchesNothing) {
  SearchIndex index;
  index.Add("ab");
  EXPECT_THAT(Matches(index, "abc"), IsEmpty());
}

TEST(SearchIndexTest, MatchIsCaseSensitive) {
  SearchIndex index;
  index.Add("Report.PDF");
  EXPECT_THAT(Matches(index, "report"), IsEmpty());
  EXPECT_THAT(Matches(index, "Report"), ElementsAre("Report.PDF"));
}

TEST(SearchIndexTest, MatchesMultibyteNamesByBytes) {
  SearchIndex index;
  index.Add("caf\xC3\xA9.txt");
  EXPECT_THAT(Matches(index, "\xC3\xA9"), ElementsAre("caf\xC3\xA9.txt"));
}

TEST(SearchIndexTest, AddingTwiceKeepsOneName) {
  SearchIndex index;
  index.Add("dup");
  index.Add("dup");
  EXPECT_EQ(index.size(), 1u);
  EXPECT_THAT(Matches(index, "dup"), ElementsAre("dup"));
}

TEST(SearchIndexTest, RemovedNameNoLongerMatches) {
  SearchIndex index;
  index.Add("gone");
  index.Add("kept");
  index.Remove("gone");
  EXPECT_EQ(index.size(), 1u);
  EXPECT_THAT(Matches(index, ""), ElementsAre("kept"));
}

TEST(SearchIndexTest, RemovingAnAbsentNameDoesNothing) {
  SearchIndex index;
  index.Add("kept");
  index.Remove("never-added");
  EXPECT_EQ(index.size(), 1u);
}

TEST(SearchIndexTest, KeepsItsOwnCopyOfTheName) {
  SearchIndex index;
  {
    std::string name = "temporary";
    index.Add(name);
    name.assign("overwritten");
  }
  EXPECT_THAT(Matches(index, "temp"), ElementsAre("temporary"));
}

}  // namespace
}  // namespace pcfs
