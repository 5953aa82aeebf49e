#include "peerctl/shell.h"

#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "peerctl/control.h"
#include "peerctl/exit_codes.h"

namespace pcfs {
namespace {

void Print(std::FILE* out, absl::string_view text) {
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

void PrintLine(std::FILE* out, absl::string_view text) {
  Print(out, absl::StrCat(text, "\n"));
}

// Reads one line without its "\n" (and a "\r" before it). False at end of
// input with nothing read.
bool ReadLine(std::FILE* in, std::string* line) {
  char* buffer = nullptr;
  size_t capacity = 0;
  ssize_t n = ::getline(&buffer, &capacity, in);
  if (n < 0) {
    std::free(buffer);
    return false;
  }
  line->assign(buffer, static_cast<size_t>(n));
  std::free(buffer);
  while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) {
    line->pop_back();
  }
  return true;
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
  const bool read = ReadLine(in, password);
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

// Logs in, prompting until it works. Returns an exit code to stop with, or
// -1 once logged in.
int LogIn(Peer& peer, std::FILE* in, std::FILE* out, std::FILE* err) {
  for (;;) {
    std::string user;
    std::string password;
    Print(out, "Username: ");
    if (!ReadLine(in, &user)) {
      Print(out, "\n");
      return kExitOk;
    }
    Print(out, "Password: ");
    if (!ReadPassword(in, out, &password)) {
      Print(out, "\n");
      return kExitOk;
    }
    absl::Status s = peer.Login(user, password);
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
                absl::string_view argument, std::FILE* out) {
  const bool has_argument = !argument.empty();
  if (command == "lap" && !has_argument) {
    PrintList(out, peer.ListActivePeers(), "No active peers");
  } else if (command == "lpf" && !has_argument) {
    PrintList(out, peer.ListPublished(), "No files published");
  } else if (command == "sch" && has_argument) {
    PrintList(out, peer.Search(argument), "No files found");
  } else if (command == "pub" && has_argument) {
    absl::Status s = peer.Publish(argument);
    PrintLine(out,
              s.ok() ? "File published successfully"
                     : absl::StrCat("File publication failed: ", s.message()));
  } else if (command == "unp" && has_argument) {
    absl::Status s = peer.Unpublish(argument);
    if (s.ok()) {
      PrintLine(out, "File unpublished successfully");
    } else if (absl::IsNotFound(s)) {
      PrintLine(out, "File unpublication failed");
    } else {
      PrintLine(out, absl::StrCat("File unpublication failed: ", s.message()));
    }
  } else if (command == "get" && has_argument) {
    absl::StatusOr<std::string> path = peer.Get(argument);
    if (path.ok()) {
      PrintLine(out, absl::StrCat("Download successful: ", argument));
    } else if (absl::IsNotFound(path.status()) &&
               path.status().message() == "File not found") {
      PrintLine(out, "File not found");
    } else {
      PrintLine(out,
                absl::StrCat("Download failed: ", path.status().message()));
    }
  } else {
    PrintLine(out, kCommandList);
  }
}

// Reads and runs commands until `xit` or end of input.
void CommandLoop(CommandBackend& backend, std::FILE* in, std::FILE* out) {
  for (;;) {
    Print(out, "> ");
    std::string line;
    if (!ReadLine(in, &line)) {
      if (::isatty(::fileno(in))) Print(out, "\n");
      break;  // end of input acts as xit
    }
    absl::string_view rest = absl::StripAsciiWhitespace(line);
    if (rest.empty()) continue;
    const size_t space = rest.find_first_of(" \t");
    absl::string_view command = rest.substr(0, space);
    absl::string_view argument =
        space == absl::string_view::npos
            ? absl::string_view()
            : absl::StripLeadingAsciiWhitespace(rest.substr(space));
    if (command == "xit" && argument.empty()) break;
    RunCommand(backend, command, argument, out);
  }
}

}  // namespace

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
    CommandLoop(**agent, in, out);
    PrintLine(out, "Goodbye!");
    return kExitOk;
  }
  absl::StatusOr<std::unique_ptr<Peer>> peer = Peer::Create(options);
  if (!peer.ok()) {
    Print(err, absl::StrCat("peerctl: ", peer.status().message(), "\n"));
    return ExitCodeFor(peer.status());
  }
  if (int code = LogIn(**peer, in, out, err); code >= 0) return code;
  CommandLoop(**peer, in, out);
  absl::Status s = (*peer)->Logout();
  PrintLine(out, "Goodbye!");
  if (!s.ok()) {
    Print(err, absl::StrCat("peerctl: logout: ", s.message(), "\n"));
  }
  return kExitOk;
}

}  // namespace pcfs
