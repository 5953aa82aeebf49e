#include "peerctl/file_server.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "peerctl/http.h"

namespace pcfs {
namespace {

constexpr absl::string_view kGoodTicket = "good-ticket";

// Allows everything to kGoodTicket, except two names it refuses although
// the files exist.
absl::Status TestAuthorizer(absl::string_view name, absl::string_view ticket) {
  if (ticket != kGoodTicket) return absl::UnauthenticatedError("no ticket");
  if (name == "forbidden.txt") return absl::PermissionDeniedError("no");
  if (name == "unpublished.txt") return absl::NotFoundError("not published");
  return absl::OkStatus();
}

// What a raw client received: the head and the body after it.
struct Reply {
  std::string head;
  std::string body;
  bool complete = false;  // the server closed the connection
};

SocketAddress Loopback(absl::string_view host, uint16_t port) {
  absl::StatusOr<SocketAddress> address =
      SocketAddress::FromNumeric(host, port);
  EXPECT_TRUE(address.ok()) << address.status();
  return address.ok() ? *address : SocketAddress{};
}

// A blocking client socket connected to the server, with a 10 s receive
// timeout so that no test can hang.
UniqueFd ConnectTo(const SocketAddress& address) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval timeout{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (::connect(fd.get(), address.get(), address.length) != 0) fd.Reset();
  return fd;
}

bool SendText(int fd, absl::string_view text) {
  return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) ==
         static_cast<ssize_t>(text.size());
}

// Reads until the server closes (or 10 s of silence) and splits the head.
Reply ReadReply(int fd) {
  std::string all;
  char buffer[65536];
  Reply reply;
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      reply.complete = n == 0;
      break;
    }
    all.append(buffer, static_cast<size_t>(n));
  }
  size_t end = all.find("\r\n\r\n");
  if (end == std::string::npos) {
    reply.head = all;
  } else {
    reply.head = all.substr(0, end + 4);
    reply.body = all.substr(end + 4);
  }
  return reply;
}

// What curl 7.88 sends for `curl -H 'Authorization: Bearer T' URL`.
std::string CurlRequest(absl::string_view target, absl::string_view ticket,
                        absl::string_view extra = "") {
  std::string head = absl::StrCat("GET ", target,
                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "User-Agent: curl/7.88.1\r\nAccept: */*\r\n");
  if (!ticket.empty()) {
    absl::StrAppend(&head, "Authorization: Bearer ", ticket, "\r\n");
  }
  absl::StrAppend(&head, extra, "\r\n");
  return head;
}

class FileServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pcfs_file_server_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    share_ = root_ + "/share";
    ASSERT_EQ(::mkdir(share_.c_str(), 0755), 0);
    Write(share_ + "/hello.txt", "hello world");
    Write(share_ + "/forbidden.txt", "forbidden");
    Write(share_ + "/unpublished.txt", "unpublished");
    Write(root_ + "/secret", "top secret");
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(root_);
  }

  static void Write(const std::string& path, absl::string_view contents) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    ASSERT_TRUE(out.good()) << path;
  }

  FileServer::Options DefaultOptions() {
    FileServer::Options options;
    options.share_dir = share_;
    options.bind = Loopback("127.0.0.1", 0);
    options.authorizer = TestAuthorizer;
    return options;
  }

  void StartServer(FileServer::Options options) {
    absl::StatusOr<std::unique_ptr<FileServer>> server =
        FileServer::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void StartServer() { StartServer(DefaultOptions()); }

  // Sends `request` on a new connection and reads the whole reply.
  Reply Exchange(absl::string_view request) {
    UniqueFd fd = ConnectTo(Loopback("127.0.0.1", server_->port()));
    EXPECT_TRUE(fd.valid());
    EXPECT_TRUE(SendText(fd.get(), request));
    return ReadReply(fd.get());
  }

  int StatusOf(const Reply& reply) {
    absl::StatusOr<http::Response> response =
        http::ParseResponseHead(reply.head);
    EXPECT_TRUE(response.ok()) << response.status() << reply.head;
    return response.ok() ? response->status_code : 0;
  }

  std::string root_;
  std::string share_;
  std::unique_ptr<FileServer> server_;
};

