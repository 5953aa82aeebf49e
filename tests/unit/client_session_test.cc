// core/client's ClientSession and ListPager, driven against the daemon's
// real request handler (daemon/handlers.h) with a fake clock and no
// sockets, and against datagrams built byte by byte.
#include "core/client/client_session.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/auth/datagram_auth.h"
#include "core/client/list_pager.h"
#include "daemon/handlers.h"
#include "gtest/gtest.h"

namespace pcfs::client {
namespace {

using protocol::Header;
using protocol::MessageType;
using protocol::ResultCode;

constexpr uint32_t kFirstId = 500;

Endpoint Loopback(uint16_t port) {
  Endpoint e;
  e.family = 4;
  e.ip = {127, 0, 0, 1};
  e.port = port;
  return e;
}

// The sequence number of a request `session` sealed (nullopt: it does not
// open under the session's key for requests).
std::optional<uint64_t> SequenceOf(const ClientSession& session,
                                   std::span<const uint8_t> request) {
  std::vector<uint8_t> body(request.size() - protocol::kHeaderSize);
  return OpenDatagram(session.datagram_keys(), Direction::kToDaemon, request,
                      body);
}

class ClientSessionTest : public ::testing::Test {
 protected:
  ClientSessionTest()
      : credentials_(*CredentialStore::Create(
            *CredentialTable::Parse("hans hanspass\nyoda yodapass\n"))),
        address_limiter_(RateLimiter::Options{1000, absl::Milliseconds(1)}),
        failure_limiter_(RateLimiter::Options{100, absl::Seconds(60)}),
        handler_(MakeShared(), RequestHandler::Options{}, now_) {}

  RequestHandler::Shared MakeShared() {
    RequestHandler::Shared shared;
    shared.registry = &registry_;
    shared.sessions = &sessions_;
    shared.credentials = credentials_.get();
    shared.counters = &counters_;
    shared.address_limiter = &address_limiter_;
    shared.failure_limiter = &failure_limiter_;
    shared.used_nonces = &used_nonces_;
    shared.login_secret.fill(7);
    shared.wall_clock = [] { return absl::FromUnixSeconds(1800000000); };
    return shared;
  }

  // The next try of the session's request.
  std::vector<uint8_t> NextTry(ClientSession& session,
                               const RequestBody& body = RequestBody()) {
    std::vector<uint8_t> datagram(protocol::kMaxDatagramSize);
    datagram.resize(session.EncodeTry(now_, body, datagram));
    return datagram;
  }

  // The daemon's answer to `datagram` (empty if it drops it).
  std::vector<uint8_t> Daemon(const std::vector<uint8_t>& datagram) {
    std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
    reply.resize(handler_.Handle(datagram, Loopback(5000), now_, reply));
    return reply;
  }

