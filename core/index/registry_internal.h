// Registry's internals, shared by the files that implement it
// (registry.cc: presence; registry_publications.cc: publications and
// Locate; registry_search.cc: paged search). Not part of the public API:
// include core/index/registry.h.
//
// Layout. Three sharded maps, each shard with its own mutex, and a table
// of interned user names:
//   sessions     id -> Presence and user -> Presence, in a PresenceTable
//                (shards by user; a session id carries its shard's index)
//   names        a SearchIndex of the shard's names (their one copy), and
//                by its name ids the publishers: user id and FileMeta, the
//                authority on who publishes what         (shards by name)
//   publications user id -> references (shard, id) of the names it
//                publishes, derived from `names`          (shards by user)
//   users        user name <-> 4-byte id, for the publishers
// A publication thus costs its publisher entry (44 bytes, inline for a
// name's first publisher), its share of the search index, and a reference
// in its user's set; Publish, Unpublish and Locate each settle a
// publication under one name shard lock. No method holds two locks at
// once: each copies what it needs under one lock and lets it go before
// taking the next.
//
// The SearchIndex is split by name shard, under the shard's own mutex,
// rather than being one index under a mutex of its own: a name then enters
// and leaves the index in the same critical section that gives it its first
// publisher or takes its last. Search visits each shard.
//
// Dormant slots. A name whose last publisher leaves keeps its entry (with
// no publishers) and its place in the SearchIndex, and its user's set keeps
// its table slot. Publishing the same name again then revives them without
// allocating a table slot or an index posting. Every reader skips dormant
// slots. Each shard counts its dormant slots and sweeps them all once they
// exceed TooManyDormant(), so the sweep costs O(1) amortized per Unpublish and
// dormant slots never hold more than a bounded share of the memory.
#ifndef PCFS_CORE_INDEX_REGISTRY_INTERNAL_H_
#define PCFS_CORE_INDEX_REGISTRY_INTERNAL_H_

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "core/base/big_endian.h"
#include "core/base/mutex_lock.h"
#include "core/base/zeroed_array.h"
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

// The tag a Presence keeps of a login nonce.
inline uint64_t LoginNonceTag(const std::array<uint8_t, 16>& nonce) {
  return LoadBigEndian<uint64_t>(nonce.data());
}

// A session is live while now < deadline.
inline bool IsPresentAt(const Presence& session, absl::Time now) {
  return now < session.deadline();
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

// The user names that publish, interned: a publication holds its user's
// 4-byte id, not a copy of the name. Ids are never taken back (a user who
// stops publishing keeps its id), so there are at most as many as users
// who ever published, and a reader may keep one without a lock.
//
// Thread-safety: Intern and Find take the table's mutex (exclusively: the
// hold is one hash probe, and core/base/mutex_lock.h, which lets TSan see
// absl::Mutex, has no shared form). NameOf takes no
// lock: the name of an id never changes or moves once Intern returned it,
// and a thread that holds an id learnt it through a lock that the
// interning thread released afterwards (a name shard's, a publication
// shard's), which orders the name's writing before its reading.
class UserTable {
 public:
  static constexpr uint32_t kNoUser = 0xffffffff;

  // The chunk slots are zeroed pages (core/base/zeroed_array.h), not a
  // value-initialised new[]: a table touches only the slots it uses, where
  // new[] wrote all 128 KiB (and a fuzz target that makes three registries
  // an input spent most of its time there, tests/fuzz/journal_fuzz.cc).
  UserTable() : chunks_(kMaxChunks) {}
  UserTable(const UserTable&) = delete;
  UserTable& operator=(const UserTable&) = delete;
  ~UserTable() {
    MutexLock lock(&mu_);
    for (uint32_t chunk = 0; chunk * kChunkUsers < count_; ++chunk) {
      delete[] chunks_[chunk];
    }
  }

  // The id of `user`, made if it has none yet. kNoUser only once
  // kMaxChunks * kChunkUsers ids exist.
  uint32_t Intern(absl::string_view user) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    auto it = ids_.find(user);
    if (it != ids_.end()) return *it;
    if (count_ == kMaxChunks * kChunkUsers) return kNoUser;
    const uint32_t id = count_;
    std::string*& chunk = chunks_[id / kChunkUsers];
    if (chunk == nullptr) chunk = new std::string[kChunkUsers];
    chunk[id % kChunkUsers].assign(user.data(), user.size());
    ++count_;  // before the insert, which reads the name through NameOf
    ids_.insert(id);
    return id;
  }
  // The id of `user`, or kNoUser if it never published.
  uint32_t Find(absl::string_view user) const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    auto it = ids_.find(user);
    return it == ids_.end() ? kNoUser : *it;
  }
  // REQUIRES: `id` came from Intern (see the class comment).
  absl::string_view NameOf(uint32_t id) const {
    return chunks_[id / kChunkUsers][id % kChunkUsers];
  }

 private:
  static constexpr uint32_t kChunkUsers = 1024;
  static constexpr uint32_t kMaxChunks = 16384;  // 16M users; 128 KiB

  // Ids hashed and compared by the names they stand for, so that a name
  // finds its id with no second copy of the name.
  struct IdHash {
    using is_transparent = void;
    const UserTable* table;
    size_t operator()(absl::string_view user) const {
      return absl::Hash<absl::string_view>()(user);
    }
    size_t operator()(uint32_t id) const { return (*this)(table->NameOf(id)); }
  };
  struct IdEq {
    using is_transparent = void;
    const UserTable* table;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t a, absl::string_view b) const {
      return table->NameOf(a) == b;
    }
    bool operator()(absl::string_view a, uint32_t b) const {
      return a == table->NameOf(b);
    }
  };

  mutable absl::Mutex mu_;
  absl::flat_hash_set<uint32_t, IdHash, IdEq> ids_ ABSL_GUARDED_BY(mu_){
      0, IdHash{this}, IdEq{this}};
  uint32_t count_ ABSL_GUARDED_BY(mu_) = 0;
  // kMaxChunks slots, each null or a chunk of kChunkUsers names (owned:
  // the destructor frees them); a chunk is made under mu_ and never moves
  // or goes while the table lives.
  ZeroedArray<std::string*> chunks_;
};

