// Tests of core/proto/protocol.h: round trips, malformed input, paging, the
// no-allocation promise, and the test vectors that docs/PROTOCOL.md shows.
#include "core/proto/protocol.h"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <new>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "absl/base/config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/auth/ticket.h"
#include "core/base/names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rfc7677_example.h"

// Counts this thread's heap allocations, so a test can check that the codec
// makes none. The replacements serve the whole test binary; they are kept out
// of line so that GCC does not see free() meet a pointer from operator new.
// Not in ThreadSanitizer builds: clang links TSan's own operator new and
// delete into every binary, so a replacement would be defined twice. The
// counting tests skip there (the TSan stage runs only the threaded tests).
#ifndef ABSL_HAVE_THREAD_SANITIZER
#define PCFS_COUNTS_ALLOCATIONS
namespace {
thread_local size_t allocation_count = 0;
}  // namespace

__attribute__((noinline)) void* operator new(std::size_t size) {
  ++allocation_count;
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) std::abort();
  return p;
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
  std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#endif  // ABSL_HAVE_THREAD_SANITIZER

namespace pcfs::protocol {
namespace {

using ::testing::ElementsAre;
using Bytes = std::vector<uint8_t>;

constexpr uint64_t kSession = 0x0123456789abcdef;

// ---------------------------------------------------------------------------
// Helpers.

std::string StripSpaces(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c != ' ' && c != '\t') out.push_back(c);
  }
  return out;
}

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xF]);
  }
  return out;
}

Header RequestHeader(MessageType type, uint32_t request_id,
                     uint64_t session_id) {
  Header h;
  h.type = static_cast<uint8_t>(type);
  h.request_id = request_id;
  h.session_id = session_id;
  return h;
}

// Runs an encoder over a full-size buffer; returns the datagram it wrote.
Bytes Encode(const std::function<size_t(std::span<uint8_t>)>& encode) {
  std::array<uint8_t, kMaxDatagramSize> buffer{};
  size_t n = encode(buffer);
  return Bytes(buffer.begin(), buffer.begin() + n);
}

// The body of a datagram that must parse.
std::span<const uint8_t> BodyOf(const Bytes& datagram) {
  absl::StatusOr<Message> message = ParseDatagram(datagram);
  EXPECT_TRUE(message.ok()) << message.status();
  return message.ok() ? message->body : std::span<const uint8_t>();
}

// The payload (bytes after kOk) of a reply datagram.
std::span<const uint8_t> PayloadOf(const Bytes& datagram) {
  absl::StatusOr<ReplyStatus> status = DecodeReplyStatus(BodyOf(datagram));
  EXPECT_TRUE(status.ok()) << status.status();
  if (!status.ok()) return {};
  EXPECT_EQ(status->code, ResultCode::kOk);
  return status->payload;
}

Sha256Digest TestDigest() {
  Sha256Digest d;
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(i);
  return d;
}

// The SCRAM messages of RFC 7677's example exchange (user "user", password
// "pencil"). The codec does not look inside them; they make the login
// vectors realistic.
using rfc7677::kClientFinal;
using rfc7677::kClientFirst;
using rfc7677::kServerFinal;
using rfc7677::kServerFirst;

// Computed with Python's hmac and hashlib (the ticket) and the cryptography
// package's HKDF and AESGCM (the tag), independently of this code (the
// inputs are in docs/PROTOCOL.md, "Test vectors"):
// - the AES-128-GCM tag of HEARTBEAT-request-sealed, under the client-to-
//   daemon key derived from the session key of the RFC
//   exchange above (tests/unit/datagram_auth_test.cc checks SealDatagram
//   against it);
// - a ticket of core/auth/ticket.h for holder "bob", requester "user", file
//   "tune.mp3", expiry 1704067260000 ms, key the bytes 0x20 to 0x3f.
constexpr std::array<uint8_t, kMacSize> kSealedHeartbeatMac = {
    0x9d, 0x45, 0x99, 0x69, 0x1c, 0x84, 0x7a, 0xb4,
    0xd9, 0xc9, 0x29, 0x16, 0x17, 0x30, 0x40, 0x89};
constexpr absl::string_view kTicket =
    "AQAAAYzCUt5gA2JvYgR1c2Vy_NVeTKQqIq-euob1Kc-lbw";

// The inputs of the test vectors, also used by the round-trip tests.
LoginRequest SampleLoginRequest() { return {.client_first = kClientFirst}; }

LoginReply SampleLoginReply() { return {.server_first = kServerFirst}; }

// A TLS key pin: bytes 0x20, 0x21, ... 0x3f.
Sha256Digest TestKeyPin() {
  Sha256Digest pin;
  for (size_t i = 0; i < pin.size(); ++i)
    pin[i] = static_cast<uint8_t>(0x20 + i);
  return pin;
}

LoginFinishRequest SampleLoginFinishRequest() {
  return {.client_first = kClientFirst,
          .client_final = kClientFinal,
          .tcp_port = 50001,
          .key_pin = TestKeyPin()};
}

LoginFinishReply SampleLoginFinishReply() {
  return {.server_final = kServerFinal,
          .session_id = kSession,
          .heartbeat_interval_ms = 2000,
          .session_timeout_ms = 3000};
}

PublishRequest SamplePublishRequest() {
  return {.name = "song.mp3", .size = 4194304, .root = TestDigest()};
}

// Holder bob at 127.0.0.1 port 50002, with the ticket above and a pin.
GetHolder SampleBob() {
  GetHolder bob;
  bob.user = "bob";
  bob.address.family = 4;
  bob.address.ip[0] = 127;
  bob.address.ip[3] = 1;
  bob.address.port = 50002;
  bob.ticket = kTicket;
  bob.key_pin = TestKeyPin();
  return bob;
}

// Holder carol at ::1 port 50003, with an empty ticket, which the codec
// allows (the daemon always sends one), and a zero pin (a holder serving
// plain HTTP).
GetHolder SampleCarol() {
  GetHolder carol;
  carol.user = "carol";
  carol.address.family = 6;
  carol.address.ip[15] = 1;
  carol.address.port = 50003;
  return carol;
}

GetReply SampleGetReply() {
  GetReply reply;
  reply.size = 4194304;
  reply.root = TestDigest();
  reply.holders[0] = SampleBob();
  reply.holder_count = 1;
  return reply;
}

GetReply SampleGetReplyTwoHolders() {
  GetReply reply = SampleGetReply();
  reply.holders[1] = SampleCarol();
  reply.holder_count = 2;
  return reply;
}

size_t EncodeListPage(const Header& request, uint32_t snapshot, uint32_t total,
                      const std::vector<std::string>& names,
                      uint32_t next_cursor, std::span<uint8_t> out) {
  ListReplyWriter writer(request, snapshot, total, out);
  for (const std::string& name : names) {
    if (!writer.Add(name)) return 0;
  }
  return writer.Finish(next_cursor);
}

// ---------------------------------------------------------------------------
// Test vectors. Each is also a line "vector NAME: HEX" in docs/PROTOCOL.md;
// spaces in the hex only separate fields.

struct TestVector {
  const char* name;
  const char* hex;
  std::function<size_t(std::span<uint8_t>)> encode;
};

