// peerctl: the PeerConnectFS client.
//
//   peerctl [PORT | --server HOST[:PORT][,HOST[:PORT]...]]  interactive shell
//   peerctl [flags] [--timeout D] COMMAND [ARG]         one command
//   peerctl [flags] serve                               the agent
//
// Settings come from the flags, then the environment, then
// $XDG_CONFIG_HOME/peerconnect/peerctl.conf (peerctl/config.h). Flags may be
// spelled with dashes or underscores (--password-file or --password_file).
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
#include "core/base/names.h"
#include "core/io/net.h"
#include "peerctl/agent.h"
#include "peerctl/commands.h"
#include "peerctl/config.h"
#include "peerctl/control.h"
#include "peerctl/exit_codes.h"
#include "peerctl/failover.h"
#include "peerctl/shell.h"

ABSL_FLAG(std::string, server, "",
          "daemon address HOST[:PORT], or several separated by commas (the "
          "first that answers is used; default localhost:50000)");
ABSL_FLAG(std::string, user, "", "user name, for a COMMAND or serve");
ABSL_FLAG(std::string, password_file, "",
          "file whose first line is the password (else $PEERCTL_PASSWORD)");
ABSL_FLAG(std::string, share_dir, "",
          "folder whose files `pub` publishes and the file server serves "
          "(default .)");
ABSL_FLAG(std::string, download_dir, "",
          "folder `get` downloads into (default .)");
ABSL_FLAG(std::string, socket, "",
          "the agent's socket (default $PEERCTL_SOCKET, else "
          "$XDG_RUNTIME_DIR/peerconnect/peerctl.sock)");
ABSL_FLAG(bool, json, false,
          "print results as JSON Lines, errors as one JSON object");
ABSL_FLAG(bool, plaintext_transfers, false,
          "serve files as plain HTTP, unencrypted, and register no key: for "
          "trusted networks and benchmarks only");
ABSL_FLAG(std::string, timeout, "",
          "the longest a one-shot COMMAND may take, e.g. 5s or 500ms "
          "(default: no bound)");

namespace {

#ifndef PCFS_VERSION
#error "PCFS_VERSION must be defined by the build"
#endif

constexpr char kUsage[] =
    "usage: peerctl [PORT | --server HOST[:PORT][,...]]  interactive shell\n"
    "       peerctl [FLAGS] COMMAND [ARG]                one command\n"
    "       peerctl [FLAGS] serve                        the agent\n"
    "commands: lap, lpf, sch PATTERN, pub NAME, unp NAME, get NAME,\n"
    "          url NAME (prints a curl command that downloads NAME)\n"
    "flags:\n"
    "  --server HOST[:PORT]   the daemon (default localhost:50000); several,\n"
    "                         comma-separated, for daemons sharing one index:\n"
    "                         the first that answers is used, the next when\n"
    "                         it stops answering\n"
    "  --user USER            who to log in as\n"
    "  --password-file FILE   first line: the password (else "
    "$PEERCTL_PASSWORD)\n"
    "  --share-dir DIR        what pub publishes and the agent serves\n"
    "  --download-dir DIR     where get puts files\n"
    "  --socket PATH          the agent's socket\n"
    "  --json                 JSON Lines on stdout, JSON errors on stderr\n"
    "  --timeout DURATION     bound a one-shot COMMAND (e.g. 5s, 500ms)\n"
    "  --plaintext-transfers  serve files unencrypted (plain HTTP); only for\n"
    "                         trusted networks and benchmarks\n"
    "  --fromenv NAME,...     flags from $FLAGS_NAME (--tryfromenv: those\n"
    "                         that are set)\n"
    "  -h, --help             this help;  --version  the version\n"
    "settings: flags, then PEERCTL_SERVER / PEERCTL_USER, then "
    "$XDG_CONFIG_HOME/peerconnect/peerctl.conf\n"
    "exit codes: 0 ok, 1 failure, 2 usage, 3 login refused, 4 not found,\n"
    "            5 daemon unreachable, 6 holder unreachable,\n"
    "            7 holder presented another key (see peerctl(1))";

// What a usage error prints after its message.
constexpr char kShortUsage[] =
    "usage: peerctl [PORT | --server HOST[:PORT][,HOST[:PORT]...]]\n"
    "       peerctl [FLAGS] lap|lpf|sch PATTERN|pub NAME|unp NAME|get NAME|"
    "url NAME\n"
    "       peerctl [FLAGS] serve\n"
    "(peerctl --help for the flags and exit codes)";

// With --json, one error object on stderr, naming `command` when known.
int Usage(absl::string_view message, bool json = false,
          absl::string_view command = "") {
  if (json) {
    return pcfs::ReportFailure(stderr, true, command, pcfs::kExitUsage,
                               message);
  }
  std::fprintf(stderr, "peerctl: %.*s\n%s\n", static_cast<int>(message.size()),
               message.data(), kShortUsage);
  return pcfs::kExitUsage;
}

// -h, --help and --version are answered before absl sees them: absl's own
// exit 1 and print a build line.
std::optional<int> AnswerHelpOrVersion(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      std::printf("%s\n", kUsage);
      return pcfs::kExitOk;
    }
    if (arg == "--version" || arg == "-version") {
      std::printf("peerctl %s\n", PCFS_VERSION);
      return pcfs::kExitOk;
    }
  }
  return std::nullopt;
}

std::optional<std::string> FlagValue(const absl::Flag<std::string>& flag) {
  std::string value = absl::GetFlag(flag);
  if (value.empty()) return std::nullopt;
  return value;
}

