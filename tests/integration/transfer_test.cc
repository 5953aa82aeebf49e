// File transfers between real peerctl processes on loopback: concurrent
// downloads arrive whole, a failed download leaves nothing behind, an
// existing file is never replaced, and a holder serves only what its user
// publishes.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/io/net.h"
#include "gtest/gtest.h"
#include "peerctl/client.h"
#include "peerctl/file_hash.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

constexpr char kFourUsers[] =
    "hans hanspass\nvader vaderpass\nyoda yodapass\nleia leiapass\n";

// The size and Merkle root of `dir`/`name` (FileInfo{} if unreadable).
FileInfo HashOf(const std::string& dir, const std::string& name) {
  absl::StatusOr<FileInfo> info = HashFile(dir, name);
  EXPECT_TRUE(info.ok()) << dir << "/" << name << ": " << info.status();
  return info.value_or(FileInfo{});
}

// The descriptor `pid` holds open on a file inside `dir` (its O_TMPFILE
// download shows as "DIR/#INODE (deleted)"), or nullopt.
std::optional<int> OpenFileUnder(pid_t pid, const std::string& dir) {
  const std::string prefix = dir + "/";
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(
           absl::StrCat("/proc/", pid, "/fd"), error)) {
    std::error_code link_error;
    const std::string target =
        std::filesystem::read_symlink(entry.path(), link_error).string();
    int fd = 0;
    if (!link_error && absl::StartsWith(target, prefix) &&
        absl::SimpleAtoi(entry.path().filename().string(), &fd)) {
      return fd;
    }
  }
  return std::nullopt;
}

// The file offset of `pid`'s descriptor `fd` (how much a sequential writer
// has written), from /proc/PID/fdinfo.
std::optional<uint64_t> FileOffset(pid_t pid, int fd) {
  const std::string info =
      ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/fdinfo/", fd));
  const size_t at = info.find("pos:");
  if (at == std::string::npos) return std::nullopt;
  const size_t end = info.find('\n', at);
  uint64_t offset = 0;
  const absl::string_view field =
      absl::string_view(info).substr(at + 4, end - at - 4);
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(field), &offset)) {
    return std::nullopt;
  }
  return offset;
}

