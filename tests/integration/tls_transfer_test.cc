// TLS transfers between real peerctl processes on loopback
// (docs/SECURITY.md, "Transfers"): a capture of the transfer holds neither
// the file nor its name; a holder presenting another key than the one it
// registered is refused with a clear message and exit code 7, leaving
// nothing behind; `peerctl url` prints a curl command that fetches the
// file; --plaintext-transfers still serves plain HTTP (and the same capture
// then shows the file, which proves the capture check can fail).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"
#include "gtest/gtest.h"
#include "peerctl/client.h"
#include "peerctl/downloader.h"
#include "peerctl/exit_codes.h"
#include "peerctl/file_hash.h"
#include "peerctl/file_server.h"
#include "peerctl/tls.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

// A TCP relay on 127.0.0.1 that forwards connections to `target`, one after
// another (a download makes two: the chunk hashes, then the file), and
// records every byte, both ways. Its thread ends on destruction, or after
// 30 s.
class TcpRelay {
 public:
  explicit TcpRelay(const SocketAddress& target) : target_(target) {
    absl::StatusOr<SocketAddress> any =
        SocketAddress::FromNumeric("127.0.0.1", 0);
    EXPECT_TRUE(any.ok());
    absl::StatusOr<UniqueFd> listener = OpenTcpListener(*any, 4);
    EXPECT_TRUE(listener.ok()) << listener.status();
    listener_ = *std::move(listener);
    absl::StatusOr<SocketAddress> local = LocalAddress(listener_.get());
    EXPECT_TRUE(local.ok());
    address_ = *local;
    thread_ = std::thread([this] { Run(); });
  }
  ~TcpRelay() {
    stop_ = true;
    thread_.join();
  }

  const SocketAddress& address() const { return address_; }
  std::string captured() {
    std::lock_guard<std::mutex> lock(mu_);
    return captured_;
  }

