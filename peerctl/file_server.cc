#include "peerctl/file_server.h"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "core/base/big_endian.h"
#include "core/base/clock.h"
#include "core/base/thread_name.h"
#include "peerctl/file_hash.h"
#include "peerctl/http.h"

namespace pcfs {
namespace {

constexpr int kListenBacklog = 128;
constexpr int kMaxEvents = 64;
constexpr int kMaxAcceptsPerWake = 64;
// Per wake-up a connection sends at most this much, so that one fast reader
// cannot starve the others.
constexpr uint64_t kSendBudgetBytes = 8 << 20;
// How long a finished connection may take to close its end before we do.
constexpr absl::Duration kMaxDrainTime = absl::Seconds(2);
// A TLS body without kernel TLS goes out through a buffer of this size,
// pread from the file and handed to SSL_write (16 KiB records, 16 a fill).
constexpr size_t kTlsBufferBytes = 256 << 10;

constexpr uint64_t kListenerId = 0;
constexpr uint64_t kStopEventId = 1;
constexpr uint64_t kFirstConnectionId = 2;

// Where a connection comes from, for the per-source cap: an IPv4 address,
// or the /64 of an IPv6 one (one host commonly holds a whole /64, so
// counting single IPv6 addresses would give it billions of caps).
struct SourceKey {
  uint8_t family = 0;
  uint64_t prefix = 0;

  friend bool operator==(const SourceKey&, const SourceKey&) = default;
  template <typename H>
  friend H AbslHashValue(H hash, const SourceKey& key) {
    return H::combine(std::move(hash), key.family, key.prefix);
  }
};

SourceKey SourceKeyOf(const sockaddr_storage& storage, socklen_t length) {
  SocketAddress address;
  address.storage = storage;
  address.length = length;
  const Endpoint endpoint = address.ToEndpoint();  // IPv4-mapped -> IPv4
  SourceKey key;
  key.family = endpoint.family;
  key.prefix = endpoint.family == 4
                   ? LoadBigEndian<uint32_t>(endpoint.ip.data())
                   : LoadBigEndian<uint64_t>(endpoint.ip.data());
  return key;
}

absl::Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus("fcntl(O_NONBLOCK)", errno);
  }
  return absl::OkStatus();
}

absl::Status EpollControl(int epoll_fd, int op, int fd, uint32_t events,
                          uint64_t id) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = id;
  if (::epoll_ctl(epoll_fd, op, fd, &event) != 0) {
    return ErrnoStatus("epoll_ctl", errno);
  }
  return absl::OkStatus();
}

// See FileServer::max_pending_heads().
int PendingHeadCap(const FileServer::Options& options) {
  int64_t cap = options.max_pending_heads;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur != RLIM_INFINITY) {
    const int64_t room = static_cast<int64_t>(limit.rlim_cur / 2) -
                         2 * int64_t{options.max_connections};
    cap = std::min(cap, room);
  }
  return static_cast<int>(
      std::max(cap, int64_t{options.max_pending_heads_per_source}));
}

}  // namespace

// The server thread's state. Everything here is touched only by the server
// thread, except Stop(), which only writes the eventfd.
class FileServer::Loop {
 public:
  Loop(Options options, int max_pending_heads, UniqueFd listener,
       UniqueFd epoll, UniqueFd stop_event)
      : options_(std::move(options)),
        max_pending_heads_(static_cast<size_t>(max_pending_heads)),
        listener_(std::move(listener)),
        epoll_(std::move(epoll)),
        stop_event_(std::move(stop_event)),
        tick_(std::clamp(
            std::min(options_.idle_timeout, options_.head_timeout) / 4,
            absl::Milliseconds(10), absl::Seconds(1))) {}

  // Runs until Stop(); then every connection is closed.
  void Run();
  // Thread-safe.
  void Stop();

 private:
  enum class State { kReadingHead, kSendingHead, kSendingBody, kDraining };

  struct Connection {
    UniqueFd socket;
    SourceKey source;
    State state = State::kReadingHead;
    // Holds a download slot; until then the connection is pending (in
    // pending_ and pending_by_source_), whatever its state.
    bool approved = false;
    std::string head_in;
    size_t head_checked = 0;  // bytes of head_in CheckPartialRequestHead saw
    std::string head_out;
    size_t head_sent = 0;
    UniqueFd file;
    off_t body_offset = 0;
    uint64_t body_remaining = 0;
    absl::Time deadline;
    uint32_t interest = EPOLLIN;  // what epoll watches for it
    // TLS: the connection, what its last call waits for, whether kernel
    // TLS sends for it, and the userspace path's buffer [sent, filled).
    SslPtr ssl;
    TlsWait tls_wait = TlsWait::kNone;
    bool kernel_tls = false;
    std::unique_ptr<char[]> tls_buffer;
    size_t tls_sent = 0;
    size_t tls_filled = 0;

