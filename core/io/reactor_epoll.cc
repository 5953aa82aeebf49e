// The epoll backend: one epoll fd, level-triggered; an eventfd for Stop(), a
// timerfd per timer, a signalfd per signal set, and recvmmsg/sendmmsg
// batches for datagram sockets.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/io/reactor_backends.h"

namespace pcfs::internal {
namespace {

constexpr int kMaxEvents = 64;
// Datagrams per recvmmsg/sendmmsg call.
constexpr unsigned kBatchSize = 32;
// Room for any datagram a client may send by mistake beyond the protocol's
// 1200 bytes, so it is seen as oversized rather than cut to a valid size.
constexpr size_t kReceiveCapacity = 2048;
constexpr size_t kReplyCapacity = 1200;
// Batches per socket per wake-up, so timers and signals are not starved; the
// socket is level-triggered, so what is left wakes the loop again at once.
constexpr int kBatchesPerWakeup = 8;

// The datagram counters, written by the loop thread and read by stats().
struct Counters {
  std::atomic<uint64_t> datagrams_received{0};
  std::atomic<uint64_t> datagrams_oversized{0};
  std::atomic<uint64_t> replies_sent{0};
  std::atomic<uint64_t> replies_dropped{0};
  std::atomic<uint64_t> socket_errors{0};

  static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    if (n != 0) counter.fetch_add(n, std::memory_order_relaxed);
  }
};

// One descriptor registered with epoll, and what to do when it is readable.
struct Source {
  UniqueFd owned;  // empty for AddReadable(), whose fd the caller owns
  absl::AnyInvocable<void()> on_readable;
};

// A UDP socket and its batch, allocated once: receive buffers, sender
// addresses, reply buffers and the message headers for both calls. Nothing
// is allocated per datagram.
class DatagramPort {
 public:
  DatagramPort(UniqueFd socket, DatagramHandler handler, Counters* counters);
  DatagramPort(const DatagramPort&) = delete;
  DatagramPort& operator=(const DatagramPort&) = delete;

  int fd() const { return socket_.get(); }

  // Receives, handles and answers up to kBatchesPerWakeup batches.
  void OnReadable();

 private:
  struct Slot {
    std::array<uint8_t, kReceiveCapacity> datagram;
    std::array<uint8_t, kReplyCapacity> reply;
    SocketAddress from;
    iovec datagram_iov;
    iovec reply_iov;
  };

  // Returns the number of datagrams received, 0 when none is waiting.
  unsigned ReceiveBatch();
  // Runs the handler on each datagram; returns the number of replies queued
  // in send_headers_.
  unsigned HandleBatch(unsigned received);
  void SendReplies(unsigned count);

  UniqueFd socket_;
  DatagramHandler handler_;
  Counters* counters_;
  std::array<Slot, kBatchSize> slots_;
  std::array<mmsghdr, kBatchSize> receive_headers_{};
  std::array<mmsghdr, kBatchSize> send_headers_{};
};

DatagramPort::DatagramPort(UniqueFd socket, DatagramHandler handler,
                           Counters* counters)
    : socket_(std::move(socket)),
      handler_(std::move(handler)),
      counters_(counters) {
  for (unsigned i = 0; i < kBatchSize; ++i) {
    Slot& slot = slots_[i];
    slot.datagram_iov = {slot.datagram.data(), slot.datagram.size()};
    slot.reply_iov = {slot.reply.data(), 0};
    msghdr& header = receive_headers_[i].msg_hdr;
    header.msg_name = &slot.from.storage;
    header.msg_iov = &slot.datagram_iov;
    header.msg_iovlen = 1;
  }
}

void DatagramPort::OnReadable() {
  for (int batch = 0; batch < kBatchesPerWakeup; ++batch) {
    const unsigned received = ReceiveBatch();
    if (received == 0) return;
    SendReplies(HandleBatch(received));
    if (received < kBatchSize) return;  // drained
  }
}

unsigned DatagramPort::ReceiveBatch() {
  for (mmsghdr& header : receive_headers_) {
    header.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
  }
  int received;
  do {
    received = recvmmsg(socket_.get(), receive_headers_.data(), kBatchSize,
                        MSG_DONTWAIT, nullptr);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    // A pending socket error is reported once and cleared; the loop goes on.
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      Counters::Add(counters_->socket_errors, 1);
    }
    return 0;
  }
  return static_cast<unsigned>(received);
}

