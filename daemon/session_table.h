// SessionTable: what the daemon keeps for each session beside the
// registry's presence record (who, where, until when): the session key from
// the SCRAM login, the replay window over the client's sequence numbers,
// the answers to recent mutating requests (for retransmissions) and the LAP
// or LPF list being paged through.
//
// A session request passes here twice: Admit (MAC, replay window, cached
// answer) before it runs, and Complete (its answer cached) after. A `pub`
// or `unp` waiting for its journal batch is marked pending in between
// (MarkPending), so that its retransmissions are dropped, not run again. The
// registry's part of admission (the session is live, its endpoint) is
// Registry::Admit, called by the handler after Admit here succeeds.
//
// Consistency with the Registry. An entry is inserted after Registry::Login
// made the session, and erased after the registry's presence is gone (by
// logout, expiry or a credentials reload). So an entry may briefly outlive
// its presence, never the other way round for a session whose id a client
// knows; a request in that window passes Admit here and is refused by
// Registry::Admit ("unknown session"), as it would have been a moment
// later. The expiry wheel erases what any path left behind: a session the
// registry no longer holds is erased here when its timer fires.
//
// Thread-safety: all methods may be called concurrently from any thread.
// Entries are sharded by session id (its low bits), one absl::Mutex per
// shard; no method holds two locks, and none calls into another shared
// component while holding one (Admit only opens the datagram, pure code).
//
// Allocation: Admit, Complete, MarkPending, ForgetPending, KeyOf and
// Snapshot allocate nothing; Insert reuses the slot of an erased entry.
#ifndef PCFS_DAEMON_SESSION_TABLE_H_
#define PCFS_DAEMON_SESSION_TABLE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "core/auth/datagram_auth.h"
#include "core/auth/replay_window.h"

namespace pcfs {

// A list of names taken at one moment, served to a client page by page.
struct ListSnapshot {
  uint32_t id = 0;
  std::vector<std::string> names;  // sorted
};

// The daemon's part of one session, as stored. Public so that
// bench/memory_bench.cc can report its size; reached only through
// SessionTable. Ordered to leave no padding to speak of.
struct SessionState {
  uint64_t id = 0;   // the session's; 0 while the slot is free
  SessionKey key{};  // MACs its download tickets and seals its datagrams
  ReplayWindow replay;
  // Answers to the last kCachedReplies mutating requests: request id, type
  // (0: slot unused; no request type is 0) and code, or kPendingCode while
  // the request waits for its journal batch. A new answer takes a free slot,
  // else the oldest request's (SessionTable::Cache): no cursor, which keeps
  // the state 8 bytes smaller (its padding to the next pointer).
  static constexpr size_t kCachedReplies = 4;
  static constexpr uint8_t kPendingCode = 254;  // no ResultCode is 254
  std::array<uint32_t, kCachedReplies> cached_request_id{};
  std::array<uint8_t, kCachedReplies> cached_type{};
  std::array<uint8_t, kCachedReplies> cached_code{};
  // The LAP or LPF list being paged through, if any (SCH pages straight
  // from the index and keeps nothing here).
  std::shared_ptr<const ListSnapshot> snapshot;
};

class SessionTable {
 public:
  explicit SessionTable(size_t shard_count = 64);  // rounded up to 2^k
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;
  ~SessionTable();

  // Stores `key` for session `id` if the table has no entry for it yet (a
  // retransmitted login gets its session back with its replay window and
  // cached answers intact). Returns true if it inserted. Only the session
  // key is kept: the two datagram keys are derived from it by the reactor
  // thread's cache of keyed contexts when it misses (core/auth/
  // datagram_auth.h), which keeps a session at 32 bytes of keys, not 64.
  bool Insert(uint64_t id, const SessionKey& key);
  // Forgets session `id` (no-op if absent).
  void Erase(uint64_t id);

  // What Admit decided about one datagram.
  struct Admission {
    enum Verdict { kUnknownSession, kBadMac, kReplayed, kAdmitted };
    Verdict verdict = kUnknownSession;
    SessionKey key{};  // when admitted: to seal the reply with
    // When admitted and the request is a retransmission of a mutating
    // request already carried out: the code it was answered with.
    std::optional<uint8_t> cached_code;
    // When admitted and the request is a retransmission of a mutating
    // request still waiting to be made durable (MarkPending): it gets no
    // reply of its own; the one its first copy gets comes soon.
    bool pending = false;
  };

