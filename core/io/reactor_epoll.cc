// The epoll backend: one epoll fd, level-triggered; an eventfd for Stop(), a
// timerfd per timer, a signalfd per signal set, and recvmmsg/sendmmsg
// batches (reactor_batch.h) for datagram sockets.
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
#include "core/io/reactor_batch.h"

namespace pcfs::internal {
namespace {

constexpr int kMaxEvents = 64;
// Batches per socket per wake-up, so timers and signals are not starved; the
// socket is level-triggered, so what is left wakes the loop again at once.
constexpr int kBatchesPerWakeup = 8;

// One descriptor registered with epoll, and what to do when it is readable.
struct Source {
  UniqueFd owned;  // empty for AddReadable(), whose fd the caller owns
  absl::AnyInvocable<void()> on_readable;
};

// A UDP socket and its handler. The reactor's one DatagramBatch serves
// every port: the loop thread handles one batch at a time.
struct DatagramPort {
  UniqueFd socket;
  DatagramHandler handler;
  DatagramPeek peek;  // may be null
};

class EpollReactor final : public Reactor {
 public:
  EpollReactor(UniqueFd epoll, UniqueFd wake) noexcept
      : epoll_(std::move(epoll)), wake_(std::move(wake)) {}

  // Registers the eventfd that Stop() writes to.
  absl::Status Init();

  using Reactor::AddDatagramSocket;
  absl::Status AddDatagramSocket(UniqueFd socket, DatagramHandler handler,
                                 DatagramPeek peek) override;
  absl::Status AddTimer(absl::Duration period,
                        absl::AnyInvocable<void()> fn) override;
  absl::Status AddSignals(std::initializer_list<int> signals,
                          absl::AnyInvocable<void(int signo)> fn) override;
  absl::Status AddReadable(int fd, absl::AnyInvocable<void()> fn) override;
  void DrainDatagrams() override;
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
  std::vector<std::unique_ptr<DatagramPort>> ports_;  // loop thread only
  Counters counters_;
  // The loop thread's receive and reply buffers (about 100 KiB).
  std::unique_ptr<DatagramBatch> batch_ =
      std::make_unique<DatagramBatch>(&counters_);
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
                                             DatagramHandler handler,
                                             DatagramPeek peek) {
  if (absl::Status s = internal::CheckDatagramSocket(socket.get()); !s.ok()) {
    return s;
  }
  auto port = std::make_unique<DatagramPort>(
      DatagramPort{std::move(socket), std::move(handler), std::move(peek)});
  DatagramPort* served = port.get();
  ports_.push_back(std::move(port));
  absl::Status s = Register(served->socket.get(), UniqueFd(), [this, served] {
    for (int batch = 0; batch < kBatchesPerWakeup; ++batch) {
      const unsigned received = batch_->ReceiveHandleAndReply(
          served->socket.get(), served->handler, &served->peek);
      if (received < DatagramBatch::kBatchSize) return;  // drained
    }
  });
  if (!s.ok()) ports_.pop_back();
  return s;
}

void EpollReactor::DrainDatagrams() {
  // Only this thread reads the socket: once as many datagrams as were
  // queued at the start have been read, all of those have been handled.
  for (const std::unique_ptr<DatagramPort>& port : ports_) {
    const int fd = port->socket.get();
    batch_->Drain(fd, port->handler, &port->peek, QueuedDatagramsBound(fd));
  }
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

ReactorStats EpollReactor::stats() const { return counters_.Snapshot(); }

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
