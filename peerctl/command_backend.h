// CommandBackend: what runs a user's commands for the shell and the one-shot
// subcommands. Two kinds exist: a Peer (peerctl/peer.h), which holds a
// session of its own, and an AgentConnection (peerctl/control.h), which asks
// a running `peerctl serve` agent to run them in its session.
//
// Thread-safety: as each implementation says (a Peer may be called from any
// thread; an AgentConnection from one thread at a time).
#ifndef PCFS_PEERCTL_COMMAND_BACKEND_H_
#define PCFS_PEERCTL_COMMAND_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pcfs {

// `peerctl url NAME`'s answer: a curl command that downloads NAME from a
// holder (peerctl/download_url.h), good until `expiry` (the ticket's).
struct DownloadCommand {
  std::string command;
  absl::Time expiry;
};

class CommandBackend {
 public:
  virtual ~CommandBackend() = default;

  // The other active users.
  virtual absl::StatusOr<std::vector<std::string>> ListActivePeers() = 0;
  // This user's publications.
  virtual absl::StatusOr<std::vector<std::string>> ListPublished() = 0;
  // The names other active users publish that contain `pattern`.
  virtual absl::StatusOr<std::vector<std::string>> Search(
      absl::string_view pattern) = 0;
  // Publishes a file of the share folder.
  virtual absl::Status Publish(absl::string_view name) = 0;
  // NotFound if this user does not publish `name`.
  virtual absl::Status Unpublish(absl::string_view name) = 0;
  // Downloads `name` and returns the path it landed at; NotFound ("File not
  // found") if no one else publishes it. `cancel` (set from another thread
  // or a signal handler: Ctrl-C) ends it as Cancelled, leaving only the
  // hidden partial file a later get resumes from (peerctl/downloader.h);
  // `progress(bytes, total)` is called as bytes arrive. Either may be null, and
  // a backend that cannot honour them (the agent, which downloads in its own
  // process) says so in its header.
  virtual absl::StatusOr<std::string> Get(
      absl::string_view name, const std::atomic<bool>* cancel,
      std::function<void(uint64_t, uint64_t)> progress) = 0;
  // Asks the daemon for a holder of `name` and a ticket, and returns the
  // curl command that downloads it; errors as Get's GET step.
  virtual absl::StatusOr<DownloadCommand> MakeDownloadCommand(
      absl::string_view name) = 0;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_COMMAND_BACKEND_H_
