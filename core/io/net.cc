#include "core/io/net.h"

#include <arpa/inet.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace pcfs {
namespace {

const sockaddr_in& AsV4(const SocketAddress& address) {
  return *reinterpret_cast<const sockaddr_in*>(&address.storage);
}
const sockaddr_in6& AsV6(const SocketAddress& address) {
  return *reinterpret_cast<const sockaddr_in6*>(&address.storage);
}

// True for ::ffff:a.b.c.d, the form a dual-stack socket gives IPv4 peers.
bool IsV4Mapped(const SocketAddress& address) {
  return address.family() == AF_INET6 &&
         IN6_IS_ADDR_V4MAPPED(&AsV6(address).sin6_addr);
}

// The IPv4 address `address` carries, plain or mapped, in network order.
// REQUIRES: family() == AF_INET or IsV4Mapped(address).
in_addr CarriedV4(const SocketAddress& address) {
  in_addr ip{};
  if (address.family() == AF_INET) return AsV4(address).sin_addr;
  std::memcpy(&ip, AsV6(address).sin6_addr.s6_addr + 12, 4);
  return ip;
}

SocketAddress MakeV4(in_addr ip, uint16_t port) {
  SocketAddress address;
  auto* sin = reinterpret_cast<sockaddr_in*>(&address.storage);
  sin->sin_family = AF_INET;
  sin->sin_addr = ip;
  sin->sin_port = htons(port);
  address.length = sizeof(sockaddr_in);
  return address;
}

SocketAddress MakeV6(const in6_addr& ip, uint16_t port, uint32_t scope) {
  SocketAddress address;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_addr = ip;
  sin6->sin6_port = htons(port);
  sin6->sin6_scope_id = scope;
  address.length = sizeof(sockaddr_in6);
  return address;
}

// "[::1]" -> "::1"; anything else unchanged.
absl::string_view StripBrackets(absl::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

// Parses the zone of "fe80::1%eth0" (an interface name or index).
absl::StatusOr<uint32_t> ParseScope(const std::string& zone) {
  if (!zone.empty() && zone.size() < 10 &&
      std::all_of(zone.begin(), zone.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    uint32_t index = 0;
    for (char c : zone) index = index * 10 + static_cast<uint32_t>(c - '0');
    return index;
  }
  const unsigned index = if_nametoindex(zone.c_str());
  if (index == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown IPv6 zone '", zone, "'"));
  }
  return index;
}

absl::Status AddressFamilyError(const SocketAddress& address) {
  return absl::InvalidArgumentError(
      absl::StrCat("not an IPv4 or IPv6 address (family ", address.family(),
                   ", length ", address.length, ")"));
}

bool IsV6Wildcard(const SocketAddress& address) {
  return address.family() == AF_INET6 &&
         IN6_IS_ADDR_UNSPECIFIED(&AsV6(address).sin6_addr);
}

absl::Status SetIntOption(int fd, int level, int name, int value,
                          absl::string_view option_name) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return ErrnoStatus(absl::StrCat("setsockopt(", option_name, ")"), errno);
  }
  return absl::OkStatus();
}

// Opens a CLOEXEC socket of `type` for `bind`'s family; an IPv6 wildcard is
// made dual-stack.
absl::StatusOr<UniqueFd> OpenSocketFor(const SocketAddress& bind, int type) {
  if (bind.family() != AF_INET && bind.family() != AF_INET6) {
    return AddressFamilyError(bind);
  }
  UniqueFd fd(socket(bind.family(), type | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus("socket", errno);
  if (IsV6Wildcard(bind)) {
    absl::Status status =
        SetIntOption(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
    if (!status.ok()) return status;
  }
  return fd;
}

absl::Status Bind(int fd, const SocketAddress& address) {
  if (bind(fd, address.get(), address.length) != 0) {
    return ErrnoStatus(absl::StrCat("bind(", address.ToString(), ")"), errno);
  }
  return absl::OkStatus();
}

absl::Status GaiStatus(absl::string_view host, int code, int err) {
  const std::string message =
      absl::StrCat("getaddrinfo(", host, "): ", gai_strerror(code));
  switch (code) {
    case EAI_SYSTEM:
      return ErrnoStatus(absl::StrCat("getaddrinfo(", host, ")"), err);
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
      return absl::NotFoundError(message);
    case EAI_AGAIN:
      return absl::UnavailableError(message);
    default:
      return absl::InvalidArgumentError(message);
  }
}

bool SameAddress(const SocketAddress& a, const SocketAddress& b) {
  return a.length == b.length &&
         std::memcmp(&a.storage, &b.storage, a.length) == 0;
}

}  // namespace

uint16_t SocketAddress::port() const {
  switch (family()) {
    case AF_INET:
      return ntohs(AsV4(*this).sin_port);
    case AF_INET6:
      return ntohs(AsV6(*this).sin6_port);
    default:
      return 0;
  }
}

std::string SocketAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET || IsV4Mapped(*this)) {
    const in_addr ip = CarriedV4(*this);
    inet_ntop(AF_INET, &ip, text, sizeof(text));
    return absl::StrCat(text, ":", port());
  }
  if (family() != AF_INET6) {
    return absl::StrCat("(no address, family ", family(), ")");
  }
  const sockaddr_in6& sin6 = AsV6(*this);
  inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text));
  std::string zone;
  if (sin6.sin6_scope_id != 0) {
    char name[IF_NAMESIZE] = {};
    zone = if_indextoname(sin6.sin6_scope_id, name) != nullptr
               ? absl::StrCat("%", name)
               : absl::StrCat("%", sin6.sin6_scope_id);
  }
  return absl::StrCat("[", text, zone, "]:", port());
}

