// Tests of peerctl/file_flusher.h: a flush follows each step of bytes
// written, none before a step is full, a failed fdatasync is what Stop()
// returns, Sync() puts that error before its own fsync's, and Stop() ends
// the thread however often it is called.
#include "peerctl/file_flusher.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "core/base/unique_fd.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

constexpr uint64_t kStep = 4096;

// Waits (at most 10 s) until `flusher` has made `count` flushes.
bool WaitForFlushes(const FileFlusher& flusher, uint64_t count) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (flusher.flushes() < count) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class FileFlusherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs_file_flusher_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    file_.Reset(
        ::open((root_ + "/file").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(file_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Writes `bytes` bytes to the file and tells `flusher`.
  void Write(FileFlusher& flusher, size_t bytes) {
    const std::string data(bytes, 'x');
    ASSERT_EQ(::write(file_.get(), data.data(), data.size()),
              static_cast<ssize_t>(data.size()));
    flusher.Wrote(bytes);
  }

  std::string root_;
  UniqueFd file_;
};

TEST_F(FileFlusherTest, FlushesOnceAStepIsWritten) {
  FileFlusher flusher(file_.get(), kStep);
  Write(flusher, kStep / 2);
  Write(flusher, kStep / 2);
  ASSERT_TRUE(WaitForFlushes(flusher, 1));
  // And again after the next step.
  Write(flusher, kStep);
  ASSERT_TRUE(WaitForFlushes(flusher, 2));
  EXPECT_EQ(flusher.written(), 2 * kStep);
  EXPECT_TRUE(flusher.Stop().ok());
}

TEST_F(FileFlusherTest, DoesNotFlushBeforeAStepIsFull) {
  FileFlusher flusher(file_.get(), kStep);
  Write(flusher, kStep - 1);
  EXPECT_TRUE(flusher.Stop().ok());
  EXPECT_EQ(flusher.flushes(), 0u);  // the caller's fsync has the rest
}

TEST_F(FileFlusherTest, AFailedFlushIsWhatStopReturns) {
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  UniqueFd read_end(ends[0]);
  UniqueFd write_end(ends[1]);
  // fdatasync(2) of a pipe fails with EINVAL, as a disk's write error
  // fails it with EIO.
  FileFlusher flusher(write_end.get(), kStep);
  flusher.Wrote(kStep);
  ASSERT_TRUE(WaitForFlushes(flusher, 1));
  flusher.Wrote(10 * kStep);  // no more flushes after a failure
  const absl::Status stopped = flusher.Stop();
  EXPECT_FALSE(stopped.ok());
  EXPECT_NE(stopped.message().find("fdatasync"), absl::string_view::npos)
      << stopped;
  EXPECT_EQ(flusher.flushes(), 1u);
  // Stop() again: the same answer, no second join.
  EXPECT_EQ(flusher.Stop(), stopped);
}

TEST_F(FileFlusherTest, SyncStopsThenFsyncs) {
  FileFlusher flusher(file_.get(), kStep);
  Write(flusher, 3 * kStep + 1);
  EXPECT_TRUE(flusher.Sync().ok());
}

// The flush's error, which the kernel would not report to a second fsync of
// the same open file, comes first: fsync of the pipe would say "fsync".
TEST_F(FileFlusherTest, SyncReturnsAFailedFlushBeforeItsOwnFsync) {
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  UniqueFd read_end(ends[0]);
  UniqueFd write_end(ends[1]);
  FileFlusher flusher(write_end.get(), kStep);
  flusher.Wrote(kStep);
  ASSERT_TRUE(WaitForFlushes(flusher, 1));
  const absl::Status synced = flusher.Sync();
  EXPECT_FALSE(synced.ok());
  EXPECT_NE(synced.message().find("fdatasync"), absl::string_view::npos)
      << synced;
}

TEST_F(FileFlusherTest, TheDestructorStopsAFlusherNeverStopped) {
  auto flusher = std::make_unique<FileFlusher>(file_.get(), kStep);
  Write(*flusher, 3 * kStep);
  flusher.reset();  // joins the thread: a leak or a hang would show here
}

}  // namespace
}  // namespace pcfs
