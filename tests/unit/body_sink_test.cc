// Tests of peerctl/body_sink.h: every byte lands in the file in order, each
// completed chunk goes to the pool (and a bad one stops the body), writes
// start at a chunk boundary only, and errors stick.
#include "peerctl/body_sink.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/base/unique_fd.h"
#include "core/proto/merkle.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

// The leaves of `bytes`, hashed in order on this thread.
std::vector<Sha256Digest> LeavesOf(absl::string_view bytes) {
  std::vector<Sha256Digest> leaves;
  for (uint64_t i = 0; i < MerkleChunkCount(bytes.size()); ++i) {
    leaves.push_back(MerkleLeafHash(bytes.substr(
        i * kMerkleChunkBytes, MerkleChunkLength(bytes.size(), i))));
  }
  return leaves;
}

class BodySinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs_body_sink_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    path_ = root_ + "/body";
    file_.Reset(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(file_);
    int ends[2];
    ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
    pipe_out_.Reset(ends[0]);
    pipe_in_.Reset(ends[1]);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::string Contents() {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // Puts `bytes` (at most a pipe's worth) into the pipe.
  void Fill(absl::string_view bytes) {
    ASSERT_EQ(::write(pipe_in_.get(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }

  std::unique_ptr<ChunkHashPool> Pool(uint64_t size,
                                      std::vector<Sha256Digest> expected = {}) {
    ChunkHashPool::Options options;
    options.threads = 3;
    options.expected = std::move(expected);
    absl::StatusOr<std::unique_ptr<ChunkHashPool>> pool =
        ChunkHashPool::Create(file_.get(), size, std::move(options));
    EXPECT_TRUE(pool.ok()) << pool.status();
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  // A small writeback step, so that a few MiB take many.
  static BodySink::Options SmallOptions() {
    BodySink::Options options;
    options.writeback_step_bytes = 16384;
    return options;
  }

  std::string root_;
  std::string path_;
  UniqueFd file_;
  UniqueFd pipe_out_;
  UniqueFd pipe_in_;
};

TEST_F(BodySinkTest, WritesEveryByteAndHashesEveryChunk) {
  const std::string body = RandomBytes(3 * kMerkleChunkBytes + 1234, 1);
  std::unique_ptr<ChunkHashPool> pool = Pool(body.size());
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), pool.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  // Odd pieces, from memory and through the pipe, so chunks end mid-piece.
  size_t at = 0;
  bool from_pipe = false;
  while (at < body.size()) {
    const size_t piece = std::min<size_t>(body.size() - at, 40000);
    const absl::string_view bytes(body.data() + at, piece);
    if (from_pipe) {
      Fill(bytes);
      ASSERT_TRUE((*sink)->AppendFromPipe(pipe_out_.get(), piece).ok());
    } else {
      ASSERT_TRUE((*sink)->Append(bytes).ok());
    }
    from_pipe = !from_pipe;
    at += piece;
  }
  ASSERT_TRUE((*sink)->Finish().ok());
  EXPECT_EQ((*sink)->bytes_written(), body.size());
  EXPECT_EQ(Contents(), body);
  EXPECT_EQ(pool->leaves(), LeavesOf(body));
}

// The flusher hears of the bytes whose writeback the sink started: every
// whole step, not the tail (the caller's fsync covers that).
TEST_F(BodySinkTest, TellsItsFlusherOfEveryStepWritten) {
  const std::string body = RandomBytes(2 * kMerkleChunkBytes + 100, 7);
  std::unique_ptr<ChunkHashPool> pool = Pool(body.size());
  FileFlusher flusher(file_.get(), kMerkleChunkBytes);
  BodySink::Options options = SmallOptions();
  options.flusher = &flusher;
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), pool.get(), options);
  ASSERT_TRUE(sink.ok()) << sink.status();
  // A step at a time: the last 100 bytes fill no step.
  const size_t step = options.writeback_step_bytes;
  for (size_t at = 0; at < body.size(); at += step) {
    ASSERT_TRUE((*sink)->Append(absl::string_view(body).substr(at, step)).ok());
  }
  ASSERT_TRUE((*sink)->Finish().ok());
  EXPECT_TRUE(flusher.Stop().ok());
  EXPECT_EQ(flusher.written(), body.size() - 100);
  EXPECT_EQ(Contents(), body);
}

// Resuming: a sink that starts at chunk 2 hands over chunks 2.. only.
TEST_F(BodySinkTest, StartsAtAChunkBoundary) {
  const std::string body = RandomBytes(4 * kMerkleChunkBytes, 2);
  std::unique_ptr<ChunkHashPool> pool = Pool(body.size());
  ASSERT_EQ(::ftruncate(file_.get(), static_cast<off_t>(body.size())), 0);
  ASSERT_EQ(::lseek(file_.get(), 2 * kMerkleChunkBytes, SEEK_SET),
            static_cast<off_t>(2 * kMerkleChunkBytes));
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), pool.get());
  ASSERT_TRUE(sink.ok()) << sink.status();
  EXPECT_EQ((*sink)->start(), 2 * kMerkleChunkBytes);
  ASSERT_TRUE(
      (*sink)
          ->Append(absl::string_view(body).substr(2 * kMerkleChunkBytes))
          .ok());
  ASSERT_TRUE((*sink)->Finish().ok());
  const std::vector<Sha256Digest> leaves = LeavesOf(body);
  EXPECT_FALSE(pool->Verified(0));
  EXPECT_FALSE(pool->Verified(1));
  EXPECT_EQ(pool->leaf(2), leaves[2]);
  EXPECT_EQ(pool->leaf(3), leaves[3]);
}

