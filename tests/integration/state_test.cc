// The daemon's durable state as an operator meets it: a second daemon on a
// state folder is refused and says who holds it; damaged state stops the
// start with the file, the offset and what to do, and --recover starts with
// the rest; on a full disk the daemon restarts with its publications and
// refuses a new `pub` with a clear error.
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/base/unique_fd.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

constexpr char kUsers[] = "hans hanspass\nvader vaderpass\n";

Process::Options DaemonOptions(const std::string& folder,
                               std::vector<std::string> flags) {
  Process::Options options;
  options.argv = {PCFS_DAEMON_PATH, "--port=0", "--bind=127.0.0.1"};
  options.argv.insert(options.argv.end(), flags.begin(), flags.end());
  options.cwd = folder;
  return options;
}

// The port a started daemon logged ("... listening on 127.0.0.1:PORT (UDP"),
// or 0 if it did not start within 20 s.
uint16_t WaitForListening(Process& daemon) {
  std::optional<std::string> line =
      daemon.ReadStderrUntil(" (UDP", absl::Seconds(20));
  if (!line.has_value()) return 0;
  const size_t colon = line->rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(
          line->substr(colon + 1, line->rfind(" (UDP") - colon - 1), &port)) {
    return 0;
  }
  return static_cast<uint16_t>(port);
}

CommandResult Peerctl(const std::string& address,
                      const std::vector<std::string>& args,
                      const std::string& cwd) {
  return RunToCompletion(
      PeerctlOptions(address, "hans", "hanspass", args, cwd));
}

// Publishes `names` (files written in `work`) as hans.
void PublishAll(const Daemon& daemon, const TempDir& work,
                const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    work.WriteFile(name, absl::StrCat("contents of ", name, "\n"));
    CommandResult pub = Peerctl(daemon.address(), {"pub", name}, work.path());
    ASSERT_EQ(pub.exit_code, 0) << pub.err;
  }
}

TEST(StateFolderTest, ASecondDaemonOnTheStateFolderIsRefused) {
  Daemon first(kUsers);
  ASSERT_NE(first.port(), 0);
  // Another port, the same folder.
  CommandResult second = RunToCompletion(
      DaemonOptions(first.folder(), {"--state_dir=peerconnect-state"}),
      absl::Seconds(20));
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_TRUE(absl::StrContains(
      second.err,
      absl::StrCat("state folder peerconnect-state is in use by pid ",
                   first.process().pid(), " (peerconnect-state/lock)")))
      << second.err;
  // check-config reads the folder without the lock.
  CommandResult check = RunToCompletion(
      DaemonOptions(first.folder(), {"check-config"}), absl::Seconds(20));
  EXPECT_EQ(check.exit_code, 0) << check.err;
  // The first one serves on.
  TempDir work;
  CommandResult lpf = Peerctl(first.address(), {"lpf"}, work.path());
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
  EXPECT_EQ(first.Stop(), 0);
}

TEST(StateFolderTest, DamagedStateStopsTheStartAndRecoverKeepsTheRest) {
  Daemon daemon(kUsers);
  TempDir work;
  PublishAll(daemon, work, {"a.txt", "b.txt", "c.txt"});
  ASSERT_EQ(daemon.Stop(), 0);
  daemon.Restart();  // compacts the journal into the snapshot
  ASSERT_EQ(daemon.Stop(), 0);

  // One changed digit: b.txt's size (18 bytes) becomes 28.
  const std::string state = daemon.folder() + "/peerconnect-state";
  std::string snapshot = ReadFileOrEmpty(state + "/publications.snapshot");
  const size_t b = snapshot.find(" b.txt ");
  ASSERT_NE(b, std::string::npos) << snapshot;
  const size_t at = snapshot.rfind('\n', b) + 1;  // b.txt's line
  ASSERT_EQ(snapshot.substr(at, 10), "P hans 18 ") << snapshot;
  snapshot[at + 7] = '2';
  {
    UniqueFd fd(::open((state + "/publications.snapshot").c_str(),
                       O_WRONLY | O_TRUNC | O_CLOEXEC));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::write(fd.get(), snapshot.data(), snapshot.size()),
              static_cast<ssize_t>(snapshot.size()));
  }

  CommandResult refused =
      RunToCompletion(DaemonOptions(daemon.folder(), {}), absl::Seconds(20));
  EXPECT_EQ(refused.exit_code, 1);
  const std::string where =
      absl::StrCat("peerconnect-state/publications.snapshot: byte ", at);
  EXPECT_TRUE(absl::StrContains(refused.err, where)) << refused.err;
  EXPECT_TRUE(absl::StrContains(refused.err, "checksum does not match"))
      << refused.err;
  EXPECT_TRUE(absl::StrContains(refused.err, "--recover")) << refused.err;
  CommandResult check = RunToCompletion(
      DaemonOptions(daemon.folder(), {"check-config"}), absl::Seconds(20));
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(check.err, where)) << check.err;

  Process recovered(DaemonOptions(daemon.folder(), {"--recover"}));
  const uint16_t port = WaitForListening(recovered);
  ASSERT_NE(port, 0) << recovered.stderr_text();
  EXPECT_TRUE(absl::StrContains(
      recovered.stderr_text(),
      absl::StrCat("recover: dropped peerconnect-state/publications.snapshot "
                   "byte ",
                   at, " (line ")))
      << recovered.stderr_text();
  CommandResult lpf =
      Peerctl(absl::StrCat("127.0.0.1:", port), {"lpf"}, work.path());
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
  EXPECT_EQ(lpf.out, "a.txt\nc.txt\n");
  bool kept_aside = false;
  for (const std::string& name : ListFolder(state)) {
    kept_aside |= absl::StartsWith(name, "publications.snapshot.damaged-");
  }
  EXPECT_TRUE(kept_aside) << "the damaged snapshot was not kept";
  recovered.Signal(SIGTERM);
  EXPECT_EQ(recovered.Wait(absl::Seconds(20)), 0);
}