TEST_F(FileServerTest, StartPicksAPort) {
  StartServer();
  EXPECT_NE(server_->port(), 0);
  EXPECT_EQ(server_->address().port(), server_->port());
}

TEST_F(FileServerTest, StartWithoutAuthorizerIsRefused) {
  FileServer::Options options = DefaultOptions();
  options.authorizer = nullptr;
  EXPECT_EQ(FileServer::Start(std::move(options)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FileServerTest, StartWithMissingShareFails) {
  FileServer::Options options = DefaultOptions();
  options.share_dir = root_ + "/nope";
  EXPECT_FALSE(FileServer::Start(std::move(options)).ok());
}

TEST_F(FileServerTest, CurlRequestGetsExactHeadAndBody) {
  StartServer();
  Reply reply = Exchange(CurlRequest("/f/hello.txt", kGoodTicket));
  EXPECT_TRUE(reply.complete);
  EXPECT_EQ(reply.head, http::FormatOkHead(11));
  EXPECT_EQ(reply.body, "hello world");
}

TEST_F(FileServerTest, ServesEncodedNameWithSpacePercentAndUtf8) {
  const std::string name = "100% r\xC3\xA9sum\xC3\xA9 v2.txt";
  Write(share_ + "/" + name, "cv");
  StartServer();
  Reply reply = Exchange(
      CurlRequest(absl::StrCat("/f/", http::PercentEncode(name)), kGoodTicket));
  EXPECT_EQ(StatusOf(reply), 200);
  EXPECT_EQ(reply.body, "cv");
}

TEST_F(FileServerTest, ServesEmptyFile) {
  Write(share_ + "/empty", "");
  StartServer();
  Reply reply = Exchange(CurlRequest("/f/empty", kGoodTicket));
  EXPECT_EQ(reply.head, http::FormatOkHead(0));
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, OpenEndedRangeReturnsTheTail) {
  StartServer();
  Reply reply =
      Exchange(CurlRequest("/f/hello.txt", kGoodTicket, "Range: bytes=6-\r\n"));
  EXPECT_EQ(reply.head, http::FormatPartialHead({6, 10, 11}));
  EXPECT_EQ(reply.body, "world");
}

TEST_F(FileServerTest, ResumeFromAnOffsetReturnsTheExactTail) {
  std::string contents;
  for (int i = 0; i < (3 << 20); ++i) contents += static_cast<char>(i % 253);
  Write(share_ + "/big", contents);
  StartServer();
  const uint64_t offset = 1234567;
  Reply reply = Exchange(CurlRequest(
      "/f/big", kGoodTicket, absl::StrCat("Range: bytes=", offset, "-\r\n")));
  EXPECT_EQ(reply.head, http::FormatPartialHead(
                            {offset, contents.size() - 1, contents.size()}));
  EXPECT_TRUE(reply.body == contents.substr(offset));
}

TEST_F(FileServerTest, ClosedRangeReturnsTheMiddle) {
  StartServer();
  Reply reply = Exchange(
      CurlRequest("/f/hello.txt", kGoodTicket, "Range: bytes=2-4\r\n"));
  EXPECT_EQ(StatusOf(reply), 206);
  EXPECT_EQ(reply.body, "llo");
}

TEST_F(FileServerTest, RangePastTheEndIs416WithEmptyBody) {
  StartServer();
  Reply reply = Exchange(
      CurlRequest("/f/hello.txt", kGoodTicket, "Range: bytes=11-\r\n"));
  EXPECT_EQ(reply.head, http::FormatErrorHead(416, 11));
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, MissingTicketIs401) {
  StartServer();
  Reply reply = Exchange(CurlRequest("/f/hello.txt", ""));
  EXPECT_EQ(StatusOf(reply), 401);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, AuthorizerPermissionDeniedIs403) {
  StartServer();
  Reply reply = Exchange(CurlRequest("/f/forbidden.txt", kGoodTicket));
  EXPECT_EQ(StatusOf(reply), 403);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, AuthorizerNotFoundIs404EvenIfTheFileExists) {
  StartServer();
  Reply reply = Exchange(CurlRequest("/f/unpublished.txt", kGoodTicket));
  EXPECT_EQ(StatusOf(reply), 404);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, AuthorizerSeesDecodedNameAndTicket) {
  std::mutex mu;  // TSan cannot see Debian's absl::Mutex
  std::string seen_name;
  std::string seen_ticket;
  FileServer::Options options = DefaultOptions();
  options.authorizer = [&](absl::string_view name, absl::string_view ticket) {
    std::lock_guard<std::mutex> lock(mu);
    seen_name = std::string(name);
    seen_ticket = std::string(ticket);
    return absl::PermissionDeniedError("no");
  };
  StartServer(std::move(options));
  Exchange(CurlRequest("/f/a%20b", "T0k3n"));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen_name, "a b");
  EXPECT_EQ(seen_ticket, "T0k3n");
}

TEST_F(FileServerTest, MissingFileIs404) {
  StartServer();
  EXPECT_EQ(StatusOf(Exchange(CurlRequest("/f/nope", kGoodTicket))), 404);
}

TEST_F(FileServerTest, DirectoryIs404) {
  ASSERT_EQ(::mkdir((share_ + "/folder").c_str(), 0755), 0);
  StartServer();
  Reply reply = Exchange(CurlRequest("/f/folder", kGoodTicket));
  EXPECT_EQ(StatusOf(reply), 404);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, DotDotNameIsRefused) {
  StartServer();
  for (absl::string_view target :
       {"/f/..%2Fsecret", "/f/../secret", "/f/%2E%2E/secret", "/f/.."}) {
    Reply reply = Exchange(CurlRequest(target, kGoodTicket));
    EXPECT_EQ(StatusOf(reply), 400) << target;
    EXPECT_EQ(reply.body, "") << target;
  }
}

TEST_F(FileServerTest, AbsoluteNameIsRefused) {
  StartServer();
  const std::string target =
      absl::StrCat("/f/", http::PercentEncode(root_ + "/secret"));
  Reply reply = Exchange(CurlRequest(target, kGoodTicket));
  EXPECT_EQ(StatusOf(reply), 400);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, SymlinkOutOfTheShareIsRefused) {
  ASSERT_EQ(::symlink("../secret", (share_ + "/escape").c_str()), 0);
  ASSERT_EQ(
      ::symlink((root_ + "/secret").c_str(), (share_ + "/escape-abs").c_str()),
      0);
  StartServer();
  for (absl::string_view target : {"/f/escape", "/f/escape-abs"}) {
    Reply reply = Exchange(CurlRequest(target, kGoodTicket));
    EXPECT_EQ(StatusOf(reply), 403) << target;
    EXPECT_EQ(reply.body, "") << target;
  }
}

TEST_F(FileServerTest, OtherMethodIs405) {
  StartServer();
  Reply reply = Exchange("HEAD /f/hello.txt HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(StatusOf(reply), 405);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, MalformedHeadIs400) {
  StartServer();
  Reply reply = Exchange("GET /f/hello.txt HTTP/1.1\r\n\r\n");  // no Host
  EXPECT_EQ(StatusOf(reply), 400);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, OverlongHeadIs400) {
  StartServer();
  Reply reply = Exchange(
      CurlRequest("/f/hello.txt", kGoodTicket,
                  absl::StrCat("X-Pad: ", std::string(10000, 'p'), "\r\n")));
  EXPECT_EQ(StatusOf(reply), 400);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, ConnectionsBeyondTheLimitGet503) {
  FileServer::Options options = DefaultOptions();
  options.max_connections = 1;
  StartServer(std::move(options));
  const SocketAddress address = Loopback("127.0.0.1", server_->port());
  UniqueFd holder = ConnectTo(address);  // takes the only slot
  ASSERT_TRUE(SendText(holder.get(), "GET /f/hel"));
  UniqueFd second = ConnectTo(address);
  ASSERT_TRUE(SendText(second.get(), CurlRequest("/f/hello.txt", kGoodTicket)));
  Reply reply = ReadReply(second.get());
  EXPECT_EQ(StatusOf(reply), 503);
  EXPECT_EQ(reply.body, "");
}

TEST_F(FileServerTest, SlotIsFreedWhenAConnectionEnds) {
  FileServer::Options options = DefaultOptions();
  options.max_connections = 1;
  StartServer(std::move(options));
  EXPECT_EQ(StatusOf(Exchange(CurlRequest("/f/hello.txt", kGoodTicket))), 200);
  EXPECT_EQ(StatusOf(Exchange(CurlRequest("/f/hello.txt", kGoodTicket))), 200);
}

TEST_F(FileServerTest, SilentClientIsDisconnected) {
  FileServer::Options options = DefaultOptions();
  options.idle_timeout = absl::Milliseconds(200);
  StartServer(std::move(options));
  UniqueFd fd = ConnectTo(Loopback("127.0.0.1", server_->port()));
  ASSERT_TRUE(SendText(fd.get(), "GET /f/hello.txt HTTP/1.1\r\n"));
  const absl::Time start = absl::Now();
  Reply reply = ReadReply(fd.get());
  EXPECT_TRUE(reply.complete);  // closed by the server, not our timeout
  EXPECT_EQ(reply.head, "");
  EXPECT_LT(absl::Now() - start, absl::Seconds(9));
}

TEST_F(FileServerTest, StalledDownloadDoesNotBlockOthers) {
  Write(share_ + "/big", std::string(32 << 20, 'b'));
  StartServer();
  const SocketAddress address = Loopback("127.0.0.1", server_->port());
  // This client asks for 32 MiB and never reads: the server must not wait.
  UniqueFd stalled = ConnectTo(address);
  ASSERT_TRUE(SendText(stalled.get(), CurlRequest("/f/big", kGoodTicket)));
  Reply reply = Exchange(CurlRequest("/f/hello.txt", kGoodTicket));
  EXPECT_EQ(reply.body, "hello world");
}

TEST_F(FileServerTest, DualStackServesIpv4AndIpv6) {
  FileServer::Options options = DefaultOptions();
  options.bind = Loopback("::", 0);
  StartServer(std::move(options));
  for (absl::string_view host : {"127.0.0.1", "::1"}) {
    UniqueFd fd = ConnectTo(Loopback(host, server_->port()));
    ASSERT_TRUE(fd.valid()) << host;
    ASSERT_TRUE(SendText(fd.get(), CurlRequest("/f/hello.txt", kGoodTicket)));
    EXPECT_EQ(ReadReply(fd.get()).body, "hello world") << host;
  }
}

TEST_F(FileServerTest, StoppingMidTransferClosesTheConnection) {
  Write(share_ + "/big", std::string(32 << 20, 'b'));
  StartServer();
  UniqueFd fd = ConnectTo(Loopback("127.0.0.1", server_->port()));
  ASSERT_TRUE(SendText(fd.get(), CurlRequest("/f/big", kGoodTicket)));
  char first[16];
  ASSERT_GT(::recv(fd.get(), first, sizeof(first), 0), 0);
  server_.reset();
  Reply rest = ReadReply(fd.get());
  EXPECT_LT(rest.head.size() + rest.body.size(), size_t{32 << 20});
}

}  // namespace
}  // namespace pcfs
