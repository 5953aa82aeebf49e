// The agent's control protocol: how `peerctl` commands and the shell ask a
// running `peerctl serve` (peerctl/agent.h) to run a command in its session,
// over a unix stream socket. Described for people in docs/CLI.md ("The
// agent's control socket").
//
// Text lines, each ended by "\n", fields separated by a TAB. File names,
// search patterns and user names hold no control characters (core/base/
// names.h), so neither a TAB nor a newline can occur inside a field.
//
//   request   COMMAND [TAB ARGUMENT [TAB DOWNLOAD-DIR]]
//             COMMAND: status, lap, lpf, sch, pub, unp, get
//   reply     zero or more "item" TAB TEXT lines, then one of
//             "ok"
//             "error" TAB STATUS-CODE TAB EXIT-NAME TAB MESSAGE
//
// STATUS-CODE is absl's name of the status code ("NOT_FOUND"), EXIT-NAME
// the name of peerctl's exit code (peerctl/exit_codes.h), so that a command
// run through the agent exits as it would have run alone. A connection
// carries any number of requests, one at a time.
//
// The free functions are pure and thread-safe. An AgentConnection is used
// by one thread at a time.
#ifndef PCFS_PEERCTL_CONTROL_H_
#define PCFS_PEERCTL_CONTROL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "peerctl/command_backend.h"

namespace pcfs::control {

// A request line holds at most this many bytes (a 255-byte name and a
// download folder path fit many times over).
inline constexpr size_t kMaxLineBytes = size_t{16} * 1024;

struct Request {
  std::string command;
  std::string argument;
  std::string download_dir;  // get only; empty: the agent's own
};

// The line for `request`, "\n" included. InvalidArgument if a field holds a
// control character (a TAB or newline would break the framing).
absl::StatusOr<std::string> EncodeRequest(const Request& request);
// Parses a request line (without its "\n"). InvalidArgument if it is
// malformed or names no known command.
absl::StatusOr<Request> ParseRequest(absl::string_view line);

// Reply lines, "\n" included. Control characters in `text` or in the
// status message become spaces.
std::string EncodeItem(absl::string_view text);
std::string EncodeOk();
std::string EncodeError(const absl::Status& status);

// One parsed reply line.
struct ReplyLine {
  enum class Kind { kItem, kOk, kError };
  Kind kind = Kind::kOk;
  std::string text;     // kItem
  absl::Status status;  // kError: the status, holder failures marked
};
// Parses a reply line (without its "\n"); InvalidArgument if malformed.
absl::StatusOr<ReplyLine> ParseReplyLine(absl::string_view line);

// Reads "\n"-ended lines from a stream socket, with a buffer of its own.
// Not thread-safe.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // The next line without its "\n". Blocks until one is whole, or until
  // `stop_fd` (if >= 0) becomes readable. OutOfRange at end of stream,
  // Cancelled when stopped, ResourceExhausted for a line over
  // kMaxLineBytes, the errno of read(2) otherwise.
  absl::StatusOr<std::string> Next(int stop_fd = -1);

 private:
  int fd_;
  std::string buffer_;
};

// Writes all of `data` to a stream socket (MSG_NOSIGNAL).
absl::Status WriteAll(int fd, absl::string_view data);

// The default socket path: $PEERCTL_SOCKET, else
// $XDG_RUNTIME_DIR/peerconnect/peerctl.sock, else
// /run/user/UID/peerconnect/peerctl.sock.
std::string DefaultSocketPath();

// The absolute, resolved form of `folder` (realpath), or `folder` itself if
// it cannot be resolved: a download folder sent to the agent, so that the
// file lands where the command or shell was asked to put it.
std::string AbsolutePath(const std::string& folder);

// A client's connection to the agent. Runs commands through it, as a
// CommandBackend for the shell and the one-shot commands.
class AgentConnection : public CommandBackend {
 public:
  // Connects to the agent at `path` and asks its status. NotFound if no
  // agent listens there (no socket, or a stale one nobody accepts on);
  // PermissionDenied if the socket or the agent refuses this user; other
  // errors as they come. `download_dir` is sent with each `get` (empty:
  // the agent's own folder).
  static absl::StatusOr<std::unique_ptr<AgentConnection>> Connect(
      const std::string& path, std::string download_dir);

  // The agent's user, and whether its session was live at Connect().
  const std::string& user() const { return user_; }
  bool logged_in() const { return logged_in_; }

  // Sends `request` and collects its items; the error the agent reports, or
  // Unavailable if the agent went away.
  absl::StatusOr<std::vector<std::string>> Call(const Request& request);

  // Bounds every later Call (a one-shot command's --timeout): one the agent
  // has not answered by `deadline` fails with DeadlineExceeded. The agent
  // may still finish the command on its own.
  absl::Status SetDeadline(absl::Time deadline);

  absl::StatusOr<std::vector<std::string>> ListActivePeers() override;
  absl::StatusOr<std::vector<std::string>> ListPublished() override;
  absl::StatusOr<std::vector<std::string>> Search(
      absl::string_view pattern) override;
  absl::Status Publish(absl::string_view name) override;
  absl::Status Unpublish(absl::string_view name) override;
  // The agent downloads in its own process: `cancel` and `progress` are
  // not honoured (no progress line; Ctrl-C does not stop the agent's
  // download).
  absl::StatusOr<std::string> Get(
      absl::string_view name, const std::atomic<bool>* cancel,
      std::function<void(uint64_t, uint64_t)> progress) override;
  absl::StatusOr<DownloadCommand> MakeDownloadCommand(
      absl::string_view name) override;

 private:
  AgentConnection(UniqueFd fd, std::string path, std::string download_dir);

  UniqueFd fd_;
  LineReader reader_;
  const std::string path_;
  const std::string download_dir_;
  std::string user_;
  bool logged_in_ = false;
  absl::Time deadline_ = absl::InfiniteFuture();
};

}  // namespace pcfs::control

#endif  // PCFS_PEERCTL_CONTROL_H_
