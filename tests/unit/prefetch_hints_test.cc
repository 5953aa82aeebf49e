// SessionHints: what it keeps of the addresses noted while a recorder is
// alive, and that prefetching a hint whose memory is gone is harmless.
#include "core/base/prefetch_hints.h"

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace pcfs {
namespace {

using Ranges = std::vector<std::pair<uintptr_t, size_t>>;

// Eight cache lines, line-aligned.
struct alignas(64) Lines {
  uint8_t bytes[8 * 64];
};

uintptr_t Address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

TEST(SessionHintsTest, NothingIsKeptWithoutARecorder) {
  SessionHints hints;
  Lines memory;
  NotePrefetchHint(memory.bytes, 64);
  EXPECT_EQ(hints.RangesOf(5), Ranges());
  { SessionHints::Recorder recorder(hints, 5); }
  EXPECT_EQ(hints.RangesOf(5), Ranges());
  NotePrefetchHint(memory.bytes, 64);  // the recorder is gone
  EXPECT_EQ(hints.RangesOf(5), Ranges());
}

TEST(SessionHintsTest, KeepsTheCacheLinesEachNoteCovers) {
  SessionHints hints;
  Lines memory;
  const uintptr_t base = Address(memory.bytes);
  {
    SessionHints::Recorder recorder(hints, 7);
    NotePrefetchHint(memory.bytes, 96);        // lines 0 and 1
    NotePrefetchHint(memory.bytes + 130, 10);  // within line 2
    NotePrefetchHint(memory.bytes + 250, 12);  // lines 3 and 4
  }
  EXPECT_EQ(hints.RangesOf(7),
            (Ranges{{base, 2}, {base + 128, 1}, {base + 192, 2}}));
  EXPECT_EQ(hints.RangesOf(8), Ranges());  // another session: none
}

TEST(SessionHintsTest, ALineNotedTwiceIsKeptOnceWithTheLongerRange) {
  SessionHints hints;
  Lines memory;
  {
    SessionHints::Recorder recorder(hints, 9);
    NotePrefetchHint(memory.bytes, 8);
    NotePrefetchHint(memory.bytes + 4, 200);  // the same first line
    NotePrefetchHint(memory.bytes, 8);
  }
  EXPECT_EQ(hints.RangesOf(9), (Ranges{{Address(memory.bytes), 4}}));
}

TEST(SessionHintsTest, KeepsAtMostItsRangesAndLinesAndNothingEmpty) {
  SessionHints hints;
  std::vector<Lines> memory(SessionHints::kRanges + 2);
  {
    SessionHints::Recorder recorder(hints, 11);
    NotePrefetchHint(memory[0].bytes, 0);  // no bytes: no range
    for (Lines& lines : memory) NotePrefetchHint(lines.bytes, size_t{64} * 100);
  }
  const Ranges kept = hints.RangesOf(11);
  ASSERT_EQ(kept.size(), SessionHints::kRanges);
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(kept[i], std::make_pair(Address(memory[i].bytes),
                                      SessionHints::kMaxLines));
  }
}

TEST(SessionHintsTest, ANewRecordingReplacesTheSessionsRanges) {
  SessionHints hints;
  Lines memory;
  {
    SessionHints::Recorder recorder(hints, 3);
    NotePrefetchHint(memory.bytes, 64);
  }
  {
    SessionHints::Recorder recorder(hints, 3);
    NotePrefetchHint(memory.bytes + 192, 64);
  }
  EXPECT_EQ(hints.RangesOf(3), (Ranges{{Address(memory.bytes) + 192, 1}}));
}

TEST(SessionHintsTest, ASessionInTheSameSlotTakesItOver) {
  SessionHints hints(1);  // one slot: every session shares it
  Lines memory;
  {
    SessionHints::Recorder recorder(hints, 1);
    NotePrefetchHint(memory.bytes, 64);
  }
  {
    SessionHints::Recorder recorder(hints, 2);
    NotePrefetchHint(memory.bytes + 64, 64);
  }
  EXPECT_EQ(hints.RangesOf(1), Ranges());
  EXPECT_EQ(hints.RangesOf(2), (Ranges{{Address(memory.bytes) + 64, 1}}));
  hints.Prefetch(1);  // no hint: nothing to do
}

// A hint outlives what it points to (a session ended, a table grew); its
// prefetch must stay harmless. Under AddressSanitizer this would report a
// use after free if Prefetch read the memory instead of prefetching it.
TEST(SessionHintsTest, PrefetchingMemoryThatIsGoneIsHarmless) {
  SessionHints hints;
  auto memory = std::make_unique<Lines>();
  {
    SessionHints::Recorder recorder(hints, 21);
    NotePrefetchHint(memory.get(), sizeof(Lines));
  }
  memory.reset();
  ASSERT_EQ(hints.RangesOf(21).size(), 1u);
  hints.Prefetch(21);
}

}  // namespace
}  // namespace pcfs