// A name as the user side of the registry refers to it, in 4 bytes: its
// name shard in the low `shard_bits` bits (log2 of the name shard count),
// its id in that shard's SearchIndex in the others. The id is the name's
// while it has a publisher; a reader checks that the user still publishes
// at the reference before it trusts it. A name shard thus holds at most
// 2^(32 - shard_bits) ids (2^29 with the default 8 shards): Publish refuses
// a name beyond that.
inline uint32_t NameRef(size_t shard, uint32_t id, uint32_t shard_bits) {
  return (id << shard_bits) | static_cast<uint32_t>(shard);
}
inline size_t ShardOfRef(uint32_t ref, uint32_t shard_bits) {
  return ref & ((uint32_t{1} << shard_bits) - 1);
}
inline uint32_t IdOfRef(uint32_t ref, uint32_t shard_bits) {
  return ref >> shard_bits;
}
inline uint64_t MaxRefIds(uint32_t shard_bits) {
  return uint64_t{1} << (32 - shard_bits);
}

// The user side: for each user id, the references of the names it
// publishes. Derived from the name shards (the authority) and kept in step
// with them by Registry::Impl::SyncUserSide; serves PublishedBy. A hash
// set, not an ordered one, though that would take half the bytes: a hash
// set keeps its room when a reference goes, so that pub/unp cycles
// allocate nothing, where a btree frees and remakes nodes at its edges.
struct PublicationShard {
  absl::Mutex mu;
  absl::flat_hash_map<uint32_t, absl::flat_hash_set<uint32_t>> by_user
      ABSL_GUARDED_BY(mu);
};

// One publisher of a name: its user id and what it reported of the file.
// Packed to 44 bytes (FileMeta alone is 40 with 8-byte alignment), as one
// of these is most of what a publication costs beyond its name.
struct PublisherEntry {
  uint32_t user = 0;
  uint32_t size_low = 0;
  uint32_t size_high = 0;
  std::array<uint8_t, 32> root{};

  PublisherEntry() = default;
  PublisherEntry(uint32_t user_id, const FileMeta& meta) : user(user_id) {
    set_meta(meta);
  }
  FileMeta meta() const {
    FileMeta meta;
    meta.size = (uint64_t{size_high} << 32) | size_low;
    meta.root = root;
    return meta;
  }
  void set_meta(const FileMeta& meta) {
    size_low = static_cast<uint32_t>(meta.size);
    size_high = static_cast<uint32_t>(meta.size >> 32);
    root = meta.root;
  }
};
static_assert(sizeof(PublisherEntry) == 44);

