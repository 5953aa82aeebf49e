// The cluster's stream entries and session hashes: every kind round-trips,
// IPv4 and IPv6 file servers included; every malformed field is refused with
// a message naming it; the publication value "SIZE ROOTHEX" the same.
#include "daemon/cluster_event.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using Kind = ClusterEvent::Kind;

ClusterSession SampleSession() {
  ClusterSession session;
  session.user = "hans";
  session.daemon_id = "0123456789abcdef";
  session.session_id = 18446744073709551615u;  // the largest
  session.file_server.family = 4;
  session.file_server.ip = {192, 0, 2, 7};
  session.file_server.port = 40123;
  for (size_t i = 0; i < 32; ++i) {
    session.key_pin[i] = static_cast<uint8_t>(i * 7 + 1);
    session.ticket_key[i] = static_cast<uint8_t>(255 - i);
  }
  return session;
}

ClusterEvent Login() {
  ClusterEvent event;
  event.kind = Kind::kLogin;
  event.session = SampleSession();
  return event;
}

ClusterEvent Publish() {
  ClusterEvent event;
  event.kind = Kind::kPublish;
  event.session.user = "vader";
  event.name = "death star plans.pdf";
  event.meta.size = 1234567;
  event.meta.root.fill(0xab);
  return event;
}

// `fields` with the value of `field` replaced by `value` (which must exist).
FieldValues With(FieldValues fields, const std::string& field,
                 const std::string& value) {
  bool found = false;
  for (auto& [name, v] : fields) {
    if (name == field) {
      v = value;
      found = true;
    }
  }
  EXPECT_TRUE(found) << field;
  return fields;
}

FieldValues Without(FieldValues fields, const std::string& field) {
  std::erase_if(fields, [&](const auto& f) { return f.first == field; });
  return fields;
}

// Decoding `fields` fails with a message that names `field`.
void ExpectRefused(const FieldValues& fields, const std::string& field) {
  absl::StatusOr<ClusterEvent> decoded = DecodeClusterEvent(fields);
  ASSERT_FALSE(decoded.ok()) << field;
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StrContains(decoded.status().message(), "field \"" + field + "\""))
      << decoded.status();
}

TEST(ClusterEventTest, EveryKindRoundTrips) {
  ClusterEvent logout;
  logout.kind = Kind::kLogout;
  logout.session.user = "yoda";
  logout.session.daemon_id = "fedcba9876543210";
  logout.session.session_id = 0;
  ClusterEvent unpublish;
  unpublish.kind = Kind::kUnpublish;
  unpublish.session.user = "vader";
  unpublish.name = "ü.txt";
  for (const ClusterEvent& event : {Login(), logout, Publish(), unpublish}) {
    FieldValues fields = EncodeClusterEvent(event);
    ASSERT_FALSE(fields.empty());
    EXPECT_EQ(fields[0].first, "op");
    absl::StatusOr<ClusterEvent> decoded = DecodeClusterEvent(fields);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, event);
  }
}

TEST(ClusterEventTest, EntriesAreReadableText) {
  const FieldValues login = EncodeClusterEvent(Login());
  const FieldValues expected_start = {{"op", "login"},
                                      {"user", "hans"},
                                      {"daemon", "0123456789abcdef"},
                                      {"session", "18446744073709551615"},
                                      {"file", "192.0.2.7 40123"}};
  ASSERT_GE(login.size(), expected_start.size());
  EXPECT_EQ(FieldValues(login.begin(), login.begin() + 5), expected_start);
  std::string root;
  for (int i = 0; i < 32; ++i) root += "ab";
  EXPECT_EQ(EncodeClusterEvent(Publish()),
            (FieldValues{{"op", "pub"},
                         {"user", "vader"},
                         {"name", "death star plans.pdf"},
                         {"size", "1234567"},
                         {"root", root}}));
}

