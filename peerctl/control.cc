#include "peerctl/control.h"

#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "peerctl/exit_codes.h"

namespace pcfs::control {
namespace {

bool HasControlCharacter(absl::string_view text) {
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

std::string WithoutControlCharacters(absl::string_view text) {
  std::string clean(text);
  for (char& c : clean) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return clean;
}

// How many arguments each command takes (get: one, plus the folder).
int ArgumentCount(absl::string_view command) {
  if (command == "status" || command == "lap" || command == "lpf") return 0;
  if (command == "sch" || command == "pub" || command == "unp" ||
      command == "get" || command == "url") {
    return 1;
  }
  return -1;
}

std::optional<absl::StatusCode> StatusCodeFromName(absl::string_view name) {
  for (int i = 0; i <= 16; ++i) {
    const auto code = static_cast<absl::StatusCode>(i);
    if (absl::StatusCodeToString(code) == name) return code;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::string> EncodeRequest(const Request& request) {
  for (absl::string_view field :
       {absl::string_view(request.command), absl::string_view(request.argument),
        absl::string_view(request.download_dir)}) {
    if (HasControlCharacter(field)) {
      return absl::InvalidArgumentError(
          "a control character cannot be sent to the agent");
    }
  }
  std::string line = request.command;
  if (ArgumentCount(request.command) > 0) {
    absl::StrAppend(&line, "\t", request.argument);
    if (!request.download_dir.empty()) {
      absl::StrAppend(&line, "\t", request.download_dir);
    }
  }
  line.push_back('\n');
  if (line.size() > kMaxLineBytes) {
    return absl::InvalidArgumentError("the request is too long");
  }
  return line;
}

absl::StatusOr<Request> ParseRequest(absl::string_view line) {
  std::vector<absl::string_view> fields = absl::StrSplit(line, '\t');
  Request request;
  request.command = std::string(fields[0]);
  const int wanted = ArgumentCount(fields[0]);
  if (wanted < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown command '", WithoutControlCharacters(fields[0]), "'"));
  }
  const size_t most = request.command == "get" ? 3 : 1 + wanted;
  if (fields.size() < 1 + static_cast<size_t>(wanted) || fields.size() > most) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.command,
        wanted == 0 ? " takes no argument" : " takes exactly one argument"));
  }
  if (fields.size() > 1) request.argument = std::string(fields[1]);
  if (fields.size() > 2) request.download_dir = std::string(fields[2]);
  return request;
}

std::string EncodeItem(absl::string_view text) {
  return absl::StrCat("item\t", WithoutControlCharacters(text), "\n");
}

std::string EncodeOk() { return "ok\n"; }

std::string EncodeError(const absl::Status& status) {
  return absl::StrCat("error\t", absl::StatusCodeToString(status.code()), "\t",
                      ExitCodeName(ExitCodeFor(status)), "\t",
                      WithoutControlCharacters(status.message()), "\n");
}

absl::StatusOr<ReplyLine> ParseReplyLine(absl::string_view line) {
  ReplyLine reply;
  if (line == "ok") {
    reply.kind = ReplyLine::Kind::kOk;
    return reply;
  }
  if (absl::StartsWith(line, "item\t")) {
    reply.kind = ReplyLine::Kind::kItem;
    reply.text = std::string(line.substr(5));
    return reply;
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(line, absl::MaxSplits('\t', 3));
  std::optional<absl::StatusCode> code;
  if (fields.size() == 4 && fields[0] == "error") {
    code = StatusCodeFromName(fields[1]);
  }
  if (!code.has_value() || *code == absl::StatusCode::kOk) {
    return absl::InvalidArgumentError("malformed reply from the agent");
  }
  reply.kind = ReplyLine::Kind::kError;
  reply.status = absl::Status(*code, fields[3]);
  // The agent's exit code wins: the mark its status carried there (a key
  // mismatch, a holder's failure) is put back when the code alone maps
  // elsewhere, as a holder that refused a ticket would read as the user's
  // login refused.
  for (absl::Status (*mark)(absl::Status) :
       {&MarkKeyMismatch, &MarkHolderFailure, &MarkFolderFailure}) {
    if (ExitCodeName(ExitCodeFor(reply.status)) == fields[2]) break;
    if (absl::Status marked = mark(reply.status);
        ExitCodeName(ExitCodeFor(marked)) == fields[2]) {
      reply.status = std::move(marked);
    }
  }
  return reply;
}

absl::StatusOr<std::string> LineReader::Next(int stop_fd) {
  for (;;) {
    const size_t end = buffer_.find('\n');
    if (end != std::string::npos) {
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      return line;
    }
    if (buffer_.size() > kMaxLineBytes) {
      return absl::ResourceExhaustedError("line too long");
    }
    if (stop_fd >= 0) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("poll", errno);
      }
      if (fds[1].revents != 0) return absl::CancelledError("stopped");
      if (fds[0].revents == 0) continue;
    }
    char chunk[4096];
    const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read", errno);
    }
    if (n == 0) return absl::OutOfRangeError("end of stream");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("send", errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string DefaultSocketPath() {
  if (const char* path = std::getenv("PEERCTL_SOCKET");
      path != nullptr && *path != '\0') {
    return path;
  }
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR");
      runtime != nullptr && *runtime != '\0') {
    return absl::StrCat(runtime, "/peerconnect/peerctl.sock");
  }
  return absl::StrCat("/run/user/", ::getuid(), "/peerconnect/peerctl.sock");
}

std::string AbsolutePath(const std::string& folder) {
  char resolved[PATH_MAX];
  if (::realpath(folder.c_str(), resolved) != nullptr) return resolved;
  // Not there (or not readable): absolute all the same, so that the agent
  // names the folder that is missing rather than refusing a relative path.
  if (!folder.empty() && folder[0] != '/' &&
      ::getcwd(resolved, sizeof(resolved)) != nullptr) {
    return absl::StrCat(resolved, "/", folder);
  }
  return folder;
}

AgentConnection::AgentConnection(UniqueFd fd, std::string path,
                                 std::string download_dir)
    : fd_(std::move(fd)),
      reader_(fd_.get()),
      path_(std::move(path)),
      download_dir_(std::move(download_dir)) {}

absl::StatusOr<std::unique_ptr<AgentConnection>> AgentConnection::Connect(
    const std::string& path, std::string download_dir) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent socket path '", path, "' is empty or longer than ",
                     sizeof(address.sun_path) - 1, " bytes"));
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address),
                sizeof(address)) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat("no agent listens at ", path));
    }
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot use the agent at ", path, ": ", std::strerror(err)));
    }
    return ErrnoStatus(absl::StrCat("connect ", path), err);
  }
  std::unique_ptr<AgentConnection> connection(
      new AgentConnection(std::move(fd), path, std::move(download_dir)));
  Request status;
  status.command = "status";
  absl::StatusOr<std::vector<std::string>> items = connection->Call(status);
  if (!items.ok()) return items.status();
  if (items->size() != 2) {
    return absl::InternalError("malformed status reply from the agent");
  }
  connection->user_ = (*items)[0];
  connection->logged_in_ = (*items)[1] == "logged-in";
  return connection;
}