std::vector<TestVector> TestVectors() {
  const Header login = RequestHeader(MessageType::kLogin, 1, 0);
  const Header finish = RequestHeader(MessageType::kLoginFinish, 2, 0);
  const Header heartbeat = RequestHeader(MessageType::kHeartbeat, 3, kSession);
  const Header lap = RequestHeader(MessageType::kListActivePeers, 4, kSession);
  const Header pub = RequestHeader(MessageType::kPublish, 5, kSession);
  const Header lpf = RequestHeader(MessageType::kListPublished, 6, kSession);
  const Header sch = RequestHeader(MessageType::kSearch, 7, kSession);
  const Header get = RequestHeader(MessageType::kGet, 8, kSession);
  const Header get_missing = RequestHeader(MessageType::kGet, 9, kSession);
  const Header unp = RequestHeader(MessageType::kUnpublish, 10, kSession);
  const Header logout = RequestHeader(MessageType::kLogout, 11, kSession);
  const Header ping = RequestHeader(MessageType::kPing, 12, 0);
  Header sealed_heartbeat = heartbeat;
  sealed_heartbeat.sequence = 1;
  sealed_heartbeat.mac = kSealedHeartbeatMac;
  return {
      {"PING-request",
       "5043 03 05 0000 0000 0000000c 0000000000000000 "
       "0000000000000000 00000000000000000000000000000000"
       " 0123456789abcdef 0000000000000000",
       [=](std::span<uint8_t> out) {
         return EncodePingRequest(ping, PingRequest{0x0123456789abcdefULL},
                                  out);
       }},
      {"PING-reply",
       "5043 03 05 0001 0000 0000000c 0000000000000000 "
       "0000000000000000 00000000000000000000000000000000"
       " 00 0123456789abcdef",
       [=](std::span<uint8_t> out) {
         return EncodePingReply(ping, 0x0123456789abcdefULL, out);
       }},
      {"LOGIN-request",
       "5043 03 01 0000 0000 00000001 0000000000000000 "
       "0000000000000000 00000000000000000000000000000000"
       " 0020 6e2c2c6e3d757365722c723d724f70724e476677456265525767624e456b714f",
       [=](std::span<uint8_t> out) {
         return EncodeLoginRequest(login, SampleLoginRequest(), out);
       }},
      {"LOGIN-reply",
       "5043 03 01 0001 0000 00000001 0000000000000000 "
       "0000000000000000 00000000000000000000000000000000"
       " 00 0056 723d724f70724e476677456265525767624e456b714f2568765944705755"
       "6132526154434166757846496c6a29684e6c46246b302c733d5732325a614a30534e"
       "5937736f457355456a623667513d3d2c693d34303936",
       [=](std::span<uint8_t> out) {
         return EncodeLoginReply(login, SampleLoginReply(), out);
       }},
      {"LOGIN_FINISH-request",
       "5043 03 04 0000 0000 00000002 0000000000000000 "
       "0000000000000000 00000000000000000000000000000000"
       " 0020 6e2c2c6e3d757365722c723d724f70724e476677456265525767624e456b714f"
       " 006a 633d626977732c723d724f70724e476677456265525767624e456b714f2568"
       "7659447057556132526154434166757846496c6a29684e6c46246b302c703d6448"
       "7a625a617057496b346a55684e2b5574653979746167397a6a664d486773716d6d"
       "697a37416e6456513d"
       " c351"
       " 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
       [=](std::span<uint8_t> out) {
         return EncodeLoginFinishRequest(finish, SampleLoginFinishRequest(),
                                         out);
       }},
      {"LOGIN_FINISH-reply",
       "5043 03 04 0001 0000 00000002 0000000000000000 "
       "0000000000000000 00000000000000000000000000000000"
       " 00 002e 763d36727269545242693233577052522f777475702b6d4d68555a556e2f"
       "6442356e4c544a52736a6c393547343d"
       " 0123456789abcdef 000007d0 00000bb8",
       [=](std::span<uint8_t> out) {
         return EncodeLoginFinishReply(finish, SampleLoginFinishReply(), out);
       }},
      {"HEARTBEAT-request",
       "5043 03 02 0000 0000 00000003 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000",
       [=](std::span<uint8_t> out) {
         return EncodeEmptyRequest(heartbeat, out);
       }},
      {"HEARTBEAT-request-sealed",
       "5043 03 02 0000 0000 00000003 0123456789abcdef "
       "0000000000000001 9d4599691c847ab4d9c9291617304089",
       [=](std::span<uint8_t> out) {
         return EncodeEmptyRequest(sealed_heartbeat, out);
       }},
      {"HEARTBEAT-reply",
       "5043 03 02 0001 0000 00000003 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00",
       [=](std::span<uint8_t> out) {
         return EncodeStatusReply(heartbeat, ResultCode::kOk, "", out);
       }},
      {"LAP-request",
       "5043 03 10 0000 0000 00000004 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00000000 00000000 0000",
       [=](std::span<uint8_t> out) {
         return EncodeListRequest(
             lap, {.snapshot = 0, .cursor = 0, .pattern = ""}, out);
       }},
      {"LAP-reply",
       "5043 03 10 0001 0000 00000004 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00 00000007 00000000 00000002 0002 0003 626f62 0005 6361726f6c",
       [=](std::span<uint8_t> out) {
         return EncodeListPage(lap, 7, 2, {"bob", "carol"}, 0, out);
       }},
      {"PUB-request",
       "5043 03 12 0000 0000 00000005 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 0008 736f6e672e6d7033 0000000000400000"
       " 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
       [=](std::span<uint8_t> out) {
         return EncodePublishRequest(pub, SamplePublishRequest(), out);
       }},
      {"PUB-reply",
       "5043 03 12 0001 0000 00000005 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00",
       [=](std::span<uint8_t> out) {
         return EncodeStatusReply(pub, ResultCode::kOk, "", out);
       }},
      {"LPF-request",
       "5043 03 11 0000 0000 00000006 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00000008 00000002 0000",
       [=](std::span<uint8_t> out) {
         return EncodeListRequest(
             lpf, {.snapshot = 8, .cursor = 2, .pattern = ""}, out);
       }},
      {"LPF-reply",
       "5043 03 11 0001 0000 00000006 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00 00000008 00000000 00000003 0001 0008 736f6e672e6d7033",
       [=](std::span<uint8_t> out) {
         return EncodeListPage(lpf, 8, 3, {"song.mp3"}, 0, out);
       }},
      {"SCH-request",
       "5043 03 14 0000 0000 00000007 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00000000 00000000 0003 6d7033",
       [=](std::span<uint8_t> out) {
         return EncodeListRequest(sch, {.pattern = "mp3"}, out);
       }},
      {"SCH-reply",
       "5043 03 14 0001 0000 00000007 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00 5a5a0003 0000002a ffffffff 0001 0008 74756e652e6d7033",
       [=](std::span<uint8_t> out) {
         return EncodeListPage(sch, 0x5a5a0003, kUnknownTotal, {"tune.mp3"}, 42,
                               out);
       }},
      {"GET-request",
       "5043 03 15 0000 0000 00000008 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 0008 74756e652e6d7033",
       [=](std::span<uint8_t> out) {
         return EncodeNameRequest(get, {.name = "tune.mp3"}, out);
       }},
      {"GET-reply",
       "5043 03 15 0001 0000 00000008 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00 0000000000400000"
       " 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
       " 01 0003 626f62 04 7f000001 c352"
       " 002e 4151414141597a435574356741324a7659675231633256795f4e5665544b51"
       "7149712d65756f62314b632d6c6277"
       " 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
       [=](std::span<uint8_t> out) {
         return EncodeGetReply(get, SampleGetReply(), out);
       }},
      {"GET-reply-two-holders",
       "5043 03 15 0001 0000 00000008 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00 0000000000400000"
       " 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
       " 02 0003 626f62 04 7f000001 c352"
       " 002e 4151414141597a435574356741324a7659675231633256795f4e5665544b51"
       "7149712d65756f62314b632d6c6277"
       " 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
       " 0005 6361726f6c 06 00000000000000000000000000000001 c353"
       " 0000 0000000000000000000000000000000000000000000000000000000000000000",
       [=](std::span<uint8_t> out) {
         return EncodeGetReply(get, SampleGetReplyTwoHolders(), out);
       }},
      {"GET-reply-not-found",
       "5043 03 15 0001 0000 00000009 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 06 000e 46696c65206e6f7420666f756e64",
       [=](std::span<uint8_t> out) {
         return EncodeStatusReply(get_missing, ResultCode::kNotFound,
                                  "File not found", out);
       }},
      {"UNP-request",
       "5043 03 13 0000 0000 0000000a 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 0008 736f6e672e6d7033",
       [=](std::span<uint8_t> out) {
         return EncodeNameRequest(unp, {.name = "song.mp3"}, out);
       }},
      {"UNP-reply",
       "5043 03 13 0001 0000 0000000a 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00",
       [=](std::span<uint8_t> out) {
         return EncodeStatusReply(unp, ResultCode::kOk, "", out);
       }},
      {"LOGOUT-request",
       "5043 03 03 0000 0000 0000000b 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000",
       [=](std::span<uint8_t> out) { return EncodeEmptyRequest(logout, out); }},
      {"LOGOUT-reply",
       "5043 03 03 0001 0000 0000000b 0123456789abcdef "
       "0000000000000000 00000000000000000000000000000000"
       " 00",
       [=](std::span<uint8_t> out) {
         return EncodeStatusReply(logout, ResultCode::kOk, "", out);
       }},
  };
}

// The "vector NAME: HEX" lines of docs/PROTOCOL.md, hex without spaces.
std::map<std::string, std::string> VectorsInProtocolDoc() {
  std::ifstream doc(PCFS_SOURCE_DIR "/docs/PROTOCOL.md");
  EXPECT_TRUE(doc.is_open()) << "cannot open docs/PROTOCOL.md";
  std::map<std::string, std::string> vectors;
  std::string line;
  while (std::getline(doc, line)) {
    if (!absl::StartsWith(line, "vector ")) continue;
    size_t colon = line.find(": ");
    if (colon == std::string::npos) continue;
    std::string name = line.substr(7, colon - 7);
    EXPECT_EQ(vectors.count(name), 0u) << "duplicate vector " << name;
    vectors[name] = StripSpaces(line.substr(colon + 2));
  }
  return vectors;
}

