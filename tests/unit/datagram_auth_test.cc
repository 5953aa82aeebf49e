#include "core/auth/datagram_auth.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/auth/hmac_sha256.h"
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

DatagramKeys KeysOf(const SessionKey& key) {
  absl::StatusOr<DatagramKeys> keys = DeriveDatagramKeys(key);
  EXPECT_TRUE(keys.ok()) << keys.status();
  return keys.ok() ? *keys : DatagramKeys();
}

DatagramKeys KeysFilledWith(uint8_t byte) {
  return KeysOf(KeyFilledWith(byte));
}

constexpr uint64_t kSampleSequence = 42;
constexpr absl::string_view kSampleBody("\x00\x08notes.md", 10);

// A GET request on session 7 with sequence number 42 and a short body.
std::vector<uint8_t> SampleDatagram() {
  protocol::Header header;
  header.type = static_cast<uint8_t>(protocol::MessageType::kGet);
  header.request_id = 0x01020304;
  header.session_id = 7;
  header.sequence = kSampleSequence;
  std::vector<uint8_t> datagram(kHeaderSize);
  protocol::EncodeHeader(header, datagram);
  datagram.insert(datagram.end(), kSampleBody.begin(), kSampleBody.end());
  return datagram;
}

std::vector<uint8_t> SealedSample(const DatagramKeys& keys,
                                  Direction direction = Direction::kToDaemon) {
  std::vector<uint8_t> datagram = SampleDatagram();
  SealDatagram(keys, direction, kSampleSequence, datagram);
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

// What OpenDatagram gives: the sequence number and the body it decrypted.
struct Opened {
  std::optional<uint64_t> sequence;
  std::vector<uint8_t> body;
};

Opened Open(const DatagramKeys& keys, std::span<const uint8_t> datagram,
            Direction direction = Direction::kToDaemon) {
  Opened opened;
  opened.body.assign(
      datagram.size() < kHeaderSize ? 0 : datagram.size() - kHeaderSize, 0xEE);
  opened.sequence = OpenDatagram(keys, direction, datagram, opened.body);
  return opened;
}

// ---- DeriveDatagramKeys.

// HKDF-SHA-256 (RFC 5869) computed by hand with the HMAC of this library,
// independently of OpenSSL's EVP_KDF: extract with an empty salt (HashLen
// zero bytes), then one block of expand.
DatagramKey HkdfByHand(const SessionKey& ikm, absl::string_view info) {
  const uint8_t zeros[32] = {};
  IncrementalHmacSha256 extract{std::span<const uint8_t>(zeros)};
  extract.Update(std::span<const uint8_t>(ikm));
  const Sha256Digest prk = extract.Finish();
  IncrementalHmacSha256 expand{std::span<const uint8_t>(prk)};
  expand.Update(info);
  expand.Update(absl::string_view("\x01", 1));
  const Sha256Digest okm = expand.Finish();
  DatagramKey key;
  std::copy_n(okm.begin(), key.size(), key.begin());
  return key;
}

TEST(DeriveDatagramKeysTest, IsHkdfSha256WithTheDocumentedLabels) {
  const SessionKey session = KeyFilledWith(0x5a);
  const DatagramKeys keys = KeysOf(session);
  EXPECT_EQ(keys.to_daemon, HkdfByHand(session, kToDaemonKeyLabel));
  EXPECT_EQ(keys.to_client, HkdfByHand(session, kToClientKeyLabel));
  EXPECT_NE(keys.to_daemon, keys.to_client);
  EXPECT_NE(KeysFilledWith(0x5b).to_daemon, keys.to_daemon);
}

// ---- SealDatagram and OpenDatagram.

TEST(DatagramAuthTest, RoundTripGivesBackTheBodyAndTheSequence) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  const Opened opened = Open(keys, SealedSample(keys));
  EXPECT_EQ(opened.sequence, kSampleSequence);
  EXPECT_EQ(AsText(opened.body), kSampleBody);
}