absl::Status AgentConnection::SetDeadline(absl::Time deadline) {
  deadline_ = deadline;
  // Blocking reads and writes of the socket end by then (EAGAIN).
  const absl::Duration left =
      std::max(deadline - absl::Now(), absl::Milliseconds(1));
  const timeval bound = absl::ToTimeval(left);
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound)) !=
          0 ||
      ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof(bound)) !=
          0) {
    return ErrnoStatus("setsockopt SO_RCVTIMEO", errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> AgentConnection::Call(
    const Request& request) {
  absl::StatusOr<std::string> line = EncodeRequest(request);
  if (!line.ok()) return line.status();
  const auto gone = [this](const absl::Status& why) {
    if (absl::Now() >= deadline_) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the agent at ", path_, " did not answer within the --timeout"));
    }
    return absl::UnavailableError(
        absl::StrCat("the agent at ", path_, " went away: ", why.message()));
  };
  if (absl::Status s = WriteAll(fd_.get(), *line); !s.ok()) {
    // An agent that refuses this connection (another uid, too many
    // clients) writes its error line and closes: report that error.
    if (absl::StatusOr<std::string> text = reader_.Next(); text.ok()) {
      absl::StatusOr<ReplyLine> reply = ParseReplyLine(*text);
      if (reply.ok() && reply->kind == ReplyLine::Kind::kError) {
        return reply->status;
      }
    }
    return gone(s);
  }
  std::vector<std::string> items;
  for (;;) {
    absl::StatusOr<std::string> text = reader_.Next();
    if (!text.ok()) return gone(text.status());
    absl::StatusOr<ReplyLine> reply = ParseReplyLine(*text);
    if (!reply.ok()) return absl::InternalError(reply.status().message());
    switch (reply->kind) {
      case ReplyLine::Kind::kItem:
        items.push_back(std::move(reply->text));
        break;
      case ReplyLine::Kind::kOk:
        return items;
      case ReplyLine::Kind::kError:
        return reply->status;
    }
  }
}

absl::StatusOr<std::vector<std::string>> AgentConnection::ListActivePeers() {
  return Call({"lap", "", ""});
}

absl::StatusOr<std::vector<std::string>> AgentConnection::ListPublished() {
  return Call({"lpf", "", ""});
}

absl::StatusOr<std::vector<std::string>> AgentConnection::Search(
    absl::string_view pattern) {
  return Call({"sch", std::string(pattern), ""});
}

absl::Status AgentConnection::Publish(absl::string_view name) {
  return Call({"pub", std::string(name), ""}).status();
}

absl::Status AgentConnection::Unpublish(absl::string_view name) {
  return Call({"unp", std::string(name), ""}).status();
}

absl::StatusOr<std::string> AgentConnection::Get(
    absl::string_view name, const std::atomic<bool>* /*cancel*/,
    std::function<void(uint64_t, uint64_t)> /*progress*/) {
  absl::StatusOr<std::vector<std::string>> items =
      Call({"get", std::string(name), download_dir_});
  if (!items.ok()) return items.status();
  if (items->size() != 1) {
    return absl::InternalError("malformed get reply from the agent");
  }
  return std::move((*items)[0]);
}

// The agent answers "url" with two items: the command, and the ticket's
// expiry in Unix milliseconds.
absl::StatusOr<DownloadCommand> AgentConnection::MakeDownloadCommand(
    absl::string_view name) {
  absl::StatusOr<std::vector<std::string>> items =
      Call({"url", std::string(name), ""});
  if (!items.ok()) return items.status();
  int64_t millis = 0;
  if (items->size() != 2 || !absl::SimpleAtoi((*items)[1], &millis)) {
    return absl::InternalError("malformed url reply from the agent");
  }
  return DownloadCommand{(*items)[0], absl::FromUnixMillis(millis)};
}

}  // namespace pcfs::control