    bool sending() const {
      return state == State::kSendingHead || state == State::kSendingBody;
    }
  };

  void AcceptAll(absl::Time now);
  void Dispatch(uint64_t id, uint32_t events, absl::Time now);
  // Each returns false when the connection is to be closed.
  bool OnReadable(uint64_t id, Connection& connection, absl::Time now);
  bool OnWritable(Connection& connection, absl::Time now);
  bool DrainInput(Connection& connection);
  // ReceiveSome and SendSome (peerctl/tls.h) on the connection: -1 with
  // errno EAGAIN when the call must wait (connection.tls_wait then says for
  // what, over TLS), -1 with EPROTO when TLS fails.
  ssize_t Receive(Connection& connection, char* data, size_t size);
  ssize_t Send(Connection& connection, const char* data, size_t size,
               int flags);
  // Sends body bytes over TLS; false when the connection is to be closed.
  bool SendTlsBody(Connection& connection, uint64_t& budget, absl::Time now);
  void HandleHead(uint64_t id, Connection& connection, absl::string_view head);
  // Answers an approved "GET /m/NAME" with the file's leaves.
  void ServeLeaves(uint64_t id, Connection& connection, absl::string_view name);
  // Makes room for a new pending connection from `source` by closing the
  // oldest pending ones over the caps, then counts `id` as pending.
  void AddPending(uint64_t id, const SourceKey& source);
  // Moves a pending connection into a download slot.
  void Approve(uint64_t id, Connection& connection);
  void ForgetPending(uint64_t id, const SourceKey& source);
  void Respond(Connection& connection, std::string head);
  bool StartDraining(Connection& connection, absl::Time now);
  // Points epoll at what the connection's state waits for.
  bool UpdateInterest(Connection& connection, uint64_t id);
  void Close(uint64_t id);
  void ExpireIdle(absl::Time now);

  const Options options_;
  const size_t max_pending_heads_;
  const UniqueFd listener_;
  const UniqueFd epoll_;
  const UniqueFd stop_event_;
  const absl::Duration tick_;
  absl::flat_hash_map<uint64_t, Connection> connections_;
  // Ids grow with each accept, so the smallest id is the oldest connection.
  uint64_t next_id_ = kFirstConnectionId;
  absl::btree_set<uint64_t> pending_;
  absl::flat_hash_map<SourceKey, absl::InlinedVector<uint64_t, 8>>
      pending_by_source_;  // each vector oldest first
  int approved_connections_ = 0;
  bool listener_paused_ = false;
};

void FileServer::Loop::Stop() {
  uint64_t one = 1;
  // Can only fail if the counter would overflow, which means already set.
  (void)!::write(stop_event_.get(), &one, sizeof(one));
}

void FileServer::Loop::Run() {
  // A write to a closed socket raises SIGPIPE in the writing thread; blocked
  // here, it leaves only EPIPE. sendfile(2) has no MSG_NOSIGNAL.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);

  epoll_event events[kMaxEvents];
  absl::Time next_sweep = MonotonicNow() + tick_;
  for (;;) {
    int timeout_ms = static_cast<int>(
        absl::ToInt64Milliseconds(
            std::max(next_sweep - MonotonicNow(), absl::ZeroDuration())) +
        1);
    int count = ::epoll_wait(epoll_.get(), events, kMaxEvents, timeout_ms);
    if (count < 0 && errno != EINTR) break;  // EBADF/EINVAL: a bug; stop
    absl::Time now = MonotonicNow();
    for (int i = 0; i < count; ++i) {
      uint64_t id = events[i].data.u64;
      if (id == kStopEventId) {
        connections_.clear();
        return;
      }
      if (id == kListenerId) {
        AcceptAll(now);
      } else {
        Dispatch(id, events[i].events, now);
      }
    }
    if (now >= next_sweep) {
      ExpireIdle(now);
      next_sweep = now + tick_;
    }
  }
  connections_.clear();
}

