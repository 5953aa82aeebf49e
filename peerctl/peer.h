// Peer: one logged-in peerctl. It owns the control client, the file server
// that serves this user's published files, and the heartbeat thread; the
// shell and the script subcommands are thin layers over its commands.
//
// Thread-safety: the command methods may be called from any thread; the file
// server and the heartbeat thread call into the Peer concurrently with them.
#ifndef PCFS_PEERCTL_PEER_H_
#define PCFS_PEERCTL_PEER_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "peerctl/client.h"
#include "peerctl/command_backend.h"
#include "peerctl/file_hash.h"
#include "peerctl/file_server.h"

namespace pcfs {

struct PeerOptions {
  ControlClient::Options server;
  std::string share_dir = ".";     // what `pub` publishes and the server serves
  std::string download_dir = ".";  // where `get` puts files
  bool serve_files = true;         // one-shot commands serve nothing
  // Log the file server's transfer mode (TLS, kernel or userspace) once it
  // serves: the agent's journal shows it; the shell keeps its terminal to
  // the session.
  bool log_transfer_mode = true;
  // Serve plain HTTP and register a zero key pin (--plaintext-transfers:
  // trusted networks and benchmarks). Otherwise the file server speaks
  // TLS 1.3 with the identity kept at tls_identity_path.
  bool plaintext_transfers = false;
  std::string tls_identity_path;  // empty: DefaultTlsIdentityPath()
  // The hash store (peerctl/hash_store.h), read at the start and written
  // when files were hashed; empty: DefaultHashStorePath().
  std::string hash_store_path;
  // The longest a download may stall once connected (head, or next bytes);
  // the connect itself has DownloadRequest::connect_timeout (3 s).
  absl::Duration download_timeout = absl::Seconds(30);
};

class Peer : public CommandBackend {
 public:
  // Connects to the daemon and, if options.serve_files, starts the file
  // server (on an ephemeral TCP port, all addresses).
  static absl::StatusOr<std::unique_ptr<Peer>> Create(
      const PeerOptions& options);
  // Stops the heartbeat thread and the file server (it does not log out:
  // call Logout() first for a clean exit).
  ~Peer() override;

  // Logs in and starts heartbeats. Errors as ControlClient::Login. Set,
  // `interrupt` (a shell's Ctrl-C) ends the login's wait for the daemon
  // (Cancelled: not logged in), or, once logged in, the wait for the
  // start-up check of the files published earlier (which goes on in the
  // background): looked at every 100 ms.
  absl::Status Login(absl::string_view user, absl::string_view password,
                     const std::atomic<bool>* interrupt = nullptr);
  absl::Status Logout();
  // From any thread, at once: what Login waits for ends, and so do the
  // checker's request and read under way; StopHeartbeats (through Logout)
  // still joins the threads. For an agent told to stop during its start.
  void Interrupt();
  // Whether the session is live (false after a refused re-login, until the
  // next Login succeeds).
  bool logged_in() const { return client_->logged_in(); }
  // The daemon in use, "host:port" (it changes when the client moves to
  // another of its servers).
  std::string server_name() const { return client_->server_name(); }

  absl::StatusOr<std::vector<std::string>> ListActivePeers() override;
  absl::StatusOr<std::vector<std::string>> ListPublished() override;
  absl::StatusOr<std::vector<std::string>> Search(
      absl::string_view pattern) override;
  // Publishes a readable regular file of the share folder (its size and
  // SHA-256 go to the daemon). InvalidArgument for a malformed name,
  // NotFound / PermissionDenied / FailedPrecondition for a file that is
  // missing, unreadable or not regular.
  absl::Status Publish(absl::string_view name) override;
  absl::Status Unpublish(absl::string_view name) override;
  // The names this user publishes, as last learnt (no exchange with the
  // daemon: for the shell's Tab completion).
  std::vector<std::string> KnownPublications() const;
  // Downloads `name` from an active holder into the download folder and
  // returns the path it landed at. A file of that name there already is
  // never overwritten: if it is the published file (its size and Merkle
  // root are the ones the daemon announces: a user who shares and downloads
  // in one folder, say), nothing is transferred and its path is returned;
  // otherwise AlreadyExists. NotFound ("File not found") if no one else
  // publishes it.
  // `cancel` and `progress`, if not null, as DownloadRequest's (Ctrl-C in
  // the shell; its progress line): Cancelled when cancelled, with nothing
  // left in the folder. The download ends by options.server.deadline too.
  absl::StatusOr<std::string> Get(
      absl::string_view name, const std::atomic<bool>* cancel,
      std::function<void(uint64_t, uint64_t)> progress) override;
  // As Get, into `download_dir` instead of the options' folder (the agent
  // downloads into the folder of the command that asked).
  absl::StatusOr<std::string> GetInto(
      absl::string_view name, const std::string& download_dir,
      const std::atomic<bool>* cancel = nullptr,
      const std::function<void(uint64_t, uint64_t)>& progress = nullptr);
  absl::StatusOr<DownloadCommand> MakeDownloadCommand(
      absl::string_view name) override;

