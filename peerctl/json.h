// A small JSON writer for peerctl's --json output: one flat object per line
// (JSON Lines), string and integer members, in the order added. Strings are
// escaped per RFC 8259; bytes that are not valid UTF-8 (a file name never
// holds any, but a message might) become U+FFFD, so the output always
// parses.
//
// Not thread-safe (a plain value type).
#ifndef PCFS_PEERCTL_JSON_H_
#define PCFS_PEERCTL_JSON_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace pcfs {

class JsonObject {
 public:
  JsonObject& Add(absl::string_view key, absl::string_view value);
  JsonObject& Add(absl::string_view key, const char* value) {
    return Add(key, absl::string_view(value));
  }
  JsonObject& Add(absl::string_view key, int64_t value);
  JsonObject& Add(absl::string_view key, int value) {
    return Add(key, static_cast<int64_t>(value));
  }

  // The object, "{...}", without a newline.
  std::string ToString() const;

 private:
  std::string members_;
};

// `text` as a JSON string literal, quotes included.
std::string JsonQuote(absl::string_view text);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_JSON_H_