void FileServer::Loop::AcceptAll(absl::Time now) {
  for (int i = 0; i < kMaxAcceptsPerWake; ++i) {
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof(peer);
    UniqueFd socket(::accept4(listener_.get(),
                              reinterpret_cast<sockaddr*>(&peer), &peer_length,
                              SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!socket) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        // Out of descriptors: the listener would stay readable and spin
        // the loop, so stop listening until the next sweep.
        listener_paused_ = EpollControl(epoll_.get(), EPOLL_CTL_MOD,
                                        listener_.get(), 0, kListenerId)
                               .ok();
      }
      return;  // EAGAIN, or a connection that died before we took it
    }
    const uint64_t id = next_id_++;
    const SourceKey source = SourceKeyOf(peer, peer_length);
    AddPending(id, source);
    Connection& connection = connections_[id];
    connection.socket = std::move(socket);
    connection.source = source;
    connection.deadline = now + options_.head_timeout;
    if (options_.tls != nullptr) {
      // The handshake is part of the pending stage: same deadline, same caps.
      absl::StatusOr<SslPtr> ssl =
          options_.tls->NewConnection(connection.socket.get());
      if (!ssl.ok()) {
        Close(id);
        continue;
      }
      connection.ssl = *std::move(ssl);
    }
    if (!EpollControl(epoll_.get(), EPOLL_CTL_ADD, connection.socket.get(),
                      connection.interest, id)
             .ok()) {
      Close(id);
    }
  }
}

void FileServer::Loop::AddPending(uint64_t id, const SourceKey& source) {
  auto it = pending_by_source_.find(source);
  while (it != pending_by_source_.end() &&
         it->second.size() >=
             static_cast<size_t>(options_.max_pending_heads_per_source)) {
    Close(it->second.front());  // may erase the entry
    it = pending_by_source_.find(source);
  }
  while (pending_.size() >= max_pending_heads_) Close(*pending_.begin());
  pending_.insert(id);
  pending_by_source_[source].push_back(id);
}

void FileServer::Loop::ForgetPending(uint64_t id, const SourceKey& source) {
  pending_.erase(id);
  auto it = pending_by_source_.find(source);
  if (it == pending_by_source_.end()) return;
  auto& ids = it->second;
  ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
  if (ids.empty()) pending_by_source_.erase(it);
}

void FileServer::Loop::Approve(uint64_t id, Connection& connection) {
  ForgetPending(id, connection.source);
  connection.approved = true;
  ++approved_connections_;
}

void FileServer::Loop::Dispatch(uint64_t id, uint32_t events, absl::Time now) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;  // closed earlier in this batch
  Connection& connection = it->second;
  // A TLS call may need the other direction than its state's (a read that
  // must write a handshake record): epoll watched what it waits for, so
  // any event lets the state's step run again.
  if (connection.ssl != nullptr) events |= EPOLLIN | EPOLLOUT;
  connection.tls_wait = TlsWait::kNone;
  bool keep = true;
  switch (connection.state) {
    case State::kReadingHead:
    case State::kDraining:
      if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        keep = OnReadable(id, connection, now);
      }
      break;
    case State::kSendingHead:
    case State::kSendingBody:
      if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
        keep = OnWritable(connection, now);
      }
      break;
  }
  if (!keep || !UpdateInterest(connection, id)) Close(id);
}

bool FileServer::Loop::OnReadable(uint64_t id, Connection& connection,
                                  absl::Time now) {
  if (connection.state == State::kDraining) return DrainInput(connection);
  char buffer[http::kMaxHeadBytes];
  size_t room = http::kMaxHeadBytes - connection.head_in.size();
  ssize_t n = Receive(connection, buffer, room);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;  // gone before sending a whole head
  // The deadline set at accept stands: a head must arrive whole within
  // head_timeout, however slowly its bytes trickle in.
  connection.head_in.append(buffer, static_cast<size_t>(n));
  size_t head_size = http::FindHeadEnd(connection.head_in);
  if (head_size > 0) {
    HandleHead(id, connection,
               absl::string_view(connection.head_in).substr(0, head_size));
  } else if (!http::CheckPartialRequestHead(connection.head_in,
                                            connection.head_checked)
                  .ok() ||
             connection.head_in.size() >= http::kMaxHeadBytes) {
    // It can never become a valid head: say so now rather than when the
    // head timeout comes.
    Respond(connection, http::FormatErrorHead(http::kBadRequest));
  } else {
    connection.head_checked = connection.head_in.size();
    return true;
  }
  return OnWritable(connection, now);
}