// Sends one raw HTTP request for `target` (with `ticket` as a Bearer token
// unless it is empty) to a holder's file server and returns the whole
// response: the server closes after one.
std::string FetchFromHolder(const SocketAddress& holder,
                            const std::string& target,
                            const std::string& ticket) {
  UniqueFd socket(::socket(holder.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(socket.get(), holder.get(), holder.length) != 0) {
    ADD_FAILURE() << "connect: " << std::strerror(errno);
    return "";
  }
  std::string request =
      absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  if (!ticket.empty()) {
    absl::StrAppend(&request, "Authorization: Bearer ", ticket, "\r\n");
  }
  request += "\r\n";
  if (::send(socket.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ADD_FAILURE() << "send: " << std::strerror(errno);
    return "";
  }
  std::string response;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    pollfd entry{socket.get(), POLLIN, 0};
    if (::poll(&entry, 1, 100) <= 0) continue;
    char buffer[65536];
    ssize_t n = ::recv(socket.get(), buffer, sizeof(buffer), 0);
    if (n <= 0) return response;
    response.append(buffer, static_cast<size_t>(n));
  }
  ADD_FAILURE() << "the holder did not close the connection";
  return response;
}

// The status code of an HTTP response ("404"), or "" if there is none.
std::string StatusCodeOf(const std::string& response) {
  if (!absl::StartsWith(response, "HTTP/1.1 ") || response.size() < 12) {
    return "";
  }
  return response.substr(9, 3);
}

TEST(TransferTest, ThreeSimultaneousDownloadsOfOneFileAreAllWhole) {
  Daemon daemon(kFourUsers);
  TempDir peers;
  const std::string hans_dir = peers.MakeSubdir("hans");
  WriteRandomFile(hans_dir + "/big.bin", 64 << 20, 11);
  Shell hans(daemon, "hans", "hanspass", hans_dir);
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub big.bin"), "");

  const std::vector<std::pair<std::string, std::string>> users = {
      {"vader", "vaderpass"}, {"yoda", "yodapass"}, {"leia", "leiapass"}};
  std::vector<std::unique_ptr<Process>> downloads;
  for (const auto& [user, password] : users) {
    Process::Options options =
        PeerctlOptions(daemon.address(), user, password, {"get", "big.bin"},
                       peers.MakeSubdir(user));
    downloads.push_back(std::make_unique<Process>(options));
    downloads.back()->CloseStdin();
  }

  const FileInfo original = HashOf(hans_dir, "big.bin");
  for (size_t i = 0; i < users.size(); ++i) {
    const std::string& user = users[i].first;
    EXPECT_EQ(downloads[i]->Wait(absl::Seconds(60)), 0)
        << user << ": " << downloads[i]->stderr_text();
    EXPECT_EQ(downloads[i]->stdout_text(), "./big.bin\n") << user;
    EXPECT_EQ(HashOf(absl::StrCat(peers.path(), "/", user), "big.bin"),
              original)
        << user;
  }
}

TEST(TransferTest, HolderKilledMidTransferLeavesOnlyTheHiddenPartial) {
  Daemon daemon;
  TempDir peers;
  const std::string hans_dir = peers.MakeSubdir("hans");
  const std::string vader_dir = peers.MakeSubdir("vader");
  constexpr uint64_t kSize = 128 << 20;
  WriteRandomFile(hans_dir + "/big.bin", kSize, 12);
  Shell hans(daemon, "hans", "hanspass", hans_dir);
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub big.bin"), "");

  Process download(PeerctlOptions(daemon.address(), "vader", "vaderpass",
                                  {"get", "big.bin"}, vader_dir));
  download.CloseStdin();
  // Catch the download once its partial file is open, and freeze the
  // downloader: from then on the transfer cannot get further than the
  // socket buffers, whatever the scheduler does.
  std::optional<int> fd;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!fd.has_value() && absl::Now() < deadline) {
    fd = OpenFileUnder(download.pid(), vader_dir);
    if (!fd.has_value()) absl::SleepFor(absl::Microseconds(100));
  }
  ASSERT_TRUE(fd.has_value())
      << "the download never opened its file; " << download.stderr_text();
  download.Signal(SIGSTOP);
  const std::optional<uint64_t> written = FileOffset(download.pid(), *fd);
  ASSERT_TRUE(written.has_value());
  ASSERT_LT(*written, kSize / 2) << "caught too late to interrupt";

  hans.process().Signal(SIGKILL);
  EXPECT_EQ(hans.process().Wait(absl::Seconds(10)), 128 + SIGKILL);
  download.Signal(SIGCONT);

  std::optional<int> code = download.Wait(absl::Seconds(60));
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_TRUE(
      absl::StrContains(download.stderr_text(), "download from hans failed"))
      << download.stderr_text();
  EXPECT_EQ(download.stdout_text(), "");
  // What arrived stays for the next get, under a hidden name that never
  // passes for the file.
  EXPECT_EQ(ListFolder(vader_dir),
            std::vector<std::string>{".big.bin.pcfs-partial"});
}

TEST(TransferTest, FileChangedAfterPublishingFailsTheHashAndLeavesNothing) {
  Daemon daemon;
  TempDir peers;
  const std::string hans_dir = peers.MakeSubdir("hans");
  const std::string vader_dir = peers.MakeSubdir("vader");
  WriteRandomFile(hans_dir + "/data.bin", 1 << 20, 13);
  Shell hans(daemon, "hans", "hanspass", hans_dir);
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub data.bin"), "");
  // Same size, other bytes: only the Merkle root can tell.
  WriteRandomFile(hans_dir + "/data.bin", 1 << 20, 14);

  Shell vader(daemon, "vader", "vaderpass", vader_dir);
  ASSERT_TRUE(vader.logged_in());
  // The holder finds another file than the one it published, of the same
  // size: it may be the published one put back, so the holder reads it,
  // and answers "busy" meanwhile, which the get waits out.
  const std::string out = vader.Run("get data.bin");
  ASSERT_TRUE(vader.process()
                  .ReadStderrUntil("data.bin: holder hans is busy; trying "
                                   "again in 1s",
                                   absl::Seconds(10))
                  .has_value())
      << vader.process().stderr_text();
  // Then the holder refuses it rather than send what no longer adds up to
  // the root.
  EXPECT_TRUE(absl::StartsWith(out, "Download failed: ")) << out;
  EXPECT_TRUE(absl::StrContains(out, "changed since it was published")) << out;
  EXPECT_TRUE(hans.process()
                  .ReadStderrUntil("not serving data.bin: it changed since "
                                   "it was published",
                                   absl::Seconds(10))
                  .has_value())
      << hans.process().stderr_text();
  EXPECT_EQ(ListFolder(vader_dir), std::vector<std::string>{});
}