  // Sends every login step once and feeds each reply back; the status of
  // the last ContinueLogin (or why the exchange broke off).
  absl::Status LogIn(ClientSession& session, const std::string& user,
                     const std::string& password) {
    if (absl::Status s = session.StartLogin(user, password, 7000); !s.ok()) {
      return s;
    }
    for (int step = 0; step < 2 && session.in_flight(); ++step) {
      replies_.push_back(Daemon(NextTry(session)));
      std::optional<Reply> reply = session.Receive(replies_.back());
      if (!reply.has_value()) return absl::DataLossError("reply not taken");
      if (absl::Status s = session.ContinueLogin(*reply); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // A session of `user` logged in through the handler.
  ClientSession LoggedIn(const std::string& user, const std::string& password) {
    ClientSession session(kFirstId);
    EXPECT_TRUE(LogIn(session, user, password).ok());
    return session;
  }

  absl::Time now_ = absl::UnixEpoch() + absl::Hours(1000);
  Registry registry_;
  SessionTable sessions_;
  std::unique_ptr<CredentialStore> credentials_;
  DaemonCounters counters_;
  RateLimiter address_limiter_;
  RateLimiter failure_limiter_;
  UsedLoginNonces used_nonces_;
  RequestHandler handler_;
  std::vector<std::vector<uint8_t>> replies_;  // they outlive the Replies
};

Header HeaderOf(const std::vector<uint8_t>& datagram) {
  absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(datagram);
  EXPECT_TRUE(message.ok()) << message.status();
  return message.ok() ? message->header : Header();
}

// ---- Login.

TEST_F(ClientSessionTest, LoginThroughTheHandlerStartsASession) {
  ClientSession session(kFirstId);
  ASSERT_TRUE(LogIn(session, "hans", "hanspass").ok());
  EXPECT_TRUE(session.logged_in());
  EXPECT_TRUE(registry_.IsActive("hans", now_));
}

TEST_F(ClientSessionTest, LoginTakesTheTimesTheDaemonAnnounces) {
  ClientSession session = LoggedIn("hans", "hanspass");
  EXPECT_EQ(session.heartbeat_interval(), absl::Seconds(2));
  EXPECT_EQ(session.session_timeout(), absl::Seconds(3));
}

TEST_F(ClientSessionTest, WrongPasswordIsUnauthenticated) {
  ClientSession session(kFirstId);
  EXPECT_TRUE(absl::IsUnauthenticated(LogIn(session, "hans", "vaderpass")));
  EXPECT_FALSE(session.logged_in());
}

// A daemon older than TLS key pins refuses the pin as trailing bytes: the
// client says that the daemon needs an upgrade.
TEST_F(ClientSessionTest, DaemonOlderThanKeyPinsIsNamed) {
  ClientSession session(kFirstId);
  ASSERT_TRUE(session.StartLogin("hans", "hanspass", 7000).ok());
  replies_.push_back(Daemon(NextTry(session)));
  std::optional<Reply> first = session.Receive(replies_.back());
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(session.ContinueLogin(*first).ok());
  const Header finish = HeaderOf(NextTry(session));
  std::vector<uint8_t> refusal(protocol::kMaxDatagramSize);
  refusal.resize(protocol::EncodeStatusReply(
      finish, ResultCode::kMalformed,
      "LOGIN_FINISH request has 32 trailing bytes", refusal));
  replies_.push_back(refusal);
  std::optional<Reply> reply = session.Receive(replies_.back());
  ASSERT_TRUE(reply.has_value());
  absl::Status s = session.ContinueLogin(*reply);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "upgrade peerconnectd")) << s;
}

TEST_F(ClientSessionTest, LoginOfAnActiveUserIsAlreadyExists) {
  ClientSession first = LoggedIn("hans", "hanspass");
  ClientSession second(kFirstId + 100);
  EXPECT_TRUE(absl::IsAlreadyExists(LogIn(second, "hans", "hanspass")));
}

TEST_F(ClientSessionTest, LoginStepsAreUnsealedAndKeepTheirRequestIds) {
  ClientSession session(kFirstId);
  ASSERT_TRUE(session.StartLogin("hans", "hanspass", 7000).ok());
  const std::vector<uint8_t> login = NextTry(session);
  const std::vector<uint8_t> again = NextTry(session);
  EXPECT_EQ(login, again);  // a retransmitted step is the same bytes
  EXPECT_EQ(HeaderOf(login).request_id, kFirstId);
  EXPECT_EQ(HeaderOf(login).session_id, 0u);
  EXPECT_EQ(HeaderOf(login).sequence, 0u);
}

TEST_F(ClientSessionTest, RequestBeforeLoginIsRefused) {
  ClientSession session(kFirstId);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      session.StartRequest(MessageType::kHeartbeat)));
}

// ---- Sealing and sequence numbers.

TEST_F(ClientSessionTest, HeartbeatIsAnsweredWithKOk) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  const std::vector<uint8_t> reply = Daemon(NextTry(session));
  std::optional<Reply> taken = session.Receive(reply);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->code, ResultCode::kOk);
}