Endpoint SocketAddress::ToEndpoint() const {
  Endpoint endpoint;
  endpoint.port = port();
  if (family() == AF_INET || IsV4Mapped(*this)) {
    const in_addr ip = CarriedV4(*this);
    endpoint.family = 4;
    std::memcpy(endpoint.ip.data(), &ip, 4);
  } else if (family() == AF_INET6) {
    endpoint.family = 6;
    std::memcpy(endpoint.ip.data(), AsV6(*this).sin6_addr.s6_addr, 16);
  } else {
    endpoint.family = 0;  // neither: an unset address
  }
  return endpoint;
}

SocketAddress SocketAddress::FromEndpoint(const Endpoint& endpoint,
                                          bool v6_socket) {
  if (endpoint.family == 4 && v6_socket) {
    in6_addr mapped{};
    mapped.s6_addr[10] = 0xff;
    mapped.s6_addr[11] = 0xff;
    std::memcpy(mapped.s6_addr + 12, endpoint.ip.data(), 4);
    return MakeV6(mapped, endpoint.port, 0);
  }
  if (endpoint.family == 4) {
    in_addr ip{};
    std::memcpy(&ip, endpoint.ip.data(), 4);
    return MakeV4(ip, endpoint.port);
  }
  if (endpoint.family == 6) {
    in6_addr ip{};
    std::memcpy(ip.s6_addr, endpoint.ip.data(), 16);
    return MakeV6(ip, endpoint.port, 0);
  }
  return SocketAddress{};
}

absl::StatusOr<SocketAddress> SocketAddress::FromNumeric(absl::string_view host,
                                                         uint16_t port) {
  const bool bracketed = StripBrackets(host).size() != host.size();
  const std::string text(StripBrackets(host));
  if (text.empty()) return absl::InvalidArgumentError("empty address");
  in_addr ip4{};
  if (!bracketed && inet_pton(AF_INET, text.c_str(), &ip4) == 1) {
    return MakeV4(ip4, port);
  }
  const size_t percent = text.find('%');
  const std::string ip_part = text.substr(0, percent);
  in6_addr ip6{};
  if (inet_pton(AF_INET6, ip_part.c_str(), &ip6) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", host, "' is not a numeric IPv4 or IPv6 address"));
  }
  uint32_t scope = 0;
  if (percent != std::string::npos) {
    absl::StatusOr<uint32_t> parsed = ParseScope(text.substr(percent + 1));
    if (!parsed.ok()) return parsed.status();
    scope = *parsed;
  }
  return MakeV6(ip6, port, scope);
}

absl::StatusOr<std::vector<SocketAddress>> Resolve(absl::string_view host,
                                                   uint16_t port) {
  const std::string name(StripBrackets(host));
  if (name.empty()) return absl::InvalidArgumentError("empty host name");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;  // one entry per address, not per type
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const std::string service = absl::StrCat(port);
  const int code = getaddrinfo(name.c_str(), service.c_str(), &hints, &list);
  if (code != 0) return GaiStatus(name, code, errno);
  std::vector<SocketAddress> addresses;
  for (const addrinfo* info = list; info != nullptr; info = info->ai_next) {
    if (info->ai_family != AF_INET && info->ai_family != AF_INET6) continue;
    SocketAddress address;
    std::memcpy(&address.storage, info->ai_addr, info->ai_addrlen);
    address.length = info->ai_addrlen;
    const bool seen = std::any_of(
        addresses.begin(), addresses.end(),
        [&](const SocketAddress& a) { return SameAddress(a, address); });
    if (!seen) addresses.push_back(address);
  }
  freeaddrinfo(list);
  if (addresses.empty()) {
    return absl::NotFoundError(
        absl::StrCat("getaddrinfo(", name, "): no IPv4 or IPv6 address"));
  }
  return addresses;
}