 private:
  void Run() {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!stop_ && absl::Now() < deadline) {
      pollfd accept_entry{listener_.get(), POLLIN, 0};
      if (::poll(&accept_entry, 1, 50) <= 0) continue;
      UniqueFd client(
          ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) continue;
      Forward(client.get(), deadline);
    }
  }

  // Forwards one connection until both sides have closed.
  void Forward(int client, absl::Time deadline) {
    UniqueFd holder(::socket(target_.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!holder ||
        ::connect(holder.get(), target_.get(), target_.length) != 0) {
      return;
    }
    int open_sides = 2;
    bool client_open = true;
    bool holder_open = true;
    while (!stop_ && open_sides > 0 && absl::Now() < deadline) {
      const short client_events = client_open ? POLLIN : 0;
      const short holder_events = holder_open ? POLLIN : 0;
      pollfd entries[2] = {{client, client_events, 0},
                           {holder.get(), holder_events, 0}};
      if (::poll(entries, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if ((entries[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const int from = i == 0 ? client : holder.get();
        const int to = i == 0 ? holder.get() : client;
        char buffer[65536];
        ssize_t n = ::recv(from, buffer, sizeof(buffer), 0);
        if (n <= 0) {
          ::shutdown(to, SHUT_WR);
          (i == 0 ? client_open : holder_open) = false;
          --open_sides;
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          captured_.append(buffer, static_cast<size_t>(n));
        }
        for (ssize_t sent = 0; sent < n;) {
          ssize_t m = ::send(to, buffer + sent, static_cast<size_t>(n - sent),
                             MSG_NOSIGNAL);
          if (m <= 0) break;
          sent += m;
        }
      }
    }
  }

  const SocketAddress target_;
  UniqueFd listener_;
  SocketAddress address_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string captured_;  // guarded by mu_
  std::thread thread_;
};

// Whether any 16-byte block of `file` (at a multiple of 16) appears
// anywhere in `capture`: every 32-byte run of the file holds one.
bool CaptureHoldsFileBytes(const std::string& file,
                           const std::string& capture) {
  absl::flat_hash_set<absl::string_view> blocks;
  for (size_t i = 0; i + 16 <= file.size(); i += 16) {
    blocks.insert(absl::string_view(file).substr(i, 16));
  }
  for (size_t i = 0; i + 16 <= capture.size(); ++i) {
    if (blocks.contains(absl::string_view(capture).substr(i, 16))) return true;
  }
  return false;
}

// Downloads `name` (as vader would) through a relay in front of the holder
// the daemon names; returns what the relay saw.
std::string DownloadThroughRelay(const Daemon& daemon, const std::string& name,
                                 const std::string& folder,
                                 bool expect_encrypted) {
  std::unique_ptr<ControlClient> vader =
      LoggedInClient(daemon, "vader", "vaderpass");
  if (vader == nullptr) return "";
  absl::StatusOr<FileLocation> location = vader->Get(name);
  EXPECT_TRUE(location.ok()) << location.status();
  if (!location.ok()) return "";
  EXPECT_EQ(!IsPlaintextPin(location->key_pin), expect_encrypted);
  TcpRelay relay(location->address);
  DownloadRequest request;
  request.holder = relay.address();
  request.name = name;
  request.ticket = location->ticket;
  request.destination_dir = folder;
  request.expected_size = location->size;
  request.expected_root = location->root;
  request.holder_pin = location->key_pin;
  request.holder_name = location->holder;
  absl::Status downloaded = Download(request);
  EXPECT_TRUE(downloaded.ok()) << downloaded;
  vader->Logout().IgnoreError();
  // The relay has forwarded everything the download read; let it see the
  // holder's close too.
  absl::SleepFor(absl::Milliseconds(100));
  return relay.captured();
}

constexpr char kSecretName[] = "secret-plans.bin";

TEST(TlsTransferTest, CaptureHoldsNeitherTheFileNorItsName) {
  Daemon daemon;
  TempDir hans_dir;
  TempDir out;
  WriteRandomFile(hans_dir.path() + "/" + kSecretName, 1 << 20, 12);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run(absl::StrCat("pub ", kSecretName)), "");

  const std::string capture =
      DownloadThroughRelay(daemon, kSecretName, out.path(), true);
  const std::string file = ReadFileOrEmpty(hans_dir.path() + "/" + kSecretName);
  ASSERT_EQ(ReadFileOrEmpty(out.path() + "/" + kSecretName), file);
  EXPECT_GT(capture.size(), file.size());  // it all went through the relay
  EXPECT_FALSE(CaptureHoldsFileBytes(file, capture));
  EXPECT_FALSE(absl::StrContains(capture, kSecretName));
  EXPECT_FALSE(absl::StrContains(capture, "secret-plans"));
}

TEST(TlsTransferTest, PlaintextTransfersStillDownloadAndShowOnTheWire) {
  Daemon daemon;
  TempDir hans_dir;
  TempDir out;
  TempDir vader_dir;
  WriteRandomFile(hans_dir.path() + "/" + kSecretName, 1 << 20, 13);
  Shell hans(daemon.address(), "hans", "hanspass", hans_dir.path(),
             {"--plaintext-transfers"});
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run(absl::StrCat("pub ", kSecretName)), "");
  const std::string file = ReadFileOrEmpty(hans_dir.path() + "/" + kSecretName);

  // peerctl itself downloads it.
  CommandResult get = RunPeerctl(daemon, "vader", "vaderpass",
                                 {"get", kSecretName}, vader_dir.path());
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(ReadFileOrEmpty(vader_dir.path() + "/" + kSecretName), file);

  // The same capture as above sees everything: the check can fail.
  const std::string capture =
      DownloadThroughRelay(daemon, kSecretName, out.path(), false);
  EXPECT_TRUE(CaptureHoldsFileBytes(file, capture));
  EXPECT_TRUE(absl::StrContains(capture, kSecretName));
}

TEST(TlsTransferTest, HolderWithAnotherKeyIsRefused) {
  Daemon daemon;
  TempDir share;
  TempDir vader_dir;
  share.WriteFile("a.txt", "contents\n");
  absl::StatusOr<TlsIdentity> registered = TlsIdentity::Generate();
  absl::StatusOr<TlsIdentity> presented = TlsIdentity::Generate();
  ASSERT_TRUE(registered.ok() && presented.ok());
  // A "holder" that registers one key and presents another: what a man in
  // the middle with a key of its own, or a holder whose key changed, looks
  // like to the downloader.
  absl::StatusOr<std::shared_ptr<TlsServerContext>> context =
      TlsServerContext::Create(*presented);
  ASSERT_TRUE(context.ok());
  FileServer::Options server_options;
  server_options.share_dir = share.path();
  server_options.bind = *SocketAddress::FromNumeric("127.0.0.1", 0);
  std::atomic<int> requests{0};
  server_options.authorizer = [&](absl::string_view, absl::string_view) {
    ++requests;
    return absl::OkStatus();
  };
  server_options.tls = *context;
  absl::StatusOr<std::unique_ptr<FileServer>> server =
      FileServer::Start(std::move(server_options));
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<ControlClient> hans = LoggedInClient(
      daemon, "hans", "hanspass", (*server)->port(), registered->pin());
  ASSERT_NE(hans, nullptr);
  absl::StatusOr<FileInfo> info = HashFile(share.path(), "a.txt");
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(hans->Publish("a.txt", info->size, info->root).ok());
  // Heartbeats while the download runs (the session times out after 3 s).
  std::atomic<bool> done{false};
  std::thread heartbeats([&] {
    for (int i = 0; i < 600 && !done; ++i) {
      if (i % 10 == 0) hans->Heartbeat().IgnoreError();
      absl::SleepFor(absl::Milliseconds(100));
    }
  });

  CommandResult get = RunPeerctl(daemon, "vader", "vaderpass", {"get", "a.txt"},
                                 vader_dir.path());
  done = true;
  heartbeats.join();
  EXPECT_EQ(get.exit_code, kExitHolderKeyMismatch) << get.err;
  EXPECT_TRUE(absl::StrContains(
      get.err, absl::StrCat("holder hans at 127.0.0.1:", (*server)->port(),
                            " presented a different key than the daemon "
                            "registered for it; refusing the download")))
      << get.err;
  EXPECT_TRUE(ListFolder(vader_dir.path()).empty());
  EXPECT_EQ(requests.load(), 0);  // no request, so no ticket, was sent
}

TEST(TlsTransferTest, UrlPrintsACurlCommandThatFetchesTheFile) {
  Daemon daemon;
  TempDir hans_dir;
  TempDir curl_dir;
  // A space and a quote: the command must quote them for the shell.
  const std::string name = "it's a file.bin";
  WriteRandomFile(hans_dir.path() + "/" + name, 300000, 14);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run(absl::StrCat("pub ", name)), "");

  CommandResult url =
      RunPeerctl(daemon, "vader", "vaderpass", {"url", name}, curl_dir.path());
  ASSERT_EQ(url.exit_code, 0) << url.err;
  EXPECT_TRUE(absl::StartsWith(url.out,
                               "curl --fail --no-clobber --remove-on-error -k "
                               "--pinnedpubkey 'sha256//"))
      << url.out;
  EXPECT_TRUE(absl::StrContains(url.out, "'https://127.0.0.1:")) << url.out;
  EXPECT_TRUE(absl::StrContains(url.err, "valid for")) << url.err;

  Process::Options shell;
  shell.argv = {"/bin/sh", "-c", url.out};
  shell.cwd = curl_dir.path();
  CommandResult curl = RunToCompletion(shell, absl::Seconds(30));
  EXPECT_EQ(curl.exit_code, 0) << curl.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/" + name),
            ReadFileOrEmpty(hans_dir.path() + "/" + name));
  // Run again, it keeps the file now there and writes NAME.1.
  curl_dir.WriteFile(name, "mine");
  CommandResult again = RunToCompletion(shell, absl::Seconds(30));
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/" + name), "mine");
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/" + name + ".1"),
            ReadFileOrEmpty(hans_dir.path() + "/" + name));
}

