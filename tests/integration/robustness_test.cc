// The daemon under hostile or lossy conditions: garbage datagrams, restarts,
// and a network that drops datagrams (a relay in the test).
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/proto/protocol.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

using protocol::MessageType;

// A datagram of `size` random bytes.
std::string RandomBytes(std::mt19937& random, size_t size) {
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

// A header with random request and session ids, for `type`.
protocol::Header RandomHeader(std::mt19937& random, uint8_t type) {
  protocol::Header header;
  header.type = type;
  header.request_id = static_cast<uint32_t>(random());
  header.session_id = (uint64_t{random()} << 32) | random();
  return header;
}

// A well-formed request of a random type (the login one empty, which the
// codec of any login scheme writes). The session is random: the noise tests
// the daemon's checks, not a session's handlers.
std::string ValidRequest(std::mt19937& random) {
  static constexpr MessageType kTypes[] = {MessageType::kLogin,
                                           MessageType::kHeartbeat,
                                           MessageType::kLogout,
                                           MessageType::kListActivePeers,
                                           MessageType::kListPublished,
                                           MessageType::kPublish,
                                           MessageType::kUnpublish,
                                           MessageType::kSearch,
                                           MessageType::kGet};
  const MessageType type = kTypes[random() % std::size(kTypes)];
  const protocol::Header header =
      RandomHeader(random, static_cast<uint8_t>(type));
  std::string buffer(protocol::kMaxDatagramSize, '\0');
  std::span<uint8_t> out(reinterpret_cast<uint8_t*>(buffer.data()),
                         buffer.size());
  const std::string name = absl::StrCat("file", random() % 100, ".bin");
  size_t size = 0;
  switch (type) {
    case MessageType::kListActivePeers:
    case MessageType::kListPublished:
    case MessageType::kSearch: {
      protocol::ListRequest list;
      list.snapshot = static_cast<uint32_t>(random() % 3);
      list.cursor = static_cast<uint32_t>(random() % 3);
      if (type == MessageType::kSearch) list.pattern = name;
      size = protocol::EncodeListRequest(header, list, out);
      break;
    }
    case MessageType::kPublish: {
      protocol::PublishRequest publish;
      publish.name = name;
      publish.size = random();
      size = protocol::EncodePublishRequest(header, publish, out);
      break;
    }
    case MessageType::kUnpublish:
    case MessageType::kGet:
      size =
          protocol::EncodeNameRequest(header, protocol::NameRequest{name}, out);
      break;
    case MessageType::kLogin:
      size =
          protocol::EncodeLoginRequest(header, protocol::LoginRequest{}, out);
      break;
    default:  // HEARTBEAT, LOGOUT
      size = protocol::EncodeEmptyRequest(header, out);
      break;
  }
  buffer.resize(size);
  return buffer;
}

// One hostile datagram; `kind` picks pure noise, a valid header with a
// random body, a truncated valid request, or a request of another version.
std::string HostileDatagram(std::mt19937& random, int kind) {
  switch (kind) {
    case 0:
      return RandomBytes(random, random() % 1501);
    case 1: {
      protocol::Header header = RandomHeader(
          random, static_cast<uint8_t>(
                      random() % 2 == 0 ? random() : 0x01 + random() % 0x15));
      header.flags = static_cast<uint16_t>(random() % 2 == 0 ? 0 : random());
      if (random() % 4 == 0) header.session_id = 0;
      std::string datagram(protocol::kHeaderSize, '\0');
      protocol::EncodeHeader(
          header,
          {reinterpret_cast<uint8_t*>(datagram.data()), datagram.size()});
      return datagram + RandomBytes(random, random() % 1200);
    }
    case 2: {
      const std::string request = ValidRequest(random);
      return request.substr(0, random() % request.size());
    }
    default: {
      std::string request = ValidRequest(random);
      // Any version but ours (the sum wraps past 255).
      request[protocol::kVersionOffset] =
          static_cast<char>(protocol::kVersion + 1 + random() % 255);
      return request;
    }
  }
}

// The rows of /proc/net/udp for the sockets bound to 127.0.0.1:`port`,
// split into their fields: "sl local_address rem_address st
// tx_queue:rx_queue tr tm->when retrnsmt uid timeout inode ref pointer
// drops".
std::vector<std::vector<std::string>> UdpRowsOf(uint16_t port) {
  const std::string table = ReadFileOrEmpty("/proc/net/udp");
  const std::string local = absl::StrFormat("0100007F:%04X", port);
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line : absl::StrSplit(table, '\n')) {
    std::vector<std::string> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() >= 13 && fields[1] == local) {
      rows.push_back(std::move(fields));
    }
  }
  return rows;
}

