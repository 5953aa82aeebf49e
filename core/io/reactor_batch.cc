#include "core/io/reactor_batch.h"

#include <linux/sock_diag.h>  // SK_MEMINFO_*

#include <algorithm>
#include <cerrno>

#include "core/io/send_batch.h"

namespace pcfs::internal {

ReactorStats Counters::Snapshot() const {
  ReactorStats stats;
  stats.datagrams_received = datagrams_received.load(std::memory_order_relaxed);
  stats.datagrams_oversized =
      datagrams_oversized.load(std::memory_order_relaxed);
  stats.replies_sent = replies_sent.load(std::memory_order_relaxed);
  stats.replies_dropped = replies_dropped.load(std::memory_order_relaxed);
  stats.socket_errors = socket_errors.load(std::memory_order_relaxed);
  return stats;
}

DatagramBatch::DatagramBatch(Counters* counters) : counters_(counters) {
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

unsigned DatagramBatch::ReceiveHandleAndReply(int fd, DatagramHandler& handler,
                                              DatagramPeek* peek) {
  const unsigned received = Receive(fd);
  if (received != 0) Send(fd, Handle(received, handler, peek));
  return received;
}

size_t DatagramBatch::Drain(int fd, DatagramHandler& handler,
                            DatagramPeek* peek, size_t max_datagrams) {
  size_t drained = 0;
  while (drained < max_datagrams) {
    const unsigned received = ReceiveHandleAndReply(fd, handler, peek);
    drained += received;
    if (received < kBatchSize) break;
  }
  return drained;
}

size_t QueuedDatagramsBound(int fd) {
  uint32_t meminfo[SK_MEMINFO_VARS] = {};
  socklen_t length = sizeof(meminfo);
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) != 0 ||
      length <= SK_MEMINFO_RMEM_ALLOC * sizeof(uint32_t)) {
    return kMaxDrainedDatagrams;
  }
  const size_t queued_bytes = meminfo[SK_MEMINFO_RMEM_ALLOC];
  return std::min(kMaxDrainedDatagrams,
                  (queued_bytes + kMinDatagramCharge - 1) / kMinDatagramCharge);
}

unsigned DatagramBatch::Receive(int fd) {
  for (mmsghdr& header : receive_headers_) {
    header.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
  }
  int received;
  do {
    received = recvmmsg(fd, receive_headers_.data(), kBatchSize, MSG_DONTWAIT,
                        nullptr);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    // A pending socket error is reported once and cleared; the loop goes on.
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      Counters::Add(counters_->socket_errors);
    }
    return 0;
  }
  return static_cast<unsigned>(received);
}

void DatagramBatch::Peek(unsigned i, DatagramPeek& peek) {
  const mmsghdr& in = receive_headers_[i];
  if (in.msg_hdr.msg_flags & MSG_TRUNC) return;
  peek(std::span<const uint8_t>(slots_[i].datagram.data(), in.msg_len));
}

unsigned DatagramBatch::Handle(unsigned received, DatagramHandler& handler,
                               DatagramPeek* peek) {
  if (peek != nullptr && *peek != nullptr) {
    for (unsigned i = 0; i < received; ++i) Peek(i, *peek);
  }
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
        handler(std::span<const uint8_t>(slot.datagram.data(),
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

void DatagramBatch::Send(int fd, unsigned count) {
  const SendOutcome outcome = SendDatagrams(fd, send_headers_.data(), count);
  Counters::Add(counters_->replies_sent, outcome.sent);
  Counters::Add(counters_->replies_dropped, outcome.dropped);
  Counters::Add(counters_->socket_errors, outcome.errors);
}

}  // namespace pcfs::internal
