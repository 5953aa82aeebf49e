// The backend factories behind Reactor::Create(). Internal to core/: nothing
// above the reactor line includes this; use Reactor::Create().
#ifndef PCFS_CORE_IO_REACTOR_BACKENDS_H_
#define PCFS_CORE_IO_REACTOR_BACKENDS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/base/unique_fd.h"
#include "core/io/reactor.h"

namespace pcfs::internal {

// reactor_epoll.cc: one epoll fd, eventfd/timerfd/signalfd, recvmmsg and
// sendmmsg for datagrams.
absl::StatusOr<std::unique_ptr<Reactor>> NewEpollReactor();

// When the io_uring backend's kernel work behind completions runs.
enum class UringTaskRun {
  // At the loop's next system call (IORING_SETUP_COOP_TASKRUN): the
  // default.
  kCooperative,
  // Only while the loop waits (IORING_SETUP_DEFER_TASKRUN, kernel 6.1 on),
  // falling back to kCooperative where the kernel refuses it. Not the
  // default: under load (the daemon capped at a quarter of a CPU, 1,000
  // peers) on kernel 6.18, about one request in a thousand waited over
  // 200 ms for its reply, long enough for the client to send it again
  // (p99.9 210-220 ms; docs/ARCHITECTURE.md has the figures).
  kDeferred,
};

// reactor_uring.cc: one io_uring, a multishot recvmsg per datagram socket
// over a provided-buffer ring, sendmsg per reply, polls for the other fds.
// Fails, saying why, when the kernel refuses the ring or the buffer ring.
// The kernel ties a ring to the thread that created it: when the reactor is
// destroyed, a blocking call of that thread may fail once with EINTR (task
// work, not a signal), so that thread must retry EINTR.
absl::StatusOr<std::unique_ptr<Reactor>> NewUringReactor(
    UringTaskRun task_run = UringTaskRun::kCooperative);

// What both backends watch the same way: an fd they own and the callback
// to run when it is readable.
struct ReadableSource {
  UniqueFd fd;
  absl::AnyInvocable<void()> on_readable;
};

// A timerfd firing every `period`; its callback reads the expiration count
// and calls fn once however many expirations passed.
absl::StatusOr<ReadableSource> MakeTimerSource(absl::Duration period,
                                               absl::AnyInvocable<void()> fn);

// A signalfd for `signals`; its callback reads a batch of signals and calls
// fn(signo) for each.
absl::StatusOr<ReadableSource> MakeSignalSource(
    std::initializer_list<int> signals, absl::AnyInvocable<void(int)> fn);

// InvalidArgument unless `fd` is a datagram socket.
absl::Status CheckDatagramSocket(int fd);

}  // namespace pcfs::internal

#endif  // PCFS_CORE_IO_REACTOR_BACKENDS_H_
