#include "core/index/search_index.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// The names the index finds for `pattern` in one unbounded walk, sorted.
std::vector<std::string> Matches(const SearchIndex& index,
                                 absl::string_view pattern) {
  std::vector<std::string> names;
  index.ForEachMatchFrom(pattern, 0, std::numeric_limits<size_t>::max(),
                         [&](uint32_t, absl::string_view name) {
                           names.emplace_back(name);
                           return true;
                         });
  std::sort(names.begin(), names.end());
  return names;
}

// The same by a scan of every indexed name (no posting list), to hold the
// index's answers against.
std::vector<std::string> ScanMatches(const SearchIndex& index,
                                     absl::string_view pattern) {
  std::vector<std::string> names;
  for (uint32_t id = 0; id < index.id_limit(); ++id) {
    if (index.Contains(id) && absl::StrContains(index.NameOf(id), pattern)) {
      names.emplace_back(index.NameOf(id));
    }
  }
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

// A name's length is stored before its bytes, in one byte below 128 and
// more from there: names on both sides of each step keep their bytes
// through removals of their neighbours and the compactions those cause.
TEST(SearchIndexTest, KeepsNamesOfEveryLengthThroughCompaction) {
  SearchIndex index;
  std::vector<std::string> kept;
  for (size_t length : {1, 2, 127, 128, 129, 255, 256, 16383, 16384, 70000}) {
    for (int copy = 0; copy < 3; ++copy) {
      std::string name(length, static_cast<char>('a' + copy));
      name[0] = static_cast<char>('A' + copy);
      if (copy == 1) {
        kept.push_back(name);
      }
      index.Add(name);
    }
  }
  // Removing the others (over half the bytes) compacts the names.
  for (size_t length : {1, 2, 127, 128, 129, 255, 256, 16383, 16384, 70000}) {
    for (int copy : {0, 2}) {
      std::string name(length, static_cast<char>('a' + copy));
      name[0] = static_cast<char>('A' + copy);
      index.Remove(name);
    }
  }
  ASSERT_EQ(index.size(), kept.size());
  for (const std::string& name : kept) {
    const uint32_t id = index.Find(name);
    ASSERT_NE(id, SearchIndex::kNoId) << name.size();
    EXPECT_EQ(index.NameOf(id), name) << name.size();
  }
  EXPECT_EQ(Matches(index, "Bb").size(), kept.size() - 1);  // all but "B"
}

TEST(SearchIndexTest, EmptyNameMatchesOnlyTheEmptyPattern) {
  SearchIndex index;
  index.Add("");
  EXPECT_EQ(index.size(), 1u);
  EXPECT_THAT(Matches(index, ""), ElementsAre(""));
  EXPECT_THAT(Matches(index, "a"), IsEmpty());
}

TEST(SearchIndexTest, NamesShorterThanATrigramMatchOneAndTwoBytePatterns) {
  SearchIndex index;
  for (const char* name : {"a", "ab", "ba", "b"}) index.Add(name);
  EXPECT_THAT(Matches(index, "a"), ElementsAre("a", "ab", "ba"));
  EXPECT_THAT(Matches(index, "b"), ElementsAre("ab", "b", "ba"));
  EXPECT_THAT(Matches(index, "ab"), ElementsAre("ab"));
}

TEST(SearchIndexTest, PatternLongerThanEveryNameMatchesNothing) {
  SearchIndex index;
  for (const char* name : {"ab", "abc", "abcd"}) index.Add(name);
  EXPECT_THAT(Matches(index, "abcde"), IsEmpty());
}

TEST(SearchIndexTest, PatternRepeatingATrigramNeedsItTwiceInARow) {
  SearchIndex index;
  for (const char* name : {"aaa", "aaaa", "aaaaa", "baaab", "aabaa"}) {
    index.Add(name);
  }
  EXPECT_THAT(Matches(index, "aaaa"), ElementsAre("aaaa", "aaaaa"));
}

TEST(SearchIndexTest, NameHoldingThePatternTwiceIsReportedOnce) {
  SearchIndex index;
  index.Add("ab-ab-abc.ab");
  for (const char* pattern : {"a", "ab", "ab-", "ab-ab"}) {
    EXPECT_THAT(Matches(index, pattern), ElementsAre("ab-ab-abc.ab"))
        << pattern;
  }
}

TEST(SearchIndexTest, TrigramsThatAreNotAdjacentAreNoMatch) {
  SearchIndex index;
  index.Add("abcd-bcde");  // holds every trigram of "abcde", apart
  EXPECT_THAT(Matches(index, "abcde"), IsEmpty());
}

TEST(SearchIndexTest, LongPatternIsCheckedInFull) {
  std::string name;
  for (int i = 0; i < 300; ++i) {
    name.push_back(static_cast<char>('a' + i % 23));
  }
  const std::string exact = name.substr(40, 200);
  std::string changed = exact;
  changed[101] = 'Z';  // one byte off, deep inside the pattern
  // The name also holds the trigrams around that byte, apart, so that every
  // trigram of `changed` is in it, and only the full check can refuse it.
  absl::StrAppend(&name, "-", changed.substr(99, 5));
  SearchIndex index;
  index.Add(name);
  EXPECT_THAT(Matches(index, exact), ElementsAre(name));
  EXPECT_THAT(Matches(index, changed), IsEmpty());
}

TEST(SearchIndexTest, NameAddedAfterARemovalCarriesNoTraceOfIt) {
  SearchIndex index;
  index.Add("alpha");
  index.Remove("alpha");
  index.Add("omega");
  EXPECT_THAT(Matches(index, "lph"), IsEmpty());
  EXPECT_THAT(Matches(index, "ph"), IsEmpty());
  EXPECT_THAT(Matches(index, "meg"), ElementsAre("omega"));
}

TEST(SearchIndexTest, ManyNamesSharingATrigramSurviveScatteredChurn) {
  constexpr int kNames = 1000;
  std::vector<std::string> all;
  for (int i = 0; i < kNames; ++i) {
    all.push_back(absl::StrCat("f", i, ".common"));
  }
  std::vector<std::string> doomed;
  std::vector<std::string> kept;
  for (int i = 0; i < kNames; ++i) {
    (i % 10 == 0 ? kept : doomed).push_back(all[i]);
  }
  std::mt19937 rng(7);
  SearchIndex index;
  for (const std::string& name : all) index.Add(name);
  std::shuffle(doomed.begin(), doomed.end(), rng);
  for (const std::string& name : doomed) index.Remove(name);
  std::sort(kept.begin(), kept.end());
  ASSERT_EQ(Matches(index, ".common"), kept);
  std::shuffle(doomed.begin(), doomed.end(), rng);
  for (const std::string& name : doomed) index.Add(name);  // reusing ids
  std::sort(all.begin(), all.end());
  EXPECT_EQ(Matches(index, ".common"), all);
  EXPECT_EQ(Matches(index, "mmo"), all);
  EXPECT_EQ(Matches(index, "on"), all);
}

// Every 32nd name, from some offset on, holds "abcd" and all hold "abc":
// the rare list leads and the common one is skipped through in jumps that,
// over all the offsets, land on every position of its blocks.
TEST(SearchIndexTest, RareMatchesAmongCommonTrigramsAreAllFound) {
  constexpr int kNames = 1024;
  constexpr int kStride = 32;
  for (int offset = 0; offset < kStride; ++offset) {
    SearchIndex index;
    std::vector<std::string> expected;
    for (int i = 0; i < kNames; ++i) {
      const bool rare = i % kStride == offset;
      const std::string name = absl::StrCat(i, rare ? "-abcd" : "-abc");
      index.Add(name);
      if (rare) expected.push_back(name);
    }
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(Matches(index, "abcd"), expected) << "offset " << offset;
  }
}

// ---- Resumable walks
// ---------------------------------------------------------

struct Taken {
  uint32_t id;
  std::string name;
  friend bool operator==(const Taken&, const Taken&) = default;
};

// The matches of `pattern` from first_id on, read with walks of at most
// `budget` candidates each, each starting where the last one stopped.
std::vector<Taken> WalkAll(const SearchIndex& index, absl::string_view pattern,
                           size_t budget, uint32_t first_id = 0) {
  std::vector<Taken> taken;
  for (int walks = 0; walks < 1000000; ++walks) {
    SearchIndex::WalkEnd end = index.ForEachMatchFrom(
        pattern, first_id, budget, [&](uint32_t id, absl::string_view name) {
          taken.push_back({id, std::string(name)});
          return true;
        });
    if (end.done) break;
    first_id = end.next_id;
  }
  return taken;
}

std::vector<std::string> NamesOf(const std::vector<Taken>& taken) {
  std::vector<std::string> names;
  for (const Taken& t : taken) names.push_back(t.name);
  return names;
}

bool IdsIncrease(const std::vector<Taken>& taken) {
  return std::adjacent_find(taken.begin(), taken.end(),
                            [](const Taken& a, const Taken& b) {
                              return a.id >= b.id;
                            }) == taken.end();
}

TEST(SearchIndexWalkTest, FindsWhatAScanFindsInIdOrder) {
  SearchIndex index;
  for (int i = 0; i < 300; ++i) index.Add(absl::StrCat("song-", i, ".mp3"));
  for (const char* pattern : {"", "s", "-1", "ong", "g-2", "9.mp3"}) {
    const std::vector<Taken> taken = WalkAll(index, pattern, 1000000);
    EXPECT_TRUE(IdsIncrease(taken)) << pattern;
    std::vector<std::string> names = NamesOf(taken);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, ScanMatches(index, pattern)) << pattern;
    // In pieces of a few candidates, the walks find the same.
    std::vector<std::string> pieces = NamesOf(WalkAll(index, pattern, 3));
    std::sort(pieces.begin(), pieces.end());
    EXPECT_EQ(pieces, names) << pattern;
  }
}

