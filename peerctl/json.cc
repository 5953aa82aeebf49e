#include "peerctl/json.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pcfs {
namespace {

// The length of the well-formed UTF-8 sequence at the start of `text`, or 0
// if it is not one (overlongs, surrogates and code points past U+10FFFF
// included).
size_t Utf8SequenceLength(absl::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(0);
  size_t length;
  uint32_t min;
  uint32_t code;
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) == 0xc0) {
    length = 2, min = 0x80, code = lead & 0x1f;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3, min = 0x800, code = lead & 0x0f;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4, min = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
    return 0;
  }
  return length;
}

}  // namespace

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  while (!text.empty()) {
    const char c = text.front();
    const size_t length = Utf8SequenceLength(text);
    if (length == 0) {
      out += "\\ufffd";
      text.remove_prefix(1);
      continue;
    }
    if (length > 1) {
      out.append(text.data(), length);
      text.remove_prefix(length);
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<uint8_t>(c));
        } else {
          out.push_back(c);
        }
    }
    text.remove_prefix(1);
  }
  out.push_back('"');
  return out;
}

JsonObject& JsonObject::Add(absl::string_view key, absl::string_view value) {
  if (!members_.empty()) members_.push_back(',');
  absl::StrAppend(&members_, JsonQuote(key), ":", JsonQuote(value));
  return *this;
}

JsonObject& JsonObject::Add(absl::string_view key, int64_t value) {
  if (!members_.empty()) members_.push_back(',');
  absl::StrAppend(&members_, JsonQuote(key), ":", value);
  return *this;
}

std::string JsonObject::ToString() const {
  return absl::StrCat("{", members_, "}");
}

}  // namespace pcfs
