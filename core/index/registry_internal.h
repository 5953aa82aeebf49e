// Registry's internals, shared by the files that implement it
// (registry.cc: presence; registry_publications.cc: publications and
// Locate; registry_search.cc: paged search). Not part of the public API:
// include core/index/registry.h.
//
// Layout. Three sharded maps, each shard with its own mutex:
//   sessions     id -> Presence and user -> Presence, in a PresenceTable
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
#ifndef PCFS_CORE_INDEX_REGISTRY_INTERNAL_H_
#define PCFS_CORE_INDEX_REGISTRY_INTERNAL_H_

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "core/index/registry.h"
#include "core/index/search_index.h"

namespace pcfs {
namespace registry_internal {

constexpr size_t kMaxShards =
    4096;  // SearchPage and ActiveUsers visit every shard

inline size_t RoundUpToPowerOfTwo(size_t n) {
  n = std::clamp<size_t>(n, 1, kMaxShards);
  size_t power = 1;
  while (power < n) power <<= 1;
  return power;
}

// The shard of a key, from bits 40 and up of its hash: flat_hash_map takes
// its control bytes from the low 7 bits and the table position from the
// bits just above, so shard choice leaves both independent (and the tables
// in a shard spread evenly) below 2^33 slots.
inline size_t ShardOf(size_t hash, size_t mask) {
  return static_cast<size_t>(static_cast<uint64_t>(hash) >> 40) & mask;
}

// A session is live while now < deadline.
inline bool IsPresentAt(const Presence& session, absl::Time now) {
  return now < session.deadline;
}

// Session ids and the choice among holders need no secrecy (a session is
// guarded by its key), only spread. std::mt19937_64 rather than
// absl::BitGen: Debian's abseil is built without TSan, and its seed pool's
// internal lock shows up as races in our TSan builds.
std::mt19937_64& ThreadRandom();

// The presence records of one shard: Presence objects in fixed-size chunks
// that never move, indexed by id and by user. A flat_hash_map<id, Presence>
// would keep every empty slot Presence-sized (at its typical half load,
// about 200 bytes per session); here an empty slot of either index costs 4
// bytes, and a freed Presence is reset and reused by the next login. Not
// thread-safe: PresenceShard's mutex.
class PresenceTable {
 public:
  PresenceTable() = default;
  PresenceTable(const PresenceTable&) = delete;  // the index points at it
  PresenceTable& operator=(const PresenceTable&) = delete;

  // The session `id`, or nullptr.
  Presence* Find(uint64_t id) {
    auto it = slot_of_id_.find(Id{id});
    return it == slot_of_id_.end() ? nullptr : &At(*it);
  }
  // The session of `user`, or nullptr.
  Presence* FindUser(absl::string_view user) {
    auto it = slot_of_user_.find(user);
    return it == slot_of_user_.end() ? nullptr : &At(*it);
  }
  // A fresh Presence for `user` (with only id and user set) stored under
  // `id`; nullptr if `id` is taken.
  // REQUIRES: FindUser(user) == nullptr.
  Presence* Insert(uint64_t id, absl::string_view user) {
    if (Find(id) != nullptr) return nullptr;
    uint32_t slot;
    if (free_.empty()) {
      if (next_ % kChunkSessions == 0) {
        chunks_.push_back(std::make_unique<Presence[]>(kChunkSessions));
      }
      slot = next_++;
    } else {
      slot = free_.back();
      free_.pop_back();
    }
    Presence& session = At(slot);
    session.id = id;  // before the inserts, which hash the slot by both
    session.user.assign(user.data(), user.size());
    slot_of_id_.insert(slot);
    slot_of_user_.insert(slot);
    return &session;
  }
  void Erase(uint64_t id) {
    auto it = slot_of_id_.find(Id{id});
    if (it == slot_of_id_.end()) return;
    const uint32_t slot = *it;
    slot_of_id_.erase(it);      // before its id changes
    slot_of_user_.erase(slot);  // before its user changes
    At(slot) = Presence();      // lets go of its user string
    free_.push_back(slot);
  }
  size_t size() const { return slot_of_id_.size(); }
  // Calls fn(session) for every session.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (uint32_t slot : slot_of_id_) fn(At(slot));
  }

 private:
  static constexpr uint32_t kChunkSessions = 256;
  Presence& At(uint32_t slot) const {
    return chunks_[slot / kChunkSessions][slot % kChunkSessions];
  }