TEST_F(BodySinkTest, MidChunkStartIsInvalid) {
  std::unique_ptr<ChunkHashPool> pool = Pool(2 * kMerkleChunkBytes);
  ASSERT_EQ(::lseek(file_.get(), 5, SEEK_SET), 5);
  EXPECT_EQ(BodySink::Create(file_.get(), pool.get()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A chunk that does not match its expected leaf ends the body with DataLoss
// naming the chunk: the rest is not taken.
TEST_F(BodySinkTest, ABadChunkStopsTheBody) {
  const std::string good = RandomBytes(4 * kMerkleChunkBytes, 3);
  std::string bad = good;
  bad[kMerkleChunkBytes + 10] ^= 1;  // chunk 1
  std::unique_ptr<ChunkHashPool> pool = Pool(good.size(), LeavesOf(good));
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), pool.get());
  ASSERT_TRUE(sink.ok()) << sink.status();
  absl::Status status;
  // Appends stop failing-fast once the pool has seen chunk 1; bounded by the
  // body's length.
  for (size_t at = 0; at < bad.size() && status.ok(); at += 65536) {
    status = (*sink)->Append(absl::string_view(bad).substr(at, 65536));
  }
  absl::Status finished = (*sink)->Finish();
  EXPECT_TRUE(absl::IsDataLoss(finished)) << finished;
  EXPECT_NE(finished.message().find("chunk 1 "), absl::string_view::npos)
      << finished;
  EXPECT_FALSE(pool->Verified(1));
  EXPECT_TRUE(pool->Verified(0));
}

TEST_F(BodySinkTest, PipeWithFewerBytesThanPromisedIsDataLoss) {
  std::unique_ptr<ChunkHashPool> pool = Pool(100);
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), pool.get());
  ASSERT_TRUE(sink.ok()) << sink.status();
  Fill("short");
  pipe_in_.Reset();  // so that the pipe reads as ended, not as empty
  EXPECT_EQ((*sink)->AppendFromPipe(pipe_out_.get(), 10).code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(BodySinkTest, WriteErrorIsReportedWithTheCallAndSticks) {
  UniqueFd read_only(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(read_only);
  std::unique_ptr<ChunkHashPool> pool = Pool(100);
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(read_only.get(), pool.get());
  ASSERT_TRUE(sink.ok()) << sink.status();
  absl::Status status = (*sink)->Append("some bytes");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("write"), absl::string_view::npos) << status;
  Fill("more");
  EXPECT_FALSE((*sink)->AppendFromPipe(pipe_out_.get(), 4).ok());
  EXPECT_EQ((*sink)->bytes_written(), 0u);
  EXPECT_FALSE((*sink)->Finish().ok());
}

}  // namespace
}  // namespace pcfs