// The bytes waiting in the receive queues of the UDP sockets bound to
// 127.0.0.1:`port`; nullopt if there is none.
std::optional<uint64_t> ReceiveQueueOf(uint16_t port) {
  std::optional<uint64_t> total;
  for (const std::vector<std::string>& fields : UdpRowsOf(port)) {
    const size_t colon = fields[4].find(':');
    uint64_t queued = 0;
    if (colon == std::string::npos ||
        !absl::SimpleHexAtoi(absl::string_view(fields[4]).substr(colon + 1),
                             &queued)) {
      return std::nullopt;
    }
    total = total.value_or(0) + queued;
  }
  return total;
}

// Waits (at most 10 s) until the daemon's receive queue holds at most
// `bytes`, draining its log meanwhile; false on timeout.
bool WaitForQueueBelow(Daemon& daemon, uint64_t bytes) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (;;) {
    // The daemon logs what it receives: keep its stderr pipe from filling.
    daemon.process().DrainOutput();
    std::optional<uint64_t> queued = ReceiveQueueOf(daemon.port());
    if (queued.has_value() && *queued <= bytes) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Microseconds(200));
  }
}

TEST(RobustnessTest, DaemonSurvivesTenThousandHostileDatagrams) {
  Daemon daemon;
  UdpSocket attacker;
  std::mt19937 random(20240601);
  int sent = 0;
  for (int i = 0; i < 10000; ++i) {
    // Pace: never let the daemon's receive buffer (about 200 KiB) overflow,
    // so that every datagram reaches it.
    if (i % 25 == 0 && !WaitForQueueBelow(daemon, 64 << 10)) {
      ADD_FAILURE() << "the daemon stopped reading after " << i
                    << " datagrams; its log:\n"
                    << daemon.process().stderr_text().substr(0, 4000);
      break;
    }
    if (attacker.SendTo(daemon.port(), HostileDatagram(random, i % 4))) ++sent;
  }
  EXPECT_EQ(sent, 10000);
  EXPECT_TRUE(WaitForQueueBelow(daemon, 0)) << "the daemon stopped reading";
  EXPECT_FALSE(daemon.process().Wait(absl::ZeroDuration()).has_value())
      << daemon.process().stderr_text();

  TempDir dir;
  CommandResult lap = RunPeerctl(daemon, "hans", "hanspass", {"lap"},
                                 dir.path(), absl::Seconds(20));
  EXPECT_EQ(lap.exit_code, 0) << lap.err;
  EXPECT_EQ(lap.err, "");
}

TEST(RobustnessTest, PublicationsSurviveLogoutAndDaemonRestart) {
  Daemon daemon;
  TempDir dir;
  dir.WriteFile("song.mp3", "la la la\n");
  ASSERT_EQ(
      RunPeerctl(daemon, "hans", "hanspass", {"pub", "song.mp3"}, dir.path())
          .exit_code,
      0);
  EXPECT_EQ(daemon.Stop(), 0);
  daemon.Restart();
  CommandResult listed =
      RunPeerctl(daemon, "hans", "hanspass", {"lpf"}, dir.path());
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out, "song.mp3\n");

  ASSERT_EQ(
      RunPeerctl(daemon, "hans", "hanspass", {"unp", "song.mp3"}, dir.path())
          .exit_code,
      0);
  EXPECT_EQ(daemon.Stop(), 0);
  daemon.Restart();
  listed = RunPeerctl(daemon, "hans", "hanspass", {"lpf"}, dir.path());
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out, "");
}

