#include "core/auth/ticket.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/auth/scram.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

constexpr absl::string_view kBase64UrlAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// A fixed wall-clock instant, a whole number of milliseconds.
const absl::Time kNow = absl::FromUnixMillis(1'700'000'000'123);

SessionKey SessionKeyFilledWith(uint8_t byte) {
  SessionKey key;
  key.fill(byte);
  return key;
}

TicketKey KeyFilledWith(uint8_t byte) {
  return TicketKeyFor(SessionKeyFilledWith(byte));
}

// Hans's ticket key, derived from his session key (all 0x11).
const TicketKey kHansKey = KeyFilledWith(0x11);

TicketClaims HansServesNotesToVader() {
  return TicketClaims{"hans", "vader", "notes.md", kNow + absl::Seconds(60)};
}

std::string HansTicket() {
  return IssueTicket(kHansKey, HansServesNotesToVader());
}

absl::StatusOr<TicketClaims> VerifyAsHans(absl::string_view ticket,
                                          absl::string_view file = "notes.md",
                                          absl::Time now = kNow) {
  return VerifyTicket(kHansKey, "hans", ticket, file, now);
}

std::string Decoded(absl::string_view ticket) {
  std::string bytes;
  EXPECT_TRUE(absl::WebSafeBase64Unescape(ticket, &bytes));
  return bytes;
}

// ---- The ticket key.

// HKDF-SHA-256, empty salt, info "PeerConnect ticket key v1", of the
// session key 0x11 * 32: the value `openssl kdf -keylen 32 -kdfopt
// digest:SHA256 -kdfopt hexkey:1111...11 -kdfopt "info:PeerConnect ticket
// key v1" HKDF` prints (docs/PROTOCOL.md gives it as the test vector).
TEST(TicketKeyTest, IsHkdfOfTheSessionKey) {
  const TicketKey key = TicketKeyFor(SessionKeyFilledWith(0x11));
  EXPECT_EQ(
      absl::BytesToHexString(absl::string_view(
          reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size())),
      "6146e3579a888b6b64077a70cdfc17c875d220b7699befff4e7527b846a5068a");
}

TEST(TicketKeyTest, DiffersFromTheSessionKeyAndBetweenSessions) {
  const SessionKey session = SessionKeyFilledWith(0x11);
  EXPECT_NE(TicketKeyFor(session).bytes, session);
  EXPECT_NE(TicketKeyFor(session), TicketKeyFor(SessionKeyFilledWith(0x12)));
  EXPECT_EQ(TicketKeyFor(session), TicketKeyFor(session));
}

// A ticket MAC'd with the session key itself (the version 1 scheme) does
// not verify under the ticket key.
TEST(TicketKeyTest, TheSessionKeyItselfMakesNoValidTicket) {
  TicketKey raw;
  raw.bytes = SessionKeyFilledWith(0x11);
  EXPECT_FALSE(VerifyAsHans(IssueTicket(raw, HansServesNotesToVader())).ok());
}

// ---- What a genuine ticket does.

TEST(TicketTest, IssuedTicketVerifiesAndGivesTheClaimsBack) {
  absl::StatusOr<TicketClaims> claims = VerifyAsHans(HansTicket());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->holder, "hans");
  EXPECT_EQ(claims->requester, "vader");
  EXPECT_EQ(claims->file_name, "notes.md");
  EXPECT_EQ(claims->expiry, kNow + absl::Seconds(60));
}

// The daemon writes tickets from the ticket key's HMAC states
// (TicketMacKey): the same text as from the key, which the holder checks.
TEST(TicketTest, WrittenFromTheMacKeyIsTheSameTicket) {
  const TicketClaims claims = HansServesNotesToVader();
  char text[kMaxTicketChars];
  const size_t size =
      WriteTicket(TicketMacKey(kHansKey), claims.holder, claims.requester,
                  claims.file_name, claims.expiry, text);
  ASSERT_GT(size, 0u);
  EXPECT_EQ(std::string(text, size), HansTicket());
  EXPECT_TRUE(VerifyAsHans(std::string(text, size)).ok());
  EXPECT_NE(TicketMacKey(kHansKey), TicketMacKey(KeyFilledWith(0x22)));
}

TEST(TicketTest, ExpiryIsKeptToTheMillisecond) {
  TicketClaims claims = HansServesNotesToVader();
  claims.expiry += absl::Microseconds(999);
  absl::StatusOr<TicketClaims> back =
      VerifyAsHans(IssueTicket(kHansKey, claims));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->expiry, kNow + absl::Seconds(60));
}

