#include "peerctl/downloader.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/base/clock.h"
#include "core/base/names.h"
#include "core/proto/merkle.h"
#include "peerctl/body_sink.h"
#include "peerctl/chunk_hasher.h"
#include "peerctl/download_internal.h"
#include "peerctl/exit_codes.h"
#include "peerctl/file_flusher.h"
#include "peerctl/http.h"
#include "peerctl/resumable_download.h"
#include "peerctl/tls.h"

namespace pcfs {
// The helpers peerctl/resumable_download.cc shares (see
// peerctl/download_internal.h).
namespace download_internal {

constexpr int kTempNameAttempts = 64;
constexpr int kPipeBytes = 1 << 20;

absl::Status Cancelled() { return absl::CancelledError("download cancelled"); }

// Waits until `fd` is ready for `events` (POLLIN or POLLOUT), in slices of
// at most 100 ms so that a cancel (set by a signal handler, which may run
// on another thread) is seen soon.
absl::Status WaitFor(int fd, short events, const Bounds& bounds,
                     absl::string_view what) {
  const absl::Time deadline = MonotonicNow() + bounds.timeout;
  for (;;) {
    if (bounds.cancelled()) return Cancelled();
    if (absl::Now() >= bounds.deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("out of time while ", what));
    }
    const absl::Duration left =
        std::min({std::max(deadline - MonotonicNow(), absl::ZeroDuration()),
                  std::max(bounds.deadline - absl::Now(), absl::ZeroDuration()),
                  absl::Milliseconds(100)});
    pollfd entry{fd, events, 0};
    int ready = ::poll(&entry, 1,
                       static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready > 0) return absl::OkStatus();
    if (ready < 0 && errno != EINTR) return ErrnoStatus("poll", errno);
    if (ready == 0 && MonotonicNow() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the holder kept silent for ",
                       absl::FormatDuration(bounds.timeout), " while ", what));
    }
  }
}

// "3 s", "0.5 s": how a user reads a timeout.
std::string Seconds(absl::Duration duration) {
  return absl::StrFormat("%g s", absl::ToDoubleSeconds(duration));
}

absl::StatusOr<UniqueFd> Connect(const SocketAddress& holder,
                                 absl::Duration connect_timeout,
                                 const Bounds& bounds) {
  UniqueFd socket(
      ::socket(holder.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket) return ErrnoStatus("socket", errno);
  if (::connect(socket.get(), holder.get(), holder.length) == 0) {
    return socket;
  }
  if (errno != EINPROGRESS) {
    return ErrnoStatus(absl::StrCat("connect to ", holder.ToString()), errno);
  }
  Bounds connect_bounds = bounds;
  connect_bounds.timeout = connect_timeout;
  absl::Status ready =
      WaitFor(socket.get(), POLLOUT, connect_bounds, "connecting");
  if (absl::IsDeadlineExceeded(ready) && absl::Now() < bounds.deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("holder ", holder.ToString(), " did not answer within ",
                     Seconds(connect_timeout)));
  }
  if (!ready.ok()) return ready;
  int err = 0;
  socklen_t length = sizeof(err);
  if (::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &err, &length) != 0) {
    return ErrnoStatus("getsockopt(SO_ERROR)", errno);
  }
  if (err != 0) {
    return ErrnoStatus(absl::StrCat("connect to ", holder.ToString()), err);
  }
  return socket;
}

// Waits for what a TLS call needs (socket readable or writable).
absl::Status WaitForTls(const HolderLink& link, TlsWait wait,
                        const Bounds& bounds, absl::string_view what) {
  return WaitFor(link.fd, wait == TlsWait::kWrite ? POLLOUT : POLLIN, bounds,
                 what);
}