TEST(TestVectorTest, EncodersProduceEveryVectorByteForByte) {
  for (const TestVector& v : TestVectors()) {
    EXPECT_EQ(ToHex(Encode(v.encode)), StripSpaces(v.hex)) << v.name;
  }
}

TEST(TestVectorTest, ProtocolDocShowsEveryVectorAsTheEncoderWritesIt) {
  std::map<std::string, std::string> in_doc = VectorsInProtocolDoc();
  for (const TestVector& v : TestVectors()) {
    auto it = in_doc.find(v.name);
    if (it == in_doc.end()) {
      ADD_FAILURE() << "docs/PROTOCOL.md lacks \"vector " << v.name << ": \"";
      continue;
    }
    EXPECT_EQ(it->second, ToHex(Encode(v.encode)))
        << "docs/PROTOCOL.md is stale for vector " << v.name;
    in_doc.erase(it);
  }
  for (const auto& [name, hex] : in_doc) {
    ADD_FAILURE() << "docs/PROTOCOL.md shows vector " << name
                  << ", which no test checks";
  }
}

TEST(TestVectorTest, EveryVectorIsADatagramOfThisVersion) {
  for (const TestVector& v : TestVectors()) {
    Bytes datagram = Encode(v.encode);
    absl::StatusOr<Message> message = ParseDatagram(datagram);
    ASSERT_TRUE(message.ok()) << v.name << ": " << message.status();
    EXPECT_TRUE(IsKnownMessageType(message->header.type)) << v.name;
  }
}

// "LOGIN_FINISH-request" is a LOGIN_FINISH datagram, not a LOGIN one.
TEST(TestVectorTest, EveryVectorIsNamedAfterItsType) {
  for (const TestVector& v : TestVectors()) {
    Bytes datagram = Encode(v.encode);
    absl::StatusOr<Message> message = ParseDatagram(datagram);
    ASSERT_TRUE(message.ok()) << v.name << ": " << message.status();
    const absl::string_view name = v.name;
    EXPECT_EQ(name.substr(0, name.find('-')),
              MessageTypeName(message->header.type));
  }
}

// The sealed heartbeat is the plain one with the sequence number and the MAC
// filled in, and nothing else changed (bytes 20 to 43 are those two fields).
TEST(TestVectorTest, SealedHeartbeatDiffersOnlyInSequenceAndMac) {
  std::map<std::string, Bytes> vectors;
  for (const TestVector& v : TestVectors()) vectors[v.name] = Encode(v.encode);
  const Bytes& plain = vectors["HEARTBEAT-request"];
  const Bytes& sealed = vectors["HEARTBEAT-request-sealed"];
  ASSERT_EQ(sealed.size(), plain.size());
  ASSERT_EQ(sealed.size(), kHeaderSize);
  EXPECT_EQ(ToHex(std::span(sealed).first(20)),
            ToHex(std::span(plain).first(20)));
  EXPECT_EQ(ToHex(std::span(sealed).subspan(20)),
            "00000000000000019d4599691c847ab4d9c9291617304089");
}

// ---------------------------------------------------------------------------
// Names of types and codes.

TEST(MessageTypeNameTest, NamesEveryType) {
  EXPECT_EQ(MessageTypeName(0x01), "LOGIN");
  EXPECT_EQ(MessageTypeName(0x02), "HEARTBEAT");
  EXPECT_EQ(MessageTypeName(0x03), "LOGOUT");
  EXPECT_EQ(MessageTypeName(0x04), "LOGIN_FINISH");
  EXPECT_EQ(MessageTypeName(0x05), "PING");
  EXPECT_EQ(MessageTypeName(0x10), "LAP");
  EXPECT_EQ(MessageTypeName(0x11), "LPF");
  EXPECT_EQ(MessageTypeName(0x12), "PUB");
  EXPECT_EQ(MessageTypeName(0x13), "UNP");
  EXPECT_EQ(MessageTypeName(0x14), "SCH");
  EXPECT_EQ(MessageTypeName(0x15), "GET");
  EXPECT_EQ(MessageTypeName(0x16), "STAT");
}

TEST(MessageTypeNameTest, NamesAnUnknownTypeByItsValue) {
  EXPECT_EQ(MessageTypeName(0x7f), "UNKNOWN(0x7f)");
}

TEST(IsKnownMessageTypeTest, KnowsExactlyTheTwelveTypes) {
  std::vector<int> known;
  for (int t = 0; t < 256; ++t) {
    if (IsKnownMessageType(static_cast<uint8_t>(t))) known.push_back(t);
  }
  EXPECT_THAT(known, ElementsAre(0x01, 0x02, 0x03, 0x04, 0x05, 0x10, 0x11, 0x12,
                                 0x13, 0x14, 0x15, 0x16));
}

// ---------------------------------------------------------------------------
// PING.

TEST(PingTest, ReplyIsSmallerThanTheRequest) {
  const Header h = RequestHeader(MessageType::kPing, 1, 0);
  std::array<uint8_t, kMaxDatagramSize> request{};
  std::array<uint8_t, kMaxDatagramSize> reply{};
  const size_t request_size = EncodePingRequest(h, PingRequest{~0ULL}, request);
  const size_t reply_size = EncodePingReply(h, ~0ULL, reply);
  EXPECT_EQ(request_size, kHeaderSize + 16);
  EXPECT_EQ(reply_size, kHeaderSize + 9);
  EXPECT_LT(reply_size, request_size);
}

TEST(PingTest, DecodesTheTokenAndRefusesOtherBodies) {
  const Header h = RequestHeader(MessageType::kPing, 1, 0);
  std::array<uint8_t, kMaxDatagramSize> out{};
  const size_t n = EncodePingRequest(h, PingRequest{42}, out);
  absl::StatusOr<Message> m = ParseDatagram(std::span(out).first(n));
  ASSERT_TRUE(m.ok());
  absl::StatusOr<PingRequest> request = DecodePingRequest(m->body);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->token, 42u);
  // Short of its padding, with non-zero padding, or with a byte more.
  EXPECT_FALSE(DecodePingRequest(m->body.first(8)).ok());
  std::vector<uint8_t> body(m->body.begin(), m->body.end());
  body.back() = 1;
  EXPECT_FALSE(DecodePingRequest(body).ok());
  body.back() = 0;
  body.push_back(0);
  EXPECT_FALSE(DecodePingRequest(body).ok());
}

TEST(PingTest, ReplyTokenRoundTrips) {
  const Header h = RequestHeader(MessageType::kPing, 1, 0);
  std::array<uint8_t, kMaxDatagramSize> out{};
  const size_t n = EncodePingReply(h, 0xfeedULL, out);
  absl::StatusOr<Message> m = ParseDatagram(std::span(out).first(n));
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->header.is_response());
  absl::StatusOr<ReplyStatus> status = DecodeReplyStatus(m->body);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->code, ResultCode::kOk);
  absl::StatusOr<uint64_t> token = DecodePingReply(status->payload);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, 0xfeedULL);
  EXPECT_FALSE(DecodePingReply(status->payload.first(7)).ok());
}

TEST(ResultCodeNameTest, DescribesKnownAndUnknownCodes) {
  EXPECT_EQ(ResultCodeName(ResultCode::kNotFound), "not found");
  EXPECT_EQ(ResultCodeName(ResultCode::kCursorExpired),
            "list snapshot expired");
  EXPECT_EQ(ResultCodeName(static_cast<ResultCode>(77)), "unknown result code");
}

// ---------------------------------------------------------------------------
// Writer and Reader.

TEST(WriterTest, WritesIntegersBigEndianAndStringsWithALength) {
  std::array<uint8_t, 32> buffer{};
  Writer w(buffer);
  w.U8(0x01);
  w.U16(0x0203);
  w.U32(0x04050607);
  w.U64(0x08090a0b0c0d0e0f);
  w.Str("hi");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(ToHex(std::span(buffer).first(w.size())),
            "0102030405060708090a0b0c0d0e0f000268"
            "69");
}

TEST(WriterTest, IgnoresEveryWriteAfterOneDoesNotFit) {
  std::array<uint8_t, 3> buffer{};
  Writer w(buffer);
  w.U16(0xAAAA);
  w.U16(0xBBBB);  // does not fit
  w.U8(0xCC);     // would fit, but the writer has failed
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(w.size(), 2u);
  EXPECT_EQ(buffer[2], 0);
}

TEST(WriterTest, RefusesAStringLongerThan65535Bytes) {
  std::vector<uint8_t> buffer(70000);
  Writer w(buffer);
  w.Str(std::string(65536, 'x'));
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(w.size(), 0u);
}

TEST(WriterTest, PatchesAValueWrittenEarlier) {
  std::array<uint8_t, 8> buffer{};
  Writer w(buffer);
  w.U16(0);
  w.U32(0);
  w.PatchU16(0, 0x0102);
  w.PatchU32(2, 0x03040506);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(ToHex(std::span(buffer).first(w.size())), "010203040506");
}

