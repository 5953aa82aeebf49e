// What the files of RequestHandler share (handlers.cc: admission and
// dispatch; login_handlers.cc, list_handlers.cc, publication_handlers.cc:
// the requests). Internal to daemon/.
#ifndef PCFS_DAEMON_HANDLER_UTIL_H_
#define PCFS_DAEMON_HANDLER_UTIL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/auth/datagram_auth.h"
#include "core/proto/protocol.h"

namespace pcfs {
namespace handler_internal {

inline void Bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

// Writes the request's sequence number into a reply and seals it with the
// to-client key of the session whose key is `key`. Returns `size` (0 stays
// 0).
inline size_t SealReply(const SessionKey& key, uint64_t sequence,
                        std::span<uint8_t> reply, size_t size) {
  if (size < protocol::kHeaderSize) return size;
  SealDatagram(key, Direction::kToClient, sequence, reply.first(size));
  return size;
}

}  // namespace handler_internal
}  // namespace pcfs

#endif  // PCFS_DAEMON_HANDLER_UTIL_H_