TEST_F(ClientSessionTest, HeartbeatTryIsTheHeaderSealedWithSequenceOne) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  const std::vector<uint8_t> sent = NextTry(session);
  // The same datagram built by hand from the codec and the one Seal.
  Header header;
  header.type = static_cast<uint8_t>(MessageType::kHeartbeat);
  header.request_id = kFirstId + 2;  // after LOGIN and LOGIN_FINISH
  header.session_id = session.session_id();
  std::vector<uint8_t> expected(protocol::kHeaderSize +
                                protocol::kEmptyRequestPaddingBytes);
  ASSERT_EQ(protocol::EncodeEmptyRequest(header, expected,
                                         protocol::kEmptyRequestPaddingBytes),
            expected.size());
  SealDatagram(session.datagram_keys(), Direction::kToDaemon, 1, expected);
  EXPECT_EQ(sent, expected);
}

TEST_F(ClientSessionTest, EachTryCarriesTheNextSequenceNumber) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  const std::vector<uint8_t> first = NextTry(session);
  const std::vector<uint8_t> second = NextTry(session);
  EXPECT_EQ(SequenceOf(session, first), 1u);
  EXPECT_EQ(SequenceOf(session, second), 2u);
  EXPECT_EQ(HeaderOf(first).request_id, HeaderOf(second).request_id);
}

TEST_F(ClientSessionTest, RetransmissionIsAnsweredFromTheDaemonsCache) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kPublish).ok());
  RequestBody body;
  body.publish.name = "song.mp3";
  Daemon(NextTry(session, body));  // its reply lost
  const std::vector<uint8_t> reply = Daemon(NextTry(session, body));
  std::optional<Reply> taken = session.Receive(reply);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->code, ResultCode::kOk);
  EXPECT_EQ(counters_.retransmissions.load(), 1u);
}

// ---- The retransmission schedule.

TEST_F(ClientSessionTest, TimeoutsDoubleFromTwoHundredMilliseconds) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  std::vector<absl::Duration> waits;
  while (session.can_retry()) {
    ASSERT_FALSE(NextTry(session).empty());
    waits.push_back(session.deadline() - now_);
  }
  EXPECT_EQ(waits, (std::vector<absl::Duration>{
                       absl::Milliseconds(200), absl::Milliseconds(400),
                       absl::Milliseconds(800), absl::Milliseconds(1600),
                       absl::Milliseconds(3200)}));
}

TEST_F(ClientSessionTest, NoTryAfterTheLast) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  for (int i = 0; i < RetryPolicy().attempts; ++i) NextTry(session);
  EXPECT_TRUE(NextTry(session).empty());
}

TEST(RetryPolicyTest, TotalWaitIsTheSumOfTheTimeouts) {
  EXPECT_EQ(RetryPolicy().TotalWait(), absl::Milliseconds(6200));
}

TEST(RetryPolicyTest, MaxTimeoutCapsTheDoubling) {
  const RetryPolicy policy{absl::Milliseconds(200), 6, absl::Seconds(1)};
  EXPECT_EQ(policy.TimeoutOf(3), absl::Milliseconds(800));
  EXPECT_EQ(policy.TimeoutOf(4), absl::Seconds(1));
  EXPECT_EQ(policy.TimeoutOf(200), absl::Seconds(1));
  EXPECT_EQ(policy.TotalWait(), absl::Milliseconds(200 + 400 + 800 + 3000));
}

// ---- Two senders of one session (peerctl's commands and heartbeats).