TEST(DatagramAuthTest, BothDirectionsRoundTrip) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  const Opened opened = Open(keys, SealedSample(keys, Direction::kToClient),
                             Direction::kToClient);
  EXPECT_EQ(opened.sequence, kSampleSequence);
  EXPECT_EQ(AsText(opened.body), kSampleBody);
}

TEST(DatagramAuthTest, SealHidesTheBody) {
  const std::vector<uint8_t> sealed = SealedSample(KeysFilledWith(0x11));
  const absl::string_view wire = AsText(sealed);
  EXPECT_EQ(wire.find("notes"), absl::string_view::npos);
  EXPECT_NE(wire.substr(kHeaderSize), kSampleBody);
}

TEST(DatagramAuthTest, SealKeepsTheSizeAndTheHeaderBeforeTheSequence) {
  const std::vector<uint8_t> before = SampleDatagram();
  const std::vector<uint8_t> after = SealedSample(KeysFilledWith(0x11));
  ASSERT_EQ(after.size(), before.size());
  EXPECT_EQ(HexOf(std::span(after).first(kSequenceOffset)),
            HexOf(std::span(before).first(kSequenceOffset)));
}

TEST(DatagramAuthTest, SealWritesTheSequenceFieldBigEndian) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  std::vector<uint8_t> datagram = SampleDatagram();
  SealDatagram(keys, Direction::kToDaemon, 0x0102030405060708, datagram);
  EXPECT_EQ(HexOf(std::span(datagram).subspan(kSequenceOffset, 8)),
            "0102030405060708");
  EXPECT_EQ(Open(keys, datagram).sequence, 0x0102030405060708u);
}

TEST(DatagramAuthTest, UnsealedDatagramDoesNotOpen) {
  EXPECT_FALSE(Open(KeysFilledWith(0x11), SampleDatagram()).sequence);
  EXPECT_TRUE(IsUnsealed(SampleDatagram()));
  EXPECT_FALSE(IsUnsealed(SealedSample(KeysFilledWith(0x11))));
}

// Header (the associated data), body (the ciphertext) and tag alike.
TEST(DatagramAuthTest, EveryFlippedBitIsRefused) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  const std::vector<uint8_t> sealed = SealedSample(keys);
  for (size_t i = 0; i < sealed.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> tampered = sealed;
      tampered[i] ^= static_cast<uint8_t>(1u << bit);
      EXPECT_FALSE(Open(keys, tampered).sequence.has_value())
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST(DatagramAuthTest, ARefusedDatagramLeavesNoPlaintext) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  std::vector<uint8_t> tampered = SealedSample(keys);
  tampered[kMacOffset] ^= 0x01;  // the body itself decrypts; the tag fails
  const Opened opened = Open(keys, tampered);
  ASSERT_FALSE(opened.sequence.has_value());
  EXPECT_EQ(opened.body, std::vector<uint8_t>(kSampleBody.size(), 0));
}

TEST(DatagramAuthTest, OpensInPlace) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  std::vector<uint8_t> datagram = SealedSample(keys);
  std::span<uint8_t> body = std::span(datagram).subspan(kHeaderSize);
  EXPECT_EQ(OpenDatagram(keys, Direction::kToDaemon, datagram, body),
            kSampleSequence);
  EXPECT_EQ(AsText(body), kSampleBody);
}

TEST(DatagramAuthTest, TheOtherDirectionsKeyDoesNotOpenIt) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  EXPECT_FALSE(Open(keys, SealedSample(keys), Direction::kToClient)
                   .sequence.has_value());
  EXPECT_FALSE(Open(keys, SealedSample(keys, Direction::kToClient))
                   .sequence.has_value());
}

