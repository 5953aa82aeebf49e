#include "core/base/names.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"

namespace pcfs {
namespace {

// Decodes the code point that starts at text[pos] into *code_point and
// returns its length in bytes (1 to 4), or 0 if the bytes there are not
// well-formed UTF-8 (Unicode 15, table 3-7: no overlongs, no surrogates,
// nothing above U+10FFFF, no truncated sequence).
size_t DecodeUtf8(absl::string_view text, size_t pos, char32_t* code_point) {
  const auto byte = [&](size_t i) -> uint8_t {
    return static_cast<uint8_t>(text[pos + i]);
  };
  const uint8_t lead = byte(0);
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  }
  size_t length;
  uint8_t second_min = 0x80;
  uint8_t second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return 0;  // a continuation byte, an overlong lead, or 0xF5..0xFF
  }
  if (text.size() - pos < length) return 0;
  if (byte(1) < second_min || byte(1) > second_max) return 0;
  char32_t value = lead & (0x7F >> length);
  for (size_t i = 1; i < length; ++i) {
    if (i > 1 && (byte(i) & 0xC0) != 0x80) return 0;
    value = (value << 6) | (byte(i) & 0x3F);
  }
  *code_point = value;
  return length;
}

// C0 controls, DEL and C1 controls.
bool IsControl(char32_t code_point) {
  return code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F);
}

// The rules shared by file names and search patterns; `subject` names the
// thing in messages ("file name", "search pattern"). "." and ".." are no
// file names, but fine substrings of one.
absl::Status ValidateNameText(absl::string_view text, absl::string_view subject,
                              bool dots_allowed) {
  if (text.empty())
    return absl::InvalidArgumentError(absl::StrFormat("%s is empty", subject));
  if (text.size() > kMaxFileNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is longer than %d bytes (it has %d)", subject,
                        kMaxFileNameBytes, text.size()));
  }
  if (!dots_allowed && (text == "." || text == "..")) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s cannot be \".\" or \"..\"", subject));
  }
  for (size_t pos = 0; pos < text.size();) {
    char32_t code_point = 0;
    const size_t length = DecodeUtf8(text, pos, &code_point);
    if (length == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s is not valid UTF-8 (byte 0x%02X at offset %d)",
                          subject, static_cast<uint8_t>(text[pos]), pos));
    }
    if (code_point == '/') {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s contains '/' (at offset %d)", subject, pos));
    }
    if (code_point == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s contains a NUL byte (at offset %d)", subject, pos));
    }
    if (IsControl(code_point)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s contains a control character (U+%04X at offset %d)", subject,
          static_cast<uint32_t>(code_point), pos));
    }
    pos += length;
  }
  return absl::OkStatus();
}

bool IsUserNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

// A byte of a user name as a message shows it: printable ASCII in quotes,
// anything else in hex (so that a message never carries raw control bytes).
std::string DescribeByte(char c) {
  const auto byte = static_cast<uint8_t>(c);
  if (byte >= 0x20 && byte < 0x7F) return absl::StrFormat("'%c'", c);
  return absl::StrFormat("byte 0x%02X", byte);
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    char32_t code_point = 0;
    const size_t length = DecodeUtf8(text, pos, &code_point);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

absl::Status ValidateFileName(absl::string_view name) {
  return ValidateNameText(name, "file name", /*dots_allowed=*/false);
}

absl::Status ValidateSearchPattern(absl::string_view pattern) {
  if (pattern.empty()) return absl::OkStatus();
  return ValidateNameText(pattern, "search pattern", /*dots_allowed=*/true);
}

absl::Status ValidateUserName(absl::string_view user) {
  if (user.empty()) return absl::InvalidArgumentError("user name is empty");
  // The allowed characters are all one byte long, so checking them first
  // makes the length below a count of characters.
  for (size_t pos = 0; pos < user.size(); ++pos) {
    if (!IsUserNameChar(user[pos])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "user name contains %s at offset %d; only letters A-Z and a-z, "
          "digits, '.', '_' and '-' are allowed",
          DescribeByte(user[pos]), pos));
    }
  }
  if (user.size() > kMaxUserNameChars) {
    return absl::InvalidArgumentError(
        absl::StrFormat("user name is longer than %d characters (it has %d)",
                        kMaxUserNameChars, user.size()));
  }
  return absl::OkStatus();
}

absl::Status ValidatePassword(absl::string_view password) {
  // Messages never quote the password or say where in it the fault is.
  if (password.empty()) return absl::InvalidArgumentError("password is empty");
  if (password.size() > kMaxPasswordBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("password is longer than %d bytes (it has %d)",
                        kMaxPasswordBytes, password.size()));
  }
  for (size_t pos = 0; pos < password.size();) {
    char32_t code_point = 0;
    const size_t length = DecodeUtf8(password, pos, &code_point);
    if (length == 0) {
      return absl::InvalidArgumentError("password is not valid UTF-8");
    }
    if (IsControl(code_point)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "password contains a control character (U+%04X); only printable "
          "text is allowed",
          static_cast<uint32_t>(code_point)));
    }
    pos += length;
  }
  return absl::OkStatus();
}

}  // namespace pcfs
