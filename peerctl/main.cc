// peerctl: the PeerConnectFS client.
//
//   peerctl [PORT | --server HOST:PORT]                 interactive shell
//   peerctl [--server HOST:PORT] [--timeout D] --user U --password-file F
//           COMMAND [ARG]
//
// Flags may be spelled with dashes or underscores (--password-file or
// --password_file).
#include <signal.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/base/cli.h"
#include "core/io/net.h"
#include "peerctl/commands.h"
#include "peerctl/exit_codes.h"
#include "peerctl/shell.h"

ABSL_FLAG(std::string, server, "",
          "daemon address HOST:PORT (default localhost:50000)");
ABSL_FLAG(std::string, user, "", "user name, for a one-shot COMMAND");
ABSL_FLAG(std::string, password_file, "",
          "file whose first line is the password (else $PEERCTL_PASSWORD)");
ABSL_FLAG(std::string, share_dir, ".",
          "folder whose files `pub` publishes and the file server serves");
ABSL_FLAG(std::string, download_dir, ".", "folder `get` downloads into");
ABSL_FLAG(std::string, timeout, "",
          "the longest a one-shot COMMAND may take, e.g. 5s or 500ms "
          "(default: no bound)");

namespace {

constexpr char kUsage[] =
    "usage: peerctl [PORT | --server HOST:PORT]\n"
    "       peerctl [--server HOST:PORT] [--timeout DURATION] --user USER "
    "--password-file FILE COMMAND [ARG]\n"
    "commands: lap, lpf, sch PATTERN, pub NAME, unp NAME, get NAME";

int Usage(absl::string_view message) {
  std::fprintf(stderr, "peerctl: %.*s\n%s\n", static_cast<int>(message.size()),
               message.data(), kUsage);
  return pcfs::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::StatusOr<std::vector<std::string>> args =
      pcfs::ParseCommandLineStrictly(argc, argv);
  if (!args.ok()) return Usage(args.status().message());
  ::signal(SIGPIPE, SIG_IGN);

  pcfs::PeerOptions options;
  options.share_dir = absl::GetFlag(FLAGS_share_dir);
  options.download_dir = absl::GetFlag(FLAGS_download_dir);
  options.server.host = "localhost";
  options.server.port = 50000;
  std::vector<std::string> positional = *std::move(args);

  const std::string server = absl::GetFlag(FLAGS_server);
  if (!server.empty()) {
    auto host_port = pcfs::ParseHostPort(server);
    if (!host_port.ok()) return Usage(host_port.status().message());
    options.server.host = host_port->first;
    options.server.port = host_port->second;
  } else if (!positional.empty() && positional[0].find_first_not_of(
                                        "0123456789") == std::string::npos) {
    absl::StatusOr<uint16_t> port = pcfs::ParsePort(positional[0]);
    if (!port.ok()) return Usage(port.status().message());
    options.server.port = *port;
    positional.erase(positional.begin());
  }

  // --timeout bounds the whole command from here: the daemon's silence
  // ends it with "cannot reach the daemon" (exit 5) by then.
  if (const std::string timeout = absl::GetFlag(FLAGS_timeout);
      !timeout.empty()) {
    absl::Duration bound;
    if (!absl::ParseDuration(timeout, &bound) ||
        bound <= absl::ZeroDuration()) {
      return Usage("--timeout takes a duration such as 5s or 500ms");
    }
    if (positional.empty()) return Usage("--timeout goes with a COMMAND");
    options.server.deadline = absl::Now() + bound;
  }

  const std::string user = absl::GetFlag(FLAGS_user);
  if (positional.empty()) {
    if (!user.empty()) return Usage("--user goes with a COMMAND");
    return pcfs::RunShell(options, stdin, stdout, stderr);
  }

  pcfs::OneShotCommand command;
  command.command = positional[0];
  if (absl::Status s =
          pcfs::CheckCommandArity(command.command, positional.size() - 1);
      !s.ok()) {
    return Usage(s.message());
  }
  if (positional.size() == 2) command.argument = positional[1];
  if (user.empty()) return Usage("a COMMAND needs --user");
  command.user = user;
  absl::StatusOr<std::string> password =
      pcfs::ReadPasswordSource(absl::GetFlag(FLAGS_password_file));
  if (!password.ok()) return Usage(password.status().message());
  command.password = *password;
  return pcfs::RunOneShot(options, command, stdout, stderr);
}
