#include "peerctl/commands.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/base/names.h"
#include "core/base/unique_fd.h"
#include "peerctl/control.h"
#include "peerctl/exit_codes.h"
#include "peerctl/json.h"
#include "peerctl/signal_catcher.h"

namespace pcfs {
namespace {

void WriteText(std::FILE* file, absl::string_view text) {
  std::fwrite(text.data(), 1, text.size(), file);
}

// The signal (SIGINT, SIGTERM) that asked a one-shot `get` to stop; 0 if
// none.
std::atomic<int> stop_signal{0};
std::atomic<bool> stop_requested{false};

void OnStopSignal(int signo) {
  stop_signal.store(signo, std::memory_order_relaxed);
  stop_requested.store(true, std::memory_order_relaxed);
}

// Ends the process as the caught stop signal would have (an exit status
// of 128+signal for the shell), once the command has cleaned up.
void RaiseCaughtStopSignal() {
  const int signo = stop_signal.load(std::memory_order_relaxed);
  if (signo == 0) return;
  ::signal(signo, SIG_DFL);
  ::raise(signo);
}

// Prints a command's results, as text or JSON Lines.
class ResultPrinter {
 public:
  // `cancel` stops a get (an agent's get ignores it: the agent watches
  // its command's connection instead).
  ResultPrinter(const OneShotCommand& command, std::FILE* out, std::FILE* err,
                const std::atomic<bool>* cancel)
      : command_(command), out_(out), err_(err), cancel_(cancel) {}

  int Fail(const absl::Status& status, absl::string_view prefix = "") {
    return ReportFailure(err_, command_.json, command_.command,
                         ExitCodeFor(status),
                         absl::StrCat(prefix, status.message()));
  }

  int Names(const absl::StatusOr<std::vector<std::string>>& names) {
    if (!names.ok()) return Fail(names.status());
    // lap lists users, the others file names.
    const char* key = command_.command == "lap" ? "user" : "name";
    std::string text;
    for (const std::string& name : *names) {
      if (command_.json) {
        absl::StrAppend(&text,
                        JsonObject()
                            .Add("command", command_.command)
                            .Add(key, name)
                            .ToString(),
                        "\n");
      } else {
        absl::StrAppend(&text, name, "\n");
      }
    }
    WriteText(out_, text);
    return kExitOk;
  }

  // pub and unp print nothing as text; a JSON object with --json.
  int Done(const absl::Status& status, absl::string_view what) {
    if (!status.ok()) return Fail(status);
    if (command_.json) {
      WriteText(out_, absl::StrCat(JsonObject()
                                       .Add("command", command_.command)
                                       .Add("name", command_.argument)
                                       .Add("status", what)
                                       .ToString(),
                                   "\n"));
    }
    return kExitOk;
  }

  // The command on stdout; how long its ticket lives on stderr (so that
  // `$(peerctl url NAME)` gets the command alone).
  int Url(const absl::StatusOr<DownloadCommand>& url) {
    if (!url.ok()) return Fail(url.status());
    const int64_t seconds =
        std::max<int64_t>(0, absl::ToInt64Seconds(url->expiry - absl::Now()));
    if (command_.json) {
      WriteText(out_, absl::StrCat(JsonObject()
                                       .Add("command", "url")
                                       .Add("name", command_.argument)
                                       .Add("curl", url->command)
                                       .Add("expires_in_s", seconds)
                                       .ToString(),
                                   "\n"));
      return kExitOk;
    }
    WriteText(out_, absl::StrCat(url->command, "\n"));
    WriteText(err_,
              absl::StrCat("peerctl: the ticket in this command is valid for ",
                           seconds, " s (until ",
                           absl::FormatTime("%H:%M:%S UTC", url->expiry,
                                            absl::UTCTimeZone()),
                           ")\n"));
    return kExitOk;
  }

  int Downloaded(const absl::StatusOr<std::string>& path) {
    if (!path.ok()) return Fail(path.status());
    WriteText(out_, command_.json
                        ? absl::StrCat(JsonObject()
                                           .Add("command", "get")
                                           .Add("name", command_.argument)
                                           .Add("path", *path)
                                           .ToString(),
                                       "\n")
                        : absl::StrCat(*path, "\n"));
    return kExitOk;
  }

  // Runs the command on `backend` and prints what it gives.
  int Run(CommandBackend& backend) {
    const std::string& command = command_.command;
    const std::string& arg = command_.argument;
    if (command == "lap") return Names(backend.ListActivePeers());
    if (command == "lpf") return Names(backend.ListPublished());
    if (command == "sch") return Names(backend.Search(arg));
    if (command == "pub") return Done(backend.Publish(arg), "published");
    if (command == "unp") return Done(backend.Unpublish(arg), "unpublished");
    if (command == "get") return Downloaded(backend.Get(arg, cancel_, nullptr));
    if (command == "url") return Url(backend.MakeDownloadCommand(arg));
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("unknown command '", command, "'")));
  }

 private:
  const OneShotCommand& command_;
  std::FILE* const out_;
  std::FILE* const err_;
  const std::atomic<bool>* const cancel_;  // for get
};