TEST(ReaderTest, FailedReadLeavesOutputUntouchedAndStaysFailed) {
  const uint8_t input[] = {0x01, 0x02, 0x03};
  Reader r(input);
  uint32_t big = 42;
  EXPECT_FALSE(r.U32(&big));
  EXPECT_EQ(big, 42u);
  uint8_t small = 7;
  EXPECT_FALSE(r.U8(&small));  // would fit, but the reader has failed
  EXPECT_EQ(small, 7);
  EXPECT_FALSE(r.ok());
}

TEST(ReaderTest, RefusesAStringLongerThanTheRemainingBytes) {
  const uint8_t input[] = {0x00, 0x05, 'a', 'b', 'c', 'd'};
  Reader r(input);
  absl::string_view s = "untouched";
  EXPECT_FALSE(r.Str(&s));
  EXPECT_EQ(s, "untouched");
}

TEST(ReaderTest, StringViewsPointIntoTheInput) {
  const uint8_t input[] = {0x00, 0x02, 'o', 'k'};
  Reader r(input);
  absl::string_view s;
  ASSERT_TRUE(r.Str(&s));
  EXPECT_EQ(s, "ok");
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(s.data()), &input[2]);
  EXPECT_TRUE(r.at_end());
}

// ---------------------------------------------------------------------------
// Header and ParseDatagram.

Bytes HeartbeatDatagram() {
  return Encode([](std::span<uint8_t> out) {
    return EncodeEmptyRequest(
        RequestHeader(MessageType::kHeartbeat, 5, kSession), out);
  });
}

TEST(ParseDatagramTest, RoundTripsEveryHeaderField) {
  Header h;
  h.type = 0x14;
  h.flags = kFlagResponse;
  h.request_id = 0xdeadbeef;
  h.session_id = kSession;
  h.sequence = 0x1122334455667788;
  for (size_t i = 0; i < kMacSize; ++i)
    h.mac[i] = static_cast<uint8_t>(0xA0 + i);
  std::array<uint8_t, kHeaderSize + 3> datagram{};
  EncodeHeader(h, datagram);

  absl::StatusOr<Message> m = ParseDatagram(datagram);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.version, kVersion);
  EXPECT_EQ(m->header.type, 0x14);
  EXPECT_TRUE(m->header.is_response());
  EXPECT_EQ(m->header.request_id, 0xdeadbeef);
  EXPECT_EQ(m->header.session_id, kSession);
  EXPECT_EQ(m->header.sequence, 0x1122334455667788u);
  EXPECT_EQ(m->header.mac, h.mac);
  EXPECT_EQ(m->body.data(), datagram.data() + kHeaderSize);
  EXPECT_EQ(m->body.size(), 3u);
}

TEST(ParseDatagramTest, RejectsEveryLengthShorterThanTheHeader) {
  Bytes datagram = HeartbeatDatagram();
  ASSERT_EQ(datagram.size(), kHeaderSize);
  for (size_t n = 0; n < kHeaderSize; ++n) {
    EXPECT_EQ(ParseDatagram(std::span(datagram).first(n)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << n << " bytes";
  }
}

TEST(ParseDatagramTest, AcceptsTheLargestDatagramAndRejectsOneByteMore) {
  Bytes datagram = HeartbeatDatagram();
  datagram.resize(kMaxDatagramSize);
  EXPECT_TRUE(ParseDatagram(datagram).ok());
  datagram.push_back(0);
  EXPECT_EQ(ParseDatagram(datagram).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseDatagramTest, RejectsBadMagic) {
  for (size_t i : {0, 1}) {
    Bytes datagram = HeartbeatDatagram();
    datagram[i] ^= 0x20;  // "pC", "Pc"
    EXPECT_EQ(ParseDatagram(datagram).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "byte " << i;
  }
}

TEST(ParseDatagramTest, ReportsAnotherVersionAsFailedPrecondition) {
  for (uint8_t version : {0, 1, 2, 4, 255}) {
    Bytes datagram = HeartbeatDatagram();
    datagram[kVersionOffset] = version;
    EXPECT_EQ(ParseDatagram(datagram).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << "version " << int{version};
  }
}

TEST(ParseDatagramTest, RejectsEveryNonZeroReservedBit) {
  for (size_t byte : {kReservedOffset, kReservedOffset + 1}) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes datagram = HeartbeatDatagram();
      datagram[byte] = static_cast<uint8_t>(1 << bit);
      EXPECT_EQ(ParseDatagram(datagram).status().code(),
                absl::StatusCode::kInvalidArgument)
          << "byte " << byte << " bit " << bit;
    }
  }
}

TEST(ParseDatagramTest, PassesAnUnknownTypeForTheCallerToReport) {
  Bytes datagram = HeartbeatDatagram();
  datagram[kTypeOffset] = 0x7f;
  absl::StatusOr<Message> m = ParseDatagram(datagram);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.type, 0x7f);
  EXPECT_FALSE(IsKnownMessageType(m->header.type));
}

// ---------------------------------------------------------------------------
// Round trips.

TEST(LoginRequestTest, RoundTrips) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeLoginRequest(RequestHeader(MessageType::kLogin, 1, 0),
                              SampleLoginRequest(), out);
  });
  absl::StatusOr<LoginRequest> r = DecodeLoginRequest(BodyOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->client_first, kClientFirst);
}

// The longest client-first-message fills the datagram: the body is its
// 2-byte length and the text.
TEST(LoginRequestTest, CarriesTheLongestClientFirstThatFits) {
  const std::string client_first(kMaxBodySize - 2, 'c');
  Bytes datagram = Encode([&](std::span<uint8_t> out) {
    return EncodeLoginRequest(RequestHeader(MessageType::kLogin, 1, 0),
                              {.client_first = client_first}, out);
  });
  ASSERT_EQ(datagram.size(), kMaxDatagramSize);
  absl::StatusOr<LoginRequest> r = DecodeLoginRequest(BodyOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->client_first, client_first);
}

TEST(LoginRequestTest, RefusesAClientFirstOneByteTooLong) {
  const std::string client_first(kMaxBodySize - 1, 'c');
  std::array<uint8_t, 2 * kMaxDatagramSize> out{};
  EXPECT_EQ(EncodeLoginRequest(RequestHeader(MessageType::kLogin, 1, 0),
                               {.client_first = client_first}, out),
            0u);
}

TEST(LoginFinishRequestTest, RoundTrips) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeLoginFinishRequest(
        RequestHeader(MessageType::kLoginFinish, 2, 0),
        SampleLoginFinishRequest(), out);
  });
  absl::StatusOr<LoginFinishRequest> r =
      DecodeLoginFinishRequest(BodyOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->client_first, kClientFirst);
  EXPECT_EQ(r->client_final, kClientFinal);
  EXPECT_EQ(r->tcp_port, 50001);
  EXPECT_EQ(r->key_pin, TestKeyPin());
}

// A peerctl older than key pins ends its LOGIN_FINISH after the port: the
// decoder says so (FailedPrecondition; the daemon answers
// kUnsupportedVersion), rather than calling it truncated.
TEST(LoginFinishRequestTest, WithoutAKeyPinIsFromAnOlderPeerctl) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeLoginFinishRequest(
        RequestHeader(MessageType::kLoginFinish, 2, 0),
        SampleLoginFinishRequest(), out);
  });
  std::span<const uint8_t> body = BodyOf(datagram);
  absl::StatusOr<LoginFinishRequest> old =
      DecodeLoginFinishRequest(body.first(body.size() - kSha256Size));
  EXPECT_TRUE(absl::IsFailedPrecondition(old.status())) << old.status();
  EXPECT_TRUE(absl::StrContains(old.status().message(), "upgrade peerctl"));
  // A pin cut short is merely truncated.
  absl::StatusOr<LoginFinishRequest> cut =
      DecodeLoginFinishRequest(body.first(body.size() - 1));
  EXPECT_TRUE(absl::IsInvalidArgument(cut.status())) << cut.status();
}

// Two strings, the port and the pin fill the datagram: 2 + 2 + 2 + 32 bytes
// besides the text of the two messages.
TEST(LoginFinishRequestTest, CarriesTheLongestClientFinalThatFits) {
  const std::string client_final(kMaxBodySize - 38 - kClientFirst.size(), 'f');
  Bytes datagram = Encode([&](std::span<uint8_t> out) {
    return EncodeLoginFinishRequest(
        RequestHeader(MessageType::kLoginFinish, 2, 0),
        {.client_first = kClientFirst,
         .client_final = client_final,
         .tcp_port = 65535},
        out);
  });
  ASSERT_EQ(datagram.size(), kMaxDatagramSize);
  absl::StatusOr<LoginFinishRequest> r =
      DecodeLoginFinishRequest(BodyOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->client_final, client_final);
  EXPECT_EQ(r->tcp_port, 65535);
}