// The curl command `peerctl url NAME` prints (as vader), run in `dir`.
CommandResult FetchWithCurl(const Daemon& daemon, const std::string& name,
                            const std::string& dir) {
  CommandResult url =
      RunPeerctl(daemon, "vader", "vaderpass", {"url", name}, dir);
  EXPECT_EQ(url.exit_code, 0) << url.err;
  Process::Options shell;
  shell.argv = {"/bin/sh", "-c", url.out};
  shell.cwd = dir;
  return RunToCompletion(shell, absl::Seconds(30));
}

// How many times `part` occurs in `text`.
size_t CountOf(absl::string_view text, absl::string_view part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != absl::string_view::npos;
       at = text.find(part, at + part.size())) {
    ++count;
  }
  return count;
}

// A published file changed in place afterwards is not what was published:
// the holder refuses it (409) rather than let curl, which checks nothing,
// take it for the published file. Published again, it goes out.
TEST(TlsTransferTest, AFileChangedSinceItWasPublishedIsNotServed) {
  Daemon daemon;
  TempDir hans_dir;
  TempDir curl_dir;
  hans_dir.WriteFile("notes.txt", "public notes\n");
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub notes.txt"), "");
  // Another size, other bytes, a later mtime: refused at once.
  absl::SleepFor(absl::Milliseconds(20));
  hans_dir.WriteFile("notes.txt", "PRIVATE draft\n");

  const auto fetch = [&] {
    return FetchWithCurl(daemon, "notes.txt", curl_dir.path());
  };
  CommandResult refused = fetch();
  EXPECT_NE(refused.exit_code, 0) << refused.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/notes.txt"), "");
  EXPECT_TRUE(hans.process()
                  .ReadStderrUntil("not serving notes.txt: it changed since "
                                   "it was published",
                                   absl::Seconds(10))
                  .has_value())
      << hans.process().stderr_text();

  ASSERT_EQ(hans.Run("pub notes.txt"), "");
  CommandResult served = fetch();
  EXPECT_EQ(served.exit_code, 0) << served.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/notes.txt"), "PRIVATE draft\n");
}

