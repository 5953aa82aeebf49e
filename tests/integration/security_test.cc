// The security mechanisms of docs/SECURITY.md, shown with the real binaries
// on loopback: the password never crosses the wire, forged and replayed
// datagrams are dropped, downloads need the right ticket and stay inside the
// share folder, a holder serving other bytes makes the download fail, and
// SIGHUP ends the sessions of users taken out of the credentials file.
//
// Some tests speak the control protocol themselves (MiniSession below:
// core/client's ClientSession over a socket of its own) because they need
// what peerctl keeps to itself: the session id, the key and the exact bytes
// sent.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/auth/datagram_auth.h"
#include "core/auth/scram.h"
#include "core/auth/ticket.h"
#include "core/base/unique_fd.h"
#include "core/client/client_session.h"
#include "core/io/net.h"
#include "core/proto/protocol.h"
#include "gtest/gtest.h"
#include "peerctl/client.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

using protocol::Header;
using protocol::MessageType;
using protocol::ResultCode;

// ---- Datagrams ------------------------------------------------------------

std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::span<uint8_t> AsMutableBytes(std::string& s) {
  return {reinterpret_cast<uint8_t*>(s.data()), s.size()};
}

// Writes a whole datagram for `header` into the buffer it is given and
// returns its size (one of the protocol::Encode...Request functions).
using Encoder = std::function<size_t(const Header&, std::span<uint8_t>)>;

std::string BuildDatagram(const Header& header, const Encoder& encode) {
  std::string datagram(protocol::kMaxDatagramSize, '\0');
  datagram.resize(encode(header, AsMutableBytes(datagram)));
  return datagram;
}

size_t EncodeEmpty(const Header& header, std::span<uint8_t> out) {
  return protocol::EncodeEmptyRequest(header, out);
}

Encoder NameEncoder(const std::string& name) {
  return [name](const Header& header, std::span<uint8_t> out) {
    return protocol::EncodeNameRequest(header, protocol::NameRequest{name},
                                       out);
  };
}

// A reply datagram, decoded (copies, so it outlives the datagram).
struct DecodedReply {
  Header header;
  ResultCode code = ResultCode::kOk;
  std::string message;
  std::string payload;
};

// Decodes a reply; a sealed one is opened first with `keys` (nullopt
// without them, or if it does not open).
std::optional<DecodedReply> DecodeReply(const std::string& datagram,
                                        const DatagramKeys* keys = nullptr) {
  absl::StatusOr<protocol::Message> message =
      protocol::ParseDatagram(AsBytes(datagram));
  if (!message.ok() || !message->header.is_response()) return std::nullopt;
  std::vector<uint8_t> body(message->body.begin(), message->body.end());
  if (!IsUnsealed(AsBytes(datagram))) {
    if (keys == nullptr ||
        !OpenDatagram(*keys, Direction::kToClient, AsBytes(datagram), body)) {
      return std::nullopt;
    }
  }
  absl::StatusOr<protocol::ReplyStatus> status =
      protocol::DecodeReplyStatus(body);
  if (!status.ok()) return std::nullopt;
  DecodedReply reply;
  reply.header = message->header;
  reply.code = status->code;
  reply.message = std::string(status->message);
  reply.payload.assign(reinterpret_cast<const char*>(status->payload.data()),
                       status->payload.size());
  return reply;
}

// Sends `request` from `socket` to the daemon on `port` and returns the
// reply to it (a response with the request's id and type), or nullopt if
// none comes within `timeout`. Other datagrams are skipped.
std::optional<std::string> SendAndAwait(UdpSocket& socket, uint16_t port,
                                        const std::string& request,
                                        absl::Duration timeout) {
  absl::StatusOr<protocol::Message> sent =
      protocol::ParseDatagram(AsBytes(request));
  if (!sent.ok()) {
    ADD_FAILURE() << "not a datagram: " << sent.status();
    return std::nullopt;
  }
  if (!socket.SendTo(port, request)) {
    ADD_FAILURE() << "sendto: " << std::strerror(errno);
    return std::nullopt;
  }
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    std::optional<std::string> datagram = socket.Receive(left);
    if (!datagram.has_value()) return std::nullopt;
    // The header only: a sealed reply's body is for its session to open.
    absl::StatusOr<protocol::Message> reply =
        protocol::ParseDatagram(AsBytes(*datagram));
    if (reply.ok() && reply->header.is_response() &&
        reply->header.request_id == sent->header.request_id &&
        reply->header.type == sent->header.type) {
      return datagram;
    }
  }
}

// ---- A minimal client of the control protocol ------------------------------

// The bodies of the requests these tests send by hand; they view `name`.
client::RequestBody NameBody(absl::string_view name) {
  client::RequestBody body;
  body.name.name = name;
  return body;
}

client::RequestBody PublishBody(absl::string_view name) {
  client::RequestBody body;
  body.publish.name = name;
  body.publish.size = 9;
  body.publish.root.fill(0xab);
  return body;
}

// One session of the control protocol over a socket of its own, with
// core/client's ClientSession (the protocol peerctl speaks) and no
// retransmission: it hands out what peerctl keeps to itself, the session id,
// the key, the exact bytes of each sealed request and of the LOGIN_FINISH it
// sent. Not thread-safe.
class MiniSession {
 public:
  // Logs in as `user`; the error says which step failed.
  static absl::StatusOr<std::unique_ptr<MiniSession>> Login(
      uint16_t daemon_port, const std::string& user,
      const std::string& password, const std::string& source_ip = "127.0.0.1") {
    std::unique_ptr<MiniSession> session(
        new MiniSession(daemon_port, source_ip));
    if (absl::Status s = session->LogIn(user, password); !s.ok()) return s;
    return session;
  }

  uint64_t session_id() const { return session_.session_id(); }
  const SessionKey& key() const { return session_.key(); }
  const DatagramKeys& datagram_keys() const { return session_.datagram_keys(); }
  const std::string& login_finish_datagram() const { return login_finish_; }

  // A sealed request of `type` with the next request id and sequence
  // number; it becomes the session's request in flight.
  std::string Seal(MessageType type,
                   const client::RequestBody& body = client::RequestBody()) {
    if (absl::Status s = session_.StartRequest(type); !s.ok()) {
      ADD_FAILURE() << s;
      return "";
    }
    return EncodeTry(body);
  }

