#include "core/index/registry.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <span>
#include <utility>

#include "absl/base/config.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/base/mutex_lock.h"
#include "core/index/search_index.h"


// Layout. Three sharded maps, each shard with its own mutex:
//   sessions     id -> Session and user -> Session, in a SessionTable
//                (shards by user; a session id carries its shard's index)
//   publications user -> (name -> Publication)         (shards by user)
//   names        a SearchIndex of the shard's names (their one copy), and
//                by its name ids the publishers         (shards by name)
// `publications` is the authority on who publishes what; `names` is derived
// from it. No method holds two locks at once: each copies what it needs
// under one lock and lets it go before taking the next.
//
// The SearchIndex is split by name shard, under the shard's own mutex,
// rather than being one index under a mutex of its own: a name then enters
// and leaves the index in the same critical section that gives it its first
// publisher or takes its last, so concurrent Publish/Unpublish calls cannot
// leave the index out of step with the publishers. Search visits each shard.
//
// Dormant slots. Unpublish does not erase: the Publication is marked not
// live, and a name whose last publisher leaves keeps its entry (with no
// publishers) and its place in the SearchIndex. Publishing the same name
// again then revives them without allocating a key string, a table slot or
// an index posting. Every reader skips dormant slots. Each shard counts its
// dormant slots and sweeps them all once they exceed TooManyDormant(), so
// the sweep costs O(1) amortized per Unpublish and dormant slots never hold
// more than a bounded share of the memory.

namespace pcfs {
namespace {

constexpr size_t kMaxShards = 4096;  // Search and ActiveUsers visit every shard

size_t RoundUpToPowerOfTwo(size_t n) {
  n = std::clamp<size_t>(n, 1, kMaxShards);
  size_t power = 1;
  while (power < n) power <<= 1;
  return power;
}

// The shard of a key, from bits 40 and up of its hash: flat_hash_map takes
// its control bytes from the low 7 bits and the table position from the
// bits just above, so shard choice leaves both independent (and the tables
// in a shard spread evenly) below 2^33 slots.
size_t ShardOf(size_t hash, size_t mask) {
  return static_cast<size_t>(static_cast<uint64_t>(hash) >> 40) & mask;
}

// A session is live while now < deadline.
bool IsLive(const Session& session, absl::Time now) {
  return now < session.deadline;
}

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

// The sessions of one shard: Session objects in fixed-size chunks that
// never move, indexed by id. A flat_hash_map<id, Session> would keep every
// empty slot Session-sized (at its typical half load, about 400 bytes per
// session); here an empty slot costs 16 bytes, and a freed Session is reset
// and reused by the next login. Not thread-safe: SessionShard's mutex.
class SessionTable {
 public:
  SessionTable() = default;
  SessionTable(const SessionTable&) = delete;  // the index points at it
  SessionTable& operator=(const SessionTable&) = delete;

  // The session `id`, or nullptr.
  Session* Find(uint64_t id) {
    auto it = slot_of_.find(id);
    return it == slot_of_.end() ? nullptr : &At(it->second);
  }
  // The session of `user`, or nullptr.
  Session* FindUser(absl::string_view user) {
    auto it = slot_of_user_.find(user);
    return it == slot_of_user_.end() ? nullptr : &At(*it);
  }
  // A fresh Session for `user` (with only id and user set) stored under
  // `id`; nullptr if `id` is taken.
  // REQUIRES: FindUser(user) == nullptr.
  Session* Insert(uint64_t id, absl::string_view user) {
    auto [it, inserted] = slot_of_.try_emplace(id, 0);
    if (!inserted) return nullptr;
    if (free_.empty()) {
      if (next_ % kChunkSessions == 0) {
        chunks_.push_back(std::make_unique<Session[]>(kChunkSessions));
      }
      it->second = next_++;
    } else {
      it->second = free_.back();
      free_.pop_back();
    }
    Session& session = At(it->second);
    session.id = id;
    session.user.assign(user.data(), user.size());
    slot_of_user_.insert(it->second);  // hashed by the user just set
    return &session;
  }
  void Erase(uint64_t id) {
    auto it = slot_of_.find(id);
    if (it == slot_of_.end()) return;
    slot_of_user_.erase(it->second);  // before its user changes
    At(it->second) = Session();  // lets go of its strings and snapshot
    free_.push_back(it->second);
    slot_of_.erase(it);
  }
  size_t size() const { return slot_of_.size(); }
  // Calls fn(session) for every session.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (const auto& [id, slot] : slot_of_) fn(At(slot));
  }

