#include "core/index/registry.h"

#include <algorithm>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "core/base/mutex_lock.h"
#include "core/base/prefetch_hints.h"
#include "core/index/registry_internal.h"

// Presence: sessions' users, endpoints and deadlines. Publications are in
// registry_publications.cc, the paged search in registry_search.cc, and the
// layout of the whole in registry_internal.h.

namespace pcfs {
namespace {

// Marks Login's AlreadyExists for a user whose session another daemon holds.
constexpr absl::string_view kHeldElsewherePayload = "pcfs/held-elsewhere";

}  // namespace

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

namespace {

// A heartbeat (or a retransmitted login) was heard at `now`: the session
// lives another `timeout`, and any hold of ExpireIfDue is over.
void Renew(Presence& session, absl::Time now, absl::Duration timeout) {
  if (now + timeout >= session.deadline()) {
    session.set_deadline(now + timeout);
    session.held_ms = 0;
  }
}

// The longest hold: one more session timeout, within held_ms's 16 bits.
absl::Duration MaxHold(absl::Duration timeout) {
  return std::min(timeout, absl::Seconds(60));
}

}  // namespace

Registry::Registry(Options options) : impl_(std::make_unique<Impl>(options)) {}

Registry::~Registry() = default;

// ---- Sessions ---------------------------------------------------------

absl::StatusOr<uint64_t> Registry::Login(const LoginParams& params,
                                         absl::Time now) {
  const size_t shard_index = impl_->UserShardIndex(params.user);
  PresenceShard& shard = impl_->sessions[shard_index];
  MutexLock lock(&shard.mu);
  if (Presence* old = shard.sessions.FindUser(params.user)) {
    if (old->is_remote()) {
      absl::Status held = absl::AlreadyExistsError(absl::StrCat(
          "user ", params.user, " is already logged in on another daemon"));
      held.SetPayload(kHeldElsewherePayload, absl::Cord("1"));
      return held;
    }
    if (IsPresentAt(*old, now)) {
      if (old->login_nonce_tag == LoginNonceTag(params.nonce) &&
          old->control == params.control) {
        Renew(*old, now, impl_->session_timeout);
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

bool Registry::IsHeldElsewhere(const absl::Status& login_status) {
  return absl::IsAlreadyExists(login_status) &&
         login_status.GetPayload(kHeldElsewherePayload).has_value();
}

absl::Status Registry::Heartbeat(uint64_t session_id, const Endpoint& from,
                                 absl::Time now) {
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  Presence* found = shard.sessions.Find(session_id);
  if (found == nullptr || found->is_remote()) {
    return absl::NotFoundError("no such session");
  }
  Presence& session = *found;
  if (IsPresentAt(session, now)) {
    if (session.control != from) {
      return absl::PermissionDeniedError(
          "heartbeat comes from another endpoint than the session's");
    }
    Renew(session, now, impl_->session_timeout);
    return absl::OkStatus();
  }
  shard.sessions.Erase(session_id);
  return absl::NotFoundError("session has expired");
}

absl::Status Registry::Logout(uint64_t session_id) {
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  const Presence* session = shard.sessions.Find(session_id);
  if (session == nullptr || session->is_remote()) {
    return absl::NotFoundError("no such session");
  }
  shard.sessions.Erase(session_id);
  return absl::OkStatus();
}

size_t Registry::EndSessionsIf(
    absl::FunctionRef<bool(absl::string_view user)> doomed,
    std::vector<uint64_t>* ended_ids, std::vector<UserName>* ended_users) {
  std::vector<std::pair<uint64_t, UserName>> doomed_sessions;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    PresenceShard& shard = impl_->sessions[i];
    MutexLock lock(&shard.mu);
    shard.sessions.ForEach([&](const Presence& session) {
      if (!session.is_remote() && doomed(session.user)) {
        doomed_sessions.emplace_back(session.id, UserName(session.user));
      }
    });
  }
  size_t ended = 0;
  for (const auto& [id, user] : doomed_sessions) {
    if (!Logout(id).ok()) continue;  // ended meanwhile
    ++ended;
    if (ended_ids != nullptr) ended_ids->push_back(id);
    if (ended_users != nullptr) ended_users->push_back(user);
  }
  return ended;
}

namespace {

Registry::LocalSession LocalSessionOf(const Presence& session) {
  Registry::LocalSession local;
  local.user = UserName(session.user);
  local.id = session.id;
  local.file_server = session.control;
  local.file_server.port = session.file_port;
  local.key_pin = session.key_pin;
  return local;
}

}  // namespace

std::optional<Registry::LocalSession> Registry::FindLocalSession(
    absl::string_view user, uint64_t id) const {
  PresenceShard& shard = impl_->PresenceShardOf(id);
  MutexLock lock(&shard.mu);
  const Presence* session = shard.sessions.Find(id);
  if (session == nullptr || session->is_remote() || session->user != user) {
    return std::nullopt;
  }
  return LocalSessionOf(*session);
}

std::vector<Registry::LocalSession> Registry::LocalSessions() const {
  std::vector<LocalSession> sessions;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    PresenceShard& shard = impl_->sessions[i];
    MutexLock lock(&shard.mu);
    shard.sessions.ForEach([&](const Presence& session) {
      if (!session.is_remote()) sessions.push_back(LocalSessionOf(session));
    });
  }
  return sessions;
}

std::optional<UserName> Registry::Admit(uint64_t session_id,
                                        const Endpoint& from, absl::Time now,
                                        bool heartbeat) {
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  Presence* session = shard.sessions.Find(session_id);
  if (session == nullptr || session->is_remote()) return std::nullopt;
  NotePrefetchHint(session, sizeof(*session));
  session->control = from;
  if (heartbeat) Renew(*session, now, impl_->session_timeout);
  return UserName(session->user);
}

bool Registry::IsLive(uint64_t session_id, absl::Time now) const {
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  const Presence* session = shard.sessions.Find(session_id);
  return session != nullptr && !session->is_remote() &&
         registry_internal::IsPresentAt(*session, now);
}

std::optional<absl::Time> Registry::ExpireIfDue(uint64_t session_id,
                                                absl::Time now, bool* expired,
                                                UserName* expired_user,
                                                absl::Time last_loss,
                                                bool* held) {
  if (expired != nullptr) *expired = false;
  if (held != nullptr) *held = false;
  PresenceShard& shard = impl_->PresenceShardOf(session_id);
  MutexLock lock(&shard.mu);
  Presence* session = shard.sessions.Find(session_id);
  if (session == nullptr || session->is_remote()) return std::nullopt;
  if (IsPresentAt(*session, now)) return session->deadline();
  const absl::Duration timeout = impl_->session_timeout;
  const absl::Duration max_hold = MaxHold(timeout);
  const absl::Duration held_for = absl::Milliseconds(session->held_ms);
  const absl::Time heard = session->deadline() - held_for - timeout;
  if (last_loss > heard && session->held_ms == 0 &&
      heard + timeout + max_hold > now) {
    session->set_deadline(heard + timeout + max_hold);
    session->held_ms =
        static_cast<uint16_t>(absl::ToInt64Milliseconds(max_hold));
    if (held != nullptr) *held = true;
    return session->deadline();
  }
  if (expired_user != nullptr) *expired_user = UserName(session->user);
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

// ---- Remote sessions -----------------------------------------------------

// A remote session lives in its user's shard like a local one (so that
// FindUser, and with it LiveFileServer, sees it), but its id, made by
// another daemon, does not name that shard: the calls that find a session
// by id look in shard id & mask, and never act on a remote one they may
// meet there.
absl::Status Registry::AddRemoteSession(const RemoteSession& remote,
                                        absl::Time now) {
  PresenceShard& shard = impl_->PresenceShardOfUser(remote.user);
  MutexLock lock(&shard.mu);
  if (Presence* old = shard.sessions.FindUser(remote.user)) {
    if (!old->is_remote() && IsPresentAt(*old, now)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "user ", remote.user, " holds a live session on this daemon"));
    }
    shard.sessions.Erase(old->id);
  }
  Presence* session = shard.sessions.Insert(remote.id, remote.user);
  if (session == nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("session id of ", remote.user,
                                                 " clashes with a local one"));
  }
  session->control = remote.file_server;
  session->file_port = remote.file_server.port;
  session->key_pin = remote.key_pin;
  session->deadline_ns = Presence::kRemoteDeadlineNs;
  return absl::OkStatus();
}

bool Registry::RemoveRemoteSession(absl::string_view user, uint64_t id) {
  PresenceShard& shard = impl_->PresenceShardOfUser(user);
  MutexLock lock(&shard.mu);
  const Presence* session = shard.sessions.FindUser(user);
  if (session == nullptr || !session->is_remote() || session->id != id) {
    return false;
  }
  shard.sessions.Erase(id);
  return true;
}

}  // namespace pcfs
