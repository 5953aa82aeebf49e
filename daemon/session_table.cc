#include "daemon/session_table.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "core/base/mutex_lock.h"
#include "core/base/prefetch_hints.h"

namespace pcfs {
namespace {

constexpr size_t kMaxShards = 4096;

size_t RoundUpToPowerOfTwo(size_t n) {
  n = std::clamp<size_t>(n, 1, kMaxShards);
  size_t power = 1;
  while (power < n) power <<= 1;
  return power;
}

}  // namespace

SessionTable::SessionTable(size_t shard_count)
    : mask_(RoundUpToPowerOfTwo(shard_count) - 1),
      shards_(new Shard[mask_ + 1]) {}

SessionTable::~SessionTable() = default;

size_t SessionTable::SlotHash::operator()(Id id) const {
  return absl::Hash<uint64_t>()(id.value);
}

size_t SessionTable::SlotHash::operator()(uint32_t slot) const {
  return (*this)(Id{shard->At(slot).id});
}

bool SessionTable::SlotEq::operator()(uint32_t slot, Id id) const {
  return shard->At(slot).id == id.value;
}

SessionState* SessionTable::Shard::Find(uint64_t id) const {
  auto it = slots.find(Id{id});
  return it == slots.end() ? nullptr : &At(*it);
}

bool SessionTable::Insert(uint64_t id, const SessionKey& key) {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  if (shard.Find(id) != nullptr) return false;
  uint32_t slot;
  if (shard.free_slots.empty()) {
    if (shard.next_slot % kChunkEntries == 0) {
      shard.chunks.push_back(std::make_unique<SessionState[]>(kChunkEntries));
    }
    slot = shard.next_slot++;
  } else {
    slot = shard.free_slots.back();
    shard.free_slots.pop_back();
  }
  SessionState& state = shard.At(slot);
  state.id = id;  // before the insert, which hashes the slot by it
  state.key = key;
  shard.slots.insert(slot);
  return true;
}

void SessionTable::Erase(uint64_t id) {
  Shard& shard = ShardOf(id);
  std::shared_ptr<const ListSnapshot> snapshot;  // freed after the unlock
  MutexLock lock(&shard.mu);
  auto it = shard.slots.find(Id{id});
  if (it == shard.slots.end()) return;
  const uint32_t slot = *it;
  shard.slots.erase(it);  // before its id changes
  SessionState& state = shard.At(slot);
  snapshot = std::move(state.snapshot);
  state = SessionState();
  shard.free_slots.push_back(slot);
}

SessionTable::Admission SessionTable::Admit(uint64_t id,
                                            std::span<const uint8_t> datagram,
                                            uint64_t sequence,
                                            uint32_t request_id, uint8_t type,
                                            std::span<uint8_t> body_out) {
  Admission admission;
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  SessionState* state = shard.Find(id);
  if (state == nullptr) return admission;  // kUnknownSession
  NotePrefetchHint(state, sizeof(*state));
  // The tag first: a forged datagram must not move the replay window. The
  // sequence number is the header's, which the tag covers.
  if (!OpenDatagram(state->key, Direction::kToDaemon, datagram, body_out)
           .has_value()) {
    admission.verdict = Admission::kBadMac;
    return admission;
  }
  if (!state->replay.Check(sequence)) {
    admission.verdict = Admission::kReplayed;
    return admission;
  }
  state->replay.Record(sequence);
  admission.verdict = Admission::kAdmitted;
  admission.key = state->key;
  if (const int slot = FindCached(*state, request_id, type); slot >= 0) {
    if (state->cached_code[slot] == SessionState::kPendingCode) {
      admission.pending = true;
    } else {
      admission.cached_code = state->cached_code[slot];
    }
  }
  return admission;
}

int SessionTable::FindCached(const SessionState& state, uint32_t request_id,
                             uint8_t type) {
  if (type == 0) return -1;
  int found = -1;
  for (size_t i = 0; i < SessionState::kCachedReplies; ++i) {
    if (state.cached_type[i] == type &&
        state.cached_request_id[i] == request_id) {
      found = static_cast<int>(i);
    }
  }
  return found;
}

int SessionTable::OldestCached(const SessionState& state) {
  // A client numbers its requests up from a random start (core/client/
  // client_session.h), so the oldest answer is the smallest request id in
  // serial-number order (RFC 1982): the difference read as signed keeps the
  // order across a wrap past 2^32.
  int oldest = 0;
  for (size_t i = 0; i < SessionState::kCachedReplies; ++i) {
    if (state.cached_type[i] == 0) return static_cast<int>(i);
    if (static_cast<int32_t>(state.cached_request_id[i] -
                             state.cached_request_id[oldest]) < 0) {
      oldest = static_cast<int>(i);
    }
  }
  return oldest;
}

void SessionTable::Cache(SessionState& state, uint32_t request_id, uint8_t type,
                         uint8_t code) {
  int slot = FindCached(state, request_id, type);
  if (slot < 0) slot = OldestCached(state);
  state.cached_request_id[slot] = request_id;
  state.cached_type[slot] = type;
  state.cached_code[slot] = code;
}

void SessionTable::Complete(uint64_t id, uint32_t request_id, uint8_t type,
                            uint8_t code) {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  SessionState* state = shard.Find(id);
  if (state == nullptr) return;
  Cache(*state, request_id, type, code);
}

void SessionTable::MarkPending(uint64_t id, uint32_t request_id, uint8_t type) {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  SessionState* state = shard.Find(id);
  if (state == nullptr) return;
  Cache(*state, request_id, type, SessionState::kPendingCode);
}

void SessionTable::ForgetPending(uint64_t id, uint32_t request_id,
                                 uint8_t type) {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  SessionState* state = shard.Find(id);
  if (state == nullptr) return;
  const int slot = FindCached(*state, request_id, type);
  if (slot >= 0 && state->cached_code[slot] == SessionState::kPendingCode) {
    state->cached_type[slot] = 0;  // unused
  }
}

std::optional<SessionKey> SessionTable::KeyOf(uint64_t id) const {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  const SessionState* state = shard.Find(id);
  if (state == nullptr) return std::nullopt;
  return state->key;
}

void SessionTable::SetSnapshot(uint64_t id,
                               std::shared_ptr<const ListSnapshot> snapshot) {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  SessionState* state = shard.Find(id);
  // The old snapshot goes with `snapshot` after the unlock.
  if (state != nullptr) std::swap(state->snapshot, snapshot);
}

std::shared_ptr<const ListSnapshot> SessionTable::Snapshot(uint64_t id) const {
  Shard& shard = ShardOf(id);
  MutexLock lock(&shard.mu);
  const SessionState* state = shard.Find(id);
  return state == nullptr ? nullptr : state->snapshot;
}

size_t SessionTable::size() const {
  size_t count = 0;
  for (size_t i = 0; i <= mask_; ++i) {
    MutexLock lock(&shards_[i].mu);
    count += shards_[i].slots.size();
  }
  return count;
}

}  // namespace pcfs
