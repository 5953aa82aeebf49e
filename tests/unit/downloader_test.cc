#include "peerctl/downloader.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/proto/merkle.h"
#include "gtest/gtest.h"
#include "peerctl/exit_codes.h"
#include "peerctl/file_hash.h"
#include "peerctl/file_server.h"
#include "peerctl/http.h"
#include "peerctl/resumable_download.h"

namespace pcfs {
namespace {

using ::absl::StatusCode;

constexpr absl::string_view kTicket = "t1cket";

absl::Status TestAuthorizer(absl::string_view name, absl::string_view ticket) {
  if (ticket != kTicket) return absl::UnauthenticatedError("no ticket");
  if (name == "forbidden.bin") return absl::PermissionDeniedError("no");
  if (name == "unpublished.bin") return absl::NotFoundError("no");
  return absl::OkStatus();
}

SocketAddress Loopback(absl::string_view host, uint16_t port) {
  absl::StatusOr<SocketAddress> address =
      SocketAddress::FromNumeric(host, port);
  EXPECT_TRUE(address.ok()) << address.status();
  return address.ok() ? *address : SocketAddress{};
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// How a FakeHolder ends the connection after its canned response.
enum class Ending { kClose, kReset, kStaySilent };

// A one-connection HTTP server that answers any request with fixed bytes:
// a stand-in for a broken or malicious holder.
class FakeHolder {
 public:
  FakeHolder(std::string response, Ending ending)
      : listener_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    SocketAddress bind = Loopback("127.0.0.1", 0);
    EXPECT_EQ(::bind(listener_.get(), bind.get(), bind.length), 0);
    EXPECT_EQ(::listen(listener_.get(), 4), 0);
    address_ = *LocalAddress(listener_.get());
    thread_ = std::thread([this, response = std::move(response), ending] {
      Serve(response, ending);
    });
  }
  ~FakeHolder() {
    ::shutdown(listener_.get(), SHUT_RDWR);  // wakes a pending accept
    thread_.join();
  }

  const SocketAddress& address() const { return address_; }

 private:
  // A holder without leaves (an older peerctl): "GET /m/" gets 404 and the
  // downloader comes back for the whole file on a second connection, which
  // gets `response`.
  void Serve(const std::string& response, Ending ending) {
    for (int connection = 0; connection < 2; ++connection) {
      if (ServeOne(response, ending)) return;
    }
  }

  // True once `response` (or silence) was the answer.
  bool ServeOne(const std::string& response, Ending ending) {
    pollfd entry{listener_.get(), POLLIN, 0};
    if (::poll(&entry, 1, 10000) != 1) return true;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) return true;
    timeval timeout{10, 0};
    ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof(timeout));
    std::string head;
    char buffer[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(client.get(), buffer, sizeof(buffer), 0);
      if (n <= 0) return true;
      head.append(buffer, static_cast<size_t>(n));
    }
    if (head.starts_with("GET /m/")) {
      const std::string none = http::FormatErrorHead(http::kNotFound);
      ::send(client.get(), none.data(), none.size(), MSG_NOSIGNAL);
      return false;
    }
    if (ending == Ending::kStaySilent) {
      ::recv(client.get(), buffer, sizeof(buffer), 0);  // until the client
      return true;                                      // gives up
    }
    ::send(client.get(), response.data(), response.size(), MSG_NOSIGNAL);
    if (ending == Ending::kReset) {
      linger hard{1, 0};  // close with RST instead of FIN
      ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    }
    return true;
  }

  UniqueFd listener_;
  SocketAddress address_;
  std::thread thread_;
};

class DownloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs_downloader_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    share_ = root_ + "/share";
    destination_ = root_ + "/downloads";
    ASSERT_EQ(::mkdir(share_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(destination_.c_str(), 0755), 0);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(root_);
  }

  void Share(absl::string_view name, absl::string_view contents) {
    std::ofstream out(share_ + "/" + std::string(name), std::ios::binary);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    ASSERT_TRUE(out.good());
  }

  // `leaf_source` overrides the honest one (the leaves of the shared file).
  void StartServer(absl::string_view bind_host = "127.0.0.1",
                   FileServer::LeafSource leaf_source = nullptr) {
    FileServer::Options options;
    options.share_dir = share_;
    options.bind = Loopback(bind_host, 0);
    options.authorizer = TestAuthorizer;
    // As peerctl's holder does: the leaves, so that downloads are chunk
    // verified and resumable (a holder without them: see FakeHolder).
    options.leaf_source =
        [share =
             share_](absl::string_view name) -> absl::StatusOr<std::string> {
      absl::StatusOr<FileInfo> info = HashFile(share, name);
      if (!info.ok()) return info.status();
      return MerkleLeavesToBytes(info->leaves);
    };
    if (leaf_source) options.leaf_source = std::move(leaf_source);
    absl::StatusOr<std::unique_ptr<FileServer>> server =
        FileServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // A request for `name` from our server, checked against the shared copy.
  DownloadRequest RequestFor(absl::string_view name) {
    DownloadRequest request;
    request.holder = Loopback("127.0.0.1", server_ ? server_->port() : 0);
    request.name = std::string(name);
    request.ticket = std::string(kTicket);
    request.destination_dir = destination_;
    request.timeout = absl::Seconds(10);
    absl::StatusOr<FileInfo> info = HashFile(share_, name);
    if (info.ok()) {
      request.expected_size = info->size;
      request.expected_root = info->root;
    }
    return request;
  }

  DownloadRequest RequestFromFake(const FakeHolder& fake,
                                  absl::string_view contents) {
    DownloadRequest request;
    request.holder = fake.address();
    request.name = "file.bin";
    request.ticket = std::string(kTicket);
    request.destination_dir = destination_;
    request.timeout = absl::Seconds(10);
    std::vector<Sha256Digest> leaves;
    for (uint64_t i = 0; i < MerkleChunkCount(contents.size()); ++i) {
      leaves.push_back(MerkleLeafHash(contents.substr(
          i * kMerkleChunkBytes, MerkleChunkLength(contents.size(), i))));
    }
    request.expected_size = contents.size();
    request.expected_root = MerkleRoot(leaves);
    return request;
  }

  std::vector<std::string> DestinationEntries() {
    std::vector<std::string> names;
    for (const auto& entry :
         std::filesystem::directory_iterator(destination_)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

  // A holder serves `served` (the size of `real`) where `real` was
  // announced: the download must fail on the hash and leave nothing.
  void ExpectHashMismatchLeavesNothing(const std::string& real,
                                       const std::string& served) {
    ASSERT_EQ(real.size(), served.size());
    FakeHolder fake(http::FormatOkHead(served.size()) + served, Ending::kClose);
    absl::Status status = Download(RequestFromFake(fake, real));
    EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status;
    EXPECT_NE(status.message().find("Merkle root mismatch"),
              absl::string_view::npos)
        << status;
    EXPECT_TRUE(DestinationEntries().empty());
  }

  // Two gets of the shared `name` into the destination at once, 20 times:
  // the second is refused while the first downloads ("another get is
  // downloading"), or at its start once the first is done ("already
  // exists"), or finds the file the first finished and is done too. The
  // folder ends with the file alone, no partial beside it.
  void RaceTwoGets(const std::string& name) {
    const DownloadRequest request = RequestFor(name);
    const std::string contents = ReadWhole(share_ + "/" + name);
    constexpr int kRounds = 20;
    for (int round = 0; round < kRounds; ++round) {
      absl::Status results[2];
      std::thread second([&] { results[1] = Download(request); });
      results[0] = Download(request);
      second.join();
      for (const absl::Status& result : results) {
        if (!result.ok()) {
          EXPECT_EQ(result.code(), StatusCode::kAlreadyExists) << result;
          EXPECT_TRUE(
              absl::StrContains(result.message(), "another get is") ||
              absl::StrContains(result.message(), " already exists in "))
              << result;
        }
      }
      EXPECT_TRUE(results[0].ok() || results[1].ok()) << "round " << round;
      ASSERT_EQ(DestinationEntries(), std::vector<std::string>{name})
          << "round " << round;
      EXPECT_EQ(ReadWhole(destination_ + "/" + name), contents);
      std::filesystem::remove(destination_ + "/" + name);
    }
  }

  std::string root_;
  std::string share_;
  std::string destination_;
  std::unique_ptr<FileServer> server_;
};

TEST_F(DownloaderTest, RoundTripIsByteIdentical) {
  const std::string contents = RandomBytes((3 << 20) + 123, 1);
  Share("data.bin", contents);
  StartServer();
  absl::Status status = Download(RequestFor("data.bin"));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadWhole(destination_ + "/data.bin"), contents);
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"data.bin"});
}

// A partial from an interrupted get: chunks 0, 1 and 4 right, chunk 2 right
// but for one byte, the rest zeros. The get keeps exactly the three that
// verify (the progress starts there), fetches the others, and the partial
// becomes the file.
TEST_F(DownloaderTest, ResumesFromTheVerifiedChunksOfAPartial) {
  const uint64_t chunk = kMerkleChunkBytes;
  const std::string contents = RandomBytes(6 * chunk + 5, 11);
  Share("big.bin", contents);
  std::string partial(contents.size(), '\0');
  for (uint64_t i : {0, 1, 2, 4}) {
    partial.replace(i * chunk, chunk, contents.substr(i * chunk, chunk));
  }
  partial[2 * chunk + 7] ^= 1;
  {
    std::ofstream out(destination_ + "/.big.bin.pcfs-partial",
                      std::ios::binary);
    out.write(partial.data(), static_cast<std::streamsize>(partial.size()));
  }
  StartServer();
  DownloadRequest request = RequestFor("big.bin");
  std::optional<uint64_t> first_progress;
  request.progress = [&](uint64_t received, uint64_t) {
    if (!first_progress) first_progress = received;
  };
  absl::Status status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(first_progress, 3 * chunk);
  EXPECT_EQ(ReadWhole(destination_ + "/big.bin"), contents);
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"big.bin"});
}

// Ctrl-C (the cancel flag) mid-body: Cancelled, the hidden partial stays
// with its verified chunks, and the next call resumes from them.
TEST_F(DownloaderTest, CancelKeepsThePartialForTheNextGet) {
  const std::string contents = RandomBytes(8 * kMerkleChunkBytes, 15);
  Share("k.bin", contents);
  StartServer();
  DownloadRequest request = RequestFor("k.bin");
  std::atomic<bool> cancel{false};
  request.cancel = &cancel;
  request.progress = [&](uint64_t received, uint64_t) {
    if (received >= 3 * kMerkleChunkBytes) cancel = true;
  };
  absl::Status status = Download(request);
  ASSERT_TRUE(absl::IsCancelled(status)) << status;
  EXPECT_EQ(DestinationEntries(),
            std::vector<std::string>{".k.bin.pcfs-partial"});

  request.cancel = nullptr;
  std::optional<uint64_t> first_progress;
  request.progress = [&](uint64_t received, uint64_t) {
    if (!first_progress) first_progress = received;
  };
  status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_GE(first_progress.value_or(0), 3 * kMerkleChunkBytes);
  EXPECT_EQ(ReadWhole(destination_ + "/k.bin"), contents);
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"k.bin"});
}

TEST_F(DownloaderTest, APartialOfAnotherSizeIsStartedOver) {
  const std::string contents = RandomBytes(2 * kMerkleChunkBytes + 1, 12);
  Share("f.bin", contents);
  {
    std::ofstream out(destination_ + "/.f.bin.pcfs-partial", std::ios::binary);
    out << contents.substr(0, kMerkleChunkBytes);  // a right first chunk
  }
  StartServer();
  DownloadRequest request = RequestFor("f.bin");
  std::optional<uint64_t> first_progress;
  request.progress = [&](uint64_t received, uint64_t) {
    if (!first_progress) first_progress = received;
  };
  absl::Status status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(first_progress, 0u);
  EXPECT_EQ(ReadWhole(destination_ + "/f.bin"), contents);
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"f.bin"});
}

