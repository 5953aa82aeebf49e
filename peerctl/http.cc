#include "peerctl/http.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/base/names.h"
#include "peerctl/exit_codes.h"

namespace pcfs::http {
namespace {

constexpr absl::string_view kHeadTerminator = "\r\n\r\n";

// A head cut into its start line and its header fields, all views into the
// head's bytes.
struct HeadLines {
  absl::string_view start_line;
  std::vector<std::pair<absl::string_view, absl::string_view>> fields;
};

// RFC 9110 tchar: the characters of a method or a field name.
bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
             absl::string_view::npos;
}

bool IsToken(absl::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

}  // namespace

bool IsBearerToken(absl::string_view text) {
  size_t i = 0;
  while (
      i < text.size() &&
      (absl::ascii_isalnum(static_cast<unsigned char>(text[i])) ||
       absl::string_view("-._~+/").find(text[i]) != absl::string_view::npos)) {
    ++i;
  }
  if (i == 0) return false;
  while (i < text.size() && text[i] == '=') ++i;
  return i == text.size();
}

namespace {

// A field value may hold visible characters, obs-text, spaces and tabs.
bool IsFieldValue(absl::string_view value) {
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

absl::string_view TrimOws(absl::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// Parses 1 to 20 decimal digits into a uint64_t; nothing else (no sign, no
// spaces), and no overflow.
std::optional<uint64_t> ParseDecimal(absl::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

absl::Status BadHead(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("malformed HTTP head: ", why));
}

// Splits a whole head into lines at CRLF, refusing bare CR or LF, obs-fold
// and malformed fields.
absl::StatusOr<HeadLines> SplitHead(absl::string_view head) {
  if (head.size() > kMaxHeadBytes) return BadHead("longer than 8 KiB");
  // FindHeadEnd's 0 means "no head": an empty string is not one either.
  const size_t head_end = FindHeadEnd(head);
  if (head_end == 0 || head_end != head.size()) {
    return BadHead("not one whole head");
  }
  head.remove_suffix(2);  // every line, the last included, ends in CRLF
  HeadLines lines;
  bool first = true;
  while (!head.empty()) {
    size_t end = head.find("\r\n");
    absl::string_view line = head.substr(0, end);
    head.remove_prefix(end + 2);
    if (line.find_first_of("\r\n") != absl::string_view::npos) {
      return BadHead("bare CR or LF");
    }
    if (first) {
      lines.start_line = line;
      first = false;
      continue;
    }
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      return BadHead("folded header line");
    }
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !IsToken(line.substr(0, colon))) {
      return BadHead("header line without a field name");
    }
    absl::string_view value = TrimOws(line.substr(colon + 1));
    if (!IsFieldValue(value)) return BadHead("control character in a header");
    lines.fields.emplace_back(line.substr(0, colon), value);
  }
  return lines;
}

bool IsHttpVersion(absl::string_view version) {
  return version == "HTTP/1.1" || version == "HTTP/1.0";
}

// "bytes=N-" or "bytes=N-M" with N <= M.
absl::StatusOr<ByteRange> ParseRangeValue(absl::string_view value) {
  constexpr absl::string_view kUnit = "bytes=";
  if (!absl::StartsWithIgnoreCase(value, kUnit)) {
    return BadHead("Range unit is not bytes");
  }
  value.remove_prefix(kUnit.size());
  size_t dash = value.find('-');
  if (dash == absl::string_view::npos) return BadHead("Range without '-'");
  ByteRange range;
  std::optional<uint64_t> first = ParseDecimal(value.substr(0, dash));
  if (!first) return BadHead("Range start is not a number");
  range.first = *first;
  absl::string_view last_text = value.substr(dash + 1);
  if (!last_text.empty()) {
    range.last = ParseDecimal(last_text);
    if (!range.last || *range.last < range.first) {
      return BadHead("Range end is not a number at or after its start");
    }
  }
  return range;
}

// The ticket of "Bearer <token68>"; empty for another scheme, which the
// authorizer then refuses like a missing ticket.
absl::StatusOr<std::string> ParseAuthorizationValue(absl::string_view value) {
  size_t space = value.find(' ');
  if (space == absl::string_view::npos) return BadHead("Authorization");
  if (!absl::EqualsIgnoreCase(value.substr(0, space), "Bearer")) {
    return std::string();
  }
  absl::string_view token = TrimOws(value.substr(space + 1));
  if (!IsBearerToken(token)) return BadHead("Bearer ticket is not a token68");
  return std::string(token);
}

// The file name of a request target "/f/<encoded name>" or
// "/m/<encoded name>"; `*leaves` tells which.
absl::StatusOr<std::string> ParseTarget(absl::string_view target,
                                        bool* leaves) {
  if (target.empty() || target.front() != '/') {
    return BadHead("request target is not an absolute path");
  }
  for (char c : target) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '#' || c == '?') {
      return BadHead("request target holds a byte outside a path");
    }
  }
  *leaves = absl::StartsWith(target, kLeavesPathPrefix);
  if (!*leaves && !absl::StartsWith(target, kFilePathPrefix)) {
    return absl::NotFoundError(absl::StrCat("no such path: ", target));
  }
  // Both prefixes are 3 bytes.
  target.remove_prefix(kFilePathPrefix.size());
  absl::StatusOr<std::string> name = PercentDecode(target);
  if (!name.ok()) return name.status();
  absl::Status valid = ValidateFileName(*name);
  if (!valid.ok()) return valid;
  return name;
}

