#include "core/index/registry.h"

#include <algorithm>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/base/mutex_lock.h"
#include "core/index/registry_internal.h"

// Presence: sessions' users, endpoints and deadlines. Publications are in
// registry_publications.cc, the paged search in registry_search.cc, and the
// layout of the whole in registry_internal.h.

namespace pcfs {

namespace registry_internal {

// Session ids and the choice among holders need no secrecy (a session is
// guarded by its key), only spread. std::mt19937_64 rather than
// absl::BitGen: Debian's abseil is built without TSan, and its seed pool's
// internal lock shows up as races in our TSan builds.
std::mt19937_64& ThreadRandom() {
  thread_local std::mt19937_64 random{[] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  }()};
  return random;
}

}  // namespace registry_internal

std::optional<Registry::Impl::FileServer> Registry::Impl::LiveFileServer(
    absl::string_view user, absl::Time now) const {
  PresenceShard& shard = PresenceShardOfUser(user);
  MutexLock lock(&shard.mu);
  const Presence* session = shard.sessions.FindUser(user);
  if (session == nullptr || !IsPresentAt(*session, now)) return std::nullopt;
  FileServer server;
  server.endpoint = session->control;
  server.endpoint.port = session->file_port;
  server.session_id = session->id;
  server.key_pin = session->key_pin;
  return server;
}
Registry::Registry(Options options) : impl_(std::make_unique<Impl>(options)) {}

Registry::~Registry() = default;

// ---- Sessions ---------------------------------------------------------

absl::StatusOr<uint64_t> Registry::Login(const LoginParams& params,
                                         absl::Time now) {
  const size_t shard_index = impl_->UserShardIndex(params.user);
  PresenceShard& shard = impl_->sessions[shard_index];
  MutexLock lock(&shard.mu);
  if (Presence* old = shard.sessions.FindUser(params.user)) {
    if (IsPresentAt(*old, now)) {
      if (old->login_nonce_tag == LoginNonceTag(params.nonce) &&
          old->control == params.control) {
        old->set_deadline(
            std::max(old->deadline(), now + impl_->session_timeout));
        return old->id;  // a retransmission
      }
      return absl::AlreadyExistsError(
          absl::StrCat("user ", params.user, " is already logged in"));
    }
    shard.sessions.Erase(old->id);  // expired, though not yet removed
  }
  if (params.retransmission_only) {
    return absl::FailedPreconditionError(
        "this login was used before and its session is gone");
  }
  for (;;) {
    const uint64_t id = impl_->NewSessionId(shard_index);
    Presence* session = shard.sessions.Insert(id, params.user);
    if (session == nullptr) continue;  // a 2^-58 collision at worst
    session->control = params.control;
    session->file_port = params.file_port;
    session->key_pin = params.key_pin;
    session->login_nonce_tag = LoginNonceTag(params.nonce);
    session->set_deadline(now + impl_->session_timeout);
    return id;
  }
}

absl::Status Registry::Heartbeat(uint64_t session_id, const Endpoint& from,
                                 absl::Time now) {
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  Presence* found = shard.sessions.Find(session_id);
  if (found == nullptr) return absl::NotFoundError("no such session");
  Presence& session = *found;
  if (IsPresentAt(session, now)) {
    if (session.control != from) {
      return absl::PermissionDeniedError(
          "heartbeat comes from another endpoint than the session's");
    }
    session.set_deadline(
        std::max(session.deadline(), now + impl_->session_timeout));
    return absl::OkStatus();
  }
  shard.sessions.Erase(session_id);
  return absl::NotFoundError("session has expired");
}

absl::Status Registry::Logout(uint64_t session_id) {
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  if (shard.sessions.Find(session_id) == nullptr) {
    return absl::NotFoundError("no such session");
  }
  shard.sessions.Erase(session_id);
  return absl::OkStatus();
}

size_t Registry::EndSessionsIf(
    absl::FunctionRef<bool(absl::string_view user)> doomed,
    std::vector<uint64_t>* ended_ids) {
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    PresenceShard& shard = impl_->sessions[i];
    MutexLock lock(&shard.mu);
    shard.sessions.ForEach([&](const Presence& session) {
      if (doomed(session.user)) ids.push_back(session.id);
    });
  }
  size_t ended = 0;
  for (uint64_t id : ids) {
    if (!Logout(id).ok()) continue;  // ended meanwhile
    ++ended;
    if (ended_ids != nullptr) ended_ids->push_back(id);
  }
  return ended;
}

std::optional<UserName> Registry::Admit(uint64_t session_id,
                                        const Endpoint& from, absl::Time now,
                                        bool heartbeat) {
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  Presence* session = shard.sessions.Find(session_id);
  if (session == nullptr || !IsPresentAt(*session, now)) return std::nullopt;
  session->control = from;
  if (heartbeat) {
    session->set_deadline(
        std::max(session->deadline(), now + impl_->session_timeout));
  }
  return UserName(session->user);
}

bool Registry::IsLive(uint64_t session_id, absl::Time now) const {
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  const Presence* session = shard.sessions.Find(session_id);
  return session != nullptr && registry_internal::IsPresentAt(*session, now);
}

std::optional<absl::Time> Registry::ExpireIfDue(uint64_t session_id,
                                                absl::Time now, bool* expired) {
  if (expired != nullptr) *expired = false;
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  Presence* session = shard.sessions.Find(session_id);
  if (session == nullptr) return std::nullopt;
  if (IsPresentAt(*session, now)) return session->deadline();
  shard.sessions.Erase(session_id);
  if (expired != nullptr) *expired = true;
  return std::nullopt;
}

std::vector<std::string> Registry::ActiveUsers(absl::string_view exclude,
                                               absl::Time now) const {
  std::vector<std::string> users;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    PresenceShard& shard = impl_->sessions[i];
    MutexLock lock(&shard.mu);
    shard.sessions.ForEach([&](const Presence& session) {
      if (IsPresentAt(session, now) && session.user != exclude) {
        users.push_back(session.user);
      }
    });
  }
  // A login in flight may briefly show a second session for its user.
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  return users;
}

bool Registry::IsActive(absl::string_view user, absl::Time now) const {
  return impl_->LiveFileServer(user, now).has_value();
}

// Counts stored sessions, including expired ones that no call has removed
// yet (it takes no `now`).
size_t Registry::session_count() const {
  size_t count = 0;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    PresenceShard& shard = impl_->sessions[i];
    MutexLock lock(&shard.mu);
    count += shard.sessions.size();
  }
  return count;
}

}  // namespace pcfs
