#include "peerctl/http.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "peerctl/exit_codes.h"

namespace pcfs::http {
namespace {

using ::absl::StatusCode;
using ::testing::HasSubstr;

// A curl 7.88-style request for `target`, plus `extra` header lines.
std::string CurlHead(absl::string_view target, absl::string_view extra = "") {
  return absl::StrCat("GET ", target,
                      " HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n"
                      "User-Agent: curl/7.88.1\r\nAccept: */*\r\n",
                      extra, "\r\n");
}

TEST(FindHeadEndTest, CountsTheBlankLine) {
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\n\r\nrest"), 18u);
}

TEST(FindHeadEndTest, IncompleteHeadIsZero) {
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\nHost: x\r\n"), 0u);
}

TEST(FindHeadEndTest, LooksOnlyAtTheFirst8KiB) {
  std::string head =
      CurlHead("/f/a", absl::StrCat("X-Pad: ", std::string(9000, 'p'), "\r\n"));
  EXPECT_EQ(FindHeadEnd(head), 0u);
}

// Feeds `head` to CheckPartialRequestHead one byte at a time, as a slow
// client sends it, and returns the first error (OK if none).
absl::Status CheckByteByByte(absl::string_view head) {
  for (size_t size = 1; size <= head.size(); ++size) {
    absl::Status status =
        CheckPartialRequestHead(head.substr(0, size), size - 1);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

TEST(CheckPartialRequestHeadTest, AcceptsEveryPrefixOfAValidHead) {
  const std::string head = CurlHead("/f/a%20b", "Range: bytes=1-\r\n");
  EXPECT_TRUE(CheckByteByByte(head).ok());
  for (size_t size = 0; size <= head.size(); ++size) {
    EXPECT_TRUE(CheckPartialRequestHead(head.substr(0, size), 0).ok()) << size;
  }
}

TEST(CheckPartialRequestHeadTest, BareLfIsRefusedAtOnce) {
  EXPECT_EQ(CheckPartialRequestHead("GET /f/a HTTP/1.1\n", 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckByteByByte("GET /f/a HTTP/1.1\r\nHost: x\n").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckPartialRequestHead("\n", 0).code(),
            StatusCode::kInvalidArgument);
}

TEST(CheckPartialRequestHeadTest, BareCrIsRefusedOnceTheNextByteIsIn) {
  EXPECT_TRUE(CheckPartialRequestHead("GET /f/a HTTP/1.1\r", 0).ok());
  EXPECT_EQ(CheckPartialRequestHead("GET /f/a HTTP/1.1\rX", 18).code(),
            StatusCode::kInvalidArgument);
}

TEST(CheckPartialRequestHeadTest, ControlCharactersAndTlsAreRefused) {
  EXPECT_EQ(CheckPartialRequestHead(absl::string_view("GET \0", 5), 0).code(),
            StatusCode::kInvalidArgument);
  // The first bytes of a TLS ClientHello.
  EXPECT_EQ(CheckPartialRequestHead("\x16\x03\x01", 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckPartialRequestHead("GET /f/a HTTP/1.1\r\nX: a\tb", 0).ok());
}

TEST(CheckPartialRequestHeadTest, BadRequestLineIsRefusedWhenItEnds) {
  EXPECT_TRUE(CheckPartialRequestHead("GET /f/a", 0).ok());
  EXPECT_EQ(CheckByteByByte("GET /f/a\r\n").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckByteByByte("GET /f/a HTTP/2.0\r\n").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckPartialRequestHead("\r\n", 0).code(),
            StatusCode::kInvalidArgument);
}

TEST(CheckPartialRequestHeadTest, MethodIsJudgedBeforeTheLineEnds) {
  EXPECT_EQ(CheckPartialRequestHead(" GET", 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckPartialRequestHead("GE(T", 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      CheckPartialRequestHead(std::string(kMaxMethodBytes, 'A'), 0).ok());
  EXPECT_EQ(
      CheckPartialRequestHead(std::string(kMaxMethodBytes + 1, 'A'), 0).code(),
      StatusCode::kInvalidArgument);
}

TEST(ParseRequestHeadTest, OverlongMethodIs400) {
  EXPECT_EQ(ParseRequestHead(absl::StrCat(std::string(kMaxMethodBytes + 1, 'A'),
                                          " /f/a HTTP/1.0\r\n\r\n"))
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(ParseRequestHeadTest, CurlRequestGivesTheName) {
  absl::StatusOr<Request> request = ParseRequestHead(CurlHead("/f/notes.txt"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->file_name, "notes.txt");
  EXPECT_EQ(request->ticket, "");
  EXPECT_FALSE(request->range.has_value());
}

TEST(ParseRequestHeadTest, DecodesSpacesPercentAndUtf8) {
  absl::StatusOr<Request> request =
      ParseRequestHead(CurlHead("/f/my%20r%C3%A9sum%C3%A9%25.pdf"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->file_name, "my r\xC3\xA9sum\xC3\xA9%.pdf");
}

TEST(ParseRequestHeadTest, ReadsBearerTicket) {
  absl::StatusOr<Request> request = ParseRequestHead(
      CurlHead("/f/a", "authorization:   bearer  AbC-1_2.3~+/==\r\n"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->ticket, "AbC-1_2.3~+/==");
}

TEST(ParseRequestHeadTest, OtherAuthorizationSchemeMeansNoTicket) {
  absl::StatusOr<Request> request =
      ParseRequestHead(CurlHead("/f/a", "Authorization: Basic dTpw\r\n"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->ticket, "");
}

TEST(ParseRequestHeadTest, ReadsOpenEndedRange) {
  absl::StatusOr<Request> request =
      ParseRequestHead(CurlHead("/f/a", "Range: bytes=100-\r\n"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->range, (ByteRange{100, std::nullopt}));
}

TEST(ParseRequestHeadTest, ReadsClosedRange) {
  absl::StatusOr<Request> request =
      ParseRequestHead(CurlHead("/f/a", "Range: bytes=0-99\r\n"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->range, (ByteRange{0, 99}));
}

TEST(ParseRequestHeadTest, AcceptsHttp10WithoutHost) {
  EXPECT_TRUE(ParseRequestHead("GET /f/a HTTP/1.0\r\n\r\n").ok());
}

TEST(ParseRequestHeadTest, OtherMethodIsUnimplemented) {
  EXPECT_EQ(
      ParseRequestHead("HEAD /f/a HTTP/1.1\r\nHost: h\r\n\r\n").status().code(),
      StatusCode::kUnimplemented);
}

TEST(ParseRequestHeadTest, LeavesPathNamesTheFile) {
  absl::StatusOr<Request> request = ParseRequestHead(CurlHead("/m/a%20b"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->leaves);
  EXPECT_EQ(request->file_name, "a b");
  absl::StatusOr<Request> file = ParseRequestHead(CurlHead("/f/a"));
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE(file->leaves);
}

TEST(FormatRequestHeadTest, LeavesRequestRoundTrips) {
  absl::StatusOr<Request> request = ParseRequestHead(
      FormatRequestHead("x y", "h:1", "tkt", std::nullopt, /*leaves=*/true));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->leaves);
  EXPECT_EQ(request->file_name, "x y");
  EXPECT_EQ(request->ticket, "tkt");
}

TEST(ParseRequestHeadTest, PathOutsideFilesIsNotFound) {
  EXPECT_EQ(ParseRequestHead(CurlHead("/index.html")).status().code(),
            StatusCode::kNotFound);
}

// Each of these heads is malformed, and must be answered 400.
TEST(ParseRequestHeadTest, MalformedHeadsAreInvalid) {
  const std::string kBad[] = {
      "GET /f/a HTTP/1.1\r\n\r\n",                   // no Host
      CurlHead("/f/a", "Host: other\r\n"),           // two Hosts
      "GET /f/a HTTP/1.1\nHost: h\r\n\r\n",          // bare LF
      "GET /f/a\rX HTTP/1.1\r\nHost: h\r\n\r\n",     // bare CR
      "GET  /f/a HTTP/1.1\r\nHost: h\r\n\r\n",       // double space
      "GET /f/a HTTP/2\r\nHost: h\r\n\r\n",          // version
      "GET /f/a\r\nHost: h\r\n\r\n",                 // no version
      "\r\n\r\n",                                    // no request line
      CurlHead("/f/a", " folded\r\n"),               // obs-fold
      CurlHead("/f/a", "No colon here\r\n"),         // bad field
      CurlHead("/f/a", "Bad Name: x\r\n"),           // space in name
      CurlHead("/f/a", "X-Ctl: a\x01z\r\n"),         // control char
      CurlHead("/f/a", "Range: bytes=5-1\r\n"),      // end < start
      CurlHead("/f/a", "Range: bytes=-5\r\n"),       // suffix range
      CurlHead("/f/a", "Range: bytes=0-1,5-9\r\n"),  // two ranges
      CurlHead("/f/a", "Range: items=0-\r\n"),       // unit
      CurlHead("/f/a", "Range: bytes=99999999999999999999999-\r\n"),
      CurlHead("/f/a", "Range: bytes=0-\r\nRange: bytes=1-\r\n"),
      CurlHead("/f/a", "Authorization: Bearer a b\r\n"),  // not token68
      CurlHead("/f/a", "Authorization: Bearer\r\n"),
      CurlHead("/f/a", "Content-Length: 5\r\n"),  // a body
      CurlHead("/f/a", "Transfer-Encoding: chunked\r\n"),
      CurlHead("/f/%zz"),                  // bad escape
      CurlHead("/f/a%2"),                  // short escape
      CurlHead("/f/"),                     // empty name
      CurlHead("/f/a?x=1"),                // query
      CurlHead("/f/\xC3\xA9"),             // raw non-ASCII
      CurlHead("http://h/f/a"),            // absolute form
      "GET /f/a HTTP/1.1\r\nHost: h\r\n",  // unterminated
  };
  for (const std::string& head : kBad) {
    EXPECT_EQ(ParseRequestHead(head).status().code(),
              StatusCode::kInvalidArgument)
        << head;
  }
}

// Found by tests/fuzz/http_fuzz (its seed "crash-empty-head"): an empty
// string looked like a whole head and SplitHead cut two bytes off it.
TEST(ParseRequestHeadTest, EmptyHeadIsInvalid) {
  EXPECT_EQ(ParseRequestHead("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseResponseHead("").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ParseRequestHeadTest, NamesThatEscapeTheFolderAreInvalid) {
  for (absl::string_view target :
       {"/f/..", "/f/.", "/f/../x", "/f/%2E%2E%2Fx", "/f/%2Fetc%2Fpasswd",
        "/f/a%00b", "/f/a%0Ab", "/f/%C3%28"}) {
    EXPECT_EQ(ParseRequestHead(CurlHead(target)).status().code(),
              StatusCode::kInvalidArgument)
        << target;
  }
}

TEST(ParseRequestHeadTest, OverlongHeadIsInvalid) {
  std::string head =
      CurlHead("/f/a", absl::StrCat("X-Pad: ", std::string(8200, 'p'), "\r\n"));
  EXPECT_EQ(ParseRequestHead(head).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ParseRequestHeadTest, LongestNameFitsInAHead) {
  // 255 bytes, each escaped to 3: a head of about 900 bytes.
  std::string name(255, ' ');
  absl::StatusOr<Request> request =
      ParseRequestHead(FormatRequestHead(name, "h:1", "t"));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->file_name, name);
}

TEST(PercentEncodeTest, KeepsOnlyUnreservedBytes) {
  EXPECT_EQ(PercentEncode("a b%/~_.-Z9\xC3\xA9"), "a%20b%25%2F~_.-Z9%C3%A9");
}

TEST(PercentDecodeTest, AcceptsEitherHexCase) {
  EXPECT_EQ(*PercentDecode("%c3%A9%2f"), "\xC3\xA9/");
}

TEST(PercentDecodeTest, RefusesTruncatedEscape) {
  EXPECT_EQ(PercentDecode("ab%4").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(PercentEncodeTest, RoundTripsEveryByte) {
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all += static_cast<char>(byte);
  EXPECT_EQ(*PercentDecode(PercentEncode(all)), all);
}

TEST(FormatRequestHeadTest, ParsesBackToTheSameRequest) {
  const std::string name = "100% sure \xE2\x9C\x93.txt";
  absl::StatusOr<Request> request = ParseRequestHead(
      FormatRequestHead(name, "[::1]:5000", "tick3t", ByteRange{7, 9}));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->file_name, name);
  EXPECT_EQ(request->ticket, "tick3t");
  EXPECT_EQ(request->range, (ByteRange{7, 9}));
}

TEST(ResolveRangeTest, ClampsTheEndToTheFile) {
  EXPECT_EQ(*ResolveRange(ByteRange{10, 1000}, 100),
            (ContentRange{10, 99, 100}));
}

TEST(ResolveRangeTest, OpenEndedRunsToTheEnd) {
  EXPECT_EQ(*ResolveRange(ByteRange{99, std::nullopt}, 100),
            (ContentRange{99, 99, 100}));
}

TEST(ResolveRangeTest, StartAtTheEndIsOutOfRange) {
  EXPECT_EQ(ResolveRange(ByteRange{100, std::nullopt}, 100).status().code(),
            StatusCode::kOutOfRange);
}

TEST(ResolveRangeTest, EmptyFileHasNoRange) {
  EXPECT_EQ(ResolveRange(ByteRange{0, std::nullopt}, 0).status().code(),
            StatusCode::kOutOfRange);
}

TEST(FormatOkHeadTest, IsExact) {
  EXPECT_EQ(FormatOkHead(1234),
            "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n"
            "Content-Type: application/octet-stream\r\n"
            "Accept-Ranges: bytes\r\nConnection: close\r\n\r\n");
}

TEST(FormatPartialHeadTest, CarriesContentRange) {
  absl::StatusOr<Response> response =
      ParseResponseHead(FormatPartialHead(ContentRange{10, 19, 100}));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 206);
  EXPECT_EQ(response->content_length, 10u);
  EXPECT_EQ(response->content_range, (ContentRange{10, 19, 100}));
}

TEST(FormatErrorHeadTest, EveryErrorHasAnEmptyBodyAndCloses) {
  for (int code : {400, 401, 403, 404, 405, 416, 500, 503}) {
    const std::string head = FormatErrorHead(code, 7);
    EXPECT_EQ(FindHeadEnd(head), head.size()) << code;
    EXPECT_TRUE(absl::StartsWith(head, absl::StrCat("HTTP/1.1 ", code, " ")));
    EXPECT_NE(head.find("\r\nContent-Length: 0\r\n"), std::string::npos);
    EXPECT_NE(head.find("\r\nConnection: close\r\n"), std::string::npos);
    absl::StatusOr<Response> response = ParseResponseHead(head);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status_code, code);
    EXPECT_EQ(response->content_length, 0u);
  }
}

TEST(FormatErrorHeadTest, RangeNotSatisfiableNamesTheSize) {
  EXPECT_NE(FormatErrorHead(416, 42).find("\r\nContent-Range: bytes */42\r\n"),
            std::string::npos);
}

TEST(FormatErrorHeadTest, UnauthorizedAsksForBearer) {
  EXPECT_NE(FormatErrorHead(401).find("\r\nWWW-Authenticate: Bearer\r\n"),
            std::string::npos);
}

TEST(ParseResponseHeadTest, ReadsOk) {
  absl::StatusOr<Response> response = ParseResponseHead(FormatOkHead(5));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_EQ(response->content_length, 5u);
}

TEST(ParseResponseHeadTest, RefusesMalformedHeads) {
  // A range of 10 bytes said to be 5 long (too long for one literal line).
  const std::string length_disagrees_with_range =
      absl::StrCat("HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n",
                   "Content-Range: bytes 0-9/10\r\n\r\n");
  for (absl::string_view head : {
           "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n",
           "HTTP/1.1 2x0 OK\r\n\r\n",
           "HTTP/3 200 OK\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
           "HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n\r\n",
           length_disagrees_with_range.c_str(),
       }) {
    EXPECT_EQ(ParseResponseHead(head).status().code(),
              StatusCode::kInvalidArgument)
        << head;
  }
}

TEST(HttpCodeFromStatusTest, MapsAuthorizerAnswers) {
  EXPECT_EQ(HttpCodeFromStatus(absl::UnauthenticatedError("")), 401);
  EXPECT_EQ(HttpCodeFromStatus(absl::PermissionDeniedError("")), 403);
  EXPECT_EQ(HttpCodeFromStatus(absl::NotFoundError("")), 404);
  EXPECT_EQ(HttpCodeFromStatus(absl::DataLossError("")), 500);
}

TEST(StatusFromHttpCodeTest, MapsRefusals) {
  EXPECT_EQ(StatusFromHttpCode(401).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusFromHttpCode(403).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromHttpCode(404).code(), StatusCode::kNotFound);
  EXPECT_EQ(StatusFromHttpCode(503).code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromHttpCode(418).code(), StatusCode::kInternal);
}

TEST(StatusFromHttpCodeTest, SaysWhatARefusalMeans) {
  // The downloader's user reads these: the code alone says too little.
  EXPECT_THAT(StatusFromHttpCode(403).message(),
              HasSubstr("leads outside its share folder"));
  EXPECT_THAT(StatusFromHttpCode(404).message(),
              HasSubstr("no longer has that file"));
  EXPECT_THAT(StatusFromHttpCode(409).message(), HasSubstr("changed"));
  EXPECT_THAT(StatusFromHttpCode(503).message(), HasSubstr("try again"));
}

// A get waits out a busy holder (peerctl/peer.cc), and only a busy one.
TEST(StatusFromHttpCodeTest, OnlyA503IsBusy) {
  EXPECT_TRUE(IsHolderBusy(StatusFromHttpCode(503)));
  for (int code : {400, 401, 403, 404, 409, 416, 500}) {
    EXPECT_FALSE(IsHolderBusy(StatusFromHttpCode(code))) << code;
  }
}

}  // namespace
}  // namespace pcfs::http
