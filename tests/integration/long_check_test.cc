// A shell that starts with a large file published by an earlier session
// checks it (hashes it, against what STAT says was published) for longer
// than the session timeout: its session must live through the check.
// Labelled "slow" (PCFS_SLOW_TESTS): it hashes an 8 GiB sparse file (about
// 5 s on the project's 2-core machine), and part of a 32 GiB one.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/proto/merkle.h"
#include "core/proto/protocol.h"
#include "gtest/gtest.h"
#include "peerctl/client.h"
#include "peerctl/exit_codes.h"
#include "peerctl/file_hash.h"
#include "peerctl/hash_store.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

// A sparse file of `size` bytes at `path` (no disk space; hashing still
// reads all of it), published as hans's by an earlier session with `root`
// (a zero root is found wrong only once the whole file is hashed).
void PublishSparseEarlier(const Daemon& daemon, const std::string& path,
                          uint64_t size, const Sha256Digest& root = {}) {
  std::ofstream(path).close();
  std::filesystem::resize_file(path, size);
  std::unique_ptr<ControlClient> earlier =
      LoggedInClient(daemon, "hans", "hanspass");
  ASSERT_NE(earlier, nullptr);
  const std::string name = path.substr(path.rfind('/') + 1);
  ASSERT_TRUE(earlier->Publish(name, size, root).ok());
  ASSERT_TRUE(earlier->Logout().ok());
}

// `names` (files of `dir`) published as hans's by an earlier shell.
void PublishInAnEarlierShell(const Daemon& daemon, const std::string& dir,
                             std::initializer_list<const char*> names) {
  Shell earlier(daemon, "hans", "hanspass", dir);
  ASSERT_TRUE(earlier.logged_in());
  for (const char* name : names) {
    ASSERT_EQ(earlier.Run(absl::StrCat("pub ", name)), "");
  }
  ASSERT_EQ(earlier.Exit().exit_code, kExitOk);
}

// PublishSparseEarlier with the zeros' true root, and their hash left in
// the shared hash store as an earlier run of hans's would leave it (so a
// shell that starts serves the file without reading it).
void PublishZerosWithTheirHashStored(const Daemon& daemon,
                                     const std::string& path, uint64_t size) {
  FileInfo zeros;
  zeros.size = size;
  zeros.leaves.assign(MerkleChunkCount(size),
                      MerkleLeafHash(std::string(kMerkleChunkBytes, '\0')));
  zeros.root = MerkleRoot(zeros.leaves);
  PublishSparseEarlier(daemon, path, size, zeros.root);
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  const std::string store = SharedStateHome() + "/peerconnect/file-hashes";
  ASSERT_TRUE(SaveHashStore(store, {{IdentityOf(info), zeros}}).ok());
}

// The bytes process `pid` has read so far (rchar of /proc/PID/io), or -1.
int64_t BytesReadBy(pid_t pid) {
  const std::optional<uint64_t> read = IoCounterOf(pid, "rchar");
  return read.has_value() ? static_cast<int64_t>(*read) : -1;
}

TEST(LongCheckTest, TheSessionLivesThroughACheckLongerThanItsTimeout) {
  constexpr uint64_t kSize = uint64_t{8} << 30;
  Daemon daemon;
  TempDir hans_dir;
  TempDir vader_dir;
  PublishSparseEarlier(daemon, hans_dir.path() + "/big.bin", kSize);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  // Over twice the session timeout (3 s) from the login, hans stays active
  // throughout, while the check goes on.
  const absl::Time end = absl::Now() + absl::Seconds(7);
  int polls = 0;
  while (absl::Now() < end && polls < 100) {
    ++polls;
    CommandResult lap =
        RunPeerctl(daemon, "vader", "vaderpass", {"lap"}, vader_dir.path());
    ASSERT_EQ(lap.exit_code, kExitOk) << lap.err;
    EXPECT_EQ(lap.out, "hans\n") << "poll " << polls;
    absl::SleepFor(absl::Milliseconds(250));
  }
  hans.process().DrainOutput();
  EXPECT_FALSE(absl::StrContains(hans.process().stderr_text(),
                                 "no longer knows this session"))
      << hans.process().stderr_text();
  // The check ends, and finds the file is not what was published.
  EXPECT_TRUE(hans.process()
                  .ReadStderrUntil("not serving big.bin: it changed since it "
                                   "was published",
                                   absl::Seconds(60))
                  .has_value())
      << hans.process().stderr_text();
}

