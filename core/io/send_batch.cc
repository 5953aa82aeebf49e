#include "core/io/send_batch.h"

#include <cerrno>
#include <cstring>

#include "core/io/net.h"

namespace pcfs {

SendOutcome SendDatagrams(int fd, mmsghdr* messages, size_t count) {
  SendOutcome outcome;
  size_t next = 0;
  while (next < count) {
    const int sent = ::sendmmsg(
        fd, messages + next, static_cast<unsigned>(count - next), MSG_DONTWAIT);
    if (sent > 0) {
      next += static_cast<size_t>(sent);
      outcome.sent += static_cast<size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
      outcome.dropped += count - next;  // send buffer full: drop the rest
      return outcome;
    }
    // The first remaining message failed on its own: skip it, send the
    // others.
    ++outcome.dropped;
    ++outcome.errors;
    ++next;
  }
  return outcome;
}

DatagramSendBatch::DatagramSendBatch(int fd, bool v6_socket,
                                     size_t max_datagram)
    : fd_(fd),
      v6_socket_(v6_socket),
      max_datagram_(max_datagram),
      buffers_(new uint8_t[kCapacity * max_datagram]),
      addresses_(new sockaddr_storage[kCapacity]),
      messages_(new mmsghdr[kCapacity]),
      iov_(new iovec[kCapacity]) {
  for (size_t i = 0; i < kCapacity; ++i) {
    iov_[i].iov_base = buffers_.get() + i * max_datagram_;
    messages_[i] = mmsghdr{};
    messages_[i].msg_hdr.msg_iov = &iov_[i];
    messages_[i].msg_hdr.msg_iovlen = 1;
    messages_[i].msg_hdr.msg_name = &addresses_[i];
  }
}

DatagramSendBatch::~DatagramSendBatch() = default;

void DatagramSendBatch::Add(std::span<const uint8_t> datagram,
                            const Endpoint& to) {
  if (datagram.size() > max_datagram_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (count_ == kCapacity) Flush();
  const size_t i = count_++;
  std::memcpy(iov_[i].iov_base, datagram.data(), datagram.size());
  iov_[i].iov_len = datagram.size();
  const SocketAddress address = SocketAddress::FromEndpoint(to, v6_socket_);
  std::memcpy(&addresses_[i], &address.storage, address.length);
  messages_[i].msg_hdr.msg_namelen = address.length;
}

size_t DatagramSendBatch::Flush() {
  const SendOutcome outcome = SendDatagrams(fd_, messages_.get(), count_);
  sent_.fetch_add(outcome.sent, std::memory_order_relaxed);
  dropped_.fetch_add(outcome.dropped, std::memory_order_relaxed);
  errors_.fetch_add(outcome.errors, std::memory_order_relaxed);
  count_ = 0;
  return outcome.sent;
}

}  // namespace pcfs