// Whether the command line asks for --json, read before the flags parse
// (they may not), so that even a flag error is one JSON object.
bool AsksForJson(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--json" || arg == "-json" || arg == "--json=true" ||
        arg == "-json=true") {
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::optional<int> code = AnswerHelpOrVersion(argc, argv)) return *code;
  absl::SetProgramUsageMessage(kUsage);
  absl::StatusOr<std::vector<std::string>> args =
      pcfs::ParseCommandLineStrictly(argc, argv);
  if (!args.ok())
    return Usage(args.status().message(), AsksForJson(argc, argv));
  ::signal(SIGPIPE, SIG_IGN);
  // A file-size limit (ulimit -f) fails the write with EFBIG, which a get
  // reports, instead of killing the process with its session open.
  ::signal(SIGXFSZ, SIG_IGN);
  const bool json = absl::GetFlag(FLAGS_json);

  // Flags over environment over the settings file.
  pcfs::Settings flags;
  flags.server = FlagValue(FLAGS_server);
  flags.user = FlagValue(FLAGS_user);
  flags.password_file = FlagValue(FLAGS_password_file);
  flags.share_dir = FlagValue(FLAGS_share_dir);
  flags.download_dir = FlagValue(FLAGS_download_dir);
  pcfs::Settings file;
  if (const std::string path = pcfs::DefaultSettingsPath(); !path.empty()) {
    absl::StatusOr<pcfs::Settings> loaded = pcfs::LoadSettingsFile(path);
    if (!loaded.ok()) return Usage(loaded.status().message(), json);
    file = *loaded;
  }
  const pcfs::Settings settings = pcfs::MergeSettings(
      flags, pcfs::MergeSettings(pcfs::SettingsFromEnvironment(), file));

  pcfs::PeerOptions options;
  options.share_dir = settings.share_dir.value_or(".");
  options.download_dir = settings.download_dir.value_or(".");
  options.plaintext_transfers = absl::GetFlag(FLAGS_plaintext_transfers);
  options.server.host = "localhost";
  options.server.port = pcfs::kDefaultDaemonPort;
  std::vector<std::string> positional = *std::move(args);

  if (settings.server.has_value()) {
    absl::StatusOr<std::vector<pcfs::DaemonAddress>> daemons =
        pcfs::ParseServerList(*settings.server);
    if (!daemons.ok()) return Usage(daemons.status().message(), json);
    options.server.host = daemons->front().host;
    options.server.port = daemons->front().port;
    if (daemons->size() > 1) options.server.servers = *std::move(daemons);
  }
  if (!positional.empty() &&
      positional[0].find_first_not_of("0123456789") == std::string::npos) {
    // The classic `peerctl PORT`; --server wins over it.
    absl::StatusOr<uint16_t> port = pcfs::ParsePort(positional[0]);
    if (!port.ok()) return Usage(port.status().message(), json);
    // (Over a list from the environment or the file: that port on the
    // first host, alone.)
    if (!flags.server.has_value()) {
      options.server.port = *port;
      options.server.servers.clear();
    }
    positional.erase(positional.begin());
  }
  std::string socket_path = absl::GetFlag(FLAGS_socket);
  if (socket_path.empty()) socket_path = pcfs::control::DefaultSocketPath();

  if (!positional.empty() && positional[0] == "serve") {
    if (positional.size() != 1) return Usage("serve takes no argument", json);
    if (!settings.user.has_value()) {
      return Usage("serve needs --user (or user in peerctl.conf)", json);
    }
    absl::StatusOr<std::string> password =
        pcfs::ReadPasswordSource(settings.password_file.value_or(""));
    if (!password.ok()) return Usage(password.status().message(), json);
    // Malformed ones would be refused for ever: say so at once.
    if (absl::Status s = pcfs::ValidateUserName(*settings.user); !s.ok()) {
      return Usage(s.message(), json);
    }
    if (absl::Status s = pcfs::ValidatePassword(*password); !s.ok()) {
      return Usage(s.message(), json);
    }
    pcfs::AgentOptions agent;
    agent.peer = options;
    agent.user = *settings.user;
    agent.password = *password;
    agent.socket_path = socket_path;
    return pcfs::RunAgent(std::move(agent));
  }

  // --timeout bounds the whole command from here: the daemon's silence
  // ends it with "cannot reach the daemon" (exit 5) by then.
  if (const std::string timeout = absl::GetFlag(FLAGS_timeout);
      !timeout.empty()) {
    absl::Duration bound;
    if (!absl::ParseDuration(timeout, &bound) ||
        bound <= absl::ZeroDuration()) {
      return Usage("--timeout takes a duration such as 5s or 500ms", json);
    }
    if (positional.empty()) return Usage("--timeout goes with a COMMAND", json);
    options.server.deadline = absl::Now() + bound;
  }
  if (positional.empty()) {
    // The shell prompts for the user; --user (a flag) belongs to commands.
    if (flags.user.has_value()) {
      return Usage("--user goes with a COMMAND", json);
    }
    // The shell writes for a person: JSON would be silently dropped.
    if (json) return Usage("--json goes with a COMMAND", json);
    return pcfs::RunShell(options, socket_path, stdin, stdout, stderr);
  }

  pcfs::OneShotCommand command;
  command.command = positional[0];
  command.json = json;
  if (absl::Status s =
          pcfs::CheckCommandArity(command.command, positional.size() - 1);
      !s.ok()) {
    return Usage(s.message(), json, command.command);
  }
  if (positional.size() == 2) command.argument = positional[1];
  command.user = settings.user;
  command.password_file = settings.password_file.value_or("");
  command.socket_path = socket_path;
  return pcfs::RunOneShot(options, command, stdout, stderr);
}