// The publishers of a name, with their metas: the authority on who
// publishes what. Empty while the name is dormant. One publisher (the
// common case) is held inline, in the 44 bytes of one PublisherEntry, with
// no size field beside it: its user field tells an empty inline entry
// (kEmpty) and the heap form (kOnHeap) apart from a publisher, as user ids
// stay below 2^24 (UserTable). More publishers go to a heap array; a
// removed one leaves its room for the next Add, so that pub/unp cycles of
// a name allocate nothing, until Clear.
class Publishers {
 public:
  Publishers() { one_.user = kEmpty; }
  ~Publishers() { Clear(); }
  Publishers(const Publishers&) = delete;  // owns its heap array
  Publishers& operator=(const Publishers&) = delete;

  std::span<const PublisherEntry> live() const {
    if (one_.user == kOnHeap) return {heap().entries, heap().count};
    return {&one_, one_.user == kEmpty ? 0u : 1u};
  }
  bool empty() const { return live().empty(); }
  PublisherEntry* Find(uint32_t user) {
    for (const PublisherEntry& entry : live()) {
      if (entry.user == user) return const_cast<PublisherEntry*>(&entry);
    }
    return nullptr;
  }
  bool Contains(uint32_t user) const {
    for (const PublisherEntry& entry : live()) {
      if (entry.user == user) return true;
    }
    return false;
  }
  // REQUIRES: !Contains(user), user < kOnHeap.
  void Add(uint32_t user, const FileMeta& meta) {
    if (one_.user == kEmpty) {
      one_ = PublisherEntry(user, meta);
      return;
    }
    if (one_.user != kOnHeap) {  // the second publisher: to the heap
      Heap fresh{new PublisherEntry[2], 1, 2};
      fresh.entries[0] = one_;
      set_heap(fresh);
    }
    Heap array = heap();
    if (array.count == array.capacity) {
      PublisherEntry* bigger = new PublisherEntry[size_t{2} * array.capacity];
      std::copy(array.entries, array.entries + array.count, bigger);
      delete[] array.entries;
      array.entries = bigger;
      array.capacity *= 2;
    }
    array.entries[array.count++] = PublisherEntry(user, meta);
    set_heap(array);
  }
  // Returns false if `user` is not a publisher.
  bool Remove(uint32_t user) {
    PublisherEntry* entry = Find(user);
    if (entry == nullptr) return false;
    if (one_.user != kOnHeap) {
      one_.user = kEmpty;
      return true;
    }
    Heap array = heap();
    *entry = array.entries[--array.count];
    set_heap(array);
    return true;
  }
  // Lets go of any heap room (for a swept, dormant name).
  void Clear() {
    if (one_.user == kOnHeap) delete[] heap().entries;
    one_ = PublisherEntry();
    one_.user = kEmpty;
  }

 private:
  static constexpr uint32_t kEmpty = 0xffffffff;
  static constexpr uint32_t kOnHeap = 0xfffffffe;
  // The heap form, kept in the bytes of `one_` after its user field
  // (copied in and out: those bytes are only 4-aligned).
  struct Heap {
    PublisherEntry* entries;
    uint32_t count;
    uint32_t capacity;
  };
  static_assert(sizeof(Heap) <= sizeof(PublisherEntry) - sizeof(uint32_t));
  Heap heap() const {
    Heap array;
    std::memcpy(&array, tail(), sizeof(array));
    return array;
  }
  void set_heap(const Heap& array) {
    one_.user = kOnHeap;
    std::memcpy(tail(), &array, sizeof(array));
  }
  const unsigned char* tail() const {
    return reinterpret_cast<const unsigned char*>(&one_) + sizeof(uint32_t);
  }
  unsigned char* tail() {
    return reinterpret_cast<unsigned char*>(&one_) + sizeof(uint32_t);
  }

  PublisherEntry one_;
};
static_assert(sizeof(Publishers) == 44);

// Publishers by name id, in chunks that never move: a std::vector would
// hold up to twice the room it needs after growing.
class PublishersById {
 public:
  Publishers& operator[](uint32_t id) {
    return chunks_[id / kChunk][id % kChunk];
  }
  const Publishers& operator[](uint32_t id) const {
    return chunks_[id / kChunk][id % kChunk];
  }
  // Makes room for ids below `limit`.
  void Reserve(uint32_t limit) {
    while (chunks_.size() * kChunk < limit) {
      chunks_.push_back(std::make_unique<Publishers[]>(kChunk));
    }
  }

