// `get` from several holders at once (issue #12): a real daemon, real
// holders (peerctl shells, or a registered address that never answers), and
// `peerctl get` or the downloader itself, on loopback.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"
#include "gtest/gtest.h"
#include "peerctl/client.h"
#include "peerctl/downloader.h"
#include "peerctl/exit_codes.h"
#include "peerctl/file_hash.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

FileInfo HashOf(const std::string& dir, const std::string& name) {
  absl::StatusOr<FileInfo> info = HashFile(dir, name);
  EXPECT_TRUE(info.ok()) << dir << "/" << name << ": " << info.status();
  return info.value_or(FileInfo{});
}

// Bytes a process has written (sockets included), from /proc/PID/io; 0 if
// it cannot be read.
uint64_t BytesWrittenBy(pid_t pid) {
  return IoCounterOf(pid, "wchar").value_or(0);
}

// Two peerctl shells, hans and yoda, each publishing its own copy of
// `name` (`size` random bytes, the same in both); vader's folder for the
// get.
struct TwoHolders {
  TwoHolders(const Daemon& daemon, const std::string& name, size_t size) {
    hans_dir = peers.MakeSubdir("hans");
    yoda_dir = peers.MakeSubdir("yoda");
    vader_dir = peers.MakeSubdir("vader");
    WriteRandomFile(hans_dir + "/" + name, size, 77);
    WriteRandomFile(yoda_dir + "/" + name, size, 77);
    hans = std::make_unique<Shell>(daemon, "hans", "hanspass", hans_dir);
    yoda = std::make_unique<Shell>(daemon, "yoda", "yodapass", yoda_dir);
    EXPECT_EQ(hans->Run("pub " + name), "");
    EXPECT_EQ(yoda->Run("pub " + name), "");
  }

  TempDir peers;
  std::string hans_dir;
  std::string yoda_dir;
  std::string vader_dir;
  std::unique_ptr<Shell> hans;
  std::unique_ptr<Shell> yoda;
};

// (a) Both holders serve a part of the file, and the bytes are right.
TEST(MultiHolderTest, TwoHoldersEachServeAPartOfTheGet) {
  Daemon daemon;
  constexpr size_t kSize = 64 << 20;
  TwoHolders holders(daemon, "data.bin", kSize);
  const uint64_t hans_before = BytesWrittenBy(holders.hans->process().pid());
  const uint64_t yoda_before = BytesWrittenBy(holders.yoda->process().pid());
  CommandResult get = RunPeerctl(daemon, "vader", "vaderpass",
                                 {"get", "data.bin"}, holders.vader_dir);
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(HashOf(holders.vader_dir, "data.bin"),
            HashOf(holders.hans_dir, "data.bin"));
  EXPECT_EQ(ListFolder(holders.vader_dir),
            std::vector<std::string>{"data.bin"});
  const uint64_t hans_sent =
      BytesWrittenBy(holders.hans->process().pid()) - hans_before;
  const uint64_t yoda_sent =
      BytesWrittenBy(holders.yoda->process().pid()) - yoda_before;
  RecordProperty("hans_sent_bytes", std::to_string(hans_sent));
  RecordProperty("yoda_sent_bytes", std::to_string(yoda_sent));
  // Each at least a whole 1 MiB chunk; together about the file.
  EXPECT_GE(hans_sent, uint64_t{1} << 20);
  EXPECT_GE(yoda_sent, uint64_t{1} << 20);
  EXPECT_GE(hans_sent + yoda_sent, kSize);
}