// A file hashed by an earlier run is checked from the hash store, without
// being read again: a 32 GiB file (about 10 s to read) is served at once.
// What this run hashes goes into the store when it ends, and a damaged
// store is ignored with a warning.
TEST(LongCheckTest, TheHashStoreSparesTheReadOfAnUnchangedFile) {
  constexpr uint64_t kSize = uint64_t{32} << 30;
  Daemon daemon;
  TempDir hans_dir;
  TempDir curl_dir;
  hans_dir.WriteFile("small.txt", "small\n");
  // What an earlier run's `pub big.bin` stored: the leaves of zeros.
  PublishZerosWithTheirHashStored(daemon, hans_dir.path() + "/big.bin", kSize);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string store = SharedStateHome() + "/peerconnect/file-hashes";
  {
    Shell hans(daemon, "hans", "hanspass", hans_dir.path());
    ASSERT_TRUE(hans.logged_in());
    // Checked already: its first bytes are served (a 503 fails curl).
    CommandResult url = RunPeerctl(daemon, "vader", "vaderpass",
                                   {"url", "big.bin"}, curl_dir.path());
    ASSERT_EQ(url.exit_code, kExitOk) << url.err;
    Process::Options fetch;
    fetch.argv = {
        "/bin/sh", "-c",
        absl::StrCat(absl::StripTrailingAsciiWhitespace(url.out), " -r 0-99")};
    fetch.cwd = curl_dir.path();
    CommandResult fetched = RunToCompletion(fetch, absl::Seconds(30));
    EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
    EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/big.bin"),
              std::string(100, '\0'));
    ASSERT_EQ(hans.Run("pub small.txt"), "");
    EXPECT_EQ(hans.Exit().exit_code, kExitOk);
  }
  // A one-shot `pub` stores what it hashed too.
  hans_dir.WriteFile("oneshot.txt", "one shot\n");
  CommandResult oneshot = RunPeerctl(daemon, "hans", "hanspass",
                                     {"pub", "oneshot.txt"}, hans_dir.path());
  ASSERT_EQ(oneshot.exit_code, kExitOk) << oneshot.err;
  // The store now holds small.txt and oneshot.txt too, and still big.bin.
  absl::StatusOr<HashStoreEntries> stored = LoadHashStore(store);
  ASSERT_TRUE(stored.ok()) << stored.status();
  size_t found = 0;
  for (const char* name : {"big.bin", "small.txt", "oneshot.txt"}) {
    struct stat info {};
    ASSERT_EQ(::stat((hans_dir.path() + "/" + name).c_str(), &info), 0);
    for (const auto& [identity, hashed] : *stored) {
      if (identity == IdentityOf(info)) ++found;
    }
  }
  EXPECT_EQ(found, 3u);
  // Damaged, it is not trusted: the shell says so, and works.
  std::string bytes = ReadFileOrEmpty(store);
  ASSERT_FALSE(bytes.empty());
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 1);
  TempDir scratch;
  scratch.WriteFile("damaged", bytes);
  ASSERT_EQ(::rename((scratch.path() + "/damaged").c_str(), store.c_str()), 0);
  Shell again(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(again.logged_in());
  EXPECT_TRUE(again.process()
                  .ReadStderrUntil("not using the hash store", absl::Seconds(5))
                  .has_value())
      << again.process().stderr_text();
  EXPECT_EQ(again.Run("lpf"), "big.bin\noneshot.txt\nsmall.txt\n");
}

