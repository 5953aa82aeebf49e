// The durable publication state: what is recorded survives a reopen; every
// kind of damage (a cut, an emptied file, a changed byte) stops the start
// with the file, the offset and what to do, and --recover keeps the rest; a
// torn last record is ignored; 0.1.0's and format 2's files (SHA-256 digests,
// not roots) are refused; the journal is compacted while appends go on; one log
// a state folder.
#include "daemon/publication_log.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/base/crc32c.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using Kind = PublicationChange::Kind;

FileMeta Meta(uint64_t size, uint8_t fill) {
  FileMeta meta;
  meta.size = size;
  meta.root.fill(fill);
  return meta;
}

std::string Publish(const std::string& user, const std::string& name,
                    uint64_t size) {
  return FormatJournalRecord({Kind::kPublish, user, name, Meta(size, 7)});
}
std::string Unpublish(const std::string& user, const std::string& name) {
  return FormatJournalRecord({Kind::kUnpublish, user, name, {}});
}

// The size `user` publishes `name` with, or -1.
int64_t SizeOf(const Registry& registry, absl::string_view user,
               absl::string_view name) {
  int64_t size = -1;
  registry.ForEachPublication(
      [&](absl::string_view u, absl::string_view n, const FileMeta& meta) {
        if (u == user && n == name) size = static_cast<int64_t>(meta.size);
      });
  return size;
}

class PublicationLogTest : public ::testing::Test {
 protected:
  PublicationLogTest() {
    std::string pattern = "/tmp/pcfs-state-XXXXXX";
    dir_ = ::mkdtemp(pattern.data());
  }
  ~PublicationLogTest() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Append(const std::string& name, const std::string& text) const {
    std::ofstream(Path(name), std::ios::app | std::ios::binary) << text;
  }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(Path(name), std::ios::trunc | std::ios::binary) << text;
  }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // A snapshot of nothing, as a fresh state folder's first start writes it:
  // a journal in format 3 without one is damage.
  void WriteEmptySnapshot() const {
    Write("publications.snapshot", FormatPublicationSnapshot(Registry()));
  }
  // The names in the state folder with `prefix`.
  std::vector<std::string> FilesStartingWith(const std::string& prefix) const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      const std::string name = entry.path().filename().string();
      if (absl::StartsWith(name, prefix)) names.push_back(name);
    }
    return names;
  }

  // A state whose snapshot holds hans's a.txt (size 11), b.txt (22) and
  // c.txt (33), written by a log and compacted by a second Open().
  void MakeSnapshotOfThree() {
    {
      Registry registry;
      auto log = PublicationLog::Open(dir_, registry);
      ASSERT_TRUE(log.ok()) << log.status();
      ASSERT_TRUE((*log)->RecordPublish("hans", "a.txt", Meta(11, 1)).ok());
      ASSERT_TRUE((*log)->RecordPublish("hans", "b.txt", Meta(22, 2)).ok());
      ASSERT_TRUE((*log)->RecordPublish("hans", "c.txt", Meta(33, 3)).ok());
    }
    Registry registry;
    ASSERT_TRUE(PublicationLog::Open(dir_, registry).ok());
    ASSERT_EQ(Read("publications.journal"), FormatJournalHeader());
  }

  // Open() refuses the state, naming `file`, a byte offset and --recover,
  // and Check() says the same; nothing on disk changes.
  void ExpectRefused(const std::string& file, const std::string& problem) {
    const std::string snapshot = Read("publications.snapshot");
    const std::string journal = Read("publications.journal");
    Registry registry;
    auto log = PublicationLog::Open(dir_, registry);
    ASSERT_FALSE(log.ok()) << "damage loaded silently";
    const std::string message(log.status().message());
    EXPECT_TRUE(absl::IsDataLoss(log.status())) << message;
    EXPECT_TRUE(absl::StrContains(message, Path(file) + ": byte ")) << message;
    EXPECT_TRUE(absl::StrContains(message, problem)) << message;
    EXPECT_TRUE(absl::StrContains(message, "start it once with --recover"))
        << message;
    auto checked = PublicationLog::Check(dir_);
    ASSERT_FALSE(checked.ok());
    EXPECT_EQ(checked.status().message(), message);
    EXPECT_EQ(Read("publications.snapshot"), snapshot);
    EXPECT_EQ(Read("publications.journal"), journal);
  }

  // Opens with --recover; returns the names hans publishes then. The
  // damaged `file` is kept aside, and the state then opens without it.
  std::vector<std::string> Recover(const std::string& file) {
    std::vector<std::string> names;
    {
      Registry registry;
      PublicationLog::Options options;
      options.recover = true;
      auto log = PublicationLog::Open(dir_, registry, options);
      EXPECT_TRUE(log.ok()) << log.status();
      if (!log.ok()) return names;
      names = registry.PublishedBy("hans");
    }
    EXPECT_EQ(FilesStartingWith(file + ".damaged-").size(), 1u)
        << file << " was not kept aside";
    Registry registry;
    auto again = PublicationLog::Open(dir_, registry);
    EXPECT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(registry.PublishedBy("hans"), names);
    return names;
  }

  std::string dir_;
};

