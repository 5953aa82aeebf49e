#include "bench/peerload/sockets.h"

#include <netinet/in.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pcfs::peerload {

absl::Status RaiseFileLimit(uint64_t descriptors) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return ErrnoStatus("getrlimit(RLIMIT_NOFILE)", errno);
  }
  if (limit.rlim_cur >= descriptors) return absl::OkStatus();
  rlimit wanted = limit;
  wanted.rlim_cur = descriptors;
  if (wanted.rlim_max < descriptors) wanted.rlim_max = descriptors;
  if (::setrlimit(RLIMIT_NOFILE, &wanted) == 0) return absl::OkStatus();
  const int err = errno;
  return absl::ResourceExhaustedError(
      absl::StrCat("need ", descriptors,
                   " file descriptors (one socket per peer), but "
                   "RLIMIT_NOFILE is ",
                   limit.rlim_cur, " (hard ", limit.rlim_max,
                   ") and setrlimit failed: ", std::strerror(err),
                   "; raise it (ulimit -n, or as root) or use fewer --peers"));
}

absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text) {
  std::vector<int> cpus;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int cpu = -1;
    if (!absl::SimpleAtoi(part, &cpu) || cpu < 0 || cpu >= CPU_SETSIZE) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a CPU list is numbers separated by commas (\"1\", \"0,1\"), not '",
          text, "'"));
    }
    cpus.push_back(cpu);
  }
  return cpus;
}

absl::StatusOr<std::string> CurrentCpuList() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) {
    return ErrnoStatus("sched_getaffinity", errno);
  }
  std::string list;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set))
      absl::StrAppend(&list, list.empty() ? "" : ",", cpu);
  }
  return list;
}

absl::Status PinToCpus(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
    return ErrnoStatus("sched_setaffinity", errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<SocketAddress> ResolveServer(absl::string_view host,
                                            uint16_t port) {
  absl::StatusOr<std::vector<SocketAddress>> addresses = Resolve(host, port);
  if (!addresses.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ",
                                               addresses.status().message()));
  }
  if (addresses->empty()) {
    return absl::UnavailableError(absl::StrCat("no address for ", host));
  }
  for (const SocketAddress& address : *addresses) {
    if (address.family() == AF_INET) return address;
  }
  return addresses->front();
}

bool IsIpv4Loopback(const SocketAddress& address) {
  const Endpoint endpoint = address.ToEndpoint();  // unmaps ::ffff:a.b.c.d
  return endpoint.family == 4 && endpoint.ip[0] == 127;
}

SocketAddress SpreadSourceAddress(uint64_t index, int per_source) {
  const uint64_t n = index / static_cast<uint64_t>(per_source);
  Endpoint endpoint;
  endpoint.family = 4;
  endpoint.ip[0] = 127;
  endpoint.ip[1] = static_cast<uint8_t>(1 + n / (uint64_t{250} * 256));
  endpoint.ip[2] = static_cast<uint8_t>((n / 250) % 256);
  endpoint.ip[3] = static_cast<uint8_t>(1 + n % 250);
  endpoint.port = 0;
  return SocketAddress::FromEndpoint(endpoint);
}

absl::StatusOr<UniqueFd> OpenPeerSocket(const SocketAddress& server,
                                        const SocketAddress* source) {
  const int family = source != nullptr ? source->family() : server.family();
  UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus("socket", errno);
  if (source != nullptr &&
      ::bind(fd.get(), source->get(), source->length) != 0) {
    return ErrnoStatus(absl::StrCat("bind ", source->ToString()), errno);
  }
  // An IPv4 source needs an IPv4 destination, even if the server was given
  // as ::ffff:127.0.0.1.
  SocketAddress to = server;
  if (source != nullptr && source->family() == AF_INET &&
      server.family() == AF_INET6) {
    to = SocketAddress::FromEndpoint(server.ToEndpoint());
  }
  if (::connect(fd.get(), to.get(), to.length) != 0) {
    return ErrnoStatus(absl::StrCat("connect ", to.ToString()), errno);
  }
  return fd;
}

}  // namespace pcfs::peerload
