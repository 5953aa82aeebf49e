// The io_uring backend: one ring per reactor. Each datagram socket has one
// multishot recvmsg drawing from the reactor's provided-buffer ring, and each
// reply is a sendmsg from a pool of reply slots. The other descriptors (an
// eventfd for Stop(), a timerfd per timer, a signalfd per signal set, the
// caller's fds) are watched by poll requests. What a batch of completions
// prepares goes to the kernel in one io_uring_submit, and the kernel's work
// behind completions runs at the loop's next system call (COOP_TASKRUN; or,
// asked for, only while the loop waits: DEFER_TASKRUN). When Run() returns,
// no request is left in flight: the next Run() arms them again.
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/io/reactor_backends.h"
#include "core/io/reactor_batch.h"

namespace pcfs::internal {
namespace {

constexpr unsigned kSubmissionEntries = 256;
// Room for every completion that can be pending at once (each receive holds
// a buffer, each send a slot), so the completion queue never overflows.
constexpr unsigned kCompletionEntries = 4096;
// Completions handled between two submissions.
constexpr unsigned kCompletionsPerBatch = 128;
// Provided buffers (a power of two). Each holds the kernel's header, the
// sender's address and the datagram.
constexpr unsigned kReceiveBuffers = 256;
constexpr size_t kReceiveBufferSize =
    sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_storage) + kReceiveCapacity;
constexpr uint16_t kBufferGroup = 0;
// Completions are handled in order, so a slot comes back only when its send
// completion is reached. Waiting ahead of it are at most kReceiveBuffers
// receives (each holds a buffer) plus a batch or two of replies: with this
// many slots a reply finds one; should none be free, it is dropped and
// counted.
constexpr unsigned kReplySlots = kReceiveBuffers + 2 * kCompletionsPerBatch;

// What a completion belongs to, in the low bits of its user_data; the rest
// is the index of the source, port or reply slot.
enum class Operation : uint64_t {
  kPoll = 0,
  kReceive = 1,
  kSend = 2,
  kCancel = 3
};
constexpr int kOperationBits = 2;

uint64_t Tag(Operation operation, size_t index) {
  return (uint64_t{index} << kOperationBits) | static_cast<uint64_t>(operation);
}

// What Tag() packed into a completion's user data.
Operation OperationOf(const io_uring_cqe& cqe) {
  return static_cast<Operation>(io_uring_cqe_get_data64(&cqe) &
                                ((1u << kOperationBits) - 1));
}
size_t IndexOf(const io_uring_cqe& cqe) {
  return static_cast<size_t>(io_uring_cqe_get_data64(&cqe) >> kOperationBits);
}

// The payload of a multishot receive's buffer of `length` bytes, which
// io_uring_recvmsg_validate turned into `out` under `header`.
std::span<const uint8_t> PayloadOf(io_uring_recvmsg_out* out, int length,
                                   msghdr& header) {
  return std::span<const uint8_t>(
      static_cast<const uint8_t*>(io_uring_recvmsg_payload(out, &header)),
      io_uring_recvmsg_payload_length(out, length, &header));
}

class BufferRing;

// A provided buffer that a receive filled: the loop's from the completion
// until this handle is destroyed, which gives it back to the kernel.
class ReceivedBuffer {
 public:
  ReceivedBuffer(BufferRing* ring, uint16_t id, std::span<uint8_t> bytes)
      : ring_(ring), id_(id), bytes_(bytes) {}
  ReceivedBuffer(const ReceivedBuffer&) = delete;
  ReceivedBuffer& operator=(const ReceivedBuffer&) = delete;
  ~ReceivedBuffer();

  std::span<uint8_t> bytes() const { return bytes_; }