  // Admits a sealed datagram of session `id`: it must open under the
  // session's to-daemon key (checked first, so that a forged datagram
  // cannot move the replay window), its body decrypted into `body_out`, and
  // its sequence number must be new to the replay window, which then
  // records it. Looks up the answer to a retransmitted request (same
  // request id and type) among the cached ones. Unless admitted, `body_out`
  // holds no plaintext. REQUIRES: body_out.size() >= the datagram's body.
  Admission Admit(uint64_t id, std::span<const uint8_t> datagram,
                  uint64_t sequence, uint32_t request_id, uint8_t type,
                  std::span<uint8_t> body_out);

  // Caches the answer `code` to the mutating request (request_id, type):
  // in place of its pending mark if it has one, else replacing the oldest
  // cached answer. No-op if the session is gone.
  void Complete(uint64_t id, uint32_t request_id, uint8_t type, uint8_t code);

  // Marks the mutating request (request_id, type) as submitted and not yet
  // answered, replacing the oldest cached answer, so that Admit tells its
  // retransmissions apart (Admission::pending). Complete or ForgetPending
  // ends the mark. No-op if the session is gone.
  void MarkPending(uint64_t id, uint32_t request_id, uint8_t type);
  // Drops the pending mark of (request_id, type), if any: the request was
  // answered with an error that is not cached (a retransmission runs it
  // again). No-op if the session is gone.
  void ForgetPending(uint64_t id, uint32_t request_id, uint8_t type);

  // The key of session `id` (to MAC a download ticket for its holder).
  std::optional<SessionKey> KeyOf(uint64_t id) const;

  // Sets or reads the list snapshot session `id` pages through. Snapshot
  // returns nullptr if there is none or the session is gone.
  void SetSnapshot(uint64_t id, std::shared_ptr<const ListSnapshot> snapshot);
  std::shared_ptr<const ListSnapshot> Snapshot(uint64_t id) const;

  // Entries stored.
  size_t size() const;

 private:
  // One shard's entries: SessionState objects in fixed-size chunks that
  // never move, and a hash set of their slot numbers, hashed and compared
  // by the ids the slots hold, so that an empty hash slot costs 4 bytes
  // rather than a whole SessionState (or 16 for an id -> slot map); an
  // erased entry's slot is reset and reused by the next Insert.
  struct Shard;
  struct Id {
    uint64_t value;
  };
  struct SlotHash {
    using is_transparent = void;
    const Shard* shard;
    size_t operator()(Id id) const;
    size_t operator()(uint32_t slot) const;
  };
  struct SlotEq {
    using is_transparent = void;
    const Shard* shard;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t slot, Id id) const;
    bool operator()(Id id, uint32_t slot) const { return (*this)(slot, id); }
  };
  struct Shard {
    mutable absl::Mutex mu;
    // Read by SlotHash and SlotEq, which run under mu.
    std::vector<std::unique_ptr<SessionState[]>> chunks ABSL_GUARDED_BY(mu);
    absl::flat_hash_set<uint32_t, SlotHash, SlotEq> slots ABSL_GUARDED_BY(mu){
        0, SlotHash{this}, SlotEq{this}};
    std::vector<uint32_t> free_slots ABSL_GUARDED_BY(mu);
    uint32_t next_slot ABSL_GUARDED_BY(mu) = 0;  // slots ever handed out

    SessionState& At(uint32_t slot) const ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return chunks[slot / kChunkEntries][slot % kChunkEntries];
    }
    // The entry of `id`, or nullptr.
    SessionState* Find(uint64_t id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  };
  static constexpr uint32_t kChunkEntries = 256;

  Shard& ShardOf(uint64_t id) const { return shards_[id & mask_]; }
  // The slot caching (request_id, type), or -1. REQUIRES: the shard's
  // lock held.
  static int FindCached(const SessionState& state, uint32_t request_id,
                        uint8_t type);
  // A free slot, else the one of the oldest request. REQUIRES: the shard's
  // lock held.
  static int OldestCached(const SessionState& state);
  // Caches `code` for (request_id, type) in its slot or the oldest one.
  // REQUIRES: the shard's lock held.
  static void Cache(SessionState& state, uint32_t request_id, uint8_t type,
                    uint8_t code);

  const size_t mask_;
  const std::unique_ptr<Shard[]> shards_;
};

}  // namespace pcfs

#endif  // PCFS_DAEMON_SESSION_TABLE_H_
