// peerctl's settings: where the daemon is, who the user is, and the
// folders, from three layers, each over the next: command-line flags, the
// environment (PEERCTL_SERVER, PEERCTL_USER), and the file
// $XDG_CONFIG_HOME/peerconnect/peerctl.conf (~/.config/... without
// XDG_CONFIG_HOME). docs/CLI.md describes the file.
//
// The file holds "key = value" lines; '#' starts a comment line, blank
// lines are skipped. Keys: server, user, password_file, share_dir,
// download_dir (dashes are accepted for underscores). A value starting with
// "~/" is taken relative to $HOME. Errors name the file and the line.
//
// Pure functions but for LoadConfigFile and the environment readers;
// thread-safe.
#ifndef PCFS_PEERCTL_CONFIG_H_
#define PCFS_PEERCTL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pcfs {

// The port a server address without one means.
inline constexpr uint16_t kDefaultDaemonPort = 50000;

// One layer of settings; an unset setting is nullopt.
struct Settings {
  // HOST[:PORT], or several separated by commas (ParseServerList in
  // peerctl/failover.h).
  std::optional<std::string> server;
  std::optional<std::string> user;
  std::optional<std::string> password_file;
  std::optional<std::string> share_dir;
  std::optional<std::string> download_dir;
};

// Parses the text of a settings file; `file_name` goes into error messages
// ("peerctl.conf:3: unknown setting 'sever'"). `home` expands "~/".
absl::StatusOr<Settings> ParseSettings(absl::string_view text,
                                       absl::string_view file_name,
                                       absl::string_view home);

// Reads and parses `path`; a file that does not exist holds no settings.
absl::StatusOr<Settings> LoadSettingsFile(const std::string& path);

// $XDG_CONFIG_HOME/peerconnect/peerctl.conf, else
// $HOME/.config/peerconnect/peerctl.conf; empty if neither variable is set.
std::string DefaultSettingsPath();

// PEERCTL_SERVER and PEERCTL_USER (an empty variable counts as unset).
Settings SettingsFromEnvironment();

// Each setting from the first layer that has it.
Settings MergeSettings(const Settings& over, const Settings& under);

// Parses a daemon address: "HOST:PORT", "[V6]:PORT", "PORT", or a host
// without a port (which means kDefaultDaemonPort): "example.org", "::1",
// "[::1]". InvalidArgument otherwise.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseServerAddress(
    absl::string_view text);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_CONFIG_H_
