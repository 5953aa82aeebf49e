// TicketKeyCache: the ticket keys a daemon thread derived lately, by holder
// session, as the HMAC states its tickets start from (TicketMacKey). A GET
// issues one ticket per holder it names; deriving a holder's key costs two
// HMACs and keying it two SHA-256 blocks more (bench/handler_bench
// BM_TicketKeyFor: several times the ticket itself), and a popular holder
// is named again and again.
//
// Set-associative: kSets sets of kWays entries, the set chosen by a hash
// of the session id (whose low bits are the registry's shard, not random),
// the ways of a set found by their ids, which share two cache lines; a
// full set gives up its oldest entry (first in, first out). 2,048 entries:
// a thread whose GETs name a thousand holders in turn derives 17 of them
// again a round, where the direct-mapped table of 1,024 this replaced
// derived about 600, every id that shared its slot
// (tests/unit/ticket_key_cache_test.cc). An entry counts only with the
// session key it was derived from, so a session gone and an id drawn again
// never reuse one.
//
// Per thread, not per session: the session table stays 64 bytes a session
// smaller. About 210 KB, mapped once in zeroed pages that are touched as
// its sets fill (core/base/zeroed_array.h). Not thread-safe. Pure (no I/O).
#ifndef PCFS_CORE_AUTH_TICKET_KEY_CACHE_H_
#define PCFS_CORE_AUTH_TICKET_KEY_CACHE_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "core/auth/hmac_sha256.h"
#include "core/auth/scram.h"
#include "core/base/zeroed_array.h"

namespace pcfs {

class TicketKeyCache {
 public:
  static constexpr size_t kSets = 128;  // a power of two
  static constexpr size_t kWays = 16;

  TicketKeyCache();
  TicketKeyCache(const TicketKeyCache&) = delete;
  TicketKeyCache& operator=(const TicketKeyCache&) = delete;
  ~TicketKeyCache();

  // TicketMacKey(TicketKeyFor(session_key)), the states of the tickets of
  // holder session `session_id`: from the cache, or derived and kept.
  // Session id 0 (never a session's) is derived and not kept.
  const HmacSha256Key& MacKeyOf(uint64_t session_id,
                                const SessionKey& session_key);

  // How many keys MacKeyOf derived (its misses).
  uint64_t derivations() const { return derivations_; }

 private:
  struct Entry {
    SessionKey session_key{};
    HmacSha256Key mac_key;
  };
  // One set's ids (0: an empty way), two cache lines.
  struct alignas(64) Ids {
    std::array<uint64_t, kWays> of{};
  };
  static_assert(sizeof(Ids) == 128);

  static size_t SetOf(uint64_t session_id);

  // Zeroed pages, touched as sets fill (core/base/zeroed_array.h).
  ZeroedArray<Ids> ids_;
  ZeroedArray<Entry> entries_;     // kSets * kWays, set by set
  ZeroedArray<uint8_t> next_way_;  // per set: the way to replace next
  Entry uncached_;                 // MacKeyOf(0, ...)'s answer
  uint64_t derivations_ = 0;
};

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_TICKET_KEY_CACHE_H_