 private:
  BufferRing* ring_;
  uint16_t id_;
  std::span<uint8_t> bytes_;
};

// The provided-buffer ring of one io_uring, set up once. A buffer is the
// kernel's while listed in the ring, and the loop's while a ReceivedBuffer
// holds it; buffers are recycled, never allocated again.
class BufferRing {
 public:
  // Allocates the buffers and registers them with `ring` as kBufferGroup.
  absl::Status Register(io_uring* ring);

  // Takes the buffer that a completion with IORING_CQE_F_BUFFER names.
  ReceivedBuffer Take(uint32_t cqe_flags, int32_t length) {
    return ReceivedBuffer(this, IdOf(cqe_flags), View(cqe_flags, length));
  }

  // The bytes of that buffer, without taking it.
  std::span<uint8_t> View(uint32_t cqe_flags, int32_t length) {
    const size_t filled = static_cast<size_t>(std::max(length, 0));
    return std::span<uint8_t>(At(IdOf(cqe_flags)), filled);
  }

  // Lists buffer `id` in the ring again.
  void Recycle(uint16_t id) {
    io_uring_buf_ring_add(entries_.get(), At(id), kReceiveBufferSize, id,
                          io_uring_buf_ring_mask(kReceiveBuffers), 0);
    io_uring_buf_ring_advance(entries_.get(), 1);
  }

 private:
  static constexpr size_t kRingBytes = kReceiveBuffers * sizeof(io_uring_buf);
  struct Unmap {
    void operator()(io_uring_buf_ring* ring) const { munmap(ring, kRingBytes); }
  };

  uint8_t* At(uint16_t id) { return memory_.get() + id * kReceiveBufferSize; }
  static uint16_t IdOf(uint32_t cqe_flags) {
    return static_cast<uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
  }

