// The peer transfer protocol: a strict subset of HTTP/1.1, small enough to
// parse by hand and wide enough that curl is a working client.
//
//   GET /f/<percent-encoded file name> HTTP/1.1
//   Host: <holder>
//   Authorization: Bearer <ticket>        (optional)
//   Range: bytes=N-  or  bytes=N-M        (optional; one range only)
//
// and "GET /m/<name>" with the same headers (Range ignored), whose body is
// the file's Merkle leaves (core/proto/merkle.h), 32 bytes a chunk in chunk
// order, for a downloader that verifies chunk by chunk and resumes.
//
// Every response carries Content-Length and "Connection: close"; one request
// per connection. Errors are told by the status code alone: their body is
// always empty. A head is at most kMaxHeadBytes, its blank line included.
//
// Pure functions (no I/O); all are thread-safe.
#ifndef PCFS_PEERCTL_HTTP_H_
#define PCFS_PEERCTL_HTTP_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pcfs::http {

inline constexpr size_t kMaxHeadBytes = size_t{8} * 1024;
inline constexpr absl::string_view kFilePathPrefix = "/f/";
inline constexpr absl::string_view kLeavesPathPrefix = "/m/";
// A longer method is a malformed request line (400), whatever it says: no
// registered method comes near it, and a bound lets a partial head be
// judged in constant time per byte.
inline constexpr size_t kMaxMethodBytes = 32;

// The status codes the protocol uses.
enum StatusCode : int {
  kOk = 200,
  kPartialContent = 206,
  kBadRequest = 400,
  kUnauthorized = 401,
  kForbidden = 403,
  kNotFound = 404,
  kMethodNotAllowed = 405,
  kConflict = 409,  // the file changed since it was published
  kRangeNotSatisfiable = 416,
  kInternalServerError = 500,
  kServiceUnavailable = 503,
};

// "Not Found" for 404; "Unknown" for a code outside StatusCode.
absl::string_view ReasonPhrase(int status_code);

// A requested byte range, as written in "Range: bytes=first-[last]". Both
// ends are inclusive; no `last` means "to the end of the file".
struct ByteRange {
  uint64_t first = 0;
  std::optional<uint64_t> last;

  friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

// The part of a file a response carries: bytes first..last (inclusive) of a
// file of `complete_length` bytes.
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t complete_length = 0;

  uint64_t length() const { return last - first + 1; }
  friend bool operator==(const ContentRange&, const ContentRange&) = default;
};

// A parsed request head.
struct Request {
  std::string file_name;  // decoded; passed ValidateFileName
  std::string ticket;     // the Bearer token; empty if no Authorization
  std::optional<ByteRange> range;
  bool leaves = false;  // "/m/": the file's Merkle leaves, not its bytes
};

// Returns the size of the head at the start of `buffer`, its terminating
// "\r\n\r\n" included, or 0 if the buffer does not hold a whole head yet.
// Only the first kMaxHeadBytes are searched: a caller that holds that many
// bytes and gets 0 has an over-long head (answer 400).
size_t FindHeadEnd(absl::string_view buffer);

// Judges a request head that has not arrived whole, so that a head that can
// never become valid is answered 400 at once rather than when its end or
// the head timeout comes. `buffer` holds the head's bytes so far; its first
// `checked` bytes passed an earlier call and are not scanned again (a head
// that trickles in byte by byte costs linear time in all). InvalidArgument
// for a bare LF or CR, a control character other than HT, a request line
// that does not start with a method of at most kMaxMethodBytes token
// characters, or, once its CRLF is in, a request line that is not
// "METHOD TARGET HTTP/1.x". OK means only "may still become valid":
// ParseRequestHead judges the whole head.
absl::Status CheckPartialRequestHead(absl::string_view buffer, size_t checked);