 private:
  static constexpr uint32_t kChunkSessions = 256;
  Session& At(uint32_t slot) const {
    return chunks_[slot / kChunkSessions][slot % kChunkSessions];
  }

  // The user index holds slots, hashed and compared by their sessions'
  // user names, so that a user costs no second copy of its name.
  struct UserOfSlotHash {
    using is_transparent = void;
    const SessionTable* table;
    size_t operator()(absl::string_view user) const {
      return absl::Hash<absl::string_view>()(user);
    }
    size_t operator()(uint32_t slot) const {
      return (*this)(absl::string_view(table->At(slot).user));
    }
  };
  struct UserOfSlotEq {
    using is_transparent = void;
    const SessionTable* table;
    absl::string_view UserOf(uint32_t slot) const {
      return table->At(slot).user;
    }
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, absl::string_view b) const {
      return UserOf(a) == b;
    }
    bool operator()(absl::string_view a, uint32_t b) const {
      return a == UserOf(b);
    }
  };

  absl::flat_hash_map<uint64_t, uint32_t> slot_of_;
  absl::flat_hash_set<uint32_t, UserOfSlotHash, UserOfSlotEq> slot_of_user_{
      0, UserOfSlotHash{this}, UserOfSlotEq{this}};
  std::vector<std::unique_ptr<Session[]>> chunks_;
  std::vector<uint32_t> free_;  // slots of ended sessions
  uint32_t next_ = 0;           // slots ever handed out
};

struct SessionShard {
  absl::Mutex mu;
  SessionTable sessions ABSL_GUARDED_BY(mu);
};


// Whether a shard holding `dormant` dormant slots beside `live` live ones
// should sweep them: past a fixed slack (so that a small working set of
// names cycling through pub/unp never sweeps) and a quarter of the live.
constexpr size_t kDormantSlack = 64;
bool TooManyDormant(size_t dormant, size_t live) {
  return dormant > std::max(kDormantSlack, live / 4);
}

// One user's publication of one name; dormant (not live) once unpublished.
struct Publication {
  FileMeta meta;
  bool live = false;
};
using PublicationsOfUser = absl::flat_hash_map<std::string, Publication>;

struct PublicationShard {
  absl::Mutex mu;
  absl::flat_hash_map<std::string, PublicationsOfUser> by_user
      ABSL_GUARDED_BY(mu);
  size_t live ABSL_GUARDED_BY(mu) = 0;
  size_t dormant ABSL_GUARDED_BY(mu) = 0;

  // Drops every dormant publication, and the users left with none.
  void SweepDormant() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto user_it = by_user.begin(); user_it != by_user.end();) {
      PublicationsOfUser& names = user_it->second;
      for (auto it = names.begin(); it != names.end();) {
        if (it->second.live) {
          ++it;
        } else {
          names.erase(it++);
        }
      }
      if (names.empty()) {
        by_user.erase(user_it++);
      } else {
        ++user_it;
      }
    }
    dormant = 0;
  }
};

// The users who publish a name; empty while the name is dormant. A removed
// user's string stays behind the live ones as a spare whose buffer the next
// Add reuses, so that pub/unp cycles of the name allocate nothing (and a
// name costs no more than a vector of strings).
class Publishers {
 public:
  Publishers() = default;

  std::span<const std::string> live() const { return {users_.data(), live_}; }
  bool empty() const { return live_ == 0; }
  bool Contains(absl::string_view user) const {
    const std::span<const std::string> users = live();
    return std::find(users.begin(), users.end(), user) != users.end();
  }
  // REQUIRES: !Contains(user).
  void Add(absl::string_view user) {
    if (live_ < users_.size()) {
      users_[live_].assign(user.data(), user.size());
    } else {
      users_.emplace_back(user);
    }
    ++live_;
  }
  // Returns false if `user` is not a live publisher.
  bool Remove(absl::string_view user) {
    const auto end = users_.begin() + live_;
    const auto it = std::find(users_.begin(), end, user);
    if (it == end) return false;
    std::swap(*it, users_[live_ - 1]);
    --live_;
    return true;
  }

