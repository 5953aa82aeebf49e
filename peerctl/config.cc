#include "peerctl/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"
#include "peerctl/failover.h"

namespace pcfs {
namespace {

// A settings file larger than this is refused: it is not one.
constexpr size_t kMaxSettingsFileBytes = size_t{64} * 1024;

std::optional<std::string> Environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

}  // namespace

absl::StatusOr<Settings> ParseSettings(absl::string_view text,
                                       absl::string_view file_name,
                                       absl::string_view home) {
  Settings settings;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    const auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_name, ":", number, ": ", why));
    };
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const size_t equals = line.find('=');
    if (equals == absl::string_view::npos) {
      return fail("expected 'key = value'");
    }
    std::string key(absl::StripAsciiWhitespace(line.substr(0, equals)));
    std::replace(key.begin(), key.end(), '-', '_');
    std::string value(absl::StripAsciiWhitespace(line.substr(equals + 1)));
    if (value.empty()) return fail(absl::StrCat("'", key, "' has no value"));
    if (absl::StartsWith(value, "~/")) {
      if (home.empty()) return fail("'~/' but HOME is not set");
      value = absl::StrCat(home, value.substr(1));
    }
    std::optional<std::string>* slot = nullptr;
    if (key == "server") {
      slot = &settings.server;
      if (absl::StatusOr<std::vector<DaemonAddress>> daemons =
              ParseServerList(value);
          !daemons.ok()) {
        return fail(daemons.status().message());
      }
    } else if (key == "user") {
      slot = &settings.user;
    } else if (key == "password_file") {
      slot = &settings.password_file;
    } else if (key == "share_dir") {
      slot = &settings.share_dir;
    } else if (key == "download_dir") {
      slot = &settings.download_dir;
    } else {
      return fail(absl::StrCat(
          "unknown setting '", key,
          "' (known: server, user, password_file, share_dir, download_dir)"));
    }
    if (slot->has_value()) return fail(absl::StrCat("'", key, "' set twice"));
    *slot = std::move(value);
  }
  return settings;
}

absl::StatusOr<Settings> LoadSettingsFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return Settings();
    return ErrnoStatus(absl::StrCat("open ", path), errno);
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(absl::StrCat("read ", path), errno);
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxSettingsFileBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": larger than ", kMaxSettingsFileBytes, " bytes"));
    }
  }
  return ParseSettings(text, path, Environment("HOME").value_or(""));
}

std::string DefaultSettingsPath() {
  if (std::optional<std::string> config = Environment("XDG_CONFIG_HOME")) {
    return absl::StrCat(*config, "/peerconnect/peerctl.conf");
  }
  if (std::optional<std::string> home = Environment("HOME")) {
    return absl::StrCat(*home, "/.config/peerconnect/peerctl.conf");
  }
  return "";
}

Settings SettingsFromEnvironment() {
  Settings settings;
  settings.server = Environment("PEERCTL_SERVER");
  settings.user = Environment("PEERCTL_USER");
  return settings;
}

Settings MergeSettings(const Settings& over, const Settings& under) {
  Settings merged;
  merged.server = over.server ? over.server : under.server;
  merged.user = over.user ? over.user : under.user;
  merged.password_file =
      over.password_file ? over.password_file : under.password_file;
  merged.share_dir = over.share_dir ? over.share_dir : under.share_dir;
  merged.download_dir =
      over.download_dir ? over.download_dir : under.download_dir;
  return merged;
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseServerAddress(
    absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("the server is empty");
  const size_t colons = std::count(text.begin(), text.end(), ':');
  const bool bracketed_without_port =
      text.front() == '[' && text.back() == ']' && text.size() > 2;
  if (bracketed_without_port) {
    return std::make_pair(std::string(text.substr(1, text.size() - 2)),
                          kDefaultDaemonPort);
  }
  const bool digits_only =
      std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
  if (!digits_only && text.front() != '[' && (colons == 0 || colons >= 2)) {
    // A name or an IPv4 address without a port, or a bare IPv6 address.
    return std::make_pair(std::string(text), kDefaultDaemonPort);
  }
  return ParseHostPort(text);
}

}  // namespace pcfs
