// rawcopy: the baseline for the transfer benchmark. One process, two
// threads, one loopback TCP connection:
//
//   rawcopy --file PATH --out PATH [--splice]
//
// The sender listens on 127.0.0.1:0, accepts one connection and sendfile()s
// the whole file to it. The receiver connects and stores the bytes in
// --out the plain way: a non-blocking socket, recv() into a 1 MiB buffer
// with poll() when it would block, write() of each chunk, fallocate() of the
// whole size first, and at the end fsync() of the file and of its folder
// (peerctl's downloader, peerctl/downloader.cc, fsyncs the same two). It does
// not hash (the downloader's SHA-256 is part of the cost the benchmark
// measures) and it writes to a named file (the downloader writes to an
// O_TMPFILE and links it; the data path is the same).
//
// --splice receives with splice() from the socket into a pipe and from the
// pipe into the file instead: the downloader's receive path, without its
// hashing thread and writeback hints.
//
// The time runs from connect() to the last byte written plus both fsyncs
// (seconds, the durable copy, like the downloader's), and is also taken at
// the last byte written, before the fsyncs (written_seconds: a copy into
// the page cache only, which a crash may lose). Prints one line:
// "rawcopy mode=MODE bytes=N seconds=S written_seconds=W MBps=X".
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/base/cli.h"
#include "core/base/clock.h"
#include "core/base/unique_fd.h"

ABSL_FLAG(std::string, file, "", "the file to send");
ABSL_FLAG(std::string, out, "", "where the receiver writes it (replaced)");
ABSL_FLAG(bool, splice, false,
          "receive with splice() through a pipe instead of recv()+write()");

namespace pcfs {
namespace {

constexpr size_t kBufferBytes = 1 << 20;  // as the downloader's
constexpr int kPipeBytes = 1 << 20;

// ---- sender

struct Listener {
  UniqueFd socket;
  uint16_t port = 0;
};

absl::StatusOr<Listener> Listen() {
  Listener listener;
  listener.socket.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.socket) return ErrnoStatus("socket", errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener.socket.get(), reinterpret_cast<sockaddr*>(&address),
             sizeof(address)) != 0) {
    return ErrnoStatus("bind 127.0.0.1:0", errno);
  }
  if (::listen(listener.socket.get(), 1) != 0) {
    return ErrnoStatus("listen", errno);
  }
  socklen_t length = sizeof(address);
  if (::getsockname(listener.socket.get(),
                    reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return ErrnoStatus("getsockname", errno);
  }
  listener.port = ntohs(address.sin_port);
  return listener;
}

// Accepts one connection and sends all `size` bytes of `file` with
// blocking sendfile() calls, then closes the connection.
absl::Status Send(int listen_fd, int file, uint64_t size) {
  UniqueFd connection(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (!connection) return ErrnoStatus("accept4", errno);
  off_t offset = 0;
  while (static_cast<uint64_t>(offset) < size) {
    const size_t chunk = static_cast<size_t>(
        std::min<uint64_t>(size - static_cast<uint64_t>(offset), 1u << 30));
    ssize_t n = ::sendfile(connection.get(), file, &offset, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("sendfile", errno);
    if (n == 0) return absl::DataLossError("the file shrank while sending");
  }
  return absl::OkStatus();
}

// ---- receiver (the downloader's path)

absl::Status WaitFor(int fd, short events) {
  for (;;) {
    pollfd entry{fd, events, 0};
    int ready = ::poll(&entry, 1, 30'000);
    if (ready > 0) return absl::OkStatus();
    if (ready == 0) return absl::DeadlineExceededError("30 s without data");
    if (errno != EINTR) return ErrnoStatus("poll", errno);
  }
}

absl::StatusOr<UniqueFd> Connect(uint16_t port) {
  UniqueFd socket(
      ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket) return ErrnoStatus("socket", errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address),
                sizeof(address)) == 0) {
    return socket;
  }
  if (errno != EINPROGRESS) return ErrnoStatus("connect", errno);
  if (absl::Status s = WaitFor(socket.get(), POLLOUT); !s.ok()) return s;
  int err = 0;
  socklen_t length = sizeof(err);
  if (::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &err, &length) != 0) {
    return ErrnoStatus("getsockopt(SO_ERROR)", errno);
  }
  if (err != 0) return ErrnoStatus("connect", err);
  return socket;
}

absl::Status WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("write", errno);
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// recv() into a 1 MiB buffer, write() each chunk.
absl::StatusOr<uint64_t> ReceiveByCopy(int socket, int file) {
  std::vector<char> buffer(kBufferBytes);
  uint64_t received = 0;
  for (;;) {
    ssize_t n = ::recv(socket, buffer.data(), buffer.size(), 0);
    if (n == 0) return received;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return ErrnoStatus("recv", errno);
      if (absl::Status s = WaitFor(socket, POLLIN); !s.ok()) return s;
      continue;
    }
    if (absl::Status s = WriteAll(file, buffer.data(), static_cast<size_t>(n));
        !s.ok()) {
      return s;
    }
    received += static_cast<uint64_t>(n);
  }
}