 private:
  std::vector<std::string> users_;  // [0, live_) publish; the rest spares
  uint32_t live_ = 0;
};

struct NameShard {
  absl::Mutex mu;
  // Every name of the shard, dormant ones included: the one copy of each
  // name's bytes, and the ids that index `publishers`.
  SearchIndex index ABSL_GUARDED_BY(mu);
  std::vector<Publishers> publishers ABSL_GUARDED_BY(mu);  // by index id
  size_t dormant ABSL_GUARDED_BY(mu) = 0;  // names without publishers

  // The publishers of `name`, or nullptr if it is not in the index.
  Publishers* Find(absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const uint32_t id = index.Find(name);
    return id == SearchIndex::kNoId ? nullptr : &publishers[id];
  }

  // Drops every dormant name from the index (its id's spare strings too).
  void SweepDormant() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (uint32_t id = 0; id < index.id_limit(); ++id) {
      if (!index.Contains(id) || !publishers[id].empty()) continue;
      index.Remove(index.NameOf(id));
      publishers[id] = Publishers();
    }
    dormant = 0;
  }
};


// How many publishers of a name Locate copies out under the name's lock:
// a uniform random sample of them, so that GET of a popular name costs
// neither an allocation nor a copy of every publisher.
constexpr size_t kLocateSample = 8;

// SearchPage's units of work: an index candidate costs 1; a visit of a
// shard, 1; a name whose publishers it checks, or a session it looks up,
// kCheckCost (hash lookups that miss the cache, against a walk of packed
// posting lists).
constexpr size_t kCheckCost = 4;

// Whether the publishers of a name make it listed, as far as `active` (what
// a SearchPage has learnt of their sessions) tells.
enum class Verdict { kListed, kUnlisted, kUnknown };

// When `active` does not tell, the publishers it does not hold are appended
// to `unknown`.
Verdict Judge(std::span<const std::string> publishers,
              const absl::flat_hash_map<std::string, bool>& active,
              std::vector<std::string>& unknown) {
  const size_t before = unknown.size();
  for (const std::string& user : publishers) {
    auto known = active.find(user);
    if (known == active.end()) {
      unknown.push_back(user);
    } else if (known->second) {
      unknown.resize(before);
      return Verdict::kListed;
    }
  }
  return unknown.size() == before ? Verdict::kUnlisted : Verdict::kUnknown;
}

// Once a SearchPage walk meets a name it cannot judge, it gathers the
// unknown publishers of the names after it too, up to this many, so that
// one round of lookups (and one more walk) serves a whole page rather than
// one name.
constexpr size_t kMaxUnknownPerWalk = 64;

}  // namespace

struct Registry::Impl {
  explicit Impl(const Options& options)
      : session_timeout(options.session_timeout),
        shard_count(RoundUpToPowerOfTwo(options.shard_count)),
        mask(shard_count - 1),
        sessions(new SessionShard[shard_count]),
        publications(new PublicationShard[shard_count]),
        names(new NameShard[shard_count]) {}

  // A session lives in its user's shard, and its id carries that shard's
  // index in its low bits, so that both find it under one lock.
  size_t UserShardIndex(absl::string_view user) const {
    return ShardOf(absl::Hash<absl::string_view>()(user), mask);
  }
  SessionShard& SessionShardOfUser(absl::string_view user) const {
    return sessions[UserShardIndex(user)];
  }
  SessionShard& SessionShardOf(uint64_t id) const {
    return sessions[id & mask];
  }
  PublicationShard& PublicationShardOf(absl::string_view user) const {
    return publications[ShardOf(absl::Hash<absl::string_view>()(user), mask)];
  }
  NameShard& NameShardOf(absl::string_view name) const {
    return names[ShardOf(absl::Hash<absl::string_view>()(name), mask)];
  }

  // ---- Sessions ----

  // A fresh random non-zero id for a session of the user in shard
  // `shard_index`.
  uint64_t NewSessionId(size_t shard_index) const {
    std::mt19937_64& random = ThreadRandom();
    for (;;) {
      const uint64_t id =
          (random() & ~static_cast<uint64_t>(mask)) | shard_index;
      if (id != 0) return id;
    }
  }