TEST_F(PublicationLogTest, RecordsSurviveReopening) {
  {
    Registry registry;
    auto log = PublicationLog::Open(dir_, registry);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE(
        (*log)->RecordPublish("hans", "BitTrickle.mp4", Meta(7, 1)).ok());
    ASSERT_TRUE(
        (*log)->RecordPublish("hans", "name with spaces.txt", Meta(9, 2)).ok());
    ASSERT_TRUE((*log)->RecordPublish("vader", "a.bin", Meta(1, 3)).ok());
    ASSERT_TRUE((*log)->RecordUnpublish("vader", "a.bin").ok());
  }
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->loaded(), 2u);
  EXPECT_EQ(
      registry.PublishedBy("hans"),
      (std::vector<std::string>{"BitTrickle.mp4", "name with spaces.txt"}));
  EXPECT_TRUE(registry.PublishedBy("vader").empty());
}

TEST_F(PublicationLogTest, ABatchIsRecordedInOrderAndSurvives) {
  {
    Registry registry;
    auto log = PublicationLog::Open(dir_, registry);
    ASSERT_TRUE(log.ok()) << log.status();
    const std::vector<PublicationChange> batch = {
        {Kind::kPublish, "hans", "a.txt", Meta(1, 1)},
        {Kind::kPublish, "hans", "b.txt", Meta(2, 2)},
        {Kind::kUnpublish, "hans", "a.txt", {}},
        {Kind::kPublish, "vader", "c.txt", Meta(3, 3)},
    };
    ASSERT_TRUE((*log)->AppendBatch(batch).ok());
    ASSERT_TRUE((*log)->AppendBatch({}).ok());
  }
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->loaded(), 2u);
  EXPECT_EQ(registry.PublishedBy("hans"), std::vector<std::string>{"b.txt"});
  EXPECT_EQ(registry.PublishedBy("vader"), std::vector<std::string>{"c.txt"});
}

TEST_F(PublicationLogTest, ABatchWithAnOverlongRecordWritesNothing) {
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_TRUE(log.ok()) << log.status();
  const std::vector<PublicationChange> batch = {
      {Kind::kPublish, "hans", "a.txt", Meta(1, 1)},
      {Kind::kPublish, "hans", std::string(5000, 'x'), Meta(2, 2)},
  };
  EXPECT_FALSE((*log)->AppendBatch(batch).ok());
  EXPECT_EQ(Read("publications.journal"), FormatJournalHeader());
}