TEST(LoginFinishRequestTest, RefusesAClientFinalOneByteTooLong) {
  const std::string client_final(kMaxBodySize - 37 - kClientFirst.size(), 'f');
  std::array<uint8_t, 2 * kMaxDatagramSize> out{};
  EXPECT_EQ(
      EncodeLoginFinishRequest(
          RequestHeader(MessageType::kLoginFinish, 2, 0),
          {.client_first = kClientFirst, .client_final = client_final}, out),
      0u);
}

TEST(EmptyRequestTest, RoundTripsHeartbeatAndLogout) {
  for (MessageType type : {MessageType::kHeartbeat, MessageType::kLogout}) {
    Bytes datagram = Encode([&](std::span<uint8_t> out) {
      return EncodeEmptyRequest(RequestHeader(type, 9, kSession), out);
    });
    absl::StatusOr<Message> m = ParseDatagram(datagram);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->header.message_type(), type);
    EXPECT_FALSE(m->header.is_response());
    EXPECT_TRUE(DecodeEmptyRequest(m->body).ok());
  }
}

TEST(ListRequestTest, RoundTrips) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeListRequest(
        RequestHeader(MessageType::kSearch, 3, kSession),
        {.snapshot = 0xfedcba98, .cursor = 0x01020304, .pattern = "mp3"}, out);
  });
  absl::StatusOr<ListRequest> r = DecodeListRequest(BodyOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->snapshot, 0xfedcba98u);
  EXPECT_EQ(r->cursor, 0x01020304u);
  EXPECT_EQ(r->pattern, "mp3");
}

TEST(PublishRequestTest, RoundTrips) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodePublishRequest(
        RequestHeader(MessageType::kPublish, 4, kSession),
        {.name = "big.iso", .size = 0x0123456789abcdefu, .root = TestDigest()},
        out);
  });
  absl::StatusOr<PublishRequest> r = DecodePublishRequest(BodyOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->name, "big.iso");
  EXPECT_EQ(r->size, 0x0123456789abcdefu);
  EXPECT_EQ(r->root, TestDigest());
}

TEST(NameRequestTest, RoundTripsTheLongestFileName) {
  std::string name(255, 'n');
  Bytes datagram = Encode([&](std::span<uint8_t> out) {
    return EncodeNameRequest(RequestHeader(MessageType::kGet, 7, kSession),
                             {.name = name}, out);
  });
  absl::StatusOr<NameRequest> r = DecodeNameRequest(BodyOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->name, name);
}

TEST(StatusReplyTest, OkReplyIsTheCodeAlone) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeStatusReply(RequestHeader(MessageType::kPublish, 4, kSession),
                             ResultCode::kOk, "ignored", out);
  });
  EXPECT_EQ(datagram.size(), kHeaderSize + 1);
  absl::StatusOr<ReplyStatus> s = DecodeReplyStatus(BodyOf(datagram));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->code, ResultCode::kOk);
  EXPECT_TRUE(s->payload.empty());
}

TEST(StatusReplyTest, ErrorReplyRoundTripsCodeAndMessage) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeStatusReply(RequestHeader(MessageType::kLogin, 1, 0),
                             ResultCode::kAlreadyActive,
                             "alice is already logged in", out);
  });
  absl::StatusOr<ReplyStatus> s = DecodeReplyStatus(BodyOf(datagram));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->code, ResultCode::kAlreadyActive);
  EXPECT_EQ(s->message, "alice is already logged in");
}

TEST(StatusReplyTest, ReadsACodeNewerThanThisClientAsAnError) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeStatusReply(RequestHeader(MessageType::kGet, 1, kSession),
                             static_cast<ResultCode>(42), "from the future",
                             out);
  });
  absl::StatusOr<ReplyStatus> s = DecodeReplyStatus(BodyOf(datagram));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(static_cast<int>(s->code), 42);
  EXPECT_EQ(s->message, "from the future");
}

TEST(StatusReplyTest, TruncatesOnlyTheMessageToFitTheDatagram) {
  std::string message(3000, 'm');
  Bytes datagram = Encode([&](std::span<uint8_t> out) {
    return EncodeStatusReply(RequestHeader(MessageType::kGet, 1, kSession),
                             ResultCode::kInternal, message, out);
  });
  EXPECT_EQ(datagram.size(), kMaxDatagramSize);
  absl::StatusOr<ReplyStatus> s = DecodeReplyStatus(BodyOf(datagram));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->code, ResultCode::kInternal);
  EXPECT_EQ(s->message, std::string(kMaxDatagramSize - kHeaderSize - 3, 'm'));
}

TEST(StatusReplyTest, TruncatesBetweenUtf8Characters) {
  std::string message;
  for (int i = 0; i < 600; ++i) message += "\xc3\xa9";  // é, two bytes
  Bytes datagram = Encode([&](std::span<uint8_t> out) {
    return EncodeStatusReply(RequestHeader(MessageType::kGet, 1, kSession),
                             ResultCode::kInternal, message, out);
  });
  absl::StatusOr<ReplyStatus> s = DecodeReplyStatus(BodyOf(datagram));
  ASSERT_TRUE(s.ok()) << s.status();
  // 1153 bytes of room: the message stops after the 576th whole "é".
  EXPECT_EQ(s->message.size(), 1152u);
  EXPECT_EQ(s->message, absl::string_view(message).substr(0, 1152));
}

TEST(LoginReplyTest, RoundTrips) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeLoginReply(RequestHeader(MessageType::kLogin, 1, 0),
                            SampleLoginReply(), out);
  });
  absl::StatusOr<LoginReply> r = DecodeLoginReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->server_first, kServerFirst);
}

// The body is the result code, then the string: 3 bytes besides the text.
TEST(LoginReplyTest, CarriesTheLongestServerFirstThatFits) {
  const std::string server_first(kMaxBodySize - 3, 's');
  Bytes datagram = Encode([&](std::span<uint8_t> out) {
    return EncodeLoginReply(RequestHeader(MessageType::kLogin, 1, 0),
                            {.server_first = server_first}, out);
  });
  ASSERT_EQ(datagram.size(), kMaxDatagramSize);
  absl::StatusOr<LoginReply> r = DecodeLoginReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->server_first, server_first);
}

TEST(LoginReplyTest, RefusesAServerFirstOneByteTooLong) {
  const std::string server_first(kMaxBodySize - 2, 's');
  std::array<uint8_t, 2 * kMaxDatagramSize> out{};
  EXPECT_EQ(EncodeLoginReply(RequestHeader(MessageType::kLogin, 1, 0),
                             {.server_first = server_first}, out),
            0u);
}

TEST(LoginFinishReplyTest, RoundTrips) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeLoginFinishReply(
        RequestHeader(MessageType::kLoginFinish, 2, 0),
        SampleLoginFinishReply(), out);
  });
  absl::StatusOr<LoginFinishReply> r =
      DecodeLoginFinishReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->server_final, kServerFinal);
  EXPECT_EQ(r->session_id, kSession);
  EXPECT_EQ(r->heartbeat_interval_ms, 2000u);
  EXPECT_EQ(r->session_timeout_ms, 3000u);
}

// The code, the string's length, the session id and the two durations:
// 1 + 2 + 8 + 4 + 4 = 19 bytes besides the text.
TEST(LoginFinishReplyTest, CarriesTheLongestServerFinalThatFits) {
  const std::string server_final(kMaxBodySize - 19, 'v');
  Bytes datagram = Encode([&](std::span<uint8_t> out) {
    LoginFinishReply reply = SampleLoginFinishReply();
    reply.server_final = server_final;
    return EncodeLoginFinishReply(
        RequestHeader(MessageType::kLoginFinish, 2, 0), reply, out);
  });
  ASSERT_EQ(datagram.size(), kMaxDatagramSize);
  absl::StatusOr<LoginFinishReply> r =
      DecodeLoginFinishReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->server_final, server_final);
  EXPECT_EQ(r->session_timeout_ms, 3000u);
}

TEST(LoginFinishReplyTest, RefusesAServerFinalOneByteTooLong) {
  LoginFinishReply reply = SampleLoginFinishReply();
  const std::string server_final(kMaxBodySize - 18, 'v');
  reply.server_final = server_final;
  std::array<uint8_t, 2 * kMaxDatagramSize> out{};
  EXPECT_EQ(EncodeLoginFinishReply(
                RequestHeader(MessageType::kLoginFinish, 2, 0), reply, out),
            0u);
}