TEST(TransferTest, GetNeverOverwritesAnExistingFile) {
  Daemon daemon;
  TempDir peers;
  const std::string hans_dir = peers.MakeSubdir("hans");
  const std::string vader_dir = peers.MakeSubdir("vader");
  WriteRandomFile(hans_dir + "/data.bin", 1 << 20, 15);
  std::ofstream(vader_dir + "/data.bin") << "vader's own data";
  Shell hans(daemon, "hans", "hanspass", hans_dir);
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub data.bin"), "");

  Shell vader(daemon, "vader", "vaderpass", vader_dir);
  ASSERT_TRUE(vader.logged_in());
  const std::string refused =
      "Download failed: ./data.bin already exists and is not the published "
      "file; not overwriting it\n";
  const std::string out = vader.Run("get data.bin");
  EXPECT_TRUE(absl::StartsWith(out, "Download failed: ")) << out;
  EXPECT_EQ(out, refused);
  EXPECT_EQ(ReadFileOrEmpty(vader_dir + "/data.bin"), "vader's own data");
  EXPECT_EQ(ListFolder(vader_dir), std::vector<std::string>{"data.bin"});
  // The same size, other bytes: only the Merkle root tells them apart.
  WriteRandomFile(vader_dir + "/data.bin", 1 << 20, 16);
  const std::string same_size = ReadFileOrEmpty(vader_dir + "/data.bin");
  EXPECT_EQ(vader.Run("get data.bin"), refused);
  EXPECT_EQ(ReadFileOrEmpty(vader_dir + "/data.bin"), same_size);
  EXPECT_EQ(ListFolder(vader_dir), std::vector<std::string>{"data.bin"});
}

TEST(TransferTest, HolderServesOnlyWhatItsUserPublishes) {
  Daemon daemon;
  TempDir hans_dir;
  hans_dir.WriteFile("a.txt", "published contents\n");
  hans_dir.WriteFile("secret.txt", "SECRET contents\n");
  // Plain HTTP, so that the test can speak to the file server by hand.
  Shell hans(daemon.address(), "hans", "hanspass", hans_dir.path(),
             {"--plaintext-transfers"});
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub a.txt"), "");

  // peerctl does not print where a holder listens: ask the daemon as a
  // peer would, with peerctl's own control client.
  ControlClient::Options server;
  server.host = "127.0.0.1";
  server.port = daemon.port();
  absl::StatusOr<std::unique_ptr<ControlClient>> yoda =
      ControlClient::Connect(server);
  ASSERT_TRUE(yoda.ok()) << yoda.status();
  ASSERT_TRUE((*yoda)->Login("yoda", "yodapass", 0).ok());
  absl::StatusOr<FileLocation> holder = (*yoda)->Get("a.txt");
  ASSERT_TRUE(holder.ok()) << holder.status();
  // The ticket for a.txt (empty while downloads are not permissioned) is
  // sent with every request: it must open a.txt and nothing else.
  const std::string& ticket = holder->ticket;

  const std::string published =
      FetchFromHolder(holder->address, "/f/a.txt", ticket);
  EXPECT_EQ(StatusCodeOf(published), "200") << published;
  EXPECT_TRUE(absl::EndsWith(published, "\r\n\r\npublished contents\n"))
      << published;

  // Without tickets the holder's own check refuses it (404, as for a file
  // that does not exist); with them, a.txt's ticket does not open it (401).
  const std::string secret =
      FetchFromHolder(holder->address, "/f/secret.txt", ticket);
  EXPECT_EQ(StatusCodeOf(secret), ticket.empty() ? "404" : "401") << secret;
  EXPECT_FALSE(absl::StrContains(secret, "SECRET")) << secret;

  const std::string escape =
      FetchFromHolder(holder->address, "/f/..%2Fetc%2Fpasswd", ticket);
  const std::string code = StatusCodeOf(escape);
  EXPECT_TRUE(code == "400" || code == "404") << escape;
  EXPECT_FALSE(absl::StrContains(escape, "root:")) << escape;
  EXPECT_TRUE((*yoda)->Logout().ok());
}

// The bytes `pid` has written (write, sendfile, ...: /proc/PID/io wchar).
// A holder sends files with sendfile(2), which the kernel counts here.
std::optional<uint64_t> BytesWrittenBy(pid_t pid) {
  return IoCounterOf(pid, "wchar");
}

// `get` as vader, retried while the daemon still counts a killed vader as
// active (up to its 3 s heartbeat timeout), at most 10 s in all.
CommandResult GetAsVader(const Daemon& daemon, const std::string& name,
                         const std::string& dir) {
  CommandResult get;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    get = RunPeerctl(daemon, "vader", "vaderpass", {"get", name}, dir,
                     absl::Seconds(60));
    if (!absl::StrContains(get.err, "already active")) break;
    absl::SleepFor(absl::Milliseconds(250));
  } while (absl::Now() < deadline);
  return get;
}

