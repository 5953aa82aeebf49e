// PortLock: one daemon per UDP port. The reactors of one daemon share their
// port with SO_REUSEPORT, which would just as gladly let a second daemon
// (same user) bind it too, and the kernel would then split the peers
// between the two. So before it binds, a daemon takes this lock: a
// listening unix socket in the abstract namespace named after the port
// ("pcfs-udp-port-50000"). Abstract names belong to the network namespace,
// as ports do; the kernel drops the name when its holder exits, however it
// exits, so no stale lock survives a crash.
//
// A second daemon's bind of the name fails; it then connects to the holder
// and asks the kernel who listens (SO_PEERCRED), so the refusal names the
// holder: "port 50000/udp is in use by peerconnectd, pid 1234". Another
// program holding the port without SO_REUSEPORT shows up in a probe bind
// (EADDRINUSE) and is named as "another program".
//
// A daemon that was killed holds its sockets for some milliseconds after it
// is gone: the kernel tears its io_uring down in a worker, and a request
// still in flight keeps its socket open until then (a daemon that stops
// cleanly cancels its requests first). So a lock whose holder has exited,
// and a refused probe bind, are tried again for a while (`patience`, a
// second by default) before the port is called in use: a daemon restarted
// at once after a kill -9 starts.
//
// Thread-safety: Acquire() from any thread; a PortLock is used by one
// thread at a time (AnswerProbes from the reactor that watches fd()).
#ifndef PCFS_CORE_IO_PORT_LOCK_H_
#define PCFS_CORE_IO_PORT_LOCK_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"

namespace pcfs {

class PortLock {
 public:
  // Takes the lock for UDP port `bind.port()` (not 0: a kernel-chosen port
  // needs none), then checks that no other program holds that port at
  // `bind`'s address. Waits up to `patience` for a holder that has exited
  // to let go. Errors: FailedPrecondition with a message that names the
  // port and its holder; others from the socket calls.
  static absl::StatusOr<PortLock> Acquire(
      const SocketAddress& bind, absl::Duration patience = absl::Seconds(1));

  // The name the lock for `port` has in the abstract namespace (without
  // its leading NUL).
  static std::string NameFor(uint16_t port);

  PortLock(PortLock&&) noexcept = default;
  PortLock& operator=(PortLock&&) noexcept = default;

  // The listening socket; readable when another daemon asked who holds the
  // lock.
  int fd() const { return fd_.get(); }
  // Accepts and closes the waiting connections of such askers (they have
  // their answer once connected), so that the backlog never fills. Does not
  // block.
  void AnswerProbes();

 private:
  explicit PortLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// The process that made a listening socket listen.
struct AbstractSocketHolder {
  // "peerconnectd, pid 1234" (the name from /proc/PID/comm), or just
  // "pid 1234" if it cannot be read.
  std::string description;
  // It is gone (or a zombie) while its socket is still open.
  bool exited = false;
};

// Who holds the abstract-namespace listening socket `name`. Errors: the
// connect or getsockopt failure.
absl::StatusOr<AbstractSocketHolder> DescribeAbstractSocketHolder(
    const std::string& name);

}  // namespace pcfs

#endif  // PCFS_CORE_IO_PORT_LOCK_H_