  // Sends `request` from this session's socket; the reply, or nullopt.
  std::optional<std::string> Send(const std::string& request,
                                  absl::Duration timeout) {
    return SendAndAwait(socket_, daemon_port_, request, timeout);
  }

  // A sealed exchange whose reply must come and answer the request as the
  // session checks it (its MAC and sequence number).
  absl::StatusOr<DecodedReply> Call(
      MessageType type,
      const client::RequestBody& body = client::RequestBody()) {
    std::optional<std::string> reply = Send(Seal(type, body), absl::Seconds(2));
    if (!reply.has_value()) return absl::DeadlineExceededError("no reply");
    if (!session_.Receive(AsBytes(*reply)).has_value()) {
      return absl::DataLossError("the reply does not carry the session MAC");
    }
    std::optional<DecodedReply> decoded =
        DecodeReply(*reply, &session_.datagram_keys());
    if (!decoded.has_value()) return absl::DataLossError("malformed reply");
    return *decoded;
  }

  // LPF, one page (enough for the few names of these tests).
  absl::StatusOr<std::vector<std::string>> ListPublished() {
    absl::StatusOr<DecodedReply> reply = Call(MessageType::kListPublished);
    if (!reply.ok()) return reply.status();
    if (reply->code != ResultCode::kOk) {
      return absl::InternalError(absl::StrCat("LPF: ", reply->message));
    }
    absl::StatusOr<protocol::ListReply> page =
        protocol::DecodeListReply(AsBytes(reply->payload));
    if (!page.ok()) return page.status();
    return std::vector<std::string>(page->names.begin(), page->names.end());
  }

 private:
  MiniSession(uint16_t daemon_port, const std::string& source_ip)
      : daemon_port_(daemon_port),
        socket_(source_ip),
        session_(/*first_request_id=*/1) {}

  std::string EncodeTry(const client::RequestBody& body) {
    std::string datagram(protocol::kMaxDatagramSize, '\0');
    datagram.resize(
        session_.EncodeTry(absl::Now(), body, AsMutableBytes(datagram)));
    return datagram;
  }

  // Both SCRAM steps, each sent once.
  absl::Status LogIn(const std::string& user, const std::string& password) {
    if (absl::Status s = session_.StartLogin(user, password, 0); !s.ok()) {
      return s;
    }
    while (session_.in_flight()) {
      const std::string step = protocol::MessageTypeName(
          static_cast<uint8_t>(session_.request_type()));
      const std::string sent = EncodeTry(client::RequestBody());
      if (session_.request_type() == MessageType::kLoginFinish) {
        login_finish_ = sent;
      }
      std::optional<std::string> reply = Send(sent, absl::Seconds(5));
      if (!reply.has_value()) {
        return absl::DeadlineExceededError(absl::StrCat(step, ": no reply"));
      }
      std::optional<client::Reply> taken = session_.Receive(AsBytes(*reply));
      if (!taken.has_value() || !taken->malformed.ok() ||
          taken->code != ResultCode::kOk) {
        return absl::UnauthenticatedError(absl::StrCat(
            step, " refused: ",
            taken.has_value() ? taken->message : "malformed reply"));
      }
      if (absl::Status s = session_.ContinueLogin(*taken); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  const uint16_t daemon_port_;
  UdpSocket socket_;
  client::ClientSession session_;
  std::string login_finish_;
};

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  for (const std::string& n : names) {
    if (n == name) return true;
  }
  return false;
}

// The counter `name` ("bad_mac") in the daemon's last counters line (it
// prints them when it stops), or nullopt.
std::optional<uint64_t> DaemonCounter(const std::string& log,
                                      const std::string& name) {
  const std::string key = absl::StrCat(" ", name, "=");
  const size_t at = log.rfind(key);
  if (at == std::string::npos) return std::nullopt;
  const size_t begin = at + key.size();
  const size_t end = log.find_first_not_of("0123456789", begin);
  uint64_t value = 0;
  if (!absl::SimpleAtoi(log.substr(begin, end - begin), &value)) {
    return std::nullopt;
  }
  return value;
}

// ---- Seeing the wire
// ---------------------------------------------------------

// Captures the payloads of the IPv4 UDP datagrams on "lo" to or from any of
// `ports`, with an AF_PACKET socket (root only). One thread runs it until
// Stop() or destruction (two minutes at most).
class LoopbackCapture {
 public:
  // Starts capturing; null (with the reason in *why) if the socket cannot be
  // opened or bound (not root).
  static std::unique_ptr<LoopbackCapture> Start(std::vector<uint16_t> ports,
                                                std::string* why) {
    UniqueFd fd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         htons(ETH_P_IP)));
    if (!fd) {
      *why = absl::StrCat("socket(AF_PACKET): ", std::strerror(errno));
      return nullptr;
    }
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_IP);
    address.sll_ifindex = static_cast<int>(::if_nametoindex("lo"));
    if (address.sll_ifindex == 0 ||
        ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address),
               sizeof(address)) != 0) {
      *why = absl::StrCat("bind(AF_PACKET, lo): ", std::strerror(errno));
      return nullptr;
    }
    return std::unique_ptr<LoopbackCapture>(
        new LoopbackCapture(std::move(fd), std::move(ports)));
  }
  ~LoopbackCapture() { Stop(); }

  // Stops capturing; returns the payloads captured, in order.
  std::vector<std::string> Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return payloads_;
  }

 private:
  LoopbackCapture(UniqueFd fd, std::vector<uint16_t> ports)
      : fd_(std::move(fd)), ports_(std::move(ports)) {
    thread_ = std::thread([this] { Run(); });
  }

  void Run() {
    const absl::Time deadline = absl::Now() + absl::Minutes(2);
    while (!stop_ && absl::Now() < deadline) {
      pollfd entry{fd_.get(), POLLIN, 0};
      if (::poll(&entry, 1, 20) <= 0) continue;
      uint8_t packet[65536];
      ssize_t n;
      while ((n = ::recv(fd_.get(), packet, sizeof(packet), 0)) > 0) {
        Keep(std::span<const uint8_t>(packet, static_cast<size_t>(n)));
      }
    }
  }

  // Keeps the UDP payload of an IPv4 packet if one of its ports is ours.
  void Keep(std::span<const uint8_t> ip) {
    if (ip.size() < 20 || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP) return;
    const size_t header = static_cast<size_t>(ip[0] & 0x0f) * 4;
    if (ip.size() < header + 8) return;
    const uint16_t source =
        static_cast<uint16_t>(ip[header] << 8 | ip[header + 1]);
    const uint16_t destination =
        static_cast<uint16_t>(ip[header + 2] << 8 | ip[header + 3]);
    for (uint16_t port : ports_) {
      if (port == source || port == destination) {
        payloads_.emplace_back(
            reinterpret_cast<const char*>(ip.data() + header + 8),
            ip.size() - header - 8);
        return;
      }
    }
  }

  UniqueFd fd_;
  const std::vector<uint16_t> ports_;
  std::atomic<bool> stop_{false};
  std::vector<std::string> payloads_;  // the thread's until joined
  std::thread thread_;
};