// A holder whose leaves are those of the published file but whose bytes
// differ in chunk 1: DataLoss naming the chunk; only the hidden partial
// stays, and a later get from an honest holder resumes from it.
TEST_F(DownloaderTest, ACorruptChunkFailsTheGetAndLinksNothing) {
  const std::string contents = RandomBytes(3 * kMerkleChunkBytes, 13);
  Share("c.bin", contents);
  const std::string good_leaves =
      MerkleLeavesToBytes(HashFile(share_, "c.bin")->leaves);
  DownloadRequest request = RequestFor("c.bin");
  std::string bad = contents;
  bad[kMerkleChunkBytes + 3] ^= 1;
  Share("c.bin", bad);
  StartServer("127.0.0.1", [good_leaves](absl::string_view) {
    return absl::StatusOr<std::string>(good_leaves);
  });
  request.holder = Loopback("127.0.0.1", server_->port());
  absl::Status status = Download(request);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_NE(status.message().find("chunk 1 (bytes 1048576-2097151) does not "
                                  "match its published hash"),
            absl::string_view::npos)
      << status;
  EXPECT_EQ(DestinationEntries(),
            std::vector<std::string>{".c.bin.pcfs-partial"});

  server_.reset();
  Share("c.bin", contents);
  StartServer();
  request.holder = Loopback("127.0.0.1", server_->port());
  std::optional<uint64_t> first_progress;
  request.progress = [&](uint64_t received, uint64_t) {
    if (!first_progress) first_progress = received;
  };
  status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_GE(first_progress.value_or(0), kMerkleChunkBytes);  // chunk 0 kept
  EXPECT_EQ(ReadWhole(destination_ + "/c.bin"), contents);
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"c.bin"});
}

// Leaves that do not add up to the expected root (the holder serves another
// file): DataLoss before any partial is made.
TEST_F(DownloaderTest, LeavesThatDoNotAddUpFailBeforeAnyPartial) {
  Share("d.bin", RandomBytes(kMerkleChunkBytes + 9, 14));
  DownloadRequest request = RequestFor("d.bin");
  StartServer("127.0.0.1", [](absl::string_view) {
    return absl::StatusOr<std::string>(std::string(64, 'x'));
  });
  request.holder = Loopback("127.0.0.1", server_->port());
  absl::Status status = Download(request);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_NE(status.message().find("do not add up"), absl::string_view::npos)
      << status;
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, RoundTripOfEncodedUtf8NameWithSpaces) {
  const std::string name = "50% off \xE2\x82\xAC sale.txt";
  Share(name, "cheap");
  StartServer();
  absl::Status status = Download(RequestFor(name));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadWhole(destination_ + "/" + name), "cheap");
}

TEST_F(DownloaderTest, RoundTripOfEmptyFile) {
  Share("empty", "");
  StartServer();
  absl::Status status = Download(RequestFor("empty"));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"empty"});
}

TEST_F(DownloaderTest, RoundTripOverIpv6) {
  Share("v6.bin", "six");
  StartServer("::");
  DownloadRequest request = RequestFor("v6.bin");
  request.holder = Loopback("::1", server_->port());
  absl::Status status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadWhole(destination_ + "/v6.bin"), "six");
}

TEST_F(DownloaderTest, ThreeConcurrentDownloadsOfA64MiBFile) {
  Share("big.bin", RandomBytes(64 << 20, 2));
  StartServer();
  const DownloadRequest base = RequestFor("big.bin");
  absl::Status results[3];
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    DownloadRequest request = base;
    request.destination_dir = absl::StrCat(destination_, "/", i);
    ASSERT_EQ(::mkdir(request.destination_dir.c_str(), 0755), 0);
    threads.emplace_back(
        [&results, i, request] { results[i] = Download(request); });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i];
    absl::StatusOr<FileInfo> copy =
        HashFile(absl::StrCat(destination_, "/", i), "big.bin");
    ASSERT_TRUE(copy.ok()) << copy.status();
    EXPECT_EQ(copy->size, *base.expected_size);
    EXPECT_EQ(copy->root, *base.expected_root);
  }
}

// Two gets of one name into one folder at once (RaceTwoGets).
TEST_F(DownloaderTest, TwoGetsOfOneNameAtOnceLeaveTheFileAlone) {
  Share("twice.bin", RandomBytes(2 * kMerkleChunkBytes + 7, 16));
  StartServer();
  RaceTwoGets("twice.bin");
}

// The partial removed while the get runs, and made again (as another get
// would, which writes into it): the get never makes that file NAME.
TEST_F(DownloaderTest, APartialRemovedDuringTheGetNeverBecomesTheFile) {
  const std::string contents = RandomBytes(3 * kMerkleChunkBytes, 22);
  Share("gone.bin", contents);
  StartServer();
  DownloadRequest request = RequestFor("gone.bin");
  const std::string partial = destination_ + "/.gone.bin.pcfs-partial";
  bool replaced = false;
  request.progress = [&](uint64_t, uint64_t) {
    if (replaced) return;
    replaced = true;
    std::filesystem::remove(partial);
    std::ofstream(partial, std::ios::binary) << "another get's bytes";
  };
  absl::Status status = Download(request);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(IsFolderFailure(status)) << status;
  EXPECT_EQ(ExitCodeFor(status), kExitFailure);
  EXPECT_NE(status.message().find("was removed during the download"),
            absl::string_view::npos)
      << status;
  EXPECT_EQ(DestinationEntries(),
            std::vector<std::string>{".gone.bin.pcfs-partial"});
  EXPECT_EQ(ReadWhole(partial), "another get's bytes");
}