TEST(DatagramAuthTest, AnotherSessionsKeyDoesNotOpenIt) {
  SessionKey other = KeyFilledWith(0x11);
  other[31] ^= 0x01;
  EXPECT_FALSE(
      Open(KeysOf(other), SealedSample(KeysFilledWith(0x11))).sequence);
}

// The nonce is the direction and the sequence number: the same body sealed
// under two numbers gives two unrelated ciphertexts and tags (with one
// nonce twice, the XOR of the ciphertexts would be the XOR of the bodies).
TEST(DatagramAuthTest, TheNonceDiffersPerSequenceAndDirection) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  std::vector<uint8_t> one = SampleDatagram();
  std::vector<uint8_t> two = SampleDatagram();
  SealDatagram(keys, Direction::kToDaemon, 1, one);
  SealDatagram(keys, Direction::kToDaemon, 2, two);
  EXPECT_NE(HexOf(std::span(one).subspan(kHeaderSize)),
            HexOf(std::span(two).subspan(kHeaderSize)));
  EXPECT_NE(HexOf(std::span(one).subspan(kMacOffset, kMacSize)),
            HexOf(std::span(two).subspan(kMacOffset, kMacSize)));
  // The same number in the other direction, with the same key bytes for
  // both directions: the direction in the nonce still separates them.
  DatagramKeys same = keys;
  same.to_client = same.to_daemon;
  std::vector<uint8_t> up = SampleDatagram();
  std::vector<uint8_t> down = SampleDatagram();
  SealDatagram(same, Direction::kToDaemon, 1, up);
  SealDatagram(same, Direction::kToClient, 1, down);
  EXPECT_NE(HexOf(std::span(up).subspan(kHeaderSize)),
            HexOf(std::span(down).subspan(kHeaderSize)));
}

TEST(DatagramAuthTest, AReplayedDatagramOpensButTheWindowRefusesIt) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  const std::vector<uint8_t> sealed = SealedSample(keys);
  ReplayWindow window;
  for (int copy = 0; copy < 2; ++copy) {
    const Opened opened = Open(keys, sealed);
    ASSERT_TRUE(opened.sequence.has_value());
    if (copy == 0) {
      ASSERT_TRUE(window.Check(*opened.sequence));
      window.Record(*opened.sequence);
    } else {
      EXPECT_FALSE(window.Check(*opened.sequence));
    }
  }
}

TEST(DatagramAuthTest, SealingAgainReplacesTheOldTag) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  std::vector<uint8_t> datagram = SampleDatagram();
  SealDatagram(keys, Direction::kToDaemon, 7, datagram);
  // Opened in place, then sealed under the sample's number: as if fresh.
  std::span<uint8_t> body = std::span(datagram).subspan(kHeaderSize);
  ASSERT_TRUE(OpenDatagram(keys, Direction::kToDaemon, datagram, body));
  SealDatagram(keys, Direction::kToDaemon, kSampleSequence, datagram);
  EXPECT_EQ(datagram, SealedSample(keys));
}

TEST(DatagramAuthTest, AppendedOrRemovedBodyBytesAreRefused) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  std::vector<uint8_t> longer = SealedSample(keys);
  longer.push_back(0);
  EXPECT_FALSE(Open(keys, longer).sequence.has_value());
  std::vector<uint8_t> shorter = SealedSample(keys);
  shorter.pop_back();
  EXPECT_FALSE(Open(keys, shorter).sequence.has_value());
}

TEST(DatagramAuthTest, HeaderOnlyDatagramSealsAndOpens) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  std::vector<uint8_t> datagram = SampleDatagram();
  datagram.resize(kHeaderSize);
  SealDatagram(keys, Direction::kToDaemon, kSampleSequence, datagram);
  EXPECT_FALSE(IsUnsealed(datagram));
  EXPECT_EQ(Open(keys, datagram).sequence, kSampleSequence);
}