unsigned DatagramPort::HandleBatch(unsigned received) {
  unsigned replies = 0;
  uint64_t handled = 0, oversized = 0, refused = 0;
  for (unsigned i = 0; i < received; ++i) {
    const msghdr& in = receive_headers_[i].msg_hdr;
    if (in.msg_flags & MSG_TRUNC) {
      ++oversized;  // over kReceiveCapacity: never shown cut short
      continue;
    }
    Slot& slot = slots_[i];
    slot.from.length = in.msg_namelen;
    ++handled;
    const size_t length =
        handler_(std::span<const uint8_t>(slot.datagram.data(),
                                          receive_headers_[i].msg_len),
                 slot.from, std::span<uint8_t>(slot.reply));
    if (length == 0) continue;
    if (length > kReplyCapacity) {
      ++refused;  // a handler bug; sending would read past the buffer
      continue;
    }
    slot.reply_iov.iov_len = length;
    msghdr& out = send_headers_[replies++].msg_hdr;
    out.msg_name = &slot.from.storage;
    out.msg_namelen = slot.from.length;
    out.msg_iov = &slot.reply_iov;
    out.msg_iovlen = 1;
  }
  Counters::Add(counters_->datagrams_received, handled);
  Counters::Add(counters_->datagrams_oversized, oversized);
  Counters::Add(counters_->replies_dropped, refused);
  return replies;
}

void DatagramPort::SendReplies(unsigned count) {
  unsigned next = 0;
  while (next < count) {
    const int sent = sendmmsg(socket_.get(), &send_headers_[next], count - next,
                              MSG_DONTWAIT);
    if (sent > 0) {
      next += static_cast<unsigned>(sent);
      Counters::Add(counters_->replies_sent, static_cast<uint64_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
      // Send buffer full: drop the rest of the batch; clients retransmit.
      Counters::Add(counters_->replies_dropped, count - next);
      return;
    }
    // The first remaining reply failed on its own (say, an unreachable
    // address): skip it and send the others.
    Counters::Add(counters_->socket_errors, 1);
    Counters::Add(counters_->replies_dropped, 1);
    ++next;
  }
}

class EpollReactor final : public Reactor {
 public:
  EpollReactor(UniqueFd epoll, UniqueFd wake) noexcept
      : epoll_(std::move(epoll)), wake_(std::move(wake)) {}

  // Registers the eventfd that Stop() writes to.
  absl::Status Init();

  absl::Status AddDatagramSocket(UniqueFd socket,
                                 DatagramHandler handler) override;
  absl::Status AddTimer(absl::Duration period,
                        absl::AnyInvocable<void()> fn) override;
  absl::Status AddSignals(std::initializer_list<int> signals,
                          absl::AnyInvocable<void(int signo)> fn) override;
  absl::Status AddReadable(int fd, absl::AnyInvocable<void()> fn) override;
  absl::Status Run() override;
  void Stop() override;
  ReactorStats stats() const override;
  absl::string_view backend_name() const override { return "epoll"; }

 private:
  // Adds `fd` to the epoll set; on failure `owned` is closed.
  absl::Status Register(int fd, UniqueFd owned,
                        absl::AnyInvocable<void()> on_readable);

  UniqueFd epoll_;
  UniqueFd wake_;                                 // eventfd; written by Stop()
  bool stop_requested_ = false;                   // loop thread only
  std::vector<std::unique_ptr<Source>> sources_;  // loop thread only
  Counters counters_;
};

absl::Status EpollReactor::Init() {
  const int fd = wake_.get();
  return Register(fd, UniqueFd(), [this, fd] {
    uint64_t count;
    if (read(fd, &count, sizeof(count)) == sizeof(count)) {
      stop_requested_ = true;
    }
  });
}

absl::Status EpollReactor::Register(int fd, UniqueFd owned,
                                    absl::AnyInvocable<void()> on_readable) {
  auto source = std::make_unique<Source>(
      Source{std::move(owned), std::move(on_readable)});
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = source.get();
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    return ErrnoStatus(absl::StrCat("epoll_ctl(EPOLL_CTL_ADD, fd ", fd, ")"),
                       errno);
  }
  sources_.push_back(std::move(source));
  return absl::OkStatus();
}