  // The id index holds slots, hashed and compared by their sessions' ids,
  // so that an empty hash slot costs 4 bytes (16 for an id -> slot map).
  struct Id {
    uint64_t value;
  };
  struct IdOfSlotHash {
    using is_transparent = void;
    const PresenceTable* table;
    size_t operator()(Id id) const { return absl::Hash<uint64_t>()(id.value); }
    size_t operator()(uint32_t slot) const {
      return (*this)(Id{table->At(slot).id});
    }
  };
  struct IdOfSlotEq {
    using is_transparent = void;
    const PresenceTable* table;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, Id b) const {
      return table->At(a).id == b.value;
    }
    bool operator()(Id a, uint32_t b) const {
      return a.value == table->At(b).id;
    }
  };

  // The user index holds slots, hashed and compared by their sessions'
  // user names, so that a user costs no second copy of its name.
  struct UserOfSlotHash {
    using is_transparent = void;
    const PresenceTable* table;
    size_t operator()(absl::string_view user) const {
      return absl::Hash<absl::string_view>()(user);
    }
    size_t operator()(uint32_t slot) const {
      return (*this)(absl::string_view(table->At(slot).user));
    }
  };
  struct UserOfSlotEq {
    using is_transparent = void;
    const PresenceTable* table;
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

  absl::flat_hash_set<uint32_t, IdOfSlotHash, IdOfSlotEq> slot_of_id_{
      0, IdOfSlotHash{this}, IdOfSlotEq{this}};
  absl::flat_hash_set<uint32_t, UserOfSlotHash, UserOfSlotEq> slot_of_user_{
      0, UserOfSlotHash{this}, UserOfSlotEq{this}};
  std::vector<std::unique_ptr<Presence[]>> chunks_;
  std::vector<uint32_t> free_;  // slots of ended sessions
  uint32_t next_ = 0;           // slots ever handed out
};

struct PresenceShard {
  absl::Mutex mu;
  PresenceTable sessions ABSL_GUARDED_BY(mu);
};

// Whether a shard holding `dormant` dormant slots beside `live` live ones
// should sweep them: past a fixed slack (so that a small working set of
// names cycling through pub/unp never sweeps) and a quarter of the live.
constexpr size_t kDormantSlack = 64;
inline bool TooManyDormant(size_t dormant, size_t live) {
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
              std::vector<std::string>& unknown);

// Once a SearchPage walk meets a name it cannot judge, it gathers the
// unknown publishers of the names after it too, up to this many, so that
// one round of lookups (and one more walk) serves a whole page rather than
// one name.
constexpr size_t kMaxUnknownPerWalk = 64;

}  // namespace registry_internal

using namespace registry_internal;  // NOLINT: the implementation files' own

struct Registry::Impl {
  explicit Impl(const Options& options)
      : session_timeout(options.session_timeout),
        shard_count(RoundUpToPowerOfTwo(options.shard_count)),
        mask(shard_count - 1),
        sessions(new PresenceShard[shard_count]),
        publications(new PublicationShard[shard_count]),
        names(new NameShard[shard_count]) {}

  // A session lives in its user's shard, and its id carries that shard's
  // index in its low bits, so that both find it under one lock.
  size_t UserShardIndex(absl::string_view user) const {
    return ShardOf(absl::Hash<absl::string_view>()(user), mask);
  }
  PresenceShard& PresenceShardOfUser(absl::string_view user) const {
    return sessions[UserShardIndex(user)];
  }
  PresenceShard& PresenceShardOf(uint64_t id) const {
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

  // Where `user`'s live session serves files, and its id; nullopt if the
  // user has no live session or it serves nothing (file port 0).
  struct FileServer {
    Endpoint endpoint;
    uint64_t session_id = 0;
  };
  std::optional<FileServer> LiveFileServer(absl::string_view user,
                                           absl::Time now) const;

  // ---- Publications ----

  // The meta of `user`'s live publication of `name`, if any.
  std::optional<FileMeta> MetaOf(absl::string_view user,
                                 absl::string_view name) const;

  // Records in the name map whether `user` publishes `name`.
  void SetPublisher(absl::string_view name, absl::string_view user,
                    bool publishes) const;

  // Brings the name map in line with the publication map for (user, name)
  // after a change to the latter that left it in state `publishes`.
  // Concurrent changes to the same pair may apply their name-map updates in
  // the other order, so after each update this re-reads the authority and
  // repeats until they agree. Every repeat needs another thread's change to
  // the same pair in between, and that thread re-checks after its own
  // update, so the last update to land always reflects the last change.
  void SyncPublisher(absl::string_view user, absl::string_view name,
                     bool publishes) const;

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
  const std::unique_ptr<PresenceShard[]> sessions;
  const std::unique_ptr<PublicationShard[]> publications;
  const std::unique_ptr<NameShard[]> names;
  std::atomic<size_t> publication_count{0};
  const uint16_t search_epoch = static_cast<uint16_t>(ThreadRandom()());
};

}  // namespace pcfs

#endif  // PCFS_CORE_INDEX_REGISTRY_INTERNAL_H_
