#include "peerctl/shell.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "peerctl/control.h"
#include "peerctl/downloader.h"
#include "peerctl/exit_codes.h"
#include "peerctl/line_editor.h"
#include "peerctl/signal_catcher.h"

namespace pcfs {
namespace {

// Set by SIGINT (Ctrl-C while a command runs on a terminal): a running
// `get` stops. While a line is edited, Ctrl-C is a key (LineEditor).
std::atomic<bool> interrupted{false};

void OnInterrupt(int) { interrupted.store(true, std::memory_order_relaxed); }

// The regular files of `folder` (what `pub` can publish).
std::vector<std::string> FilesIn(const std::string& folder) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(folder.c_str());
  if (dir == nullptr) return names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat info {};
    if (::fstatat(::dirfd(dir), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) ==
            0 &&
        S_ISREG(info.st_mode)) {
      names.push_back(name);
    }
  }
  ::closedir(dir);
  return names;
}

void Print(std::FILE* out, absl::string_view text) {
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

void PrintLine(std::FILE* out, absl::string_view text) {
  Print(out, absl::StrCat(text, "\n"));
}

// Reads the password with echo off when `in` is a terminal.
bool ReadPassword(std::FILE* in, std::FILE* out, std::string* password) {
  const int fd = ::fileno(in);
  termios saved;
  const bool terminal = ::isatty(fd) && ::tcgetattr(fd, &saved) == 0;
  if (terminal) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  const bool read = ReadPlainLine(in, password);
  if (terminal) {
    ::tcsetattr(fd, TCSAFLUSH, &saved);
    Print(out, "\n");  // the user's Enter was not echoed
  }
  return read;
}

void PrintList(std::FILE* out,
               const absl::StatusOr<std::vector<std::string>>& names,
               absl::string_view when_empty) {
  if (!names.ok()) {
    PrintLine(out, absl::StrCat("Error: ", names.status().message()));
    return;
  }
  if (names->empty()) {
    PrintLine(out, when_empty);
    return;
  }
  std::string text;
  for (const std::string& name : *names) absl::StrAppend(&text, name, "\n");
  Print(out, text);
}

// peer.Login, during which Ctrl-C on a terminal does not kill the shell
// with a session left behind (the daemon would refuse the user's next
// login as active until it expired): while the daemon is waited for, it
// ends the login and then the shell, as Ctrl-C at the prompts does; once
// logged in, it ends the wait for the start-up check (which goes on in the
// background) and the prompt comes, from which `xit` logs out.
absl::Status LogInInterruptibly(Peer& peer, absl::string_view user,
                                absl::string_view password, std::FILE* in) {
  if (!::isatty(::fileno(in))) return peer.Login(user, password);
  interrupted.store(false, std::memory_order_relaxed);
  absl::Status s;
  {
    const SignalCatcher catcher({SIGINT}, OnInterrupt);
    s = peer.Login(user, password, &interrupted);
  }
  if (absl::IsCancelled(s)) {
    // Not logged in: the end Ctrl-C would have brought without the handler.
    ::raise(SIGINT);
  }
  interrupted.store(false, std::memory_order_relaxed);
  return s;
}

// Logs in, prompting until it works. Returns an exit code to stop with, or
// -1 once logged in.
int LogIn(Peer& peer, std::FILE* in, std::FILE* out, std::FILE* err) {
  for (;;) {
    std::string user;
    std::string password;
    Print(out, "Username: ");
    if (!ReadPlainLine(in, &user)) {
      Print(out, "\n");
      return kExitOk;
    }
    Print(out, "Password: ");
    if (!ReadPassword(in, out, &password)) {
      Print(out, "\n");
      return kExitOk;
    }
    absl::Status s = LogInInterruptibly(peer, user, password, in);
    switch (s.code()) {
      case absl::StatusCode::kOk:
        return -1;
      case absl::StatusCode::kUnauthenticated:
      case absl::StatusCode::kInvalidArgument:
        PrintLine(out, "Authentication failed. Please try again.");
        break;
      case absl::StatusCode::kAlreadyExists:
      case absl::StatusCode::kResourceExhausted:
        PrintLine(out, absl::StrCat("Authentication failed: ", s.message(),
                                    ". Please try again."));
        break;
      default:
        Print(err, absl::StrCat("peerctl: ", s.message(), "\n"));
        return ExitCodeFor(s);
    }
  }
}

void RunCommand(CommandBackend& peer, absl::string_view command,
                absl::string_view argument, std::FILE* out, std::FILE* err,
                std::vector<std::string>* last_search) {
  const bool has_argument = !argument.empty();
  if (command == "lap" && !has_argument) {
    PrintList(out, peer.ListActivePeers(), "No active peers");
  } else if (command == "lpf" && !has_argument) {
    PrintList(out, peer.ListPublished(), "No files published");
  } else if (command == "sch" && has_argument) {
    absl::StatusOr<std::vector<std::string>> names = peer.Search(argument);
    if (names.ok()) *last_search = *names;
    PrintList(out, names, "No files found");
  } else if (command == "pub" && has_argument) {
    // Silent when it worked, as the subcommand is: the next prompt says so.
    if (absl::Status s = peer.Publish(argument); !s.ok()) {
      PrintLine(out, absl::StrCat("File publication failed: ", s.message()));
    }
  } else if (command == "unp" && has_argument) {
    // Silent when it worked, as pub; a failure says why, as pub's does
    // ("you do not publish NAME").
    if (absl::Status s = peer.Unpublish(argument); !s.ok()) {
      PrintLine(out, absl::StrCat("File unpublication failed: ", s.message()));
    }
  } else if (command == "get" && has_argument) {
    // On a terminal: one progress line on stderr, and Ctrl-C cancels.
    ProgressLine progress(err);
    interrupted.store(false, std::memory_order_relaxed);
    absl::StatusOr<std::string> path =
        peer.Get(argument, &interrupted, [&](uint64_t received, uint64_t all) {
          progress.Update(received, all);
        });
    progress.Finish();
    if (path.ok()) {
      PrintLine(out, absl::StrCat("Download successful: ", argument));
    } else if (absl::IsNotFound(path.status()) &&
               path.status().message() == "File not found") {
      PrintLine(out, "File not found");
    } else if (absl::IsCancelled(path.status())) {
      PrintLine(out, absl::StrCat("Download cancelled: ", argument));
    } else {
      PrintLine(out,
                absl::StrCat("Download failed: ", path.status().message()));
    }
  } else {
    PrintLine(out, kCommandList);
  }
}

// Reads and runs commands until `xit` or end of input: on a terminal with
// line editing, history and Tab completion (`publications` gives what `unp`
// completes), and Ctrl-C cancelling a running `get`.
void CommandLoop(CommandBackend& backend, const PeerOptions& options,
                 const std::function<std::vector<std::string>()>& publications,
                 std::FILE* in, std::FILE* out, std::FILE* err) {
  std::vector<std::string> last_search;
  std::unique_ptr<LineEditor> editor = LineEditor::Create(
      in, out, err, DefaultHistoryPath(),
      [&](absl::string_view before, size_t* word_start) {
        return ShellCompletions(before, word_start, [&](absl::string_view c) {
          if (c == "pub") return FilesIn(options.share_dir);
          if (c == "unp") return publications();
          if (c == "get") return last_search;
          return std::vector<std::string>();
        });
      });
  // A blocking call sees EINTR (SignalCatcher), and the download's waits
  // look at the flag at least every 100 ms anyway.
  std::optional<SignalCatcher> catcher;
  if (editor->interactive()) catcher.emplace({SIGINT}, OnInterrupt);

  for (;;) {
    std::string line;
    if (!editor->ReadLine("> ", &line)) {
      if (::isatty(::fileno(in))) Print(out, "\n");
      break;  // end of input acts as xit
    }
    absl::string_view rest = absl::StripAsciiWhitespace(line);
    if (rest.empty()) continue;
    editor->AddHistory(rest);
    const size_t space = rest.find_first_of(" \t");
    absl::string_view command = rest.substr(0, space);
    absl::string_view argument =
        space == absl::string_view::npos
            ? absl::string_view()
            : absl::StripLeadingAsciiWhitespace(rest.substr(space));
    if (command == "xit" && argument.empty()) break;
    RunCommand(backend, command, argument, out, err, &last_search);
  }
}

}  // namespace