TEST_F(PublicationLogTest, EveryLineCarriesTheCrc32cOfTheRestOfIt) {
  WriteEmptySnapshot();
  Append("publications.journal",
         FormatJournalHeader() + Publish("hans", "x y.txt", 7));
  Registry registry;
  ASSERT_TRUE(PublicationLog::Open(dir_, registry).ok());
  const std::string snapshot = Read("publications.snapshot");
  std::vector<std::string> lines =
      absl::StrSplit(snapshot, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << snapshot;
  EXPECT_TRUE(absl::StartsWith(lines[0], "PCFS-SNAPSHOT 3 ")) << lines[0];
  EXPECT_TRUE(absl::StartsWith(lines[1], "P hans 7 0707")) << lines[1];
  EXPECT_TRUE(absl::StrContains(lines[1], " x y.txt ")) << lines[1];
  EXPECT_TRUE(absl::StartsWith(lines[2], "END 1 ")) << lines[2];
  for (const std::string& line : lines) {
    const std::string body = line.substr(0, line.size() - 9);
    char crc[9];
    std::snprintf(crc, sizeof(crc), "%08x", Crc32c(body));
    EXPECT_EQ(line.substr(line.size() - 9), absl::StrCat(" ", crc)) << line;
  }
  EXPECT_EQ(Read("publications.journal"), FormatJournalHeader());
}

// 0.1.0 wrote the same records without checksums, header or END, and its
// digests, like format 2's, are whole-file SHA-256s, not Merkle roots: such
// state is refused with the way out, and left as it is.
TEST_F(PublicationLogTest, TheFormatOf010IsRefusedNotTakenForRoots) {
  const std::string digest(64, 'a');
  const std::string old =
      "P hans 7 " + digest + " old.txt\nP hans 8 " + digest + " gone.txt\n";
  Write("publications.snapshot", old);
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_FALSE(log.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(log.status())) << log.status();
  EXPECT_TRUE(absl::StrContains(log.status().message(), "0.1.0"));
  EXPECT_TRUE(absl::StrContains(log.status().message(), "not the Merkle roots"))
      << log.status();
  EXPECT_EQ(registry.publication_count(), 0u);
  EXPECT_EQ(Read("publications.snapshot"), old);
}

TEST_F(PublicationLogTest, FormatTwoIsRefusedNotTakenForRoots) {
  auto line = [](const std::string& body) {
    char crc[9];
    std::snprintf(crc, sizeof(crc), "%08x", Crc32c(body));
    return absl::StrCat(body, " ", crc, "\n");
  };
  const std::string old =
      line("PCFS-SNAPSHOT 2") +
      line("P hans 7 " + std::string(64, 'a') + " old.txt") + line("END 1");
  Write("publications.snapshot", old);
  for (bool recover : {false, true}) {
    Registry registry;
    PublicationLog::Options options;
    options.recover = recover;
    auto log = PublicationLog::Open(dir_, registry, options);
    ASSERT_FALSE(log.ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(log.status())) << log.status();
    EXPECT_TRUE(absl::StrContains(log.status().message(), "format 2"));
    EXPECT_TRUE(absl::StrContains(log.status().message(), "SHA-256"));
    EXPECT_EQ(registry.publication_count(), 0u);
  }
  EXPECT_EQ(Read("publications.snapshot"), old);
  EXPECT_TRUE(FilesStartingWith("publications.snapshot.damaged").empty());
}

TEST_F(PublicationLogTest, TornLastRecordIsIgnored) {
  WriteEmptySnapshot();
  const std::string whole = Publish("hans", "whole.txt", 7);
  Append("publications.journal",
         FormatJournalHeader() + whole +
             Publish("hans", "torn.txt", 3).substr(0, 20));
  Registry registry;
  ASSERT_TRUE(PublicationLog::Open(dir_, registry).ok());
  EXPECT_EQ(registry.PublishedBy("hans"),
            std::vector<std::string>{"whole.txt"});
}

TEST_F(PublicationLogTest, ATailOfNulBytesIsATornRecord) {
  WriteEmptySnapshot();
  Append("publications.journal", FormatJournalHeader() +
                                     Publish("hans", "whole.txt", 7) +
                                     std::string(4096, '\0'));
  Registry registry;
  ASSERT_TRUE(PublicationLog::Open(dir_, registry).ok());
  EXPECT_EQ(registry.PublishedBy("hans"),
            std::vector<std::string>{"whole.txt"});
}

TEST_F(PublicationLogTest, ASnapshotCutAtALineBoundaryIsRefused) {
  MakeSnapshotOfThree();
  const std::string snapshot = Read("publications.snapshot");
  // Keep the header and the first record only: every line whole.
  const size_t cut = snapshot.find('\n', snapshot.find('\n') + 1) + 1;
  Write("publications.snapshot", snapshot.substr(0, cut));
  ExpectRefused("publications.snapshot", "no END line");
  EXPECT_EQ(Recover("publications.snapshot").size(), 1u);
}

TEST_F(PublicationLogTest, ASnapshotWithLinesMissingBeforeItsEndIsRefused) {
  MakeSnapshotOfThree();
  std::vector<std::string> lines =
      absl::StrSplit(Read("publications.snapshot"), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 5u);
  lines.erase(lines.begin() + 2);
  Write("publications.snapshot",
        absl::StrCat(absl::StrJoin(lines, "\n"), "\n"));
  ExpectRefused("publications.snapshot",
                "END says 3 records but the snapshot holds 2");
  EXPECT_EQ(Recover("publications.snapshot").size(), 2u);
}

TEST_F(PublicationLogTest, AnEmptiedSnapshotIsRefused) {
  MakeSnapshotOfThree();
  Write("publications.snapshot", "");
  ExpectRefused("publications.snapshot", "empty but");
  EXPECT_TRUE(Recover("publications.snapshot").empty());
}

TEST_F(PublicationLogTest, AMissingSnapshotBesideAJournalIsRefused) {
  MakeSnapshotOfThree();
  std::filesystem::remove(Path("publications.snapshot"));
  ExpectRefused("publications.snapshot", "missing but");
}

TEST_F(PublicationLogTest, OneChangedDigitOfASizeIsRefused) {
  MakeSnapshotOfThree();
  std::string snapshot = Read("publications.snapshot");
  const size_t at = snapshot.find(" 22 ");
  ASSERT_NE(at, std::string::npos) << snapshot;
  snapshot[at + 2] = '3';
  const size_t line_start = snapshot.rfind('\n', at) + 1;
  Write("publications.snapshot", snapshot);
  // Records follow the registry's hash order: find b.txt's line number.
  const size_t line =
      1 + static_cast<size_t>(std::count(
              snapshot.begin(),
              snapshot.begin() + static_cast<long>(line_start), '\n'));
  ExpectRefused("publications.snapshot",
                absl::StrCat("byte ", line_start, " (line ", line,
                             "): checksum does not match"));
  EXPECT_EQ(Recover("publications.snapshot"),
            (std::vector<std::string>{"a.txt", "c.txt"}));
}

TEST_F(PublicationLogTest, AJournalRecordChangedMidFileIsRefused) {
  const std::string first = Publish("hans", "first.txt", 1);
  std::string changed = Publish("hans", "second.txt", 2);
  changed[2] = 'j';  // "hans" -> "jans": still a valid record, wrong checksum
  Append("publications.journal", FormatJournalHeader() + first + changed +
                                     Publish("hans", "third.txt", 3));
  WriteEmptySnapshot();
  ExpectRefused(
      "publications.journal",
      absl::StrCat("byte ", FormatJournalHeader().size() + first.size(),
                   " (line 3): checksum does not match"));
  EXPECT_EQ(Recover("publications.journal"),
            (std::vector<std::string>{"first.txt", "third.txt"}));
}

// A journal of 0.1.0 is refused as its snapshot is, whatever its records.
TEST_F(PublicationLogTest, AJournalOf010IsRefused) {
  Append("publications.journal",
         "P hans 7 nothex x.txt\nP hans 7 " + std::string(64, 'b') + " y\n");
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_FALSE(log.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(log.status())) << log.status();
  EXPECT_TRUE(absl::StrContains(log.status().message(),
                                "publications.journal is in the format of "
                                "0.1.0"))
      << log.status();
}

TEST_F(PublicationLogTest, AnOldJournalFromACrashMidCompactionReplaysInOrder) {
  // The crash came after the background snapshot replaced the old one but
  // before the .old journal was removed: the snapshot already holds
  // b.txt at its newest; replaying .old over it brings a.txt back for a
  // moment, and the journal after it takes it away again.
  Write("publications.journal.old", FormatJournalHeader() +
                                        Publish("hans", "a.txt", 1) +
                                        Publish("hans", "b.txt", 1));
  Write("publications.journal", FormatJournalHeader() +
                                    Unpublish("hans", "a.txt") +
                                    Publish("hans", "b.txt", 2));
  Registry newest;
  newest.Publish("hans", "b.txt", Meta(2, 7));
  Write("publications.snapshot", FormatPublicationSnapshot(newest));
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(registry.PublishedBy("hans"), std::vector<std::string>{"b.txt"});
  EXPECT_EQ(SizeOf(registry, "hans", "b.txt"), 2);
  EXPECT_TRUE(FilesStartingWith("publications.journal.old").empty());
}

TEST_F(PublicationLogTest, ADamagedOldJournalIsRefusedAndRecoverKeepsTheRest) {
  MakeSnapshotOfThree();
  std::string old = FormatJournalHeader() + Unpublish("hans", "a.txt") +
                    Publish("hans", "d.txt", 4);
  old[old.size() - 3] ^= 1;  // a checksum digit of the last record
  Write("publications.journal.old", old);
  ExpectRefused("publications.journal.old", "checksum does not match");
  EXPECT_EQ(Recover("publications.journal.old"),
            (std::vector<std::string>{"b.txt", "c.txt"}));
}

TEST_F(PublicationLogTest, AFormatFromTheFutureIsNotDamage) {
  Write("publications.snapshot", absl::StrCat(
                                     "PCFS-SNAPSHOT 4 ",
                                     [] {
                                       char crc[9];
                                       std::snprintf(crc, sizeof(crc), "%08x",
                                                     Crc32c("PCFS-SNAPSHOT 4"));
                                       return std::string(crc);
                                     }(),
                                     "\n"));
  Registry registry;
  PublicationLog::Options options;
  options.recover = true;
  auto log = PublicationLog::Open(dir_, registry, options);
  ASSERT_FALSE(log.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(log.status())) << log.status();
  EXPECT_TRUE(absl::StrContains(log.status().message(), "format 4"));
  EXPECT_TRUE(FilesStartingWith("publications.snapshot.damaged").empty());
}

TEST_F(PublicationLogTest, ASecondLogOnTheFolderIsRefusedWithThePid) {
  Registry registry;
  auto log = PublicationLog::Open(dir_, registry);
  ASSERT_TRUE(log.ok()) << log.status();
  Registry other;
  auto second = PublicationLog::Open(dir_, other);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            absl::StrCat("state folder ", dir_, " is in use by pid ",
                         ::getpid(), " (", dir_, "/lock)"));
  // check-config reads without the lock.
  EXPECT_TRUE(PublicationLog::Check(dir_).ok());
  log->reset();
  EXPECT_TRUE(PublicationLog::Open(dir_, other).ok());
}