  std::unique_ptr<io_uring_buf_ring, Unmap> entries_;  // page-aligned
  std::unique_ptr<uint8_t[]> memory_;
};

ReceivedBuffer::~ReceivedBuffer() { ring_->Recycle(id_); }

absl::Status BufferRing::Register(io_uring* ring) {
  void* mapped = mmap(nullptr, kRingBytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return ErrnoStatus("mmap(buffer ring)", errno);
  entries_.reset(static_cast<io_uring_buf_ring*>(mapped));
  memory_ = std::make_unique_for_overwrite<uint8_t[]>(kReceiveBuffers *
                                                      kReceiveBufferSize);
  io_uring_buf_ring_init(entries_.get());
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<uintptr_t>(mapped);
  registration.ring_entries = kReceiveBuffers;
  registration.bgid = kBufferGroup;
  const int err = io_uring_register_buf_ring(ring, &registration, 0);
  if (err < 0) {
    return ErrnoStatus(absl::StrCat("io_uring_register_buf_ring(",
                                    kReceiveBuffers, " buffers)"),
                       -err);
  }
  for (uint16_t id = 0; id < kReceiveBuffers; ++id) Recycle(id);
  return absl::OkStatus();
}

// Where a reply is written and what the kernel reads to send it.
struct ReplySlot {
  std::array<uint8_t, kReplyCapacity> bytes;
  SocketAddress to;
  iovec iov;
  msghdr header;
};

class ReplyPool;

// A reply slot lent to the loop: back to the pool when destroyed, unless
// ToKernel() gave it to a send, whose completion returns it.
class ReplyLease {
 public:
  ReplyLease(ReplyPool* pool, ReplySlot* slot) : pool_(pool), slot_(slot) {}
  ReplyLease(const ReplyLease&) = delete;
  ReplyLease& operator=(const ReplyLease&) = delete;
  ~ReplyLease();

  ReplySlot* get() const { return slot_; }
  ReplySlot* ToKernel() { return std::exchange(slot_, nullptr); }

 private:
  ReplyPool* pool_;
  ReplySlot* slot_;  // null: no slot was free
};

// kReplySlots slots, allocated once. A slot is free, leased to the loop
// while a handler writes it, or the kernel's from its sendmsg submission
// until that send completes.
class ReplyPool {
 public:
  ReplyPool() : slots_(kReplySlots) {
    free_.reserve(kReplySlots);
    for (uint32_t i = kReplySlots; i > 0; --i) free_.push_back(i - 1);
  }

  // An empty lease when every slot is in flight.
  ReplyLease Acquire() {
    if (free_.empty()) return ReplyLease(this, nullptr);
    ReplySlot* slot = &slots_[free_.back()];
    free_.pop_back();
    return ReplyLease(this, slot);
  }
  // Takes back the slot of a completed send.
  void Return(uint32_t index) { free_.push_back(index); }
  // Slots not free: between handlers, those of sends in flight.
  size_t in_use() const { return slots_.size() - free_.size(); }
  uint32_t IndexOf(const ReplySlot& slot) const {
    return static_cast<uint32_t>(&slot - slots_.data());
  }

 private:
  std::vector<ReplySlot> slots_;
  std::vector<uint32_t> free_;  // indices; never grows past its reservation
};

ReplyLease::~ReplyLease() {
  if (slot_ != nullptr) pool_->Return(pool_->IndexOf(*slot_));
}

// A descriptor watched by a one-shot poll, re-armed after `on_readable` ran.
// A one-shot poll completes at once if the fd is still readable, which keeps
// epoll's level-triggered behaviour; a multishot poll would not.
struct Source {
  int fd;
  UniqueFd owned;  // empty for AddReadable(), whose fd the caller owns
  absl::AnyInvocable<void()> on_readable;
  bool armed = false;  // its poll is prepared or in flight
};

struct DatagramPort {
  UniqueFd socket;
  DatagramHandler handler;
  DatagramPeek peek;  // may be null
  // The multishot receive's template, read by the kernel while the receive
  // lasts: room for the sender's address in each buffer, no control data.
  msghdr receive_header{};
  bool armed = false;  // its receive is prepared or in flight
};

class UringReactor final : public Reactor {
 public:
  UringReactor() = default;
  // Exits the ring first, then releases the buffers, slots and descriptors.
  // After Run() no request is in flight; before it (or should Run() have
  // given up waiting for one), exiting the ring cancels them first.
  ~UringReactor() override {
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  // Sets up the ring, the buffer ring and the eventfd that Stop() writes.
  absl::Status Init(UringTaskRun task_run);

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
  absl::string_view backend_name() const override { return "io_uring"; }

 private:
  // A free submission entry, submitting the queue first if it is full;
  // nullptr if there is still none.
  io_uring_sqe* NextSqe();
  absl::Status Watch(int fd, UniqueFd owned, absl::AnyInvocable<void()> fn);
  bool ArmPoll(size_t index);
  bool ArmReceive(size_t index);

  // Prepares the poll and receive requests that are not in flight.
  bool ArmAll();
  // Cancels every request in flight and handles their last completions.
  void Quiesce();
  size_t InFlight() const;

  void HandleCompletions();
  // DrainDatagrams()'s step on the ring: runs the pending task work, then
  // reaps up to kMaxDrainedDatagrams completions, handling all but polls
  // (kept in reaped_polls_). Returns how many carried a datagram.
  size_t ReapForDrain();
  static bool IsPoll(const io_uring_cqe& cqe);
  void Dispatch(const io_uring_cqe& cqe);
  void OnReadable(size_t index, int32_t result);
  void OnReceived(size_t index, int32_t result, uint32_t flags);
  void HandleDatagram(DatagramPort& port, const ReceivedBuffer& buffer);
  // Shows the datagram a receive completion carries, if any, to its port's
  // DatagramPeek.
  void PeekDatagram(const io_uring_cqe& cqe);
  bool SendReply(int fd, ReplySlot& slot, size_t length);
  void OnSent(size_t index, int32_t result);

  io_uring ring_{};
  bool ring_ready_ = false;
  bool ring_disabled_ = false;  // until Run() enables it on its thread
  UniqueFd wake_;               // eventfd; written by Stop()
  BufferRing buffers_;
  ReplyPool replies_;
  ReplySlot spare_slot_{};  // the handler's, when no reply slot is free
  // Loop thread only:
  bool stop_requested_ = false;
  // Set by Quiesce(): completions re-arm nothing and run no callbacks.
  bool quiescing_ = false;
  absl::Status failure_;  // a backend failure seen by the loop; ends Run()
  std::vector<std::unique_ptr<Source>> sources_;
  std::vector<std::unique_ptr<DatagramPort>> ports_;
  Counters counters_;
  // DrainDatagrams()'s receive and reply buffers, made at its first call.
  std::unique_ptr<DatagramBatch> drain_batch_;
  // Poll completions that DrainDatagrams() took off the ring, for
  // HandleCompletions to run after the current callback; at most one per
  // source (each has one poll in flight), reserved by Watch().
  std::vector<io_uring_cqe> reaped_polls_;
};

absl::Status UringReactor::Init(UringTaskRun task_run) {
  // kCooperative: the kernel runs the work behind completions (a multishot
  // receive reading its socket, a send finishing) at the loop's next
  // system call, without interrupting it by a signal (COOP_TASKRUN).
  // kDeferred: only when the loop waits in io_uring_submit_and_wait
  // (DEFER_TASKRUN; see UringTaskRun for why it is not the default). That
  // needs a ring with one submitting thread (SINGLE_ISSUER), which is the
  // thread that enables it; so the ring starts disabled and Run() enables
  // it on the loop thread. A kernel before 6.1 refuses the flags (EINVAL):
  // then it is kCooperative's ring.
  const auto init_ring = [this](unsigned flags) {
    io_uring_params params{};
    params.flags = IORING_SETUP_CQSIZE | flags;
    params.cq_entries = kCompletionEntries;
    return io_uring_queue_init_params(kSubmissionEntries, &ring_, &params);
  };
  int err = -EINVAL;  // as from a kernel that refuses DEFER_TASKRUN
  if (task_run == UringTaskRun::kDeferred) {
    err = init_ring(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                    IORING_SETUP_R_DISABLED);
    ring_disabled_ = err == 0;
  }
  if (err == -EINVAL) err = init_ring(IORING_SETUP_COOP_TASKRUN);
  if (err < 0) return ErrnoStatus("io_uring_queue_init_params", -err);
  ring_ready_ = true;
  absl::Status status = buffers_.Register(&ring_);
  if (!status.ok()) return status;
  wake_.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_) return ErrnoStatus("eventfd", errno);
  const int fd = wake_.get();
  return Watch(fd, UniqueFd(), [this, fd] {
    uint64_t count;
    if (read(fd, &count, sizeof(count)) == sizeof(count)) {
      stop_requested_ = true;
    }
  });
}

io_uring_sqe* UringReactor::NextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe != nullptr) return sqe;
  io_uring_submit(&ring_);
  return io_uring_get_sqe(&ring_);
}