absl::Status SendAll(const HolderLink& link, absl::string_view data,
                     const Bounds& bounds) {
  while (!data.empty()) {
    TlsWait wait;
    absl::Status tls_error;
    ssize_t n = SendSome(link.fd, link.ssl, data.data(), data.size(),
                         MSG_NOSIGNAL, &wait, &tls_error);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (errno == EAGAIN) {
      absl::Status ready = WaitForTls(link, wait, bounds, "sending");
      if (!ready.ok()) return ready;
    } else if (!tls_error.ok()) {
      return tls_error;
    } else if (errno != EINTR) {
      return ErrnoStatus("send", errno);
    }
  }
  return absl::OkStatus();
}

// Receives up to `size` bytes; 0 means the holder closed the connection.
absl::StatusOr<size_t> Receive(const HolderLink& link, char* data, size_t size,
                               const Bounds& bounds, absl::string_view what) {
  for (;;) {
    TlsWait wait;
    absl::Status tls_error;
    ssize_t n = ReceiveSome(link.fd, link.ssl, data, size, &wait, &tls_error);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EAGAIN) {
      absl::Status ready = WaitForTls(link, wait, bounds, what);
      if (!ready.ok()) return ready;
    } else if (!tls_error.ok()) {
      return tls_error;
    } else if (errno != EINTR) {
      return ErrnoStatus("recv", errno);
    }
  }
}

// The response head, read into `buffer`; `*body_start..*filled` of the
// buffer holds the first body bytes that came with it.
absl::StatusOr<http::Response> ReadResponseHead(const HolderLink& link,
                                                std::vector<char>& buffer,
                                                size_t* body_start,
                                                size_t* filled,
                                                const Bounds& bounds) {
  *filled = 0;
  for (;;) {
    absl::StatusOr<size_t> n =
        Receive(link, buffer.data() + *filled, http::kMaxHeadBytes - *filled,
                bounds, "waiting for the response");
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return absl::UnavailableError(
          "the holder closed the connection without answering");
    }
    *filled += *n;
    const absl::string_view received(buffer.data(), *filled);
    *body_start = http::FindHeadEnd(received);
    if (*body_start > 0) {
      return http::ParseResponseHead(received.substr(0, *body_start));
    }
    if (*filled == http::kMaxHeadBytes) {
      return absl::InvalidArgumentError(
          "the holder's response head is longer than 8 KiB");
    }
  }
}