TEST(ClusterEventTest, IPv4AndIPv6FileServersRoundTrip) {
  ClusterSession v6 = SampleSession();
  v6.file_server.family = 6;
  v6.file_server.ip = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                       0,    0,    0,    0,    0, 0, 0, 0x01};
  v6.file_server.port = 0;
  ClusterSession loopback6 = SampleSession();
  loopback6.file_server.family = 6;
  loopback6.file_server.ip = {};
  loopback6.file_server.ip[15] = 1;
  loopback6.file_server.port = 65535;
  ClusterSession mapped = SampleSession();
  mapped.file_server.family = 6;
  mapped.file_server.ip = {0, 0, 0,    0,    0,   0, 0, 0,
                           0, 0, 0xff, 0xff, 127, 0, 0, 1};
  for (const ClusterSession& session :
       {SampleSession(), v6, loopback6, mapped}) {
    const FieldValues fields = EncodeClusterSession(session);
    absl::StatusOr<ClusterSession> decoded = DecodeClusterSession(fields);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, session);
    ClusterEvent login;
    login.session = session;
    absl::StatusOr<ClusterEvent> event =
        DecodeClusterEvent(EncodeClusterEvent(login));
    ASSERT_TRUE(event.ok()) << event.status();
    EXPECT_EQ(*event, login);
  }
  bool found = false;
  for (const auto& [field, value] : EncodeClusterSession(v6)) {
    if (field == "file") {
      EXPECT_EQ(value, "2001:db8::1 0");
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(ClusterEventTest, SessionHashFieldsMayComeInAnyOrder) {
  FieldValues fields = EncodeClusterSession(SampleSession());
  std::reverse(fields.begin(), fields.end());
  absl::StatusOr<ClusterSession> decoded = DecodeClusterSession(fields);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, SampleSession());
}

TEST(ClusterEventTest, EveryMalformedLoginFieldIsRefusedByName) {
  const FieldValues login = EncodeClusterEvent(Login());
  ExpectRefused(With(login, "op", "signin"), "op");
  ExpectRefused(With(login, "user", ""), "user");
  ExpectRefused(With(login, "user", "han s"), "user");
  ExpectRefused(With(login, "user", std::string(65, 'a')), "user");
  ExpectRefused(With(login, "daemon", "0123456789ABCDEF"), "daemon");
  ExpectRefused(With(login, "daemon", "0123456789abcde"), "daemon");
  ExpectRefused(With(login, "session", "-1"), "session");
  ExpectRefused(With(login, "session", "18446744073709551616"), "session");
  ExpectRefused(With(login, "session", "007"), "session");
  ExpectRefused(With(login, "session", ""), "session");
  ExpectRefused(With(login, "file", "192.0.2.7"), "file");
  ExpectRefused(With(login, "file", "192.0.2.7 65536"), "file");
  ExpectRefused(With(login, "file", "192.0.2.7 +80"), "file");
  ExpectRefused(With(login, "file", "192.0.2 80"), "file");
  ExpectRefused(With(login, "file", "192.0.2.300 80"), "file");
  ExpectRefused(With(login, "file", "[::1] 80"), "file");
  ExpectRefused(With(login, "file", "0:0::1 80"), "file");  // not shortest
  ExpectRefused(With(login, "file", "example.org 80"), "file");
  ExpectRefused(With(login, "pin", std::string(63, '0')), "pin");
  ExpectRefused(With(login, "pin", std::string(64, 'A')), "pin");
  ExpectRefused(With(login, "pin", std::string(64, 'g')), "pin");
  ExpectRefused(With(login, "ticket_key", std::string(65, '0')), "ticket_key");
  for (const char* field :
       {"user", "daemon", "session", "file", "pin", "ticket_key"}) {
    ExpectRefused(Without(login, field), field);
  }
}

TEST(ClusterEventTest, EveryMalformedPublicationFieldIsRefusedByName) {
  const FieldValues pub = EncodeClusterEvent(Publish());
  ExpectRefused(With(pub, "name", ""), "name");
  ExpectRefused(With(pub, "name", "a/b"), "name");
  ExpectRefused(With(pub, "name", ".."), "name");
  ExpectRefused(With(pub, "name", std::string("a\nb")), "name");
  ExpectRefused(With(pub, "name", std::string(256, 'x')), "name");
  ExpectRefused(With(pub, "size", "12 "), "size");
  ExpectRefused(With(pub, "size", "0x10"), "size");
  ExpectRefused(With(pub, "root", std::string(64, ' ')), "root");
  ExpectRefused(With(pub, "user", "vader!"), "user");
  for (const char* field : {"user", "name", "size", "root"}) {
    ExpectRefused(Without(pub, field), field);
  }
  ClusterEvent unp;
  unp.kind = Kind::kUnpublish;
  unp.session.user = "vader";
  unp.name = "x";
  ExpectRefused(Without(EncodeClusterEvent(unp), "name"), "name");
}

TEST(ClusterEventTest, UnknownDuplicateAndMisplacedFieldsAreRefused) {
  FieldValues pub = EncodeClusterEvent(Publish());
  FieldValues extra = pub;
  extra.emplace_back("pin", std::string(64, '0'));  // a login's, not a pub's
  ExpectRefused(extra, "pin");
  FieldValues twice = pub;
  twice.emplace_back("name", "other");
  ExpectRefused(twice, "name");
  FieldValues op_last = pub;
  std::rotate(op_last.begin(), op_last.begin() + 1, op_last.end());
  ExpectRefused(op_last, "op");
  ExpectRefused({}, "op");

  FieldValues session = EncodeClusterSession(SampleSession());
  session.emplace_back("op", "login");
  absl::StatusOr<ClusterSession> decoded = DecodeClusterSession(session);
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "\"op\""))
      << decoded.status();
  decoded = DecodeClusterSession(
      With(EncodeClusterSession(SampleSession()), "pin", "zz"));
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(absl::StrContains(decoded.status().message(), "field \"pin\""))
      << decoded.status();
}

TEST(ClusterEventTest, PublicationValueRoundTripsAndRefusesTheRest) {
  FileMeta meta;
  meta.size = 0;
  meta.root.fill(0x0f);
  const std::string value = EncodePublicationValue(meta);
  std::string root;
  for (int i = 0; i < 32; ++i) root += "0f";
  EXPECT_EQ(value, "0 " + root);
  absl::StatusOr<FileMeta> decoded = DecodePublicationValue(value);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, meta);
  const std::string hex(64, 'a');
  for (const std::string& bad : std::vector<std::string>{
           "", hex, "12", "12 " + hex + " ", "012 " + hex, "12  " + hex,
           "12 " + hex.substr(1), "-1 " + hex, "12 " + std::string(64, 'A')}) {
    absl::StatusOr<FileMeta> refused = DecodePublicationValue(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_TRUE(
        absl::StrContains(refused.status().message(), "publication value"))
        << refused.status();
  }
}

}  // namespace
}  // namespace pcfs