// The forms in which `secret` could leak: its bytes, its hex, and base64
// (standard and web-safe) at each of the three alignments it could have
// inside a longer base64 text (only the characters that depend on the
// secret's bytes alone).
std::vector<std::string> LeakForms(const std::string& secret) {
  std::vector<std::string> forms = {secret, absl::BytesToHexString(secret)};
  for (size_t shift = 0; shift < 3; ++shift) {
    const std::string shifted = std::string(shift, '\0') + secret;
    std::string standard, web_safe;
    absl::Base64Escape(shifted, &standard);
    absl::WebSafeBase64Escape(shifted, &web_safe);
    for (const std::string& encoded : {standard, web_safe}) {
      const size_t skip = shift == 0 ? 0 : 4;  // the mixed first group
      forms.push_back(encoded.substr(skip, encoded.size() - skip - 4));
    }
  }
  return forms;
}

// ---- HTTP to a holder ------------------------------------------------------

struct HttpResponse {
  int status = 0;  // 0: no status line
  std::string body;
  std::string raw;
};

// Sends one raw request for `target` to a holder's file server, with
// `authorization` as the Authorization header unless it is empty, and
// reads the whole response (the server closes after one).
HttpResponse FetchFromHolder(const SocketAddress& holder,
                             const std::string& target,
                             const std::string& authorization) {
  HttpResponse response;
  UniqueFd socket(::socket(holder.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket || ::connect(socket.get(), holder.get(), holder.length) != 0) {
    ADD_FAILURE() << "connect to the holder: " << std::strerror(errno);
    return response;
  }
  std::string request =
      absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  if (!authorization.empty()) {
    absl::StrAppend(&request, "Authorization: ", authorization, "\r\n");
  }
  request += "\r\n";
  if (::send(socket.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ADD_FAILURE() << "send to the holder: " << std::strerror(errno);
    return response;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  bool closed = false;
  while (!closed && absl::Now() < deadline) {
    pollfd entry{socket.get(), POLLIN, 0};
    if (::poll(&entry, 1, 100) <= 0) continue;
    char buffer[65536];
    ssize_t n = ::recv(socket.get(), buffer, sizeof(buffer), 0);
    if (n <= 0) {
      closed = true;
    } else {
      response.raw.append(buffer, static_cast<size_t>(n));
    }
  }
  if (!closed) ADD_FAILURE() << "the holder did not close the connection";
  int status = 0;
  if (absl::StartsWith(response.raw, "HTTP/1.1 ") &&
      response.raw.size() >= 12 &&
      absl::SimpleAtoi(response.raw.substr(9, 3), &status)) {
    response.status = status;
  }
  const size_t head_end = response.raw.find("\r\n\r\n");
  if (head_end != std::string::npos) {
    response.body = response.raw.substr(head_end + 4);
  }
  return response;
}

std::string Bearer(const std::string& ticket) {
  return absl::StrCat("Bearer ", ticket);
}

// ---- The tests -------------------------------------------------------------

constexpr char kPassword[] = "falcon*solo-9f3k";

// The one reply the daemon cannot seal is "unknown session", so anyone on
// the path can forge it. peerctl then tries a new login, which the daemon
// refuses because the user is still active: peerctl must keep its session
// and finish the command with it, not lose it.
TEST(SecurityTest, ForgedUnknownSessionReplyDoesNotCostTheSession) {
  Daemon daemon;
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  ASSERT_TRUE(hans.logged_in());
  std::atomic<int> forged{0};
  UdpRelay relay(daemon.port(), [&](UdpRelay::Direction direction, uint64_t,
                                    const std::string& datagram) {
    if (direction != UdpRelay::Direction::kToDaemon) {
      return UdpRelay::Verdict::Forward();
    }
    absl::StatusOr<protocol::Message> m =
        protocol::ParseDatagram(std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(datagram.data()),
            datagram.size()));
    if (!m.ok() || m->header.message_type() != MessageType::kListActivePeers ||
        forged.fetch_add(1) > 0) {
      return UdpRelay::Verdict::Forward();
    }
    std::string reply(protocol::kMaxDatagramSize, '\0');
    reply.resize(protocol::EncodeStatusReply(
        m->header, ResultCode::kUnknownSession, "forged",
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(reply.data()),
                           reply.size())));
    return UdpRelay::Verdict::Answer(std::move(reply));
  });
  CommandResult lap = RunToCompletion(
      PeerctlOptions(relay.address(), "yoda", "yodapass", {"lap"}, dir.path()),
      absl::Seconds(30));
  relay.Stop();
  EXPECT_EQ(forged.load(), 2) << "the forger answered the first LAP only";
  EXPECT_EQ(lap.exit_code, 0) << lap.err;
  EXPECT_EQ(lap.out, "hans\n");
}

TEST(SecurityTest, PasswordNeverCrossesTheWire) {
  Daemon daemon(absl::StrCat("osprey ", kPassword, "\n"));
  UdpRelay relay(daemon.port());
  std::string why_no_capture;
  std::unique_ptr<LoopbackCapture> capture =
      LoopbackCapture::Start({relay.port(), daemon.port()}, &why_no_capture);
  TempDir dir;

  CommandResult lap = RunToCompletion(
      PeerctlOptions(relay.address(), "osprey", kPassword, {"lap"}, dir.path()),
      absl::Seconds(30));
  const std::vector<UdpRelay::Datagram> recorded = relay.Stop();
  EXPECT_EQ(lap.exit_code, 0) << lap.err;

  bool saw_login = false;
  bool saw_login_finish = false;
  const std::vector<std::string> forms = LeakForms(kPassword);
  for (const UdpRelay::Datagram& datagram : recorded) {
    if (datagram.direction == UdpRelay::Direction::kToDaemon &&
        datagram.bytes.size() > protocol::kTypeOffset) {
      const auto type =
          static_cast<uint8_t>(datagram.bytes[protocol::kTypeOffset]);
      saw_login |= type == static_cast<uint8_t>(MessageType::kLogin);
      saw_login_finish |=
          type == static_cast<uint8_t>(MessageType::kLoginFinish);
    }
    for (const std::string& form : forms) {
      EXPECT_FALSE(absl::StrContains(datagram.bytes, form))
          << "a datagram carries the password as \"" << form << "\"";
    }
  }
  EXPECT_TRUE(saw_login) << recorded.size() << " datagrams recorded";
  EXPECT_TRUE(saw_login_finish) << recorded.size() << " datagrams recorded";

  // The kernel's view of the same exchange, when we may look (root).
  if (capture == nullptr) {
    std::printf("[ SKIPPED  ] AF_PACKET capture on lo: %s\n",
                why_no_capture.c_str());
    return;
  }
  const std::vector<std::string> payloads = capture->Stop();
  bool saw_client_first = false;
  for (const std::string& payload : payloads) {
    saw_client_first |= absl::StrContains(payload, "n=osprey,r=");
    for (const std::string& form : forms) {
      EXPECT_FALSE(absl::StrContains(payload, form))
          << "a packet on lo carries the password as \"" << form << "\"";
    }
  }
  // The capture worked: it saw the login start (the user name is public).
  EXPECT_TRUE(saw_client_first) << payloads.size() << " payloads captured";
}

TEST(SecurityTest, ForgedHeartbeatsFromAnotherSocketDoNotSaveASession) {
  Daemon daemon;
  absl::StatusOr<std::unique_ptr<MiniSession>> hans =
      MiniSession::Login(daemon.port(), "hans", "hanspass");
  ASSERT_TRUE(hans.ok()) << hans.status();
  std::unique_ptr<ControlClient> yoda =
      LoggedInClient(daemon, "yoda", "yodapass");
  ASSERT_NE(yoda, nullptr);

  // hans's last genuine heartbeat; its bytes are replayed below.
  const std::string genuine = (*hans)->Seal(MessageType::kHeartbeat);
  const absl::Time last_genuine = absl::Now();
  std::optional<std::string> ack = (*hans)->Send(genuine, absl::Seconds(2));
  ASSERT_TRUE(ack.has_value());
  const std::optional<DecodedReply> ack_reply =
      DecodeReply(*ack, &(*hans)->datagram_keys());
  ASSERT_TRUE(ack_reply.has_value()) << "the reply does not open";
  ASSERT_EQ(ack_reply->code, ResultCode::kOk);
  const uint32_t genuine_id = ack_reply->header.request_id;

  // From another socket, for 4 s: every 500 ms a heartbeat for hans's
  // session with a wrong MAC (and a fresh sequence number), and once the
  // genuine one again (right MAC, stale sequence number). Meanwhile yoda
  // watches `lap`.
  UdpSocket forger;
  std::mt19937 random(20240607);
  std::map<uint32_t, absl::Duration> forged_at;  // request id -> when sent
  uint32_t next_forged_id = 0x70000000;
  uint64_t next_forged_sequence = 100;
  int forgeries = 0;
  std::vector<std::pair<uint32_t, ResultCode>> replies;
  std::optional<absl::Duration> last_seen;
  std::optional<absl::Duration> gone_after;
  bool came_back = false;
  absl::Duration next_yoda_heartbeat = absl::Seconds(1);
  for (;;) {
    const absl::Duration elapsed = absl::Now() - last_genuine;
    if (elapsed > absl::Seconds(6)) break;
    if (elapsed >= absl::Seconds(4) && gone_after.has_value()) break;
    if (elapsed < absl::Seconds(4) &&
        elapsed >= forgeries * absl::Milliseconds(500)) {
      std::string forged;
      if (forgeries == 3) {
        forged = genuine;
        forged_at[genuine_id] = elapsed;
      } else {
        Header header;
        header.type = static_cast<uint8_t>(MessageType::kHeartbeat);
        header.request_id = next_forged_id++;
        header.session_id = (*hans)->session_id();
        header.sequence = next_forged_sequence++;
        for (uint8_t& b : header.mac) b = static_cast<uint8_t>(random());
        forged = BuildDatagram(header, EncodeEmpty);
        forged_at[header.request_id] = elapsed;
      }
      ASSERT_TRUE(forger.SendTo(daemon.port(), forged));
      ++forgeries;
    }
    while (std::optional<std::string> datagram =
               forger.Receive(absl::ZeroDuration())) {
      std::optional<DecodedReply> reply = DecodeReply(*datagram);
      ASSERT_TRUE(reply.has_value()) << "a malformed reply to the forger";
      replies.emplace_back(reply->header.request_id, reply->code);
    }
    absl::StatusOr<std::vector<std::string>> peers = yoda->ListActivePeers();
    ASSERT_TRUE(peers.ok()) << peers.status();
    const absl::Duration asked = absl::Now() - last_genuine;
    if (Contains(*peers, "hans")) {
      last_seen = elapsed;
      came_back |= gone_after.has_value();
    } else if (!gone_after.has_value()) {
      gone_after = asked;
    }
    if (elapsed >= next_yoda_heartbeat) {
      ASSERT_TRUE(yoda->Heartbeat().ok());
      next_yoda_heartbeat += absl::Seconds(1);
    }
    daemon.process().DrainOutput();
    absl::SleepFor(absl::Milliseconds(50));
  }

  EXPECT_EQ(forgeries, 8);
  ASSERT_TRUE(gone_after.has_value()) << "hans never left lap";
  EXPECT_LE(*gone_after, absl::Milliseconds(3500))
      << "hans left lap only " << *gone_after
      << " after his last genuine heartbeat";
  EXPECT_FALSE(came_back) << "hans came back to lap after leaving it";
  // He stayed while the first forgeries came (they did not end his session
  // either), so those reached a live session: each forgery was sent before
  // the `lap` of the same round, and loopback keeps their order.
  ASSERT_TRUE(last_seen.has_value());
  EXPECT_GE(*last_seen, absl::Seconds(2));
  // A forgery that reached the live session got no reply; later ones may get
  // the (unsealed) "unknown session" that anyone gets for a dead session.
  uint64_t wrong_macs_to_live_session = 0;
  for (const auto& [id, when] : forged_at) {
    if (when <= *last_seen && id != genuine_id) ++wrong_macs_to_live_session;
  }
  EXPECT_GE(wrong_macs_to_live_session, 3u);
  for (const auto& [id, code] : replies) {
    ASSERT_TRUE(forged_at.contains(id)) << "a reply to no forgery: " << id;
    EXPECT_GT(forged_at[id], *last_seen)
        << "the daemon answered a forgery sent " << forged_at[id]
        << " after the last genuine heartbeat, while the session lived";
    EXPECT_EQ(code, ResultCode::kUnknownSession);
  }

  // The daemon's own account: it dropped them for their MAC, and the
  // genuine bytes for their sequence number.
  ASSERT_EQ(daemon.Stop(), 0);
  const std::string& log = daemon.process().stderr_text();
  EXPECT_GE(DaemonCounter(log, "bad_mac").value_or(0),
            wrong_macs_to_live_session)
      << log.substr(log.size() > 2000 ? log.size() - 2000 : 0);
  EXPECT_GE(DaemonCounter(log, "replayed").value_or(0), 1u);
}

TEST(SecurityTest, ReplayedUnpIsDroppedAndDoesNotUnpublish) {
  Daemon daemon;
  absl::StatusOr<std::unique_ptr<MiniSession>> login =
      MiniSession::Login(daemon.port(), "hans", "hanspass");
  ASSERT_TRUE(login.ok()) << login.status();
  MiniSession& hans = **login;

  absl::StatusOr<DecodedReply> pub =
      hans.Call(MessageType::kPublish, PublishBody("song.mp3"));
  ASSERT_TRUE(pub.ok()) << pub.status();
  ASSERT_EQ(pub->code, ResultCode::kOk) << pub->message;

  // A forgery far ahead in sequence, from another socket: dropped, and it
  // must not move the replay window (else hans's next requests, far below
  // it, would be refused).
  UdpSocket attacker;
  {
    Header header;
    header.type = static_cast<uint8_t>(MessageType::kUnpublish);
    header.request_id = 0x7fff0000;
    header.session_id = hans.session_id();
    header.sequence = 1'000'000;
    header.mac.fill(0x5a);
    EXPECT_FALSE(SendAndAwait(attacker, daemon.port(),
                              BuildDatagram(header, NameEncoder("song.mp3")),
                              absl::Milliseconds(300))
                     .has_value());
  }

  const std::string unp =
      hans.Seal(MessageType::kUnpublish, NameBody("song.mp3"));
  std::optional<std::string> unp_reply = hans.Send(unp, absl::Seconds(2));
  ASSERT_TRUE(unp_reply.has_value())
      << "the genuine UNP was refused: a forgery moved the window?";
  const std::optional<DecodedReply> unp_decoded =
      DecodeReply(*unp_reply, &hans.datagram_keys());
  ASSERT_TRUE(unp_decoded.has_value());
  ASSERT_EQ(unp_decoded->code, ResultCode::kOk);
  pub = hans.Call(MessageType::kPublish, PublishBody("song.mp3"));
  ASSERT_TRUE(pub.ok()) << pub.status();
  ASSERT_EQ(pub->code, ResultCode::kOk) << pub->message;

  // The recorded UNP again, from hans's socket and from another one.
  EXPECT_FALSE(hans.Send(unp, absl::Milliseconds(500)).has_value())
      << "the daemon answered a replayed UNP from the same socket";
  EXPECT_FALSE(
      SendAndAwait(attacker, daemon.port(), unp, absl::Milliseconds(500))
          .has_value())
      << "the daemon answered a replayed UNP from another socket";

  absl::StatusOr<std::vector<std::string>> published = hans.ListPublished();
  ASSERT_TRUE(published.ok()) << published.status();
  EXPECT_EQ(*published, std::vector<std::string>{"song.mp3"});

  ASSERT_EQ(daemon.Stop(), 0);
  const std::string& log = daemon.process().stderr_text();
  EXPECT_EQ(DaemonCounter(log, "replayed"), 2u) << log;
  EXPECT_EQ(DaemonCounter(log, "bad_mac"), 1u) << log;
}

TEST(SecurityTest, ReplayedLoginFinishFromAnotherAddressGetsNoSession) {
  Daemon daemon;
  absl::StatusOr<std::unique_ptr<MiniSession>> yoda =
      MiniSession::Login(daemon.port(), "yoda", "yodapass");
  ASSERT_TRUE(yoda.ok()) << yoda.status();
  const std::string recorded = (*yoda)->login_finish_datagram();
  UdpSocket attacker;

  // While yoda's session lives...
  std::optional<std::string> reply =
      SendAndAwait(attacker, daemon.port(), recorded, absl::Seconds(2));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(DecodeReply(*reply)->code, ResultCode::kAuthFailed)
      << DecodeReply(*reply)->message;

  // ...and after it ended.
  absl::StatusOr<DecodedReply> logout = (*yoda)->Call(MessageType::kLogout);
  ASSERT_TRUE(logout.ok()) << logout.status();
  ASSERT_EQ(logout->code, ResultCode::kOk);
  reply = SendAndAwait(attacker, daemon.port(), recorded, absl::Seconds(2));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(DecodeReply(*reply)->code, ResultCode::kAuthFailed)
      << DecodeReply(*reply)->message;

  TempDir dir;
  CommandResult lap =
      RunPeerctl(daemon, "hans", "hanspass", {"lap"}, dir.path());
  EXPECT_EQ(lap.exit_code, 0) << lap.err;
  EXPECT_EQ(lap.out, "") << "the replay made a session";
}

// The path may forge the source address (docs/SECURITY.md), so a replay from
// the original client's own address and port must not log anyone in either
// once the session it made has ended. (While it lives, the daemon answers
// such a retransmission with the same session, by design.)
TEST(SecurityTest, ReplayedLoginFinishAfterLogoutGetsNoSession) {
  Daemon daemon;
  absl::StatusOr<std::unique_ptr<MiniSession>> yoda =
      MiniSession::Login(daemon.port(), "yoda", "yodapass");
  ASSERT_TRUE(yoda.ok()) << yoda.status();
  absl::StatusOr<DecodedReply> logout = (*yoda)->Call(MessageType::kLogout);
  ASSERT_TRUE(logout.ok()) << logout.status();
  ASSERT_EQ(logout->code, ResultCode::kOk);

  std::optional<std::string> reply =
      (*yoda)->Send((*yoda)->login_finish_datagram(), absl::Seconds(2));
  ASSERT_TRUE(reply.has_value());
  EXPECT_NE(DecodeReply(*reply)->code, ResultCode::kOk)
      << "a LOGIN_FINISH replayed from the original address within the "
         "login window, after logout, made a new session";
  // Its consequence: yoda shows as active and cannot log in meanwhile.
  TempDir dir;
  CommandResult login =
      RunPeerctl(daemon, "yoda", "yodapass", {"lap"}, dir.path());
  EXPECT_EQ(login.exit_code, 0)
      << "the replayed login locks yoda out: " << login.err;
}

TEST(SecurityTest, HolderServesOnlyTheTicketsFileInsideItsFolder) {
  Daemon daemon;
  TempDir a;
  a.WriteFile("secret.txt", "TOP SECRET: not published\n");
  a.WriteFile("pub.txt", "published contents\n");
  a.WriteFile("inside.txt", "inside contents\n");
  std::filesystem::create_symlink("/etc/passwd", a.path() + "/out.txt");
  std::filesystem::create_symlink("inside.txt", a.path() + "/link.txt");
  // Plain HTTP, so that the test can speak to the file server by hand: the
  // checks below are the same under TLS (tls_transfer_test covers TLS).
  Shell hans(daemon.address(), "hans", "hanspass", a.path(),
             {"--plaintext-transfers"});
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub pub.txt"), "");
  EXPECT_TRUE(
      absl::StartsWith(hans.Run("pub out.txt"), "File publication failed"));
  ASSERT_EQ(hans.Run("pub link.txt"), "");

  std::unique_ptr<ControlClient> vader =
      LoggedInClient(daemon, "vader", "vaderpass");
  ASSERT_NE(vader, nullptr);
  absl::StatusOr<FileLocation> pub = vader->Get("pub.txt");
  ASSERT_TRUE(pub.ok()) << pub.status();
  ASSERT_EQ(pub->holder, "hans");
  ASSERT_FALSE(pub->ticket.empty());
  absl::StatusOr<FileLocation> link = vader->Get("link.txt");
  ASSERT_TRUE(link.ok()) << link.status();
  const SocketAddress& holder = pub->address;
  const std::string ticket = pub->ticket;

  // The right ticket opens the right file.
  HttpResponse ok = FetchFromHolder(holder, "/f/pub.txt", Bearer(ticket));
  EXPECT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body, "published contents\n");

  // No ticket.
  EXPECT_EQ(FetchFromHolder(holder, "/f/pub.txt", "").status, 401);
  // pub.txt's ticket for another file.
  HttpResponse secret =
      FetchFromHolder(holder, "/f/secret.txt", Bearer(ticket));
  EXPECT_EQ(secret.status, 401) << secret.raw;
  EXPECT_FALSE(absl::StrContains(secret.raw, "SECRET"));
  // A ticket for another holder, and one MAC'd without hans's key.
  TicketKey wrong_key;
  wrong_key.bytes.fill(0x42);
  TicketClaims claims;
  claims.holder = "yoda";
  claims.requester = "vader";
  claims.file_name = "pub.txt";
  claims.expiry = absl::Now() + absl::Seconds(60);
  EXPECT_EQ(FetchFromHolder(holder, "/f/pub.txt",
                            Bearer(IssueTicket(wrong_key, claims)))
                .status,
            403);
  claims.holder = "hans";
  EXPECT_EQ(FetchFromHolder(holder, "/f/pub.txt",
                            Bearer(IssueTicket(wrong_key, claims)))
                .status,
            401);
  // (An expired ticket would need hans's key or 60 s of waiting; expiry is
  // covered by tests/unit/ticket_test.cc.)

  // Nothing outside the folder, by path or by symlink.
  HttpResponse escape =
      FetchFromHolder(holder, "/f/..%2Fetc%2Fpasswd", Bearer(ticket));
  EXPECT_TRUE(escape.status == 400 || escape.status == 404) << escape.raw;
  EXPECT_FALSE(absl::StrContains(escape.raw, "root:"));
  HttpResponse out = FetchFromHolder(holder, "/f/out.txt", Bearer(ticket));
  EXPECT_TRUE(out.status == 401 || out.status == 403 || out.status == 404)
      << out.raw;
  EXPECT_FALSE(absl::StrContains(out.raw, "root:"));
  // A published symlink is followed inside the folder, and checked again at
  // each request: switched to point outside, it serves nothing.
  HttpResponse inside =
      FetchFromHolder(holder, "/f/link.txt", Bearer(link->ticket));
  EXPECT_EQ(inside.status, 200) << inside.raw;
  EXPECT_EQ(inside.body, "inside contents\n");
  std::filesystem::create_symlink("/etc/passwd", a.path() + "/link.new");
  std::filesystem::rename(a.path() + "/link.new", a.path() + "/link.txt");
  HttpResponse switched =
      FetchFromHolder(holder, "/f/link.txt", Bearer(link->ticket));
  EXPECT_TRUE(switched.status == 403 || switched.status == 404) << switched.raw;
  EXPECT_FALSE(absl::StrContains(switched.raw, "root:"));

  // Unpublished, the file is not served, even with an unexpired ticket.
  ASSERT_EQ(hans.Run("unp pub.txt"), "");
  HttpResponse gone = FetchFromHolder(holder, "/f/pub.txt", Bearer(ticket));
  EXPECT_EQ(gone.status, 404) << gone.raw;
  EXPECT_FALSE(absl::StrContains(gone.raw, "published contents"));
}