absl::StatusOr<std::string> ReadFirstLine(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", path), errno);
  char buffer[kMaxPasswordBytes + 3];
  size_t size = 0;
  while (size < sizeof(buffer)) {
    ssize_t n = ::read(fd.get(), buffer + size, sizeof(buffer) - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(absl::StrCat("read ", path), errno);
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  absl::string_view text(buffer, size);
  text = text.substr(0, text.find('\n'));
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return std::string(text);
}

}  // namespace

int ReportFailure(std::FILE* err, bool json, absl::string_view command,
                  int exit_code, absl::string_view message) {
  if (json) {
    JsonObject object;
    if (!command.empty()) object.Add("command", command);
    object.Add("error", ExitCodeName(exit_code))
        .Add("exit_code", exit_code)
        .Add("message", message);
    WriteText(err, absl::StrCat(object.ToString(), "\n"));
  } else {
    WriteText(err, absl::StrCat("peerctl: ", message, "\n"));
  }
  return exit_code;
}

absl::Status CheckCommandArity(absl::string_view command,
                               size_t argument_count) {
  size_t wanted;
  if (command == "lap" || command == "lpf") {
    wanted = 0;
  } else if (command == "sch" || command == "pub" || command == "unp" ||
             command == "get" || command == "url") {
    wanted = 1;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown command '", command,
        "'; commands are lap, lpf, sch PATTERN, pub NAME, unp NAME, get NAME, "
        "url NAME, serve"));
  }
  if (argument_count != wanted) {
    return absl::InvalidArgumentError(
        wanted == 0 ? absl::StrCat(command, " takes no argument")
                    : absl::StrCat(command, " takes exactly one argument"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadPasswordSource(const std::string& path) {
  if (!path.empty()) return ReadFirstLine(path);
  if (const char* env = std::getenv("PEERCTL_PASSWORD"); env != nullptr) {
    return std::string(env);
  }
  // systemd's LoadCredential= (see systemd/peerctl.service).
  if (const char* credentials = std::getenv("CREDENTIALS_DIRECTORY");
      credentials != nullptr && *credentials != '\0') {
    const std::string credential =
        absl::StrCat(credentials, "/peerctl.password");
    if (::access(credential.c_str(), F_OK) == 0) {
      return ReadFirstLine(credential);
    }
  }
  return absl::InvalidArgumentError(
      "no password: give --password-file FILE (or password_file in "
      "peerctl.conf) or set PEERCTL_PASSWORD");
}

int RunOneShot(const PeerOptions& options, const OneShotCommand& command,
               std::FILE* out, std::FILE* err) {
  ResultPrinter printer(command, out, err, &stop_requested);
  // Through the agent when one answers for this user.
  absl::StatusOr<std::unique_ptr<control::AgentConnection>> agent =
      control::AgentConnection::Connect(
          command.socket_path, control::AbsolutePath(options.download_dir));
  if (agent.ok() &&
      (!command.user.has_value() || *command.user == (*agent)->user())) {
    if (options.server.deadline != absl::InfiniteFuture()) {
      if (absl::Status s = (*agent)->SetDeadline(options.server.deadline);
          !s.ok()) {
        return printer.Fail(s);
      }
    }
    return printer.Run(**agent);
  }
  if (!agent.ok() && !absl::IsNotFound(agent.status()) &&
      !command.user.has_value()) {
    return printer.Fail(agent.status());
  }

  if (!command.user.has_value()) {
    return ReportFailure(
        err, command.json, command.command, kExitUsage,
        absl::StrCat("a COMMAND needs --user (no agent listens at ",
                     command.socket_path, ")"));
  }
  absl::StatusOr<std::string> password =
      ReadPasswordSource(command.password_file);
  if (!password.ok()) {
    return ReportFailure(err, command.json, command.command, kExitUsage,
                         password.status().message());
  }
  // A name or password no daemon could take is the command line's fault
  // (exit 2, as for serve), not a login the daemon refused.
  for (const absl::Status& s :
       {ValidateUserName(*command.user), ValidatePassword(*password)}) {
    if (!s.ok()) {
      return ReportFailure(err, command.json, command.command, kExitUsage,
                           s.message());
    }
  }
  PeerOptions one_shot = options;
  one_shot.serve_files = false;
  absl::StatusOr<std::unique_ptr<Peer>> peer = Peer::Create(one_shot);
  if (!peer.ok()) return printer.Fail(peer.status());
  if (absl::Status s = (*peer)->Login(*command.user, *password); !s.ok()) {
    const int code = absl::IsAlreadyExists(s) || absl::IsInvalidArgument(s)
                         ? kExitLoginRefused
                         : ExitCodeFor(s);
    return ReportFailure(
        err, command.json, command.command, code,
        absl::StrCat(absl::IsUnavailable(s) ? "" : "login refused: ",
                     s.message()));
  }
  int code;
  {
    // A get: Ctrl-C or SIGTERM cancels the download in progress (what
    // arrived stays in the partial for the next get) instead of killing the
    // process, the session ends, and the process then ends by that signal.
    std::optional<SignalCatcher> stop_signals;
    if (command.command == "get")
      stop_signals.emplace({SIGINT, SIGTERM}, OnStopSignal);
    code = printer.Run(**peer);
  }
  if (absl::Status s = (*peer)->Logout(); !s.ok() && code == kExitOk) {
    code = printer.Fail(s);
  }
  RaiseCaughtStopSignal();
  return code;
}

}  // namespace pcfs
