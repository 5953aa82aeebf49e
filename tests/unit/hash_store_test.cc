// The hash store (peerctl/hash_store.h): its format round-trips, damage of
// any kind is refused with where it is, and a store that cannot be used is
// ignored with a warning, never trusted.
#include "peerctl/hash_store.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "core/base/file_util.h"
#include "core/proto/merkle.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

// An entry as hashing `contents` would give, with a made-up identity.
std::pair<FileIdentity, FileInfo> EntryOf(uint64_t inode,
                                          const std::string& contents) {
  FileIdentity identity;
  identity.device = 42;
  identity.inode = inode;
  identity.size = contents.size();
  identity.mtime_sec = 1700000000;
  identity.mtime_nsec = 123456789;
  FileInfo info;
  info.size = contents.size();
  for (uint64_t i = 0; i < MerkleChunkCount(contents.size()); ++i) {
    info.leaves.push_back(MerkleLeafHash(absl::string_view(contents).substr(
        i * kMerkleChunkBytes, MerkleChunkLength(contents.size(), i))));
  }
  info.root = MerkleRoot(info.leaves);
  return {identity, info};
}

HashStoreEntries SomeEntries() {
  return {EntryOf(1, ""), EntryOf(2, "abc"),
          EntryOf(3, std::string(2 * kMerkleChunkBytes + 7, 'x'))};
}

class HashStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs_hash_store_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void WriteRaw(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    ASSERT_TRUE(out.good());
  }
  std::string dir_;
};

TEST(HashStoreCodecTest, RoundTripsEveryEntryWithItsRoot) {
  const HashStoreEntries entries = SomeEntries();
  absl::StatusOr<HashStoreEntries> decoded =
      DecodeHashStore(EncodeHashStore(entries));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, entries);
  absl::StatusOr<HashStoreEntries> none = DecodeHashStore(EncodeHashStore({}));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST(HashStoreCodecTest, AnyChangedByteIsRefused) {
  const std::string bytes = EncodeHashStore(SomeEntries());
  for (size_t at = 0; at < bytes.size(); ++at) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x01);
    EXPECT_FALSE(DecodeHashStore(damaged).ok()) << "byte " << at;
  }
}

TEST(HashStoreCodecTest, AStoreCutAnywhereIsRefused) {
  const std::string bytes = EncodeHashStore(SomeEntries());
  for (size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(DecodeHashStore(bytes.substr(0, size)).ok()) << size;
  }
}

TEST(HashStoreCodecTest, DamageSaysWhatAndWhere) {
  std::string bytes = EncodeHashStore(SomeEntries());
  bytes[20] = static_cast<char>(bytes[20] ^ 0x40);
  absl::Status damaged = DecodeHashStore(bytes).status();
  EXPECT_TRUE(absl::IsDataLoss(damaged)) << damaged;
  EXPECT_TRUE(absl::StrContains(damaged.message(), "checksum does not match"))
      << damaged;
  absl::Status other = DecodeHashStore("not a store at all, is it?").status();
  EXPECT_TRUE(absl::IsInvalidArgument(other)) << other;
}

TEST_F(HashStoreTest, SavedStoreLoadsInAFolderItMakesPrivate) {
  const std::string path = dir_ + "/state/peerconnect/file-hashes";
  ASSERT_TRUE(SaveHashStore(path, SomeEntries()).ok());
  struct stat folder {};
  ASSERT_EQ(::stat((dir_ + "/state/peerconnect").c_str(), &folder), 0);
  EXPECT_EQ(folder.st_mode & 0777, 0700u);
  absl::StatusOr<HashStoreEntries> loaded = LoadHashStore(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*loaded, SomeEntries());
  EXPECT_TRUE(absl::IsNotFound(LoadHashStore(dir_ + "/none").status()));
}

TEST_F(HashStoreTest, ADamagedStoreIsIgnoredWithAWarning) {
  const std::string path = dir_ + "/file-hashes";
  std::string bytes = EncodeHashStore(SomeEntries());
  bytes.resize(bytes.size() - 40);
  WriteRaw(path, bytes);
  FileHashCache cache;
  const std::string warning = LoadHashStoreInto(path, cache);
  EXPECT_TRUE(absl::StrContains(warning, path)) << warning;
  EXPECT_TRUE(absl::StrContains(warning, "read again")) << warning;
  EXPECT_TRUE(cache.Entries().empty());
  // No store is no warning.
  EXPECT_EQ(LoadHashStoreInto(dir_ + "/none", cache), "");
}