TEST(SecurityTest, HolderServingOtherBytesFailsTheDownloadAndLeavesNothing) {
  Daemon daemon;
  TempDir peers;
  const std::string hans_dir = peers.MakeSubdir("hans");
  const std::string vader_dir = peers.MakeSubdir("vader");
  constexpr size_t kSize = 256 << 10;
  WriteRandomFile(hans_dir + "/f.bin", kSize, 31);
  Shell hans(daemon, "hans", "hanspass", hans_dir);
  ASSERT_TRUE(hans.logged_in());
  ASSERT_EQ(hans.Run("pub f.bin"), "");

  // Overwrite in place (same inode, same size) and put the mtime back: the
  // holder cannot tell it from the version it published (it refuses a
  // file that changed visibly: TlsTransferTest), and serves other bytes.
  // Only the Merkle root differs, and the downloader must see it.
  {
    UniqueFd fd(::open((hans_dir + "/f.bin").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd) << std::strerror(errno);
    struct stat before {};
    ASSERT_EQ(::fstat(fd.get(), &before), 0);
    const std::string other(kSize, 'x');
    ASSERT_EQ(::pwrite(fd.get(), other.data(), other.size(), 0),
              static_cast<ssize_t>(other.size()));
    const struct timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::futimens(fd.get(), times), 0) << std::strerror(errno);
  }

  CommandResult get = RunPeerctl(daemon, "vader", "vaderpass", {"get", "f.bin"},
                                 vader_dir, absl::Seconds(30));
  EXPECT_NE(get.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(
      get.err, "chunk 0 (bytes 0-262143) does not match its published hash"))
      << get.err;
  EXPECT_EQ(get.out, "");
  // Nothing passes for the file: at most the hidden partial a next get
  // resumes from.
  for (const std::string& entry : ListFolder(vader_dir)) {
    EXPECT_EQ(entry, ".f.bin.pcfs-partial");
  }
}