// Small files are checked before a large one whatever their names, a file
// not yet checked is refused with a reason a downloader can act on, and
// `xit` does not wait for the rest of a large file's read.
TEST(LongCheckTest, SmallFilesFirstAndXitDoesNotWaitForTheCheck) {
  // Sparse, about 10 s to hash on two cores: the check is still reading it
  // when hans leaves.
  constexpr uint64_t kSize = uint64_t{32} << 30;
  Daemon daemon;
  TempDir hans_dir;
  TempDir vader_dir;
  hans_dir.WriteFile("small.txt", "small and quick\n");
  PublishInAnEarlierShell(daemon, hans_dir.path(), {"small.txt"});
  PublishSparseEarlier(daemon, hans_dir.path() + "/big.bin", kSize);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  // "small.txt" sorts after "big.bin", yet it is served already.
  CommandResult small = RunPeerctl(daemon, "vader", "vaderpass",
                                   {"get", "small.txt"}, vader_dir.path());
  EXPECT_EQ(small.exit_code, kExitOk) << small.err;
  EXPECT_EQ(ReadFileOrEmpty(vader_dir.path() + "/small.txt"),
            "small and quick\n");
  // Busy while it is checked: waited out once, then the --timeout ends
  // the waits, and the holder's answer stands.
  CommandResult big =
      RunPeerctl(daemon, "vader", "vaderpass",
                 {"--timeout", "2500ms", "get", "big.bin"}, vader_dir.path());
  EXPECT_EQ(big.exit_code, kExitHolderUnreachable) << big.err;
  EXPECT_TRUE(absl::StrContains(big.err,
                                "big.bin: holder hans is busy; "
                                "trying again in 1s"))
      << big.err;
  EXPECT_TRUE(absl::StrContains(big.err,
                                "still checking the file against its "
                                "publication): try again in a moment"))
      << big.err;
  hans.process().DrainOutput();
  ASSERT_FALSE(
      absl::StrContains(hans.process().stderr_text(), "not serving big.bin"))
      << "the check ended before xit; " << hans.process().stderr_text();
  const absl::Time xit = absl::Now();
  CommandResult left = hans.Exit();
  const absl::Duration took = absl::Now() - xit;
  EXPECT_EQ(left.exit_code, kExitOk) << left.err;
  // The read of big.bin stopped, unfinished, instead of holding xit.
  EXPECT_FALSE(absl::StrContains(left.err, "not serving big.bin")) << left.err;
  EXPECT_LT(took, absl::Seconds(3)) << left.err;
}

