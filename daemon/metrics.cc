#include "daemon/metrics.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/base/log.h"
#include "core/base/thread_name.h"

namespace pcfs {
namespace {

constexpr absl::string_view kTypeLabels[RequestMetrics::kTypes] = {
    "LOGIN", "HEARTBEAT", "LOGOUT", "LOGIN_FINISH", "PING", "LAP",    "LPF",
    "PUB",   "UNP",       "SCH",    "GET",          "STAT", "UNKNOWN"};
constexpr absl::string_view kResultLabels[RequestMetrics::kResults] = {
    "ok",
    "malformed",
    "unsupported_version",
    "unknown_session",
    "auth_failed",
    "already_active",
    "not_found",
    "invalid_name",
    "cursor_expired",
    "rate_limited",
    "session_mismatch",
    "unknown_type",
    "internal",
    "no_reply"};

// A request must arrive whole within this long; the endpoint serves one
// scraper at a time, so a slow one must not hold it.
constexpr int kRequestTimeoutMs = 2000;
constexpr size_t kMaxRequestBytes = 8192;

bool WriteAllTo(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

// ---- LatencyHistogram -------------------------------------------------------

void LatencyHistogram::Observe(uint64_t nanoseconds) {
  size_t i = 0;
  const double seconds = static_cast<double>(nanoseconds) * 1e-9;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_nanoseconds_.fetch_add(nanoseconds, std::memory_order_relaxed);
}

void LatencyHistogram::MergeFrom(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) {
    buckets_[i].fetch_add(other.buckets_[i].load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
  }
  sum_nanoseconds_.fetch_add(
      other.sum_nanoseconds_.load(std::memory_order_relaxed),
      std::memory_order_relaxed);
}

void LatencyHistogram::Render(absl::string_view name, absl::string_view labels,
                              std::string& out) const {
  const std::string prefix = labels.empty() ? "" : absl::StrCat(labels, ",");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    const std::string bound =
        i < kBounds.size() ? absl::StrFormat("%g", kBounds[i]) : "+Inf";
    absl::StrAppend(&out, name, "_bucket{", prefix, "le=\"", bound, "\"} ",
                    cumulative, "\n");
  }
  const std::string braces =
      labels.empty() ? "" : absl::StrCat("{", labels, "}");
  absl::StrAppend(
      &out, name, "_sum", braces, " ",
      absl::StrFormat("%.9f", static_cast<double>(sum_nanoseconds_.load(
                                  std::memory_order_relaxed)) *
                                  1e-9),
      "\n", name, "_count", braces, " ", cumulative, "\n");
}

// ---- RequestMetrics ---------------------------------------------------------

size_t RequestMetrics::TypeIndex(uint8_t type) {
  switch (type) {
    case 0x01:
      return 0;
    case 0x02:
      return 1;
    case 0x03:
      return 2;
    case 0x04:
      return 3;
    case 0x05:
      return 4;
    case 0x10:
      return 5;
    case 0x11:
      return 6;
    case 0x12:
      return 7;
    case 0x13:
      return 8;
    case 0x14:
      return 9;
    case 0x15:
      return 10;
    case 0x16:
      return 11;
    default:
      return kTypes - 1;
  }
}

size_t RequestMetrics::ResultIndex(uint8_t code) {
  if (code <= 11) return code;
  return 12;  // kInternal, and anything newer
}

absl::string_view RequestMetrics::TypeLabel(size_t index) {
  return kTypeLabels[index];
}

absl::string_view RequestMetrics::ResultLabel(size_t index) {
  return kResultLabels[index];
}

void RequestMetrics::Record(uint8_t type, bool replied, uint8_t code) {
  const size_t t = TypeIndex(type);
  requests[t].Add();
  replies[t][replied ? ResultIndex(code) : kResults - 1].Add();
}

// ---- MetricsServer ----------------------------------------------------------

absl::StatusOr<SocketAddress> ParseMetricsAddress(absl::string_view address) {
  // HOST:PORT or [V6]:PORT; port 0 lets the kernel pick one (tests).
  const size_t colon = address.rfind(':');
  uint32_t port = 0;
  absl::string_view host =
      colon == absl::string_view::npos ? "" : address.substr(0, colon);
  if (colon == absl::string_view::npos || host.empty() ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics wants ADDRESS:PORT (e.g. 127.0.0.1:9650), not '", address,
        "'"));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  absl::StatusOr<SocketAddress> parsed =
      SocketAddress::FromNumeric(host, static_cast<uint16_t>(port));
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics: '", host, "' is not a numeric IPv4 or IPv6 address"));
  }
  return parsed;
}

void AppendMetricHeader(absl::string_view name, absl::string_view type,
                        absl::string_view help, std::string& out) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                  type, "\n");
}

MetricsServer::MetricsServer(UniqueFd listener, UniqueFd wake,
                             std::function<std::string()> render)
    : listener_(std::move(listener)),
      wake_(std::move(wake)),
      render_(std::move(render)) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    absl::string_view address, std::function<std::string()> render) {
  absl::StatusOr<SocketAddress> bind = ParseMetricsAddress(address);
  if (!bind.ok()) return bind.status();
  absl::StatusOr<UniqueFd> listener = OpenTcpListener(*bind, 16);
  if (!listener.ok()) {
    return absl::Status(
        listener.status().code(),
        absl::StrCat("--metrics ", address, ": ", listener.status().message()));
  }
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return ErrnoStatus("eventfd", errno);
  absl::StatusOr<SocketAddress> local = LocalAddress(listener->get());
  if (!local.ok()) return local.status();
  std::unique_ptr<MetricsServer> server(new MetricsServer(
      *std::move(listener), std::move(wake), std::move(render)));
  server->address_ = *local;
  server->thread_ = std::thread([s = server.get()] {
    NameThisThread("metrics-http");
    s->Serve();
  });
  return server;
}

MetricsServer::~MetricsServer() {
  const uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof(one)) < 0) {
    // An eventfd write fails only on overflow; the thread is waking anyway.
  }
  if (thread_.joinable()) thread_.join();
}

void MetricsServer::Serve() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LogError("metrics: poll: ", ErrnoStatus("poll", errno).message());
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) continue;  // the peer went away, or out of fds for now
    Answer(client.get());
  }
}

void MetricsServer::Answer(int fd) {
  // Read up to the end of the request head, within the time limit.
  std::string request;
  char buffer[2048];
  while (!absl::StrContains(request, "\r\n\r\n") &&
         !absl::StrContains(request, "\n\n")) {
    pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, kRequestTimeoutMs) <= 0) return;
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return;
    request.append(buffer, static_cast<size_t>(n));
    if (request.size() > kMaxRequestBytes) return;
  }
  const absl::string_view line =
      absl::string_view(request).substr(0, request.find_first_of("\r\n"));
  std::string status = "200 OK";
  std::string body;
  std::string type = "text/plain; version=0.0.4; charset=utf-8";
  if (!absl::StartsWith(line, "GET ")) {
    status = "405 Method Not Allowed";
    type = "text/plain; charset=utf-8";
    body = "only GET is served\n";
  } else if (line != "GET /metrics HTTP/1.1" &&
             line != "GET /metrics HTTP/1.0") {
    status = "404 Not Found";
    type = "text/plain; charset=utf-8";
    body = "metrics are at /metrics\n";
  } else {
    body = render_();
  }
  WriteAllTo(fd, absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                              "\r\nContent-Length: ", body.size(),
                              "\r\nConnection: close\r\n\r\n", body));
}

}  // namespace pcfs