TEST(SecurityTest, SighupEndsTheSessionsOfRemovedUsersOnly) {
  Daemon daemon("hans hanspass\nvader vaderpass\n");
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  Shell vader(daemon, "vader", "vaderpass", dir.path());
  ASSERT_TRUE(hans.logged_in() && vader.logged_in());
  ASSERT_EQ(hans.Run("lap"), "vader\n");
  auto hans_logins = [&daemon] {
    daemon.process().DrainOutput();
    const std::string& log = daemon.process().stderr_text();
    size_t count = 0;
    for (size_t at = log.find("Received AUTH from hans");
         at != std::string::npos;
         at = log.find("Received AUTH from hans", at + 1)) {
      ++count;
    }
    return count;
  };
  const size_t logins_before = hans_logins();
  ASSERT_GE(logins_before, 2u);  // LOGIN and LOGIN_FINISH

  {
    std::ofstream credentials(daemon.folder() + "/credentials.txt",
                              std::ios::trunc);
    credentials << "hans hanspass\n";
  }
  daemon.process().Signal(SIGHUP);
  std::optional<std::string> reloaded =
      daemon.process().ReadStderrUntil("SIGHUP: reloaded", absl::Seconds(10));
  ASSERT_TRUE(reloaded.has_value()) << daemon.process().stderr_text();

  // vader is gone from hans's lap at once (a few seconds at most).
  std::string lap;
  const absl::Time signalled = absl::Now();
  while (absl::Now() - signalled < absl::Seconds(5)) {
    lap = hans.Run("lap");
    if (lap == "No active peers\n") break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(lap, "No active peers\n");
  // hans's session went on: no new login of his reached the daemon.
  EXPECT_EQ(hans_logins(), logins_before);

  // vader's shell finds its session gone, and logging in again fails.
  const std::string vader_lap = vader.Run("lap");
  EXPECT_TRUE(absl::StartsWith(vader_lap, "Error: ")) << vader_lap;
  CommandResult one_shot =
      RunPeerctl(daemon, "vader", "vaderpass", {"lap"}, dir.path());
  EXPECT_EQ(one_shot.exit_code, 3) << one_shot.err;
  EXPECT_TRUE(absl::StrContains(one_shot.err, "login refused")) << one_shot.err;
}

// ---- Login limits, amplification, one daemon per port ----------------------

// Twenty wrong passwords for hans from 127.0.0.2 throttle 127.0.0.2 (for
// hans), and hans's right password from 127.0.0.3 logs in at once.
TEST(SecurityTest, WrongPasswordsFromOneAddressDoNotLockTheUserOut) {
  Daemon daemon;
  int wrong = 0;
  int throttled = 0;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::unique_ptr<MiniSession>> guess =
        MiniSession::Login(daemon.port(), "hans", "guess", "127.0.0.2");
    ASSERT_FALSE(guess.ok());
    const std::string why(guess.status().message());
    if (absl::StrContains(why, "wrong user name or password")) ++wrong;
    if (absl::StrContains(why, "too many failed logins")) ++throttled;
  }
  EXPECT_EQ(wrong, 10);  // the bucket of failures: 10, then 1 per 6 s
  EXPECT_EQ(throttled, 10);
  // The guesser's address stays throttled, even with the right password.
  absl::StatusOr<std::unique_ptr<MiniSession>> own =
      MiniSession::Login(daemon.port(), "hans", "hanspass", "127.0.0.2");
  ASSERT_FALSE(own.ok());
  EXPECT_TRUE(absl::StrContains(own.status().message(), "too many failed"))
      << own.status();
  // hans elsewhere: at once, on the first try.
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<MiniSession>> hans =
      MiniSession::Login(daemon.port(), "hans", "hanspass", "127.0.0.3");
  ASSERT_TRUE(hans.ok()) << hans.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  absl::StatusOr<DecodedReply> heartbeat =
      (*hans)->Call(MessageType::kHeartbeat);
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_EQ(heartbeat->code, ResultCode::kOk);
}