// A file put back as it was published (restored from a copy: another
// inode and mtime, the same bytes) is served again without a new `pub`: the
// first download to find it has the holder read it, and is told to try
// again in a moment (503) meanwhile; so is one that was gone from the share
// folder. A file merely touched is the same. A changed file of another size
// is refused (409) at once; one of the published size once it is read.
TEST(TlsTransferTest, AFilePutBackAsPublishedIsServedAgain) {
  Daemon daemon;
  TempDir hans_dir;
  TempDir curl_dir;
  hans_dir.WriteFile("notes.txt", "public notes\n");
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub notes.txt"), "");
  const std::string path = hans_dir.path() + "/notes.txt";
  const auto fetch = [&] {
    ::unlink((curl_dir.path() + "/notes.txt").c_str());
    return FetchWithCurl(daemon, "notes.txt", curl_dir.path());
  };
  // What the holder logs, read from its stderr in order.
  const auto holder_said = [&](absl::string_view text) {
    return hans.process()
        .ReadStderrUntil(std::string(text), absl::Seconds(10))
        .has_value();
  };
  constexpr absl::string_view kRefused =
      "not serving notes.txt: it changed since it was published";
  constexpr absl::string_view kServedAgain =
      "serving notes.txt again: the file is the version published once more";
  // curl --fail names the HTTP status of a refusal.
  const auto refused_with = [&](int status) {
    CommandResult refused = fetch();
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/notes.txt"), "");
    return absl::StrContains(refused.err,
                             absl::StrCat("returned error: ", status));
  };
  // Changed to another size: refused at once, and said, with no read.
  hans_dir.WriteFile("notes.txt", "PRIVATE draft\n");
  EXPECT_TRUE(refused_with(409));
  ASSERT_TRUE(holder_said(kRefused)) << hans.process().stderr_text();
  // Refused again, and not said again: the same changed file.
  EXPECT_TRUE(refused_with(409));
  absl::SleepFor(absl::Milliseconds(300));
  hans.process().DrainOutput();
  EXPECT_EQ(CountOf(hans.process().stderr_text(), "not serving notes.txt"), 1u)
      << hans.process().stderr_text();

  // Put back through a new file (as a copy from a backup would be): found,
  // and "try again in a moment" while the holder reads it.
  hans_dir.WriteFile("notes.txt.restore", "public notes\n");
  ASSERT_EQ(::rename((path + ".restore").c_str(), path.c_str()), 0);
  EXPECT_TRUE(refused_with(503));
  ASSERT_TRUE(holder_said(kServedAgain)) << hans.process().stderr_text();
  CommandResult served = fetch();
  EXPECT_EQ(served.exit_code, 0) << served.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/notes.txt"), "public notes\n");

  // Changed to other bytes of the published size: 503 while it is read,
  // then refused, and said once.
  absl::SleepFor(absl::Milliseconds(20));
  hans_dir.WriteFile("notes.txt", "PUBLIC NOTES\n");
  EXPECT_TRUE(refused_with(503));
  ASSERT_TRUE(holder_said(kRefused)) << hans.process().stderr_text();
  EXPECT_TRUE(refused_with(409));
  hans.process().DrainOutput();
  EXPECT_EQ(CountOf(hans.process().stderr_text(), "not serving notes.txt"), 2u)
      << hans.process().stderr_text();
  // Put back again (in place, so a new mtime): read, then served.
  hans_dir.WriteFile("notes.txt", "public notes\n");
  EXPECT_TRUE(refused_with(503));
  ASSERT_TRUE(holder_said(kServedAgain)) << hans.process().stderr_text();
  served = fetch();
  EXPECT_EQ(served.exit_code, 0) << served.err;

  // Gone, then back: the same.
  ASSERT_EQ(::rename(path.c_str(), (path + ".away").c_str()), 0);
  EXPECT_NE(fetch().exit_code, 0);
  ASSERT_EQ(::rename((path + ".away").c_str(), path.c_str()), 0);
  // Its inode, size and mtime are the ones served: nothing to read again.
  served = fetch();
  EXPECT_EQ(served.exit_code, 0) << served.err;

  // Touched (a new mtime, the same bytes): read again, then served, with
  // no warning, since none was given.
  const struct timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  hans.process().DrainOutput();
  const size_t warnings = CountOf(hans.process().stderr_text(), "not serving");
  bool touched_served = false;
  for (int i = 0; i < 50 && !touched_served; ++i) {
    touched_served = fetch().exit_code == 0;
    if (!touched_served) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(touched_served);
  hans.process().DrainOutput();
  EXPECT_EQ(CountOf(hans.process().stderr_text(), "not serving"), warnings)
      << hans.process().stderr_text();
}

// A file published by an earlier run of peerctl is checked when a new one
// starts: the new one serves it only if it still has the size and root the
// daemon holds; a file changed meanwhile is refused until published again.
TEST(TlsTransferTest, AFileChangedSinceAnEarlierRunPublishedItIsNotServed) {
  Daemon daemon;
  TempDir hans_dir;
  TempDir curl_dir;
  hans_dir.WriteFile("notes.txt", "public notes\n");
  hans_dir.WriteFile("kept.txt", "unchanged\n");
  hans_dir.WriteFile("gone.txt", "deleted later\n");
  {
    Shell earlier(daemon, "hans", "hanspass", hans_dir.path());
    ASSERT_TRUE(earlier.logged_in());
    ASSERT_EQ(earlier.Run("pub notes.txt"), "");
    ASSERT_EQ(earlier.Run("pub kept.txt"), "");
    ASSERT_EQ(earlier.Run("pub gone.txt"), "");
    ASSERT_EQ(earlier.Exit().exit_code, 0);
  }
  hans_dir.WriteFile("notes.txt", "PRIVATE draft\n");
  ASSERT_EQ(::unlink((hans_dir.path() + "/gone.txt").c_str()), 0);
  Shell hans(daemon, "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  // A file gone from the share folder is said once, with the others gone,
  // before any file is read.
  EXPECT_TRUE(
      hans.process()
          .ReadStderrUntil(
              "not serving 1 file published earlier and no longer in "
              "the share folder (gone.txt): put it back as published, or "
              "publish it again",
              absl::Seconds(10))
          .has_value())
      << hans.process().stderr_text();
  ASSERT_TRUE(hans.process()
                  .ReadStderrUntil("not serving notes.txt: it changed since "
                                   "it was published",
                                   absl::Seconds(10))
                  .has_value())
      << hans.process().stderr_text();

  const auto fetch = [&](const std::string& name) {
    return FetchWithCurl(daemon, name, curl_dir.path());
  };
  CommandResult refused = fetch("notes.txt");
  EXPECT_NE(refused.exit_code, 0) << refused.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/notes.txt"), "");
  // Small files are checked before the login ends: kept.txt is served.
  CommandResult served = fetch("kept.txt");
  EXPECT_EQ(served.exit_code, 0) << served.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/kept.txt"), "unchanged\n");
  // Published again, the new version goes out.
  ASSERT_EQ(hans.Run("pub notes.txt"), "");
  served = fetch("notes.txt");
  EXPECT_EQ(served.exit_code, 0) << served.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/notes.txt"), "PRIVATE draft\n");
  // Put back as published, the gone file is served again once the first
  // download to find it had it read (that one is refused).
  hans_dir.WriteFile("gone.txt", "deleted later\n");
  EXPECT_NE(fetch("gone.txt").exit_code, 0);
  ASSERT_TRUE(hans.process()
                  .ReadStderrUntil("serving gone.txt again", absl::Seconds(10))
                  .has_value())
      << hans.process().stderr_text();
  served = fetch("gone.txt");
  EXPECT_EQ(served.exit_code, 0) << served.err;
  EXPECT_EQ(ReadFileOrEmpty(curl_dir.path() + "/gone.txt"), "deleted later\n");
}

}  // namespace
}  // namespace pcfs::testing
