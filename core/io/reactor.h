// Reactor: the event loop under the daemon. One small interface, with an
// epoll backend (reactor_epoll.cc) and an io_uring backend, chosen at start;
// nothing above this line knows which one runs. Handlers never block: work
// that must wait is a new event.
//
// Thread-safety: a Reactor is driven by the one thread that calls Run(), and
// by no other for the rest of its life (the io_uring backend's ring takes
// submissions from that thread only); every Add...() must happen before
// Run() or from that thread. Only Stop() may be called from any thread (and
// from a signal-free context).
#ifndef PCFS_CORE_IO_REACTOR_H_
#define PCFS_CORE_IO_REACTOR_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"

namespace pcfs {

enum class ReactorBackend { kEpoll, kUring };

// Handles one datagram. `reply` is a buffer of at least 1200 bytes owned by
// the reactor; the handler writes its answer there and returns its length
// (0: no reply). The reactor sends the reply to `from`, batching sends. The
// spans and `from` are valid only during the call.
using DatagramHandler = absl::AnyInvocable<size_t(
    std::span<const uint8_t> datagram, const SocketAddress& from,
    std::span<uint8_t> reply)>;

// Shown every datagram of a received batch before the DatagramHandler gets
// the first of them, on the loop thread: to start loading what handling
// each will read (SessionHints), so that the loads of the whole batch
// overlap instead of each stalling its handler in turn. It must change
// nothing that a handler sees; the span is valid only during the call.
using DatagramPeek =
    absl::AnyInvocable<void(std::span<const uint8_t> datagram)>;

// Counters of the datagram path, summed over the reactor's sockets.
struct ReactorStats {
  uint64_t datagrams_received = 0;   // handed to a handler
  uint64_t datagrams_oversized = 0;  // over 2048 bytes: dropped unhandled
  uint64_t replies_sent = 0;
  // Send buffer full (EAGAIN), a send error, or a handler that returned more
  // than its reply buffer holds.
  uint64_t replies_dropped = 0;
  uint64_t socket_errors = 0;  // failed receives and sends, EAGAIN aside
};

class Reactor {
 public:
  // Creates a reactor with the requested backend; fails if the backend
  // cannot run here (the caller may then fall back to epoll).
  static absl::StatusOr<std::unique_ptr<Reactor>> Create(
      ReactorBackend backend);

  virtual ~Reactor() = default;

  // Serves a non-blocking UDP socket: every datagram received goes to
  // `handler`, and its reply, if any, goes back to the sender. Receives and
  // sends are batched (recvmmsg/sendmmsg, or io_uring). Datagrams of up to
  // 2048 bytes reach the handler whole, so it sees one over 1200 bytes and
  // can refuse it; larger ones are dropped and counted (datagrams_oversized).
  // A reply that cannot be sent at once (full send buffer) is dropped and
  // counted: this is UDP, and the client retransmits.
  absl::Status AddDatagramSocket(UniqueFd socket, DatagramHandler handler) {
    return AddDatagramSocket(std::move(socket), std::move(handler), nullptr);
  }
  // The same, with `peek` (may be null) shown each batch of datagrams
  // before `handler` gets them.
  virtual absl::Status AddDatagramSocket(UniqueFd socket,
                                         DatagramHandler handler,
                                         DatagramPeek peek) = 0;

  // Calls `fn` every `period` (a timerfd), starting one period from now.
  // Missed ticks are merged: fn runs once however many expirations passed.
  virtual absl::Status AddTimer(absl::Duration period,
                                absl::AnyInvocable<void()> fn) = 0;

  // Calls fn(signo) when one of `signals` arrives (a signalfd).
  // REQUIRES: the signals are blocked in every thread of the process (see
  // BlockSignals()), or the default action would run instead.
  virtual absl::Status AddSignals(std::initializer_list<int> signals,
                                  absl::AnyInvocable<void(int signo)> fn) = 0;

  // Calls fn() whenever `fd` is readable (level-triggered). The reactor does
  // not own `fd`.
  virtual absl::Status AddReadable(int fd, absl::AnyInvocable<void()> fn) = 0;

  // Handles now, on the loop thread, every datagram already queued on the
  // reactor's datagram sockets, replying as usual: until the sockets are
  // empty, or as many datagrams as were queued at the call have been
  // handled (QueuedDatagramsBound of reactor_batch.h, an upper bound), so
  // that a flood that refills a socket as fast as it is read holds the
  // loop for the queue it found and that bound's slack, not for ever. A
  // timer
  // calls it before work that must not overtake datagrams that have
  // already arrived: the daemon's expiry tick, so that a heartbeat waiting
  // on the socket is seen before its session's deadline is judged.
  // REQUIRES: called on the loop thread (from a timer, signal or readable
  // callback), never from inside a DatagramHandler.
  virtual void DrainDatagrams() = 0;

  // Runs the loop on the calling thread until Stop(). Returns an error only
  // when the backend itself fails. When it returns, the backend holds no
  // socket beyond the reactor's own descriptors: once the reactor is
  // destroyed, its ports are free at once. Run() may be called again.
  virtual absl::Status Run() = 0;

  // Makes Run() return soon, once the events of the current wake-up are
  // handled; a Stop() before Run() makes the next Run() return at once.
  // Thread-safe.
  virtual void Stop() = 0;

  // The counters so far. Thread-safe (each counter is read atomically, the
  // set is not a snapshot).
  virtual ReactorStats stats() const = 0;

  // "epoll" or "io_uring".
  virtual absl::string_view backend_name() const = 0;
};

// Blocks `signals` in the calling thread (and so in threads it creates
// afterwards). Call from main() before starting any thread.
absl::Status BlockSignals(std::initializer_list<int> signals);

}  // namespace pcfs

#endif  // PCFS_CORE_IO_REACTOR_H_
