// peerctl's subcommands for scripts:
//
//   peerctl [--server HOST:PORT] --user U --password-file F COMMAND [ARG]
//
// COMMAND is lap, lpf, sch PATTERN, pub NAME, unp NAME or get NAME. Results
// go to stdout one per line and nothing else (an empty list prints nothing);
// errors go to stderr; the exit code says what happened
// (peerctl/exit_codes.h). The command logs in, runs, and logs out.
#ifndef PCFS_PEERCTL_COMMANDS_H_
#define PCFS_PEERCTL_COMMANDS_H_

#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "peerctl/peer.h"

namespace pcfs {

struct OneShotCommand {
  std::string user;
  std::string password;
  std::string command;   // lap lpf sch pub unp get
  std::string argument;  // empty for lap and lpf
};

// Checks that `command` exists and takes `argument_count` arguments.
// InvalidArgument with a usage message otherwise.
absl::Status CheckCommandArity(absl::string_view command,
                               size_t argument_count);

// Reads the password: the first line of `path`, or the environment variable
// PEERCTL_PASSWORD when `path` is empty. InvalidArgument if neither.
absl::StatusOr<std::string> ReadPasswordSource(const std::string& path);

// Runs one command and returns the exit code.
int RunOneShot(const PeerOptions& options, const OneShotCommand& command,
               std::FILE* out, std::FILE* err);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_COMMANDS_H_
