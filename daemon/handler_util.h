// What the files of RequestHandler share (handlers.cc: admission and
// dispatch; login_handlers.cc, list_handlers.cc, publication_handlers.cc:
// the requests). Internal to daemon/.
#ifndef PCFS_DAEMON_HANDLER_UTIL_H_
#define PCFS_DAEMON_HANDLER_UTIL_H_

#include <atomic>
#include <cstdint>

namespace pcfs {
namespace handler_internal {

inline void Bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace handler_internal
}  // namespace pcfs

#endif  // PCFS_DAEMON_HANDLER_UTIL_H_