// The same for an empty file, which is fetched whole (it has no leaves):
// the second to finish finds the first one's file, and is done too.
TEST_F(DownloaderTest, TwoGetsOfOneEmptyFileAtOnceBothEndWithIt) {
  Share("empty.bin", "");
  StartServer();
  RaceTwoGets("empty.bin");
}

// A file that takes the name while the get runs: the published file ends
// the get (its partial goes); another is kept, and so is the partial.
TEST_F(DownloaderTest, ThePublishedFileAppearingDuringTheGetEndsIt) {
  const std::string contents = RandomBytes(3 * kMerkleChunkBytes, 17);
  Share("same.bin", contents);
  StartServer();
  DownloadRequest request = RequestFor("same.bin");
  bool written = false;
  request.progress = [&](uint64_t, uint64_t) {
    if (!written) std::ofstream(destination_ + "/same.bin") << contents;
    written = true;
  };
  absl::Status status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"same.bin"});
  EXPECT_EQ(ReadWhole(destination_ + "/same.bin"), contents);
}

TEST_F(DownloaderTest,
       AnotherFileAppearingDuringTheGetIsKeptAndSoIsThePartial) {
  const std::string contents = RandomBytes(3 * kMerkleChunkBytes, 18);
  Share("other.bin", contents);
  StartServer();
  DownloadRequest request = RequestFor("other.bin");
  bool written = false;
  request.progress = [&](uint64_t, uint64_t) {
    if (!written) std::ofstream(destination_ + "/other.bin") << "mine";
    written = true;
  };
  absl::Status status = Download(request);
  ASSERT_EQ(status.code(), StatusCode::kAlreadyExists) << status;
  EXPECT_NE(status.message().find("appeared in"), absl::string_view::npos)
      << status;
  EXPECT_NE(status.message().find(".other.bin.pcfs-partial"),
            absl::string_view::npos)
      << status;
  EXPECT_EQ(ReadWhole(destination_ + "/other.bin"), "mine");
  EXPECT_EQ(ReadWhole(destination_ + "/.other.bin.pcfs-partial"), contents);
  // Moved away, the name is free: the next get finishes from the partial.
  std::filesystem::remove(destination_ + "/other.bin");
  request.progress = nullptr;
  status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"other.bin"});
  EXPECT_EQ(ReadWhole(destination_ + "/other.bin"), contents);
}

// The name taken between the get's first look and its partial (another
// get finished meanwhile): the published file there is the get done, with
// no partial made; another file refuses it, with none made either.
TEST_F(DownloaderTest, ANameTakenBeforeThePartialIsCheckedThere) {
  const std::string contents = RandomBytes(kMerkleChunkBytes + 9, 19);
  Share("late.bin", contents);
  StartServer();
  const DownloadRequest request = RequestFor("late.bin");
  UniqueFd dir(::open(destination_.c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_TRUE(dir);
  const download_internal::Bounds bounds{absl::Seconds(10),
                                         absl::InfiniteFuture(), nullptr};
  std::ofstream(destination_ + "/late.bin") << contents;
  absl::StatusOr<bool> done = DownloadResumable(request, dir.get(), bounds);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(*done);
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"late.bin"});

  std::ofstream(destination_ + "/late.bin", std::ios::trunc) << "mine";
  done = DownloadResumable(request, dir.get(), bounds);
  ASSERT_EQ(done.status().code(), StatusCode::kAlreadyExists) << done.status();
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"late.bin"});
  EXPECT_EQ(ReadWhole(destination_ + "/late.bin"), "mine");
}

// Runs `fn` with RLIMIT_FSIZE at `limit` bytes (SIGXFSZ ignored): writes
// and allocations past it fail with EFBIG, as on a full disk.
void WithFileSizeLimit(rlim_t limit, const std::function<void()>& fn) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_action {};
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  struct rlimit old_limit {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit capped = old_limit;
  capped.rlim_cur = limit;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &capped), 0);
  fn();
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);
}

// A file the folder cannot hold fails as the folder's, before a byte is
// fetched, and leaves no empty partial behind.
TEST_F(DownloaderTest, AFileTheFolderCannotHoldLeavesNoPartial) {
  Share("big.bin", RandomBytes(4 * kMerkleChunkBytes, 21));
  StartServer();
  absl::Status status;
  WithFileSizeLimit(kMerkleChunkBytes,
                    [&] { status = Download(RequestFor("big.bin")); });
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(IsFolderFailure(status)) << status;
  EXPECT_NE(status.message().find("fallocate"), absl::string_view::npos)
      << status;
  EXPECT_TRUE(DestinationEntries().empty());
}

// A write that fails in the download folder (here: past RLIMIT_FSIZE, as
// on a full disk) is the folder's failure, not the holder's: the get stops
// at once with it, and keeps the partial with what it verified.
TEST_F(DownloaderTest, AWriteThatFailsInTheFolderIsTheFoldersFailure) {
  const std::string contents = RandomBytes(4 * kMerkleChunkBytes, 20);
  Share("w.bin", contents);
  StartServer();
  // A partial of the full size already (so that nothing is allocated),
  // whose chunks all need writing.
  const std::string partial = destination_ + "/.w.bin.pcfs-partial";
  std::ofstream(partial, std::ios::binary) << std::string(contents.size(), 'x');
  absl::Status status;
  WithFileSizeLimit(2 * kMerkleChunkBytes,
                    [&] { status = Download(RequestFor("w.bin")); });
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(IsFolderFailure(status)) << status;
  EXPECT_NE(status.message().find("File too large"), absl::string_view::npos)
      << status;
  EXPECT_EQ(DestinationEntries(),
            std::vector<std::string>{".w.bin.pcfs-partial"});
  // The chunks below the limit were kept: the next get finishes from them.
  status = Download(RequestFor("w.bin"));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadWhole(destination_ + "/w.bin"), contents);
}