TEST(DatagramAuthTest, LargestDatagramSealsAndOpens) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  std::vector<uint8_t> datagram = SampleDatagram();
  datagram.resize(protocol::kMaxDatagramSize, 'x');
  SealDatagram(keys, Direction::kToDaemon, kSampleSequence, datagram);
  const Opened opened = Open(keys, datagram);
  EXPECT_EQ(opened.sequence, kSampleSequence);
  EXPECT_EQ(opened.body.back(), 'x');
}

TEST(DatagramAuthTest, DatagramShorterThanAHeaderOrTooLongIsRefused) {
  const DatagramKeys keys = KeysFilledWith(0x11);
  const std::vector<uint8_t> sealed = SealedSample(keys);
  EXPECT_FALSE(Open(keys, std::span(sealed).first(kHeaderSize - 1)).sequence);
  EXPECT_FALSE(Open(keys, std::span<const uint8_t>()).sequence);
  std::vector<uint8_t> huge = SampleDatagram();
  huge.resize(protocol::kMaxDatagramSize + 1);
  std::vector<uint8_t> body(huge.size());
  EXPECT_FALSE(OpenDatagram(keys, Direction::kToDaemon, huge, body));
}

// Each thread caches keyed contexts in sets chosen by the key's first
// bytes: keys that share them take turns in one set, more of them than it
// has room for, and each still seals and opens only its own datagrams; so
// do more keys than the whole cache holds.
TEST(DatagramAuthTest, KeysSharingACacheSetStayApart) {
  std::vector<DatagramKeys> sharing(11);  // more than a set's ways (8)
  for (size_t k = 0; k < sharing.size(); ++k) {
    sharing[k].to_daemon.fill(0x31);
    sharing[k].to_client.fill(0x32);
    sharing[k].to_daemon[15] = static_cast<uint8_t>(k);
    sharing[k].to_client[15] = static_cast<uint8_t>(k);
  }
  for (int round = 0; round < 3; ++round) {
    for (size_t k = 0; k < sharing.size(); ++k) {
      const DatagramKeys& other = sharing[(k + 1) % sharing.size()];
      const std::vector<uint8_t> sealed = SealedSample(sharing[k]);
      EXPECT_EQ(AsText(Open(sharing[k], sealed).body), kSampleBody);
      EXPECT_FALSE(Open(other, sealed).sequence.has_value());
      EXPECT_NE(sealed, SealedSample(other));
    }
  }
  int failures = 0;
  for (int i = 0; i < 5000; ++i) {
    DatagramKeys many;
    many.to_daemon.fill(static_cast<uint8_t>(i));
    many.to_daemon[1] = static_cast<uint8_t>(i >> 8);
    const Opened opened = Open(many, SealedSample(many));
    if (AsText(opened.body) != kSampleBody) ++failures;
  }
  EXPECT_EQ(failures, 0);
}

// The session-key overloads derive the keys in the thread's cache (HKDF on
// the stack): the bytes must be those of the keys DeriveDatagramKeys gives
// (EVP_KDF), both ways, and each side must open the other's datagrams.
TEST(DatagramAuthTest, SessionKeySealsAsItsDerivedKeysDo) {
  const SessionKey session = KeyFilledWith(0x5a);
  const DatagramKeys keys = KeysOf(session);
  for (Direction direction : {Direction::kToDaemon, Direction::kToClient}) {
    std::vector<uint8_t> by_session = SampleDatagram();
    SealDatagram(session, direction, kSampleSequence, by_session);
    EXPECT_EQ(by_session, SealedSample(keys, direction));
    std::vector<uint8_t> body(by_session.size() - kHeaderSize);
    EXPECT_EQ(
        OpenDatagram(session, direction, SealedSample(keys, direction), body),
        kSampleSequence);
    EXPECT_EQ(AsText(body), kSampleBody);
    EXPECT_EQ(AsText(Open(keys, by_session, direction).body), kSampleBody);
    // Not under another session key, nor the other direction's key.
    EXPECT_FALSE(
        OpenDatagram(KeyFilledWith(0x5b), direction, by_session, body));
    EXPECT_FALSE(OpenDatagram(session,
                              direction == Direction::kToDaemon
                                  ? Direction::kToClient
                                  : Direction::kToDaemon,
                              by_session, body));
  }
}