TEST(StatReplyTest, RoundTripsTheSizeAndRoot) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeStatReply(RequestHeader(MessageType::kStat, 7, kSession),
                           {4194304, TestDigest()}, out);
  });
  absl::StatusOr<StatReply> r = DecodeStatReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size, 4194304u);
  EXPECT_EQ(r->root, TestDigest());
  // Cut short or with a byte more, it is refused.
  const std::span<const uint8_t> payload = PayloadOf(datagram);
  EXPECT_FALSE(DecodeStatReply(payload.first(payload.size() - 1)).ok());
  std::vector<uint8_t> longer(payload.begin(), payload.end());
  longer.push_back(0);
  EXPECT_FALSE(DecodeStatReply(longer).ok());
}

TEST(GetReplyTest, RoundTripsAnIPv4Holder) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    GetReply reply = SampleGetReply();
    reply.holders[0].ticket = "ticket-bytes";
    return EncodeGetReply(RequestHeader(MessageType::kGet, 7, kSession), reply,
                          out);
  });
  absl::StatusOr<GetReply> r = DecodeGetReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size, 4194304u);
  EXPECT_EQ(r->root, TestDigest());
  ASSERT_EQ(r->holder_count, 1u);
  const GetHolder& bob = r->holders[0];
  EXPECT_EQ(bob.user, "bob");
  EXPECT_EQ(bob.address.family, 4);
  EXPECT_EQ(bob.address.ip, SampleBob().address.ip);
  EXPECT_EQ(bob.address.port, 50002);
  EXPECT_EQ(bob.ticket, "ticket-bytes");
  EXPECT_EQ(bob.key_pin, TestKeyPin());
}

TEST(GetReplyTest, RoundTripsTwoHoldersInOrder) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeGetReply(RequestHeader(MessageType::kGet, 7, kSession),
                          SampleGetReplyTwoHolders(), out);
  });
  absl::StatusOr<GetReply> r = DecodeGetReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->holder_count, 2u);
  EXPECT_EQ(r->holders[0].user, "bob");
  EXPECT_EQ(r->holders[0].ticket, kTicket);
  const GetHolder& carol = r->holders[1];
  EXPECT_EQ(carol.user, "carol");
  EXPECT_EQ(carol.address.family, 6);
  EXPECT_EQ(carol.address.ip, SampleCarol().address.ip);
  EXPECT_EQ(carol.address.port, 50003);
  EXPECT_EQ(carol.ticket, "");
  EXPECT_EQ(carol.key_pin, Sha256Digest{});
}

// The longest holders there are (64-character names, the longest ticket,
// IPv6): as many as fit go, in order, and the datagram stays in bounds.
TEST(GetReplyTest, NamesAsManyHoldersAsFitInOneDatagram) {
  std::array<std::string, kMaxGetHolders> users;
  const std::string ticket(kMaxTicketChars, 'T');
  GetReply reply = SampleGetReply();
  for (size_t i = 0; i < kMaxGetHolders; ++i) {
    users[i] =
        std::string(kMaxUserNameChars - 1, 'u') + static_cast<char>('a' + i);
    reply.holders[i] = SampleCarol();
    reply.holders[i].user = users[i];
    reply.holders[i].ticket = ticket;
  }
  reply.holder_count = kMaxGetHolders;
  std::array<uint8_t, 2 * kMaxDatagramSize> out{};
  const size_t size =
      EncodeGetReply(RequestHeader(MessageType::kGet, 7, kSession), reply, out);
  ASSERT_GT(size, 0u);
  EXPECT_LE(size, kMaxDatagramSize);
  // Named: the decoded reply views these bytes.
  const Bytes datagram(out.begin(), out.begin() + size);
  absl::StatusOr<GetReply> r = DecodeGetReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->holder_count, 3u);
  EXPECT_LT(r->holder_count, kMaxGetHolders);
  for (size_t i = 0; i < r->holder_count; ++i) {
    EXPECT_EQ(r->holders[i].user, users[i]);
    EXPECT_EQ(r->holders[i].ticket, ticket);
  }
}

TEST(GetReplyTest, RefusesToEncodeAnUnknownFamilyOrNoHolder) {
  std::array<uint8_t, kMaxDatagramSize> out{};
  GetReply reply = SampleGetReplyTwoHolders();
  reply.holders[1].address.family = 5;
  EXPECT_EQ(
      EncodeGetReply(RequestHeader(MessageType::kGet, 7, kSession), reply, out),
      0u);
  reply.holder_count = 0;
  EXPECT_EQ(
      EncodeGetReply(RequestHeader(MessageType::kGet, 7, kSession), reply, out),
      0u);
}

// The count byte sits after the size (8) and the root (32).
TEST(GetReplyTest, RefusesAHolderCountOfZeroOrAboveTheMost) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeGetReply(RequestHeader(MessageType::kGet, 7, kSession),
                          SampleGetReply(), out);
  });
  std::span<const uint8_t> payload = PayloadOf(datagram);
  Bytes bytes(payload.begin(), payload.end());
  for (uint8_t count : {0, 2, static_cast<int>(kMaxGetHolders) + 1, 255}) {
    bytes[40] = count;
    EXPECT_FALSE(DecodeGetReply(bytes).ok()) << int{count};
  }
  bytes[40] = 1;
  EXPECT_TRUE(DecodeGetReply(bytes).ok());
}

TEST(ListReplyTest, RoundTrips) {
  Bytes datagram = Encode([](std::span<uint8_t> out) {
    return EncodeListPage(
        RequestHeader(MessageType::kListActivePeers, 3, kSession), 7, 10,
        {"bob", "carol", "dave"}, 3, out);
  });
  absl::StatusOr<ListReply> r = DecodeListReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->snapshot, 7u);
  EXPECT_EQ(r->next_cursor, 3u);
  EXPECT_EQ(r->total, 10u);
  EXPECT_THAT(r->names, ElementsAre("bob", "carol", "dave"));
}

TEST(ReplyHeaderTest, EveryReplyEchoesTheRequestAndSetsTheResponseFlag) {
  Header request = RequestHeader(MessageType::kSearch, 0x55667788, kSession);
  // Not copied by the codec: the daemon writes the reply's sequence number
  // into the encoded reply before it seals it.
  request.sequence = 99;
  std::vector<std::pair<const char*, Bytes>> replies = {
      {"status", Encode([&](std::span<uint8_t> out) {
         return EncodeStatusReply(request, ResultCode::kNotFound, "no", out);
       })},
      {"login", Encode([&](std::span<uint8_t> out) {
         return EncodeLoginReply(request, SampleLoginReply(), out);
       })},
      {"login finish", Encode([&](std::span<uint8_t> out) {
         return EncodeLoginFinishReply(request, SampleLoginFinishReply(), out);
       })},
      {"get", Encode([&](std::span<uint8_t> out) {
         return EncodeGetReply(request, SampleGetReply(), out);
       })},
      {"list", Encode([&](std::span<uint8_t> out) {
         return EncodeListPage(request, 1, 1, {"x"}, 0, out);
       })},
  };
  for (const auto& [name, datagram] : replies) {
    absl::StatusOr<Message> m = ParseDatagram(datagram);
    ASSERT_TRUE(m.ok()) << name << ": " << m.status();
    EXPECT_EQ(m->header.message_type(), MessageType::kSearch) << name;
    EXPECT_EQ(m->header.flags, kFlagResponse) << name;
    EXPECT_EQ(m->header.request_id, 0x55667788u) << name;
    EXPECT_EQ(m->header.session_id, kSession) << name;
    EXPECT_EQ(m->header.sequence, 0u) << name;
  }
}

// ---------------------------------------------------------------------------
// Malformed bodies.

struct DecodeCase {
  const char* name;
  Bytes body;  // a well-formed body (or payload) of the message
  std::function<absl::Status(std::span<const uint8_t>)> decode;
};

template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

