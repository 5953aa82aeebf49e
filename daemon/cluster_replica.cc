#include "daemon/cluster_replica.h"

#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "core/base/log.h"
#include "core/base/mutex_lock.h"

namespace pcfs {

ClusterReplica::ClusterReplica(Registry* registry, std::string own_daemon_id,
                               std::function<absl::Time()> now)
    : registry_(registry),
      own_daemon_id_(std::move(own_daemon_id)),
      now_(std::move(now)) {}

void ClusterReplica::AddRemote(const ClusterSession& session) {
  // A new session of a user the replica knows under another id replaces
  // it (the registry replaces its presence the same way).
  if (auto it = by_user_.find(session.user);
      it != by_user_.end() && it->second != session.session_id) {
    by_id_.erase(it->second);
    by_user_.erase(it);
  }
  Registry::RemoteSession remote;
  remote.user = session.user;
  remote.id = session.session_id;
  remote.file_server = session.file_server;
  remote.key_pin = session.key_pin;
  if (absl::Status s = registry_->AddRemoteSession(remote, now_()); !s.ok()) {
    // The registry has no remote session of the user now (an older one
    // was dropped before the clash), and neither have the maps.
    ++stats_.conflicts;
    if (absl::IsFailedPrecondition(s)) {
      set_aside_[session.user] = session;
      LogWarning("cluster: the session of ", session.user, " on daemon ",
                 session.daemon_id, " waits: ", s.message());
    } else {
      LogWarning("cluster: not applying the session of ", session.user,
                 " on daemon ", session.daemon_id, ": ", s.message());
    }
    return;
  }
  set_aside_.erase(session.user);
  by_id_[session.session_id] =
      RemoteEntry{session.user, TicketKey{session.ticket_key}};
  by_user_[session.user] = session.session_id;
}

void ClusterReplica::RemoveRemote(absl::string_view user, uint64_t session_id) {
  if (auto aside = set_aside_.find(user);
      aside != set_aside_.end() && aside->second.session_id == session_id) {
    set_aside_.erase(aside);
  }
  auto it = by_id_.find(session_id);
  if (it == by_id_.end() || it->second.user != user) return;
  registry_->RemoveRemoteSession(user, session_id);
  by_user_.erase(it->second.user);
  by_id_.erase(it);
}

void ClusterReplica::NoteReleased(const Registry::LocalSession& session) {
  if (released_own_.emplace(session.id, session).second) {
    ++stats_.own_sessions_released;
  }
}

void ClusterReplica::ApplyEvent(const ClusterEvent& event) {
  MutexLock lock(&mu_);
  ++stats_.events;
  switch (event.kind) {
    case ClusterEvent::Kind::kLogin:
      // This daemon's own sessions are local in the registry already.
      if (event.session.daemon_id == own_daemon_id_) return;
      AddRemote(event.session);
      return;
    case ClusterEvent::Kind::kLogout:
      if (event.session.daemon_id == own_daemon_id_) {
        // Not held here: the release this daemon wrote when the session
        // ended (or a repeat). Held: another daemon released it.
        if (std::optional<Registry::LocalSession> own =
                registry_->FindLocalSession(event.session.user,
                                            event.session.session_id)) {
          NoteReleased(*own);
        }
        return;
      }
      RemoveRemote(event.session.user, event.session.session_id);
      return;
    case ClusterEvent::Kind::kPublish:
      registry_->Publish(event.session.user, event.name, event.meta);
      return;
    case ClusterEvent::Kind::kUnpublish:
      // NotFound: applied already (this daemon's own, or a repeat).
      registry_->Unpublish(event.session.user, event.name).IgnoreError();
      return;
  }
}

void ClusterReplica::ApplySnapshot(const ClusterSnapshot& snapshot) {
  MutexLock lock(&mu_);
  ++stats_.snapshots;

  // Presence: the remote sessions become exactly the snapshot's (those
  // that meet a local session are set aside again).
  set_aside_.clear();
  absl::flat_hash_set<uint64_t> kept;
  absl::flat_hash_set<uint64_t> own;
  for (const ClusterSession& session : snapshot.sessions) {
    (session.daemon_id == own_daemon_id_ ? own : kept)
        .insert(session.session_id);
  }
  for (const Registry::LocalSession& session : registry_->LocalSessions()) {
    if (!own.contains(session.id)) NoteReleased(session);
  }
  std::vector<std::pair<std::string, uint64_t>> gone;
  for (const auto& [id, entry] : by_id_) {
    if (!kept.contains(id)) gone.emplace_back(entry.user, id);
  }
  for (const auto& [user, id] : gone) RemoveRemote(user, id);
  for (const ClusterSession& session : snapshot.sessions) {
    if (session.daemon_id == own_daemon_id_) continue;
    AddRemote(session);
  }

  // Publications: the snapshot's are set (Publish changes only what
  // differs), and every other one goes.
  using Key = std::pair<std::string, std::string>;
  absl::flat_hash_set<Key> stored;
  stored.reserve(snapshot.publications.size());
  for (const PublicationChange& change : snapshot.publications) {
    if (change.kind != PublicationChange::Kind::kPublish) continue;
    stored.insert(Key(change.user, change.name));
  }
  std::vector<Key> missing;
  registry_->ForEachPublication(
      [&](absl::string_view user, absl::string_view name, const FileMeta&) {
        Key key{std::string(user), std::string(name)};
        if (!stored.contains(key)) missing.push_back(std::move(key));
      });
  for (const auto& [user, name] : missing) {
    registry_->Unpublish(user, name).IgnoreError();
  }
  for (const PublicationChange& change : snapshot.publications) {
    if (change.kind != PublicationChange::Kind::kPublish) continue;
    registry_->Publish(change.user, change.name, change.meta);
  }
  Log(absl::StrFormat(
      "cluster: replica loaded: %d sessions on other daemons, %d "
      "publications (%d dropped)",
      by_id_.size(), stored.size(), missing.size()));
}

void ClusterReplica::LocalSessionEnded(absl::string_view user) {
  MutexLock lock(&mu_);
  auto it = set_aside_.find(user);
  if (it == set_aside_.end()) return;
  const ClusterSession session = std::move(it->second);
  set_aside_.erase(it);
  AddRemote(session);
}

std::vector<Registry::LocalSession> ClusterReplica::TakeReleasedOwnSessions() {
  MutexLock lock(&mu_);
  std::vector<Registry::LocalSession> sessions;
  sessions.reserve(released_own_.size());
  for (const auto& [id, session] : released_own_) sessions.push_back(session);
  released_own_.clear();
  return sessions;
}

std::optional<TicketKey> ClusterReplica::TicketKeyOf(
    uint64_t session_id) const {
  MutexLock lock(&mu_);
  auto it = by_id_.find(session_id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second.ticket_key;
}

ClusterReplica::Stats ClusterReplica::stats() const {
  MutexLock lock(&mu_);
  Stats stats = stats_;
  stats.remote_sessions = by_id_.size();
  stats.set_aside = set_aside_.size();
  return stats;
}

}  // namespace pcfs