// A tmpfs mounted on a folder for the test's life.
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& at) : at_(at) {
    mounted_ =
        ::mount("tmpfs", at.c_str(), "tmpfs", 0, "size=256k,mode=0755") == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(at_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

  // Writes a filler file until the disk refuses (bounded); true if it is
  // full.
  bool Fill() {
    UniqueFd fd(::open((at_ + "/filler").c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return false;
    const std::string chunk(4096, 'f');
    for (int i = 0; i < 1024; ++i) {
      if (::write(fd.get(), chunk.data(), chunk.size()) < 0) {
        return errno == ENOSPC;
      }
    }
    return false;
  }
  void Free() { ::unlink((at_ + "/filler").c_str()); }

 private:
  std::string at_;
  bool mounted_ = false;
  std::string error_;
};

TEST(StateFolderTest, ADaemonRestartsOnAFullDiskWithItsPublications) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  TempDir base;
  const std::string state = base.MakeSubdir("state");
  SmallDisk disk(state);
  ASSERT_TRUE(disk.mounted()) << "mount tmpfs: " << disk.error();

  Daemon daemon(kUsers, {"--state_dir=" + state});
  TempDir work;
  PublishAll(daemon, work, {"song.mp3", "tune.mp3"});
  ASSERT_EQ(daemon.Stop(), 0);
  ASSERT_TRUE(disk.Fill()) << "the disk did not fill up";

  // The start-up compaction cannot write: the daemon warns and serves.
  daemon.Restart();
  EXPECT_TRUE(absl::StrContains(daemon.process().stderr_text(),
                                "cannot compact the state"))
      << daemon.process().stderr_text();
  CommandResult lpf = Peerctl(daemon.address(), {"lpf"}, work.path());
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
  EXPECT_EQ(lpf.out, "song.mp3\ntune.mp3\n");
  {
    // sch lists names whose publisher is online.
    Shell hans(daemon, "hans", "hanspass", work.path());
    ASSERT_TRUE(hans.logged_in());
    CommandResult sch = RunToCompletion(PeerctlOptions(
        daemon.address(), "vader", "vaderpass", {"sch", ".mp3"}, work.path()));
    EXPECT_EQ(sch.exit_code, 0) << sch.err;
    EXPECT_EQ(sch.out, "song.mp3\ntune.mp3\n");
  }

  // A journal record may still fit in the journal's last page; once the
  // disk takes no more, a `pub` is refused with an error, never
  // acknowledged, and the daemon goes on.
  std::vector<std::string> acknowledged = {"song.mp3", "tune.mp3"};
  std::optional<CommandResult> refused;
  for (int i = 0; i < 30 && !refused.has_value(); ++i) {
    const std::string name =
        absl::StrCat(std::string(200, 'n'), "-", i + 10, ".txt");
    work.WriteFile(name, "x\n");
    CommandResult pub = Peerctl(daemon.address(), {"pub", name}, work.path());
    if (pub.exit_code == 0) {
      acknowledged.push_back(name);
    } else {
      refused = pub;
    }
  }
  ASSERT_TRUE(refused.has_value())
      << "every pub was acknowledged on a full disk";
  EXPECT_TRUE(absl::StrContains(refused->err, "could not record"))
      << refused->err;
  std::sort(acknowledged.begin(), acknowledged.end());
  std::string expected;
  for (const std::string& name : acknowledged)
    absl::StrAppend(&expected, name, "\n");
  lpf = Peerctl(daemon.address(), {"lpf"}, work.path());
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
  EXPECT_EQ(lpf.out, expected);
  ASSERT_EQ(daemon.Stop(), 0);

  // With space again, a restart compacts and keeps every acknowledged one.
  disk.Free();
  daemon.Restart();
  lpf = Peerctl(daemon.address(), {"lpf"}, work.path());
  EXPECT_EQ(lpf.out, expected);
  EXPECT_EQ(daemon.Stop(), 0);
}

}  // namespace
}  // namespace pcfs::testing