absl::Status UringReactor::Watch(int fd, UniqueFd owned,
                                 absl::AnyInvocable<void()> fn) {
  sources_.push_back(
      std::make_unique<Source>(Source{fd, std::move(owned), std::move(fn)}));
  reaped_polls_.reserve(sources_.size());
  if (!ArmPoll(sources_.size() - 1)) {
    sources_.pop_back();
    return absl::ResourceExhaustedError("io_uring submission queue is full");
  }
  return absl::OkStatus();
}

bool UringReactor::ArmPoll(size_t index) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_poll_add(sqe, sources_[index]->fd, POLLIN);
  io_uring_sqe_set_data64(sqe, Tag(Operation::kPoll, index));
  sources_[index]->armed = true;
  return true;
}

bool UringReactor::ArmReceive(size_t index) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  DatagramPort& port = *ports_[index];
  io_uring_prep_recvmsg_multishot(sqe, port.socket.get(), &port.receive_header,
                                  0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, Tag(Operation::kReceive, index));
  port.armed = true;
  return true;
}

absl::Status UringReactor::AddDatagramSocket(UniqueFd socket,
                                             DatagramHandler handler,
                                             DatagramPeek peek) {
  if (absl::Status s = internal::CheckDatagramSocket(socket.get()); !s.ok()) {
    return s;
  }
  auto port = std::make_unique<DatagramPort>();
  port->socket = std::move(socket);
  port->handler = std::move(handler);
  port->peek = std::move(peek);
  port->receive_header.msg_namelen = sizeof(sockaddr_storage);
  ports_.push_back(std::move(port));
  if (!ArmReceive(ports_.size() - 1)) {
    ports_.pop_back();
    return absl::ResourceExhaustedError("io_uring submission queue is full");
  }
  return absl::OkStatus();
}