std::vector<std::string> ShellCompletions(
    absl::string_view before_cursor, size_t* word_start,
    const std::function<std::vector<std::string>(absl::string_view command)>&
        arguments) {
  static constexpr const char* kCommands[] = {"get", "lap", "lpf", "pub",
                                              "sch", "unp", "xit"};
  const size_t lead = before_cursor.find_first_not_of(" \t");
  if (lead == absl::string_view::npos) {
    *word_start = before_cursor.size();
    return std::vector<std::string>(std::begin(kCommands), std::end(kCommands));
  }
  const size_t space = before_cursor.find_first_of(" \t", lead);
  if (space == absl::string_view::npos) {
    *word_start = lead;
    return std::vector<std::string>(std::begin(kCommands), std::end(kCommands));
  }
  // The argument is the rest of the line, spaces and all (as RunShell
  // reads it), so the word being completed starts after the blanks.
  const size_t argument = before_cursor.find_first_not_of(" \t", space);
  *word_start =
      argument == absl::string_view::npos ? before_cursor.size() : argument;
  return arguments(before_cursor.substr(lead, space - lead));
}

int RunShell(const PeerOptions& options, const std::string& agent_socket,
             std::FILE* in, std::FILE* out, std::FILE* err) {
  // A running agent holds the session: attach to it, no login.
  if (absl::StatusOr<std::unique_ptr<control::AgentConnection>> agent =
          control::AgentConnection::Connect(
              agent_socket, control::AbsolutePath(options.download_dir));
      agent.ok()) {
    PrintLine(out, absl::StrCat(
                       "Attached to the peerctl agent of ", (*agent)->user(),
                       " at ", agent_socket,
                       (*agent)->logged_in() ? "" : " (it is logging in again)",
                       "; xit leaves it running"));
    control::AgentConnection& connection = **agent;
    CommandLoop(
        connection, options,
        [&] {
          absl::StatusOr<std::vector<std::string>> names =
              connection.ListPublished();
          return names.ok() ? *std::move(names) : std::vector<std::string>();
        },
        in, out, err);
    return kExitOk;
  }
  // With several daemons, a move to another is worth a line in the
  // session too (the client logs the details on stderr).
  PeerOptions own = options;
  own.log_transfer_mode = false;
  own.server.on_move = [out](absl::string_view daemon) {
    PrintLine(out, absl::StrCat("(now on daemon ", daemon,
                                ": the last one stopped answering)"));
  };
  absl::StatusOr<std::unique_ptr<Peer>> peer = Peer::Create(own);
  if (!peer.ok()) {
    Print(err, absl::StrCat("peerctl: ", peer.status().message(), "\n"));
    return ExitCodeFor(peer.status());
  }
  if (int code = LogIn(**peer, in, out, err); code >= 0) return code;
  Peer& self = **peer;
  CommandLoop(
      self, options, [&] { return self.KnownPublications(); }, in, out, err);
  absl::Status s = (*peer)->Logout();
  if (!s.ok()) {
    Print(err, absl::StrCat("peerctl: logout: ", s.message(), "\n"));
  }
  return kExitOk;
}

}  // namespace pcfs