// Every kind of reply a sender gets without a session is at most the size
// of its datagram, on the wire.
TEST(SecurityTest, NoUnauthenticatedReplyIsLargerThanItsRequest) {
  Daemon daemon;
  UdpSocket socket;
  uint32_t request_id = 100;
  auto header = [&](uint8_t type, uint64_t session) {
    Header h;
    h.type = type;
    h.request_id = ++request_id;
    h.session_id = session;
    return h;
  };
  auto login = [&](const std::string& client_first, bool padded) {
    return BuildDatagram(
        header(static_cast<uint8_t>(MessageType::kLogin), 0),
        [&](const Header& h, std::span<uint8_t> out) {
          return protocol::EncodeLoginRequest(
              h,
              protocol::LoginRequest{
                  client_first,
                  padded ? protocol::LoginPaddingFor(client_first) : 0},
              out);
        });
  };
  auto padded_empty = [&](uint8_t type, uint64_t session, size_t padding) {
    return BuildDatagram(header(type, session),
                         [&](const Header& h, std::span<uint8_t> out) {
                           return protocol::EncodeEmptyRequest(h, out, padding);
                         });
  };
  std::vector<std::pair<std::string, std::string>> cases = {
      {"LOGIN (the challenge)",
       login("n,,n=hans,r=abcdefghijklmnopqrstuvwx", true)},
      {"unpadded LOGIN", login("n,,n=hans,r=abcdefghijklmnopqrstuvwx", false)},
      {"malformed LOGIN", login("nonsense", true)},
      {"LOGIN with a bad user name", login("n,,n=a/b,r=abcdefgh", true)},
      {"padded HEARTBEAT, no session",
       padded_empty(static_cast<uint8_t>(MessageType::kHeartbeat), 99,
                    protocol::kEmptyRequestPaddingBytes)},
      {"bare HEARTBEAT, no session",
       padded_empty(static_cast<uint8_t>(MessageType::kHeartbeat), 99, 0)},
      {"GET, no session",
       BuildDatagram(header(static_cast<uint8_t>(MessageType::kGet), 99),
                     NameEncoder("x"))},
      {"unknown type", padded_empty(0x7e, 0, 30)},
      {"LOGIN_FINISH, garbage",
       padded_empty(static_cast<uint8_t>(MessageType::kLoginFinish), 0, 60)},
      {"PING",
       BuildDatagram(header(static_cast<uint8_t>(MessageType::kPing), 0),
                     [](const Header& h, std::span<uint8_t> out) {
                       return protocol::EncodePingRequest(h, {}, out);
                     })},
  };
  std::string other_version = padded_empty(0x02, 0, 30);
  other_version[protocol::kVersionOffset] = 9;
  cases.emplace_back("another version", other_version);
  // A LOGIN_FINISH with a wrong proof, as peerctl's library sends it.
  {
    absl::StatusOr<std::unique_ptr<MiniSession>> wrong =
        MiniSession::Login(daemon.port(), "vader", "nope");
    ASSERT_FALSE(wrong.ok());
  }
  int answered = 0;
  for (const auto& [what, request] : cases) {
    ASSERT_FALSE(request.empty()) << what;
    ASSERT_TRUE(socket.SendTo(daemon.port(), request)) << what;
    std::optional<std::string> reply = socket.Receive(absl::Milliseconds(500));
    if (!reply.has_value()) continue;  // dropped: fine
    ++answered;
    EXPECT_LE(reply->size(), request.size())
        << what << ": " << reply->size() << " bytes for " << request.size();
  }
  EXPECT_GE(answered, 8);
  // And the login that pads works end to end.
  absl::StatusOr<std::unique_ptr<MiniSession>> hans =
      MiniSession::Login(daemon.port(), "hans", "hanspass");
  ASSERT_TRUE(hans.ok()) << hans.status();
}