// (c) yoda's copy changed on disk after pub (same size; its mtime put back,
// so that its leaf cache still answers with the published leaves): every
// chunk it serves fails its check, yoda is dropped, and hans serves the
// chunks instead. The get succeeds with the published bytes.
TEST(MultiHolderTest, ACorruptHolderIsDroppedAndItsChunksComeFromTheOther) {
  Daemon daemon;
  constexpr size_t kSize = 32 << 20;
  TwoHolders holders(daemon, "data.bin", kSize);
  {
    const std::string path = holders.yoda_dir + "/data.bin";
    struct stat before {};
    ASSERT_EQ(::stat(path.c_str(), &before), 0);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    for (uint64_t chunk = 0; chunk < kSize >> 20; ++chunk) {
      ASSERT_EQ(::pwrite(fd.get(), "\xff\xfe", 2,
                         static_cast<off_t>((chunk << 20) + 100)),
                2);
    }
    const timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::futimens(fd.get(), times), 0);
  }
  const uint64_t yoda_before = BytesWrittenBy(holders.yoda->process().pid());
  CommandResult get = RunPeerctl(daemon, "vader", "vaderpass",
                                 {"get", "data.bin"}, holders.vader_dir);
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(HashOf(holders.vader_dir, "data.bin"),
            HashOf(holders.hans_dir, "data.bin"));
  const uint64_t yoda_sent =
      BytesWrittenBy(holders.yoda->process().pid()) - yoda_before;
  RecordProperty("yoda_sent_bytes", std::to_string(yoda_sent));
  // yoda was asked for a range (and so sent corrupt chunks that were
  // caught): it answered more than the leaves (32 bytes a chunk).
  EXPECT_GT(yoda_sent, uint64_t{64} << 10)
      << "yoda served no range; the corrupt path went untested";
}

// A holder registered at an address where nothing answers (a listener
// whose accept queue is full, so that SYNs are dropped, as for a host that
// is gone), kept alive with heartbeats, publishing `name` with the real
// file's size and root.
class UnansweringHolder {
 public:
  UnansweringHolder(const Daemon& daemon, const std::string& name,
                    const FileInfo& info, const std::string& user = "hans",
                    const std::string& password = "hanspass") {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    absl::StatusOr<SocketAddress> bind =
        SocketAddress::FromNumeric("127.0.0.1", 0);
    EXPECT_TRUE(bind.ok());
    EXPECT_EQ(::bind(listener_.get(), bind->get(), bind->length), 0);
    EXPECT_EQ(::listen(listener_.get(), 0), 0);
    const SocketAddress address = *LocalAddress(listener_.get());
    filler_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::connect(filler_.get(), address.get(), address.length), 0);
    KeyPin pin;
    pin.fill(0x5a);  // TLS expected: it never gets that far
    client_ = LoggedInClient(daemon, user, password, address.port(), pin);
    if (client_ == nullptr) return;
    EXPECT_TRUE(client_->Publish(name, info.size, info.root).ok());
    heartbeats_ = std::thread([this] {
      const absl::Time give_up = absl::Now() + absl::Seconds(60);
      while (!stop_ && absl::Now() < give_up) {
        client_->Heartbeat().IgnoreError();
        for (int i = 0; i < 10 && !stop_; ++i) {
          absl::SleepFor(absl::Milliseconds(100));
        }
      }
    });
  }
  ~UnansweringHolder() {
    stop_ = true;
    if (heartbeats_.joinable()) heartbeats_.join();
    if (client_ != nullptr) client_->Logout().IgnoreError();
  }

 private:
  UniqueFd listener_;
  UniqueFd filler_;
  std::unique_ptr<ControlClient> client_;
  std::atomic<bool> stop_{false};
  std::thread heartbeats_;
};

// (d) The only holder does not answer: a clear error within 5 s, exit code
// holder-unreachable.
TEST(MultiHolderTest, TheOnlyHolderNotAnsweringIsAClearErrorWithin5s) {
  Daemon daemon;
  TempDir peers;
  const std::string source_dir = peers.MakeSubdir("source");
  const std::string vader_dir = peers.MakeSubdir("vader");
  WriteRandomFile(source_dir + "/data.bin", 4 << 20, 5);
  UnansweringHolder hans(daemon, "data.bin", HashOf(source_dir, "data.bin"));
  const absl::Time start = absl::Now();
  CommandResult get =
      RunPeerctl(daemon, "vader", "vaderpass", {"get", "data.bin"}, vader_dir);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(get.exit_code, kExitHolderUnreachable) << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "did not answer within 3 s"))
      << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "hans")) << get.err;
  EXPECT_LT(took, absl::Seconds(5)) << get.err;
  RecordProperty("error_after_ms",
                 std::to_string(absl::ToInt64Milliseconds(took)));
  RecordProperty("stderr", get.err);
  EXPECT_TRUE(ListFolder(vader_dir).empty());
}

