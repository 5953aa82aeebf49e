#include "core/io/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"

namespace pcfs {
namespace {

SocketAddress Numeric(absl::string_view host, uint16_t port) {
  absl::StatusOr<SocketAddress> address =
      SocketAddress::FromNumeric(host, port);
  EXPECT_TRUE(address.ok()) << address.status();
  return address.ok() ? *address : SocketAddress{};
}

// --- SocketAddress ---

TEST(SocketAddressTest, ToStringShowsIPv4Plainly) {
  EXPECT_EQ(Numeric("127.0.0.1", 50000).ToString(), "127.0.0.1:50000");
}

TEST(SocketAddressTest, ToStringBracketsIPv6) {
  EXPECT_EQ(Numeric("::1", 50000).ToString(), "[::1]:50000");
}

TEST(SocketAddressTest, ToStringShowsMappedAddressAsIPv4) {
  const SocketAddress mapped = Numeric("::ffff:10.1.2.3", 7);
  ASSERT_EQ(mapped.family(), AF_INET6);
  EXPECT_EQ(mapped.ToString(), "10.1.2.3:7");
}

TEST(SocketAddressTest, PortReadsBothFamilies) {
  EXPECT_EQ(Numeric("10.0.0.1", 1).port(), 1);
  EXPECT_EQ(Numeric("fe80::2", 65535).port(), 65535);
}

TEST(SocketAddressTest, FromNumericAcceptsBracketedIPv6) {
  const SocketAddress address = Numeric("[::1]", 9);
  EXPECT_EQ(address.family(), AF_INET6);
  EXPECT_EQ(address.length, sizeof(sockaddr_in6));
  EXPECT_EQ(address.ToString(), "[::1]:9");
}

TEST(SocketAddressTest, FromNumericRefusesNamesAndMalformedAddresses) {
  for (absl::string_view bad :
       {"", "[]", "localhost", "1.2.3", "1.2.3.4.5", "256.0.0.1", "[1.2.3.4]",
        "[::1", "::1]", "::g", " 1.2.3.4", "1.2.3.4:80"}) {
    absl::StatusOr<SocketAddress> address = SocketAddress::FromNumeric(bad, 1);
    EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << bad << "'";
  }
}

TEST(SocketAddressTest, EndpointRoundTripsIPv4) {
  const SocketAddress address = Numeric("192.168.1.20", 4242);
  const Endpoint endpoint = address.ToEndpoint();
  EXPECT_EQ(endpoint.family, 4);
  EXPECT_EQ(endpoint.port, 4242);
  EXPECT_EQ(endpoint.ip[0], 192);
  EXPECT_EQ(endpoint.ip[3], 20);
  EXPECT_EQ(SocketAddress::FromEndpoint(endpoint).ToString(),
            "192.168.1.20:4242");
}

TEST(SocketAddressTest, EndpointRoundTripsIPv6) {
  const Endpoint endpoint = Numeric("2001:db8::5", 80).ToEndpoint();
  EXPECT_EQ(endpoint.family, 6);
  EXPECT_EQ(SocketAddress::FromEndpoint(endpoint).ToString(),
            "[2001:db8::5]:80");
}

TEST(SocketAddressTest, MappedAddressBecomesIPv4Endpoint) {
  const Endpoint mapped = Numeric("::ffff:10.1.2.3", 7).ToEndpoint();
  EXPECT_EQ(mapped, Numeric("10.1.2.3", 7).ToEndpoint());
}

TEST(SocketAddressTest, IPv4EndpointIsMappedForAnIPv6Socket) {
  const Endpoint v4 = Numeric("10.1.2.3", 7).ToEndpoint();
  const SocketAddress mapped = SocketAddress::FromEndpoint(v4, true);
  ASSERT_EQ(mapped.family(), AF_INET6);
  EXPECT_EQ(mapped.length, sizeof(sockaddr_in6));
  char text[INET6_ADDRSTRLEN];
  ASSERT_NE(
      inet_ntop(
          AF_INET6,
          &reinterpret_cast<const sockaddr_in6*>(&mapped.storage)->sin6_addr,
          text, sizeof(text)),
      nullptr);
  EXPECT_STREQ(text, "::ffff:10.1.2.3");
  EXPECT_EQ(mapped.port(), 7);
  // An IPv6 endpoint is the same either way.
  const Endpoint v6 = Numeric("2001:db8::5", 80).ToEndpoint();
  EXPECT_EQ(SocketAddress::FromEndpoint(v6, true).ToString(),
            "[2001:db8::5]:80");
}

TEST(SocketAddressTest, UnknownEndpointFamilyGivesEmptyAddress) {
  Endpoint endpoint;
  endpoint.family = 5;
  EXPECT_EQ(SocketAddress::FromEndpoint(endpoint).length, 0u);
}

// --- ParsePort ---

TEST(ParsePortTest, AcceptsTheWholeRange) {
  EXPECT_EQ(*ParsePort("1"), 1);
  EXPECT_EQ(*ParsePort("50000"), 50000);
  EXPECT_EQ(*ParsePort("65535"), 65535);
}

TEST(ParsePortTest, RefusesOutOfRange) {
  for (absl::string_view bad : {"0", "00", "65536", "99999999999999999999"}) {
    absl::StatusOr<uint16_t> port = ParsePort(bad);
    EXPECT_EQ(port.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(port.status().message().find("1..65535"), absl::string_view::npos)
        << port.status();
  }
}

TEST(ParsePortTest, RefusesAnythingButDigits) {
  for (absl::string_view bad : {"", "-1", "+80", " 80", "80 ", "8o", "0x50"}) {
    EXPECT_FALSE(ParsePort(bad).ok()) << "'" << bad << "'";
  }
}

// --- ParseHostPort ---

TEST(ParseHostPortTest, SplitsHostAndPort) {
  auto parsed = ParseHostPort("example.org:5000");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->first, "example.org");
  EXPECT_EQ(parsed->second, 5000);
}

TEST(ParseHostPortTest, StripsBracketsFromIPv6) {
  auto parsed = ParseHostPort("[::1]:5000");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->first, "::1");
  EXPECT_EQ(parsed->second, 5000);
}

TEST(ParseHostPortTest, PortAloneMeansLocalhost) {
  auto parsed = ParseHostPort("50000");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->first, "localhost");
  EXPECT_EQ(parsed->second, 50000);
}