TEST(SecurityTest, SighupEndsTheSessionOfAUserWhosePasswordChanged) {
  Daemon daemon("hans hanspass\nvader vaderpass\n");
  TempDir dir;
  Shell hans(daemon, "hans", "hanspass", dir.path());
  Shell vader(daemon, "vader", "vaderpass", dir.path());
  ASSERT_TRUE(hans.logged_in() && vader.logged_in());
  {
    std::ofstream credentials(daemon.folder() + "/credentials.txt",
                              std::ios::trunc);
    credentials << "hans newpass\nvader vaderpass\n";
  }
  daemon.process().Signal(SIGHUP);
  std::optional<std::string> reloaded =
      daemon.process().ReadStderrUntil("SIGHUP: reloaded", absl::Seconds(10));
  ASSERT_TRUE(reloaded.has_value()) << daemon.process().stderr_text();
  EXPECT_TRUE(absl::StrContains(
      *reloaded, "ended the session of hans: the user's password changed"))
      << *reloaded;
  EXPECT_FALSE(absl::StrContains(*reloaded, "session of vader")) << *reloaded;
  // hans's old session is gone: his shell's next command fails (its
  // re-login with the old password is refused).
  const std::string lap = hans.Run("lap");
  EXPECT_TRUE(absl::StartsWith(lap, "Error: ")) << lap;
  // vader's goes on, and no longer sees hans.
  EXPECT_EQ(vader.Run("lap"), "No active peers\n");
  // The new password logs in.
  Shell again(daemon, "hans", "newpass", dir.path());
  EXPECT_TRUE(again.logged_in());
  EXPECT_EQ(again.Run("lap"), "vader\n");
}