 private:
  static constexpr uint32_t kChunk = 1024;
  std::vector<std::unique_ptr<Publishers[]>> chunks_;
};

struct NameShard {
  absl::Mutex mu;
  // Every name of the shard, dormant ones included: the one copy of each
  // name's bytes, and the ids that index `publishers`.
  SearchIndex index ABSL_GUARDED_BY(mu);
  PublishersById publishers ABSL_GUARDED_BY(mu);
  size_t dormant ABSL_GUARDED_BY(mu) = 0;  // names without publishers

  // The publishers of `name`, or nullptr if it is not in the index.
  Publishers* Find(absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const uint32_t id = index.Find(name);
    return id == SearchIndex::kNoId ? nullptr : &publishers[id];
  }

  // Drops every dormant name from the index.
  void SweepDormant() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (uint32_t id = 0; id < index.id_limit(); ++id) {
      if (!index.Contains(id) || !publishers[id].empty()) continue;
      index.Remove(index.NameOf(id));
      publishers[id].Clear();
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
Verdict Judge(std::span<const PublisherEntry> publishers,
              const absl::flat_hash_map<uint32_t, bool>& active,
              std::vector<uint32_t>& unknown);

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
        name_shard_count(std::min(
            shard_count, RoundUpToPowerOfTwo(options.name_shard_count))),
        name_mask(name_shard_count - 1),
        name_shard_bits(
            static_cast<uint32_t>(std::countr_zero(name_shard_count))),
        sessions(new PresenceShard[shard_count]),
        publications(new PublicationShard[shard_count]),
        names(new NameShard[name_shard_count]) {}

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
  size_t NameShardIndex(absl::string_view name) const {
    return ShardOf(absl::Hash<absl::string_view>()(name), name_mask);
  }
  NameShard& NameShardOf(absl::string_view name) const {
    return names[NameShardIndex(name)];
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
    std::array<uint8_t, 32> key_pin{};
  };
  std::optional<FileServer> LiveFileServer(absl::string_view user,
                                           absl::Time now) const;

  // ---- Publications ----

  PublicationShard& PublicationShardOf(uint32_t user) const {
    return publications[ShardOf(absl::Hash<uint32_t>()(user), mask)];
  }

  // Whether `user` publishes the name at `ref` (whichever name holds that
  // id now), by the name shard.
  bool PublishesAt(uint32_t user, uint32_t ref) const;

  // Brings the user side in line with the name shards for (user, ref)
  // after a change to the latter that left it in state `publishes`.
  // Concurrent changes to the same pair may apply their user-side updates
  // in the other order, so after each update this re-reads the authority
  // and repeats until they agree. Every repeat needs another thread's
  // change to the same pair in between, and that thread re-checks after
  // its own update, so the last update to land always reflects the last
  // change.
  void SyncUserSide(uint32_t user, uint32_t ref, bool publishes) const;

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
    std::vector<uint32_t> unknown;
    uint32_t unjudged_id = 0;
  };

  // Walks name shard `shard_index` from `first_id` under its lock, emitting
  // listed names, within `budget` units (checking at least one name).
  ShardWalk WalkNameShard(
      size_t shard_index, absl::string_view pattern, uint32_t caller,
      uint32_t first_id, size_t budget,
      const absl::flat_hash_map<uint32_t, bool>& active,
      absl::FunctionRef<bool(absl::string_view)> emit) const;

  // Looks up the sessions of `publishers` not yet in `active`, with no
  // name shard lock held, and records each answer there. Returns the
  // lookups made.
  size_t LearnLiveness(const std::vector<uint32_t>& publishers, absl::Time now,
                       absl::flat_hash_map<uint32_t, bool>& active) const;

  const absl::Duration session_timeout;
  const size_t shard_count;  // of sessions and publications
  const size_t mask;
  const size_t name_shard_count;  // of names: see Options::name_shard_count
  const size_t name_mask;
  const uint32_t name_shard_bits;  // log2(name_shard_count), for NameRef
  const std::unique_ptr<PresenceShard[]> sessions;
  const std::unique_ptr<PublicationShard[]> publications;
  const std::unique_ptr<NameShard[]> names;
  mutable UserTable users;
  std::atomic<size_t> publication_count{0};
  const uint16_t search_epoch = static_cast<uint16_t>(ThreadRandom()());
};

}  // namespace pcfs

#endif  // PCFS_CORE_INDEX_REGISTRY_INTERNAL_H_
