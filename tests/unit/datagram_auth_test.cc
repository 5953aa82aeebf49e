#include "core/auth/datagram_auth.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/auth/scram.h"
#include "core/proto/protocol.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using protocol::kHeaderSize;
using protocol::kMacOffset;
using protocol::kMacSize;
using protocol::kSequenceOffset;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

SessionKey KeyFilledWith(uint8_t byte) {
  SessionKey key;
  key.fill(byte);
  return key;
}

constexpr uint64_t kSampleSequence = 42;

// A GET request on session 7 with sequence number 42 and a short body.
std::vector<uint8_t> SampleDatagram() {
  protocol::Header header;
  header.type = static_cast<uint8_t>(protocol::MessageType::kGet);
  header.request_id = 0x01020304;
  header.session_id = 7;
  header.sequence = kSampleSequence;
  std::vector<uint8_t> datagram(kHeaderSize);
  protocol::EncodeHeader(header, datagram);
  const absl::string_view body = "\x00\x08notes.md";
  datagram.insert(datagram.end(), body.begin(), body.end());
  return datagram;
}

std::vector<uint8_t> SealedSample(const SessionKey& key) {
  std::vector<uint8_t> datagram = SampleDatagram();
  SealDatagram(key, kSampleSequence, datagram);
  return datagram;
}

absl::string_view AsText(std::span<const uint8_t> bytes) {
  return absl::string_view(reinterpret_cast<const char*>(bytes.data()),
                           bytes.size());
}

std::string HexOf(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xF]);
  }
  return out;
}

// ---- SealDatagram and OpenDatagram.

TEST(DatagramAuthTest, SealedDatagramVerifies) {
  const SessionKey key = KeyFilledWith(0x11);
  EXPECT_TRUE(OpenDatagram(key, SealedSample(key)).has_value());
}

TEST(DatagramAuthTest, UnsealedDatagramDoesNotVerify) {
  EXPECT_FALSE(OpenDatagram(KeyFilledWith(0x11), SampleDatagram()).has_value());
}

TEST(DatagramAuthTest, OpenGivesBackTheSealedSequenceNumber) {
  const SessionKey key = KeyFilledWith(0x11);
  std::vector<uint8_t> datagram = SampleDatagram();
  SealDatagram(key, 0x0102030405060708, datagram);
  EXPECT_EQ(OpenDatagram(key, datagram), 0x0102030405060708u);
}

TEST(DatagramAuthTest, SealWritesTheSequenceFieldBigEndian) {
  std::vector<uint8_t> datagram = SampleDatagram();
  SealDatagram(KeyFilledWith(0x11), 0x0102030405060708, datagram);
  EXPECT_EQ(HexOf(std::span(datagram).subspan(kSequenceOffset, 8)),
            "0102030405060708");
}

TEST(DatagramAuthTest, SealChangesOnlyTheMacField) {
  const std::vector<uint8_t> before = SampleDatagram();
  const std::vector<uint8_t> after = SealedSample(KeyFilledWith(0x11));
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    if (i >= kMacOffset && i < kMacOffset + kMacSize) continue;
    EXPECT_EQ(after[i], before[i]) << "byte " << i;
  }
}

// Computed independently with the one-shot HmacSha256 over a copy whose MAC
// field is zero: the three-slice MAC must be the same function.
TEST(DatagramAuthTest, MacIsTruncatedHmacOfTheDatagramWithAZeroMacField) {
  const SessionKey key = KeyFilledWith(0x5a);
  const std::vector<uint8_t> sealed = SealedSample(key);
  const absl::StatusOr<Sha256Digest> reference =
      HmacSha256(AsText(key), AsText(SampleDatagram()));
  ASSERT_TRUE(reference.ok()) << reference.status();
  EXPECT_EQ(AsText(std::span(sealed).subspan(kMacOffset, kMacSize)),
            AsText(std::span(*reference).first(kMacSize)));
}

TEST(DatagramAuthTest, SealingAgainOverwritesAnOldMac) {
  const SessionKey key = KeyFilledWith(0x11);
  std::vector<uint8_t> datagram = SealedSample(KeyFilledWith(0x22));
  SealDatagram(key, kSampleSequence, datagram);
  EXPECT_EQ(datagram, SealedSample(key));
}