absl::StatusOr<uint16_t> ParsePort(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("port is empty");
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat(
          "port '", text, "' is not a number (digits only, 1..65535)"));
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
    if (value > 65535) break;
  }
  if (value < 1 || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", text, " is out of range 1..65535"));
  }
  return static_cast<uint16_t>(value);
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(
    absl::string_view text) {
  absl::string_view host;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': missing ']' after the IPv6 address"));
    }
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", text, "': expected ':PORT' after the bracketed address"));
    }
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.find(':');
    if (colon == absl::string_view::npos) {
      host = "localhost";
      port_text = text;
    } else if (text.find(':', colon + 1) != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", text, "': write an IPv6 address in brackets, as [::1]:PORT"));
    } else {
      host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': the host is empty"));
  }
  absl::StatusOr<uint16_t> port = ParsePort(port_text);
  if (!port.ok()) return port.status();
  return std::make_pair(std::string(host), *port);
}

absl::StatusOr<UniqueFd> OpenUdpSocket(const SocketAddress& bind,
                                       const UdpSocketOptions& options) {
  absl::StatusOr<UniqueFd> fd = OpenSocketFor(
      bind, SOCK_DGRAM | (options.non_blocking ? SOCK_NONBLOCK : 0));
  if (!fd.ok()) return fd.status();
  absl::Status status = SetDontFragment(fd->get(), bind.family());
  if (status.ok() && options.reuse_port) {
    status =
        SetIntOption(fd->get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
  }
  if (status.ok() && options.receive_buffer_bytes > 0) {
    // SO_RCVBUF is capped at net.core.rmem_max (often 4 MiB or less);
    // a process with CAP_NET_ADMIN may go beyond it with SO_RCVBUFFORCE.
    // Without the capability that fails (EPERM) and the capped size is
    // what there is.
    if (!SetIntOption(fd->get(), SOL_SOCKET, SO_RCVBUFFORCE,
                      options.receive_buffer_bytes, "SO_RCVBUFFORCE")
             .ok()) {
      status = SetIntOption(fd->get(), SOL_SOCKET, SO_RCVBUF,
                            options.receive_buffer_bytes, "SO_RCVBUF");
    }
  }
  if (status.ok() && options.send_buffer_bytes > 0) {
    status = SetIntOption(fd->get(), SOL_SOCKET, SO_SNDBUF,
                          options.send_buffer_bytes, "SO_SNDBUF");
  }
  if (status.ok()) status = Bind(fd->get(), bind);
  if (!status.ok()) return status;
  return fd;
}

absl::StatusOr<UniqueFd> OpenConnectedUdpSocket(const SocketAddress& to) {
  absl::StatusOr<UniqueFd> fd = OpenSocketFor(to, SOCK_DGRAM);
  if (!fd.ok()) return fd.status();
  if (absl::Status s = SetDontFragment(fd->get(), to.family()); !s.ok()) {
    return s;
  }
  if (::connect(fd->get(), to.get(), to.length) != 0) {
    return ErrnoStatus(absl::StrCat("connect ", to.ToString()), errno);
  }
  return fd;
}

absl::Status SetDontFragment(int fd, int family) {
  absl::Status status = SetIntOption(fd, IPPROTO_IP, IP_MTU_DISCOVER,
                                     IP_PMTUDISC_PROBE, "IP_MTU_DISCOVER");
  if (status.ok() && family == AF_INET6) {
    status = SetIntOption(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER,
                          IPV6_PMTUDISC_PROBE, "IPV6_MTU_DISCOVER");
  }
  return status;
}

absl::StatusOr<UniqueFd> OpenTcpListener(const SocketAddress& bind,
                                         int backlog) {
  absl::StatusOr<UniqueFd> fd = OpenSocketFor(bind, SOCK_STREAM);
  if (!fd.ok()) return fd.status();
  absl::Status status =
      SetIntOption(fd->get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (status.ok()) status = Bind(fd->get(), bind);
  if (status.ok() && listen(fd->get(), backlog) != 0) {
    status = ErrnoStatus("listen", errno);
  }
  if (!status.ok()) return status;
  return fd;
}

absl::StatusOr<SocketAddress> LocalAddress(int fd) {
  SocketAddress address;
  address.length = sizeof(address.storage);
  if (getsockname(fd, address.get_mutable(), &address.length) != 0) {
    return ErrnoStatus("getsockname", errno);
  }
  return address;
}

absl::StatusOr<uint32_t> ReceiveDrops(int fd) {
  uint32_t meminfo[SK_MEMINFO_VARS] = {};
  socklen_t length = sizeof(meminfo);
  if (::getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) != 0) {
    return ErrnoStatus("getsockopt SO_MEMINFO", errno);
  }
  if (length <= SK_MEMINFO_DROPS * sizeof(uint32_t)) {
    return absl::UnimplementedError("SO_MEMINFO has no drop count here");
  }
  return meminfo[SK_MEMINFO_DROPS];
}

}  // namespace pcfs