TEST(TicketTest, IsValidUntilItsExpiry) {
  const absl::Time expiry = HansServesNotesToVader().expiry;
  EXPECT_TRUE(
      VerifyAsHans(HansTicket(), "notes.md", expiry - absl::Milliseconds(1))
          .ok());
  EXPECT_EQ(VerifyAsHans(HansTicket(), "notes.md", expiry).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TicketTest, ExpiredTicketIsUnauthenticated) {
  absl::StatusOr<TicketClaims> claims =
      VerifyAsHans(HansTicket(), "notes.md", kNow + absl::Hours(1));
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(claims.status().message(), "ticket has expired");
}

TEST(TicketTest, ExpiryIsReadWithoutTheKey) {
  absl::StatusOr<absl::Time> expiry = ReadTicketExpiry(HansTicket());
  ASSERT_TRUE(expiry.ok()) << expiry.status();
  EXPECT_EQ(*expiry, HansServesNotesToVader().expiry);
  // It parses as VerifyTicket does: every truncation and garbage refused.
  const std::string ticket = HansTicket();
  for (size_t length = 0; length < ticket.size(); ++length) {
    EXPECT_EQ(ReadTicketExpiry(ticket.substr(0, length)).status().code(),
              absl::StatusCode::kUnauthenticated)
        << "length " << length;
  }
  EXPECT_EQ(ReadTicketExpiry("not a ticket").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TicketTest, TextIsBase64UrlWithoutPadding) {
  const std::string ticket = HansTicket();
  EXPECT_EQ(absl::string_view(ticket).find_first_not_of(kBase64UrlAlphabet),
            absl::string_view::npos)
      << ticket;
}

// The layout of core/auth/ticket.h, rebuilt here byte by byte.
TEST(TicketTest, FollowsTheDocumentedWireForm) {
  const std::string signed_part = absl::StrCat(
      "\x02", absl::string_view("\x00\x00\x01\x8b\xcf\xe6\x52\xdb", 8),
      "\x04hans", "\x05vader");
  ASSERT_EQ(absl::ToUnixMillis(kNow + absl::Seconds(60)), 0x18bcfe652db);
  const absl::StatusOr<Sha256Digest> mac = HmacSha256(
      absl::string_view(reinterpret_cast<const char*>(kHansKey.bytes.data()),
                        kHansKey.bytes.size()),
      absl::StrCat("PeerConnect ticket v2", signed_part,
                   absl::string_view("\x00\x08", 2), "notes.md"));
  ASSERT_TRUE(mac.ok()) << mac.status();
  const std::string expected = absl::StrCat(
      signed_part,
      absl::string_view(reinterpret_cast<const char*>(mac->data()), 16));
  EXPECT_EQ(absl::BytesToHexString(Decoded(HansTicket())),
            absl::BytesToHexString(expected));
}

TEST(TicketTest, StaysShortForTheLongestNames) {
  const std::string longest(64, 'u');
  const std::string ticket = IssueTicket(
      kHansKey, TicketClaims{longest, longest, std::string(255, 'f'),
                             kNow + absl::Seconds(60)});
  // 1 + 8 + 65 + 65 + 16 = 155 bytes, which base64url spells in 207.
  EXPECT_EQ(ticket.size(), 207u);
  EXPECT_TRUE(
      VerifyTicket(kHansKey, longest, ticket, std::string(255, 'f'), kNow)
          .ok());
  EXPECT_LT(HansTicket().size(), 60u);
}

// ---- What it refuses.

// A version 1 ticket (MAC'd with the session key itself) is not read.
TEST(TicketTest, VersionOneIsRefused) {
  std::string bytes = Decoded(HansTicket());
  bytes[0] = '\x01';
  absl::StatusOr<TicketClaims> claims =
      VerifyAsHans(absl::WebSafeBase64Escape(bytes));
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(claims.status().message(), "ticket is malformed: unknown version");
}

TEST(TicketTest, TicketForAnotherFileIsUnauthenticated) {
  EXPECT_EQ(VerifyAsHans(HansTicket(), "notes.md.bak").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(VerifyAsHans(HansTicket(), "notes.m").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TicketTest, AnotherHoldersKeyIsUnauthenticated) {
  absl::StatusOr<TicketClaims> claims =
      VerifyTicket(KeyFilledWith(0x12), "hans", HansTicket(), "notes.md", kNow);
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(TicketTest, TicketNamingAnotherHolderIsPermissionDenied) {
  absl::StatusOr<TicketClaims> claims =
      VerifyTicket(KeyFilledWith(0x22), "yoda", HansTicket(), "notes.md", kNow);
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(TicketTest, EveryTruncationIsUnauthenticated) {
  const std::string ticket = HansTicket();
  for (size_t length = 0; length < ticket.size(); ++length) {
    EXPECT_EQ(VerifyAsHans(ticket.substr(0, length)).status().code(),
              absl::StatusCode::kUnauthenticated)
        << "length " << length;
  }
}

TEST(TicketTest, GarbageIsUnauthenticated) {
  for (absl::string_view garbage :
       {"", "!", "not a ticket", "Bearer x", "////", "AAAA", "AQ"}) {
    EXPECT_EQ(VerifyAsHans(garbage).status().code(),
              absl::StatusCode::kUnauthenticated)
        << garbage;
  }
}

TEST(TicketTest, NonBase64UrlSpellingsAreUnauthenticated) {
  const std::string ticket = HansTicket();
  std::string standard_alphabet = ticket;  // '+' and '/' for '-' and '_'
  for (char& c : standard_alphabet) c = c == '-' ? '+' : c == '_' ? '/' : c;
  for (const std::string& text :
       {absl::StrCat(ticket, "="), absl::StrCat(ticket, "=="),
        absl::StrCat(" ", ticket), absl::StrCat(ticket, "\n"),
        absl::StrCat(ticket.substr(0, 10), ".", ticket.substr(10)),
        absl::StrCat(ticket, "+/")}) {
    EXPECT_EQ(VerifyAsHans(text).status().code(),
              absl::StatusCode::kUnauthenticated)
        << text;
  }
  if (standard_alphabet != ticket) {
    EXPECT_FALSE(VerifyAsHans(standard_alphabet).ok());
  }
}

TEST(TicketTest, TrailingBytesAreUnauthenticated) {
  const std::string longer =
      absl::WebSafeBase64Escape(absl::StrCat(Decoded(HansTicket()), "x"));
  absl::StatusOr<TicketClaims> claims = VerifyAsHans(longer);
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(claims.status().message(), "ticket is malformed: trailing bytes");
}

TEST(TicketTest, OversizedInputIsRefusedBeforeDecoding) {
  absl::StatusOr<TicketClaims> claims = VerifyAsHans(std::string(100000, 'A'));
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(claims.status().message(), "ticket is malformed: too long");
}

TEST(TicketTest, EveryChangedByteIsRefused) {
  const std::string bytes = Decoded(HansTicket());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t delta : {0x01, 0x80, 0xff}) {
      std::string changed = bytes;
      changed[i] = static_cast<char>(changed[i] ^ delta);
      EXPECT_FALSE(VerifyAsHans(absl::WebSafeBase64Escape(changed)).ok())
          << "byte " << i << " xor " << int{delta};
    }
  }
}

// 35 bytes: the last character carries 4 bits of data and 2 spare bits,
// which must be zero (another spelling of the same bytes is refused too).
TEST(TicketTest, EveryChangedCharacterIsRefused) {
  const std::string ticket = IssueTicket(
      kHansKey,
      TicketClaims{"hans", "yoda", "notes.md", kNow + absl::Seconds(60)});
  ASSERT_EQ(Decoded(ticket).size() % 3, 2u);
  ASSERT_TRUE(VerifyAsHans(ticket).ok());
  for (size_t i = 0; i < ticket.size(); ++i) {
    for (char replacement : kBase64UrlAlphabet) {
      if (replacement == ticket[i]) continue;
      std::string changed = ticket;
      changed[i] = replacement;
      EXPECT_FALSE(VerifyAsHans(changed).ok())
          << "character " << i << " -> " << replacement;
    }
  }
}

TEST(TicketTest, UnencodableClaimsGiveATicketThatNeverVerifies) {
  const std::string ticket =
      IssueTicket(kHansKey, TicketClaims{"hans", std::string(300, 'v'),
                                         "notes.md", kNow + absl::Seconds(60)});
  EXPECT_EQ(ticket, "");
  EXPECT_FALSE(VerifyAsHans(ticket).ok());
}

}  // namespace
}  // namespace pcfs