TEST_F(HashStoreTest, SavingKeepsWhatAnotherPeerctlStoredUpToTheCapacity) {
  const std::string path = dir_ + "/file-hashes";
  const HashStoreEntries entries = SomeEntries();
  // Another peerctl stored entries 0 and 1; this one hashed entry 2.
  ASSERT_TRUE(SaveHashStore(path, {entries[0], entries[1]}).ok());
  FileHashCache cache(2);
  cache.Add(entries[2].first, entries[2].second);
  EXPECT_EQ(SaveHashStoreFrom(path, cache), "");
  absl::StatusOr<HashStoreEntries> saved = LoadHashStore(path);
  ASSERT_TRUE(saved.ok()) << saved.status();
  ASSERT_EQ(saved->size(), 2u);
  EXPECT_EQ((*saved)[0], entries[2]);
  // Loaded back, the cache answers from it.
  FileHashCache fresh;
  EXPECT_EQ(LoadHashStoreInto(path, fresh), "");
  EXPECT_EQ(fresh.Entries().size(), 2u);
}

// Several peerctl of one state folder saving at once (threads here, each
// with a file description of its own, which is what flock excludes): each
// save merges what the store holds under the lock, so none loses another's
// entries. Without the lock, a save that read the store before another's
// write and wrote after it would drop that one's entry.
TEST_F(HashStoreTest, SaversAtOnceLoseNoneOfEachOthersEntries) {
  const std::string path = dir_ + "/file-hashes";
  constexpr int kSavers = 6;
  constexpr int kRounds = 15;
  std::vector<std::thread> savers;
  std::vector<std::string> warnings(kSavers);
  for (int i = 0; i < kSavers; ++i) {
    savers.emplace_back([&, i] {
      FileHashCache cache;
      const auto entry = EntryOf(100 + i, std::string(1000 + i, 'a' + i));
      cache.Add(entry.first, entry.second);
      for (int round = 0; round < kRounds; ++round) {
        const std::string warning = SaveHashStoreFrom(path, cache);
        if (!warning.empty()) warnings[i] = warning;
      }
    });
  }
  for (std::thread& saver : savers) saver.join();
  for (const std::string& warning : warnings) EXPECT_EQ(warning, "");
  absl::StatusOr<HashStoreEntries> saved = LoadHashStore(path);
  ASSERT_TRUE(saved.ok()) << saved.status();
  std::vector<uint64_t> inodes;
  for (const auto& [identity, info] : *saved) inodes.push_back(identity.inode);
  std::sort(inodes.begin(), inodes.end());
  EXPECT_EQ(inodes, (std::vector<uint64_t>{100, 101, 102, 103, 104, 105}));
}

TEST_F(HashStoreTest, OnlyARegularFileOfABoundedSizeIsRead) {
  // A FIFO would block a read; a device could be read for ever.
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::Status not_regular = LoadHashStore(fifo).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(not_regular)) << not_regular;
  EXPECT_TRUE(absl::IsFailedPrecondition(LoadHashStore("/dev/zero").status()));
  const std::string large = dir_ + "/large";
  WriteRaw(large, "");
  std::filesystem::resize_file(large, kMaxHashStoreBytes + 1);
  absl::Status too_large = LoadHashStore(large).status();
  EXPECT_TRUE(absl::StrContains(too_large.message(), "so not read"))
      << too_large;
}

TEST_F(HashStoreTest, SavingRemovesWhatAKilledSaveLeft) {
  const std::string path = dir_ + "/file-hashes";
  WriteRaw(path + ".tmp.AbC123", "left by a peerctl killed while saving");
  FileHashCache cache;
  cache.Add(SomeEntries()[1].first, SomeEntries()[1].second);
  EXPECT_EQ(SaveHashStoreFrom(path, cache), "");
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names,
            (std::vector<std::string>{"file-hashes", "file-hashes.lock"}));
}

TEST_F(HashStoreTest, AFolderThatCannotBeMadeIsAWarning) {
  WriteRaw(dir_ + "/file", "in the way");
  FileHashCache cache;
  cache.Add(SomeEntries()[1].first, SomeEntries()[1].second);
  const std::string warning =
      SaveHashStoreFrom(dir_ + "/file/peerconnect/file-hashes", cache);
  EXPECT_TRUE(absl::StrContains(warning, "cannot save the hash store"))
      << warning;
}

}  // namespace
}  // namespace pcfs
