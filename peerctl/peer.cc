#include "peerctl/peer.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/auth/ticket.h"
#include "core/base/log.h"
#include "core/base/mutex_lock.h"
#include "core/base/names.h"
#include "core/base/thread_name.h"
#include "core/proto/merkle.h"
#include "peerctl/download_url.h"
#include "peerctl/downloader.h"
#include "peerctl/exit_codes.h"
#include "peerctl/hash_store.h"
#include "peerctl/tls.h"

namespace pcfs {

Peer::Peer(const PeerOptions& options) : options_(options) {}

Peer::~Peer() {
  StopHeartbeats();
  SaveHashes();
}

void Peer::LoadHashes() {
  if (std::string warning = LoadHashStoreInto(hash_store_path_, hashes_);
      !warning.empty()) {
    LogWarning("peerctl: ", warning);
  }
}

void Peer::SaveHashes() {
  std::lock_guard<std::mutex> lock(hash_store_mu_);
  const uint64_t read = hashes_.files_read();
  if (read == hashes_saved_at_) return;
  hashes_saved_at_ = read;
  if (std::string warning = SaveHashStoreFrom(hash_store_path_, hashes_);
      !warning.empty()) {
    LogWarning("peerctl: ", warning);
  }
}

void Peer::Interrupt() {
  // A heartbeat retransmitting under loss ends at once, so that a logout
  // (`xit`, the end of a one-shot command) does not wait for it; so do the
  // checker's STAT and read.
  if (client_ != nullptr) client_->StopHeartbeats();
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_checking_.store(true);
  skip_file_.store(true);
  stop_cv_.notify_all();
}

void Peer::StopHeartbeats() {
  Interrupt();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (checker_.joinable()) checker_.join();
}

namespace {

// Sleeps `wait`, looking at `cancel` (may be null) every 100 ms; false if
// it was set.
bool SleepUnlessCancelled(absl::Duration wait,
                          const std::atomic<bool>* cancel) {
  const absl::Time end = absl::Now() + wait;
  for (absl::Time now = absl::Now(); now < end; now = absl::Now()) {
    if (cancel != nullptr && cancel->load()) return false;
    absl::SleepFor(std::min(end - now, absl::Milliseconds(100)));
  }
  return cancel == nullptr || !cancel->load();
}

// Why a published file is not served, once it is known not to be the
// version published (the checker, or a download finding another size).
constexpr char kChangedSincePublished[] =
    "it changed since it was published (publish it again, or put back the "
    "version published)";

// The file server's TLS context, with the identity of the state folder.
absl::StatusOr<std::shared_ptr<TlsServerContext>> LoadTlsContext(
    const PeerOptions& options) {
  const std::string path = options.tls_identity_path.empty()
                               ? DefaultTlsIdentityPath()
                               : options.tls_identity_path;
  if (path.empty()) {
    return absl::FailedPreconditionError(
        "no state folder for the TLS identity: set XDG_STATE_HOME or HOME "
        "(or serve with --plaintext-transfers)");
  }
  absl::StatusOr<TlsIdentity> identity = TlsIdentity::LoadOrCreate(path);
  if (!identity.ok()) {
    return absl::Status(identity.status().code(),
                        absl::StrCat("cannot load the TLS identity: ",
                                     identity.status().message()));
  }
  return TlsServerContext::Create(*identity);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Peer>> Peer::Create(const PeerOptions& options) {
  std::unique_ptr<Peer> peer(new Peer(options));
  peer->hash_store_path_ = options.hash_store_path.empty()
                               ? DefaultHashStorePath()
                               : options.hash_store_path;
  absl::StatusOr<std::unique_ptr<ControlClient>> client =
      ControlClient::Connect(options.server);
  if (!client.ok()) return client.status();
  peer->client_ = *std::move(client);
  if (options.serve_files) {
    FileServer::Options server;
    server.share_dir = options.share_dir;
    absl::StatusOr<SocketAddress> any = SocketAddress::FromNumeric("::", 0);
    if (!any.ok()) return any.status();
    server.bind = *any;
    Peer* self = peer.get();
    server.authorizer = [self](absl::string_view name,
                               absl::string_view ticket) {
      return self->AuthorizeDownload(name, ticket);
    };
    if (!options.plaintext_transfers) {
      absl::StatusOr<std::shared_ptr<TlsServerContext>> tls =
          LoadTlsContext(options);
      if (!tls.ok()) return tls.status();
      // Every login (and re-login) registers the key's pin.
      peer->client_->SetKeyPin((*tls)->pin());
      server.tls = *std::move(tls);
    }
    // From the cache that `pub` and the checker filled, never by reading
    // the file: this runs on the file server's thread, which a large file's
    // read would hold for seconds. The version is checked first (503 while
    // unchecked, 409 once changed); leaves the cache no longer holds are
    // not found, and the downloader takes the whole file instead.
    server.leaf_source =
        [self](absl::string_view name) -> absl::StatusOr<std::string> {
      FileIdentity version;
      absl::StatusOr<std::optional<FileInfo>> info =
          self->hashes_.Cached(self->options_.share_dir, name, &version);
      if (!info.ok()) return info.status();
      if (absl::Status s = self->CheckPublishedVersion(name, version);
          !s.ok()) {
        return s;
      }
      if (!info->has_value()) {
        return absl::NotFoundError(
            absl::StrCat("the leaves of ", name, " are not at hand"));
      }
      return MerkleLeavesToBytes((*info)->leaves);
    };
    server.file_check = [self](absl::string_view name,
                               const struct stat& info) {
      return self->CheckPublishedVersion(name, IdentityOf(info));
    };
    absl::StatusOr<std::unique_ptr<FileServer>> started =
        FileServer::Start(std::move(server));
    if (!started.ok()) {
      return absl::Status(started.status().code(),
                          absl::StrCat("cannot start the file server: ",
                                       started.status().message()));
    }
    peer->server_ = *std::move(started);
    if (options.log_transfer_mode) {
      Log("peerctl: file server: ", peer->server_->transfer_mode());
    }
  }
  return peer;
}

absl::Status Peer::Login(absl::string_view user, absl::string_view password,
                         const std::atomic<bool>* interrupt) {
  if (absl::Status s = ValidateUserName(user); !s.ok()) return s;
  if (absl::Status s = ValidatePassword(password); !s.ok()) return s;
  const uint16_t port = server_ != nullptr ? server_->port() : 0;
  if (absl::Status s = client_->Login(user, password, port, interrupt);
      !s.ok()) {
    return s;
  }
  // At once: a large `get` outlasts the session timeout (one-shot commands
  // heartbeat too), and so may the check below.
  if (!heartbeat_.joinable()) {
    heartbeat_ = std::thread([this] {
      NameThisThread("heartbeat");
      HeartbeatLoop();
    });
  }
  // The file server serves only names this user publishes: the checker
  // thread learns those published in earlier sessions, asking until the
  // daemon answers (503 meanwhile), and checks them. (While this session
  // lives, no other session of the user can publish: one session per
  // user.)
  if (server_ != nullptr) {
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      list_wanted_ = true;
    }
    stop_cv_.notify_all();
    if (!checker_.joinable()) {
      checker_ = std::thread([this] {
        NameThisThread("checker");
        CheckerLoop();
      });
    }
    // Small files are checked before the session is put to use; larger
    // ones go on in the background (answered 503 until checked).
    constexpr absl::Duration kCheckWait = absl::Seconds(2);
    // In slices, for `interrupt` (set by a signal handler, which cannot
    // notify the condition variable).
    constexpr absl::Duration kSlice = absl::Milliseconds(100);
    const absl::Time end = absl::Now() + kCheckWait;
    std::unique_lock<std::mutex> lock(stop_mu_);
    for (absl::Time now = absl::Now(); now < end; now = absl::Now()) {
      if (interrupt != nullptr && interrupt->load()) break;
      if (stop_cv_.wait_for(
              lock, absl::ToChronoMilliseconds(std::min(kSlice, end - now)),
              [this] {
                return stopping_ ||
                       (!list_wanted_ && !check_wanted_ && !checking_);
              })) {
        break;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Peer::Logout() {
  StopHeartbeats();
  return client_->Logout();
}

void Peer::HeartbeatLoop() {
  // The client tells each change of the session's state itself (lost,
  // logged in again, refused, daemon silent); a refused login makes the
  // wait the client's growing pause instead of the heartbeat interval.
  std::unique_lock<std::mutex> lock(stop_mu_);
  while (!stop_cv_.wait_for(
      lock, absl::ToChronoMilliseconds(client_->NextHeartbeatIn()),
      [this] { return stopping_; })) {
    lock.unlock();
    client_->Heartbeat().IgnoreError();
    lock.lock();
  }
}

absl::StatusOr<std::vector<std::string>> Peer::ListActivePeers() {
  return client_->ListActivePeers();
}

absl::StatusOr<std::vector<std::string>> Peer::ListPublished() {
  absl::StatusOr<std::vector<std::string>> names = client_->ListPublished();
  if (!names.ok()) return names;
  bool unchecked = false;
  {
    MutexLock lock(&published_mu_);
    // The daemon's names, each with what is known of its version (nothing
    // yet of one published before this process started).
    absl::flat_hash_map<std::string, PublishedVersion> now;
    for (const std::string& name : *names) {
      auto it = published_.find(name);
      if (it == published_.end()) {
        now[name] = PublishedVersion{};
        unchecked = true;
      } else {
        now[name] = it->second;
      }
    }
    published_ = std::move(now);
    list_known_ = true;
  }
  if (unchecked && server_ != nullptr) WantCheck();
  return names;
}

void Peer::WantCheck() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    check_wanted_ = true;
  }
  stop_cv_.notify_all();
}

void Peer::CheckerLoop() {
  // While the daemon does not answer, the unchecked ones wait this long
  // for the next try (and are answered 503 meanwhile).
  constexpr absl::Duration kRecheckInterval = absl::Seconds(2);
  // Here, not before the login: a large store takes a moment to read.
  LoadHashes();
  std::unique_lock<std::mutex> lock(stop_mu_);
  for (;;) {
    stop_cv_.wait(
        lock, [this] { return stopping_ || list_wanted_ || check_wanted_; });
    if (stopping_) return;
    if (list_wanted_) {
      lock.unlock();
      // Sets check_wanted_ if there is anything to check.
      const bool listed = ListPublished().ok();
      lock.lock();
      if (listed) {
        list_wanted_ = false;
        stop_cv_.notify_all();
      } else if (!stopping_) {
        // The daemon did not answer: again later.
        stop_cv_.wait_for(lock, absl::ToChronoMilliseconds(kRecheckInterval),
                          [this] { return stopping_; });
      }
      continue;
    }
    check_wanted_ = false;
    checking_ = true;
    lock.unlock();
    const bool done = CheckUncheckedPublications();
    // What the pass hashed is not read again at the next start.
    if (done) SaveHashes();
    lock.lock();
    checking_ = false;
    stop_cv_.notify_all();
    if (!done && !stopping_ &&
        !stop_cv_.wait_for(lock, absl::ToChronoMilliseconds(kRecheckInterval),
                           [this] { return stopping_; })) {
      check_wanted_ = true;
    }
  }
}

bool Peer::CheckUncheckedPublications() {
  std::vector<std::string> names;
  {
    MutexLock lock(&published_mu_);
    for (const auto& [name, version] : published_) {
      if (NeedsCheck(version.state)) names.push_back(name);
    }
  }
  // Smallest first, then by name: the small files are served within
  // moments of the start, not after a large one's read. A name that cannot
  // be looked at sorts first, and its check says why.
  const auto in_folder = [&](const std::string& name, uint64_t* size) {
    struct stat info {};
    if (::stat(absl::StrCat(options_.share_dir, "/", name).c_str(), &info) !=
        0) {
      return false;
    }
    if (size != nullptr) *size = static_cast<uint64_t>(info.st_size);
    return true;
  };
  struct Candidate {
    uint64_t size = 0;
    std::string name;
    bool there = false;  // when the pass began
    bool operator<(const Candidate& other) const {
      return std::tie(size, name) < std::tie(other.size, other.name);
    }
  };
  std::vector<Candidate> candidates;
  candidates.reserve(names.size());
  for (std::string& name : names) {
    Candidate candidate;
    candidate.there = in_folder(name, &candidate.size);
    candidate.name = std::move(name);
    candidates.push_back(std::move(candidate));
  }
  std::sort(candidates.begin(), candidates.end());
  // Files no longer in the share folder are said in one line (naming the
  // first few), not one line each: those gone at the start sort first, and
  // are said before the first file that is there is read.
  std::vector<std::string> missing;
  const auto say_missing = [&] {
    if (missing.empty()) return;
    constexpr size_t kNamed = 5;
    std::string named;
    for (size_t i = 0; i < missing.size() && i < kNamed; ++i) {
      absl::StrAppend(&named, i == 0 ? "" : ", ", missing[i]);
    }
    if (missing.size() > kNamed) {
      absl::StrAppend(&named, " and ", missing.size() - kNamed, " more");
    }
    LogWarning("peerctl: not serving ", missing.size(),
               missing.size() == 1 ? " file" : " files",
               " published earlier and no longer in the share folder (", named,
               "): put ", missing.size() == 1 ? "it" : "them",
               " back as published, or publish ",
               missing.size() == 1 ? "it" : "them", " again");
    missing.clear();
  };
  for (const Candidate& candidate : candidates) {
    const std::string& name = candidate.name;
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      if (stopping_) return true;
    }
    // What the daemon holds, then the file as it is now (hashed into the
    // cache that the leaves are served from).
    absl::StatusOr<protocol::StatReply> published =
        client_->Stat(name, &stop_checking_);
    if (absl::IsCancelled(published.status())) return true;  // stopping
    PublishedVersion checked;
    std::string why;
    bool gone = false;
    if (absl::IsNotFound(published.status())) {
      // No longer published: ListPublished drops it when it next runs.
      checked.state = PublishedVersion::State::kChanged;
      checked.withdrawn = true;
      why = "it is no longer published";
    } else if (!published.ok()) {
      say_missing();
      return false;  // the daemon did not answer: later
    } else {
      checked.published_size = published->size;
      // The gone ones sort first (no size): said before a long read.
      if (candidate.there) say_missing();
      {
        MutexLock lock(&published_mu_);
        auto it = published_.find(name);
        if (it == published_.end() || !NeedsCheck(it->second.state)) {
          continue;  // published again or withdrawn meanwhile
        }
        checking_name_ = name;
        skip_file_.store(stop_checking_.load());
      }
      FileIdentity version;
      absl::StatusOr<FileInfo> now =
          hashes_.Hash(options_.share_dir, name, &version, &skip_file_);
      // The file judged, changed or not: a download that finds another
      // one has it checked again (CheckPublishedVersion).
      checked.identity = version;
      {
        MutexLock lock(&published_mu_);
        checking_name_.clear();
      }
      if (absl::IsCancelled(now.status())) {
        if (stop_checking_.load()) return true;  // stopping
        continue;  // published again or withdrawn meanwhile
      } else if (absl::IsNotFound(now.status()) ||
                 (now.ok() && !in_folder(name, nullptr))) {
        // Not there, or removed while it was read (the read went on
        // through the open file): gone either way.
        checked.state = PublishedVersion::State::kChanged;
        checked.identity = FileIdentity{};  // none: any file put back differs
        gone = true;
      } else if (absl::IsAborted(now.status())) {
        checked.state = PublishedVersion::State::kChanged;
        why =
            "it changed while it was checked (publish it again once it is "
            "done changing)";
      } else if (!now.ok()) {
        checked.state = PublishedVersion::State::kChanged;
        why = absl::StrCat("cannot read it (", now.status().message(),
                           "; publish it again)");
      } else if (now->size != published->size || now->root != published->root) {
        checked.state = PublishedVersion::State::kChanged;
        why = kChangedSincePublished;
      } else {
        checked.state = PublishedVersion::State::kKnown;
      }
    }
    bool back = false;
    {
      MutexLock lock(&published_mu_);
      auto it = published_.find(name);
      // Published again (or withdrawn) meanwhile: that version stands.
      if (it == published_.end() || !NeedsCheck(it->second.state)) continue;
      if (checked.state == PublishedVersion::State::kKnown) {
        // Refused before and said so: it is served again, which is said.
        back = it->second.said_refused;
      } else {
        checked.said_refused = true;  // said below
      }
      it->second = checked;
    }
    if (!why.empty()) LogWarning("peerctl: not serving ", name, ": ", why);
    if (back) {
      Log("peerctl: serving ", name,
          " again: the file is the version published once more");
    }
    if (gone) missing.push_back(name);
  }
  say_missing();
  return true;
}

absl::StatusOr<std::vector<std::string>> Peer::Search(
    absl::string_view pattern) {
  if (absl::Status s = ValidateSearchPattern(pattern); !s.ok()) return s;
  return client_->Search(pattern);
}

absl::Status Peer::Publish(absl::string_view name) {
  if (absl::Status s = ValidateFileName(name); !s.ok()) return s;
  {
    // The publication this one replaces is not checked any more: its read
    // would only compete with this one's.
    MutexLock lock(&published_mu_);
    if (checking_name_ == name) skip_file_.store(true);
  }
  FileIdentity version;
  // What this process hashed is taken as it is; another run's hash (from
  // the hash store) is not: the file is read again.
  absl::StatusOr<FileInfo> info =
      hashes_.Hash(options_.share_dir, name, &version, nullptr,
                   /*reread_added=*/true);
  if (!info.ok()) {
    return absl::Status(
        info.status().code(),
        absl::StrCat("cannot publish ", name, ": ", info.status().message()));
  }
  if (absl::Status s = client_->Publish(name, info->size, info->root);
      !s.ok()) {
    return s;
  }
  {
    MutexLock lock(&published_mu_);
    published_[name] = {.state = PublishedVersion::State::kKnown,
                        .identity = version,
                        .published_size = info->size};
  }
  // A large file's hash is kept at once, not only at the end of the run:
  // an agent may run for weeks, and end without a clean stop.
  constexpr uint64_t kSaveAtOnceBytes = uint64_t{256} << 20;
  if (info->size >= kSaveAtOnceBytes) SaveHashes();
  return absl::OkStatus();
}

std::vector<std::string> Peer::KnownPublications() const {
  MutexLock lock(&published_mu_);
  std::vector<std::string> names;
  names.reserve(published_.size());
  for (const auto& [name, version] : published_) names.push_back(name);
  return names;
}

absl::Status Peer::Unpublish(absl::string_view name) {
  if (absl::Status s = ValidateFileName(name); !s.ok()) return s;
  // Stop serving first: a download must never start after `unp` returned.
  // A check of the file under way stops too.
  {
    MutexLock lock(&published_mu_);
    published_.erase(std::string(name));
    if (checking_name_ == name) skip_file_.store(true);
  }
  return client_->Unpublish(name);
}

absl::StatusOr<std::string> Peer::Get(
    absl::string_view name, const std::atomic<bool>* cancel,
    std::function<void(uint64_t, uint64_t)> progress) {
  return GetInto(name, options_.download_dir, cancel, progress);
}

absl::StatusOr<std::string> Peer::GetInto(
    absl::string_view name, const std::string& download_dir,
    const std::atomic<bool>* cancel,
    const std::function<void(uint64_t, uint64_t)>& progress) {
  if (absl::Status s = ValidateFileName(name); !s.ok()) return s;
  // A download folder that is not there is the command's setting (exit 2),
  // said before anything is asked of the daemon or a holder.
  struct stat st;
  if (::stat(download_dir.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the download folder ", download_dir, ": ", std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the download folder ", download_dir, " is no folder"));
  }
  const std::string target = absl::StrCat(download_dir, "/", name);
  if (::lstat(target.c_str(), &st) == 0) {
    // Done already if it is the published file; left alone if not.
    absl::StatusOr<FileLocation> location = client_->Get(name);
    if (!location.ok()) return location.status();
    if (S_ISREG(st.st_mode) &&
        static_cast<uint64_t>(st.st_size) == location->size) {
      absl::StatusOr<FileInfo> here = hashes_.Hash(download_dir, name);
      if (here.ok() && here->size == location->size &&
          here->root == location->root) {
        return target;
      }
    }
    return absl::AlreadyExistsError(
        absl::StrCat(target,
                     " already exists and is not the published file; "
                     "not overwriting it"));
  }
  absl::Status failed;
  // A holder that logged in again since the daemon issued the ticket has a
  // new key and refuses the ticket: ask the daemon once more. A busy one
  // (every holder answered 503: its download slots taken, or the file being
  // checked against its publication) is waited out a few times, within the
  // --timeout: 1 + 2 + 2 + 2 + 2 s at the most, then its error stands.
  constexpr absl::Duration kBusyWaits[] = {absl::Seconds(1), absl::Seconds(2),
                                           absl::Seconds(2), absl::Seconds(2),
                                           absl::Seconds(2)};
  size_t busy_waits = 0;
  for (int attempt = 0; attempt < 2;) {
    absl::StatusOr<FileLocation> location = client_->Get(name);
    if (!location.ok()) return location.status();
    DownloadRequest request;
    request.holder = location->address;
    request.name = std::string(name);
    request.ticket = location->ticket;
    request.holder_pin = location->key_pin;
    request.holder_name = location->holder;
    request.destination_dir = download_dir;
    request.expected_size = location->size;
    request.expected_root = location->root;
    request.timeout = options_.download_timeout;
    request.deadline = options_.server.deadline;
    request.cancel = cancel;
    request.progress = progress;
    for (const HolderLocation& other : location->others) {
      request.other_holders.push_back(
          {other.address, other.ticket, other.key_pin, other.holder});
    }
    absl::Status s = Download(request);
    if (s.ok()) return target;
    if (absl::IsCancelled(s)) return s;
    // Not the holder's doing: said as the folder's, and not asked again.
    if (IsFolderFailure(s)) {
      return MarkFolderFailure(absl::Status(
          s.code(), absl::StrCat("cannot download ", name, " into ",
                                 download_dir, ": ", s.message())));
    }
    // Not a holder that is down: the message says what happened.
    if (IsKeyMismatch(s)) return s;
    // The command's --timeout ran out: its own exit code (5), as for any
    // command, whatever the holder was doing.
    if (absl::IsDeadlineExceeded(s) &&
        request.deadline != absl::InfiniteFuture() &&
        absl::Now() >= request.deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(s.message(), " (the --timeout ran out)"));
    }
    // Marked, so that a holder that is down or busy has an exit code of its
    // own, apart from a daemon that does not answer.
    // With several holders the message names each (and why it failed).
    const std::string from =
        location->others.empty()
            ? absl::StrCat("download from ", location->holder, " failed: ")
            : "download failed: ";
    failed = MarkHolderFailure(
        absl::Status(s.code(), absl::StrCat(from, s.message())));
    if (IsHolderBusy(s) && busy_waits < std::size(kBusyWaits)) {
      const absl::Duration wait = kBusyWaits[busy_waits++];
      // Not past the --timeout: its error would say less than this one.
      if (absl::Now() + wait >= request.deadline) break;
      Log("peerctl: ", name, ": ",
          location->others.empty()
              ? absl::StrCat("holder ", location->holder, " is")
              : std::string("every holder is"),
          " busy; trying again in ", absl::FormatDuration(wait));
      if (!SleepUnlessCancelled(wait, cancel)) {
        return absl::CancelledError(
            absl::StrCat("the download of ", name, " was cancelled"));
      }
      continue;
    }
    if (!absl::IsUnauthenticated(s)) break;
    ++attempt;
  }
  return failed;
}

absl::StatusOr<DownloadCommand> Peer::MakeDownloadCommand(
    absl::string_view name) {
  if (absl::Status s = ValidateFileName(name); !s.ok()) return s;
  absl::StatusOr<FileLocation> location = client_->Get(name);
  if (!location.ok()) return location.status();
  absl::StatusOr<absl::Time> expiry = TicketExpiry(location->ticket);
  if (!expiry.ok()) return expiry.status();
  return DownloadCommand{FormatCurlCommand(name, *location), *expiry};
}

absl::Status Peer::CheckPublishedVersion(absl::string_view name,
                                         const FileIdentity& identity) {
  using State = PublishedVersion::State;
  // 503: not known yet to be the version published or not.
  const auto being_checked = [name] {
    return absl::UnavailableError(
        absl::StrCat(name, " is being checked against its publication"));
  };
  bool changed = false;
  bool say_changed = false;
  {
    MutexLock lock(&published_mu_);
    auto it = published_.find(name);
    // Not published: the authorizer refused it already.
    if (it == published_.end()) return absl::OkStatus();
    PublishedVersion& version = it->second;
    switch (version.state) {
      case State::kUnchecked:
        return being_checked();
      case State::kKnown:
        if (version.identity == identity) return absl::OkStatus();
        break;  // another file than the one published: checked below
      case State::kChanged:
        // The checker said so of this very file (or the daemon no longer
        // has the publication, which no file changes).
        if (version.withdrawn || version.identity == identity) {
          return absl::AbortedError(
              absl::StrCat(name, " is not the version published"));
        }
        break;  // another file again: it may be the one published
      case State::kRechecking:
        if (version.identity == identity) return being_checked();
        break;  // changed again while it waited for the checker
    }
    changed = version.published_size.has_value() &&
              identity.size != *version.published_size;
    if (changed) {
      // Not the version published, whatever its bytes: refused at once,
      // with nothing to read; this very file is refused again as changed.
      say_changed = !version.said_refused;
      version.state = State::kChanged;
      version.said_refused = true;
      if (checking_name_ == name) skip_file_.store(true);  // its read is moot
    } else {
      // It may be the version published (put back): the checker reads it,
      // and serves it again if it has the size and root the daemon holds,
      // else says why it does not; "try again in a moment" meanwhile. The
      // checker reads it only once a download asked for it, and once per
      // file found: a file that keeps changing is read again only as often
      // as it is asked for.
      version.state = State::kRechecking;
    }
    version.identity = identity;
  }
  if (changed) {
    if (say_changed) {
      LogWarning("peerctl: not serving ", name, ": ", kChangedSincePublished);
    }
    return absl::AbortedError(
        absl::StrCat(name, " changed since it was published"));
  }
  WantCheck();
  return being_checked();
}

absl::Status Peer::AuthorizeDownload(absl::string_view name,
                                     absl::string_view ticket) {
  if (ticket.empty()) {
    return absl::UnauthenticatedError("a download needs a ticket");
  }
  // A daemon issued the ticket with this session's ticket key (derived
  // from the session key: any daemon of a cluster may issue it), for this
  // holder and this name; it says nothing of whether we still publish the
  // name. The derivation is two HMACs, next to nothing beside a transfer.
  absl::StatusOr<TicketClaims> claims =
      VerifyTicket(TicketKeyFor(client_->session_key()), client_->user(),
                   ticket, name, absl::Now());
  if (!claims.ok()) return claims.status();
  MutexLock lock(&published_mu_);
  if (!list_known_) {
    return absl::UnavailableError(
        "the names this user publishes are not known yet");
  }
  if (!published_.contains(name)) {
    return absl::NotFoundError("not published");
  }
  return absl::OkStatus();
}

}  // namespace pcfs