std::vector<DecodeCase> DecodeCases() {
  auto body = [](const Bytes& datagram) {
    std::span<const uint8_t> b = BodyOf(datagram);
    return Bytes(b.begin(), b.end());
  };
  auto payload = [](const Bytes& datagram) {
    std::span<const uint8_t> p = PayloadOf(datagram);
    return Bytes(p.begin(), p.end());
  };
  const Header h = RequestHeader(MessageType::kGet, 1, kSession);
  std::vector<DecodeCase> cases;
  cases.push_back({"LOGIN request", body(Encode([&](std::span<uint8_t> out) {
                     return EncodeLoginRequest(h, SampleLoginRequest(), out);
                   })),
                   [](std::span<const uint8_t> b) {
                     return StatusOf(DecodeLoginRequest(b));
                   }});
  cases.push_back(
      {"LOGIN_FINISH request", body(Encode([&](std::span<uint8_t> out) {
         return EncodeLoginFinishRequest(h, SampleLoginFinishRequest(), out);
       })),
       [](std::span<const uint8_t> b) {
         return StatusOf(DecodeLoginFinishRequest(b));
       }});
  cases.push_back({"empty request", Bytes{}, [](std::span<const uint8_t> b) {
                     return DecodeEmptyRequest(b);
                   }});
  cases.push_back({"list request", body(Encode([&](std::span<uint8_t> out) {
                     return EncodeListRequest(
                         h, {.snapshot = 1, .cursor = 2, .pattern = "p"}, out);
                   })),
                   [](std::span<const uint8_t> b) {
                     return StatusOf(DecodeListRequest(b));
                   }});
  cases.push_back({"PUB request", body(Encode([&](std::span<uint8_t> out) {
                     return EncodePublishRequest(h, SamplePublishRequest(),
                                                 out);
                   })),
                   [](std::span<const uint8_t> b) {
                     return StatusOf(DecodePublishRequest(b));
                   }});
  cases.push_back({"name request", body(Encode([&](std::span<uint8_t> out) {
                     return EncodeNameRequest(h, {.name = "a.txt"}, out);
                   })),
                   [](std::span<const uint8_t> b) {
                     return StatusOf(DecodeNameRequest(b));
                   }});
  cases.push_back({"error reply", body(Encode([&](std::span<uint8_t> out) {
                     return EncodeStatusReply(h, ResultCode::kNotFound,
                                              "File not found", out);
                   })),
                   [](std::span<const uint8_t> b) {
                     return StatusOf(DecodeReplyStatus(b));
                   }});
  cases.push_back({"LOGIN reply", payload(Encode([&](std::span<uint8_t> out) {
                     return EncodeLoginReply(h, SampleLoginReply(), out);
                   })),
                   [](std::span<const uint8_t> b) {
                     return StatusOf(DecodeLoginReply(b));
                   }});
  cases.push_back(
      {"LOGIN_FINISH reply", payload(Encode([&](std::span<uint8_t> out) {
         return EncodeLoginFinishReply(h, SampleLoginFinishReply(), out);
       })),
       [](std::span<const uint8_t> b) {
         return StatusOf(DecodeLoginFinishReply(b));
       }});
  cases.push_back(
      {"GET reply (IPv4)", payload(Encode([&](std::span<uint8_t> out) {
         return EncodeGetReply(h, SampleGetReply(), out);
       })),
       [](std::span<const uint8_t> b) { return StatusOf(DecodeGetReply(b)); }});
  cases.push_back(
      {"GET reply (two holders)", payload(Encode([&](std::span<uint8_t> out) {
         return EncodeGetReply(h, SampleGetReplyTwoHolders(), out);
       })),
       [](std::span<const uint8_t> b) { return StatusOf(DecodeGetReply(b)); }});
  cases.push_back({"list reply", payload(Encode([&](std::span<uint8_t> out) {
                     return EncodeListPage(h, 1, 5, {"a", "bc"}, 2, out);
                   })),
                   [](std::span<const uint8_t> b) {
                     return StatusOf(DecodeListReply(b));
                   }});
  return cases;
}

TEST(MalformedBodyTest, EveryWellFormedCaseDecodes) {
  for (const DecodeCase& c : DecodeCases()) {
    EXPECT_TRUE(c.decode(c.body).ok()) << c.name << ": " << c.decode(c.body);
  }
}

TEST(MalformedBodyTest, EveryTruncationIsRejected) {
  for (const DecodeCase& c : DecodeCases()) {
    for (size_t n = 0; n < c.body.size(); ++n) {
      // LOGIN_FINISH cut right before its pin is an older peerctl's
      // (WithoutAKeyPinIsFromAnOlderPeerctl).
      if (absl::string_view(c.name) == "LOGIN_FINISH request" &&
          n + kSha256Size == c.body.size()) {
        continue;
      }
      EXPECT_EQ(c.decode(std::span(c.body).first(n)).code(),
                absl::StatusCode::kInvalidArgument)
          << c.name << " cut to " << n << " of " << c.body.size() << " bytes";
    }
  }
}

TEST(MalformedBodyTest, ATrailingByteIsRejected) {
  for (const DecodeCase& c : DecodeCases()) {
    Bytes longer = c.body;
    // Not zero: LOGIN and the empty requests take zero bytes as padding.
    longer.push_back(0x5a);
    EXPECT_EQ(c.decode(longer).code(), absl::StatusCode::kInvalidArgument)
        << c.name;
  }
}

TEST(PaddingTest, LoginPaddedToTheMinimumSizeRoundTrips) {
  const std::string first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
  LoginRequest request{first, LoginPaddingFor(first)};
  Bytes datagram(kMaxDatagramSize);
  const size_t n = EncodeLoginRequest(RequestHeader(MessageType::kLogin, 1, 0),
                                      request, datagram);
  ASSERT_EQ(n, kLoginRequestMinSize);
  absl::StatusOr<Message> m = ParseDatagram(std::span(datagram).first(n));
  ASSERT_TRUE(m.ok());
  absl::StatusOr<LoginRequest> decoded = DecodeLoginRequest(m->body);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->client_first, first);
  EXPECT_EQ(decoded->padding, request.padding);
  // Padding is zero bytes only.
  datagram[n - 1] = 1;
  EXPECT_FALSE(DecodeLoginRequest(m->body).ok());
  EXPECT_EQ(LoginPaddingFor(std::string(2000, 'x')), 0u);
}

TEST(PaddingTest, EmptyRequestsTakeZeroPaddingOnly) {
  Bytes datagram(kMaxDatagramSize);
  const size_t n =
      EncodeEmptyRequest(RequestHeader(MessageType::kHeartbeat, 1, 9), datagram,
                         kEmptyRequestPaddingBytes);
  ASSERT_EQ(n, kHeaderSize + kEmptyRequestPaddingBytes);
  const Bytes zeros(kEmptyRequestPaddingBytes, 0);
  EXPECT_TRUE(DecodeEmptyRequest(zeros).ok());
  Bytes not_zero = zeros;
  not_zero.back() = 7;
  EXPECT_FALSE(DecodeEmptyRequest(not_zero).ok());
}