// A holder whose file changed under an unchanged (size, mtime) serves the
// leaves it hashed at pub and other bytes in one chunk: that chunk fails
// its check on arrival, the get fails with DataLoss naming it, and the
// file never appears.
TEST(TransferTest, CorruptChunkIsDetectedAndNothingIsLinked) {
  Daemon daemon;
  TempDir peers;
  const std::string hans_dir = peers.MakeSubdir("hans");
  const std::string vader_dir = peers.MakeSubdir("vader");
  constexpr uint64_t kSize = 8 << 20;
  WriteRandomFile(hans_dir + "/data.bin", kSize, 41);
  Shell hans(daemon, "hans", "hanspass", hans_dir);
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub data.bin"), "");
  {
    const std::string path = hans_dir + "/data.bin";
    struct stat before {};
    ASSERT_EQ(::stat(path.c_str(), &before), 0);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::pwrite(fd.get(), "\xff\xfe", 2, (5 << 20) + 100), 2);
    // The same mtime again: the holder's cache still answers with the
    // leaves of the published contents.
    const timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::futimens(fd.get(), times), 0);
  }
  CommandResult get = GetAsVader(daemon, "data.bin", vader_dir);
  EXPECT_NE(get.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(
      get.err,
      "chunk 5 (bytes 5242880-6291455) does not match its published hash"))
      << get.err;
  EXPECT_EQ(get.out, "");
  for (const std::string& name : ListFolder(vader_dir)) {
    EXPECT_NE(name, "data.bin");
    EXPECT_TRUE(absl::StartsWith(name, ".")) << name;
  }
}

// kill -9 of a downloader past 45% of the file; the next get re-verifies
// what arrived and fetches only the rest: the holder sends at most 60% of
// the file (as its /proc/PID/io counts). The partial never looks complete:
// a hidden name, and the file's own name appears only at the very end.
TEST(TransferTest, KilledDownloadResumesFromItsVerifiedChunks) {
  Daemon daemon;
  TempDir peers;
  const std::string hans_dir = peers.MakeSubdir("hans");
  const std::string vader_dir = peers.MakeSubdir("vader");
  constexpr uint64_t kSize = 128 << 20;
  WriteRandomFile(hans_dir + "/big.bin", kSize, 42);
  const FileInfo original = HashOf(hans_dir, "big.bin");
  Shell hans(daemon, "hans", "hanspass", hans_dir);
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub big.bin"), "");

  Process download(PeerctlOptions(daemon.address(), "vader", "vaderpass",
                                  {"get", "big.bin"}, vader_dir));
  download.CloseStdin();
  std::optional<int> fd;
  std::optional<uint64_t> written;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  // The sink writes in order from offset 0, so the partial's file offset is
  // how far the download got.
  while (absl::Now() < deadline) {
    if (!fd.has_value()) fd = OpenFileUnder(download.pid(), vader_dir);
    if (fd.has_value()) {
      written = FileOffset(download.pid(), *fd);
      if (written.has_value() && *written >= kSize * 45 / 100) break;
    }
    absl::SleepFor(absl::Microseconds(100));
  }
  download.Signal(SIGSTOP);
  ASSERT_TRUE(fd.has_value()) << download.stderr_text();
  written = FileOffset(download.pid(), *fd);
  ASSERT_TRUE(written.has_value());
  ASSERT_GE(*written, kSize * 40 / 100);
  ASSERT_LT(*written, kSize) << "caught too late to interrupt";
  EXPECT_EQ(ListFolder(vader_dir),
            std::vector<std::string>{".big.bin.pcfs-partial"});
  download.Signal(SIGKILL);
  download.Wait(absl::Seconds(10));
  EXPECT_EQ(ListFolder(vader_dir),
            std::vector<std::string>{".big.bin.pcfs-partial"});

  const std::optional<uint64_t> sent_before =
      BytesWrittenBy(hans.process().pid());
  ASSERT_TRUE(sent_before.has_value());
  CommandResult get = GetAsVader(daemon, "big.bin", vader_dir);
  ASSERT_EQ(get.exit_code, 0) << get.err;
  const std::optional<uint64_t> sent_after =
      BytesWrittenBy(hans.process().pid());
  ASSERT_TRUE(sent_after.has_value());
  const uint64_t moved = *sent_after - *sent_before;
  RecordProperty("interrupted_at_bytes", std::to_string(*written));
  RecordProperty("resumed_get_moved_bytes", std::to_string(moved));
  EXPECT_LE(moved, kSize * 60 / 100)
      << "the resumed get moved " << moved << " of " << kSize << " bytes";
  EXPECT_GT(moved, 0u);
  EXPECT_EQ(HashOf(vader_dir, "big.bin"), original);
  EXPECT_EQ(ListFolder(vader_dir), std::vector<std::string>{"big.bin"});
}

}  // namespace
}  // namespace pcfs::testing