// (d) Two holders, neither answers: one clear error naming both, still
// within 5 s (they are tried at once, not one after the other).
TEST(MultiHolderTest, NoHolderAnsweringIsOneClearErrorWithin5s) {
  Daemon daemon;
  TempDir peers;
  const std::string source_dir = peers.MakeSubdir("source");
  const std::string vader_dir = peers.MakeSubdir("vader");
  WriteRandomFile(source_dir + "/data.bin", 4 << 20, 7);
  const FileInfo info = HashOf(source_dir, "data.bin");
  UnansweringHolder hans(daemon, "data.bin", info);
  UnansweringHolder yoda(daemon, "data.bin", info, "yoda", "yodapass");
  const absl::Time start = absl::Now();
  CommandResult get =
      RunPeerctl(daemon, "vader", "vaderpass", {"get", "data.bin"}, vader_dir);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(get.exit_code, kExitHolderUnreachable) << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "no holder could send data.bin: "))
      << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "hans at 127.0.0.1:")) << get.err;
  EXPECT_TRUE(absl::StrContains(get.err, "yoda at 127.0.0.1:")) << get.err;
  EXPECT_LT(took, absl::Seconds(5)) << get.err;
  RecordProperty("both_silent_error_after_ms",
                 std::to_string(absl::ToInt64Milliseconds(took)));
  EXPECT_TRUE(ListFolder(vader_dir).empty());
}

// (d) One holder does not answer, the other does: the get succeeds, and
// the silent one costs at most its 3 s connect timeout (in fact nothing:
// the leaves are asked of both at once).
TEST(MultiHolderTest, AHolderNotAnsweringCostsAtMost3sWhenAnotherServes) {
  Daemon daemon;
  TempDir peers;
  const std::string yoda_dir = peers.MakeSubdir("yoda");
  const std::string vader_dir = peers.MakeSubdir("vader");
  WriteRandomFile(yoda_dir + "/data.bin", 8 << 20, 6);
  const FileInfo info = HashOf(yoda_dir, "data.bin");
  Shell yoda(daemon, "yoda", "yodapass", yoda_dir);
  ASSERT_EQ(yoda.Run("pub data.bin"), "");

  // A baseline: the same get from yoda alone.
  const absl::Time alone_start = absl::Now();
  CommandResult alone =
      RunPeerctl(daemon, "vader", "vaderpass", {"get", "data.bin"}, vader_dir);
  const absl::Duration alone_took = absl::Now() - alone_start;
  ASSERT_EQ(alone.exit_code, 0) << alone.err;
  ASSERT_EQ(::unlink((vader_dir + "/data.bin").c_str()), 0);

  UnansweringHolder hans(daemon, "data.bin", info);
  const absl::Time start = absl::Now();
  CommandResult get =
      RunPeerctl(daemon, "vader", "vaderpass", {"get", "data.bin"}, vader_dir);
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(HashOf(vader_dir, "data.bin"), info);
  RecordProperty("alone_ms",
                 std::to_string(absl::ToInt64Milliseconds(alone_took)));
  RecordProperty("with_silent_holder_ms",
                 std::to_string(absl::ToInt64Milliseconds(took)));
  // 3 s and a generous second for a loaded machine.
  EXPECT_LT(took - alone_took, absl::Seconds(4))
      << "alone " << alone_took << ", with a silent holder " << took;
}