TEST(SearchIndexWalkTest, EmptyIndexIsDoneAtOnce) {
  SearchIndex index;
  for (const char* pattern : {"", "a", "ab", "abc", "abcd"}) {
    SearchIndex::WalkEnd end = index.ForEachMatchFrom(
        pattern, 0, 10, [](uint32_t, absl::string_view) { return true; });
    EXPECT_TRUE(end.done) << pattern;
  }
}

// 1000 names hold both trigrams of "abcd", only the last holds "abcd": a
// walk of 10 candidates stops with nothing taken and says where to go on.
TEST(SearchIndexWalkTest, StopsAfterItsBudgetEvenWithoutAMatch) {
  SearchIndex index;
  for (int i = 0; i < 999; ++i) index.Add(absl::StrCat(i, "-abc-bcd"));
  index.Add("last-abcd");
  int offered = 0;
  SearchIndex::WalkEnd end =
      index.ForEachMatchFrom("abcd", 0, 10, [&](uint32_t, absl::string_view) {
        ++offered;
        return true;
      });
  EXPECT_FALSE(end.done);
  EXPECT_EQ(end.examined, 10u);
  EXPECT_EQ(offered, 0);
  EXPECT_GT(end.next_id, 0u);
  EXPECT_THAT(NamesOf(WalkAll(index, "abcd", 10)), ElementsAre("last-abcd"));
}

