// libFuzzer target for peerctl/http.h: the file server parses request heads
// from any peer that connects, and the downloader parses response heads from
// any holder. Besides crashes and sanitizer reports it checks three
// properties of a request head that parses: its file name passes
// ValidateFileName, formatting the request again and parsing that gives
// back the same request, and CheckPartialRequestHead (which the server
// runs on a head still arriving) refuses none of its prefixes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "core/base/names.h"
#include "peerctl/http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pcfs::http;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  // The way the server reads a connection: find the head, then parse it.
  const size_t head_size = FindHeadEnd(input);
  if (head_size > input.size()) __builtin_trap();
  const absl::string_view head =
      head_size > 0 ? input.substr(0, head_size) : input;

  absl::StatusOr<Request> request = ParseRequestHead(head);
  if (request.ok()) {
    if (!pcfs::ValidateFileName(request->file_name).ok()) __builtin_trap();
    // As the server calls it: once with the bytes of each recv, here one at
    // a time, and once with the whole head.
    for (size_t end = 1; end <= head.size(); ++end) {
      if (!CheckPartialRequestHead(head.substr(0, end), end - 1).ok()) {
        __builtin_trap();
      }
    }
    if (!CheckPartialRequestHead(head, 0).ok()) __builtin_trap();
    if (request->ticket.empty() || IsBearerToken(request->ticket)) {
      const std::string again = FormatRequestHead(
          request->file_name, "127.0.0.1:1", request->ticket, request->range);
      absl::StatusOr<Request> reparsed = ParseRequestHead(again);
      if (!reparsed.ok() || reparsed->file_name != request->file_name ||
          reparsed->ticket != request->ticket ||
          reparsed->range != request->range) {
        __builtin_trap();
      }
    }
  } else {
    (void)HttpCodeFromStatus(request.status());
  }

  absl::StatusOr<Response> response = ParseResponseHead(head);
  if (response.ok() && response->content_range.has_value()) {
    const ContentRange& range = *response->content_range;
    if (range.first > range.last || range.last >= range.complete_length) {
      __builtin_trap();
    }
  }

  (void)PercentDecode(input);
  return 0;
}
