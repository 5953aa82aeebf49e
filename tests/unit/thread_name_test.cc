#include "core/base/thread_name.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

// What `top -H` and `ps -L` read: the kernel's name of the thread.
std::string KernelName(pid_t tid) {
  absl::StatusOr<std::string> comm =
      ReadFileToString(absl::StrCat("/proc/self/task/", tid, "/comm"));
  if (!comm.ok()) return "";
  return std::string(absl::StripTrailingAsciiWhitespace(*comm));
}

TEST(ThreadNameTest, TheKernelShowsTheName) {
  std::string seen, read_back;
  std::thread([&] {
    NameThisThread("journal");
    seen = KernelName(static_cast<pid_t>(syscall(SYS_gettid)));
    read_back = ThisThreadName();
  }).join();
  EXPECT_EQ(seen, "journal");
  EXPECT_EQ(read_back, "journal");
}

TEST(ThreadNameTest, ALongNameIsCutAtFifteenBytes) {
  std::string seen;
  std::thread([&] {
    NameThisThread("a-name-longer-than-the-kernel-keeps");
    seen = ThisThreadName();
  }).join();
  EXPECT_EQ(seen, "a-name-longer-t");
  EXPECT_EQ(seen.size(), kMaxThreadNameBytes);
}

TEST(ThreadNameTest, OtherThreadsKeepTheirNames) {
  const std::string before = ThisThreadName();
  std::thread([] { NameThisThread("reactor-1"); }).join();
  EXPECT_EQ(ThisThreadName(), before);
}

}  // namespace
}  // namespace pcfs
