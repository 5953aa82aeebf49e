// peerctl/download_url.h: the curl command `peerctl url` prints.
#include "peerctl/download_url.h"

#include <string>

#include "absl/time/time.h"
#include "core/auth/ticket.h"
#include "gtest/gtest.h"
#include "peerctl/tls.h"

namespace pcfs {
namespace {

TEST(ShellQuoteTest, QuotesEverythingAndEscapesQuotes) {
  EXPECT_EQ(ShellQuote("plain"), "'plain'");
  EXPECT_EQ(ShellQuote("it's $HOME `x`"), "'it'\\''s $HOME `x`'");
  EXPECT_EQ(ShellQuote(""), "''");
}

FileLocation Sample() {
  FileLocation location;
  location.holder = "hans";
  location.address = *SocketAddress::FromNumeric("10.0.0.2", 40123);
  location.ticket = "AQAAAaI6HXBF";
  for (size_t i = 0; i < location.key_pin.size(); ++i) {
    location.key_pin[i] = static_cast<uint8_t>(i);
  }
  return location;
}

TEST(FormatCurlCommandTest, PinsTheHoldersKey) {
  EXPECT_EQ(FormatCurlCommand("my file's.mp4", Sample()),
            "curl --fail --no-clobber --remove-on-error -k --pinnedpubkey '" +
                CurlPinnedPublicKey(Sample().key_pin) +
                "' -H 'Authorization: Bearer AQAAAaI6HXBF' -o 'my "
                "file'\\''s.mp4' 'https://10.0.0.2:40123/f/"
                "my%20file%27s.mp4'");
}

TEST(FormatCurlCommandTest, BracketsAnIpv6Holder) {
  FileLocation location = Sample();
  location.address = *SocketAddress::FromNumeric("::1", 40124);
  EXPECT_NE(FormatCurlCommand("a", location).find("'https://[::1]:40124/f/a'"),
            std::string::npos);
}

TEST(FormatCurlCommandTest, PlaintextHolderGetsPlainHttp) {
  FileLocation location = Sample();
  location.key_pin = {};
  EXPECT_EQ(FormatCurlCommand("a", location),
            "curl --fail --no-clobber --remove-on-error -H "
            "'Authorization: Bearer AQAAAaI6HXBF' -o 'a' "
            "'http://10.0.0.2:40123/f/a'");
}

TEST(TicketExpiryTest, ReadsTheExpiryOfARealTicket) {
  TicketKey key{};
  const absl::Time expiry = absl::FromUnixMillis(1704067260000);
  const std::string ticket = IssueTicket(key, {"hans", "vader", "a", expiry});
  absl::StatusOr<absl::Time> read = TicketExpiry(ticket);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, expiry);
  EXPECT_FALSE(TicketExpiry("not a ticket!").ok());
}

}  // namespace
}  // namespace pcfs