TEST_F(ClientSessionTest, SessionsSharingACounterInterleaveTheirSequences) {
  auto counter = std::make_shared<SequenceCounter>();
  ClientSession commands(kFirstId, RetryPolicy(), counter);
  ASSERT_TRUE(LogIn(commands, "hans", "hanspass").ok());
  ClientSession heartbeats(9000, RetryPolicy(), counter);
  heartbeats.Restore(commands.Save());

  // A PUB whose first try's reply is lost; a heartbeat goes out meanwhile;
  // the PUB's second try is answered. The daemon admits all three.
  ASSERT_TRUE(commands.StartRequest(MessageType::kPublish).ok());
  RequestBody body;
  body.publish.name = "song.mp3";
  const std::vector<uint8_t> first = NextTry(commands, body);
  Daemon(first);
  ASSERT_TRUE(heartbeats.StartRequest(MessageType::kHeartbeat).ok());
  const std::vector<uint8_t> beat = NextTry(heartbeats);
  std::optional<Reply> beat_reply = heartbeats.Receive(Daemon(beat));
  ASSERT_TRUE(beat_reply.has_value());
  EXPECT_EQ(beat_reply->code, ResultCode::kOk);
  const std::vector<uint8_t> second = NextTry(commands, body);
  const std::vector<uint8_t> reply = Daemon(second);
  // The heartbeat's reply is not the PUB's, and the PUB's is taken.
  EXPECT_FALSE(heartbeats.Receive(reply).has_value());
  std::optional<Reply> taken = commands.Receive(reply);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->code, ResultCode::kOk);
  EXPECT_EQ(SequenceOf(commands, first), 1u);
  EXPECT_EQ(SequenceOf(commands, beat), 2u);
  EXPECT_EQ(SequenceOf(commands, second), 3u);
}

TEST_F(ClientSessionTest, ASharedCounterDoesNotRestartAtANewLogin) {
  auto counter = std::make_shared<SequenceCounter>();
  ClientSession session(kFirstId, RetryPolicy(), counter);
  ASSERT_TRUE(LogIn(session, "hans", "hanspass").ok());
  ASSERT_TRUE(session.StartRequest(MessageType::kLogout).ok());
  ASSERT_TRUE(session.Receive(Daemon(NextTry(session))).has_value());
  ASSERT_TRUE(LogIn(session, "hans", "hanspass").ok());
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  const std::vector<uint8_t> beat = NextTry(session);
  EXPECT_EQ(SequenceOf(session, beat), 2u);
  std::optional<Reply> taken = session.Receive(Daemon(beat));
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->code, ResultCode::kOk);
}

// ---- Which reply is taken.

TEST_F(ClientSessionTest, ReplyToAnEarlierTryIsTaken) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  const std::vector<uint8_t> late = Daemon(NextTry(session));
  NextTry(session);  // the retransmission, never answered
  EXPECT_TRUE(session.Receive(late).has_value());
}

TEST_F(ClientSessionTest, DuplicateReplyIsDropped) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  const std::vector<uint8_t> reply = Daemon(NextTry(session));
  ASSERT_TRUE(session.Receive(reply).has_value());
  EXPECT_FALSE(session.Receive(reply).has_value());
}

TEST_F(ClientSessionTest, ReplyToAnEarlierRequestIsDropped) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  const std::vector<uint8_t> stale = Daemon(NextTry(session));
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  NextTry(session);
  EXPECT_FALSE(session.Receive(stale).has_value());
}

TEST_F(ClientSessionTest, ReplyWithABadMacIsDropped) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  std::vector<uint8_t> reply = Daemon(NextTry(session));
  reply[protocol::kMacOffset] ^= 0x01;
  EXPECT_FALSE(session.Receive(reply).has_value());
}

TEST_F(ClientSessionTest, ReplySealedWithTheSequenceOfNoTryIsDropped) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  std::vector<uint8_t> reply = Daemon(NextTry(session));
  // Sealed again, the same reply, for try 2, which was never sent.
  std::span<uint8_t> body = std::span(reply).subspan(protocol::kHeaderSize);
  ASSERT_TRUE(
      OpenDatagram(session.datagram_keys(), Direction::kToClient, reply, body)
          .has_value());
  SealDatagram(session.datagram_keys(), Direction::kToClient, 2, reply);
  EXPECT_FALSE(session.Receive(reply).has_value());
}