// Moves `size` bytes from the pipe into the file.
absl::Status DrainPipe(int pipe_out, int file, size_t size) {
  while (size > 0) {
    ssize_t n = ::splice(pipe_out, nullptr, file, nullptr, size,
                         SPLICE_F_MOVE | SPLICE_F_MORE);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("splice(pipe -> file)", errno);
    if (n == 0) return absl::InternalError("splice from the pipe returned 0");
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// splice() from the socket into a pipe, and from the pipe into the file.
absl::StatusOr<uint64_t> ReceiveBySplice(int socket, int file) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return ErrnoStatus("pipe2", errno);
  UniqueFd pipe_out(ends[0]);
  UniqueFd pipe_in(ends[1]);
  // A bigger pipe means fewer round trips; the default limit allows 1 MiB.
  ::fcntl(pipe_in.get(), F_SETPIPE_SZ, kPipeBytes);
  uint64_t received = 0;
  for (;;) {
    ssize_t n = ::splice(socket, nullptr, pipe_in.get(), nullptr, kPipeBytes,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == 0) return received;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return ErrnoStatus("splice(socket -> pipe)", errno);
      if (absl::Status s = WaitFor(socket, POLLIN); !s.ok()) return s;
      continue;
    }
    if (absl::Status s =
            DrainPipe(pipe_out.get(), file, static_cast<size_t>(n));
        !s.ok()) {
      return s;
    }
    received += static_cast<uint64_t>(n);
  }
}

std::string FolderOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Receives the whole file into `out_path`, as the downloader does. Returns
// the bytes received; `*written` is the time the last byte was written.
absl::StatusOr<uint64_t> Receive(uint16_t port, const std::string& out_path,
                                 uint64_t size, bool splice,
                                 absl::Time* written) {
  UniqueFd folder(
      ::open(FolderOf(out_path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!folder) return ErrnoStatus("open(folder of --out)", errno);
  UniqueFd file(
      ::open(out_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!file) return ErrnoStatus(absl::StrCat("open ", out_path), errno);
  absl::StatusOr<UniqueFd> socket = Connect(port);
  if (!socket.ok()) return socket.status();
  if (size > 0 &&
      ::fallocate(file.get(), 0, 0, static_cast<off_t>(size)) != 0 &&
      errno != EOPNOTSUPP && errno != ENOSYS) {
    return ErrnoStatus("fallocate", errno);
  }
  absl::StatusOr<uint64_t> received =
      splice ? ReceiveBySplice(socket->get(), file.get())
             : ReceiveByCopy(socket->get(), file.get());
  if (!received.ok()) return received;
  *written = MonotonicNow();
  if (::fsync(file.get()) != 0) return ErrnoStatus("fsync", errno);
  if (::fsync(folder.get()) != 0) return ErrnoStatus("fsync(folder)", errno);
  return received;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "rawcopy: %s\n", status.ToString().c_str());
  return 1;
}

int Run(const std::string& in_path, const std::string& out_path, bool splice) {
  UniqueFd in(::open(in_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Fail(ErrnoStatus(absl::StrCat("open ", in_path), errno));
  struct stat info {};
  if (::fstat(in.get(), &info) != 0) return Fail(ErrnoStatus("fstat", errno));
  const uint64_t size = static_cast<uint64_t>(info.st_size);

  // Replacing a 1 GiB file would put its truncation inside the timing.
  if (::unlink(out_path.c_str()) != 0 && errno != ENOENT) {
    return Fail(ErrnoStatus(absl::StrCat("unlink ", out_path), errno));
  }
  absl::StatusOr<Listener> listener = Listen();
  if (!listener.ok()) return Fail(listener.status());
  absl::Status sent;
  std::thread sender(
      [&] { sent = Send(listener->socket.get(), in.get(), size); });

  const absl::Time start = MonotonicNow();
  absl::Time written = start;
  absl::StatusOr<uint64_t> received =
      Receive(listener->port, out_path, size, splice, &written);
  const absl::Duration took = MonotonicNow() - start;
  if (!received.ok()) {
    // Unblock a sender still waiting in accept() or sendfile().
    ::shutdown(listener->socket.get(), SHUT_RDWR);
  }
  sender.join();
  if (!received.ok()) return Fail(received.status());
  if (!sent.ok()) return Fail(sent);
  if (*received != size) {
    return Fail(absl::DataLossError(
        absl::StrCat("received ", *received, " of ", size, " bytes")));
  }
  const double seconds = absl::ToDoubleSeconds(took);
  std::printf("%s\n",
              absl::StrFormat("rawcopy mode=%s bytes=%d seconds=%.6f "
                              "written_seconds=%.6f MBps=%.1f",
                              splice ? "splice" : "read+write", size, seconds,
                              absl::ToDoubleSeconds(written - start),
                              static_cast<double>(size) / 1e6 / seconds)
                  .c_str());
  return 0;
}

}  // namespace
}  // namespace pcfs

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "loopback copy baseline: rawcopy --file PATH --out PATH [--splice]");
  const std::vector<std::string> args =
      pcfs::ParseCommandLineOrExit(argc, argv);
  const std::string file = absl::GetFlag(FLAGS_file);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (!args.empty() || file.empty() || out.empty()) {
    std::fprintf(stderr, "usage: rawcopy --file PATH --out PATH [--splice]\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  return pcfs::Run(file, out, absl::GetFlag(FLAGS_splice));
}
