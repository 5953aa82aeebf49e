#include "core/io/send_batch.h"

#include <netinet/in.h>

#include <cstring>

#include "core/io/net.h"

namespace pcfs {

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
  socklen_t length;
  if (v6_socket_ && to.family == 4) {
    sockaddr_in6 mapped{};
    mapped.sin6_family = AF_INET6;
    mapped.sin6_port = htons(to.port);
    mapped.sin6_addr.s6_addr[10] = 0xff;
    mapped.sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&mapped.sin6_addr.s6_addr[12], to.ip.data(), 4);
    std::memcpy(&addresses_[i], &mapped, sizeof(mapped));
    length = sizeof(mapped);
  } else {
    const SocketAddress address = SocketAddress::FromEndpoint(to);
    std::memcpy(&addresses_[i], &address.storage, address.length);
    length = address.length;
  }
  messages_[i].msg_hdr.msg_namelen = length;
}

size_t DatagramSendBatch::Flush() {
  size_t taken = 0;
  for (size_t sent = 0; sent < count_;) {
    const int n =
        ::sendmmsg(fd_, messages_.get() + sent,
                   static_cast<unsigned>(count_ - sent), MSG_DONTWAIT);
    if (n <= 0) {
      ++sent;  // the kernel refused this one: drop it, send the rest
      continue;
    }
    sent += static_cast<size_t>(n);
    taken += static_cast<size_t>(n);
  }
  sent_.fetch_add(taken, std::memory_order_relaxed);
  dropped_.fetch_add(count_ - taken, std::memory_order_relaxed);
  count_ = 0;
  return taken;
}

}  // namespace pcfs
