#include "core/io/port_lock.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/file_util.h"

namespace pcfs {
namespace {

// How often Acquire() looks again while it waits for an exited holder.
constexpr absl::Duration kRetryInterval = absl::Milliseconds(5);

// The sockaddr of abstract name `name` and its length (the name is not
// NUL-terminated: the length says where it ends).
socklen_t AbstractAddress(const std::string& name, sockaddr_un* address) {
  *address = sockaddr_un{};
  address->sun_family = AF_UNIX;
  const size_t n = std::min(name.size(), sizeof(address->sun_path) - 1);
  std::memcpy(address->sun_path + 1, name.data(), n);
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

absl::StatusOr<UniqueFd> UnixStreamSocket() {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus("socket(AF_UNIX)", errno);
  return fd;
}

// Binds a plain UDP socket (no SO_REUSEPORT) to `bind` and closes it again:
// EADDRINUSE means another program holds the port. Returns that errno, 0
// if the bind worked, or another errno (which the real bind will report).
int ProbeUdpBind(const SocketAddress& bind) {
  UniqueFd fd(socket(bind.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno;
  if (bind.family() == AF_INET6) {
    // As OpenUdpSocket does for "::": dual-stack, so an IPv4 holder of the
    // port shows up too.
    const int off = 0;
    setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  if (::bind(fd.get(), bind.get(), bind.length) != 0) return errno;
  return 0;
}

// True if process `pid` is gone or a zombie; false if it runs, or if that
// cannot be told (pid 0: a holder in another pid namespace).
bool HasExited(pid_t pid) {
  if (pid <= 0) return false;
  absl::StatusOr<std::string> stat =
      ReadFileToString(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return absl::IsNotFound(stat.status());
  // "PID (COMM) STATE ...": COMM may hold anything, ')' included.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos || close + 2 >= stat->size()) return false;
  const char state = (*stat)[close + 2];
  return state == 'Z' || state == 'X';
}

}  // namespace

std::string PortLock::NameFor(uint16_t port) {
  return absl::StrCat("pcfs-udp-port-", port);
}

absl::StatusOr<PortLock> PortLock::Acquire(const SocketAddress& bind,
                                           absl::Duration patience) {
  const uint16_t port = bind.port();
  if (port == 0) {
    return absl::InvalidArgumentError("port 0 needs no lock");
  }
  const std::string name = NameFor(port);
  sockaddr_un address;
  const socklen_t length = AbstractAddress(name, &address);
  const absl::Time deadline = absl::Now() + patience;
  // Asked once: each question leaves a connection in the holder's backlog,
  // which an exited holder never takes.
  std::optional<absl::StatusOr<AbstractSocketHolder>> holder;
  UniqueFd lock;
  for (;;) {
    absl::StatusOr<UniqueFd> fd = UnixStreamSocket();
    if (!fd.ok()) return fd.status();
    if (::bind(fd->get(), reinterpret_cast<const sockaddr*>(&address),
               length) == 0) {
      lock = *std::move(fd);
      break;
    }
    const int err = errno;
    if (err != EADDRINUSE) return ErrnoStatus("bind(@" + name + ")", err);
    if (!holder.has_value()) holder = DescribeAbstractSocketHolder(name);
    if (holder->ok() && (*holder)->exited && absl::Now() < deadline) {
      absl::SleepFor(kRetryInterval);
      continue;
    }
    if (!holder->ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "port ", port, "/udp is in use by another peerconnectd (which one ",
          "is unknown: ", holder->status().message(), ")"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "port ", port, "/udp is in use by ", (*holder)->description,
        (*holder)->exited
            ? ", which has exited but whose sockets are still open"
            : ""));
  }
  if (listen(lock.get(), 16) != 0) {
    return ErrnoStatus("listen(@" + name + ")", errno);
  }
  // A daemon that just exited may still hold the port itself (see
  // port_lock.h), so a refused probe is tried again until the deadline.
  while (ProbeUdpBind(bind) == EADDRINUSE) {
    if (absl::Now() >= deadline) {
      return absl::FailedPreconditionError(
          absl::StrCat("port ", port, "/udp is in use by another program (",
                       bind.ToString(), ": ", std::strerror(EADDRINUSE),
                       "; `ss -ulpn sport = :", port, "` shows which)"));
    }
    absl::SleepFor(kRetryInterval);
  }
  return PortLock(std::move(lock));
}

void PortLock::AnswerProbes() {
  // Bounded: the backlog holds at most 16 (listen above), and each pass
  // takes what is there now.
  for (int i = 0; i < 64; ++i) {
    UniqueFd probe(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!probe) return;  // EAGAIN: none left (or an error: try next time)
  }
}

absl::StatusOr<AbstractSocketHolder> DescribeAbstractSocketHolder(
    const std::string& name) {
  absl::StatusOr<UniqueFd> fd = UnixStreamSocket();
  if (!fd.ok()) return fd.status();
  sockaddr_un address;
  const socklen_t length = AbstractAddress(name, &address);
  // A connection to a listening unix socket is made at once (it waits in
  // the backlog); non-blocking, so a full backlog is EAGAIN, not a wait.
  if (connect(fd->get(), reinterpret_cast<const sockaddr*>(&address), length) !=
      0) {
    return ErrnoStatus("connect(@" + name + ")", errno);
  }
  ucred credentials{};
  socklen_t size = sizeof(credentials);
  if (getsockopt(fd->get(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) !=
      0) {
    return ErrnoStatus("getsockopt(SO_PEERCRED)", errno);
  }
  AbstractSocketHolder holder;
  holder.exited = HasExited(credentials.pid);
  holder.description = absl::StrCat("pid ", credentials.pid);
  absl::StatusOr<std::string> comm =
      ReadFileToString(absl::StrCat("/proc/", credentials.pid, "/comm"));
  if (comm.ok()) {
    const absl::string_view process = absl::StripAsciiWhitespace(*comm);
    if (!process.empty()) {
      holder.description = absl::StrCat(process, ", ", holder.description);
    }
  }
  return holder;
}

}  // namespace pcfs