absl::Status UringReactor::AddTimer(absl::Duration period,
                                    absl::AnyInvocable<void()> fn) {
  absl::StatusOr<internal::ReadableSource> source =
      internal::MakeTimerSource(period, std::move(fn));
  if (!source.ok()) return source.status();
  const int fd = source->fd.get();
  return Watch(fd, std::move(source->fd), std::move(source->on_readable));
}

absl::Status UringReactor::AddSignals(std::initializer_list<int> signals,
                                      absl::AnyInvocable<void(int)> fn) {
  absl::StatusOr<internal::ReadableSource> source =
      internal::MakeSignalSource(signals, std::move(fn));
  if (!source.ok()) return source.status();
  const int fd = source->fd.get();
  return Watch(fd, std::move(source->fd), std::move(source->on_readable));
}

absl::Status UringReactor::AddReadable(int fd, absl::AnyInvocable<void()> fn) {
  // A bad fd is refused here, as epoll_ctl would, not at the first poll.
  if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("AddReadable: invalid fd ", fd));
  }
  return Watch(fd, UniqueFd(), std::move(fn));
}

absl::Status UringReactor::Run() {
  if (ring_disabled_) {
    // From now on only this thread may submit to the ring. liburing 2.3
    // declares io_uring_enable_rings but does not export it.
    if (syscall(__NR_io_uring_register, ring_.ring_fd,
                IORING_REGISTER_ENABLE_RINGS, nullptr, 0) != 0) {
      return ErrnoStatus("io_uring_register(IORING_REGISTER_ENABLE_RINGS)",
                         errno);
    }
    ring_disabled_ = false;
  }
  if (!ArmAll()) {
    return absl::ResourceExhaustedError("io_uring submission queue is full");
  }
  stop_requested_ = false;
  while (!stop_requested_ && failure_.ok()) {
    // One submission for everything the last batch prepared.
    const int result = io_uring_submit_and_wait(&ring_, 1);
    if (result < 0 && result != -EINTR && result != -EBUSY &&
        result != -EAGAIN) {
      return ErrnoStatus("io_uring_submit_and_wait", -result);
    }
    HandleCompletions();
  }
  // The replies of the last batch still go out; then nothing is left in
  // flight.
  Quiesce();
  return std::exchange(failure_, absl::OkStatus());
}

bool UringReactor::ArmAll() {
  for (size_t i = 0; i < sources_.size(); ++i) {
    if (!sources_[i]->armed && !ArmPoll(i)) return false;
  }
  for (size_t i = 0; i < ports_.size(); ++i) {
    if (!ports_[i]->armed && !ArmReceive(i)) return false;
  }
  return true;
}

size_t UringReactor::InFlight() const {
  size_t count = replies_.in_use();
  for (const std::unique_ptr<Source>& source : sources_) count += source->armed;
  for (const std::unique_ptr<DatagramPort>& port : ports_) count += port->armed;
  return count;
}