// Applies one header field to `request`; `host_count` counts Host fields.
absl::Status ApplyRequestField(absl::string_view name, absl::string_view value,
                               Request& request, bool& has_authorization,
                               int& host_count) {
  if (absl::EqualsIgnoreCase(name, "Host")) {
    ++host_count;
  } else if (absl::EqualsIgnoreCase(name, "Authorization")) {
    if (has_authorization) return BadHead("two Authorization headers");
    has_authorization = true;
    absl::StatusOr<std::string> ticket = ParseAuthorizationValue(value);
    if (!ticket.ok()) return ticket.status();
    request.ticket = *std::move(ticket);
  } else if (absl::EqualsIgnoreCase(name, "Range")) {
    if (request.range) return BadHead("two Range headers");
    absl::StatusOr<ByteRange> range = ParseRangeValue(value);
    if (!range.ok()) return range.status();
    request.range = *range;
  } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding") ||
             (absl::EqualsIgnoreCase(name, "Content-Length") && value != "0")) {
    return BadHead("a GET request with a body");
  }
  return absl::OkStatus();
}

// "bytes first-last/complete" with first <= last < complete.
std::optional<ContentRange> ParseContentRange(absl::string_view value) {
  constexpr absl::string_view kUnit = "bytes ";
  if (!absl::StartsWithIgnoreCase(value, kUnit)) return std::nullopt;
  value.remove_prefix(kUnit.size());
  size_t dash = value.find('-');
  size_t slash = value.find('/');
  if (dash == absl::string_view::npos || slash == absl::string_view::npos ||
      slash < dash) {
    return std::nullopt;
  }
  std::optional<uint64_t> first = ParseDecimal(value.substr(0, dash));
  std::optional<uint64_t> last =
      ParseDecimal(value.substr(dash + 1, slash - dash - 1));
  std::optional<uint64_t> complete = ParseDecimal(value.substr(slash + 1));
  if (!first || !last || !complete || *first > *last || *last >= *complete) {
    return std::nullopt;
  }
  return ContentRange{*first, *last, *complete};
}

// "HTTP/1.1 200 OK": the status code, or nullopt.
std::optional<int> ParseStatusLine(absl::string_view line) {
  if (line.size() < 13 || !IsHttpVersion(line.substr(0, 8)) || line[8] != ' ' ||
      line[12] != ' ') {
    return std::nullopt;
  }
  std::optional<uint64_t> code = ParseDecimal(line.substr(9, 3));
  if (!code || *code < 100) return std::nullopt;
  return static_cast<int>(*code);
}

absl::Status ApplyResponseField(absl::string_view name, absl::string_view value,
                                Response& response) {
  if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
    return BadHead("Transfer-Encoding is not supported");
  }
  if (absl::EqualsIgnoreCase(name, "Content-Length")) {
    std::optional<uint64_t> length = ParseDecimal(value);
    if (!length) return BadHead("Content-Length is not a number");
    if (response.content_length && *response.content_length != *length) {
      return BadHead("conflicting Content-Length headers");
    }
    response.content_length = length;
  } else if (absl::EqualsIgnoreCase(name, "Content-Range") &&
             response.status_code == kPartialContent) {
    response.content_range = ParseContentRange(value);
    if (!response.content_range) return BadHead("malformed Content-Range");
  }
  return absl::OkStatus();
}

