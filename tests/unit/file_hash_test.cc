#include "peerctl/file_hash.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/proto/merkle.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ::absl::StatusCode;

constexpr absl::string_view kAbcSha256 =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
// The Merkle roots (core/proto/merkle.h): "abc" is one chunk, so its root is
// its leaf, SHA-256(0x00 "abc") (`printf '\x00abc' | openssl dgst -sha256`);
// the empty file's is SHA-256 of nothing.
constexpr absl::string_view kAbcRoot =
    "609f6e36d2405585188d5cfd761f407c7cc46a7d3f314c88270469dde315fcd1";
constexpr absl::string_view kEmptyRoot =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// A fresh folder under /tmp holding a "share" subfolder; removed at the end.
class FileHashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs_file_hash_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    share_ = root_ + "/share";
    ASSERT_EQ(::mkdir(share_.c_str(), 0755), 0);
    dir_.Reset(::open(share_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir_.valid());
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Write(const std::string& path, absl::string_view contents) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    ASSERT_TRUE(out.good());
  }
  void WriteShared(absl::string_view name, absl::string_view contents) {
    Write(share_ + "/" + std::string(name), contents);
  }

  std::string root_;
  std::string share_;
  UniqueFd dir_;
};

TEST_F(FileHashTest, HashesKnownContents) {
  WriteShared("abc", "abc");
  absl::StatusOr<FileInfo> info = HashFile(dir_.get(), "abc");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 3u);
  EXPECT_EQ(Sha256ToHex(info->root), kAbcRoot);
}

TEST_F(FileHashTest, HashesEmptyFile) {
  WriteShared("empty", "");
  absl::StatusOr<FileInfo> info = HashFile(dir_.get(), "empty");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 0u);
  EXPECT_EQ(Sha256ToHex(info->root), kEmptyRoot);
}

// Chunks hashed on the pool give the leaves and root that hashing them one
// by one in order gives.
TEST_F(FileHashTest, HashesFileOfSeveralChunks) {
  std::string contents;
  for (uint64_t i = 0; i < 3 * kMerkleChunkBytes + 17; ++i) {
    contents += static_cast<char>(i * 31 % 251);
  }
  WriteShared("big", contents);
  std::vector<Sha256Digest> leaves;
  for (uint64_t i = 0; i < 4; ++i) {
    leaves.push_back(MerkleLeafHash(absl::string_view(contents).substr(
        i * kMerkleChunkBytes, MerkleChunkLength(contents.size(), i))));
  }
  absl::StatusOr<FileInfo> info = HashFile(share_, "big");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, contents.size());
  EXPECT_EQ(info->leaves, leaves);
  EXPECT_EQ(info->root, MerkleRoot(leaves));
}

TEST_F(FileHashTest, MissingFileIsNotFound) {
  EXPECT_EQ(HashFile(dir_.get(), "nope").status().code(),
            StatusCode::kNotFound);
}