TEST(ParseHostPortTest, RefusesMalformedInput) {
  for (absl::string_view bad :
       {"", ":5000", "host:", "host:0", "host:abc", "::1:5000", "[::1]",
        "[::1]5000", "[::1:5000", "[]:5000", "example.org", "a:b:c"}) {
    EXPECT_EQ(ParseHostPort(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "'" << bad << "'";
  }
}

TEST(ParseHostPortTest, AsksForBracketsAroundBareIPv6) {
  absl::Status status = ParseHostPort("::1:5000").status();
  EXPECT_NE(status.message().find("[::1]:PORT"), absl::string_view::npos)
      << status;
}

// --- Resolve ---

TEST(ResolveTest, NumericAddressResolvesToItself) {
  auto addresses = Resolve("127.0.0.1", 80);
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_EQ(addresses->size(), 1u);
  EXPECT_EQ((*addresses)[0].ToString(), "127.0.0.1:80");
}

TEST(ResolveTest, AcceptsBracketedIPv6) {
  auto addresses = Resolve("[::1]", 80);
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_EQ(addresses->size(), 1u);
  EXPECT_EQ((*addresses)[0].ToString(), "[::1]:80");
}

TEST(ResolveTest, LocalhostGivesLoopbackAddresses) {
  auto addresses = Resolve("localhost", 5000);
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_FALSE(addresses->empty());
  for (const SocketAddress& address : *addresses) {
    EXPECT_TRUE(address.ToString() == "127.0.0.1:5000" ||
                address.ToString() == "[::1]:5000")
        << address.ToString();
  }
}

TEST(ResolveTest, RefusesEmptyHost) {
  EXPECT_EQ(Resolve("", 80).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Sockets ---

bool HasFdFlag(int fd, int flag) { return (fcntl(fd, F_GETFD) & flag) != 0; }
bool HasStatusFlag(int fd, int flag) {
  return (fcntl(fd, F_GETFL) & flag) != 0;
}

TEST(OpenUdpSocketTest, BindsAKernelChosenPort) {
  auto fd = OpenUdpSocket(Numeric("127.0.0.1", 0), {});
  ASSERT_TRUE(fd.ok()) << fd.status();
  auto local = LocalAddress(fd->get());
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->family(), AF_INET);
  EXPECT_NE(local->port(), 0);
}

TEST(OpenUdpSocketTest, IsNonBlockingAndCloseOnExecByDefault) {
  auto fd = OpenUdpSocket(Numeric("127.0.0.1", 0), {});
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(HasStatusFlag(fd->get(), O_NONBLOCK));
  EXPECT_TRUE(HasFdFlag(fd->get(), FD_CLOEXEC));
}

TEST(OpenUdpSocketTest, CanBeBlocking) {
  UdpSocketOptions options;
  options.non_blocking = false;
  auto fd = OpenUdpSocket(Numeric("127.0.0.1", 0), options);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_FALSE(HasStatusFlag(fd->get(), O_NONBLOCK));
}

TEST(OpenUdpSocketTest, ReusePortLetsTwoSocketsShareAPort) {
  UdpSocketOptions options;
  options.reuse_port = true;
  auto first = OpenUdpSocket(Numeric("127.0.0.1", 0), options);
  ASSERT_TRUE(first.ok()) << first.status();
  const uint16_t port = LocalAddress(first->get())->port();
  auto second = OpenUdpSocket(Numeric("127.0.0.1", port), options);
  EXPECT_TRUE(second.ok()) << second.status();
}

TEST(OpenUdpSocketTest, TakenPortFailsNamingBind) {
  auto first = OpenUdpSocket(Numeric("127.0.0.1", 0), {});
  ASSERT_TRUE(first.ok()) << first.status();
  const uint16_t port = LocalAddress(first->get())->port();
  auto second = OpenUdpSocket(Numeric("127.0.0.1", port), {});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("bind(127.0.0.1:"),
            absl::string_view::npos)
      << second.status();
}

TEST(OpenUdpSocketTest, IPv6WildcardIsDualStack) {
  auto fd = OpenUdpSocket(Numeric("::", 0), {});
  ASSERT_TRUE(fd.ok()) << fd.status();
  int v6only = -1;
  socklen_t length = sizeof(v6only);
  ASSERT_EQ(getsockopt(fd->get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &length),
            0);
  EXPECT_EQ(v6only, 0);
}

int IntOption(int fd, int level, int name) {
  int value = -1;
  socklen_t length = sizeof(value);
  EXPECT_EQ(getsockopt(fd, level, name, &value, &length), 0) << strerror(errno);
  return value;
}

TEST(OpenUdpSocketTest, NeverFragments) {
  auto v4 = OpenUdpSocket(Numeric("127.0.0.1", 0), {});
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(IntOption(v4->get(), IPPROTO_IP, IP_MTU_DISCOVER),
            IP_PMTUDISC_PROBE);
  // Dual-stack: both families' datagrams.
  auto v6 = OpenUdpSocket(Numeric("::", 0), {});
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(IntOption(v6->get(), IPPROTO_IPV6, IPV6_MTU_DISCOVER),
            IPV6_PMTUDISC_PROBE);
  EXPECT_EQ(IntOption(v6->get(), IPPROTO_IP, IP_MTU_DISCOVER),
            IP_PMTUDISC_PROBE);
}

TEST(OpenUdpSocketTest, DatagramsAreAtomic) {
  // Don't Fragment, and so (RFC 6864's "atomic" datagrams) no IP ID: the
  // kernel writes 0 rather than drawing a hashed one per datagram. The
  // kernel's default (IP_PMTUDISC_WANT) also sets DF on loopback, but
  // draws the ID. A raw socket sees every UDP datagram the host receives,
  // IP header first; it needs CAP_NET_RAW.
  UniqueFd raw(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!raw) GTEST_SKIP() << "no raw socket here: " << strerror(errno);
  auto receiver = OpenUdpSocket(Numeric("127.0.0.1", 0), {});
  auto sender = OpenUdpSocket(Numeric("127.0.0.1", 0), {});
  ASSERT_TRUE(receiver.ok() && sender.ok());
  const SocketAddress to = *LocalAddress(receiver->get());
  const char payload[] = "dont-fragment-probe";
  ASSERT_EQ(
      sendto(sender->get(), payload, sizeof(payload), 0, to.get(), to.length),
      static_cast<ssize_t>(sizeof(payload)));
  // Other tests' datagrams may come first: find ours by port and bytes.
  for (int i = 0; i < 1000; ++i) {
    pollfd p{raw.get(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 2000), 1) << "our datagram never showed";
    uint8_t packet[2048];
    const ssize_t n = recv(raw.get(), packet, sizeof(packet), 0);
    ASSERT_GT(n, 0) << strerror(errno);
    iphdr ip;
    std::memcpy(&ip, packet, sizeof(ip));
    const size_t header = size_t{ip.ihl} * 4;
    if (static_cast<size_t>(n) != header + sizeof(udphdr) + sizeof(payload))
      continue;
    udphdr udp;
    std::memcpy(&udp, packet + header, sizeof(udp));
    if (ntohs(udp.dest) != to.port() ||
        std::memcmp(packet + header + sizeof(udp), payload, sizeof(payload)) !=
            0) {
      continue;
    }
    EXPECT_EQ(ntohs(ip.frag_off) & IP_DF, IP_DF);
    EXPECT_EQ(ip.id, 0);
    return;
  }
  FAIL() << "our datagram never showed among 1000";
}

TEST(OpenConnectedUdpSocketTest, ReachesItsPeerAndNeverFragments) {
  auto receiver = OpenUdpSocket(Numeric("127.0.0.1", 0), {});
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  auto fd = OpenConnectedUdpSocket(*LocalAddress(receiver->get()));
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(HasFdFlag(fd->get(), FD_CLOEXEC));
  EXPECT_EQ(IntOption(fd->get(), IPPROTO_IP, IP_MTU_DISCOVER),
            IP_PMTUDISC_PROBE);
  ASSERT_EQ(send(fd->get(), "hi", 2, 0), 2) << strerror(errno);
  char got[8];
  EXPECT_EQ(recv(receiver->get(), got, sizeof(got), 0), 2);
}

TEST(OpenConnectedUdpSocketTest, AClosedPortIsRefused) {
  auto gone = OpenUdpSocket(Numeric("127.0.0.1", 0), {});
  ASSERT_TRUE(gone.ok()) << gone.status();
  const SocketAddress to = *LocalAddress(gone->get());
  gone->Reset();
  auto fd = OpenConnectedUdpSocket(to);
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_EQ(send(fd->get(), "hi", 2, 0), 2) << strerror(errno);
  pollfd p{fd->get(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  char got[8];
  EXPECT_EQ(recv(fd->get(), got, sizeof(got), 0), -1);
  EXPECT_EQ(errno, ECONNREFUSED);
}

TEST(OpenUdpSocketTest, SetsReceiveBuffer) {
  UdpSocketOptions options;
  options.receive_buffer_bytes = 100000;
  auto fd = OpenUdpSocket(Numeric("127.0.0.1", 0), options);
  ASSERT_TRUE(fd.ok()) << fd.status();
  int size = 0;
  socklen_t length = sizeof(size);
  ASSERT_EQ(getsockopt(fd->get(), SOL_SOCKET, SO_RCVBUF, &size, &length), 0);
  EXPECT_GE(size, 100000);  // Linux doubles the request for bookkeeping
}

TEST(OpenUdpSocketTest, RefusesAnUnsetAddress) {
  EXPECT_EQ(OpenUdpSocket(SocketAddress{}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OpenTcpListenerTest, AcceptsAnIPv4ConnectionOnTheWildcard) {
  auto listener = OpenTcpListener(Numeric("::", 0), 4);
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_TRUE(HasFdFlag(listener->get(), FD_CLOEXEC));
  const uint16_t port = LocalAddress(listener->get())->port();
  const SocketAddress server = Numeric("127.0.0.1", port);
  UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(connect(client.get(), server.get(), server.length), 0)
      << strerror(errno);
  SocketAddress peer;
  peer.length = sizeof(peer.storage);
  UniqueFd accepted(
      accept4(listener->get(), peer.get_mutable(), &peer.length, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted.valid()) << strerror(errno);
  const SocketAddress client_address = *LocalAddress(client.get());
  EXPECT_EQ(peer.ToString(), client_address.ToString());
}

TEST(OpenTcpListenerTest, IsBlocking) {
  auto listener = OpenTcpListener(Numeric("127.0.0.1", 0), 4);
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_FALSE(HasStatusFlag(listener->get(), O_NONBLOCK));
}

TEST(LocalAddressTest, FailsNamingGetsockname) {
  absl::Status status = LocalAddress(-1).status();
  EXPECT_NE(status.message().find("getsockname"), absl::string_view::npos)
      << status;
}

}  // namespace
}  // namespace pcfs
