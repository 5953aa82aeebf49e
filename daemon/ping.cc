#include "daemon/ping.h"

#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/base/unique_fd.h"
#include "core/proto/protocol.h"

namespace pcfs {
namespace {

enum class Outcome { kAnswered, kRefused, kTimedOut };

// Pings one address until `deadline`. Errors: the socket calls failing.
absl::StatusOr<Outcome> PingAddress(const SocketAddress& to,
                                    absl::Time deadline, PingResult* result) {
  absl::StatusOr<UniqueFd> socket = OpenConnectedUdpSocket(to);
  if (!socket.ok()) return socket.status();
  const UniqueFd fd = *std::move(socket);
  protocol::Header header;
  header.type = static_cast<uint8_t>(protocol::MessageType::kPing);
  protocol::PingRequest request;
  if (RAND_bytes(reinterpret_cast<uint8_t*>(&header.request_id),
                 sizeof(header.request_id)) != 1 ||
      RAND_bytes(reinterpret_cast<uint8_t*>(&request.token),
                 sizeof(request.token)) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  std::array<uint8_t, protocol::kMaxDatagramSize> out{};
  const size_t size = protocol::EncodePingRequest(header, request, out);
  absl::Duration wait = absl::Milliseconds(200);
  for (;;) {
    const absl::Time sent = absl::Now();
    if (sent >= deadline) return Outcome::kTimedOut;
    if (::send(fd.get(), out.data(), size, 0) < 0) {
      if (errno == ECONNREFUSED) return Outcome::kRefused;
      return ErrnoStatus(absl::StrCat("send to ", to.ToString()), errno);
    }
    const absl::Time resend = std::min(sent + wait, deadline);
    wait *= 2;
    for (absl::Time now = sent; now < resend; now = absl::Now()) {
      pollfd p = {fd.get(), POLLIN, 0};
      const int ms = static_cast<int>(
          std::max<int64_t>(1, absl::ToInt64Milliseconds(resend - now)));
      if (::poll(&p, 1, ms) <= 0) continue;
      std::array<uint8_t, protocol::kMaxDatagramSize> in{};
      const ssize_t n = ::recv(fd.get(), in.data(), in.size(), 0);
      if (n < 0) {
        if (errno == ECONNREFUSED) return Outcome::kRefused;
        continue;
      }
      absl::StatusOr<protocol::Message> reply = protocol::ParseDatagram(
          std::span<const uint8_t>(in.data(), static_cast<size_t>(n)));
      if (!reply.ok() || !reply->header.is_response() ||
          reply->header.type != header.type ||
          reply->header.request_id != header.request_id) {
        continue;  // not the answer to this PING
      }
      absl::StatusOr<protocol::ReplyStatus> status =
          protocol::DecodeReplyStatus(reply->body);
      if (!status.ok() || status->code != protocol::ResultCode::kOk) continue;
      absl::StatusOr<uint64_t> token =
          protocol::DecodePingReply(status->payload);
      if (!token.ok() || *token != request.token) continue;
      result->answered_by = to;
      result->round_trip = absl::Now() - sent;
      return Outcome::kAnswered;
    }
  }
}

}  // namespace

absl::StatusOr<PingResult> PingDaemon(absl::string_view host, uint16_t port,
                                      absl::Duration timeout) {
  absl::StatusOr<std::vector<SocketAddress>> addresses = Resolve(host, port);
  if (!addresses.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ",
                                               addresses.status().message()));
  }
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> refused;
  for (const SocketAddress& to : *addresses) {
    PingResult result;
    absl::StatusOr<Outcome> outcome = PingAddress(to, deadline, &result);
    if (!outcome.ok()) return outcome.status();
    if (*outcome == Outcome::kAnswered) return result;
    if (*outcome == Outcome::kRefused) {
      refused.push_back(to.ToString());
      continue;
    }
    return absl::UnavailableError(absl::StrCat("no answer from ", to.ToString(),
                                               " within ",
                                               absl::FormatDuration(timeout)));
  }
  return absl::UnavailableError(
      absl::StrCat("nothing listens on UDP ", host, ":", port, " (refused by ",
                   absl::StrJoin(refused, ", "), ")"));
}

}  // namespace pcfs