std::string FormatHead(int status_code, uint64_t content_length,
                       absl::string_view extra_fields) {
  return absl::StrCat("HTTP/1.1 ", status_code, " ", ReasonPhrase(status_code),
                      "\r\nContent-Length: ", content_length, "\r\n",
                      extra_fields, "Connection: close\r\n\r\n");
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::string_view ReasonPhrase(int status_code) {
  switch (status_code) {
    case kOk:
      return "OK";
    case kPartialContent:
      return "Partial Content";
    case kBadRequest:
      return "Bad Request";
    case kUnauthorized:
      return "Unauthorized";
    case kForbidden:
      return "Forbidden";
    case kNotFound:
      return "Not Found";
    case kMethodNotAllowed:
      return "Method Not Allowed";
    case kConflict:
      return "Conflict";
    case kRangeNotSatisfiable:
      return "Range Not Satisfiable";
    case kInternalServerError:
      return "Internal Server Error";
    case kServiceUnavailable:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

size_t FindHeadEnd(absl::string_view buffer) {
  size_t end = buffer.substr(0, kMaxHeadBytes).find(kHeadTerminator);
  return end == absl::string_view::npos ? 0 : end + kHeadTerminator.size();
}

namespace {

struct RequestLine {
  absl::string_view method;
  absl::string_view target;
  absl::string_view version;
};

// Splits "METHOD TARGET HTTP/1.x" (without its CRLF).
absl::StatusOr<RequestLine> ParseRequestLine(absl::string_view start) {
  size_t first_space = start.find(' ');
  size_t last_space = start.rfind(' ');
  if (first_space == absl::string_view::npos || first_space == last_space) {
    return BadHead("request line is not METHOD TARGET VERSION");
  }
  RequestLine line;
  line.method = start.substr(0, first_space);
  line.target = start.substr(first_space + 1, last_space - first_space - 1);
  line.version = start.substr(last_space + 1);
  if (!IsToken(line.method) || line.method.size() > kMaxMethodBytes ||
      !IsHttpVersion(line.version)) {
    return BadHead("request line is not METHOD TARGET HTTP/1.x");
  }
  return line;
}

}  // namespace

absl::Status CheckPartialRequestHead(absl::string_view buffer, size_t checked) {
  checked = std::min(checked, buffer.size());
  // A CR that ended the bytes checked before could not be judged then.
  for (size_t i = checked > 0 ? checked - 1 : 0; i < buffer.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(buffer[i]);
    if (c == '\n' && (i == 0 || buffer[i - 1] != '\r')) {
      return BadHead("bare LF");
    }
    if (c == '\r' && i + 1 < buffer.size() && buffer[i + 1] != '\n') {
      return BadHead("bare CR");
    }
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f) {
      return BadHead("control character");
    }
  }
  // The method is judged as soon as its bytes are in; only a bounded prefix
  // is looked at, so that each call costs O(new bytes).
  const absl::string_view prefix = buffer.substr(0, kMaxMethodBytes + 1);
  const size_t space = prefix.find_first_of(" \r");
  const absl::string_view method = prefix.substr(0, space);
  if (space == 0 || method.size() > kMaxMethodBytes ||
      (!method.empty() && !IsToken(method))) {
    return BadHead("request line does not start with a method");
  }
  // The request line is judged once, by the call that receives its end.
  // Every LF so far follows a CR (checked above), so the first LF ends it.
  const size_t new_lf = buffer.find('\n', checked);
  if (new_lf != absl::string_view::npos &&
      buffer.substr(0, checked).find('\n') == absl::string_view::npos) {
    absl::StatusOr<RequestLine> line =
        ParseRequestLine(buffer.substr(0, new_lf - 1));
    if (!line.ok()) return line.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<Request> ParseRequestHead(absl::string_view head) {
  absl::StatusOr<HeadLines> lines = SplitHead(head);
  if (!lines.ok()) return lines.status();
  absl::StatusOr<RequestLine> line = ParseRequestLine(lines->start_line);
  if (!line.ok()) return line.status();
  const absl::string_view method = line->method;
  const absl::string_view target = line->target;
  const absl::string_view version = line->version;
  Request request;
  bool has_authorization = false;
  int host_count = 0;
  for (const auto& [name, value] : lines->fields) {
    absl::Status applied =
        ApplyRequestField(name, value, request, has_authorization, host_count);
    if (!applied.ok()) return applied;
  }
  if (version == "HTTP/1.1" && host_count != 1) {
    return BadHead("HTTP/1.1 request without exactly one Host");
  }
  if (method != "GET") {
    return absl::UnimplementedError(absl::StrCat("method ", method));
  }
  absl::StatusOr<std::string> name = ParseTarget(target, &request.leaves);
  if (!name.ok()) return name.status();
  request.file_name = *std::move(name);
  return request;
}

std::string FormatRequestHead(absl::string_view name, absl::string_view host,
                              absl::string_view ticket,
                              std::optional<ByteRange> range, bool leaves) {
  std::string head =
      absl::StrCat("GET ", leaves ? kLeavesPathPrefix : kFilePathPrefix,
                   PercentEncode(name), " HTTP/1.1\r\nHost: ", host, "\r\n");
  if (!ticket.empty()) {
    absl::StrAppend(&head, "Authorization: Bearer ", ticket, "\r\n");
  }
  if (range) {
    absl::StrAppend(&head, "Range: bytes=", range->first, "-");
    if (range->last) absl::StrAppend(&head, *range->last);
    head += "\r\n";
  }
  head += "Connection: close\r\n\r\n";
  return head;
}

std::string PercentEncode(absl::string_view name) {
  constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  encoded.reserve(name.size() * 3);
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      encoded += c;
    } else {
      encoded += '%';
      encoded += kHex[u >> 4];
      encoded += kHex[u & 0xf];
    }
  }
  return encoded;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view text) {
  std::string decoded;
  decoded.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      decoded += text[i];
      continue;
    }
    int high = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
    int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed percent escape at byte ", i));
    }
    decoded += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return decoded;
}