  // Where `user`'s live session serves files, and its key; nullopt if the
  // user has no live session or it serves nothing (file port 0).
  struct FileServer {
    Endpoint endpoint;
    std::array<uint8_t, 32> key{};
  };
  std::optional<FileServer> LiveFileServer(absl::string_view user,
                                           absl::Time now) const {
    SessionShard& shard = SessionShardOfUser(user);
    MutexLock lock(&shard.mu);
    const Session* session = shard.sessions.FindUser(user);
    if (session == nullptr || !IsLive(*session, now)) return std::nullopt;
    FileServer server;
    server.endpoint = session->control;
    server.endpoint.port = session->file_port;
    server.key = session->key;
    return server;
  }

  // ---- Publications ----

  std::optional<FileMeta> MetaOf(absl::string_view user,
                                 absl::string_view name) const {
    PublicationShard& shard = PublicationShardOf(user);
    MutexLock lock(&shard.mu);
    auto user_it = shard.by_user.find(user);
    if (user_it == shard.by_user.end()) return std::nullopt;
    auto name_it = user_it->second.find(name);
    if (name_it == user_it->second.end() || !name_it->second.live) {
      return std::nullopt;
    }
    return name_it->second.meta;
  }

  // Records in the name map whether `user` publishes `name`.
  void SetPublisher(absl::string_view name, absl::string_view user,
                    bool publishes) const {
    NameShard& shard = NameShardOf(name);
    MutexLock lock(&shard.mu);
    uint32_t id = shard.index.Find(name);
    if (publishes) {
      const bool is_new = id == SearchIndex::kNoId;
      if (is_new) {
        id = shard.index.Add(name);
        if (id >= shard.publishers.size()) shard.publishers.resize(id + 1);
      }
      Publishers& publishers = shard.publishers[id];
      if (publishers.Contains(user)) return;
      if (!is_new && publishers.empty()) --shard.dormant;  // revived
      publishers.Add(user);
      return;
    }
    if (id == SearchIndex::kNoId) return;
    Publishers& publishers = shard.publishers[id];
    if (!publishers.Remove(user)) return;
    if (publishers.empty()) {
      ++shard.dormant;
      if (TooManyDormant(shard.dormant, shard.index.size() - shard.dormant)) {
        shard.SweepDormant();
      }
    }
  }

  // Brings the name map in line with the publication map for (user, name)
  // after a change to the latter that left it in state `publishes`.
  // Concurrent changes to the same pair may apply their name-map updates in
  // the other order, so after each update this re-reads the authority and
  // repeats until they agree. Every repeat needs another thread's change to
  // the same pair in between, and that thread re-checks after its own
  // update, so the last update to land always reflects the last change.
  void SyncPublisher(absl::string_view user, absl::string_view name,
                     bool publishes) const {
    for (;;) {
      SetPublisher(name, user, publishes);
      const bool actual = MetaOf(user, name).has_value();
      if (actual == publishes) return;
      publishes = actual;
    }
  }

  // ---- Paged search ----

  // What one SearchPage walk of a name shard's index ended with.
  struct ShardWalk {
    SearchIndex::WalkEnd end;
    size_t checked = 0;      // names whose publishers it checked
    bool page_full = false;  // emit refused the name at end.next_id
    // When not empty, the walk met a name it could not judge, at
    // `unjudged_id` (where the next walk must start, whatever `end` says),
    // and these are publishers of it, and of names after it, whose
    // sessions `active` does not hold.
    std::vector<std::string> unknown;
    uint32_t unjudged_id = 0;
  };

  // Walks name shard `shard_index` from `first_id` under its lock, emitting
  // listed names, within `budget` units (checking at least one name).
  ShardWalk WalkNameShard(
      size_t shard_index, absl::string_view pattern, absl::string_view caller,
      uint32_t first_id, size_t budget,
      const absl::flat_hash_map<std::string, bool>& active,
      absl::FunctionRef<bool(absl::string_view)> emit) const;

  // Looks up the sessions of `publishers` not yet in `active`, with no
  // name shard lock held, and records each answer there. Returns the
  // lookups made.
  size_t LearnLiveness(const std::vector<std::string>& publishers,
                       absl::Time now,
                       absl::flat_hash_map<std::string, bool>& active) const;