absl::Status EpollReactor::AddDatagramSocket(UniqueFd socket,
                                             DatagramHandler handler) {
  if (absl::Status s = internal::CheckDatagramSocket(socket.get()); !s.ok()) {
    return s;
  }
  auto port = std::make_unique<DatagramPort>(std::move(socket),
                                             std::move(handler), &counters_);
  const int fd = port->fd();
  return Register(fd, UniqueFd(),
                  [port = std::move(port)] { port->OnReadable(); });
}

absl::Status EpollReactor::AddTimer(absl::Duration period,
                                    absl::AnyInvocable<void()> fn) {
  absl::StatusOr<internal::ReadableSource> source =
      internal::MakeTimerSource(period, std::move(fn));
  if (!source.ok()) return source.status();
  const int fd = source->fd.get();
  return Register(fd, std::move(source->fd), std::move(source->on_readable));
}

absl::Status EpollReactor::AddSignals(std::initializer_list<int> signals,
                                      absl::AnyInvocable<void(int)> fn) {
  absl::StatusOr<internal::ReadableSource> source =
      internal::MakeSignalSource(signals, std::move(fn));
  if (!source.ok()) return source.status();
  const int fd = source->fd.get();
  return Register(fd, std::move(source->fd), std::move(source->on_readable));
}

absl::Status EpollReactor::AddReadable(int fd, absl::AnyInvocable<void()> fn) {
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("AddReadable: invalid fd ", fd));
  }
  return Register(fd, UniqueFd(), std::move(fn));
}

absl::Status EpollReactor::Run() {
  stop_requested_ = false;
  std::array<epoll_event, kMaxEvents> events;
  while (!stop_requested_) {
    const int ready = epoll_wait(epoll_.get(), events.data(), kMaxEvents, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("epoll_wait", errno);
    }
    for (int i = 0; i < ready; ++i) {
      static_cast<Source*>(events[i].data.ptr)->on_readable();
    }
  }
  return absl::OkStatus();
}

void EpollReactor::Stop() {
  const uint64_t one = 1;
  // Fails only if the counter would overflow, and then a wake-up is pending.
  [[maybe_unused]] ssize_t written = write(wake_.get(), &one, sizeof(one));
}

ReactorStats EpollReactor::stats() const {
  ReactorStats stats;
  stats.datagrams_received =
      counters_.datagrams_received.load(std::memory_order_relaxed);
  stats.datagrams_oversized =
      counters_.datagrams_oversized.load(std::memory_order_relaxed);
  stats.replies_sent = counters_.replies_sent.load(std::memory_order_relaxed);
  stats.replies_dropped =
      counters_.replies_dropped.load(std::memory_order_relaxed);
  stats.socket_errors = counters_.socket_errors.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Reactor>> NewEpollReactor() {
  UniqueFd epoll(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return ErrnoStatus("epoll_create1", errno);
  UniqueFd wake(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake) return ErrnoStatus("eventfd", errno);
  auto reactor =
      std::make_unique<EpollReactor>(std::move(epoll), std::move(wake));
  absl::Status status = reactor->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<Reactor>(std::move(reactor));
}

}  // namespace pcfs::internal