TEST(MalformedBodyTest, AStringLongerThanTheRestOfTheBodyIsRejected) {
  // A name request whose name claims 6 bytes but carries 5.
  const uint8_t body[] = {0x00, 0x06, 'a', '.', 't', 'x', 't'};
  EXPECT_EQ(DecodeNameRequest(body).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MalformedBodyTest, AnEmptyReplyBodyIsRejected) {
  EXPECT_EQ(DecodeReplyStatus({}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GetReplyTest, RejectsAnAddressFamilyOtherThan4Or6) {
  // Size and root (zero), one holder "b" at 127.0.0.1, then port, an
  // empty ticket and a zero pin.
  Bytes payload(8 + 32, 0);
  for (uint8_t byte : {1, 0x00, 0x01, 0x62, 0x04, 127, 0, 0, 1}) {
    payload.push_back(byte);
  }
  payload.resize(payload.size() + 2 + 2 + 32);
  ASSERT_TRUE(DecodeGetReply(payload).ok());
  for (uint8_t family : {0, 5, 46, 255}) {
    payload[40 + 4] = family;
    EXPECT_EQ(DecodeGetReply(payload).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "family " << int{family};
  }
}

TEST(LoginFinishReplyTest, RejectsSessionIdZero) {
  // An empty server-final, session id 0, heartbeat 0, a timeout of 1 ms.
  Bytes payload(2 + 8 + 4 + 4, 0);
  payload[17] = 1;
  EXPECT_EQ(DecodeLoginFinishReply(payload).status().code(),
            absl::StatusCode::kInvalidArgument);
  payload[9] = 1;  // session id 1: now only the id changed, and it decodes
  EXPECT_TRUE(DecodeLoginFinishReply(payload).ok());
}

TEST(ListReplyTest, RejectsMoreNamesThanTheTotal) {
  // snapshot 1, next_cursor 0, total 1, count 2, names "a" and "b".
  const uint8_t payload[] = {0, 0, 0, 1, 0, 0, 0,   0, 0, 0,
                             0, 1, 0, 2, 0, 1, 'a', 0, 1, 'b'};
  EXPECT_EQ(DecodeListReply(payload).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ListReplyTest, RejectsACountThePayloadCannotHold) {
  // total 65535, count 65535, no names.
  const uint8_t payload[] = {0, 0, 0, 1,    0,    0,    0,
                             0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(DecodeListReply(payload).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Size limits.

TEST(EncodeTest, ReturnsZeroWhenTheBufferIsTooSmall) {
  std::array<uint8_t, kHeaderSize + 10> out{};
  EXPECT_EQ(EncodeLoginRequest(RequestHeader(MessageType::kLogin, 1, 0),
                               SampleLoginRequest(), out),
            0u);
  EXPECT_EQ(EncodeEmptyRequest(RequestHeader(MessageType::kLogout, 1, 0),
                               std::span(out).first(kHeaderSize - 1)),
            0u);
}

TEST(EncodeTest, NeverWritesMoreThanOneDatagramWhateverTheBuffer) {
  std::vector<uint8_t> out(4 * kMaxDatagramSize);
  std::string name(kMaxBodySize - 1, 'n');  // with its length: 1 byte too many
  EXPECT_EQ(EncodeNameRequest(RequestHeader(MessageType::kGet, 1, kSession),
                              {.name = name}, out),
            0u);
  name.pop_back();  // now exactly kMaxDatagramSize
  EXPECT_EQ(EncodeNameRequest(RequestHeader(MessageType::kGet, 1, kSession),
                              {.name = name}, out),
            kMaxDatagramSize);
}

// ---------------------------------------------------------------------------
// ListReplyWriter paging.

// Fills one page with copies of `name`; returns {datagram size, count}.
std::pair<size_t, uint16_t> FillPage(const std::string& name,
                                     std::span<uint8_t> out) {
  ListReplyWriter writer(
      RequestHeader(MessageType::kListPublished, 1, kSession), 1, 100000, out);
  for (int i = 0; i < 100000 && writer.Add(name); ++i) {
  }
  return {writer.Finish(0), writer.count()};
}

TEST(ListReplyWriterTest, FillsAPageWith255ByteNamesUpToTheLimit) {
  std::array<uint8_t, kMaxDatagramSize> out{};
  std::string name(255, 'x');
  auto [size, count] = FillPage(name, out);
  EXPECT_EQ(count, 4);  // 59 bytes of header and counts + 4 * 257 = 1087
  EXPECT_LE(size, kMaxDatagramSize);
  EXPECT_GT(size + 2 + name.size(), kMaxDatagramSize);    // a 5th cannot fit
  const Bytes datagram(out.begin(), out.begin() + size);  // r views it
  absl::StatusOr<ListReply> r = DecodeListReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->names.size(), 4u);
  EXPECT_EQ(r->names[3], name);
}

TEST(ListReplyWriterTest, FillsAPageWith1ByteNamesUpToTheLimit) {
  std::array<uint8_t, kMaxDatagramSize> out{};
  auto [size, count] = FillPage("y", out);
  EXPECT_EQ(count, 380);  // 59 + 380 * 3 = 1199
  EXPECT_LE(size, kMaxDatagramSize);
  EXPECT_GT(size + 3, kMaxDatagramSize);
  const Bytes datagram(out.begin(), out.begin() + size);  // r views it
  absl::StatusOr<ListReply> r = DecodeListReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->names.size(), 380u);
}

TEST(ListReplyWriterTest, ANameThatDoesNotFitWritesNothing) {
  std::array<uint8_t, kMaxDatagramSize> out{};
  ListReplyWriter writer(RequestHeader(MessageType::kSearch, 1, kSession), 1,
                         10, out);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(writer.Add(std::string(255, 'a')));
  EXPECT_FALSE(writer.Add(std::string(255, 'b')));
  EXPECT_TRUE(writer.Add("c"));  // the page still has room for a short one
  size_t size = writer.Finish(6);
  ASSERT_GT(size, 0u);
  const Bytes datagram(out.begin(), out.begin() + size);  // r views it
  absl::StatusOr<ListReply> r = DecodeListReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->names.size(), 5u);
  EXPECT_EQ(r->names.back(), "c");
  EXPECT_EQ(r->next_cursor, 6u);
}

// SCH learns its snapshot field (part of its next cursor) only once the
// page is full.
TEST(ListReplyWriterTest, SetSnapshotRewritesTheSnapshotAfterTheNames) {
  std::array<uint8_t, kMaxDatagramSize> out{};
  ListReplyWriter writer(RequestHeader(MessageType::kSearch, 1, kSession), 1,
                         kUnknownTotal, out);
  ASSERT_TRUE(writer.Add("tune.mp3"));
  writer.SetSnapshot(0x5a5a0003);
  size_t size = writer.Finish(42);
  ASSERT_GT(size, 0u);
  const Bytes datagram(out.begin(), out.begin() + size);  // r views it
  absl::StatusOr<ListReply> r = DecodeListReply(PayloadOf(datagram));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->snapshot, 0x5a5a0003u);
  EXPECT_EQ(r->next_cursor, 42u);
  EXPECT_EQ(r->total, kUnknownTotal);
  EXPECT_THAT(r->names, ElementsAre("tune.mp3"));
}

TEST(ListReplyWriterTest, PagesOfAWholeListReadBackInOrder) {
  std::vector<std::string> all;
  for (int i = 0; i < 1000; ++i) {
    all.push_back(absl::StrCat("file-", i, std::string(i % 250, 'z')));
  }
  const uint32_t total = static_cast<uint32_t>(all.size());
  std::vector<std::string> read_back;
  uint32_t cursor = 0;
  int pages = 0;
  do {
    ASSERT_LT(++pages, 1000) << "paging does not advance";
    std::array<uint8_t, kMaxDatagramSize> out{};
    ListReplyWriter writer(
        RequestHeader(MessageType::kListPublished, 1, kSession), 42, total,
        out);
    uint32_t next = cursor;
    while (next < total && writer.Add(all[next])) ++next;
    size_t size = writer.Finish(next < total ? next : 0);
    ASSERT_GT(size, 0u);
    ASSERT_LE(size, kMaxDatagramSize);

    Bytes datagram(out.begin(), out.begin() + size);
    absl::StatusOr<ListReply> page = DecodeListReply(PayloadOf(datagram));
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_FALSE(page->names.empty());
    EXPECT_EQ(page->snapshot, 42u);
    EXPECT_EQ(page->total, total);
    for (absl::string_view name : page->names) read_back.emplace_back(name);
    cursor = page->next_cursor;
  } while (cursor != 0);
  EXPECT_EQ(read_back, all);
  EXPECT_GT(pages, 1);
}

// ---------------------------------------------------------------------------
// No allocation on the request path.

TEST(AllocationTest, EncodingAndDecodingRequestsDoNotAllocate) {
#ifndef PCFS_COUNTS_ALLOCATIONS
  GTEST_SKIP() << "allocations are not counted under TSan";
#else
  std::array<uint8_t, kMaxDatagramSize> datagram{};
  std::array<uint8_t, kMaxDatagramSize> reply{};
  const Header h = RequestHeader(MessageType::kLogin, 1, 0);
  const LoginRequest login = SampleLoginRequest();
  const LoginFinishRequest finish = SampleLoginFinishRequest();
  const PublishRequest pub = SamplePublishRequest();
  const GetReply get = SampleGetReply();
  bool all_ok = true;

  const size_t before = allocation_count;
  size_t n = EncodeLoginRequest(h, login, datagram);
  absl::StatusOr<Message> m = ParseDatagram(std::span(datagram).first(n));
  all_ok &= m.ok() && DecodeLoginRequest(m->body).ok();
  n = EncodeLoginFinishRequest(h, finish, datagram);
  m = ParseDatagram(std::span(datagram).first(n));
  all_ok &= m.ok() && DecodeLoginFinishRequest(m->body).ok();
  n = EncodePublishRequest(h, pub, datagram);
  m = ParseDatagram(std::span(datagram).first(n));
  all_ok &= m.ok() && DecodePublishRequest(m->body).ok();
  n = EncodeListRequest(h, {.pattern = "mp3"}, datagram);
  m = ParseDatagram(std::span(datagram).first(n));
  all_ok &= m.ok() && DecodeListRequest(m->body).ok();
  n = EncodeNameRequest(h, {.name = "a.txt"}, datagram);
  m = ParseDatagram(std::span(datagram).first(n));
  all_ok &= m.ok() && DecodeNameRequest(m->body).ok();
  n = EncodeEmptyRequest(h, datagram);
  m = ParseDatagram(std::span(datagram).first(n));
  all_ok &= m.ok() && DecodeEmptyRequest(m->body).ok();
  all_ok &=
      EncodeStatusReply(h, ResultCode::kNotFound, "File not found", reply) > 0;
  all_ok &= EncodeLoginReply(h, SampleLoginReply(), reply) > 0;
  all_ok &= EncodeLoginFinishReply(h, SampleLoginFinishReply(), reply) > 0;
  all_ok &= EncodeGetReply(h, get, reply) > 0;
  ListReplyWriter writer(h, 1, 2, reply);
  all_ok &= writer.Add("a") && writer.Add("b") && writer.Finish(0) > 0;
  const size_t allocations = allocation_count - before;

  EXPECT_TRUE(all_ok);
  EXPECT_EQ(allocations, 0u);
#endif
}

TEST(AllocationTest, TheCounterSeesAnAllocation) {
#ifndef PCFS_COUNTS_ALLOCATIONS
  GTEST_SKIP() << "allocations are not counted under TSan";
#else
  const size_t before = allocation_count;
  int* volatile p = new int(7);
  const size_t allocations = allocation_count - before;
  delete p;
  EXPECT_EQ(allocations, 1u);  // else the test above proves nothing
#endif
}

}  // namespace
}  // namespace pcfs::protocol
