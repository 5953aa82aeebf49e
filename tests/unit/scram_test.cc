#include "core/auth/scram.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/auth/credentials.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rfc7677_example.h"

namespace pcfs {
namespace {

using ::testing::HasSubstr;

// RFC 7677, section 3: the example exchange.
using rfc7677::kClientFinal;
using rfc7677::kClientFirst;
using rfc7677::kClientNonce;
using rfc7677::kIterations;
using rfc7677::kPassword;
using rfc7677::kSaltBase64;
using rfc7677::kServerFinal;
using rfc7677::kServerFirst;
using rfc7677::kServerNonce;
using rfc7677::kUser;

// Computed with Python's hashlib and hmac, independently of this code: the
// RFC example's verifier, and its session key
// HMAC(StoredKey, "PeerConnect session key" || AuthMessage).
constexpr absl::string_view kPencilVerifier =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
constexpr absl::string_view kSessionKeyHex =
    "dd130fce0a9bdace7808141dec2f072dcef0b3a49e79715dbeb9c05e3801fece";

std::vector<uint8_t> RfcSalt() {
  std::string salt;
  EXPECT_TRUE(absl::Base64Unescape(kSaltBase64, &salt));
  return std::vector<uint8_t>(salt.begin(), salt.end());
}

ScramVerifier PencilVerifier() {
  absl::StatusOr<ScramVerifier> verifier =
      MakeVerifier(kPassword, RfcSalt(), kIterations);
  EXPECT_TRUE(verifier.ok()) << verifier.status();
  return verifier.ok() ? *verifier : ScramVerifier{};
}

Credential PlainCredential(absl::string_view password) {
  Credential credential;
  credential.password = std::string(password);
  return credential;
}

Credential StoredCredential(const ScramVerifier& verifier) {
  Credential credential;
  credential.is_verifier = true;
  credential.verifier = verifier;
  return credential;
}

std::string Hex(const SessionKey& key) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
}

ScramClient RfcClient(absl::string_view password = kPassword) {
  absl::StatusOr<ScramClient> client =
      ScramClient::Start(kUser, password, kClientNonce);
  EXPECT_TRUE(client.ok()) << client.status();
  return *std::move(client);
}

// A server that has answered the RFC client-first-message with the RFC
// server-first-message.
ScramServer RfcServerAwaitingClientFinal() {
  ScramServer server;
  EXPECT_TRUE(server.HandleClientFirst(kClientFirst).ok());
  EXPECT_TRUE(server.MakeServerFirst(PencilVerifier(), kServerNonce).ok());
  return server;
}

// ---- The RFC 7677 example, byte for byte.

TEST(ScramClientTest, SendsTheRfc7677ClientFirstMessage) {
  EXPECT_EQ(RfcClient().client_first_message(), kClientFirst);
}

TEST(ScramClientTest, AnswersTheRfc7677ServerFirstWithItsClientFinal) {
  ScramClient client = RfcClient();
  absl::StatusOr<std::string> client_final =
      client.HandleServerFirst(kServerFirst);
  ASSERT_TRUE(client_final.ok()) << client_final.status();
  EXPECT_EQ(*client_final, kClientFinal);
}

TEST(ScramClientTest, AcceptsTheRfc7677ServerSignature) {
  ScramClient client = RfcClient();
  ASSERT_TRUE(client.HandleServerFirst(kServerFirst).ok());
  EXPECT_TRUE(client.HandleServerFinal(kServerFinal).ok());
}

TEST(ScramServerTest, ReadsTheUserFromTheRfc7677ClientFirst) {
  ScramServer server;
  absl::StatusOr<std::string> user = server.HandleClientFirst(kClientFirst);
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(*user, kUser);
  EXPECT_EQ(server.user(), kUser);
}

TEST(ScramServerTest, SendsTheRfc7677ServerFirstMessage) {
  ScramServer server;
  ASSERT_TRUE(server.HandleClientFirst(kClientFirst).ok());
  absl::StatusOr<std::string> server_first =
      server.MakeServerFirst(PencilVerifier(), kServerNonce);
  ASSERT_TRUE(server_first.ok()) << server_first.status();
  EXPECT_EQ(*server_first, kServerFirst);
}

TEST(ScramServerTest, AcceptsTheRfc7677ProofAndSendsItsSignature) {
  ScramServer server = RfcServerAwaitingClientFinal();
  absl::StatusOr<std::string> server_final =
      server.HandleClientFinal(kClientFinal);
  ASSERT_TRUE(server_final.ok()) << server_final.status();
  EXPECT_EQ(*server_final, kServerFinal);
}

TEST(ScramServerTest, SessionKeyMatchesTheReferenceVector) {
  ScramServer server = RfcServerAwaitingClientFinal();
  ASSERT_TRUE(server.HandleClientFinal(kClientFinal).ok());
  absl::StatusOr<SessionKey> key = server.session_key();
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(Hex(*key), kSessionKeyHex);
}

TEST(ScramClientTest, SessionKeyMatchesTheReferenceVector) {
  ScramClient client = RfcClient();
  ASSERT_TRUE(client.HandleServerFirst(kServerFirst).ok());
  ASSERT_TRUE(client.HandleServerFinal(kServerFinal).ok());
  absl::StatusOr<SessionKey> key = client.session_key();
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(Hex(*key), kSessionKeyHex);
}

// ---- Whole exchanges between the two state machines.

struct Outcome {
  absl::Status server;  // of HandleClientFinal
  absl::Status client;  // of HandleServerFinal (not run if the server failed)
  absl::StatusOr<SessionKey> server_key = absl::UnknownError("unset");
  absl::StatusOr<SessionKey> client_key = absl::UnknownError("unset");
};

Outcome Exchange(absl::string_view user, absl::string_view password,
                 const ScramVerifier& verifier) {
  Outcome outcome;
  absl::StatusOr<std::string> client_nonce = MakeScramNonce();
  absl::StatusOr<std::string> server_nonce = MakeScramNonce();
  if (!client_nonce.ok() || !server_nonce.ok()) {
    outcome.server = absl::InternalError("no nonce");
    return outcome;
  }
  absl::StatusOr<ScramClient> client =
      ScramClient::Start(user, password, *client_nonce);
  ScramServer server;
  absl::StatusOr<std::string> server_first =
      client.ok() ? server.HandleClientFirst(client->client_first_message())
                  : client.status();
  if (server_first.ok()) {
    server_first = server.MakeServerFirst(verifier, *server_nonce);
  }
  absl::StatusOr<std::string> client_final =
      server_first.ok() ? client->HandleServerFirst(*server_first)
                        : server_first.status();
  absl::StatusOr<std::string> server_final =
      client_final.ok() ? server.HandleClientFinal(*client_final)
                        : client_final.status();
  outcome.server = server_final.status();
  if (server_final.ok()) {
    outcome.client = client->HandleServerFinal(*server_final);
    outcome.client_key = client->session_key();
  }
  outcome.server_key = server.session_key();
  return outcome;
}

TEST(ScramExchangeTest, BothSidesDeriveTheSameSessionKey) {
  Outcome outcome =
      Exchange("hans", "hanspass", *MakeVerifier("hanspass", RfcSalt(), 4096));
  ASSERT_TRUE(outcome.server.ok()) << outcome.server;
  ASSERT_TRUE(outcome.client.ok()) << outcome.client;
  ASSERT_TRUE(outcome.server_key.ok());
  ASSERT_TRUE(outcome.client_key.ok());
  EXPECT_EQ(*outcome.server_key, *outcome.client_key);
}

TEST(ScramExchangeTest, EachLoginHasItsOwnSessionKey) {
  ScramVerifier verifier = *MakeVerifier("hanspass", RfcSalt(), 4096);
  Outcome first = Exchange("hans", "hanspass", verifier);
  Outcome second = Exchange("hans", "hanspass", verifier);
  ASSERT_TRUE(first.server_key.ok());
  ASSERT_TRUE(second.server_key.ok());
  EXPECT_NE(*first.server_key, *second.server_key);
}

TEST(ScramExchangeTest, WrongPasswordIsRefusedByTheServer) {
  Outcome outcome = Exchange("user", "pencil2", PencilVerifier());
  EXPECT_EQ(outcome.server.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(outcome.server_key.status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ScramExchangeTest, PlainPasswordVerifiedOnTheFlyLogsIn) {
  Credential plain = PlainCredential("falcon*solo");
  absl::StatusOr<ScramVerifier> verifier =
      ServerVerifierFor("luke", plain, *MakeSaltSecret());
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  Outcome outcome = Exchange("luke", "falcon*solo", *verifier);
  EXPECT_TRUE(outcome.client.ok()) << outcome.server << " " << outcome.client;
}

TEST(ScramExchangeTest, UnknownUserIsRefusedAtTheProof) {
  absl::StatusOr<ScramVerifier> mock =
      MockVerifierFor("nobody", *MakeSaltSecret());
  ASSERT_TRUE(mock.ok()) << mock.status();
  Outcome outcome = Exchange("nobody", "", *mock);
  EXPECT_EQ(outcome.server.code(), absl::StatusCode::kUnauthenticated);
}

TEST(ScramExchangeTest, CommaAndEqualsInTheUserNameRoundTrip) {
  absl::StatusOr<ScramClient> client =
      ScramClient::Start("a,b=c", "pencil", kClientNonce);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(client->client_first_message(),
            "n,,n=a=2Cb=3Dc,r=rOprNGfwEbeRWgbNEkqO");
  ScramServer server;
  absl::StatusOr<std::string> user =
      server.HandleClientFirst(client->client_first_message());
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(*user, "a,b=c");
}

// ---- The server's checks.

TEST(ScramServerTest, RefusesATamperedNonce) {
  ScramServer server = RfcServerAwaitingClientFinal();
  std::string tampered(kClientFinal);
  tampered[10] = 'X';  // inside the client's part of r=
  absl::StatusOr<std::string> server_final = server.HandleClientFinal(tampered);
  EXPECT_EQ(server_final.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server_final.status().message(), HasSubstr("nonce"));
}

TEST(ScramServerTest, RefusesATamperedProof) {
  ScramServer server = RfcServerAwaitingClientFinal();
  std::string tampered(kClientFinal);
  tampered[tampered.size() - 5] = 'A';  // inside p=
  EXPECT_EQ(server.HandleClientFinal(tampered).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(ScramServerTest, RefusesAChannelBindingThatDoesNotMatchTheHeader) {
  ScramServer server = RfcServerAwaitingClientFinal();
  std::string client_final(kClientFinal);
  client_final.replace(0, 6, "c=eSws");  // base64 of "y,,"
  absl::StatusOr<std::string> result = server.HandleClientFinal(client_final);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("channel binding"));
}

TEST(ScramServerTest, RefusesAClientThatRequiresChannelBinding) {
  ScramServer server;
  EXPECT_EQ(
      server.HandleClientFirst("p=tls-unique,,n=user,r=abc").status().code(),
      absl::StatusCode::kUnimplemented);
}

TEST(ScramServerTest, RefusesAnAuthorizationIdentity) {
  ScramServer server;
  EXPECT_EQ(server.HandleClientFirst("n,a=admin,n=user,r=abc").status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST(ScramServerTest, RefusesAMalformedUserEscape) {
  ScramServer server;
  EXPECT_EQ(server.HandleClientFirst("n,,n=a=2c,r=abc").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ScramServerTest, RefusesAnEmptyNonce) {
  ScramServer server;
  EXPECT_EQ(server.HandleClientFirst("n,,n=user,r=").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ScramServerTest, RefusesAMandatoryExtension) {
  ScramServer server;
  EXPECT_EQ(server.HandleClientFirst("n,,m=ext,n=user,r=abc").status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST(ScramServerTest, RefusesToSkipTheServerFirstMessage) {
  ScramServer server;
  ASSERT_TRUE(server.HandleClientFirst(kClientFirst).ok());
  EXPECT_EQ(server.HandleClientFinal(kClientFinal).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ScramServerTest, StaysFailedAfterAWrongProof) {
  ScramServer server = RfcServerAwaitingClientFinal();
  std::string tampered(kClientFinal);
  tampered[tampered.size() - 5] = 'A';
  ASSERT_FALSE(server.HandleClientFinal(tampered).ok());
  EXPECT_EQ(server.HandleClientFinal(kClientFinal).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// ---- The client's checks.

TEST(ScramClientTest, DetectsABadServerSignature) {
  ScramClient client = RfcClient();
  ASSERT_TRUE(client.HandleServerFirst(kServerFirst).ok());
  absl::Status status = client.HandleServerFinal(
      "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(client.session_key().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ScramClientTest, DetectsAServerThatDoesNotKnowThePassword) {
  ScramClient client = RfcClient("wrong");  // as if the server held "pencil"
  ASSERT_TRUE(client.HandleServerFirst(kServerFirst).ok());
  EXPECT_EQ(client.HandleServerFinal(kServerFinal).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(ScramClientTest, ReportsAServerError) {
  ScramClient client = RfcClient();
  ASSERT_TRUE(client.HandleServerFirst(kServerFirst).ok());
  absl::Status status = client.HandleServerFinal("e=invalid-proof");
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("invalid-proof"));
}

TEST(ScramClientTest, RefusesANonceThatDoesNotExtendItsOwn) {
  ScramClient client = RfcClient();
  absl::StatusOr<std::string> result = client.HandleServerFirst(
      "r=XOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ScramClientTest, RefusesANonceWithoutAServerPart) {
  ScramClient client = RfcClient();
  absl::StatusOr<std::string> result = client.HandleServerFirst(
      "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ScramClientTest, RefusesAnIterationCountAboveTheLimit) {
  ScramClient client = RfcClient();
  absl::StatusOr<std::string> result = client.HandleServerFirst(
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("iteration count"));
}

TEST(ScramClientTest, RefusesAMissingSalt) {
  ScramClient client = RfcClient();
  absl::StatusOr<std::string> result = client.HandleServerFirst(
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,i=4096");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ScramClientTest, RefusesANonceWithAComma) {
  EXPECT_EQ(ScramClient::Start("user", "pencil", "ab,cd").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ScramClientTest, RefusesToReadTheServerFinalBeforeTheServerFirst) {
  ScramClient client = RfcClient();
  EXPECT_EQ(client.HandleServerFinal(kServerFinal).code(),
            absl::StatusCode::kFailedPrecondition);
}

// ---- saslname escaping.

TEST(SaslNameTest, EscapesCommaAndEquals) {
  EXPECT_EQ(EscapeSaslName("a,b=c=,"), "a=2Cb=3Dc=3D=2C");
}

TEST(SaslNameTest, UnescapingInvertsEscaping) {
  const std::string name = "=,==,,x=2C";
  absl::StatusOr<std::string> back = UnescapeSaslName(EscapeSaslName(name));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, name);
}

TEST(SaslNameTest, RefusesMalformedEscapes) {
  EXPECT_FALSE(UnescapeSaslName("a=").ok());
  EXPECT_FALSE(UnescapeSaslName("a=2").ok());
  EXPECT_FALSE(UnescapeSaslName("a=2c").ok());
  EXPECT_FALSE(UnescapeSaslName("a=41").ok());
  EXPECT_FALSE(UnescapeSaslName("a,b").ok());
}

// ---- Verifiers.

TEST(ScramVerifierTest, MakeVerifierMatchesTheReferenceVector) {
  EXPECT_EQ(FormatVerifier(PencilVerifier()), kPencilVerifier);
}

TEST(ScramVerifierTest, ParseInvertsFormat) {
  absl::StatusOr<ScramVerifier> parsed = ParseVerifier(kPencilVerifier);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(FormatVerifier(*parsed), kPencilVerifier);
  EXPECT_EQ(parsed->salt, RfcSalt());
}

TEST(ScramVerifierTest, PasswordMatchesItsVerifier) {
  absl::StatusOr<bool> matches =
      PasswordMatchesVerifier(PencilVerifier(), "pencil");
  ASSERT_TRUE(matches.ok()) << matches.status();
  EXPECT_TRUE(*matches);
}

TEST(ScramVerifierTest, OtherPasswordDoesNotMatch) {
  absl::StatusOr<bool> matches =
      PasswordMatchesVerifier(PencilVerifier(), "Pencil");
  ASSERT_TRUE(matches.ok()) << matches.status();
  EXPECT_FALSE(*matches);
}

TEST(ScramVerifierTest, MakeVerifierRefusesAnEmptySalt) {
  EXPECT_EQ(MakeVerifier("pencil", {}, 4096).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ScramVerifierTest, MakeVerifierRefusesZeroIterations) {
  EXPECT_EQ(MakeVerifier("pencil", RfcSalt(), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ScramVerifierTest, ServerVerifierForAStoredVerifierIsThatVerifier) {
  Credential stored = StoredCredential(PencilVerifier());
  absl::StatusOr<ScramVerifier> verifier =
      ServerVerifierFor("user", stored, SaltSecret{});
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(FormatVerifier(*verifier), kPencilVerifier);
}

TEST(ScramVerifierTest, PlainPasswordVerifierIsStableForOneSecret) {
  Credential plain = PlainCredential("hanspass");
  SaltSecret secret{};
  secret[0] = 1;
  absl::StatusOr<ScramVerifier> first =
      ServerVerifierFor("hans", plain, secret);
  absl::StatusOr<ScramVerifier> again =
      ServerVerifierFor("hans", plain, secret);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(FormatVerifier(*first), FormatVerifier(*again));
  EXPECT_EQ(first->salt.size(), kScramSaltBytes);
  EXPECT_EQ(first->iterations, kScramDefaultIterations);
}

TEST(ScramVerifierTest, PlainPasswordSaltChangesWithTheSecret) {
  Credential plain = PlainCredential("hanspass");
  SaltSecret other{};
  other[0] = 2;
  absl::StatusOr<ScramVerifier> first =
      ServerVerifierFor("hans", plain, SaltSecret{});
  absl::StatusOr<ScramVerifier> second =
      ServerVerifierFor("hans", plain, other);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first->salt, second->salt);
}

TEST(ScramVerifierTest, MockVerifierLooksLikeAPlainPasswordOne) {
  Credential plain = PlainCredential("hanspass");
  absl::StatusOr<ScramVerifier> real =
      ServerVerifierFor("hans", plain, SaltSecret{});
  absl::StatusOr<ScramVerifier> mock = MockVerifierFor("hans", SaltSecret{});
  ASSERT_TRUE(real.ok() && mock.ok());
  EXPECT_EQ(mock->salt, real->salt);
  EXPECT_EQ(mock->iterations, real->iterations);
}

TEST(ScramVerifierTest, MockVerifierIsStableForOneName) {
  absl::StatusOr<ScramVerifier> first = MockVerifierFor("leia", SaltSecret{});
  absl::StatusOr<ScramVerifier> again = MockVerifierFor("leia", SaltSecret{});
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(FormatVerifier(*first), FormatVerifier(*again));
}

TEST(ScramNonceTest, IsTwentyFourCharactersAndFreshEachTime) {
  absl::StatusOr<std::string> first = MakeScramNonce();
  absl::StatusOr<std::string> second = MakeScramNonce();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->size(), 24u);
  EXPECT_NE(*first, *second);
}

}  // namespace
}  // namespace pcfs