TEST(SearchIndexWalkTest, RefusedNameComesFirstInTheNextWalk) {
  SearchIndex index;
  for (const char* name : {"a1", "a2", "a3", "a4"}) index.Add(name);
  std::vector<Taken> all = WalkAll(index, "a", 100);
  ASSERT_EQ(all.size(), 4u);
  std::vector<std::string> first;
  SearchIndex::WalkEnd end = index.ForEachMatchFrom(
      "a", 0, 100, [&](uint32_t, absl::string_view name) {
        if (first.size() == 2) return false;
        first.emplace_back(name);
        return true;
      });
  EXPECT_FALSE(end.done);
  EXPECT_EQ(first, (std::vector<std::string>{all[0].name, all[1].name}));
  EXPECT_EQ(end.next_id, all[2].id);
}

TEST(SearchIndexWalkTest, StartsAtFirstId) {
  SearchIndex index;
  for (int i = 0; i < 100; ++i) index.Add(absl::StrCat("clip", i));
  const std::vector<Taken> all = WalkAll(index, "clip", 1000);
  ASSERT_EQ(all.size(), 100u);
  const std::vector<Taken> tail = WalkAll(index, "clip", 1000, all[40].id);
  EXPECT_EQ(tail, std::vector<Taken>(all.begin() + 40, all.end()));
}

