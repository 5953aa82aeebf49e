#include "core/base/file_util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "core/base/unique_fd.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

class FileUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs_file_util_XXXXXX";
    UniqueFd fd(::mkstemp(pattern));
    ASSERT_TRUE(fd);
    path_ = pattern;
    // More than one 64 KiB read, so that ReadUpTo loops.
    contents_.assign(200000, 'x');
    for (size_t i = 0; i < contents_.size(); i += 1000) {
      contents_[i] = static_cast<char>('a' + i / 1000 % 26);
    }
    ASSERT_TRUE(WriteAll(fd.get(), contents_, path_).ok());
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  std::string path_;
  std::string contents_;
};

TEST_F(FileUtilTest, ReadsAWholeFile) {
  absl::StatusOr<std::string> read = ReadFileToString(path_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, contents_);
}

TEST_F(FileUtilTest, ReadUpToStopsAtItsLimitOrTheEnd) {
  UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  absl::StatusOr<std::string> first = ReadUpTo(fd.get(), 70000, path_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, contents_.substr(0, 70000));
  // From where the last read left the offset, to the end.
  absl::StatusOr<std::string> rest = ReadUpTo(fd.get(), 1 << 20, path_);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, contents_.substr(70000));
}

TEST_F(FileUtilTest, ErrorsNameThePath) {
  absl::StatusOr<std::string> missing = ReadFileToString(path_ + ".none");
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(path_ + ".none"), std::string::npos)
      << missing.status();
  absl::StatusOr<std::string> bad = ReadUpTo(-1, 10, "nowhere");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("read nowhere"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace pcfs
