#include "core/auth/ticket_key_cache.h"

#include <openssl/crypto.h>

#include <bit>

#include "core/auth/ticket.h"
#include "core/base/fibonacci_hash.h"

namespace pcfs {

TicketKeyCache::TicketKeyCache()
    : ids_(kSets), entries_(kSets * kWays), next_way_(kSets) {}

TicketKeyCache::~TicketKeyCache() {
  // The ways ever used (a way keeps its id once set): wiping the others
  // would only fault in pages that never held a key.
  for (size_t set = 0; set < kSets; ++set) {
    for (size_t way = 0; way < kWays; ++way) {
      if (ids_[set].of[way] != 0) {
        OPENSSL_cleanse(&entries_[set * kWays + way], sizeof(Entry));
      }
    }
  }
  OPENSSL_cleanse(&uncached_, sizeof(uncached_));
}

size_t TicketKeyCache::SetOf(uint64_t session_id) {
  static_assert(std::has_single_bit(kSets) && kSets > 1);
  return FibonacciHash(session_id, std::countr_zero(kSets));
}

const HmacSha256Key& TicketKeyCache::MacKeyOf(uint64_t session_id,
                                              const SessionKey& session_key) {
  Entry* entry = &uncached_;
  if (session_id != 0) {
    const size_t set = SetOf(session_id);
    Ids& ids = ids_[set];
    Entry* ways = &entries_[set * kWays];
    // A way that holds this id with an older key is the one replaced: its
    // session has a new key. Else the set's oldest.
    size_t victim = kWays;
    for (size_t way = 0; way < kWays; ++way) {
      if (ids.of[way] != session_id) continue;
      if (ways[way].session_key == session_key) return ways[way].mac_key;
      victim = way;
    }
    if (victim == kWays) {
      victim = next_way_[set];
      next_way_[set] = static_cast<uint8_t>((victim + 1) % kWays);
    }
    ids.of[victim] = session_id;
    entry = &ways[victim];
  }
  entry->session_key = session_key;
  entry->mac_key = TicketMacKey(TicketKeyFor(session_key));
  ++derivations_;
  return entry->mac_key;
}

}  // namespace pcfs