// A session key and datagram keys with the same 32 bytes are different
// keys: the cache tells them apart by where they came from.
TEST(DatagramAuthTest, SessionKeyAndDatagramKeysOfTheSameBytesStayApart) {
  const SessionKey session = KeyFilledWith(0x11);
  DatagramKeys same_bytes;
  same_bytes.to_daemon.fill(0x11);
  same_bytes.to_client.fill(0x11);
  std::vector<uint8_t> by_session = SampleDatagram();
  SealDatagram(session, Direction::kToDaemon, kSampleSequence, by_session);
  EXPECT_NE(by_session, SealedSample(same_bytes));
  EXPECT_FALSE(Open(same_bytes, by_session).sequence.has_value());
}

// More session keys than the cache holds, in turn, each twice: every miss
// derives and keys again, and nothing of an evicted entry is used.
TEST(DatagramAuthTest, ManySessionKeysRoundTrip) {
  int failures = 0;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 5000; ++i) {
      SessionKey key = KeyFilledWith(static_cast<uint8_t>(i));
      key[1] = static_cast<uint8_t>(i >> 8);
      std::vector<uint8_t> datagram = SampleDatagram();
      SealDatagram(key, Direction::kToClient, kSampleSequence, datagram);
      std::vector<uint8_t> body(datagram.size() - kHeaderSize);
      if (OpenDatagram(key, Direction::kToClient, datagram, body) !=
              kSampleSequence ||
          AsText(body) != kSampleBody) {
        ++failures;
      }
    }
  }
  EXPECT_EQ(failures, 0);
}