TEST_F(FileHashTest, DirectoryIsNotARegularFile) {
  ASSERT_EQ(::mkdir((share_ + "/sub").c_str(), 0755), 0);
  EXPECT_EQ(HashFile(dir_.get(), "sub").status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(FileHashTest, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo((share_ + "/pipe").c_str(), 0644), 0);
  EXPECT_EQ(HashFile(dir_.get(), "pipe").status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(FileHashTest, InvalidNamesAreRefused) {
  Write(root_ + "/secret", "top secret");
  for (absl::string_view name : {"../secret", "/etc/passwd", "..", "a/b", ""}) {
    EXPECT_EQ(HashFile(dir_.get(), name).status().code(),
              StatusCode::kInvalidArgument)
        << name;
  }
}

TEST_F(FileHashTest, SymlinkOutsideTheShareIsRefused) {
  Write(root_ + "/secret", "top secret");
  ASSERT_EQ(::symlink("../secret", (share_ + "/relative").c_str()), 0);
  ASSERT_EQ(
      ::symlink((root_ + "/secret").c_str(), (share_ + "/absolute").c_str()),
      0);
  EXPECT_EQ(HashFile(dir_.get(), "relative").status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(HashFile(dir_.get(), "absolute").status().code(),
            StatusCode::kPermissionDenied);
}

TEST_F(FileHashTest, SymlinkInsideTheShareIsFollowed) {
  WriteShared("abc", "abc");
  ASSERT_EQ(::symlink("abc", (share_ + "/alias").c_str()), 0);
  absl::StatusOr<FileInfo> info = HashFile(dir_.get(), "alias");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(Sha256ToHex(info->root), kAbcRoot);
}

TEST_F(FileHashTest, UnreadableFileIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads every file";
  WriteShared("locked", "x");
  ASSERT_EQ(::chmod((share_ + "/locked").c_str(), 0), 0);
  EXPECT_EQ(HashFile(dir_.get(), "locked").status().code(),
            StatusCode::kPermissionDenied);
}

TEST(Sha256HexTest, RoundTrips) {
  absl::StatusOr<Sha256Digest> digest = Sha256FromHex(kAbcSha256);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(Sha256ToHex(*digest), kAbcSha256);
}

TEST(Sha256HexTest, RefusesWrongLengthOrDigits) {
  EXPECT_FALSE(Sha256FromHex(kAbcSha256.substr(1)).ok());
  EXPECT_FALSE(Sha256FromHex(std::string(64, 'g')).ok());
}

TEST_F(FileHashTest, CacheDoesNotReadAnUnchangedFileTwice) {
  WriteShared("abc", "abc");
  FileHashCache cache;
  ASSERT_TRUE(cache.Hash(dir_.get(), "abc").ok());
  absl::StatusOr<FileInfo> again = cache.Hash(dir_.get(), "abc");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Sha256ToHex(again->root), kAbcRoot);
  EXPECT_EQ(cache.files_read(), 1u);
}

TEST_F(FileHashTest, CachedNeverReadsTheFile) {
  WriteShared("abc", "abc");
  FileHashCache cache;
  FileIdentity before_hash;
  absl::StatusOr<std::optional<FileInfo>> none =
      cache.Cached(share_, "abc", &before_hash);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  FileIdentity hashed;
  ASSERT_TRUE(cache.Hash(dir_.get(), "abc", &hashed).ok());
  FileIdentity after_hash;
  absl::StatusOr<std::optional<FileInfo>> held =
      cache.Cached(share_, "abc", &after_hash);
  ASSERT_TRUE(held.ok() && held->has_value()) << held.status();
  EXPECT_EQ(Sha256ToHex((*held)->root), kAbcRoot);
  EXPECT_EQ(before_hash, hashed);
  EXPECT_EQ(after_hash, hashed);
  EXPECT_EQ(cache.files_read(), 1u);
  EXPECT_EQ(cache.Cached(share_, "missing").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(cache.Cached(share_, "../abc").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(FileHashTest, PubRereadsWhatAnotherRunHashed) {
  WriteShared("abc", "abc");
  struct stat info {};
  ASSERT_EQ(::stat((share_ + "/abc").c_str(), &info), 0);
  // Another run's hash of this version (from the hash store), wrong: the
  // file changed in place keeping its size and mtime.
  FileInfo stale;
  stale.size = 3;
  stale.leaves.push_back(Sha256Digest{});
  stale.root = Sha256Digest{};
  FileHashCache cache;
  cache.Add(IdentityOf(info), stale);
  absl::StatusOr<FileInfo> taken = cache.Hash(dir_.get(), "abc");
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->root, Sha256Digest{});
  EXPECT_EQ(cache.files_read(), 0u);
  absl::StatusOr<FileInfo> reread =
      cache.Hash(dir_.get(), "abc", nullptr, nullptr, /*reread_added=*/true);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(Sha256ToHex(reread->root), kAbcRoot);
  EXPECT_EQ(cache.files_read(), 1u);
  // Hashed here now: taken as it is from then on.
  ASSERT_TRUE(
      cache.Hash(dir_.get(), "abc", nullptr, nullptr, /*reread_added=*/true)
          .ok());
  EXPECT_EQ(cache.files_read(), 1u);
}

TEST_F(FileHashTest, ACancelledHashIsNotCached) {
  WriteShared("abc", "abc");
  FileHashCache cache;
  const std::atomic<bool> cancel{true};
  absl::StatusOr<FileInfo> stopped =
      cache.Hash(dir_.get(), "abc", nullptr, &cancel);
  EXPECT_TRUE(absl::IsCancelled(stopped.status())) << stopped.status();
  absl::StatusOr<FileInfo> again = cache.Hash(dir_.get(), "abc");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Sha256ToHex(again->root), kAbcRoot);
  EXPECT_EQ(cache.files_read(), 2u);
}

TEST_F(FileHashTest, CacheRehashesAFileChangedInPlace) {
  WriteShared("f", "abc");
  FileHashCache cache;
  ASSERT_TRUE(cache.Hash(share_, "f").ok());
  // Same inode and size, new contents, and a clearly different mtime.
  WriteShared("f", "xyz");
  const timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(dir_.get(), "f", times, 0), 0);
  absl::StatusOr<FileInfo> info = cache.Hash(share_, "f");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_NE(Sha256ToHex(info->root), kAbcRoot);
  EXPECT_EQ(cache.files_read(), 2u);
}

TEST_F(FileHashTest, CacheStillRefusesWhatHashFileRefuses) {
  ASSERT_EQ(::mkdir((share_ + "/sub").c_str(), 0755), 0);
  FileHashCache cache;
  EXPECT_EQ(cache.Hash(dir_.get(), "sub").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache.Hash(dir_.get(), "../x").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(FileHashTest, CacheForgetsBeyondItsCapacity) {
  WriteShared("a", "a");
  WriteShared("b", "b");
  FileHashCache cache(1);
  ASSERT_TRUE(cache.Hash(dir_.get(), "a").ok());
  ASSERT_TRUE(cache.Hash(dir_.get(), "b").ok());  // pushes a out
  ASSERT_TRUE(cache.Hash(dir_.get(), "a").ok());
  EXPECT_EQ(cache.files_read(), 3u);
}

TEST_F(FileHashTest, CacheAnswersConcurrentCallersAlike) {
  WriteShared("abc", "abc");
  FileHashCache cache;
  std::vector<std::string> results(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<FileInfo> info = cache.Hash(dir_.get(), "abc");
      results[i] = info.ok() ? Sha256ToHex(info->root) : "error";
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& result : results) EXPECT_EQ(result, kAbcRoot);
}

}  // namespace
}  // namespace pcfs