TEST_F(ClientSessionTest, ReplySealedWithTheKeyOfRequestsIsDropped) {
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  std::vector<uint8_t> reply = Daemon(NextTry(session));
  std::span<uint8_t> body = std::span(reply).subspan(protocol::kHeaderSize);
  const std::optional<uint64_t> sequence =
      OpenDatagram(session.datagram_keys(), Direction::kToClient, reply, body);
  ASSERT_TRUE(sequence.has_value());
  SealDatagram(session.datagram_keys(), Direction::kToDaemon, *sequence, reply);
  EXPECT_FALSE(session.Receive(reply).has_value());
}

TEST_F(ClientSessionTest, UnsealedReplyOtherThanUnknownSessionIsDropped) {
  // An attacker's clear "not found" with a zero MAC field, as the daemon
  // sends only what it cannot seal.
  ClientSession session = LoggedIn("hans", "hanspass");
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  const Header request = HeaderOf(NextTry(session));
  std::vector<uint8_t> forged(protocol::kMaxDatagramSize);
  Header reply_header = request;
  reply_header.flags = protocol::kFlagResponse;
  reply_header.mac = {};
  forged.resize(protocol::EncodeStatusReply(reply_header, ResultCode::kNotFound,
                                            "File not found", forged));
  EXPECT_FALSE(session.Receive(forged).has_value());
}

TEST_F(ClientSessionTest, UnsealedUnknownSessionIsTaken) {
  ClientSession session = LoggedIn("hans", "hanspass");
  now_ += absl::Seconds(4);  // the session expires
  handler_.Tick(now_);
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  std::optional<Reply> taken = session.Receive(Daemon(NextTry(session)));
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->code, ResultCode::kUnknownSession);
}

TEST_F(ClientSessionTest, RestoreBringsBackTheSavedSession) {
  ClientSession session = LoggedIn("hans", "hanspass");
  const ClientSession::Saved saved = session.Save();
  session.EndSession();
  session.Restore(saved);
  ASSERT_TRUE(session.StartRequest(MessageType::kHeartbeat).ok());
  std::optional<Reply> taken = session.Receive(Daemon(NextTry(session)));
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->code, ResultCode::kOk);
}

// ---- Paging.

TEST_F(ClientSessionTest, ListPagerCollectsEveryPage) {
  ClientSession session = LoggedIn("hans", "hanspass");
  std::vector<std::string> published;
  for (int i = 0; i < 60; ++i) {
    published.push_back(absl::StrCat(std::string(40, 'n'), "-", 100 + i));
    RequestBody body;
    body.publish.name = published.back();
    ASSERT_TRUE(session.StartRequest(MessageType::kPublish).ok());
    ASSERT_TRUE(session.Receive(Daemon(NextTry(session, body))).has_value());
  }
  ListPager pager(MessageType::kListPublished, "");
  int pages = 0;
  for (bool done = false; !done && pages < 100; ++pages) {
    ASSERT_TRUE(session.StartRequest(pager.type()).ok());
    replies_.push_back(Daemon(NextTry(session, pager.body())));
    std::optional<Reply> reply = session.Receive(replies_.back());
    ASSERT_TRUE(reply.has_value());
    absl::StatusOr<bool> added = pager.Add(*reply);
    ASSERT_TRUE(added.ok()) << added.status();
    done = *added;
  }
  EXPECT_GT(pages, 1);
  std::vector<std::string> names = pager.names();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, published);
}