// Each thread has its own libcrypto contexts; run under TSan to see that
// nothing is shared.
TEST(DatagramAuthTest, ThreadsSealAndOpenIndependently) {
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([t, &failures] {
      const DatagramKeys keys = KeysFilledWith(static_cast<uint8_t>(t + 1));
      for (int i = 0; i < 200; ++i) {
        const Opened opened = Open(keys, SealedSample(keys));
        if (AsText(opened.body) != kSampleBody) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

// docs/PROTOCOL.md shows sealed datagrams computed with Python's
// cryptography package (HKDF, AESGCM), independently of this code, under the
// session key of RFC 7677's example login (as in scram_test):
// HEARTBEAT-request-sealed among the codec's vectors (protocol_test checks
// its header), GET-request-sealed and HEARTBEAT-reply-sealed as "sealed"
// lines, with an encrypted body.
std::vector<uint8_t> BytesOfHex(absl::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(
        std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// The hex of "PREFIX NAME: ..." in docs/PROTOCOL.md, spaces removed; empty
// if the document has no such line.
std::string VectorInProtocolDoc(absl::string_view prefix,
                                absl::string_view name) {
  std::ifstream doc(PCFS_SOURCE_DIR "/docs/PROTOCOL.md");
  const std::string start = absl::StrCat(prefix, " ", name, ": ");
  std::string line;
  while (std::getline(doc, line)) {
    if (line.rfind(start, 0) != 0) continue;
    std::string hex;
    for (char c : line.substr(start.size())) {
      if (c != ' ') hex.push_back(c);
    }
    return hex;
  }
  return "";
}

SessionKey Rfc7677SessionKey() {
  SessionKey k;
  const std::vector<uint8_t> bytes = BytesOfHex(
      "dd130fce0a9bdace7808141dec2f072dcef0b3a49e79715dbeb9c05e3801fece");
  std::copy(bytes.begin(), bytes.end(), k.begin());
  return k;
}

DatagramKeys Rfc7677Keys() { return KeysOf(Rfc7677SessionKey()); }

// Seals the documented datagram's plaintext (taken by opening it) again and
// compares: SealDatagram must give the documented bytes, under `keys` (the
// datagram keys, or the session key they are derived from).
template <typename Keys>
void ExpectSealsTheDocumentedBytes(const Keys& keys, absl::string_view prefix,
                                   absl::string_view name, Direction direction,
                                   absl::string_view body) {
  const std::string documented = VectorInProtocolDoc(prefix, name);
  ASSERT_GE(documented.size(), 2 * kHeaderSize) << name << " missing in doc";
  std::vector<uint8_t> datagram = BytesOfHex(documented);
  const absl::StatusOr<protocol::Message> parsed =
      protocol::ParseDatagram(datagram);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::span<uint8_t> plain = std::span(datagram).subspan(kHeaderSize);
  ASSERT_EQ(OpenDatagram(keys, direction, datagram, plain),
            parsed->header.sequence)
      << name;
  EXPECT_EQ(AsText(plain), body) << name;
  SealDatagram(keys, direction, parsed->header.sequence, datagram);
  EXPECT_EQ(HexOf(datagram), documented) << name;
}

TEST(DatagramAuthTest, SealsTheProtocolDocVectors) {
  ExpectSealsTheDocumentedBytes(Rfc7677Keys(), "vector",
                                "HEARTBEAT-request-sealed",
                                Direction::kToDaemon, "");
  ExpectSealsTheDocumentedBytes(Rfc7677Keys(), "sealed", "GET-request-sealed",
                                Direction::kToDaemon,
                                absl::string_view("\x00\x08tune.mp3", 10));
  ExpectSealsTheDocumentedBytes(Rfc7677Keys(), "sealed",
                                "HEARTBEAT-reply-sealed", Direction::kToClient,
                                absl::string_view("\x00", 1));
}

// The daemon's way: the session key alone, the keys derived in the cache.
TEST(DatagramAuthTest, SealsTheProtocolDocVectorsUnderTheSessionKey) {
  const SessionKey key = Rfc7677SessionKey();
  ExpectSealsTheDocumentedBytes(key, "vector", "HEARTBEAT-request-sealed",
                                Direction::kToDaemon, "");
  ExpectSealsTheDocumentedBytes(key, "sealed", "GET-request-sealed",
                                Direction::kToDaemon,
                                absl::string_view("\x00\x08tune.mp3", 10));
  ExpectSealsTheDocumentedBytes(key, "sealed", "HEARTBEAT-reply-sealed",
                                Direction::kToClient,
                                absl::string_view("\x00", 1));
}

// The value after "NAME" on an indented line of docs/PROTOCOL.md (the keys
// listed with HEARTBEAT-request-sealed); empty if there is none.
std::string KeyInProtocolDoc(absl::string_view name) {
  std::ifstream doc(PCFS_SOURCE_DIR "/docs/PROTOCOL.md");
  const std::string start = absl::StrCat("    ", name, " ");
  std::string line;
  while (std::getline(doc, line)) {
    if (line.rfind(start, 0) != 0) continue;
    std::string value = line.substr(start.size());
    value.erase(0, value.find_first_not_of(' '));
    return value;
  }
  return "";
}

// The session key and the two datagram keys the document lists for the
// sealed vectors are the ones the code derives.
TEST(DatagramAuthTest, DerivesTheProtocolDocKeys) {
  EXPECT_EQ(HexOf(Rfc7677SessionKey()), KeyInProtocolDoc("session key"));
  const DatagramKeys keys = Rfc7677Keys();
  EXPECT_EQ(HexOf(keys.to_daemon), KeyInProtocolDoc("to-daemon key"));
  EXPECT_EQ(HexOf(keys.to_client), KeyInProtocolDoc("to-client key"));
  EXPECT_EQ(KeyInProtocolDoc("to-daemon key").size(), 2 * kDatagramKeySize);
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