// The id of a name is where a listing resumes: it must not move while the
// name stays, whatever comes and goes around it (ids reused, name bytes
// compacted).
TEST(SearchIndexWalkTest, IdOfAPresentNameNeverChanges) {
  SearchIndex index;
  index.Add("keeper.txt");
  const std::vector<Taken> before = WalkAll(index, "keeper", 1000);
  ASSERT_EQ(before.size(), 1u);
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 500; ++i) {
      index.Add(absl::StrCat("churn-", round, "-", i, std::string(40, 'x')));
    }
    for (int i = 0; i < 500; ++i) {
      index.Remove(absl::StrCat("churn-", round, "-", i, std::string(40, 'x')));
    }
  }
  EXPECT_EQ(WalkAll(index, "keeper", 1000), before);
  EXPECT_EQ(WalkAll(index, "", 1000), before);
}

// ---- Against a naive scan ---------------------------------------------------

// The names of `model` that contain `pattern`, sorted.
std::vector<std::string> NaiveMatches(const std::vector<std::string>& model,
                                      absl::string_view pattern) {
  std::vector<std::string> names;
  for (const std::string& name : model) {
    if (absl::StrContains(name, pattern)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string RandomString(std::mt19937& rng, absl::string_view alphabet,
                         size_t max_length) {
  std::string s(rng() % (max_length + 1), ' ');
  for (char& c : s) c = alphabet[rng() % alphabet.size()];
  return s;
}

// A pattern of 0 to 6 bytes: half of them cut from a name of `model` (most
// of which match), half random (most of which do not).
std::string RandomPattern(std::mt19937& rng, absl::string_view alphabet,
                          const std::vector<std::string>& model) {
  const size_t length = rng() % 7;
  if (model.empty() || rng() % 2 == 0) {
    std::string s(length, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    return s;
  }
  const std::string& name = model[rng() % model.size()];
  const size_t start = rng() % (name.size() + 1);
  return name.substr(start, length);  // may be cut short by the name's end
}

// Checks walks of `pattern` from a random first id with random budgets and
// random refusals against the model: the names taken must be the model's
// matches with ids >= first_id, in id order, each once; each walk within
// its budget and, unless it refused a name, moving on. `every` is a walk of
// every name, which gives the ids (EveryNameDisagreement checks it against
// the model). Returns the first disagreement, or "".
std::string WalkDisagreement(const SearchIndex& index,
                             const std::vector<Taken>& every,
                             absl::string_view pattern, std::mt19937& rng) {
  const uint32_t id_range = every.empty() ? 1 : every.back().id + 2;
  uint32_t first_id = static_cast<uint32_t>(rng() % id_range);
  std::vector<Taken> expected;
  for (const Taken& t : every) {
    if (t.id >= first_id && absl::StrContains(t.name, pattern)) {
      expected.push_back(t);
    }
  }
  std::vector<Taken> taken;
  for (int walks = 0;; ++walks) {
    if (walks == 100000) return "walks never end";
    const size_t budget = 1 + rng() % 40;
    bool refused = false;
    SearchIndex::WalkEnd end = index.ForEachMatchFrom(
        pattern, first_id, budget, [&](uint32_t id, absl::string_view name) {
          if (rng() % 8 == 0) {
            refused = true;
            return false;
          }
          taken.push_back({id, std::string(name)});
          return true;
        });
    if (end.examined > budget) return "a walk went over its budget";
    if (end.done) break;
    if (end.next_id < first_id || (!refused && end.next_id == first_id)) {
      return absl::StrCat("a walk from ", first_id, " went on at ",
                          end.next_id);
    }
    first_id = end.next_id;
  }
  if (taken != expected) {
    return absl::StrCat("walks took ", taken.size(), " names, expected ",
                        expected.size());
  }
  return "";
}

// "" if `every` holds the names of the model, in increasing id order.
std::string EveryNameDisagreement(const std::vector<Taken>& every,
                                  const std::vector<std::string>& model) {
  std::vector<std::string> every_name = NamesOf(every);
  std::sort(every_name.begin(), every_name.end());
  std::vector<std::string> sorted_model = model;
  std::sort(sorted_model.begin(), sorted_model.end());
  if (every_name != sorted_model || !IdsIncrease(every)) {
    return "a walk of every name is not the model";
  }
  return "";
}

// Applies a fixed-seed run of adds and removes to an index and to a plain
// vector of names, and compares their answers to random patterns every few
// steps. Returns the first disagreement, or "" if there was none.
std::string FirstDisagreement(absl::string_view alphabet, size_t max_length,
                              size_t max_names, uint32_t seed) {
  constexpr int kSteps = 8000;
  constexpr int kStepsBetweenChecks = 50;
  constexpr int kPatternsPerCheck = 16;
  std::mt19937 rng(seed);
  SearchIndex index;
  std::vector<std::string> model;
  for (int step = 0; step < kSteps; ++step) {
    // Mostly adds of new names and removes of present ones, until the
    // model is full; then as many removes as adds.
    const bool remove = model.size() >= max_names || rng() % 4 == 0;
    const bool existing = !model.empty() && (rng() % 8 == 0) != remove;
    const std::string name = existing ? model[rng() % model.size()]
                                      : RandomString(rng, alphabet, max_length);
    auto it = std::find(model.begin(), model.end(), name);
    if (remove) {
      index.Remove(name);
      if (it != model.end()) model.erase(it);
    } else {
      index.Add(name);
      if (it == model.end()) model.push_back(name);
    }
    if (index.size() != model.size()) {
      return absl::StrCat("step ", step, ": size ", index.size(),
                          " != ", model.size());
    }
    if (step % kStepsBetweenChecks != 0) continue;
    const std::vector<Taken> every = WalkAll(index, "", 1000000);
    if (std::string e = EveryNameDisagreement(every, model); !e.empty()) {
      return absl::StrCat("step ", step, ": ", e);
    }
    for (int i = 0; i < kPatternsPerCheck; ++i) {
      const std::string pattern = RandomPattern(rng, alphabet, model);
      if (Matches(index, pattern) != NaiveMatches(model, pattern)) {
        return absl::StrCat("step ", step, ": pattern \"",
                            absl::CEscape(pattern), "\"");
      }
      if (std::string walk = WalkDisagreement(index, every, pattern, rng);
          !walk.empty()) {
        return absl::StrCat("step ", step, ": pattern \"",
                            absl::CEscape(pattern), "\": ", walk);
      }
    }
  }
  return "";
}

// Bytes >= 0x80 and NUL included.
TEST(SearchIndexDifferentialTest, ShortNamesOverAWideAlphabet) {
  const std::string alphabet =
      std::string("ab.c\xC3\xA9\xFF\x80", 8) + std::string(1, '\0');
  EXPECT_EQ(FirstDisagreement(alphabet, /*max_length=*/6,
                              /*max_names=*/600, /*seed=*/1),
            "");
}

// Few symbols and long names: lists of hundreds of ids (split into blocks,
// joined again as names go).
TEST(SearchIndexDifferentialTest, LongNamesOverANarrowAlphabet) {
  EXPECT_EQ(FirstDisagreement("ab\xFE", /*max_length=*/14,
                              /*max_names=*/1500, /*seed=*/2),
            "");
}

// Two symbols and longer names: each name holds most trigrams that start
// with a given byte, so 1-byte patterns scan the names instead.
TEST(SearchIndexDifferentialTest, LongNamesOverTwoSymbols) {
  EXPECT_EQ(FirstDisagreement("a\xFE", /*max_length=*/24,
                              /*max_names=*/800, /*seed=*/3),
            "");
}

}  // namespace
}  // namespace pcfs