// A request in flight holds a reference to its file. Were the ring closed
// with some, the kernel would cancel them in a worker some milliseconds
// after the process is gone, and until then their sockets stay open: a
// daemon restarted at once would find its port in use. So the loop cancels
// them itself and takes their last completions; datagrams received before
// the cancellation are handled (and answered) as usual. Bounded: a request
// that does not end within a second is left to the ring's exit.
void UringReactor::Quiesce() {
  if (InFlight() == 0) return;
  quiescing_ = true;
  io_uring_sqe* sqe = NextSqe();
  if (sqe != nullptr) {
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, Tag(Operation::kCancel, 0));
  }
  constexpr absl::Duration kBound = absl::Seconds(1);
  const absl::Time deadline = absl::Now() + kBound;
  for (absl::Duration left = kBound;
       left > absl::ZeroDuration() && InFlight() > 0;
       left = deadline - absl::Now()) {
    const timespec until = absl::ToTimespec(left);
    __kernel_timespec wait{};
    wait.tv_sec = until.tv_sec;
    wait.tv_nsec = until.tv_nsec;
    io_uring_cqe* cqe = nullptr;
    const int result =
        io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &wait, nullptr);
    if (result < 0 && result != -EINTR && result != -ETIME &&
        result != -EBUSY && result != -EAGAIN) {
      break;
    }
    HandleCompletions();
  }
  quiescing_ = false;
}

void UringReactor::HandleCompletions() {
  // Copied out and consumed before any is handled, so that a callback may
  // reap further completions itself (DrainDatagrams).
  std::array<io_uring_cqe, kCompletionsPerBatch> batch;
  unsigned count = 0;
  io_uring_cqe* cqe;
  while (count < batch.size() && io_uring_peek_cqe(&ring_, &cqe) == 0) {
    batch[count++] = *cqe;
    io_uring_cqe_seen(&ring_, cqe);
  }
  // Datagrams first, then the polls (timers, signals, Stop): a timer runs
  // after the datagrams that completed with it. Every datagram is peeked
  // at before the first is handled.
  for (unsigned i = 0; i < count; ++i) PeekDatagram(batch[i]);
  for (unsigned i = 0; i < count; ++i) {
    if (!IsPoll(batch[i])) Dispatch(batch[i]);
  }
  for (unsigned i = 0; i < count; ++i) {
    if (IsPoll(batch[i])) Dispatch(batch[i]);
  }
  // Polls that a drain reaped; a callback of one may drain again.
  for (size_t i = 0; i < reaped_polls_.size(); ++i) {
    Dispatch(reaped_polls_[i]);
  }
  reaped_polls_.clear();
}

bool UringReactor::IsPoll(const io_uring_cqe& cqe) {
  return OperationOf(cqe) == Operation::kPoll;
}

void UringReactor::Dispatch(const io_uring_cqe& cqe) {
  const size_t index = IndexOf(cqe);
  switch (OperationOf(cqe)) {
    case Operation::kPoll:
      return OnReadable(index, cqe.res);
    case Operation::kReceive:
      return OnReceived(index, cqe.res, cqe.flags);
    case Operation::kSend:
      return OnSent(index, cqe.res);
    case Operation::kCancel:
      return;  // what it cancelled completes on its own
  }
}

void UringReactor::OnReadable(size_t index, int32_t result) {
  Source& source = *sources_[index];
  source.armed = false;
  // A source that became readable is polled again by the next Run().
  if (quiescing_) return;
  if (result < 0) {
    failure_ =
        ErrnoStatus(absl::StrCat("io_uring poll(fd ", source.fd, ")"), -result);
    return;
  }
  source.on_readable();
  if (!ArmPoll(index)) {
    failure_ = absl::ResourceExhaustedError("io_uring submission queue full");
  }
}

