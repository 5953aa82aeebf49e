// Sealed control datagrams (core/auth/datagram_auth.h) as an observer on the
// path sees them: real peerctl processes (a shell, one-shot commands) talk
// to a real daemon through a UdpRelay that records every datagram. After
// login no datagram carries a published file name, a search pattern or a
// result name in the clear, and everything still works through the relay.
// Also: a client of another protocol version gets a clear error both ways.
#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/auth/datagram_auth.h"
#include "core/proto/protocol.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace pcfs::testing {
namespace {

using protocol::MessageType;
using protocol::ResultCode;

std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The names are long and unusual, so that no other byte string on the wire
// (a nonce, a key, a ticket) contains one by chance.
constexpr char kPublished[] = "quarterly-report-zanzibar.pdf";
constexpr char kPattern[] = "report-zanz";
constexpr char kOtherPublished[] = "holiday-photos-zanzibar.tar";

TEST(SealingTest, NoNameCrossesTheWireInTheClearAndEverythingWorks) {
  Daemon daemon;
  UdpRelay relay(daemon.port());
  TempDir hans_dir;
  TempDir vader_dir;
  hans_dir.WriteFile(kPublished, "the figures");
  hans_dir.WriteFile(kOtherPublished, "the photos");
  Shell hans(relay.address(), "hans", "hanspass", hans_dir.path());
  ASSERT_TRUE(hans.logged_in());
  EXPECT_EQ(hans.Run(absl::StrCat("pub ", kPublished)), "");
  EXPECT_EQ(hans.Run(absl::StrCat("pub ", kOtherPublished)), "");

  auto vader = [&](const std::vector<std::string>& args) {
    return RunToCompletion(PeerctlOptions(relay.address(), "vader", "vaderpass",
                                          args, vader_dir.path()),
                           absl::Seconds(30));
  };
  const CommandResult search = vader({"sch", kPattern});
  EXPECT_EQ(search.exit_code, 0) << search.err;
  EXPECT_EQ(search.out, absl::StrCat(kPublished, "\n"));
  const CommandResult get = vader({"get", kPublished});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(ReadFileOrEmpty(absl::StrCat(vader_dir.path(), "/", kPublished)),
            "the figures");
  const CommandResult lap = vader({"lap"});
  EXPECT_EQ(lap.exit_code, 0) << lap.err;
  EXPECT_EQ(lap.out, "hans\n");
  EXPECT_EQ(hans.Run("lpf"),
            absl::StrCat(kOtherPublished, "\n", kPublished, "\n"));
  EXPECT_EQ(hans.Exit().exit_code, 0);

  const std::vector<UdpRelay::Datagram> recorded = relay.Stop();
  std::map<std::string, int> seen;  // "TYPE request" / "TYPE reply": count
  for (const UdpRelay::Datagram& d : recorded) {
    // No name or pattern anywhere, login included (it carries none).
    for (const char* secret : {kPublished, kPattern, kOtherPublished}) {
      EXPECT_FALSE(absl::StrContains(d.bytes, secret))
          << "\"" << secret << "\" in the clear in a datagram of "
          << d.bytes.size() << " bytes";
    }
    ASSERT_GE(d.bytes.size(), protocol::kHeaderSize);
    const uint8_t type = static_cast<uint8_t>(d.bytes[protocol::kTypeOffset]);
    const bool reply = d.direction == UdpRelay::Direction::kToClient;
    seen[absl::StrCat(protocol::MessageTypeName(type),
                      reply ? " reply" : " request")]++;
    EXPECT_EQ(static_cast<uint8_t>(d.bytes[protocol::kVersionOffset]),
              protocol::kVersion);
    const bool login = type == static_cast<uint8_t>(MessageType::kLogin) ||
                       type == static_cast<uint8_t>(MessageType::kLoginFinish);
    // Every session datagram, both ways, is sealed (a non-zero tag);
    // the login exchange is not.
    EXPECT_EQ(IsUnsealed(AsBytes(d.bytes)), login)
        << protocol::MessageTypeName(type) << (reply ? " reply" : " request");
  }
  // The commands above went through the relay (so the check saw them).
  for (const char* kind :
       {"PUB request", "PUB reply", "SCH request", "SCH reply", "GET request",
        "GET reply", "LPF reply", "LAP reply", "LOGOUT request"}) {
    EXPECT_GT(seen[kind], 0) << kind << " not seen on the wire";
  }
}

// An old client (protocol version 1: MACs, bodies in the clear; version 2:
// a GET reply with one holder) gets an answer it can read, in its own
// version: the code and both versions.
class OldClientTest : public ::testing::TestWithParam<uint8_t> {};

TEST_P(OldClientTest, GetsAClearError) {
  const uint8_t old_version = GetParam();
  Daemon daemon;
  UdpSocket old_client;
  protocol::Header header;
  header.type = static_cast<uint8_t>(MessageType::kLogin);
  header.request_id = 77;
  std::string login(protocol::kMaxDatagramSize, '\0');
  const std::string client_first = "n,,n=hans,r=0123456789abcdef";
  login.resize(protocol::EncodeLoginRequest(
      header,
      protocol::LoginRequest{client_first,
                             protocol::LoginPaddingFor(client_first)},
      std::span(reinterpret_cast<uint8_t*>(login.data()), login.size())));
  ASSERT_GT(login.size(), protocol::kHeaderSize);
  login[protocol::kVersionOffset] = static_cast<char>(old_version);
  ASSERT_TRUE(old_client.SendTo(daemon.port(), login));
  const std::optional<std::string> reply = old_client.Receive(absl::Seconds(5));
  ASSERT_TRUE(reply.has_value()) << "silence instead of an error";
  ASSERT_GT(reply->size(), protocol::kHeaderSize + 3);
  EXPECT_EQ(static_cast<uint8_t>((*reply)[protocol::kVersionOffset]),
            old_version);
  EXPECT_EQ(static_cast<uint8_t>((*reply)[protocol::kHeaderSize]),
            static_cast<uint8_t>(ResultCode::kUnsupportedVersion));
  EXPECT_TRUE(absl::StrContains(
      *reply, absl::StrCat("protocol version ", old_version,
                           " is not supported; this daemon speaks ",
                           protocol::kVersion)))
      << reply->substr(protocol::kHeaderSize + 3);
}

INSTANTIATE_TEST_SUITE_P(Versions1And2, OldClientTest,
                         ::testing::Values(uint8_t{1}, uint8_t{2}));

// peerctl against a daemon of another version (a relay answers its LOGIN
// as an old daemon does): a clear error, soon, not a timeout.
TEST(SealingTest, PeerctlAgainstAnOldDaemonSaysSo) {
  Daemon daemon;
  UdpRelay relay(daemon.port(), [](UdpRelay::Direction direction, uint64_t,
                                   const std::string& datagram) {
    if (direction != UdpRelay::Direction::kToDaemon) {
      return UdpRelay::Verdict::Forward();
    }
    absl::StatusOr<protocol::Message> request =
        protocol::ParseDatagram(AsBytes(datagram));
    if (!request.ok()) return UdpRelay::Verdict::Drop();
    std::string answer(protocol::kMaxDatagramSize, '\0');
    answer.resize(protocol::EncodeStatusReply(
        request->header, ResultCode::kUnsupportedVersion,
        absl::StrCat("protocol version ", protocol::kVersion,
                     " is not supported; this daemon speaks 1"),
        std::span(reinterpret_cast<uint8_t*>(answer.data()), answer.size())));
    return UdpRelay::Verdict::Answer(answer);
  });
  TempDir dir;
  const absl::Time start = absl::Now();
  const CommandResult lap = RunToCompletion(
      PeerctlOptions(relay.address(), "hans", "hanspass", {"lap"}, dir.path()),
      absl::Seconds(30));
  EXPECT_NE(lap.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(lap.err, "this daemon speaks 1")) << lap.err;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "it waited for nothing";
}

}  // namespace
}  // namespace pcfs::testing