// Parses a request head (through its blank line). Accepts HTTP/1.1 (which
// must carry exactly one Host) and HTTP/1.0; ignores headers it does not
// know; refuses obs-fold, bare LF, a method longer than kMaxMethodBytes,
// duplicate Authorization or Range, and anything else outside the subset
// above. Errors, chosen so that HttpCodeFromStatus() gives the answer to
// send:
//   InvalidArgument  malformed head, malformed or invalid file name  -> 400
//   Unimplemented    a method other than GET                         -> 405
//   NotFound         a path outside /f/ and /m/                      -> 404
absl::StatusOr<Request> ParseRequestHead(absl::string_view head);

// True if `ticket` can be sent as "Authorization: Bearer <ticket>": an
// RFC 7235 token68 (letters, digits, "-._~+/", then optional "=" padding).
bool IsBearerToken(absl::string_view ticket);

// Formats a request head as Download sends it. `host` is the Host value
// ("127.0.0.1:50000", "[::1]:50000"); an empty `ticket` sends no
// Authorization; `leaves` asks for /m/ (the leaves) instead of /f/. REQUIRES:
// ValidateFileName(name) is OK, `host` holds no CR or LF, and `ticket` is empty
// or IsBearerToken(ticket).
std::string FormatRequestHead(absl::string_view name, absl::string_view host,
                              absl::string_view ticket,
                              std::optional<ByteRange> range = std::nullopt,
                              bool leaves = false);

// Percent-encodes every byte of `name` but the RFC 3986 unreserved ones
// (A-Z a-z 0-9 - . _ ~), so that the result is a valid path segment.
std::string PercentEncode(absl::string_view name);

// Decodes %XX escapes (either hex case). InvalidArgument on a malformed
// escape. The result may hold any byte; the caller validates it.
absl::StatusOr<std::string> PercentDecode(absl::string_view text);

// The part of a file of `file_size` bytes that `range` selects: a `last`
// past the end is clamped to the end. OutOfRange (answer 416) if `first` is
// at or past the end, which includes every range of an empty file.
absl::StatusOr<ContentRange> ResolveRange(const ByteRange& range,
                                          uint64_t file_size);

// "HTTP/1.1 200 OK" with Content-Length: `size`.
std::string FormatOkHead(uint64_t size);

// "HTTP/1.1 206 Partial Content" with Content-Range and Content-Length.
// REQUIRES: first <= last < complete_length.
std::string FormatPartialHead(const ContentRange& range);

// An error response head with "Content-Length: 0". 401 carries
// "WWW-Authenticate: Bearer", 405 "Allow: GET", and 416
// "Content-Range: bytes */<file_size>". REQUIRES: `status_code` is one of
// the 4xx and 5xx codes of StatusCode.
std::string FormatErrorHead(int status_code, uint64_t file_size = 0);

// A parsed response head, as the downloader sees it.
struct Response {
  int status_code = 0;
  std::optional<uint64_t> content_length;
  std::optional<ContentRange> content_range;  // 206 only
};

// Parses a response head (through its blank line). Refuses
// Transfer-Encoding (the subset has only Content-Length bodies), conflicting
// Content-Length values and a 206 without a valid Content-Range whose length
// matches Content-Length. InvalidArgument on any malformed head.
absl::StatusOr<Response> ParseResponseHead(absl::string_view head);

// The status code that answers `status` (see ParseRequestHead; also
// Unauthenticated -> 401, PermissionDenied -> 403, OutOfRange -> 416,
// Unavailable and ResourceExhausted -> 503, FailedPrecondition -> 404, since
// it means "not a regular file"). Anything else is 500. REQUIRES: !ok().
int HttpCodeFromStatus(const absl::Status& status);

// The status a client reports for a response code that is not 200 or 206:
// 401 -> Unauthenticated, 403 -> PermissionDenied, 404 -> NotFound,
// 416 -> OutOfRange, 503 -> Unavailable, 400 and 405 -> InvalidArgument and
// Unimplemented; anything else Internal. The message names the code.
absl::Status StatusFromHttpCode(int status_code);

}  // namespace pcfs::http

#endif  // PCFS_PEERCTL_HTTP_H_