void UringReactor::OnReceived(size_t index, int32_t result, uint32_t flags) {
  if (flags & IORING_CQE_F_BUFFER) {
    const ReceivedBuffer buffer = buffers_.Take(flags, result);
    HandleDatagram(*ports_[index], buffer);
  } else if (result < 0 && result != -ENOBUFS && result != -ECANCELED) {
    // -ENOBUFS: every buffer was taken; re-arming resumes once they are back.
    Counters::Add(counters_.socket_errors);
  }
  if ((flags & IORING_CQE_F_MORE) != 0) return;
  ports_[index]->armed = false;
  if (!quiescing_ && !ArmReceive(index)) {
    failure_ = absl::ResourceExhaustedError("io_uring submission queue full");
  }
}

void UringReactor::PeekDatagram(const io_uring_cqe& cqe) {
  if (OperationOf(cqe) != Operation::kReceive ||
      (cqe.flags & IORING_CQE_F_BUFFER) == 0 || cqe.res < 0) {
    return;
  }
  DatagramPort& port = *ports_[IndexOf(cqe)];
  if (port.peek == nullptr) return;
  const std::span<uint8_t> bytes = buffers_.View(cqe.flags, cqe.res);
  const int length = static_cast<int>(bytes.size());
  io_uring_recvmsg_out* out =
      io_uring_recvmsg_validate(bytes.data(), length, &port.receive_header);
  if (out == nullptr || (out->flags & MSG_TRUNC)) return;
  port.peek(PayloadOf(out, length, port.receive_header));
}

void UringReactor::HandleDatagram(DatagramPort& port,
                                  const ReceivedBuffer& buffer) {
  std::span<uint8_t> bytes = buffer.bytes();
  const int length = static_cast<int>(bytes.size());
  io_uring_recvmsg_out* out =
      io_uring_recvmsg_validate(bytes.data(), length, &port.receive_header);
  if (out == nullptr) {
    Counters::Add(counters_.socket_errors);
    return;
  }
  if (out->flags & MSG_TRUNC) {
    Counters::Add(counters_.datagrams_oversized);  // never shown cut short
    return;
  }
  ReplyLease lease = replies_.Acquire();
  ReplySlot& slot = lease.get() != nullptr ? *lease.get() : spare_slot_;
  slot.to.length = std::min<socklen_t>(out->namelen, sizeof(slot.to.storage));
  std::memcpy(&slot.to.storage, io_uring_recvmsg_name(out), slot.to.length);
  const std::span<const uint8_t> datagram =
      PayloadOf(out, length, port.receive_header);
  Counters::Add(counters_.datagrams_received);
  const size_t reply = port.handler(datagram, slot.to, slot.bytes);
  if (reply == 0) return;
  // No free slot (the spare is never sent), a handler that overran its
  // buffer, or no submission entry: the reply is dropped.
  if (lease.get() == nullptr || reply > kReplyCapacity ||
      !SendReply(port.socket.get(), slot, reply)) {
    Counters::Add(counters_.replies_dropped);
    return;
  }
  lease.ToKernel();
}

bool UringReactor::SendReply(int fd, ReplySlot& slot, size_t length) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) return false;
  slot.iov = {slot.bytes.data(), length};
  slot.header = {};
  slot.header.msg_name = &slot.to.storage;
  slot.header.msg_namelen = slot.to.length;
  slot.header.msg_iov = &slot.iov;
  slot.header.msg_iovlen = 1;
  // MSG_DONTWAIT: a full send buffer fails the send (-EAGAIN) instead of
  // parking it in the kernel; the contract drops such replies.
  io_uring_prep_sendmsg(sqe, fd, &slot.header, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, Tag(Operation::kSend, replies_.IndexOf(slot)));
  return true;
}

void UringReactor::OnSent(size_t index, int32_t result) {
  replies_.Return(static_cast<uint32_t>(index));
  if (result >= 0) {
    Counters::Add(counters_.replies_sent);
    return;
  }
  Counters::Add(counters_.replies_dropped);
  if (result != -EAGAIN && result != -ECANCELED) {
    Counters::Add(counters_.socket_errors);
  }
}

