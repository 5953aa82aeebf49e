// DatagramSendBatch: datagrams bound for many addresses, gathered and sent
// on one UDP socket with one sendmmsg per batch rather than one sendto
// each. The daemon sends its deferred replies (PUB and UNP, answered once
// their journal batch is durable) through one of these per reactor thread:
// a journal batch completes hundreds of requests at once.
//
// Like the reactor's own sends it never waits: a datagram the kernel does
// not take (a full send buffer, an unreachable address) is dropped, and the
// client retransmits. Not thread-safe: one thread sends.
#ifndef PCFS_CORE_IO_SEND_BATCH_H_
#define PCFS_CORE_IO_SEND_BATCH_H_

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "core/base/endpoint.h"

namespace pcfs {

// What SendDatagrams did with a batch.
struct SendOutcome {
  size_t sent = 0;     // taken by the kernel
  size_t dropped = 0;  // not sent
  size_t errors = 0;   // of those, refused for an error of their own
};

// Sends messages[0..count) on `fd` with sendmmsg, never waiting
// (MSG_DONTWAIT): a full send buffer drops the rest (this is UDP; clients
// retransmit), and a message the kernel refuses on its own (say, an
// unreachable address) is dropped and counted as an error while the others
// still go. The reactors' replies and DatagramSendBatch both send so.
SendOutcome SendDatagrams(int fd, mmsghdr* messages, size_t count);

class DatagramSendBatch {
 public:
  // Datagrams held before Add sends them by itself.
  static constexpr size_t kCapacity = 32;

  // Sends on `fd` (not owned; it must outlive this batch), datagrams of at
  // most `max_datagram` bytes. `v6_socket`: the socket is IPv6
  // (dual-stack), so that IPv4 peers are reached at their IPv4-mapped
  // addresses, as it received from them.
  DatagramSendBatch(int fd, bool v6_socket, size_t max_datagram);
  ~DatagramSendBatch();
  DatagramSendBatch(const DatagramSendBatch&) = delete;
  DatagramSendBatch& operator=(const DatagramSendBatch&) = delete;

  // Copies `datagram` for `to`, sending the batch first when it is full.
  // A datagram longer than max_datagram is dropped.
  void Add(std::span<const uint8_t> datagram, const Endpoint& to);
  // Sends what was added. Returns how many datagrams the kernel took.
  size_t Flush();
  size_t pending() const { return count_; }

  // Datagrams the kernel took, and those it refused or that were too long,
  // since construction; errors: those of the refused that failed for an
  // error of their own (SendOutcome). Any thread.
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

 private:
  const int fd_;
  const bool v6_socket_;
  const size_t max_datagram_;
  std::unique_ptr<uint8_t[]> buffers_;  // kCapacity * max_datagram_
  std::unique_ptr<sockaddr_storage[]> addresses_;
  std::unique_ptr<mmsghdr[]> messages_;
  std::unique_ptr<iovec[]> iov_;
  size_t count_ = 0;
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> errors_{0};
};

}  // namespace pcfs

#endif  // PCFS_CORE_IO_SEND_BATCH_H_