 private:
  explicit Peer(const PeerOptions& options);
  void HeartbeatLoop();
  // Stops and joins the heartbeat and checker threads (idempotent; one
  // caller at a time).
  void StopHeartbeats();
  // The checker thread: checks each publication of an unknown version
  // (published before this process started) when ListPublished finds one,
  // each one whose file a download found to be another than the one last
  // judged (CheckPublishedVersion), and again every kRecheckInterval while
  // one could not be checked.
  void CheckerLoop();
  // Asks the checker thread for a pass (after the one under way, if any).
  void WantCheck();
  // One pass over the publications to check; false if one could not be
  // checked for now (the daemon did not answer).
  bool CheckUncheckedPublications();
  // The file server's authorizer: only names this user publishes.
  absl::Status AuthorizeDownload(absl::string_view name,
                                 absl::string_view ticket);
  // The file server's file check: a published file goes out only as the
  // version published (Aborted, so 409 Conflict, otherwise): the one this
  // process hashed at `pub`, or the one the checker thread found to have
  // the size and root the daemon holds, for a file published before this
  // process started (Unavailable, so 503, until it has looked) or one found
  // to be another file than the version last judged. That other file is
  // refused at once if its size is not the published one; if it is, it is
  // handed to the checker and answered 503 until read: a file put back as
  // it was published (restored from a copy, say) is served again then.
  absl::Status CheckPublishedVersion(absl::string_view name,
                                     const FileIdentity& identity);

  // Reads the hash store into hashes_ (the checker, as it starts); a store
  // that cannot be used is logged. SaveHashes writes it if files were
  // hashed since it was last written; a failure is logged.
  void LoadHashes();
  void SaveHashes();

  const PeerOptions options_;
  std::unique_ptr<ControlClient> client_;
  std::unique_ptr<FileServer> server_;
  FileHashCache hashes_;
  std::string hash_store_path_;
  std::mutex hash_store_mu_;
  uint64_t hashes_saved_at_ = 0;  // hashes_.files_read(); by hash_store_mu_

  // Plain std primitives, not absl::Notification: Debian's abseil is not
  // TSan-instrumented (see core/base/mutex_lock.h).
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;      // guarded by stop_mu_
  bool check_wanted_ = false;  // guarded by stop_mu_
  bool checking_ = false;      // guarded by stop_mu_: a pass is running
  bool list_wanted_ = false;   // guarded by stop_mu_: fetch the names
  // stopping_, for the checker's STAT and hashing to look at (between
  // retransmissions, between chunks): `xit` waits for neither.
  std::atomic<bool> stop_checking_{false};
  // The file the checker is hashing is no longer to be checked (published
  // again or withdrawn meanwhile), or stop_checking_: its read stops.
  std::atomic<bool> skip_file_{false};
  std::thread heartbeat_;
  std::thread checker_;

  // What this process knows of the file a name was published as.
  struct PublishedVersion {
    enum class State : uint8_t {
      kUnchecked,   // published before this process started: not yet known
      kKnown,       // `identity` is the version published
      kChanged,     // the file (`identity`; none if gone) is not that version
      kRechecking,  // was known or changed, and a download found another
                    // file (`identity`) of the published size, which the
                    // checker compares with the publication (503 meanwhile)
    };
    State state = State::kUnchecked;
    FileIdentity identity{};
    // The size the daemon holds for the publication, once known (`pub`, or
    // the checker's STAT).
    std::optional<uint64_t> published_size;
    // kChanged because the daemon no longer has the publication: no file
    // makes it served (ListPublished drops the name when it next runs).
    bool withdrawn = false;
    // A "not serving" warning was logged for it, and no "serving again"
    // since: its return to kKnown is said.
    bool said_refused = false;
  };
  static bool NeedsCheck(PublishedVersion::State state) {
    return state == PublishedVersion::State::kUnchecked ||
           state == PublishedVersion::State::kRechecking;
  }
  // The names this user publishes, as last learnt from the daemon, each
  // with what is known of its version.
  mutable absl::Mutex published_mu_;
  absl::flat_hash_map<std::string, PublishedVersion> published_
      ABSL_GUARDED_BY(published_mu_);
  // Whether published_ was learnt from the daemon at all: until then a
  // download is answered 503 (not 404: the name may well be published).
  bool list_known_ ABSL_GUARDED_BY(published_mu_) = false;
  // The name whose file the checker is hashing; empty between files.
  std::string checking_name_ ABSL_GUARDED_BY(published_mu_);
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_PEER_H_