  const absl::Duration session_timeout;
  const size_t shard_count;
  const size_t mask;
  const std::unique_ptr<SessionShard[]> sessions;
  const std::unique_ptr<PublicationShard[]> publications;
  const std::unique_ptr<NameShard[]> names;
  std::atomic<size_t> publication_count{0};
  const uint16_t search_epoch = static_cast<uint16_t>(ThreadRandom()());
};

Registry::Impl::ShardWalk Registry::Impl::WalkNameShard(
    size_t shard_index, absl::string_view pattern, absl::string_view caller,
    uint32_t first_id, size_t budget,
    const absl::flat_hash_map<std::string, bool>& active,
    absl::FunctionRef<bool(absl::string_view)> emit) const {
  NameShard& shard = names[shard_index];
  ShardWalk walk;
  MutexLock lock(&shard.mu);
  walk.end = shard.index.ForEachMatchFrom(
      pattern, first_id, budget,
      // Runs inside ForEachMatchFrom, with the lock taken above held.
      [&](uint32_t id, absl::string_view name)
          ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
        if (walk.checked > 0 && (walk.checked + 1) * kCheckCost > budget) {
          return false;  // out of budget: the next page starts here
        }
        ++walk.checked;
        const Publishers& publishers = shard.publishers[id];
        if (publishers.Contains(caller)) return true;
        const bool gathering = !walk.unknown.empty();
        const Verdict verdict = Judge(publishers.live(), active, walk.unknown);
        if (gathering || verdict == Verdict::kUnknown) {
          // From the first name it cannot judge on, it emits nothing.
          if (!gathering) walk.unjudged_id = id;
          return walk.unknown.size() < kMaxUnknownPerWalk;
        }
        if (verdict == Verdict::kUnlisted) return true;
        walk.page_full = !emit(name);
        return !walk.page_full;
      });
  return walk;
}

size_t Registry::Impl::LearnLiveness(
    const std::vector<std::string>& publishers, absl::Time now,
    absl::flat_hash_map<std::string, bool>& active) const {
  size_t lookups = 0;
  for (const std::string& user : publishers) {
    auto [it, inserted] = active.try_emplace(user, false);
    if (inserted) {
      ++lookups;
      it->second = LiveFileServer(user, now).has_value();
    }
  }
  return lookups;
}

Registry::Registry(Options options) : impl_(std::make_unique<Impl>(options)) {}

Registry::~Registry() = default;

// ---- Sessions ---------------------------------------------------------

