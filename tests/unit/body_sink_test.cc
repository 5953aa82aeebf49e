#include "peerctl/body_sink.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "peerctl/file_hash.h"

namespace pcfs {
namespace {

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

Sha256Digest DigestOf(absl::string_view bytes) {
  absl::StatusOr<Sha256Hasher> hasher = Sha256Hasher::Create();
  EXPECT_TRUE(hasher.ok());
  hasher->Update(bytes.data(), bytes.size());
  return hasher->Finish();
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

  // A small hash step and writeback step, so that a few hundred KiB take
  // many of each.
  static BodySink::Options SmallOptions() {
    BodySink::Options options;
    options.hash_step_bytes = 4096;
    options.writeback_step_bytes = 16384;
    return options;
  }

  std::string root_;
  std::string path_;
  UniqueFd file_;
  UniqueFd pipe_out_;
  UniqueFd pipe_in_;
};

TEST_F(BodySinkTest, WritesAndHashesEveryByteInOrder) {
  const std::string contents = RandomBytes(300000, 1);
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  // Uneven pieces, some shorter than a hash step and some longer, from
  // memory and through the pipe in turn.
  std::mt19937 random(2);
  size_t offset = 0;
  for (bool from_pipe = false; offset < contents.size();
       from_pipe = !from_pipe) {
    const size_t piece =
        std::min<size_t>(contents.size() - offset, 1 + random() % 10000);
    const absl::string_view bytes =
        absl::string_view(contents).substr(offset, piece);
    if (from_pipe) {
      Fill(bytes);
      ASSERT_TRUE((*sink)->AppendFromPipe(pipe_out_.get(), piece).ok());
    } else {
      ASSERT_TRUE((*sink)->Append(bytes).ok());
    }
    offset += piece;
  }
  EXPECT_EQ((*sink)->bytes_written(), contents.size());
  absl::StatusOr<Sha256Digest> digest = (*sink)->Finish();
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, DigestOf(contents));
  EXPECT_EQ(Contents(), contents);
}

// The digest covers what the sink wrote, not what the file held before.
TEST_F(BodySinkTest, StartsAtTheFileOffset) {
  ASSERT_EQ(::write(file_.get(), "head", 4), 4);
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append("body").ok());
  absl::StatusOr<Sha256Digest> digest = (*sink)->Finish();
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, DigestOf("body"));
  EXPECT_EQ(Contents(), "headbody");
}

TEST_F(BodySinkTest, NothingAppendedIsTheDigestOfNothing) {
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  absl::StatusOr<Sha256Digest> digest = (*sink)->Finish();
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, DigestOf(""));
}

TEST_F(BodySinkTest, WritebackOffStillWritesEverything) {
  const std::string contents = RandomBytes(100000, 4);
  BodySink::Options options = SmallOptions();
  options.writeback_step_bytes = 0;
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), options);
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(contents).ok());
  absl::StatusOr<Sha256Digest> digest = (*sink)->Finish();
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, DigestOf(contents));
  EXPECT_EQ(Contents(), contents);
}

TEST_F(BodySinkTest, PipeWithFewerBytesThanPromisedIsDataLoss) {
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  Fill("short");
  pipe_in_.Reset();  // so that the pipe reads as ended, not as empty
  EXPECT_EQ((*sink)->AppendFromPipe(pipe_out_.get(), 10).code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(BodySinkTest, WriteErrorIsReportedWithTheCallAndSticks) {
  UniqueFd read_only(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(read_only);
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(read_only.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  absl::Status status = (*sink)->Append("some bytes");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("write"), absl::string_view::npos) << status;
  Fill("more");
  EXPECT_FALSE((*sink)->AppendFromPipe(pipe_out_.get(), 4).ok());
  EXPECT_EQ((*sink)->bytes_written(), 0u);
}

// The hasher reads the bytes back from the file; a file it cannot read
// (here: open for writing only) fails the digest instead of faking one.
TEST_F(BodySinkTest, UnreadableFileFailsFinish) {
  UniqueFd write_only(::open(path_.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(write_only);
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(write_only.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(RandomBytes(50000, 5)).ok());
  absl::StatusOr<Sha256Digest> digest = (*sink)->Finish();
  EXPECT_FALSE(digest.ok());
  EXPECT_NE(digest.status().message().find("pread"), absl::string_view::npos)
      << digest.status();
}

TEST_F(BodySinkTest, DestroyedWithoutFinishStopsTheHasher) {
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(RandomBytes(20000, 6)).ok());
  sink->reset();  // no Finish(): the hasher is stopped and joined
  EXPECT_EQ(Contents().size(), 20000u);
}

TEST_F(BodySinkTest, ZeroHashStepIsInvalid) {
  BodySink::Options options;
  options.hash_step_bytes = 0;
  EXPECT_EQ(BodySink::Create(file_.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pcfs