TEST(RobustnessTest, CommandsSucceedWhenEveryThirdDatagramIsLost) {
  Daemon daemon;
  UdpRelay relay(daemon.port(),
                 [](UdpRelay::Direction, uint64_t number, const std::string&) {
                   return number % 3 == 0 ? UdpRelay::Verdict::Drop()
                                          : UdpRelay::Verdict::Forward();
                 });
  TempDir dir;
  dir.WriteFile("song.mp3", "la la la\n");
  auto run = [&](const std::vector<std::string>& args) {
    return RunToCompletion(
        PeerctlOptions(relay.address(), "hans", "hanspass", args, dir.path()),
        absl::Seconds(30));
  };
  CommandResult pub = run({"pub", "song.mp3"});
  EXPECT_EQ(pub.exit_code, 0) << pub.err;
  CommandResult lpf = run({"lpf"});
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
  EXPECT_EQ(lpf.out, "song.mp3\n");
  CommandResult unp = run({"unp", "song.mp3"});
  EXPECT_EQ(unp.exit_code, 0) << unp.err;
  lpf = run({"lpf"});
  EXPECT_EQ(lpf.exit_code, 0) << lpf.err;
  EXPECT_EQ(lpf.out, "");
  EXPECT_GE(relay.dropped(), 4u);
}

// The number after "retransmissions=" in the daemon's final counters.
std::optional<uint64_t> Retransmissions(const std::string& log) {
  const std::string key = "retransmissions=";
  const size_t at = log.rfind(key);
  if (at == std::string::npos) return std::nullopt;
  const size_t end = log.find_first_not_of("0123456789", at + key.size());
  uint64_t count = 0;
  if (!absl::SimpleAtoi(log.substr(at + key.size(), end - at - key.size()),
                        &count)) {
    return std::nullopt;
  }
  return count;
}

TEST(RobustnessTest, RetransmittedUnpIsAnsweredFromTheCacheNotAppliedTwice) {
  Daemon daemon;
  TempDir dir;
  dir.WriteFile("song.mp3", "la la la\n");
  ASSERT_EQ(
      RunPeerctl(daemon, "hans", "hanspass", {"pub", "song.mp3"}, dir.path())
          .exit_code,
      0);
  // Lose the daemon's first answer to UNP: peerctl must send it again.
  UdpRelay relay(daemon.port(),
                 [lost = false](UdpRelay::Direction direction, uint64_t,
                                const std::string& datagram) mutable {
                   if (lost || direction != UdpRelay::Direction::kToClient ||
                       datagram.size() <= protocol::kTypeOffset ||
                       static_cast<uint8_t>(datagram[protocol::kTypeOffset]) !=
                           static_cast<uint8_t>(MessageType::kUnpublish)) {
                     return UdpRelay::Verdict::Forward();
                   }
                   lost = true;
                   return UdpRelay::Verdict::Drop();
                 });
  CommandResult unp =
      RunToCompletion(PeerctlOptions(relay.address(), "hans", "hanspass",
                                     {"unp", "song.mp3"}, dir.path()),
                      absl::Seconds(30));
  EXPECT_EQ(relay.dropped(), 1u);
  // Applied twice, the repeat would say "you do not publish" (exit 4).
  EXPECT_EQ(unp.exit_code, 0) << unp.err;
  EXPECT_EQ(unp.err, "");
  CommandResult lpf =
      RunPeerctl(daemon, "hans", "hanspass", {"lpf"}, dir.path());
  EXPECT_EQ(lpf.out, "");
  EXPECT_EQ(daemon.Stop(), 0);
  EXPECT_GE(Retransmissions(daemon.process().stderr_text()).value_or(0), 1u)
      << daemon.process().stderr_text();
}

}  // namespace
}  // namespace pcfs::testing