// The file being received: unnamed (O_TMPFILE) or, where the file system
// lacks O_TMPFILE, a hidden temporary name that the destructor removes
// unless LinkAs() gave the file its real name.
class TempFile {
 public:
  explicit TempFile(int dir_fd) : dir_fd_(dir_fd) {}
  ~TempFile() {
    if (!temp_name_.empty() && !linked_) {
      ::unlinkat(dir_fd_, temp_name_.c_str(), 0);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  absl::Status Open(absl::string_view name);
  int fd() const { return fd_.get(); }
  // Gives the file `name` in the folder, never replacing a file there.
  absl::Status LinkAs(absl::string_view name);

 private:
  absl::Status OpenNamed(absl::string_view name);
  absl::Status LinkUnnamed(const std::string& name);
  absl::Status RenameNamed(const std::string& name);

  const int dir_fd_;
  UniqueFd fd_;
  std::string temp_name_;  // empty for an O_TMPFILE file
  bool linked_ = false;
};

absl::Status TempFile::Open(absl::string_view name) {
  fd_.Reset(::openat(dir_fd_, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0666));
  if (fd_) return absl::OkStatus();
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    return ErrnoStatus("openat(O_TMPFILE)", errno);
  }
  return OpenNamed(name);
}

absl::Status TempFile::OpenNamed(absl::string_view name) {
  // ".NAME.part.XXXXXX" must fit in 255 bytes: shorten NAME if need be.
  constexpr absl::string_view kSuffix = ".part.";
  const size_t keep =
      std::min<size_t>(name.size(), kMaxFileNameBytes - 1 - kSuffix.size() - 6);
  constexpr absl::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  absl::BitGen random;
  for (int attempt = 0; attempt < kTempNameAttempts; ++attempt) {
    std::string candidate = absl::StrCat(".", name.substr(0, keep), kSuffix);
    for (int i = 0; i < 6; ++i) {
      candidate +=
          kAlphabet[absl::Uniform<size_t>(random, 0, kAlphabet.size())];
    }
    fd_.Reset(::openat(dir_fd_, candidate.c_str(),
                       O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0666));
    if (fd_) {
      temp_name_ = std::move(candidate);
      return absl::OkStatus();
    }
    if (errno != EEXIST) return ErrnoStatus("openat(temporary file)", errno);
  }
  return absl::AlreadyExistsError("no free temporary file name");
}

absl::Status TempFile::LinkAs(absl::string_view name) {
  const std::string target(name);
  absl::Status status =
      temp_name_.empty() ? LinkUnnamed(target) : RenameNamed(target);
  if (status.ok()) linked_ = true;
  return status;
}

absl::Status LinkError(absl::string_view call, absl::string_view name,
                       int err) {
  // The caller looks at what took the name.
  if (err == EEXIST) return absl::AlreadyExistsError(name);
  return ErrnoStatus(call, err);
}

absl::Status TempFile::LinkUnnamed(const std::string& name) {
  const std::string proc_path = absl::StrCat("/proc/self/fd/", fd_.get());
  if (::linkat(AT_FDCWD, proc_path.c_str(), dir_fd_, name.c_str(),
               AT_SYMLINK_FOLLOW) == 0) {
    return absl::OkStatus();
  }
  if (errno != ENOENT) return LinkError("linkat", name, errno);
  // No /proc: AT_EMPTY_PATH works where the process may use it.
  if (::linkat(fd_.get(), "", dir_fd_, name.c_str(), AT_EMPTY_PATH) == 0) {
    return absl::OkStatus();
  }
  return LinkError("linkat(AT_EMPTY_PATH)", name, errno);
}

absl::Status TempFile::RenameNamed(const std::string& name) {
  if (::renameat2(dir_fd_, temp_name_.c_str(), dir_fd_, name.c_str(),
                  RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  if (errno != EINVAL) return LinkError("renameat2", name, errno);
  // No RENAME_NOREPLACE on this file system: link (which never replaces),
  // then drop the temporary name.
  if (::linkat(dir_fd_, temp_name_.c_str(), dir_fd_, name.c_str(), 0) != 0) {
    return LinkError("linkat", name, errno);
  }
  ::unlinkat(dir_fd_, temp_name_.c_str(), 0);
  return absl::OkStatus();
}

absl::StatusOr<AtName> LookAtName(int dir_fd, const std::string& name,
                                  uint64_t size, const Sha256Digest& root) {
  struct stat info {};
  if (::fstatat(dir_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return AtName::kNothing;
    return ErrnoStatus(absl::StrCat("stat ", name), errno);
  }
  if (!S_ISREG(info.st_mode) || static_cast<uint64_t>(info.st_size) != size) {
    return AtName::kOther;
  }
  UniqueFd file(::openat(dir_fd, name.c_str(),
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!file) return AtName::kOther;
  absl::StatusOr<std::vector<Sha256Digest>> found =
      HashLeaves(file.get(), size);
  if (!found.ok()) return found.status();
  return MerkleRoot(*found) == root ? AtName::kTheFile : AtName::kOther;
}

// Reserves the space up front, so that a full disk fails at once. File
// systems without fallocate simply skip it.
absl::Status Preallocate(int fd, uint64_t size) {
  if (size == 0) return absl::OkStatus();
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0) {
    return absl::OkStatus();
  }
  if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINTR) {
    return absl::OkStatus();
  }
  return ErrnoStatus("fallocate", errno);
}

// The pipe the body is spliced through, and its capacity.
struct BodyPipe {
  UniqueFd read_end;
  UniqueFd write_end;
  size_t capacity = 0;
};

absl::StatusOr<BodyPipe> OpenBodyPipe() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return ErrnoStatus("pipe2", errno);
  BodyPipe pipe;
  pipe.read_end.Reset(ends[0]);
  pipe.write_end.Reset(ends[1]);
  // A bigger pipe moves more per pair of splices; where the limit
  // (/proc/sys/fs/pipe-max-size) forbids it, the default size still works.
  int size = ::fcntl(pipe.write_end.get(), F_SETPIPE_SZ, kPipeBytes);
  if (size < 0) size = ::fcntl(pipe.write_end.get(), F_GETPIPE_SZ);
  if (size <= 0) return ErrnoStatus("fcntl(F_GETPIPE_SZ)", errno);
  pipe.capacity = static_cast<size_t>(size);
  return pipe;
}

// Receives `length` body bytes into `sink`, the first `prefix` of them
// already in hand. The bytes go from the socket into a pipe and from the
// pipe into the file with splice(2), never through user space: one copy
// fewer than recv() + write(), and less CPU time per byte, which is what
// the download runs short of on a busy machine (bench/transfer.sh measures
// both ways as rawcopy-splice and rawcopy).
// Over TLS the bytes must be decrypted in user space (splice cannot see
// plaintext): records (16 KiB each) are read into a buffer until it is full
// or the socket has nothing more for now, and the buffer is appended in one
// write, so that the file gets few large writes rather than one per record.
absl::Status ReceiveTlsBody(
    const HolderLink& link, BodySink& sink, uint64_t received, uint64_t length,
    const Bounds& bounds,
    const std::function<void(uint64_t, uint64_t)>& progress) {
  constexpr size_t kTlsReadBytes = 1 << 20;
  std::vector<char> buffer(kTlsReadBytes);
  size_t filled = 0;
  const auto flush = [&]() -> absl::Status {
    if (filled == 0) return absl::OkStatus();
    absl::Status status = sink.Append(absl::string_view(buffer.data(), filled));
    received += filled;
    filled = 0;
    if (progress) progress(received, length);
    return status;
  };
  while (received + filled < length) {
    if (bounds.cancelled()) return Cancelled();
    const size_t want = static_cast<size_t>(
        std::min<uint64_t>(buffer.size() - filled, length - received - filled));
    TlsWait wait;
    absl::Status tls_error;
    ssize_t n = ReceiveSome(link.fd, link.ssl, buffer.data() + filled, want,
                            &wait, &tls_error);
    if (n > 0) {
      filled += static_cast<size_t>(n);
      if (filled == buffer.size()) {
        if (absl::Status s = flush(); !s.ok()) return s;
      }
    } else if (n == 0) {
      return absl::DataLossError(
          absl::StrCat("the holder closed the connection after ",
                       received + filled, " of ", length, " bytes"));
    } else if (errno == EAGAIN) {
      // Nothing more for now: write what came while the next bytes travel.
      if (absl::Status s = flush(); !s.ok()) return s;
      absl::Status ready = WaitForTls(link, wait, bounds, "sending the file");
      if (!ready.ok()) return ready;
    } else if (!tls_error.ok()) {
      return tls_error;
    } else if (errno != EINTR) {
      return ErrnoStatus("SSL_read", errno);
    }
  }
  return flush();
}

absl::Status ReceiveBody(
    const HolderLink& link, BodySink& sink, absl::string_view prefix,
    uint64_t length, const Bounds& bounds,
    const std::function<void(uint64_t, uint64_t)>& progress) {
  const int socket_fd = link.fd;
  prefix = prefix.substr(
      0, static_cast<size_t>(std::min<uint64_t>(prefix.size(), length)));
  absl::Status status = sink.Append(prefix);
  if (!status.ok()) return status;
  uint64_t received = prefix.size();
  if (progress) progress(received, length);
  if (received == length) return absl::OkStatus();
  if (link.ssl != nullptr) {
    return ReceiveTlsBody(link, sink, received, length, bounds, progress);
  }
  absl::StatusOr<BodyPipe> pipe = OpenBodyPipe();
  if (!pipe.ok()) return pipe.status();
  while (received < length) {
    if (bounds.cancelled()) return Cancelled();
    const size_t want = static_cast<size_t>(
        std::min<uint64_t>(pipe->capacity, length - received));
    // The pipe is empty here (each round drains it), so EAGAIN means the
    // socket has nothing yet.
    ssize_t n = ::splice(socket_fd, nullptr, pipe->write_end.get(), nullptr,
                         want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      status =
          sink.AppendFromPipe(pipe->read_end.get(), static_cast<size_t>(n));
      if (!status.ok()) return status;
      received += static_cast<uint64_t>(n);
      if (progress) progress(received, length);
    } else if (n == 0) {
      return absl::DataLossError(
          absl::StrCat("the holder closed the connection after ", received,
                       " of ", length, " bytes"));
    } else if (errno == EAGAIN) {
      status = WaitFor(socket_fd, POLLIN, bounds, "sending the file");
      if (!status.ok()) return status;
    } else if (errno != EINTR) {
      return ErrnoStatus("splice(socket -> pipe)", errno);
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRequest(const DownloadRequest& request) {
  absl::Status valid = ValidateFileName(request.name);
  if (!valid.ok()) return valid;
  if (!request.ticket.empty() && !http::IsBearerToken(request.ticket)) {
    return absl::InvalidArgumentError(
        "the ticket cannot be sent as a Bearer token");
  }
  for (const DownloadSource& other : request.other_holders) {
    if (!other.ticket.empty() && !http::IsBearerToken(other.ticket)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ticket for holder ", other.name,
                       " cannot be sent as a Bearer token"));
    }
  }
  return absl::OkStatus();
}

absl::Status RefuseExisting(int dir_fd, const DownloadRequest& request) {
  struct stat info {};
  if (::fstatat(dir_fd, request.name.c_str(), &info, AT_SYMLINK_NOFOLLOW) ==
      0) {
    return absl::AlreadyExistsError(absl::StrCat(
        request.name, " already exists in ", request.destination_dir));
  }
  if (errno != ENOENT) return ErrnoStatus("fstatat", errno);
  return absl::OkStatus();
}

// Asks for the file; returns its response with the body ahead.
absl::StatusOr<uint64_t> RequestFile(const HolderLink& link,
                                     const DownloadRequest& request,
                                     const Bounds& bounds,
                                     std::vector<char>& buffer,
                                     absl::string_view* prefix) {
  absl::Status sent =
      SendAll(link,
              http::FormatRequestHead(request.name, request.holder.ToString(),
                                      request.ticket),
              bounds);
  if (!sent.ok()) return sent;
  size_t body_start = 0;
  size_t filled = 0;
  absl::StatusOr<http::Response> response =
      ReadResponseHead(link, buffer, &body_start, &filled, bounds);
  if (!response.ok()) return response.status();
  if (response->status_code != http::kOk) {
    return http::StatusFromHttpCode(response->status_code);
  }
  if (!response->content_length) {
    return absl::InvalidArgumentError("the holder sent no Content-Length");
  }
  if (request.expected_size &&
      *request.expected_size != *response->content_length) {
    return absl::DataLossError(absl::StrCat(
        "the holder offers ", *response->content_length,
        " bytes; the file published has ", *request.expected_size));
  }
  *prefix = absl::string_view(buffer.data() + body_start, filled - body_start);
  return *response->content_length;
}

// Runs the TLS handshake, which accepts only the holder's pinned key.
absl::Status Handshake(TlsClientConnection& tls, const DownloadRequest& request,
                       int fd, const Bounds& bounds) {
  for (;;) {
    absl::StatusOr<TlsWait> wait = tls.HandshakeStep();
    if (absl::IsPermissionDenied(wait.status())) {
      return MarkKeyMismatch(absl::PermissionDeniedError(absl::StrCat(
          "holder ", request.holder_name, " at ", request.holder.ToString(),
          " presented a different key than the daemon registered for it; "
          "refusing the download")));
    }
    if (!wait.ok()) {
      return absl::UnavailableError(
          absl::StrCat("no TLS with holder ", request.holder.ToString(), ": ",
                       wait.status().message()));
    }
    if (*wait == TlsWait::kNone) return absl::OkStatus();
    absl::Status ready = WaitForTls(HolderLink{fd, nullptr}, *wait, bounds,
                                    "in the TLS handshake");
    if (!ready.ok()) return ready;
  }
}

absl::StatusOr<HolderConnection> ConnectToHolder(const DownloadRequest& request,
                                                 const Bounds& bounds) {
  HolderConnection connection;
  absl::StatusOr<UniqueFd> socket =
      Connect(request.holder, request.connect_timeout, bounds);
  if (!socket.ok()) return socket.status();
  connection.socket = *std::move(socket);
  // A zero pin: the holder chose plain HTTP (--plaintext-transfers).
  if (IsPlaintextPin(request.holder_pin)) return connection;
  absl::StatusOr<TlsClientConnection> made =
      TlsClientConnection::Create(connection.socket.get(), request.holder_pin);
  if (!made.ok()) return made.status();
  connection.tls.emplace(*std::move(made));
  // A holder that accepts but never answers (a stopped process: the kernel
  // completes its TCP handshakes) costs no more than one that does not
  // accept at all.
  Bounds handshake_bounds = bounds;
  handshake_bounds.timeout = request.connect_timeout;
  absl::Status status = Handshake(*connection.tls, request,
                                  connection.socket.get(), handshake_bounds);
  if (absl::IsDeadlineExceeded(status) && absl::Now() < bounds.deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("holder ", request.holder.ToString(),
                     " did not answer the TLS handshake within ",
                     Seconds(request.connect_timeout)));
  }
  if (!status.ok()) return status;
  return connection;
}

}  // namespace download_internal

using download_internal::AtName;
using download_internal::Bounds;
using download_internal::ConnectToHolder;
using download_internal::HolderConnection;
using download_internal::HolderLink;
using download_internal::Preallocate;
using download_internal::ReceiveBody;
using download_internal::TempFile;

absl::Status Download(const DownloadRequest& request) {
  using download_internal::CheckRequest;
  using download_internal::LookAtName;
  using download_internal::RefuseExisting;
  using download_internal::RequestFile;
  absl::Status status = CheckRequest(request);
  if (!status.ok()) return status;
  UniqueFd dir(::open(request.destination_dir.c_str(),
                      O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    return MarkFolderFailure(
        ErrnoStatus(absl::StrCat("open ", request.destination_dir), errno));
  }
  status = RefuseExisting(dir.get(), request);
  if (absl::IsAlreadyExists(status) && request.expected_size &&
      request.expected_root) {
    // Another get of it finished since the caller looked: done.
    absl::StatusOr<AtName> there =
        LookAtName(dir.get(), request.name, *request.expected_size,
                   *request.expected_root);
    if (there.ok() && *there == AtName::kTheFile) return absl::OkStatus();
  }
  if (!status.ok()) return MarkFolderFailure(status);
  const Bounds bounds{request.timeout, request.deadline, request.cancel};
  // With the size and root known, chunk by chunk into a partial file that a
  // later get resumes (peerctl/resumable_download.h); whole, as below, only
  // from a holder that offers no leaves.
  absl::StatusOr<bool> resumed = DownloadResumable(request, dir.get(), bounds);
  if (!resumed.ok()) return resumed.status();
  if (*resumed) return absl::OkStatus();
  absl::StatusOr<HolderConnection> connection =
      ConnectToHolder(request, bounds);
  if (!connection.ok()) return connection.status();
  const HolderLink link = connection->link();

  // Only the head (and the body bytes that come with it) lands here; the
  // body goes into the sink's buffers.
  std::vector<char> head_buffer(http::kMaxHeadBytes);
  absl::string_view prefix;
  absl::StatusOr<uint64_t> length =
      RequestFile(link, request, bounds, head_buffer, &prefix);
  if (!length.ok()) return length.status();

  TempFile file(dir.get());
  status = file.Open(request.name);
  if (status.ok()) status = Preallocate(file.fd(), *length);
  if (!status.ok()) return MarkFolderFailure(status);
  absl::StatusOr<std::unique_ptr<ChunkHashPool>> pool =
      ChunkHashPool::Create(file.fd(), *length, ChunkHashPool::Options{});
  if (!pool.ok()) return pool.status();
  FileFlusher flusher(file.fd(), kFlushStepBytes);  // peerctl/file_flusher.h
  BodySink::Options sink_options;
  sink_options.flusher = &flusher;
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(file.fd(), pool->get(), sink_options);
  if (!sink.ok()) return sink.status();
  status = ReceiveBody(link, **sink, prefix, *length, bounds, request.progress);
  if (status.ok()) status = (*sink)->Finish();
  if (!status.ok()) return status;
  const Sha256Digest root = MerkleRoot((*pool)->leaves());
  if (request.expected_root && root != *request.expected_root) {
    return absl::DataLossError(absl::StrCat("Merkle root mismatch: expected ",
                                            Sha256ToHex(*request.expected_root),
                                            ", received ", Sha256ToHex(root)));
  }
  status = flusher.Sync();
  if (!status.ok()) return status;
  status = file.LinkAs(request.name);
  if (absl::IsAlreadyExists(status)) {
    // Another get of the name finished first, or a file took the name.
    absl::StatusOr<AtName> there =
        LookAtName(dir.get(), request.name, *length, root);
    if (!there.ok()) return MarkFolderFailure(there.status());
    if (*there == AtName::kTheFile) return absl::OkStatus();
    return MarkFolderFailure(absl::AlreadyExistsError(
        absl::StrCat(request.name, " appeared in ", request.destination_dir,
                     " during the download and is not the published file; "
                     "not overwriting it")));
  }
  if (!status.ok()) return MarkFolderFailure(status);
  if (::fsync(dir.get()) != 0) {
    return MarkFolderFailure(ErrnoStatus("fsync(folder)", errno));
  }
  return absl::OkStatus();
}

namespace {

std::string FormatBytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrFormat("%.0f B", bytes)
                   : absl::StrFormat("%.1f %s", bytes, kUnits[unit]);
}

}  // namespace

ProgressLine::ProgressLine(std::FILE* out)
    : out_(out),
      enabled_(out != nullptr && ::isatty(::fileno(out))),
      start_(absl::Now()) {}

std::string ProgressLine::Format(uint64_t received, uint64_t total,
                                 absl::Duration elapsed) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  const double rate = seconds > 0 ? static_cast<double>(received) / seconds : 0;
  const int percent =
      total == 0 ? 100 : static_cast<int>(received * 100 / total);
  std::string left = "--:--";
  if (rate > 0 && received <= total) {
    const int64_t eta =
        std::llround(static_cast<double>(total - received) / rate);
    left = eta >= 3600 ? absl::StrFormat("%d:%02d:%02d", eta / 3600,
                                         eta / 60 % 60, eta % 60)
                       : absl::StrFormat("%d:%02d", eta / 60, eta % 60);
  }
  return absl::StrCat(FormatBytes(static_cast<double>(received)), " / ",
                      FormatBytes(static_cast<double>(total)), " (", percent,
                      "%)  ", FormatBytes(rate), "/s  ", left, " left");
}

void ProgressLine::Update(uint64_t received, uint64_t total) {
  if (!enabled_) return;
  const absl::Time now = absl::Now();
  if (now - last_ < absl::Milliseconds(250) && received < total) return;
  last_ = now;
  // "\r" back to the line's start, "\033[K" erases what a longer line left.
  const std::string line =
      absl::StrCat("\r", Format(received, total, now - start_), "\033[K");
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
  shown_ = true;
}

void ProgressLine::Finish() {
  if (!shown_) return;
  shown_ = false;
  std::fputs("\r\033[K", out_);
  std::fflush(out_);
}

}  // namespace pcfs
