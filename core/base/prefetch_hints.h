// Prefetch hints: where the state that one session's datagrams read lies
// in memory, so that a reactor can start loading it for every datagram of a
// batch before it handles the first.
//
// Handling a session's datagram takes a handful of cache misses one after
// the other, each load depending on the one before: the session's entry in
// the session table, its presence in the registry, the reactor thread's
// ciphers for its key. With a thousand sessions and more, that state is
// mostly cold by the time the session's next datagram comes. The code that
// reads such state calls NotePrefetchHint with its address; while a
// SessionHints::Recorder is alive on the thread, the addresses are kept
// for its session. When a later batch holds a datagram of that session,
// the reactor's DatagramPeek calls SessionHints::Prefetch for it, which
// issues a prefetch for each, so that the loads of the whole batch overlap
// instead of each stalling its datagram in turn (measured: 2-4% more
// responses/s per CPU second, docs/PERFORMANCE.md).
//
// A hint is only ever prefetched, never dereferenced: the state it points
// to may have been freed or moved since it was noted (a session ended, a
// table grew), and a prefetch of any address has no effect but on the
// caches (it cannot fault). A stale or missing hint costs speed, never
// correctness. Without a recorder on the thread, NotePrefetchHint does
// nothing.
//
// Thread-compatible: one SessionHints per reactor thread, used by it alone.
#ifndef PCFS_CORE_BASE_PREFETCH_HINTS_H_
#define PCFS_CORE_BASE_PREFETCH_HINTS_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/base/zeroed_array.h"

namespace pcfs {

class SessionHints {
 public:
  // Ranges kept per session; further ones noted for it are dropped.
  static constexpr size_t kRanges = 7;
  // Cache lines one range covers at most.
  static constexpr size_t kMaxLines = 8;

  // `sessions`: how many sessions' hints it holds at once (rounded up to a
  // power of two); a session whose slot another one took has no hint.
  explicit SessionHints(size_t sessions = 2048);
  SessionHints(const SessionHints&) = delete;
  SessionHints& operator=(const SessionHints&) = delete;
  ~SessionHints();

  // While alive, the ranges that NotePrefetchHint gets on this thread
  // become the hints of `session_id`, replacing those it had. One recorder
  // at a time per thread.
  class Recorder {
   public:
    Recorder(SessionHints& hints, uint64_t session_id);
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;
    ~Recorder();
  };

  // Prefetches the ranges noted for `session_id`, if its slot has them.
  void Prefetch(uint64_t session_id) const;

  // The ranges kept for `session_id`, in the order noted, each as (address
  // of its first cache line, lines): what Prefetch would load. For tests.
  std::vector<std::pair<uintptr_t, size_t>> RangesOf(uint64_t session_id) const;

 private:
  friend void NotePrefetchHint(const void* address, size_t bytes);
  // A session id and its ranges, each packed as address | lines << 56
  // (user-space addresses fit in 56 bits); 0: no range. One cache line.
  struct alignas(64) Entry {
    uint64_t session_id = 0;
    uint64_t ranges[kRanges] = {};
  };
  static_assert(sizeof(Entry) == 64);

  Entry& SlotOf(uint64_t session_id) const;
  static void Note(const void* address, size_t bytes);

  static constinit thread_local Entry* recording_;
  const size_t mask_;
  // Zeroed pages, touched as sessions are noted (core/base/zeroed_array.h).
  mutable ZeroedArray<Entry> entries_;
};

// Notes that handling the current datagram read `bytes` at `address` (see
// the file comment). Cheap: one thread-local read when nothing records.
inline void NotePrefetchHint(const void* address, size_t bytes) {
  if (SessionHints::recording_ != nullptr) SessionHints::Note(address, bytes);
}

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_PREFETCH_HINTS_H_
