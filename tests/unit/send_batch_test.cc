#include "core/io/send_batch.h"

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/io/net.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

// A UDP socket on loopback with a receive timeout, for reading what a
// batch sent.
struct Receiver {
  UniqueFd fd;
  Endpoint endpoint;
};

Receiver Listen(absl::string_view host) {
  absl::StatusOr<SocketAddress> bind = SocketAddress::FromNumeric(host, 0);
  EXPECT_TRUE(bind.ok()) << bind.status();
  UdpSocketOptions options;
  options.non_blocking = false;
  absl::StatusOr<UniqueFd> fd = OpenUdpSocket(*bind, options);
  EXPECT_TRUE(fd.ok()) << fd.status();
  timeval timeout{2, 0};
  EXPECT_EQ(::setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                         sizeof(timeout)),
            0);
  absl::StatusOr<SocketAddress> local = LocalAddress(fd->get());
  EXPECT_TRUE(local.ok()) << local.status();
  return Receiver{*std::move(fd), local->ToEndpoint()};
}

UniqueFd Sender(absl::string_view host) {
  absl::StatusOr<SocketAddress> bind = SocketAddress::FromNumeric(host, 0);
  EXPECT_TRUE(bind.ok()) << bind.status();
  absl::StatusOr<UniqueFd> fd = OpenUdpSocket(*bind, UdpSocketOptions{});
  EXPECT_TRUE(fd.ok()) << fd.status();
  return *std::move(fd);
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The next datagram on `receiver`, or "" after its timeout.
std::string Next(const Receiver& receiver) {
  char buffer[2048];
  const ssize_t n = ::recv(receiver.fd.get(), buffer, sizeof(buffer), 0);
  return n < 0 ? std::string() : std::string(buffer, static_cast<size_t>(n));
}

TEST(DatagramSendBatchTest, SendsEveryDatagramInOrderPastItsCapacity) {
  const Receiver a = Listen("127.0.0.1");
  const Receiver b = Listen("127.0.0.1");
  const UniqueFd fd = Sender("127.0.0.1");
  DatagramSendBatch batch(fd.get(), /*v6_socket=*/false, 1200);
  const size_t count = DatagramSendBatch::kCapacity * 2 + 5;
  for (size_t i = 0; i < count; ++i) {
    batch.Add(Bytes(absl::StrCat("datagram ", i)),
              i % 2 == 0 ? a.endpoint : b.endpoint);
  }
  // Two full batches went out as the third began.
  EXPECT_EQ(batch.pending(), 5u);
  EXPECT_EQ(batch.Flush(), 5u);
  EXPECT_EQ(batch.pending(), 0u);
  for (size_t i = 0; i < count; ++i) {
    EXPECT_EQ(Next(i % 2 == 0 ? a : b), absl::StrCat("datagram ", i));
  }
  EXPECT_EQ(batch.Flush(), 0u);
}

TEST(DatagramSendBatchTest, ReachesAnIPv4PeerFromADualStackSocket) {
  const Receiver v4 = Listen("127.0.0.1");
  const Receiver v6 = Listen("::1");
  const UniqueFd fd = Sender("::");
  DatagramSendBatch batch(fd.get(), /*v6_socket=*/true, 1200);
  batch.Add(Bytes("to v4"), v4.endpoint);
  batch.Add(Bytes("to v6"), v6.endpoint);
  EXPECT_EQ(batch.Flush(), 2u);
  EXPECT_EQ(Next(v4), "to v4");
  EXPECT_EQ(Next(v6), "to v6");
}

TEST(DatagramSendBatchTest, ADatagramTheKernelRefusesDoesNotStopTheRest) {
  const Receiver a = Listen("127.0.0.1");
  const UniqueFd fd = Sender("127.0.0.1");
  DatagramSendBatch batch(fd.get(), /*v6_socket=*/false, 1200);
  Endpoint v6_only;  // an IPv4 socket cannot send to an IPv6 address
  v6_only.family = 6;
  v6_only.ip[15] = 1;
  v6_only.port = 9;
  batch.Add(Bytes("first"), a.endpoint);
  batch.Add(Bytes("refused"), v6_only);
  batch.Add(Bytes("third"), a.endpoint);
  EXPECT_EQ(batch.Flush(), 2u);
  EXPECT_EQ(Next(a), "first");
  EXPECT_EQ(Next(a), "third");
  EXPECT_EQ(batch.sent(), 2u);
  EXPECT_EQ(batch.dropped(), 1u);
  EXPECT_EQ(batch.errors(), 1u);
}

TEST(DatagramSendBatchTest, DropsADatagramLongerThanItsRoom) {
  const Receiver a = Listen("127.0.0.1");
  const UniqueFd fd = Sender("127.0.0.1");
  DatagramSendBatch batch(fd.get(), /*v6_socket=*/false, 4);
  batch.Add(Bytes("abcdefgh"), a.endpoint);
  batch.Add(Bytes("abcd"), a.endpoint);
  EXPECT_EQ(batch.pending(), 1u);
  EXPECT_EQ(batch.Flush(), 1u);
  EXPECT_EQ(Next(a), "abcd");
  EXPECT_EQ(batch.sent(), 1u);
  EXPECT_EQ(batch.dropped(), 1u);
  EXPECT_EQ(batch.errors(), 0u);  // too long: dropped here, not refused
}

}  // namespace
}  // namespace pcfs
