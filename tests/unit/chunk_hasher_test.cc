// Tests of peerctl/chunk_hasher.h: the pool's leaves equal the ones hashed
// in order on one thread, for any thread count and submission order; a
// mismatch with the expected leaves, a short file and a failed read are
// reported; the destructor stops a pool with work queued.
#include "peerctl/chunk_hasher.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/base/unique_fd.h"
#include "core/proto/merkle.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

class ChunkHasherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs_chunk_hasher_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    std::mt19937 random(7);
    contents_.resize(5 * kMerkleChunkBytes + 333);
    for (char& c : contents_) c = static_cast<char>(random());
    file_.Reset(
        ::open((dir_ + "/f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(file_);
    ASSERT_EQ(::write(file_.get(), contents_.data(), contents_.size()),
              static_cast<ssize_t>(contents_.size()));
    for (uint64_t i = 0; i < MerkleChunkCount(contents_.size()); ++i) {
      leaves_.push_back(MerkleLeafHash(absl::string_view(contents_).substr(
          i * kMerkleChunkBytes, MerkleChunkLength(contents_.size(), i))));
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  std::string contents_;
  UniqueFd file_;
  std::vector<Sha256Digest> leaves_;
};

TEST_F(ChunkHasherTest, AnyThreadCountGivesTheSameLeaves) {
  for (size_t threads : {1, 2, 4, 64}) {
    absl::StatusOr<std::vector<Sha256Digest>> leaves =
        HashLeaves(file_.get(), contents_.size(), threads);
    ASSERT_TRUE(leaves.ok()) << leaves.status();
    EXPECT_EQ(*leaves, leaves_) << threads << " threads";
  }
}

TEST_F(ChunkHasherTest, ThreadsAreBounded) {
  ChunkHashPool::Options options;
  options.threads = 1000;
  auto pool = ChunkHashPool::Create(file_.get(), contents_.size(), options);
  ASSERT_TRUE(pool.ok());
  EXPECT_LE((*pool)->thread_count(), 6u);  // 6 chunks
  options.threads = 0;
  auto one = ChunkHashPool::Create(file_.get(), 10, options);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ((*one)->thread_count(), 1u);
}

TEST_F(ChunkHasherTest, OutOfOrderSubmissionsVerifyAgainstExpected) {
  ChunkHashPool::Options options;
  options.threads = 3;
  options.expected = leaves_;
  auto pool = ChunkHashPool::Create(file_.get(), contents_.size(), options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  for (uint64_t i : {5, 0, 3, 1, 4, 2}) (*pool)->Submit(i);
  ASSERT_TRUE((*pool)->Wait().ok());
  for (uint64_t i = 0; i < 6; ++i) EXPECT_TRUE((*pool)->Verified(i)) << i;
  EXPECT_EQ(MerkleRoot((*pool)->leaves()), MerkleRoot(leaves_));
}

TEST_F(ChunkHasherTest, AMismatchNamesTheChunk) {
  ChunkHashPool::Options options;
  options.expected = leaves_;
  options.expected[4][0] ^= 1;
  auto pool = ChunkHashPool::Create(file_.get(), contents_.size(), options);
  ASSERT_TRUE(pool.ok());
  for (uint64_t i = 0; i < 6; ++i) (*pool)->Submit(i);
  absl::Status status = (*pool)->Wait();
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_NE(status.message().find("chunk 4 (bytes 4194304-5242879)"),
            absl::string_view::npos)
      << status;
  EXPECT_EQ((*pool)->error(), status);
  EXPECT_FALSE((*pool)->Verified(4));
  EXPECT_TRUE((*pool)->Verified(5));
}

// A descriptor that cannot be read (opened for writing only) fails with
// pread's error: nothing is taken as verified.
TEST_F(ChunkHasherTest, AnUnreadableDescriptorFailsWithTheReadError) {
  UniqueFd write_only(::open((dir_ + "/f").c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(write_only);
  ChunkHashPool::Options options;
  options.expected = leaves_;
  auto pool =
      ChunkHashPool::Create(write_only.get(), contents_.size(), options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  (*pool)->Submit(0);
  absl::Status status = (*pool)->Wait();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("pread"), absl::string_view::npos) << status;
  EXPECT_FALSE((*pool)->Verified(0));
}

TEST_F(ChunkHasherTest, WrongExpectedCountIsInvalid) {
  ChunkHashPool::Options options;
  options.expected = leaves_;
  options.expected.pop_back();
  EXPECT_EQ(ChunkHashPool::Create(file_.get(), contents_.size(), options)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ChunkHasherTest, AShortFileIsDataLoss) {
  absl::StatusOr<std::vector<Sha256Digest>> leaves =
      HashLeaves(file_.get(), contents_.size() + 5);
  EXPECT_TRUE(absl::IsDataLoss(leaves.status())) << leaves.status();
}

TEST_F(ChunkHasherTest, EmptyFileHasNoLeaves) {
  absl::StatusOr<std::vector<Sha256Digest>> leaves = HashLeaves(file_.get(), 0);
  ASSERT_TRUE(leaves.ok());
  EXPECT_TRUE(leaves->empty());
}

TEST_F(ChunkHasherTest, DestroyedWithWorkQueuedStops) {
  for (int round = 0; round < 5; ++round) {
    auto pool = ChunkHashPool::Create(file_.get(), contents_.size(), {});
    ASSERT_TRUE(pool.ok());
    for (uint64_t i = 0; i < 6; ++i) (*pool)->Submit(i);
    pool->reset();  // no Wait(): queued chunks are dropped, workers joined
  }
}

TEST_F(ChunkHasherTest, ACancelledHashReadsNothingAndSaysSo) {
  const std::atomic<bool> cancel{true};
  absl::StatusOr<std::vector<Sha256Digest>> leaves =
      HashLeaves(file_.get(), contents_.size(), 2, &cancel);
  EXPECT_TRUE(absl::IsCancelled(leaves.status())) << leaves.status();
}

TEST_F(ChunkHasherTest, ChunksQueuedAfterACancelAreDropped) {
  std::atomic<bool> cancel{false};
  ChunkHashPool::Options options;
  options.threads = 1;
  options.cancel = &cancel;
  auto pool = ChunkHashPool::Create(file_.get(), contents_.size(), options);
  ASSERT_TRUE(pool.ok());
  (*pool)->Submit(0);
  ASSERT_TRUE((*pool)->Wait().ok());
  cancel = true;
  for (uint64_t i = 1; i < (*pool)->chunk_count(); ++i) (*pool)->Submit(i);
  EXPECT_TRUE(absl::IsCancelled((*pool)->Wait()));
  EXPECT_TRUE((*pool)->Verified(0));
  EXPECT_EQ((*pool)->leaf(0), leaves_[0]);
  for (uint64_t i = 1; i < (*pool)->chunk_count(); ++i) {
    EXPECT_FALSE((*pool)->Verified(i)) << "chunk " << i;
  }
}

}  // namespace
}  // namespace pcfs