// A TCP relay that passes a holder's bytes to the downloader at most
// `bytes_per_second` per connection (the request and the handshake go
// through at once), so that a transfer lasts long enough to stop a holder
// in the middle of it. One thread per connection.
class SlowRelay {
 public:
  SlowRelay(const SocketAddress& target, uint64_t bytes_per_second)
      : target_(target), rate_(bytes_per_second) {
    absl::StatusOr<SocketAddress> any =
        SocketAddress::FromNumeric("127.0.0.1", 0);
    EXPECT_TRUE(any.ok());
    absl::StatusOr<UniqueFd> listener = OpenTcpListener(*any, 16);
    EXPECT_TRUE(listener.ok()) << listener.status();
    listener_ = *std::move(listener);
    address_ = *LocalAddress(listener_.get());
    accepter_ = std::thread([this] { Accept(); });
  }
  ~SlowRelay() {
    stop_ = true;
    accepter_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& thread : connections_) thread.join();
  }

  const SocketAddress& address() const { return address_; }

 private:
  void Accept() {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!stop_ && absl::Now() < deadline) {
      pollfd entry{listener_.get(), POLLIN, 0};
      if (::poll(&entry, 1, 50) <= 0) continue;
      int client = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      connections_.emplace_back([this, client] {
        Forward(UniqueFd(client), absl::Now() + absl::Seconds(60));
      });
    }
  }

  void Forward(UniqueFd client, absl::Time deadline) {
    UniqueFd holder(::socket(target_.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!holder ||
        ::connect(holder.get(), target_.get(), target_.length) != 0) {
      return;
    }
    const absl::Time start = absl::Now();
    uint64_t passed = 0;  // holder -> client
    bool client_open = true;
    bool holder_open = true;
    while (!stop_ && (client_open || holder_open) && absl::Now() < deadline) {
      const short client_events = client_open ? POLLIN : 0;
      const short holder_events = holder_open ? POLLIN : 0;
      pollfd entries[2] = {{client.get(), client_events, 0},
                           {holder.get(), holder_events, 0}};
      if (::poll(entries, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if ((entries[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const int from = i == 0 ? client.get() : holder.get();
        const int to = i == 0 ? holder.get() : client.get();
        char buffer[16384];
        ssize_t n = ::recv(from, buffer, sizeof(buffer), 0);
        if (n <= 0) {
          ::shutdown(to, SHUT_WR);
          (i == 0 ? client_open : holder_open) = false;
          continue;
        }
        if (i == 1) {
          passed += static_cast<uint64_t>(n);
          const absl::Time due =
              start + absl::Seconds(static_cast<double>(passed) /
                                    static_cast<double>(rate_));
          while (!stop_ && absl::Now() < due) {
            absl::SleepFor(std::min(due - absl::Now(), absl::Milliseconds(20)));
          }
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
  const uint64_t rate_;
  UniqueFd listener_;
  SocketAddress address_;
  std::atomic<bool> stop_{false};
  std::thread accepter_;
  std::mutex mu_;
  std::vector<std::thread> connections_;  // guarded by mu_
};

// (b) Two holders behind slow relays (so that the transfer takes seconds);
// the first is stopped (SIGSTOP) a quarter of the way: the get finishes
// with the right bytes within 10 s of the stop.
TEST(MultiHolderTest, AHolderStoppedMidTransferCostsLessThan10s) {
  Daemon daemon;
  constexpr size_t kSize = 32 << 20;
  TwoHolders holders(daemon, "data.bin", kSize);
  std::unique_ptr<ControlClient> vader =
      LoggedInClient(daemon, "vader", "vaderpass");
  ASSERT_NE(vader, nullptr);
  absl::StatusOr<FileLocation> location = vader->Get("data.bin");
  ASSERT_TRUE(location.ok()) << location.status();
  ASSERT_EQ(location->others.size(), 1u);
  const HolderLocation& other = location->others[0];
  constexpr uint64_t kRate = 6 << 20;  // bytes/s, each holder
  SlowRelay first_relay(location->address, kRate);
  SlowRelay other_relay(other.address, kRate);
  Shell& first = location->holder == "hans" ? *holders.hans : *holders.yoda;

  DownloadRequest request;
  request.holder = first_relay.address();
  request.name = "data.bin";
  request.ticket = location->ticket;
  request.holder_pin = location->key_pin;
  request.holder_name = location->holder;
  request.destination_dir = holders.vader_dir;
  request.expected_size = location->size;
  request.expected_root = location->root;
  request.other_holders.push_back(
      {other_relay.address(), other.ticket, other.key_pin, other.holder});
  std::optional<absl::Time> stopped_at;
  request.progress = [&](uint64_t received, uint64_t total) {
    if (!stopped_at.has_value() && received >= total / 4) {
      first.process().Signal(SIGSTOP);
      stopped_at = absl::Now();
    }
  };
  const absl::Status status = Download(request);
  const absl::Time finished = absl::Now();
  if (stopped_at.has_value()) first.process().Signal(SIGCONT);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(stopped_at.has_value()) << "never a quarter of the way";
  RecordProperty(
      "finished_after_stop_ms",
      std::to_string(absl::ToInt64Milliseconds(finished - *stopped_at)));
  EXPECT_LT(finished - *stopped_at, absl::Seconds(10));
  EXPECT_EQ(HashOf(holders.vader_dir, "data.bin"),
            HashOf(holders.hans_dir, "data.bin"));
  vader->Logout().IgnoreError();
}

}  // namespace
}  // namespace pcfs::testing