namespace pcfs::testing {
namespace {

// With --verbose every request writes two log lines. Nobody reads the
// daemon's stderr here, so its pipe (64 KiB) fills after a few hundred
// requests; the daemon must go on answering (it logs through a queue and
// drops lines it cannot write) instead of blocking in write(2).
TEST(RobustnessTest, UnreadStderrDoesNotStallTheDaemon) {
  Daemon daemon;  // --verbose; the harness reads stderr only when asked
  UdpSocket socket;
  protocol::Header h;
  h.type = static_cast<uint8_t>(protocol::MessageType::kHeartbeat);
  h.session_id = 12345;  // unknown: answered with an unsealed error
  int answered = 0;
  for (int i = 0; i < 3000; ++i) {
    h.request_id = static_cast<uint32_t>(i + 1);
    std::string datagram(protocol::kMaxDatagramSize, '\0');
    // Padded as a client pads it: an unpadded one gets no error reply.
    datagram.resize(protocol::EncodeEmptyRequest(
        h,
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(datagram.data()),
                           datagram.size()),
        protocol::kEmptyRequestPaddingBytes));
    ASSERT_TRUE(socket.SendTo(daemon.port(), datagram));
    if (socket.Receive(absl::Seconds(2)).has_value()) ++answered;
    if (answered != i + 1) break;
  }
  EXPECT_EQ(answered, 3000);
}

// A stall (here: the daemon stopped) longer than the session timeout, with
// a heartbeat waiting on the socket from before the deadline: the daemon
// handles it when it runs again, before any expiry, and the session goes
// on. Handled after the deadline by the clock, it arrived before it.
TEST(RobustnessTest, AHeartbeatQueuedDuringAStallKeepsItsSession) {
  Daemon daemon("hans hanspass\nvader vaderpass\nyoda yodapass\n",
                {"--threads=1"});
  std::unique_ptr<ControlClient> hans =
      LoggedInClient(daemon, "hans", "hanspass");
  ASSERT_NE(hans, nullptr);
  const absl::Time heard = absl::Now();
  const SessionKey session = hans->session_key();
  daemon.process().Signal(SIGSTOP);
  absl::SleepFor(heard + absl::Seconds(2) - absl::Now());
  // Sent 2 s after the login, queued until the daemon runs again at 3.6 s
  // (its retransmissions queue behind it).
  absl::Status beat;
  std::thread heartbeat([&] { beat = hans->Heartbeat(); });
  absl::SleepFor(heard + absl::Milliseconds(3600) - absl::Now());
  daemon.process().Signal(SIGCONT);
  heartbeat.join();
  EXPECT_TRUE(beat.ok()) << beat;
  EXPECT_EQ(hans->session_key(), session)
      << "the session expired under its queued heartbeat";
}

// The same with two reactors, each with a socket of its own: a client's
// heartbeats come from another port than its login (its heartbeat socket),
// so the kernel may hand them to the other reactor's socket. The reactor
// that judges the session's expiry must not do so before the other has
// drained its socket. With eight clients, the chance that every one's
// heartbeats share their login's reactor is 1 in 256. The daemon's threads
// share one CPU, so that when it runs again the first reactor to run ticks
// before the other has run at all, as a busy machine may have it.
TEST(RobustnessTest, AHeartbeatQueuedOnAnotherReactorsSocketKeepsItsSession) {
  std::string credentials;
  for (int i = 0; i < 8; ++i) absl::StrAppend(&credentials, "u", i, " pw\n");
  Daemon daemon(credentials, {"--threads=2", "--io=epoll"});
  ASSERT_EQ(std::system(absl::StrCat("taskset -a -p -c 0 ",
                                     daemon.process().pid(), " >/dev/null")
                            .c_str()),
            0);
  std::vector<std::unique_ptr<ControlClient>> clients;
  std::vector<SessionKey> keys;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(LoggedInClient(daemon, absl::StrCat("u", i), "pw"));
    ASSERT_NE(clients.back(), nullptr);
    keys.push_back(clients.back()->session_key());
  }
  const absl::Time heard = absl::Now();
  daemon.process().Signal(SIGSTOP);
  absl::SleepFor(heard + absl::Seconds(2) - absl::Now());
  std::vector<absl::Status> beats(clients.size());
  std::vector<std::thread> heartbeats;
  for (size_t i = 0; i < clients.size(); ++i) {
    heartbeats.emplace_back([&, i] { beats[i] = clients[i]->Heartbeat(); });
  }
  absl::SleepFor(heard + absl::Milliseconds(3600) - absl::Now());
  daemon.process().Signal(SIGCONT);
  for (std::thread& t : heartbeats) t.join();
  for (size_t i = 0; i < clients.size(); ++i) {
    EXPECT_TRUE(beats[i].ok()) << "u" << i << ": " << beats[i];
    EXPECT_EQ(clients[i]->session_key(), keys[i])
        << "u" << i << "'s session expired under its queued heartbeat";
  }
}