TEST_F(PublicationLogTest, TheJournalIsCompactedWhileAppendsGoOn) {
  PublicationLog::Options options;
  options.compact_journal_bytes = 512;
  constexpr int kChanges = 300;
  {
    Registry registry;
    auto log = PublicationLog::Open(dir_, registry, options);
    ASSERT_TRUE(log.ok()) << log.status();
    // While the background snapshot reads the registry, this thread keeps
    // appending and applying, each change once it is durable (the caller
    // contract), and a reader keeps listing.
    std::atomic<bool> done{false};
    std::thread reader([&] {
      for (int i = 0; i < 100000 && !done.load(); ++i) {
        (void)registry.PublishedBy(i % 2 == 0 ? "hans" : "vader");
      }
    });
    int failures = 0;
    for (int i = 0; i < kChanges; ++i) {
      const std::string user = i % 2 == 0 ? "hans" : "vader";
      const std::string name = absl::StrCat("f", i % 40, ".txt");
      if (i % 3 == 2) {
        if ((*log)->RecordUnpublish(user, name).ok()) {
          registry.Unpublish(user, name).IgnoreError();
        } else {
          ++failures;
        }
      } else {
        const FileMeta meta = Meta(static_cast<uint64_t>(i), 1);
        if ((*log)->RecordPublish(user, name, meta).ok()) {
          registry.Publish(user, name, meta);
        } else {
          ++failures;
        }
      }
    }
    done = true;
    reader.join();
    EXPECT_EQ(failures, 0);
    (*log)->WaitForCompaction();
    EXPECT_GE((*log)->compactions(), 1u);
    // A rotation waits while a compaction still runs, so on a slow disk one
    // compaction may have spanned most of the appends and left the journal
    // long. The next append rotates it if it is past the limit; after that
    // it holds at most the limit and one record, far fewer than the 300
    // records written.
    {
      const FileMeta meta = Meta(uint64_t{kChanges}, 1);
      ASSERT_TRUE((*log)->RecordPublish("hans", "last.txt", meta).ok());
      registry.Publish("hans", "last.txt", meta);
      (*log)->WaitForCompaction();
    }
    const std::vector<std::string> journal_lines =
        absl::StrSplit(Read("publications.journal"), '\n', absl::SkipEmpty());
    EXPECT_LT(journal_lines.size(), size_t{kChanges / 3})
        << "the journal was not rotated";
    EXPECT_TRUE(FilesStartingWith("publications.journal.old").empty());
    // What a restart would load equals what is in memory.
    Registry reloaded;
    ASSERT_TRUE(PublicationLog::Check(dir_).ok());
    std::string text = FormatPublicationSnapshot(registry);
    std::vector<std::string> expected = absl::StrSplit(text, '\n');
    std::sort(expected.begin(), expected.end());
    log->reset();
    auto reopened = PublicationLog::Open(dir_, reloaded);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    std::vector<std::string> got =
        absl::StrSplit(FormatPublicationSnapshot(reloaded), '\n');
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expected);
  }
}

TEST_F(PublicationLogTest, RecordsWithBadNamesAreRefused) {
  Registry registry;
  EXPECT_FALSE(ApplyPublicationRecord(
                   "P hans 1 " + std::string(64, 'c') + " a/b", registry)
                   .ok());
  EXPECT_FALSE(ApplyPublicationRecord("U bad!user x", registry).ok());
  EXPECT_FALSE(ApplyPublicationRecord("X hans x", registry).ok());
  EXPECT_EQ(registry.publication_count(), 0u);
}

}  // namespace
}  // namespace pcfs
