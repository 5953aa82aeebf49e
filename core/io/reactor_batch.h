// What both reactor backends share on the datagram path: the counters
// behind ReactorStats, and a batch of receive and reply buffers that
// receives with recvmmsg, runs the handler and answers with sendmmsg. The
// epoll backend serves its sockets with it; the io_uring backend uses it to
// drain its sockets directly (Reactor::DrainDatagrams). Internal to core/io.
//
// Thread-safety: a DatagramBatch belongs to its reactor's loop thread.
// Counters may be read from any thread (each counter atomically).
#ifndef PCFS_CORE_IO_REACTOR_BATCH_H_
#define PCFS_CORE_IO_REACTOR_BATCH_H_

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/io/reactor.h"

namespace pcfs::internal {

// Room for any datagram a client may send by mistake beyond the protocol's
// 1200 bytes, so it is seen as oversized rather than cut to a valid size.
constexpr size_t kReceiveCapacity = 2048;
constexpr size_t kReplyCapacity = 1200;

// The most datagrams one DrainDatagrams() call handles per socket: more
// than a receive buffer of the largest size Linux allows by default holds
// (each queued datagram costs the buffer at least kMinDatagramCharge
// bytes), so it drains any queue, yet a flood that refills the socket as
// fast as it is read cannot hold the loop thread for ever.
constexpr size_t kMaxDrainedDatagrams = 65536;

// The least a queued datagram charges to its socket's receive buffer: its
// sk_buff alone (the kernel's skb "truesize" also counts the data and the
// shared info: 832 bytes for a small datagram on loopback).
constexpr size_t kMinDatagramCharge = 256;

// At least the number of datagrams queued on `fd` now: the bytes its
// receive queue holds (SO_MEMINFO) over kMinDatagramCharge, at most
// kMaxDrainedDatagrams; that bound itself if the kernel does not say. A
// drain that stops after this many has read everything queued when it
// began (the queue is first in, first out). The bound is loose: a small
// datagram is charged about three times kMinDatagramCharge, and UDP gives
// the memory of datagrams already read back to the count in batches (up to
// a quarter of the receive buffer), so under a flood the drain may read
// thousands more (docs/ARCHITECTURE.md).
size_t QueuedDatagramsBound(int fd);

// The datagram counters, written by the loop thread and read by stats().
struct Counters {
  std::atomic<uint64_t> datagrams_received{0};
  std::atomic<uint64_t> datagrams_oversized{0};
  std::atomic<uint64_t> replies_sent{0};
  std::atomic<uint64_t> replies_dropped{0};
  std::atomic<uint64_t> socket_errors{0};

  static void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    if (n != 0) counter.fetch_add(n, std::memory_order_relaxed);
  }
  ReactorStats Snapshot() const;
};

// Receive buffers, sender addresses, reply buffers and the message headers
// of one recvmmsg and one sendmmsg, allocated once: nothing is allocated
// per datagram.
class DatagramBatch {
 public:
  // Datagrams per recvmmsg/sendmmsg call.
  static constexpr unsigned kBatchSize = 32;

  explicit DatagramBatch(Counters* counters);
  DatagramBatch(const DatagramBatch&) = delete;
  DatagramBatch& operator=(const DatagramBatch&) = delete;

  // Receives up to kBatchSize datagrams waiting on `fd` (non-blocking),
  // hands each to `handler` and sends the replies. Returns how many were
  // received: fewer than kBatchSize means the socket was drained.
  // `peek` (may be null) is shown every datagram of the batch before
  // `handler` gets the first.
  unsigned ReceiveHandleAndReply(int fd, DatagramHandler& handler,
                                 DatagramPeek* peek);

  // Repeats ReceiveHandleAndReply until the socket is drained or
  // `max_datagrams` have been received; returns how many were.
  size_t Drain(int fd, DatagramHandler& handler, DatagramPeek* peek,
               size_t max_datagrams);

 private:
  struct Slot {
    std::array<uint8_t, kReceiveCapacity> datagram;
    std::array<uint8_t, kReplyCapacity> reply;
    SocketAddress from;
    iovec datagram_iov;
    iovec reply_iov;
  };

  // Returns the number of datagrams received, 0 when none is waiting.
  unsigned Receive(int fd);
  // Runs the handler on each datagram; returns the number of replies queued
  // in send_headers_.
  unsigned Handle(unsigned received, DatagramHandler& handler,
                  DatagramPeek* peek);
  // Shows datagram `i` to `peek` unless it was cut short.
  void Peek(unsigned i, DatagramPeek& peek);
  void Send(int fd, unsigned count);

  Counters* counters_;
  std::array<Slot, kBatchSize> slots_;
  std::array<mmsghdr, kBatchSize> receive_headers_{};
  std::array<mmsghdr, kBatchSize> send_headers_{};
};

}  // namespace pcfs::internal

#endif  // PCFS_CORE_IO_REACTOR_BATCH_H_