// The kernel's count of datagrams dropped unread on the UDP sockets bound
// to 127.0.0.1:`port` (the last column of /proc/net/udp); -1 if there is
// none.
int64_t DropsOfUdpPort(uint16_t port) {
  int64_t total = -1;
  for (const std::vector<std::string>& fields : UdpRowsOf(port)) {
    int64_t drops = 0;
    if (!absl::SimpleAtoi(fields.back(), &drops)) return -1;
    total = std::max<int64_t>(total, 0) + drops;
  }
  return total;
}

// Overload: the daemon's receive buffer overflowed (here: it is stopped
// while a flood fills it), so the heartbeats sent meanwhile were dropped
// unread, and a session's 3 s of silence are the daemon's loss, not the
// peer's. The daemon sees the drops and gives each session silent since
// one more timeout: a peer whose next heartbeat gets through keeps its
// session, and one that really stopped goes after twice the timeout.
TEST(RobustnessTest, DatagramsTheDaemonDroppedDoNotExpireSessions) {
  Daemon daemon("hans hanspass\nvader vaderpass\nyoda yodapass\n",
                {"--threads=1"});  // one socket, which the flood fills
  std::unique_ptr<ControlClient> hans =
      LoggedInClient(daemon, "hans", "hanspass");
  std::unique_ptr<ControlClient> vader =
      LoggedInClient(daemon, "vader", "vaderpass");
  ASSERT_NE(hans, nullptr);
  ASSERT_NE(vader, nullptr);
  const absl::Time heard = absl::Now();  // both logins answered by now
  const SessionKey hans_session = hans->session_key();
  ASSERT_EQ(DropsOfUdpPort(daemon.port()), 0);

  daemon.process().Signal(SIGSTOP);
  UdpSocket flood;
  const std::string junk(1200, '\0');  // not a header: dropped unanswered
  int sent = 0;
  const absl::Time flood_end = absl::Now() + absl::Seconds(2);
  while (DropsOfUdpPort(daemon.port()) < 100 && sent < 200000 &&
         absl::Now() < flood_end) {
    for (int i = 0; i < 500; ++i) sent += flood.SendTo(daemon.port(), junk);
  }
  const int64_t drops = DropsOfUdpPort(daemon.port());
  ASSERT_GE(drops, 100) << "a flood of " << sent
                        << " datagrams did not overflow the stopped "
                           "daemon's receive buffer";
  // Past both sessions' deadlines (3 s after they were last heard).
  absl::SleepFor(heard + absl::Milliseconds(3600) - absl::Now());
  daemon.process().Signal(SIGCONT);
  // Its first tick drains the junk, finds the drops and judges the
  // sessions; then hans's next heartbeat (the retransmission of the one
  // lost) gets through.
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_TRUE(hans->Heartbeat().ok());
  EXPECT_EQ(hans->session_key(), hans_session)
      << "hans's session expired, and he had to log in again";
  absl::StatusOr<std::vector<std::string>> peers = hans->ListActivePeers();
  ASSERT_TRUE(peers.ok()) << peers.status();
  EXPECT_EQ(*peers, std::vector<std::string>{"vader"}) << "vader is held too";
  // vader sends nothing: gone after twice the timeout, with a tick to spare.
  absl::SleepFor(heard + absl::Milliseconds(6400) - absl::Now());
  EXPECT_TRUE(hans->Heartbeat().ok());
  peers = hans->ListActivePeers();
  ASSERT_TRUE(peers.ok()) << peers.status();
  EXPECT_TRUE(peers->empty()) << "vader stopped and is still listed";
  EXPECT_EQ(hans->session_key(), hans_session);
  EXPECT_TRUE(
      daemon.process()
          .ReadStderrUntil("overload: the kernel dropped", absl::Seconds(5))
          .has_value());
}

}  // namespace
}  // namespace pcfs::testing