// A list reply page holding `names` with `next_cursor`, as a Reply.
Reply PageReply(std::vector<uint8_t>& storage, MessageType type,
                const std::vector<std::string>& names, uint32_t next_cursor,
                std::optional<uint32_t> total_field = std::nullopt) {
  Header request;
  request.type = static_cast<uint8_t>(type);
  storage.assign(protocol::kMaxDatagramSize, 0);
  const uint32_t total = total_field.value_or(
      type == MessageType::kSearch ? protocol::kUnknownTotal
                                   : static_cast<uint32_t>(names.size()));
  protocol::ListReplyWriter writer(request, 1, total, storage);
  for (const std::string& name : names) EXPECT_TRUE(writer.Add(name));
  storage.resize(writer.Finish(next_cursor));
  absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(storage);
  absl::StatusOr<protocol::ReplyStatus> status =
      protocol::DecodeReplyStatus(message->body);
  Reply reply;
  reply.type = type;
  reply.code = status->code;
  reply.payload = status->payload;
  return reply;
}

// Add()'s verdict: true when the list is complete; a failure (an error
// counts as "not complete") when Add() fails.
bool Complete(ListPager& pager, const Reply& reply) {
  absl::StatusOr<bool> added = pager.Add(reply);
  EXPECT_TRUE(added.ok()) << added.status();
  return added.ok() && *added;
}

TEST(ListPagerTest, SearchResultIsSortedOnceEach) {
  ListPager pager(MessageType::kSearch, "a");
  std::vector<uint8_t> first, second;
  ASSERT_FALSE(
      Complete(pager, PageReply(first, MessageType::kSearch, {"b", "a"}, 9)));
  ASSERT_TRUE(
      Complete(pager, PageReply(second, MessageType::kSearch, {"a"}, 0)));
  EXPECT_EQ(pager.names(), (std::vector<std::string>{"a", "b"}));
}

TEST(ListPagerTest, NextRequestCarriesTheLastPagesCursor) {
  ListPager pager(MessageType::kListPublished, "");
  std::vector<uint8_t> page;
  ASSERT_FALSE(
      Complete(pager, PageReply(page, MessageType::kListPublished, {"a"}, 9)));
  EXPECT_EQ(pager.body().list.snapshot, 1u);
  EXPECT_EQ(pager.body().list.cursor, 9u);
}

TEST(ListPagerTest, ExpiredCursorRestartsFromTheTop) {
  ListPager pager(MessageType::kListPublished, "");
  std::vector<uint8_t> page;
  ASSERT_FALSE(
      Complete(pager, PageReply(page, MessageType::kListPublished, {"a"}, 9)));
  Reply expired;
  expired.type = MessageType::kListPublished;
  expired.code = ResultCode::kCursorExpired;
  ASSERT_FALSE(Complete(pager, expired));
  EXPECT_EQ(pager.body().list.cursor, 0u);
  EXPECT_TRUE(pager.names().empty());
}

TEST(ListPagerTest, CursorExpiringOnEveryTryIsAborted) {
  ListPager pager(MessageType::kListPublished, "");
  Reply expired;
  expired.type = MessageType::kListPublished;
  expired.code = ResultCode::kCursorExpired;
  for (int i = 0; i < ListPager::kMaxRestarts; ++i) {
    ASSERT_FALSE(Complete(pager, expired));
  }
  EXPECT_TRUE(absl::IsAborted(pager.Add(expired).status()));
}

TEST(ListPagerTest, ImplausibleTotalIsOnlyAHint) {
  ListPager pager(MessageType::kListPublished, "");
  std::vector<uint8_t> page;
  EXPECT_TRUE(Complete(pager, PageReply(page, MessageType::kListPublished,
                                        {"a"}, 0, 0xFFFFFFFF)));
}

TEST(ListPagerTest, EmptyPageMidListIsAnError) {
  ListPager pager(MessageType::kListPublished, "");
  std::vector<uint8_t> page;
  EXPECT_TRUE(absl::IsInternal(
      pager.Add(PageReply(page, MessageType::kListPublished, {}, 9)).status()));
}

}  // namespace
}  // namespace pcfs::client