void UringReactor::Stop() {
  const uint64_t one = 1;
  // Fails only if the counter would overflow, and then a wake-up is pending.
  [[maybe_unused]] ssize_t written = write(wake_.get(), &one, sizeof(one));
}

// The sockets have two readers here: each port's multishot receive, which
// the kernel runs as task work at the loop thread's next system call
// (cooperative ring) or wait (deferred ring), and the drain's own
// recvmmsg. The kernel hands every datagram to exactly one of them, first
// in, first out. So the drain alternates until what was queued when it
// began has certainly been handled:
//   - it runs the ring's pending task work (io_uring_get_events) and
//     handles every receive completion, so that nothing the multishot
//     receive took waits behind the drain (other completions are handled
//     too; polls wait in reaped_polls_ for HandleCompletions);
//   - it reads each socket with recvmmsg until it is empty;
// and stops once it has handled as many datagrams as were queued at the
// start (the completions then ready and QueuedDatagramsBound of each
// socket), or when a round found nothing either way. Reading only until
// the sockets are empty, as the epoll backend can, would leave what the
// multishot receive took meanwhile for after the caller's work; reading
// until then with no bound let a flood that refills the socket as fast as
// it is read hold the loop (and every completion behind it) for up to
// kMaxDrainedDatagrams. The loop thread is the only one that reaps, so no
// completion is missed or taken twice.
void UringReactor::DrainDatagrams() {
  if (drain_batch_ == nullptr) {
    drain_batch_ = std::make_unique<DatagramBatch>(&counters_);
  }
  size_t bound = io_uring_cq_ready(&ring_);
  for (const std::unique_ptr<DatagramPort>& port : ports_) {
    bound += QueuedDatagramsBound(port->socket.get());
  }
  bound = std::min(bound, kMaxDrainedDatagrams);
  size_t handled = 0;
  while (true) {
    // Every round ends here, on the ring: what the multishot receive took
    // while the sockets were read is handled before the drain returns.
    const size_t from_ring = ReapForDrain();
    handled += from_ring;
    if (handled >= bound) return;
    size_t from_sockets = 0;
    for (const std::unique_ptr<DatagramPort>& port : ports_) {
      const size_t read = drain_batch_->Drain(port->socket.get(), port->handler,
                                              &port->peek, bound - handled);
      from_sockets += read;
      handled += read;
      if (handled >= bound) break;
    }
    if (from_ring == 0 && from_sockets == 0) return;
  }
}

size_t UringReactor::ReapForDrain() {
  // Fails only as io_uring_enter does (EINTR, EBUSY): then what is posted
  // is reaped, and the next round runs the task work.
  [[maybe_unused]] const int result = io_uring_get_events(&ring_);
  size_t received = 0;
  io_uring_cqe* cqe;
  for (size_t reaped = 0;
       reaped < kMaxDrainedDatagrams && io_uring_peek_cqe(&ring_, &cqe) == 0;
       ++reaped) {
    const io_uring_cqe copy = *cqe;
    io_uring_cqe_seen(&ring_, cqe);
    if (IsPoll(copy)) {
      reaped_polls_.push_back(copy);
      continue;
    }
    if (OperationOf(copy) == Operation::kReceive &&
        (copy.flags & IORING_CQE_F_BUFFER) != 0) {
      ++received;
    }
    Dispatch(copy);
  }
  return received;
}

ReactorStats UringReactor::stats() const { return counters_.Snapshot(); }

}  // namespace

absl::StatusOr<std::unique_ptr<Reactor>> NewUringReactor(
    UringTaskRun task_run) {
  auto reactor = std::make_unique<UringReactor>();
  const absl::Status status = reactor->Init(task_run);
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("io_uring reactor: ", status.message()));
  }
  return std::unique_ptr<Reactor>(std::move(reactor));
}

}  // namespace pcfs::internal
