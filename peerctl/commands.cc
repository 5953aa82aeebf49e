#include "peerctl/commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "core/base/names.h"
#include "core/base/unique_fd.h"
#include "peerctl/exit_codes.h"

namespace pcfs {
namespace {

void PrintError(std::FILE* err, absl::string_view what,
                const absl::Status& status) {
  std::string line = absl::StrCat("peerctl: ", what, status.message(), "\n");
  std::fwrite(line.data(), 1, line.size(), err);
}

int PrintNames(const absl::StatusOr<std::vector<std::string>>& names,
               std::FILE* out, std::FILE* err) {
  if (!names.ok()) {
    PrintError(err, "", names.status());
    return ExitCodeFor(names.status());
  }
  std::string text;
  for (const std::string& name : *names) absl::StrAppend(&text, name, "\n");
  std::fwrite(text.data(), 1, text.size(), out);
  return kExitOk;
}

int Finish(const absl::Status& status, std::FILE* err) {
  if (!status.ok()) PrintError(err, "", status);
  return ExitCodeFor(status);
}

}  // namespace

absl::Status CheckCommandArity(absl::string_view command,
                               size_t argument_count) {
  size_t wanted;
  if (command == "lap" || command == "lpf") {
    wanted = 0;
  } else if (command == "sch" || command == "pub" || command == "unp" ||
             command == "get") {
    wanted = 1;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown command '", command,
        "'; commands are lap, lpf, sch PATTERN, pub NAME, unp NAME, get NAME"));
  }
  if (argument_count != wanted) {
    return absl::InvalidArgumentError(
        wanted == 0 ? absl::StrCat(command, " takes no argument")
                    : absl::StrCat(command, " takes exactly one argument"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadPasswordSource(const std::string& path) {
  if (path.empty()) {
    const char* env = std::getenv("PEERCTL_PASSWORD");
    if (env == nullptr) {
      return absl::InvalidArgumentError(
          "no password: give --password-file FILE or set PEERCTL_PASSWORD");
    }
    return std::string(env);
  }
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

int RunOneShot(const PeerOptions& options, const OneShotCommand& command,
               std::FILE* out, std::FILE* err) {
  PeerOptions one_shot = options;
  one_shot.serve_files = false;
  absl::StatusOr<std::unique_ptr<Peer>> peer = Peer::Create(one_shot);
  if (!peer.ok()) return Finish(peer.status(), err);
  if (absl::Status s = (*peer)->Login(command.user, command.password);
      !s.ok()) {
    PrintError(err, absl::IsUnavailable(s) ? "" : "login refused: ", s);
    if (absl::IsAlreadyExists(s) || absl::IsInvalidArgument(s)) {
      return kExitLoginRefused;
    }
    return ExitCodeFor(s);
  }
  int code = kExitOk;
  const std::string& arg = command.argument;
  if (command.command == "lap") {
    code = PrintNames((*peer)->ListActivePeers(), out, err);
  } else if (command.command == "lpf") {
    code = PrintNames((*peer)->ListPublished(), out, err);
  } else if (command.command == "sch") {
    code = PrintNames((*peer)->Search(arg), out, err);
  } else if (command.command == "pub") {
    code = Finish((*peer)->Publish(arg), err);
  } else if (command.command == "unp") {
    code = Finish((*peer)->Unpublish(arg), err);
  } else if (command.command == "get") {
    absl::StatusOr<std::string> path = (*peer)->Get(arg);
    if (path.ok()) {
      std::string line = absl::StrCat(*path, "\n");
      std::fwrite(line.data(), 1, line.size(), out);
    } else {
      code = Finish(path.status(), err);
    }
  }
  if (absl::Status s = (*peer)->Logout(); !s.ok() && code == kExitOk) {
    code = Finish(s, err);
  }
  return code;
}

}  // namespace pcfs