// A second daemon on a port that one holds is refused at start, naming the
// holder, and the first goes on serving.
TEST(SecurityTest, ASecondDaemonOnTheSamePortIsRefused) {
  Daemon first;
  ASSERT_EQ(first.Stop(), 0);
  first.Restart();  // now on a fixed port: --port=N takes the lock
  const uint16_t port = first.port();
  TempDir dir;
  dir.WriteFile("credentials.txt", "hans hanspass\n");
  Process::Options options;
  options.argv = {PCFS_DAEMON_PATH, absl::StrCat("--port=", port),
                  "--bind=127.0.0.1"};
  options.cwd = dir.path();
  CommandResult second = RunToCompletion(options, absl::Seconds(20));
  EXPECT_NE(second.exit_code, 0);
  const std::string expected =
      absl::StrCat("port ", port, "/udp is in use by peerconnectd, pid ",
                   first.process().pid());
  EXPECT_TRUE(absl::StrContains(second.err, expected)) << second.err;
  EXPECT_FALSE(absl::StrContains(second.err, "listening")) << second.err;
  // The first daemon still serves.
  CommandResult lap =
      RunPeerctl(first, "hans", "hanspass", {"lap"}, dir.path());
  EXPECT_EQ(lap.exit_code, 0) << lap.err;
  EXPECT_EQ(first.Stop(), 0);
}

// A port held by another program (no SO_REUSEPORT) is refused with a
// message that says so.
TEST(SecurityTest, APortHeldByAnotherProgramIsRefusedClearly) {
  UdpSocket holder;
  TempDir dir;
  dir.WriteFile("credentials.txt", "hans hanspass\n");
  Process::Options options;
  options.argv = {PCFS_DAEMON_PATH, absl::StrCat("--port=", holder.port()),
                  "--bind=127.0.0.1"};
  options.cwd = dir.path();
  CommandResult daemon = RunToCompletion(options, absl::Seconds(20));
  EXPECT_NE(daemon.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(
      daemon.err, absl::StrCat("port ", holder.port(),
                               "/udp is in use by another program")))
      << daemon.err;
}

}  // namespace
}  // namespace pcfs::testing