// Reads and drops whatever the client still sends, so that closing does not
// answer its bytes with a reset that could destroy our response in flight.
bool FileServer::Loop::DrainInput(Connection& connection) {
  char buffer[4096];
  for (int i = 0; i < 16; ++i) {
    ssize_t n = ::recv(connection.socket.get(), buffer, sizeof(buffer), 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return false;  // the client closed: done
  }
  return true;
}

void FileServer::Loop::HandleHead(uint64_t id, Connection& connection,
                                  absl::string_view head) {
  absl::StatusOr<http::Request> request = http::ParseRequestHead(head);
  if (!request.ok()) {
    Respond(connection,
            http::FormatErrorHead(http::HttpCodeFromStatus(request.status())));
    return;
  }
  absl::Status allowed =
      options_.authorizer(request->file_name, request->ticket);
  if (!allowed.ok()) {
    Respond(connection,
            http::FormatErrorHead(http::HttpCodeFromStatus(allowed)));
    return;
  }
  if (request->leaves) {
    ServeLeaves(id, connection, request->file_name);
    return;
  }
  // The share folder its path names now, as `pub` hashes through the path:
  // a folder moved away or made again serves what is published from it,
  // never files left in the old one.
  const UniqueFd share_dir(
      ::open(options_.share_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  absl::StatusOr<SharedFile> file =
      share_dir ? OpenSharedFile(share_dir.get(), request->file_name)
                : absl::NotFoundError("the share folder is gone");
  if (file.ok() && options_.file_check) {
    if (absl::Status s = options_.file_check(request->file_name, file->info);
        !s.ok()) {
      file = s;
    }
  }
  if (!file.ok()) {
    Respond(connection,
            http::FormatErrorHead(http::HttpCodeFromStatus(file.status())));
    return;
  }
  const uint64_t size = static_cast<uint64_t>(file->info.st_size);
  http::ContentRange range{0, size == 0 ? 0 : size - 1, size};
  std::string response_head = http::FormatOkHead(size);
  if (request->range) {
    absl::StatusOr<http::ContentRange> resolved =
        http::ResolveRange(*request->range, size);
    if (!resolved.ok()) {
      Respond(connection,
              http::FormatErrorHead(http::kRangeNotSatisfiable, size));
      return;
    }
    range = *resolved;
    response_head = http::FormatPartialHead(range);
  }
  if (approved_connections_ >= options_.max_connections) {
    Respond(connection, http::FormatErrorHead(http::kServiceUnavailable));
    return;
  }
  Approve(id, connection);
  if (connection.ssl != nullptr) {
    // The handshake is done (the head came through it).
    connection.kernel_tls = UsesKernelTlsSend(connection.ssl.get());
    if (!connection.kernel_tls) {
      connection.tls_buffer = std::make_unique<char[]>(kTlsBufferBytes);
    }
  }
  connection.file = std::move(file->fd);
  connection.body_offset = static_cast<off_t>(range.first);
  connection.body_remaining = size == 0 ? 0 : range.length();
  Respond(connection, std::move(response_head));
}

// The leaves are small (32 bytes a MiB of file) and sent from memory with
// the head; they still take a download slot while they are sent, so that the
// slot count bounds the memory that responses in flight hold.
void FileServer::Loop::ServeLeaves(uint64_t id, Connection& connection,
                                   absl::string_view name) {
  if (!options_.leaf_source) {
    Respond(connection, http::FormatErrorHead(http::kNotFound));
    return;
  }
  absl::StatusOr<std::string> leaves = options_.leaf_source(name);
  if (!leaves.ok()) {
    Respond(connection,
            http::FormatErrorHead(http::HttpCodeFromStatus(leaves.status())));
    return;
  }
  if (approved_connections_ >= options_.max_connections) {
    Respond(connection, http::FormatErrorHead(http::kServiceUnavailable));
    return;
  }
  Approve(id, connection);
  connection.body_remaining = 0;
  Respond(connection,
          absl::StrCat(http::FormatOkHead(leaves->size()), *leaves));
}

void FileServer::Loop::Respond(Connection& connection, std::string head) {
  connection.state = State::kSendingHead;
  connection.head_out = std::move(head);
  connection.head_sent = 0;
  connection.head_in.clear();
  connection.head_in.shrink_to_fit();
}

bool FileServer::Loop::OnWritable(Connection& connection, absl::Time now) {
  const int fd = connection.socket.get();
  while (connection.state == State::kSendingHead) {
    const absl::string_view rest =
        absl::string_view(connection.head_out).substr(connection.head_sent);
    const int more = connection.body_remaining > 0 ? MSG_MORE : 0;
    ssize_t n = Send(connection, rest.data(), rest.size(), MSG_NOSIGNAL | more);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    connection.head_sent += static_cast<size_t>(n);
    // Progress renews the deadline of a transfer only: a pending
    // connection keeps the one its head had.
    if (connection.approved) connection.deadline = now + options_.idle_timeout;
    if (connection.head_sent == connection.head_out.size()) {
      connection.state = State::kSendingBody;
    }
  }
  uint64_t budget = kSendBudgetBytes;
  if (connection.ssl != nullptr) {
    if (!SendTlsBody(connection, budget, now)) return false;
    if (connection.body_remaining > 0) return true;  // more next time
  }
  while (connection.body_remaining > 0 && budget > 0) {
    size_t chunk =
        static_cast<size_t>(std::min(connection.body_remaining, budget));
    ssize_t n =
        ::sendfile(fd, connection.file.get(), &connection.body_offset, chunk);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    // 0: the file shrank under us; the promised length cannot be kept, and
    // closing early tells the client so.
    if (n == 0) return false;
    connection.body_remaining -= static_cast<uint64_t>(n);
    budget -= static_cast<uint64_t>(n);
    connection.deadline = now + options_.idle_timeout;
  }
  if (connection.body_remaining > 0) return true;  // more next time
  return StartDraining(connection, now);
}

ssize_t FileServer::Loop::Receive(Connection& connection, char* data,
                                  size_t size) {
  TlsWait wait;
  absl::Status tls_error;  // a failure closes the connection either way
  const ssize_t n = ReceiveSome(connection.socket.get(), connection.ssl.get(),
                                data, size, &wait, &tls_error);
  if (n < 0 && errno == EAGAIN && connection.ssl != nullptr) {
    connection.tls_wait = wait;
  }
  return n;
}

ssize_t FileServer::Loop::Send(Connection& connection, const char* data,
                               size_t size, int flags) {
  TlsWait wait;
  absl::Status tls_error;  // a failure closes the connection either way
  const ssize_t n = SendSome(connection.socket.get(), connection.ssl.get(),
                             data, size, flags, &wait, &tls_error);
  if (n < 0 && errno == EAGAIN && connection.ssl != nullptr) {
    connection.tls_wait = wait;
  }
  return n;
}

bool FileServer::Loop::SendTlsBody(Connection& connection, uint64_t& budget,
                                   absl::Time now) {
  while (connection.body_remaining > 0 && budget > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(
        {connection.body_remaining, budget,
         connection.kernel_tls ? kSendBudgetBytes : kTlsBufferBytes}));
    ssize_t n;
    if (connection.kernel_tls) {
      // The kernel encrypts: the file's pages go to the socket unread.
      n = SSL_sendfile(connection.ssl.get(), connection.file.get(),
                       connection.body_offset, chunk, 0);
      if (n < 0) {
        const int error =
            SSL_get_error(connection.ssl.get(), static_cast<int>(n));
        if (error == SSL_ERROR_WANT_WRITE) {
          connection.tls_wait = TlsWait::kWrite;
          return true;
        }
        return false;
      }
      connection.body_offset += n;
    } else {
      if (connection.tls_sent == connection.tls_filled) {
        ssize_t read =
            ::pread(connection.file.get(), connection.tls_buffer.get(), chunk,
                    connection.body_offset);
        if (read < 0 && errno == EINTR) continue;
        // 0: the file shrank under us (see OnWritable).
        if (read <= 0) return false;
        connection.body_offset += read;
        connection.tls_sent = 0;
        connection.tls_filled = static_cast<size_t>(read);
      }
      n = Send(connection, connection.tls_buffer.get() + connection.tls_sent,
               connection.tls_filled - connection.tls_sent, 0);
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      connection.tls_sent += static_cast<size_t>(n);
    }
    connection.body_remaining -= static_cast<uint64_t>(n);
    budget -= std::min(budget, static_cast<uint64_t>(n));
    connection.deadline = now + options_.idle_timeout;
  }
  return true;
}

bool FileServer::Loop::StartDraining(Connection& connection, absl::Time now) {
  connection.file.Reset();
  if (connection.ssl != nullptr) {
    // close_notify, best effort: Content-Length already delimits the body.
    SSL_shutdown(connection.ssl.get());
  }
  connection.state = State::kDraining;
  connection.deadline = now + std::min(options_.idle_timeout, kMaxDrainTime);
  // Our FIN tells the client the response is complete.
  return ::shutdown(connection.socket.get(), SHUT_WR) == 0;
}

bool FileServer::Loop::UpdateInterest(Connection& connection, uint64_t id) {
  // Level-triggered; no EPOLLRDHUP, which a client that half-closes after
  // its request would keep raising while we wait to send.
  uint32_t wanted = connection.sending() ? EPOLLOUT : EPOLLIN;
  if (connection.tls_wait == TlsWait::kRead) wanted = EPOLLIN;
  if (connection.tls_wait == TlsWait::kWrite) wanted = EPOLLOUT;
  if (wanted == connection.interest) return true;
  connection.interest = wanted;
  return EpollControl(epoll_.get(), EPOLL_CTL_MOD, connection.socket.get(),
                      wanted, id)
      .ok();
}

void FileServer::Loop::Close(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  if (it->second.approved) {
    --approved_connections_;
  } else {
    ForgetPending(id, it->second.source);
  }
  // Closing the socket also removes it from the epoll set.
  connections_.erase(it);
}

void FileServer::Loop::ExpireIdle(absl::Time now) {
  std::vector<uint64_t> expired;
  for (const auto& [id, connection] : connections_) {
    if (now >= connection.deadline) expired.push_back(id);
  }
  for (uint64_t id : expired) Close(id);
  if (listener_paused_) {
    listener_paused_ = !EpollControl(epoll_.get(), EPOLL_CTL_MOD,
                                     listener_.get(), EPOLLIN, kListenerId)
                            .ok();
  }
}

absl::StatusOr<std::unique_ptr<FileServer>> FileServer::Start(Options options) {
  if (!options.authorizer) {
    return absl::InvalidArgumentError("FileServer needs an authorizer");
  }
  if (options.max_connections < 1 || options.max_pending_heads < 1 ||
      options.max_pending_heads_per_source < 1) {
    return absl::InvalidArgumentError(
        "FileServer connection limits must be at least 1");
  }
  if (options.idle_timeout <= absl::ZeroDuration() ||
      options.head_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("FileServer timeouts must be positive");
  }
  const int max_pending_heads = PendingHeadCap(options);
  // Checked here; each request opens it again (HandleHead).
  if (UniqueFd share_dir(
          ::open(options.share_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      !share_dir) {
    return ErrnoStatus(absl::StrCat("open ", options.share_dir), errno);
  }
  absl::StatusOr<UniqueFd> listener =
      OpenTcpListener(options.bind, kListenBacklog);
  if (!listener.ok()) return listener.status();
  absl::Status status = SetNonBlocking(listener->get());
  if (!status.ok()) return status;
  absl::StatusOr<SocketAddress> address = LocalAddress(listener->get());
  if (!address.ok()) return address.status();

  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return ErrnoStatus("epoll_create1", errno);
  UniqueFd stop_event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!stop_event) return ErrnoStatus("eventfd", errno);
  status = EpollControl(epoll.get(), EPOLL_CTL_ADD, listener->get(), EPOLLIN,
                        kListenerId);
  if (status.ok()) {
    status = EpollControl(epoll.get(), EPOLL_CTL_ADD, stop_event.get(), EPOLLIN,
                          kStopEventId);
  }
  if (!status.ok()) return status;

  std::string transfer_mode = "plain HTTP, sendfile";
  if (options.tls != nullptr) {
    transfer_mode =
        KernelTlsAvailable()
            ? "TLS 1.3, kernel TLS with SSL_sendfile"
            : "TLS 1.3, userspace TLS (SSL_write from pread buffers; this "
              "kernel has no TLS ULP)";
  }
  auto loop = std::make_unique<Loop>(std::move(options), max_pending_heads,
                                     *std::move(listener), std::move(epoll),
                                     std::move(stop_event));
  const uint16_t port = address->port();
  return std::unique_ptr<FileServer>(new FileServer(std::move(loop), *address,
                                                    port, max_pending_heads,
                                                    std::move(transfer_mode)));
}

FileServer::FileServer(std::unique_ptr<Loop> loop, SocketAddress address,
                       uint16_t port, int max_pending_heads,
                       std::string transfer_mode)
    : loop_(std::move(loop)),
      transfer_mode_(std::move(transfer_mode)),
      address_(address),
      port_(port),
      max_pending_heads_(max_pending_heads) {
  thread_ = std::thread([this] {
    NameThisThread("file-server");
    loop_->Run();
  });
}

FileServer::~FileServer() {
  loop_->Stop();
  thread_.join();
}

}  // namespace pcfs
