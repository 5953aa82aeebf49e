#include "peerctl/body_sink.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
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
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::string Contents() {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // Small buffers and a small writeback step, so that a few hundred KiB
  // recycle every buffer many times and start writeback often.
  static BodySink::Options SmallOptions() {
    BodySink::Options options;
    options.buffer_bytes = 4096;
    options.buffers = 3;
    options.writeback_step_bytes = 16384;
    return options;
  }

  std::string root_;
  std::string path_;
  UniqueFd file_;
};

TEST_F(BodySinkTest, WritesAndHashesEveryByteInOrder) {
  const std::string contents = RandomBytes(300000, 1);
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  // Uneven pieces, some filling a buffer and some not.
  std::mt19937 random(2);
  size_t offset = 0;
  while (offset < contents.size()) {
    BodySink::Buffer buffer = (*sink)->Acquire();
    const size_t piece = std::min<size_t>(
        contents.size() - offset, 1 + random() % buffer.size());
    std::memcpy(buffer.data(), contents.data() + offset, piece);
    ASSERT_TRUE((*sink)->Append(std::move(buffer), piece).ok());
    offset += piece;
  }
  EXPECT_EQ((*sink)->bytes_written(), contents.size());
  EXPECT_EQ((*sink)->Finish(), DigestOf(contents));
  EXPECT_EQ(Contents(), contents);
}

TEST_F(BodySinkTest, AppendOfHeldBytesSpansBuffers) {
  const std::string contents = RandomBytes(50000, 3);  // > 12 buffers
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(absl::string_view(contents).substr(0, 10)).ok());
  ASSERT_TRUE((*sink)->Append(absl::string_view(contents).substr(10)).ok());
  EXPECT_EQ((*sink)->Finish(), DigestOf(contents));
  EXPECT_EQ(Contents(), contents);
}

TEST_F(BodySinkTest, NothingAppendedIsTheDigestOfNothing) {
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  EXPECT_EQ((*sink)->Finish(), DigestOf(""));
  EXPECT_EQ(Contents(), "");
}

TEST_F(BodySinkTest, WritebackOffStillWritesEverything) {
  const std::string contents = RandomBytes(100000, 4);
  BodySink::Options options = SmallOptions();
  options.writeback_step_bytes = 0;
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), options);
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(contents).ok());
  EXPECT_EQ((*sink)->Finish(), DigestOf(contents));
  EXPECT_EQ(Contents(), contents);
}

TEST_F(BodySinkTest, DroppedBufferGoesBackToThePool) {
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  {
    BodySink::Buffer held = (*sink)->Acquire();
    EXPECT_EQ((*sink)->free_buffers(), 2);
  }
  EXPECT_EQ((*sink)->free_buffers(), 3);
  EXPECT_EQ((*sink)->Finish(), DigestOf(""));
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
  EXPECT_EQ((*sink)->free_buffers(), 3);  // the failed buffer came back
  EXPECT_FALSE((*sink)->Append("more").ok());
  EXPECT_EQ((*sink)->bytes_written(), 0u);
}

TEST_F(BodySinkTest, DestroyedWithBytesQueuedDoesNotHang) {
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file_.get(), SmallOptions());
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(RandomBytes(20000, 5)).ok());
  sink->reset();  // no Finish(): the hasher is stopped and joined
  EXPECT_EQ(Contents().size(), 20000u);
}

TEST_F(BodySinkTest, NoBuffersIsInvalid) {
  BodySink::Options options;
  options.buffers = 0;
  EXPECT_EQ(BodySink::Create(file_.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pcfs