TEST(DatagramAuthTest, EveryFlippedBitFailsVerification) {
  const SessionKey key = KeyFilledWith(0x11);
  const std::vector<uint8_t> sealed = SealedSample(key);
  for (size_t i = 0; i < sealed.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> tampered = sealed;
      tampered[i] ^= static_cast<uint8_t>(1u << bit);
      EXPECT_FALSE(OpenDatagram(key, tampered).has_value())
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST(DatagramAuthTest, AppendedOrRemovedBodyBytesFailVerification) {
  const SessionKey key = KeyFilledWith(0x11);
  std::vector<uint8_t> longer = SealedSample(key);
  longer.push_back(0);
  EXPECT_FALSE(OpenDatagram(key, longer).has_value());
  std::vector<uint8_t> shorter = SealedSample(key);
  shorter.pop_back();
  EXPECT_FALSE(OpenDatagram(key, shorter).has_value());
}

TEST(DatagramAuthTest, WrongKeyFailsVerification) {
  SessionKey other = KeyFilledWith(0x11);
  other[31] ^= 0x01;
  EXPECT_FALSE(
      OpenDatagram(other, SealedSample(KeyFilledWith(0x11))).has_value());
}

TEST(DatagramAuthTest, HeaderOnlyDatagramSealsAndVerifies) {
  const SessionKey key = KeyFilledWith(0x11);
  std::vector<uint8_t> datagram = SampleDatagram();
  datagram.resize(kHeaderSize);
  SealDatagram(key, kSampleSequence, datagram);
  EXPECT_TRUE(OpenDatagram(key, datagram).has_value());
}

TEST(DatagramAuthTest, DatagramShorterThanAHeaderFailsVerification) {
  const SessionKey key = KeyFilledWith(0x11);
  const std::vector<uint8_t> sealed = SealedSample(key);
  EXPECT_FALSE(
      OpenDatagram(key, std::span(sealed).first(kHeaderSize - 1)).has_value());
  EXPECT_FALSE(OpenDatagram(key, std::span<const uint8_t>()).has_value());
}

// Each thread has its own libcrypto context; run under TSan to see that
// nothing is shared.
TEST(DatagramAuthTest, ThreadsSealAndVerifyIndependently) {
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([t, &failures] {
      const SessionKey key = KeyFilledWith(static_cast<uint8_t>(t + 1));
      for (int i = 0; i < 200; ++i) {
        if (!OpenDatagram(key, SealedSample(key)).has_value()) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

// docs/PROTOCOL.md shows a sealed HEARTBEAT (its bytes are checked against
// the codec by protocol_test); its MAC must be the one SealDatagram computes
// under the key the document names: the session key of RFC 7677's example
// login (as in scram_test).
std::vector<uint8_t> BytesOfHex(absl::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(
        std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// The hex of "vector NAME: ..." in docs/PROTOCOL.md, spaces removed; empty
// if the document has no such line.
std::string VectorInProtocolDoc(absl::string_view name) {
  std::ifstream doc(PCFS_SOURCE_DIR "/docs/PROTOCOL.md");
  const std::string prefix = "vector " + std::string(name) + ": ";
  std::string line;
  while (std::getline(doc, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::string hex;
    for (char c : line.substr(prefix.size())) {
      if (c != ' ') hex.push_back(c);
    }
    return hex;
  }
  return "";
}

TEST(DatagramAuthTest, SealsTheProtocolDocHeartbeatVector) {
  const std::string documented =
      VectorInProtocolDoc("HEARTBEAT-request-sealed");
  ASSERT_EQ(documented.size(), 2 * kHeaderSize) << "vector missing in doc";
  const SessionKey key = [] {
    SessionKey k;
    const std::vector<uint8_t> bytes = BytesOfHex(
        "dd130fce0a9bdace7808141dec2f072dcef0b3a49e79715dbeb9c05e3801fece");
    std::copy(bytes.begin(), bytes.end(), k.begin());
    return k;
  }();
  std::vector<uint8_t> datagram = BytesOfHex(documented);
  const absl::StatusOr<protocol::Message> parsed =
      protocol::ParseDatagram(datagram);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const uint64_t sequence = parsed->header.sequence;
  std::fill_n(datagram.begin() + kMacOffset, kMacSize, 0);
  SealDatagram(key, sequence, datagram);
  EXPECT_EQ(HexOf(datagram), documented);
}

// ---- ReplayWindow.

// A window that has recorded `sequences`, in order.
ReplayWindow WindowAfter(std::initializer_list<uint64_t> sequences) {
  ReplayWindow window;
  for (uint64_t sequence : sequences) {
    EXPECT_TRUE(window.Check(sequence)) << sequence;
    window.Record(sequence);
  }
  return window;
}

TEST(ReplayWindowTest, RefusesZero) {
  EXPECT_FALSE(ReplayWindow().Check(0));
  EXPECT_FALSE(WindowAfter({1, 2}).Check(0));
}

TEST(ReplayWindowTest, AcceptsIncreasingNumbers) {
  ReplayWindow window = WindowAfter({1, 2, 3, 10, 11});
  EXPECT_EQ(window.highest(), 11u);
  EXPECT_TRUE(window.Check(12));
}

TEST(ReplayWindowTest, CheckDoesNotRecord) {
  ReplayWindow window;
  EXPECT_TRUE(window.Check(5));
  EXPECT_TRUE(window.Check(5));
  EXPECT_EQ(window.highest(), 0u);
}

TEST(ReplayWindowTest, RefusesARepeat) {
  ReplayWindow window = WindowAfter({1, 2, 3});
  EXPECT_FALSE(window.Check(3));
  EXPECT_FALSE(window.Check(2));
  EXPECT_FALSE(window.Check(1));
}

TEST(ReplayWindowTest, AcceptsEachNumberWithinTheWindowOnceOutOfOrder) {
  ReplayWindow window = WindowAfter({100});
  for (uint64_t sequence = 37; sequence < 100; ++sequence) {
    ASSERT_TRUE(window.Check(sequence)) << sequence;
    window.Record(sequence);
    EXPECT_FALSE(window.Check(sequence)) << sequence;
  }
  EXPECT_EQ(window.highest(), 100u);
}

TEST(ReplayWindowTest, RefusesANumberAWindowOrMoreBelowTheHighest) {
  ReplayWindow window = WindowAfter({100});
  EXPECT_TRUE(window.Check(100 - 63));
  EXPECT_FALSE(window.Check(100 - 64));
  EXPECT_FALSE(window.Check(1));
}

TEST(ReplayWindowTest, KeepsWhatWasSeenAcrossASmallJump) {
  ReplayWindow window = WindowAfter({1, 3, 64});  // 1 is now 63 below
  EXPECT_FALSE(window.Check(1));
  EXPECT_TRUE(window.Check(2));
  EXPECT_FALSE(window.Check(3));
  EXPECT_TRUE(window.Check(4));
}

TEST(ReplayWindowTest, JumpOfAWholeWindowForgetsTheOldOne) {
  // After a jump of exactly 64 (a shift the width of the bitmap) the old
  // bits must not land anywhere in the new window.
  ReplayWindow window = WindowAfter({1, 2, 3, 67});
  EXPECT_FALSE(window.Check(3));  // 64 below: too old
  for (uint64_t sequence = 4; sequence < 67; ++sequence) {
    EXPECT_TRUE(window.Check(sequence)) << sequence;
  }
  EXPECT_FALSE(window.Check(67));
}

TEST(ReplayWindowTest, JumpOfMoreThanAWindowClearsTheBitmap) {
  ReplayWindow window = WindowAfter({10, 11, 12, 1000});
  EXPECT_FALSE(window.Check(1000));
  for (uint64_t sequence = 1000 - 63; sequence < 1000; ++sequence) {
    EXPECT_TRUE(window.Check(sequence)) << sequence;
  }
  EXPECT_FALSE(window.Check(12));
}

TEST(ReplayWindowTest, HandlesNumbersNearTheTopOfTheRange) {
  ReplayWindow window = WindowAfter({kMax - 1, kMax});
  EXPECT_EQ(window.highest(), kMax);
  EXPECT_FALSE(window.Check(kMax));
  EXPECT_FALSE(window.Check(kMax - 1));
  EXPECT_TRUE(window.Check(kMax - 2));
  EXPECT_TRUE(window.Check(kMax - 63));
  EXPECT_FALSE(window.Check(kMax - 64));
}

TEST(ReplayWindowTest, FirstNumberMayBeTheLargest) {
  ReplayWindow window = WindowAfter({kMax});
  EXPECT_FALSE(window.Check(kMax));
  EXPECT_FALSE(window.Check(1));
  EXPECT_TRUE(window.Check(kMax - 1));
}

}  // namespace
}  // namespace pcfs