// The names published earlier come from LPF after the login; a holder
// whose first LPF goes unanswered asks again until it is answered, and
// meanwhile tells downloaders it is busy (503) rather than that it does
// not publish the file (404).
TEST(LongCheckTest, AHolderWhoseFirstListOfNamesFailsAsksAgain) {
  Daemon daemon;
  TempDir hans_dir;
  TempDir vader_dir;
  hans_dir.WriteFile("notes.txt", "notes\n");
  PublishInAnEarlierShell(daemon, hans_dir.path(), {"notes.txt"});
  std::atomic<bool> drop_lists{true};
  UdpRelay relay(daemon.port(), [&](UdpRelay::Direction direction, uint64_t,
                                    const std::string& bytes) {
    const bool list =
        bytes.size() > protocol::kTypeOffset &&
        static_cast<uint8_t>(bytes[protocol::kTypeOffset]) ==
            static_cast<uint8_t>(protocol::MessageType::kListPublished);
    if (direction == UdpRelay::Direction::kToDaemon && list && drop_lists) {
      return UdpRelay::Verdict::Drop();
    }
    return UdpRelay::Verdict::Forward();
  });
  Shell hans(relay.address(), "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in()) << hans.process().stderr_text();
  CommandResult early =
      RunPeerctl(daemon, "vader", "vaderpass",
                 {"--timeout", "2500ms", "get", "notes.txt"}, vader_dir.path());
  EXPECT_EQ(early.exit_code, kExitHolderUnreachable) << early.err;
  EXPECT_TRUE(absl::StrContains(early.err, "busy")) << early.err;
  drop_lists = false;
  CommandResult got;
  const absl::Time end = absl::Now() + absl::Seconds(30);
  for (int tries = 0; tries < 60 && absl::Now() < end; ++tries) {
    got = RunPeerctl(daemon, "vader", "vaderpass", {"get", "notes.txt"},
                     vader_dir.path());
    if (got.exit_code == kExitOk) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_EQ(got.exit_code, kExitOk) << got.err;
  EXPECT_EQ(ReadFileOrEmpty(vader_dir.path() + "/notes.txt"), "notes\n");
}

// An agent told to stop while its start waits for the check stops at
// once, and says nothing of a login after the stop.
TEST(LongCheckTest, AnAgentStoppedDuringItsStartStopsAtOnce) {
  constexpr uint64_t kSize = uint64_t{32} << 30;
  Daemon daemon;
  TempDir dir;
  const std::string share = dir.MakeSubdir("share");
  PublishSparseEarlier(daemon, share + "/big.bin", kSize);
  Process::Options options;
  options.argv = {PCFS_PEERCTL_PATH, "serve",
                  "--server",        daemon.address(),
                  "--user",          "hans",
                  "--share-dir",     share,
                  "--socket",        dir.path() + "/peerctl.sock"};
  options.cwd = dir.path();
  options.env = {{"PEERCTL_PASSWORD", "hanspass"}};
  Process agent(options);
  ASSERT_TRUE(agent.ReadStderrUntil("listening at", absl::Seconds(20)))
      << agent.stderr_text();
  // Logged in (hans is active), the start now waits up to 2 s for the
  // check of big.bin, which takes far longer.
  bool active = false;
  for (int tries = 0; tries < 100 && !active; ++tries) {
    CommandResult lap =
        RunPeerctl(daemon, "vader", "vaderpass", {"lap"}, dir.path());
    active = lap.out == "hans\n";
    if (!active) absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(active) << agent.stderr_text();
  const absl::Time stop = absl::Now();
  agent.Signal(SIGTERM);
  EXPECT_EQ(agent.Wait(absl::Seconds(20)), 0) << agent.stderr_text();
  const absl::Duration took = absl::Now() - stop;
  EXPECT_LT(took, absl::Milliseconds(1200)) << agent.stderr_text();
  const std::string log = agent.stderr_text();
  const size_t term = log.find("SIGTERM");
  ASSERT_NE(term, std::string::npos) << log;
  EXPECT_EQ(log.find("logged in as", term), std::string::npos) << log;
}

// Files gone from the share folder are said before a large file's long
// check, not after it (nor never, if the holder stops first); a file that
// changes while it is checked is said to have changed, not to be
// unreadable.
TEST(LongCheckTest, GoneFilesAreSaidFirstAndAChangeDuringTheCheckIsAChange) {
  constexpr uint64_t kSize = uint64_t{32} << 30;
  Daemon daemon;
  TempDir hans_dir;
  hans_dir.WriteFile("gone.txt", "soon gone\n");
  hans_dir.WriteFile("gone2.txt", "gone too\n");
  PublishInAnEarlierShell(daemon, hans_dir.path(), {"gone.txt", "gone2.txt"});
  ASSERT_EQ(::unlink((hans_dir.path() + "/gone.txt").c_str()), 0);
  ASSERT_EQ(::unlink((hans_dir.path() + "/gone2.txt").c_str()), 0);
  PublishSparseEarlier(daemon, hans_dir.path() + "/big.bin", kSize);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  EXPECT_TRUE(hans.process()
                  .ReadStderrUntil("not serving 2 files published earlier "
                                   "and no longer in the share folder "
                                   "(gone.txt, gone2.txt)",
                                   absl::Seconds(2))
                  .has_value())
      << hans.process().stderr_text();
  hans.process().DrainOutput();
  ASSERT_FALSE(
      absl::StrContains(hans.process().stderr_text(), "not serving big.bin"))
      << "the check ended already; " << hans.process().stderr_text();
  {
    std::ofstream append(hans_dir.path() + "/big.bin", std::ios::app);
    append << "more";
  }
  EXPECT_TRUE(hans.process()
                  .ReadStderrUntil("not serving big.bin: it changed while it "
                                   "was checked",
                                   absl::Seconds(120))
                  .has_value())
      << hans.process().stderr_text();
}

// `unp` of the file whose check is reading it ends the read (the check of
// a publication that is gone would only compete with what is served).
TEST(LongCheckTest, UnpOfTheFileBeingCheckedEndsItsRead) {
  constexpr uint64_t kSize = uint64_t{32} << 30;
  Daemon daemon;
  TempDir hans_dir;
  PublishSparseEarlier(daemon, hans_dir.path() + "/big.bin", kSize);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  const pid_t pid = hans.process().pid();
  // Reading: over 64 MiB in half a second.
  const int64_t before = BytesReadBy(pid);
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_GT(BytesReadBy(pid) - before, int64_t{64} << 20)
      << "the check is not reading big.bin";
  ASSERT_EQ(hans.Run("unp big.bin"), "");
  // Its read stops within a chunk or so: well under 64 MiB a second.
  absl::SleepFor(absl::Milliseconds(200));
  const int64_t after_unp = BytesReadBy(pid);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_LT(BytesReadBy(pid) - after_unp, int64_t{64} << 20)
      << "the check of big.bin went on after its unp";
  hans.process().DrainOutput();
  EXPECT_FALSE(absl::StrContains(hans.process().stderr_text(), "big.bin"))
      << hans.process().stderr_text();
  EXPECT_EQ(hans.Run("lpf"), "No files published\n");
}

// A file removed while its check reads it (the read goes on through the
// open file) is said to be gone, not taken as checked.
TEST(LongCheckTest, AFileRemovedDuringItsCheckIsSaidGone) {
  constexpr uint64_t kSize = uint64_t{8} << 30;
  Daemon daemon;
  TempDir hans_dir;
  PublishSparseEarlier(daemon, hans_dir.path() + "/big.bin", kSize);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  ASSERT_FALSE(absl::StrContains(hans.process().stderr_text(), "big.bin"))
      << "the check ended already; " << hans.process().stderr_text();
  ASSERT_EQ(::unlink((hans_dir.path() + "/big.bin").c_str()), 0);
  EXPECT_TRUE(hans.process()
                  .ReadStderrUntil("not serving 1 file published earlier and "
                                   "no longer in the share folder (big.bin)",
                                   absl::Seconds(120))
                  .has_value())
      << hans.process().stderr_text();
}

// A `get` that resumes a large partial file checks the chunks it holds
// before it downloads the rest; that check honours --timeout (and Ctrl-C,
// through the same flag), and the partial stays for the next get.
TEST(LongCheckTest, AResumedGetStopsAtItsTimeoutWhileItChecksItsPartial) {
  constexpr uint64_t kSize = uint64_t{32} << 30;
  Daemon daemon;
  TempDir hans_dir;
  TempDir vader_dir;
  PublishZerosWithTheirHashStored(daemon, hans_dir.path() + "/big.bin", kSize);
  ASSERT_FALSE(::testing::Test::HasFailure());
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  // What an earlier get left: all of it there (zeros), none of it known
  // yet. Checking it reads 32 GiB, about 10 s on the project's machine.
  const std::string partial = vader_dir.path() + "/.big.bin.pcfs-partial";
  std::ofstream(partial).close();
  std::filesystem::resize_file(partial, kSize);
  const absl::Time start = absl::Now();
  CommandResult get =
      RunPeerctl(daemon, "vader", "vaderpass",
                 {"--timeout", "2s", "get", "big.bin"}, vader_dir.path());
  const absl::Duration took = absl::Now() - start;
  EXPECT_NE(get.exit_code, kExitOk) << get.out;
  EXPECT_TRUE(absl::StrContains(get.err, "big.bin")) << get.err;
  EXPECT_LT(took, absl::Seconds(6)) << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "the --timeout ran out")) << get.err;
  // Only the command's own error: its heartbeats, also out of time, do not
  // report the daemon silent.
  EXPECT_FALSE(absl::StrContains(get.err, "heartbeat")) << get.err;
  // Kept, whole, for the next get; no file passes for the download.
  EXPECT_EQ(std::filesystem::file_size(partial), kSize);
  EXPECT_FALSE(std::filesystem::exists(vader_dir.path() + "/big.bin"));
}

}  // namespace
}  // namespace pcfs::testing