absl::StatusOr<uint64_t> Registry::Login(const LoginParams& params,
                                         absl::Time now) {
  const size_t shard_index = impl_->UserShardIndex(params.user);
  SessionShard& shard = impl_->sessions[shard_index];
  MutexLock lock(&shard.mu);
  if (Session* old = shard.sessions.FindUser(params.user)) {
    if (IsLive(*old, now)) {
      if (old->login_nonce == params.nonce && old->control == params.control) {
        old->deadline = std::max(old->deadline, now + impl_->session_timeout);
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
    Session* session = shard.sessions.Insert(id, params.user);
    if (session == nullptr) continue;  // a 2^-58 collision at worst
    session->control = params.control;
    session->file_port = params.file_port;
    session->login_nonce = params.nonce;
    session->key = params.key;
    session->deadline = now + impl_->session_timeout;
    return id;
  }
}

absl::Status Registry::Heartbeat(uint64_t session_id, const Endpoint& from,
                                 absl::Time now) {
  SessionShard& shard = impl_->SessionShardOf(session_id);
  MutexLock lock(&shard.mu);
  Session* found = shard.sessions.Find(session_id);
  if (found == nullptr) return absl::NotFoundError("no such session");
  Session& session = *found;
  if (IsLive(session, now)) {
    if (session.control != from) {
      return absl::PermissionDeniedError(
          "heartbeat comes from another endpoint than the session's");
    }
    session.deadline = std::max(session.deadline, now + impl_->session_timeout);
    return absl::OkStatus();
  }
  shard.sessions.Erase(session_id);
  return absl::NotFoundError("session has expired");
}

absl::Status Registry::Logout(uint64_t session_id) {
  SessionShard& shard = impl_->SessionShardOf(session_id);
  MutexLock lock(&shard.mu);
  if (shard.sessions.Find(session_id) == nullptr) {
    return absl::NotFoundError("no such session");
  }
  shard.sessions.Erase(session_id);
  return absl::OkStatus();
}

size_t Registry::EndSessionsIf(
    absl::FunctionRef<bool(absl::string_view user)> doomed) {
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    SessionShard& shard = impl_->sessions[i];
    MutexLock lock(&shard.mu);
    shard.sessions.ForEach([&](const Session& session) {
      if (doomed(session.user)) ids.push_back(session.id);
    });
  }
  size_t ended = 0;
  for (uint64_t id : ids) ended += Logout(id).ok() ? 1 : 0;
  return ended;
}

bool Registry::WithSession(uint64_t session_id, absl::Time now,
                           absl::FunctionRef<void(Session&)> fn) {
  SessionShard& shard = impl_->SessionShardOf(session_id);
  MutexLock lock(&shard.mu);
  Session* session = shard.sessions.Find(session_id);
  if (session == nullptr || !IsLive(*session, now)) return false;
  fn(*session);
  return true;
}

std::optional<absl::Time> Registry::ExpireIfDue(uint64_t session_id,
                                                absl::Time now,
                                                bool* expired) {
  if (expired != nullptr) *expired = false;
  SessionShard& shard = impl_->SessionShardOf(session_id);
  MutexLock lock(&shard.mu);
  Session* session = shard.sessions.Find(session_id);
  if (session == nullptr) return std::nullopt;
  if (IsLive(*session, now)) return session->deadline;
  shard.sessions.Erase(session_id);
  if (expired != nullptr) *expired = true;
  return std::nullopt;
}

std::vector<std::string> Registry::ActiveUsers(absl::string_view exclude,
                                               absl::Time now) const {
  std::vector<std::string> users;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    SessionShard& shard = impl_->sessions[i];
    MutexLock lock(&shard.mu);
    shard.sessions.ForEach([&](const Session& session) {
      if (IsLive(session, now) && session.user != exclude) {
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
    SessionShard& shard = impl_->sessions[i];
    MutexLock lock(&shard.mu);
    count += shard.sessions.size();
  }
  return count;
}

// ---- Publications -----------------------------------------------------

bool Registry::Publish(absl::string_view user, absl::string_view name,
                       const FileMeta& meta) {
  PublicationShard& shard = impl_->PublicationShardOf(user);
  bool added = false;
  bool changed = false;
  {
    MutexLock lock(&shard.mu);
    auto user_it = shard.by_user.find(user);
    if (user_it == shard.by_user.end()) {
      user_it = shard.by_user.try_emplace(std::string(user)).first;
    }
    PublicationsOfUser& names = user_it->second;
    auto name_it = names.find(name);
    if (name_it == names.end()) {
      name_it = names.try_emplace(std::string(name)).first;
    } else if (!name_it->second.live) {
      --shard.dormant;  // revived: the key and the slot are reused
    }
    Publication& publication = name_it->second;
    if (!publication.live) {
      publication.live = true;
      publication.meta = meta;
      ++shard.live;
      added = changed = true;
      impl_->publication_count.fetch_add(1, std::memory_order_relaxed);
    } else if (publication.meta != meta) {
      publication.meta = meta;
      changed = true;
    }
  }
  if (added) impl_->SyncPublisher(user, name, /*publishes=*/true);
  return changed;
}

absl::Status Registry::Unpublish(absl::string_view user,
                                 absl::string_view name) {
  PublicationShard& shard = impl_->PublicationShardOf(user);
  {
    MutexLock lock(&shard.mu);
    auto user_it = shard.by_user.find(user);
    Publication* publication = nullptr;
    if (user_it != shard.by_user.end()) {
      auto name_it = user_it->second.find(name);
      if (name_it != user_it->second.end() && name_it->second.live) {
        publication = &name_it->second;
      }
    }
    if (publication == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("user ", user, " does not publish \"", name, "\""));
    }
    publication->live = false;
    --shard.live;
    ++shard.dormant;
    impl_->publication_count.fetch_sub(1, std::memory_order_relaxed);
    if (TooManyDormant(shard.dormant, shard.live)) shard.SweepDormant();
  }
  impl_->SyncPublisher(user, name, /*publishes=*/false);
  return absl::OkStatus();
}

std::vector<std::string> Registry::PublishedBy(absl::string_view user) const {
  PublicationShard& shard = impl_->PublicationShardOf(user);
  std::vector<std::string> names;
  {
    MutexLock lock(&shard.mu);
    auto user_it = shard.by_user.find(user);
    if (user_it == shard.by_user.end()) return names;
    names.reserve(user_it->second.size());
    for (const auto& [name, publication] : user_it->second) {
      if (publication.live) names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> Registry::Search(absl::string_view pattern,
                                          absl::string_view caller,
                                          absl::Time now) const {
  // Whether each publisher met so far holds a live session. It is filled
  // with no name shard lock held (no method holds two locks), so a name
  // with a publisher not yet in it waits in `pending`, with copies of those
  // publishers, until its shard's lock is let go. Past the first shards
  // every publisher is known and a match costs lookups, not copies.
  absl::flat_hash_map<std::string, bool> active;
  struct Pending {
    std::string name;
    std::vector<std::string> unknown;
  };
  std::vector<Pending> pending;
  struct Match {
    uint32_t id;
    absl::string_view name;
  };
  std::vector<Match> matches;  // one shard's, under its lock
  std::vector<std::string> result;
  // Some way ahead of the name being looked up, so that memory is fetched
  // for several lookups at once.
  constexpr size_t kPrefetchDistance = 8;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    NameShard& shard = impl_->names[i];
    {
      MutexLock lock(&shard.mu);
      matches.clear();
      shard.index.ForEachMatchWithId(
          pattern, [&](uint32_t id, absl::string_view name) {
            matches.push_back({id, name});
          });
      for (size_t k = 0; k < matches.size(); ++k) {
        if (k + kPrefetchDistance < matches.size()) {
          __builtin_prefetch(
              &shard.publishers[matches[k + kPrefetchDistance].id]);
        }
        const Publishers& publishers = shard.publishers[matches[k].id];
        if (publishers.Contains(caller)) continue;
        Pending waiting;
        bool accepted = false;
        for (const std::string& user : publishers.live()) {
          auto known = active.find(user);
          if (known == active.end()) {
            waiting.unknown.push_back(user);
          } else if (known->second) {
            accepted = true;
            break;
          }
        }
        if (accepted) {
          result.emplace_back(matches[k].name);
        } else if (!waiting.unknown.empty()) {
          waiting.name = std::string(matches[k].name);
          pending.push_back(std::move(waiting));
        }
      }
    }
    for (Pending& waiting : pending) {
      for (const std::string& user : waiting.unknown) {
        auto [it, inserted] = active.try_emplace(user, false);
        if (inserted) it->second = IsActive(user, now);
        if (it->second) {
          result.push_back(std::move(waiting.name));
          break;
        }
      }
    }
    pending.clear();
  }
  std::sort(result.begin(), result.end());
  return result;
}

// Walks shard after shard from `from`. Liveness is learnt with no name
// shard lock held (no method holds two locks): a walk that meets a name
// whose publishers' sessions are not known yet emits nothing from there
// on, gathers the unknown publishers of the next few names, and stops; the
// sessions are looked up, and the next walk starts at that name again.
absl::StatusOr<std::optional<Registry::SearchCursor>> Registry::SearchPage(
    absl::string_view pattern, absl::string_view caller, absl::Time now,
    SearchCursor from, size_t budget,
    absl::FunctionRef<bool(absl::string_view name)> emit) const {
  if (from.shard >= impl_->shard_count) {
    return absl::OutOfRangeError(absl::StrCat(
        "search cursor names shard ", from.shard, " of ", impl_->shard_count));
  }
  absl::flat_hash_map<std::string, bool> active;
  SearchCursor at = from;
  size_t left = budget;
  // The last walk stopped at a name whose publishers are now known: the
  // next one must take it, budget or not, so that every page moves on.
  bool learnt = false;
  while (at.shard < impl_->shard_count) {
    if (left == 0 && !learnt) return at;
    Impl::ShardWalk walk =
        impl_->WalkNameShard(at.shard, pattern, caller, at.id,
                             std::max<size_t>(left, 1), active, emit);
    const size_t spent = 1 + walk.end.examined + walk.checked * kCheckCost;
    left -= std::min(left, spent);
    learnt = !walk.unknown.empty();
    if (walk.page_full) return SearchCursor{at.shard, walk.end.next_id};
    if (learnt) {
      const size_t lookups = impl_->LearnLiveness(walk.unknown, now, active);
      left -= std::min(left, lookups * kCheckCost);
      at.id = walk.unjudged_id;
    } else if (walk.end.done) {
      at = SearchCursor{at.shard + 1, 0};
    } else {
      at.id = walk.end.next_id;
    }
  }
  return std::nullopt;
}

uint16_t Registry::search_epoch() const { return impl_->search_epoch; }

std::optional<Holder> Registry::Locate(absl::string_view name,
                                       absl::string_view caller,
                                       absl::Time now) const {
  // Under the name's lock, a uniform random sample of the publishers other
  // than the caller (reservoir sampling), copied inline.
  std::array<UserName, kLocateSample> sample;
  size_t sampled = 0;
  size_t candidates = 0;
  std::mt19937_64& random = ThreadRandom();
  {
    NameShard& shard = impl_->NameShardOf(name);
    MutexLock lock(&shard.mu);
    const Publishers* publishers = shard.Find(name);
    if (publishers == nullptr) return std::nullopt;
    for (const std::string& user : publishers->live()) {
      if (user == caller) continue;
      ++candidates;
      if (sampled < sample.size()) {
        sample[sampled++] = UserName(user);
      } else if (const size_t slot = random() % candidates;
                 slot < sample.size()) {
        sample[slot] = UserName(user);
      }
    }
  }
  // Trying a random sample in random order picks uniformly among its active
  // members, and by symmetry among all the active publishers.
  std::shuffle(sample.begin(), sample.begin() + sampled, random);
  for (size_t i = 0; i < sampled; ++i) {
    if (std::optional<Holder> holder = HolderIfServing(sample[i], name, now)) {
      return holder;
    }
  }
  if (candidates <= sampled) return std::nullopt;
  return LocateAmongAll(name, caller, now);
}

std::optional<Holder> Registry::LocateAmongAll(absl::string_view name,
                                               absl::string_view caller,
                                               absl::Time now) const {
  // Rare (no active holder among a sample of a popular name's publishers),
  // so a copy of them all on the heap is fine here.
  std::vector<UserName> publishers;
  {
    NameShard& shard = impl_->NameShardOf(name);
    MutexLock lock(&shard.mu);
    const Publishers* all = shard.Find(name);
    if (all == nullptr) return std::nullopt;
    for (const std::string& user : all->live()) {
      if (user != caller) publishers.emplace_back(user);
    }
  }
  std::shuffle(publishers.begin(), publishers.end(), ThreadRandom());
  for (const UserName& user : publishers) {
    if (std::optional<Holder> holder = HolderIfServing(user, name, now)) {
      return holder;
    }
  }
  return std::nullopt;
}

std::optional<Holder> Registry::HolderIfServing(const UserName& user,
                                                absl::string_view name,
                                                absl::Time now) const {
  std::optional<Impl::FileServer> server = impl_->LiveFileServer(user, now);
  // A session with file port 0 (a one-shot command) serves nothing.
  if (!server.has_value() || server->endpoint.port == 0) return std::nullopt;
  std::optional<FileMeta> meta = impl_->MetaOf(user, name);
  if (!meta.has_value()) return std::nullopt;  // unpublished meanwhile
  return Holder{user, server->endpoint, *meta, server->key};
}

size_t Registry::publication_count() const {
  return impl_->publication_count.load(std::memory_order_relaxed);
}

void Registry::ForEachPublication(
    absl::FunctionRef<void(absl::string_view user, absl::string_view name,
                           const FileMeta& meta)>
        fn) const {
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    PublicationShard& shard = impl_->publications[i];
    MutexLock lock(&shard.mu);
    for (const auto& [user, names] : shard.by_user) {
      for (const auto& [name, publication] : names) {
        if (publication.live) fn(user, name, publication.meta);
      }
    }
  }
}

}  // namespace pcfs