TEST_F(DownloaderTest, ForbiddenFileIsPermissionDeniedAndLeavesNothing) {
  Share("forbidden.bin", "x");
  StartServer();
  EXPECT_EQ(Download(RequestFor("forbidden.bin")).code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, UnpublishedFileIsNotFoundAndLeavesNothing) {
  Share("unpublished.bin", "x");
  StartServer();
  EXPECT_EQ(Download(RequestFor("unpublished.bin")).code(),
            StatusCode::kNotFound);
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, MissingTicketIsUnauthenticated) {
  Share("data.bin", "x");
  StartServer();
  DownloadRequest request = RequestFor("data.bin");
  request.ticket.clear();
  EXPECT_EQ(Download(request).code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, SymlinkOutOfTheShareIsRefusedAndLeavesNothing) {
  std::ofstream(root_ + "/secret") << "top secret";
  ASSERT_EQ(::symlink("../secret", (share_ + "/link").c_str()), 0);
  StartServer();
  EXPECT_EQ(Download(RequestFor("link")).code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, DirectoryIsNotFound) {
  ASSERT_EQ(::mkdir((share_ + "/folder").c_str(), 0755), 0);
  StartServer();
  EXPECT_EQ(Download(RequestFor("folder")).code(), StatusCode::kNotFound);
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, PathNamesAreRefusedBeforeConnecting) {
  for (absl::string_view name : {"../x", "/etc/passwd", "a/b", ".."}) {
    DownloadRequest request;  // no holder at all
    request.name = std::string(name);
    request.destination_dir = destination_;
    EXPECT_EQ(Download(request).code(), StatusCode::kInvalidArgument) << name;
  }
}

TEST_F(DownloaderTest, ExistingDestinationIsRefusedAndKept) {
  Share("data.bin", "new contents");
  std::ofstream(destination_ + "/data.bin") << "mine";
  StartServer();
  EXPECT_EQ(Download(RequestFor("data.bin")).code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadWhole(destination_ + "/data.bin"), "mine");
}

// The published file itself there already (another get of it finished
// first): done, and nothing fetched or left beside it.
TEST_F(DownloaderTest, ThePublishedFileAlreadyThereIsDone) {
  const std::string contents = RandomBytes(kMerkleChunkBytes + 3, 23);
  Share("here.bin", contents);
  std::ofstream(destination_ + "/here.bin", std::ios::binary) << contents;
  DownloadRequest request = RequestFor("here.bin");  // no server: no fetch
  absl::Status status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"here.bin"});
}

TEST_F(DownloaderTest, DanglingSymlinkAtDestinationCountsAsExisting) {
  Share("data.bin", "x");
  ASSERT_EQ(::symlink("/nonexistent", (destination_ + "/data.bin").c_str()), 0);
  StartServer();
  EXPECT_EQ(Download(RequestFor("data.bin")).code(),
            StatusCode::kAlreadyExists);
}

TEST_F(DownloaderTest, BogusContentFailsTheHashAndLeavesNothing) {
  ExpectHashMismatchLeavesNothing("the real contents", "THE REAL CONTENTS");
}

// Many buffers' worth, so that the wrong byte reaches the hasher thread
// long after the pool has been recycled and writeback started: the overlap
// must still check every byte, the last one included.
TEST_F(DownloaderTest, BogusLastByteOfALargeBodyFailsTheHashAndLeavesNothing) {
  const std::string real = RandomBytes(20 << 20, 6);
  std::string bogus = real;
  bogus.back() = static_cast<char>(bogus.back() ^ 1);
  ExpectHashMismatchLeavesNothing(real, bogus);
}

// An interruption after several MiB (past the first writeback step and
// with buffers still queued for the hasher) leaves no file at all.
TEST_F(DownloaderTest, LargeBodyCutShortLeavesNoFile) {
  const std::string contents = RandomBytes(24 << 20, 7);
  FakeHolder fake(
      http::FormatOkHead(contents.size()) + contents.substr(0, (17 << 20) + 5),
      Ending::kClose);
  DownloadRequest request = RequestFromFake(fake, contents);
  request.expected_root.reset();  // the length alone must catch it
  request.expected_size.reset();
  absl::Status status = Download(request);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status;
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, TruncatedBodyFailsAndLeavesNothing) {
  const std::string contents = RandomBytes(100000, 3);
  FakeHolder fake(
      http::FormatOkHead(contents.size()) + contents.substr(0, 5000),
      Ending::kClose);
  DownloadRequest request = RequestFromFake(fake, contents);
  request.expected_root.reset();  // the length alone must catch it
  request.expected_size.reset();
  absl::Status status = Download(request);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status;
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, ConnectionResetFailsAndLeavesNothing) {
  const std::string contents = RandomBytes(100000, 4);
  FakeHolder fake(
      http::FormatOkHead(contents.size()) + contents.substr(0, 5000),
      Ending::kReset);
  absl::Status status = Download(RequestFromFake(fake, contents));
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, SizeOtherThanPublishedFailsBeforeTheBody) {
  const std::string contents = "twelve bytes";
  FakeHolder fake(http::FormatOkHead(13) + contents + "!", Ending::kClose);
  absl::Status status = Download(RequestFromFake(fake, contents));
  EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status;
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, ErrorStatusFromHolderIsReported) {
  FakeHolder fake(http::FormatErrorHead(http::kServiceUnavailable),
                  Ending::kClose);
  EXPECT_EQ(Download(RequestFromFake(fake, "x")).code(),
            StatusCode::kUnavailable);
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, MalformedResponseIsInvalid) {
  FakeHolder fake("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                  Ending::kClose);
  EXPECT_EQ(Download(RequestFromFake(fake, "x")).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(DownloaderTest, SilentHolderTimesOutAndLeavesNothing) {
  FakeHolder fake("", Ending::kStaySilent);
  DownloadRequest request = RequestFromFake(fake, "x");
  request.timeout = absl::Milliseconds(300);
  EXPECT_EQ(Download(request).code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, RefusedConnectionIsUnavailable) {
  // A port that was just bound and released: nobody listens there.
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress bind = Loopback("127.0.0.1", 0);
  ASSERT_EQ(::bind(probe.get(), bind.get(), bind.length), 0);
  const SocketAddress address = *LocalAddress(probe.get());
  probe.Reset();
  DownloadRequest request;
  request.holder = address;
  request.name = "file.bin";
  request.destination_dir = destination_;
  EXPECT_EQ(Download(request).code(), StatusCode::kUnavailable);
}

// A holder whose host does not answer: a listener with backlog 0 whose one
// accept-queue place a connection holds (never accepted), so that Linux
// drops every further SYN, as a firewall or a vanished host does.
struct SilentHolder {
  UniqueFd listener;
  UniqueFd filler;
  SocketAddress address;
};
void StartSilentHolder(SilentHolder& silent) {
  silent.listener = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress bind = Loopback("127.0.0.1", 0);
  ASSERT_EQ(::bind(silent.listener.get(), bind.get(), bind.length), 0);
  ASSERT_EQ(::listen(silent.listener.get(), 0), 0);
  silent.address = *LocalAddress(silent.listener.get());
  silent.filler = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(silent.filler.get(), silent.address.get(),
                      silent.address.length),
            0);
}

TEST_F(DownloaderTest, UnansweredHolderFailsAtTheConnectTimeout) {
  SilentHolder silent;
  ASSERT_NO_FATAL_FAILURE(StartSilentHolder(silent));
  const SocketAddress address = silent.address;

  DownloadRequest request;
  request.holder = address;
  request.name = "file.bin";
  request.ticket = std::string(kTicket);
  request.destination_dir = destination_;
  request.timeout = absl::Seconds(30);  // the old wait; must not apply
  ASSERT_EQ(request.connect_timeout, absl::Seconds(3));
  const absl::Time start = absl::Now();
  absl::Status status = Download(request);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status;
  EXPECT_EQ(status.message(), absl::StrCat("holder ", address.ToString(),
                                           " did not answer within 3 s"));
  EXPECT_GE(took, absl::Milliseconds(2900));
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_EQ(ExitCodeFor(MarkHolderFailure(status)), kExitHolderUnreachable);
  EXPECT_TRUE(DestinationEntries().empty());
}

TEST_F(DownloaderTest, ConnectTimeoutIsAnOptionOfItsOwn) {
  SilentHolder silent;
  ASSERT_NO_FATAL_FAILURE(StartSilentHolder(silent));
  const SocketAddress address = silent.address;

  DownloadRequest request;
  request.holder = address;
  request.name = "file.bin";
  request.destination_dir = destination_;
  request.connect_timeout = absl::Milliseconds(500);
  const absl::Time start = absl::Now();
  absl::Status status = Download(request);
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status;
  EXPECT_NE(status.message().find("did not answer within 0.5 s"),
            absl::string_view::npos)
      << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

// ---- Several holders ------------------------------------------------------

// Counts a holder's requests (the authorizer sees every one) and, of
// them, its leaves requests (its leaf source sees those); a downloader asks
// a holder for its leaves at most once. With `other`, each request after
// the first waits (at most 5 s) until `other` has had a range request: so
// that both holders serve a part, whatever the scheduling.
struct RequestGate {
  std::atomic<int> requests{0};
  std::atomic<int> leaves{0};
  RequestGate* other = nullptr;

  int ranges() const { return requests.load() - leaves.load(); }
  void Authorize() {
    if (++requests == 1 || other == nullptr) return;
    const absl::Time give_up = absl::Now() + absl::Seconds(5);
    while (other->ranges() == 0 && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
};

// A FileServer over `share` (leaves from the share's own files unless
// `leaves` says otherwise) with TestAuthorizer, counted by `gate`.
std::unique_ptr<FileServer> StartHolder(
    const std::string& share, RequestGate* gate = nullptr,
    FileServer::LeafSource leaves = nullptr) {
  FileServer::Options options;
  options.share_dir = share;
  options.bind = Loopback("127.0.0.1", 0);
  options.authorizer = [gate](absl::string_view name,
                              absl::string_view ticket) {
    if (gate != nullptr) gate->Authorize();
    return TestAuthorizer(name, ticket);
  };
  if (!leaves) {
    leaves = [share](absl::string_view name) -> absl::StatusOr<std::string> {
      absl::StatusOr<FileInfo> info = HashFile(share, name);
      if (!info.ok()) return info.status();
      return MerkleLeavesToBytes(info->leaves);
    };
  }
  options.leaf_source = [gate, leaves](absl::string_view name) {
    if (gate != nullptr) ++gate->leaves;
    return leaves(name);
  };
  absl::StatusOr<std::unique_ptr<FileServer>> server =
      FileServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

DownloadSource SourceAt(const SocketAddress& address, absl::string_view name) {
  DownloadSource source;
  source.address = address;
  source.ticket = std::string(kTicket);
  source.name = std::string(name);
  return source;
}

TEST_F(DownloaderTest, TwoHoldersEachServeAPartOfTheFile) {
  const std::string contents = RandomBytes(8 * kMerkleChunkBytes + 17, 21);
  Share("two.bin", contents);
  RequestGate first_gate;
  RequestGate second_gate;
  first_gate.other = &second_gate;
  std::unique_ptr<FileServer> first = StartHolder(share_, &first_gate);
  std::unique_ptr<FileServer> second = StartHolder(share_, &second_gate);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  DownloadRequest request = RequestFor("two.bin");
  request.holder = Loopback("127.0.0.1", first->port());
  request.holder_name = "hans";
  request.other_holders.push_back(
      SourceAt(Loopback("127.0.0.1", second->port()), "yoda"));
  absl::Status status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadWhole(destination_ + "/two.bin"), contents);
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"two.bin"});
  EXPECT_GE(first_gate.ranges(), 1);
  EXPECT_GE(second_gate.ranges(), 1);
  // Both are asked for the leaves at once; the first answer is taken.
  EXPECT_GE(first_gate.leaves + second_gate.leaves, 1);
}

// The first holder's file changed on disk after it was published (same
// size, one byte of chunk 2 flipped; its leaves are still the published
// ones): its chunk fails, it is dropped, and the other holder sends the
// chunks it had.
TEST_F(DownloaderTest, ACorruptChunkFromOneHolderIsFetchedFromTheOther) {
  const std::string contents = RandomBytes(6 * kMerkleChunkBytes + 5, 22);
  Share("c2.bin", contents);
  const std::string leaves =
      MerkleLeavesToBytes(HashFile(share_, "c2.bin")->leaves);
  const std::string bad_share = root_ + "/bad";
  ASSERT_EQ(::mkdir(bad_share.c_str(), 0755), 0);
  std::string bad = contents;
  bad[2 * kMerkleChunkBytes + 9] ^= 1;
  {
    std::ofstream out(bad_share + "/c2.bin", std::ios::binary);
    out << bad;
  }
  std::unique_ptr<FileServer> liar =
      StartHolder(bad_share, nullptr, [leaves](absl::string_view) {
        return absl::StatusOr<std::string>(leaves);
      });
  std::unique_ptr<FileServer> honest = StartHolder(share_);
  ASSERT_NE(liar, nullptr);
  ASSERT_NE(honest, nullptr);
  // The liar alone: the get fails on its chunk 2.
  DownloadRequest request = RequestFor("c2.bin");
  request.holder = Loopback("127.0.0.1", liar->port());
  absl::Status alone = Download(request);
  EXPECT_TRUE(absl::IsDataLoss(alone)) << alone;
  // With the honest one too, the same get (resuming) succeeds.
  request.other_holders.push_back(
      SourceAt(Loopback("127.0.0.1", honest->port()), "yoda"));
  absl::Status status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadWhole(destination_ + "/c2.bin"), contents);
  EXPECT_EQ(DestinationEntries(), std::vector<std::string>{"c2.bin"});
}

// A first holder that does not answer costs nothing: the leaves come from
// the other, asked at the same time, which then serves the whole file
// while the silent one's connect times out.
TEST_F(DownloaderTest, AnUnansweredHolderBesideAnotherCostsNothing) {
  SilentHolder silent;
  ASSERT_NO_FATAL_FAILURE(StartSilentHolder(silent));
  const std::string contents = RandomBytes(3 * kMerkleChunkBytes, 23);
  Share("u.bin", contents);
  std::unique_ptr<FileServer> good = StartHolder(share_);
  ASSERT_NE(good, nullptr);
  DownloadRequest request = RequestFor("u.bin");
  request.holder = silent.address;
  request.holder_name = "hans";
  request.other_holders.push_back(
      SourceAt(Loopback("127.0.0.1", good->port()), "yoda"));
  const absl::Time start = absl::Now();
  absl::Status status = Download(request);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "waited for silence";
  EXPECT_EQ(ReadWhole(destination_ + "/u.bin"), contents);
}

// A holder that sends its head and part of a body, then nothing: dropped
// after the stall timeout, its chunks fetched from the other.
TEST_F(DownloaderTest, AHolderThatStallsMidBodyIsDroppedForTheOther) {
  const std::string contents = RandomBytes(4 * kMerkleChunkBytes, 24);
  Share("s.bin", contents);
  std::unique_ptr<FileServer> good = StartHolder(share_);
  ASSERT_NE(good, nullptr);
  // The staller answers the leaves honestly (first connection), then any
  // range with a 206 head and 1000 bytes, then silence.
  const std::string leaves =
      MerkleLeavesToBytes(HashFile(share_, "s.bin")->leaves);
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress bind = Loopback("127.0.0.1", 0);
  ASSERT_EQ(::bind(listener.get(), bind.get(), bind.length), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);
  const SocketAddress staller = *LocalAddress(listener.get());
  std::atomic<bool> done{false};
  std::thread serve([&] {
    std::vector<UniqueFd> held;
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (!done && absl::Now() < give_up) {
      pollfd entry{listener.get(), POLLIN, 0};
      if (::poll(&entry, 1, 50) != 1) continue;
      UniqueFd client(
          ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) continue;
      std::string head;
      char buffer[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(client.get(), buffer, sizeof(buffer), 0);
        if (n <= 0) break;
        head.append(buffer, static_cast<size_t>(n));
      }
      std::string answer;
      if (head.starts_with("GET /m/")) {
        answer = http::FormatOkHead(leaves.size()) + leaves;
      } else {
        const size_t from = head.find("bytes=") + 6;
        const uint64_t first = std::stoull(head.substr(from));
        const uint64_t last =
            std::stoull(head.substr(head.find('-', from) + 1));
        answer = http::FormatPartialHead({first, last, contents.size()}) +
                 contents.substr(first, 1000);
      }
      ::send(client.get(), answer.data(), answer.size(), MSG_NOSIGNAL);
      held.push_back(std::move(client));  // open and silent
    }
  });
  DownloadRequest request = RequestFor("s.bin");
  request.holder = staller;
  request.holder_name = "hans";
  request.stall_timeout = absl::Milliseconds(500);
  request.other_holders.push_back(
      SourceAt(Loopback("127.0.0.1", good->port()), "yoda"));
  absl::Status status = Download(request);
  done = true;
  serve.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadWhole(destination_ + "/s.bin"), contents);
}

// A holder that keeps sending, but at a trickle (32 KiB every 100 ms),
// while the other is fast: once the fast one has nothing left to take, the
// slow one is stopped after 2 s and its chunks come from the fast one,
// instead of the whole get waiting for the trickle (about 13 s here).
TEST_F(DownloaderTest, ASlowHolderIsDroppedWhenTheOthersWaitForIt) {
  const std::string contents = RandomBytes(8 * kMerkleChunkBytes, 26);
  Share("slow.bin", contents);
  RequestGate fast_gate;
  RequestGate slow_gate;         // counted by the slow holder below
  fast_gate.other = &slow_gate;  // so that the slow one gets a run
  std::unique_ptr<FileServer> fast = StartHolder(share_, &fast_gate);
  ASSERT_NE(fast, nullptr);
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress bind = Loopback("127.0.0.1", 0);
  ASSERT_EQ(::bind(listener.get(), bind.get(), bind.length), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);
  const SocketAddress slow = *LocalAddress(listener.get());
  const std::string leaves =
      MerkleLeavesToBytes(HashFile(share_, "slow.bin")->leaves);
  std::atomic<bool> done{false};
  std::thread serve([&] {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (!done && absl::Now() < give_up) {
      pollfd entry{listener.get(), POLLIN, 0};
      if (::poll(&entry, 1, 50) != 1) continue;
      UniqueFd client(
          ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) continue;
      std::string head;
      char buffer[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(client.get(), buffer, sizeof(buffer), 0);
        if (n <= 0) break;
        head.append(buffer, static_cast<size_t>(n));
      }
      ++slow_gate.requests;
      if (head.starts_with("GET /m/")) {
        ++slow_gate.leaves;
        const std::string answer = http::FormatOkHead(leaves.size()) + leaves;
        ::send(client.get(), answer.data(), answer.size(), MSG_NOSIGNAL);
        continue;
      }
      const size_t at = head.find("bytes=");
      if (at == std::string::npos) continue;
      const uint64_t first = std::stoull(head.substr(at + 6));
      const uint64_t last = std::stoull(head.substr(head.find('-', at) + 1));
      const std::string answer =
          http::FormatPartialHead({first, last, contents.size()});
      ::send(client.get(), answer.data(), answer.size(), MSG_NOSIGNAL);
      for (uint64_t sent = first; sent <= last && !done;) {
        const size_t piece =
            static_cast<size_t>(std::min<uint64_t>(32 << 10, last + 1 - sent));
        if (::send(client.get(), contents.data() + sent, piece, MSG_NOSIGNAL) <=
            0) {
          break;
        }
        sent += piece;
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
  });
  DownloadRequest request = RequestFor("slow.bin");
  request.holder = Loopback("127.0.0.1", fast->port());
  request.holder_name = "hans";
  request.other_holders.push_back(SourceAt(slow, "yoda"));
  const absl::Time start = absl::Now();
  absl::Status status = Download(request);
  const absl::Duration took = absl::Now() - start;
  done = true;
  serve.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadWhole(destination_ + "/slow.bin"), contents);
  EXPECT_GE(slow_gate.ranges(), 1) << "the slow holder got no run";
  EXPECT_LT(took, absl::Seconds(8));
}

// Another holder's ticket goes into a request head too: one that is no
// Bearer token (a line break, say) is refused before anything is sent.
TEST_F(DownloaderTest, AnotherHoldersTicketMustBeABearerToken) {
  Share("t.bin", "contents");
  StartServer();
  DownloadRequest request = RequestFor("t.bin");
  DownloadSource other = SourceAt(Loopback("127.0.0.1", 9), "yoda");
  other.ticket = "abc\r\nX-Injected: 1";
  request.other_holders.push_back(other);
  absl::Status status = Download(request);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(DestinationEntries().empty());
}

// Every holder dropped: one error naming each and why; the partial stays.
TEST_F(DownloaderTest, EveryHolderFailingNamesEachAndWhy) {
  const std::string contents = RandomBytes(2 * kMerkleChunkBytes, 25);
  Share("f.bin", contents);
  SilentHolder silent;
  ASSERT_NO_FATAL_FAILURE(StartSilentHolder(silent));
  UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  SocketAddress bind = Loopback("127.0.0.1", 0);
  ASSERT_EQ(::bind(probe.get(), bind.get(), bind.length), 0);
  const SocketAddress refused = *LocalAddress(probe.get());
  probe.Reset();
  DownloadRequest request = RequestFor("f.bin");
  request.holder = silent.address;
  request.holder_name = "hans";
  request.connect_timeout = absl::Milliseconds(500);
  request.other_holders.push_back(SourceAt(refused, "yoda"));
  absl::Status status = Download(request);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status;
  EXPECT_NE(status.message().find("no holder could send f.bin: hans at " +
                                  silent.address.ToString() + ": holder " +
                                  silent.address.ToString() +
                                  " did not answer within 0.5 s; yoda at " +
                                  refused.ToString() + ": "),
            absl::string_view::npos)
      << status;
  EXPECT_EQ(ExitCodeFor(MarkHolderFailure(status)), kExitHolderUnreachable);
  // Not busy: a get does not wait it out.
  EXPECT_FALSE(IsHolderBusy(status)) << status;
  EXPECT_TRUE(DestinationEntries().empty());
}

// Every holder answering 503 (busy: here, still checking the file) is a
// busy download, which a get waits out (peerctl/peer.cc); so is the only
// holder's.
TEST_F(DownloaderTest, EveryHolderBusyIsABusyDownload) {
  Share("f.bin", RandomBytes(kMerkleChunkBytes, 26));
  StartServer("127.0.0.1",
              [](absl::string_view) -> absl::StatusOr<std::string> {
                return absl::UnavailableError("being checked");
              });
  DownloadRequest request = RequestFor("f.bin");
  request.holder_name = "hans";
  absl::Status alone = Download(request);
  EXPECT_EQ(alone.code(), StatusCode::kUnavailable) << alone;
  EXPECT_TRUE(IsHolderBusy(alone)) << alone;
  request.other_holders.push_back(SourceAt(request.holder, "yoda"));
  absl::Status both = Download(request);
  EXPECT_NE(both.message().find("no holder could send f.bin: hans at "),
            absl::string_view::npos)
      << both;
  EXPECT_TRUE(IsHolderBusy(both)) << both;
  EXPECT_TRUE(DestinationEntries().empty());
}

}  // namespace
}  // namespace pcfs