absl::StatusOr<ContentRange> ResolveRange(const ByteRange& range,
                                          uint64_t file_size) {
  if (range.first >= file_size) {
    return absl::OutOfRangeError(absl::StrCat(
        "range starts at ", range.first, " of a ", file_size, "-byte file"));
  }
  uint64_t last = file_size - 1;
  if (range.last && *range.last < last) last = *range.last;
  return ContentRange{range.first, last, file_size};
}

std::string FormatOkHead(uint64_t size) {
  return FormatHead(kOk, size,
                    "Content-Type: application/octet-stream\r\n"
                    "Accept-Ranges: bytes\r\n");
}

std::string FormatPartialHead(const ContentRange& range) {
  return FormatHead(
      kPartialContent, range.length(),
      absl::StrCat("Content-Type: application/octet-stream\r\n"
                   "Accept-Ranges: bytes\r\nContent-Range: bytes ",
                   range.first, "-", range.last, "/", range.complete_length,
                   "\r\n"));
}

std::string FormatErrorHead(int status_code, uint64_t file_size) {
  std::string extra;
  if (status_code == kUnauthorized) extra = "WWW-Authenticate: Bearer\r\n";
  if (status_code == kMethodNotAllowed) extra = "Allow: GET\r\n";
  if (status_code == kRangeNotSatisfiable) {
    extra = absl::StrCat("Content-Range: bytes */", file_size, "\r\n");
  }
  return FormatHead(status_code, 0, extra);
}

absl::StatusOr<Response> ParseResponseHead(absl::string_view head) {
  absl::StatusOr<HeadLines> lines = SplitHead(head);
  if (!lines.ok()) return lines.status();
  std::optional<int> code = ParseStatusLine(lines->start_line);
  if (!code) return BadHead("status line is not HTTP/1.x NNN REASON");
  Response response;
  response.status_code = *code;
  for (const auto& [name, value] : lines->fields) {
    absl::Status applied = ApplyResponseField(name, value, response);
    if (!applied.ok()) return applied;
  }
  if (response.status_code == kPartialContent &&
      (!response.content_range || !response.content_length ||
       *response.content_length != response.content_range->length())) {
    return BadHead("206 without a Content-Range matching Content-Length");
  }
  return response;
}

int HttpCodeFromStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return kBadRequest;
    case absl::StatusCode::kUnauthenticated:
      return kUnauthorized;
    case absl::StatusCode::kPermissionDenied:
      return kForbidden;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:  // not a regular file
      return kNotFound;
    case absl::StatusCode::kUnimplemented:
      return kMethodNotAllowed;
    case absl::StatusCode::kAborted:  // changed since it was published
      return kConflict;
    case absl::StatusCode::kOutOfRange:
      return kRangeNotSatisfiable;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return kServiceUnavailable;
    default:
      return kInternalServerError;
  }
}

absl::Status StatusFromHttpCode(int status_code) {
  std::string message = absl::StrCat("holder answered HTTP ", status_code, " ",
                                     ReasonPhrase(status_code));
  switch (status_code) {
    case kBadRequest:
      return absl::InvalidArgumentError(message);
    case kUnauthorized:
      return absl::UnauthenticatedError(message);
    case kForbidden:
      return absl::PermissionDeniedError(absl::StrCat(
          message,
          ": it may not serve that file to you (a ticket for another holder, "
          "or the file now leads outside its share folder or is not "
          "readable there)"));
    case kNotFound:
      return absl::NotFoundError(absl::StrCat(
          message,
          ": it no longer has that file (gone from its share folder, or no "
          "longer published)"));
    case kMethodNotAllowed:
      return absl::UnimplementedError(message);
    case kConflict:
      return absl::AbortedError(
          absl::StrCat(message, ": its file changed since it was published"));
    case kRangeNotSatisfiable:
      return absl::OutOfRangeError(message);
    case kServiceUnavailable:
      return MarkHolderBusy(absl::UnavailableError(absl::StrCat(
          message,
          ": it is busy (every download slot taken, or still checking the "
          "file against its publication): try again in a moment")));
    default:
      return absl::InternalError(message);
  }
}

}  // namespace pcfs::http
