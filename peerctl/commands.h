// peerctl's subcommands for scripts:
//
//   peerctl [--socket PATH] [--json] [--server HOST[:PORT]] [--user U]
//           [--password-file F] COMMAND [ARG]
//
// COMMAND is lap, lpf, sch PATTERN, pub NAME, unp NAME or get NAME. When a
// `peerctl serve` agent answers on the socket (and --user, if given, names
// its user), the command runs in the agent's session; otherwise it logs
// in, runs, and logs out. Results go to stdout one per line and nothing
// else (an empty list prints nothing); with --json, one JSON object per
// result (docs/CLI.md). Errors go to stderr (with --json: one JSON object
// naming the exit code); the exit code says what happened
// (peerctl/exit_codes.h).
#ifndef PCFS_PEERCTL_COMMANDS_H_
#define PCFS_PEERCTL_COMMANDS_H_

#include <cstdio>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "peerctl/peer.h"

namespace pcfs {

struct OneShotCommand {
  std::string command;   // lap lpf sch pub unp get
  std::string argument;  // empty for lap and lpf
  // Who to log in as without an agent (flags, environment or settings).
  std::optional<std::string> user;
  std::string password_file;  // empty: PEERCTL_PASSWORD or a credential
  std::string socket_path;    // the agent's socket
  bool json = false;
};

// Checks that `command` exists and takes `argument_count` arguments.
// InvalidArgument with a usage message otherwise.
absl::Status CheckCommandArity(absl::string_view command,
                               size_t argument_count);

// Reads the password: the first line of `path`; when `path` is empty, the
// environment variable PEERCTL_PASSWORD, else the systemd credential
// $CREDENTIALS_DIRECTORY/peerctl.password. InvalidArgument if none.
absl::StatusOr<std::string> ReadPasswordSource(const std::string& path);

// Runs one command and returns the exit code.
int RunOneShot(const PeerOptions& options, const OneShotCommand& command,
               std::FILE* out, std::FILE* err);

// Prints a failure as RunOneShot does: "peerctl: MESSAGE" or, with `json`,
// {"command":..., "error": EXIT-NAME, "exit_code": N, "message": ...}.
// Returns `exit_code`.
int ReportFailure(std::FILE* err, bool json, absl::string_view command,
                  int exit_code, absl::string_view message);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_COMMANDS_H_
