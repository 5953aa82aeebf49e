// The daemon's request logic, driven with datagrams and a fake clock: no
// sockets, no threads.
#include "daemon/handlers.h"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/auth/datagram_auth.h"
#include "core/auth/scram.h"
#include "core/auth/ticket.h"
#include "core/client/client_session.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using protocol::Header;
using protocol::MessageType;
using protocol::ResultCode;

Endpoint MakeEndpoint(uint16_t port) {
  Endpoint e;
  e.family = 4;
  e.ip = {127, 0, 0, 1};
  e.port = port;
  return e;
}

DatagramKeys KeysOf(const SessionKey& key) {
  absl::StatusOr<DatagramKeys> keys = DeriveDatagramKeys(key);
  EXPECT_TRUE(keys.ok()) << keys.status();
  return keys.ok() ? *keys : DatagramKeys();
}

class HandlersTest : public ::testing::Test {
 protected:
  HandlersTest()
      : credentials_(*CredentialStore::Create(*CredentialTable::Parse(
            "hans hanspass\nvader vaderpass\nyoda yodapass\n"))),
        address_limiter_(RateLimiter::Options{1000, absl::Milliseconds(1)}),
        failure_limiter_(RateLimiter::Options{3, absl::Seconds(60)}),
        login_budget_(RateLimiter::Options{1000, absl::Milliseconds(1), 1}),
        handler_(MakeShared(), RequestHandler::Options{}, now_) {}

  RequestHandler::Shared MakeShared() {
    RequestHandler::Shared shared;
    shared.registry = &registry_;
    shared.sessions = &sessions_;
    shared.credentials = credentials_.get();
    shared.counters = &counters_;
    shared.address_limiter = &address_limiter_;
    shared.failure_limiter = &failure_limiter_;
    shared.login_budget = &login_budget_;
    shared.used_nonces = &used_nonces_;
    shared.login_secret.fill(7);
    shared.wall_clock = [this] { return wall_; };
    return shared;
  }

  struct Reply {
    std::vector<uint8_t> bytes;   // as sent: a sealed reply's body encrypted
    std::vector<uint8_t> opened;  // a sealed reply's body, decrypted
    Header header;
    protocol::ReplyStatus status;
  };

  // Sends a datagram; decodes the reply (the test fails if there is none).
  // Seals a session datagram (a fresh sequence number, the session's MAC)
  // if the test knows the session's key.
  std::vector<uint8_t> Seal(std::vector<uint8_t> datagram) {
    auto message = protocol::ParseDatagram(datagram);
    if (!message.ok()) return datagram;
    auto it = keys_.find(message->header.session_id);
    if (it == keys_.end()) return datagram;
    const uint64_t sequence = ++sequences_[message->header.session_id];
    SealDatagram(datagram_keys_.at(it->first), Direction::kToDaemon, sequence,
                 datagram);
    return datagram;
  }

  Reply Send(const std::vector<uint8_t>& unsealed, const Endpoint& from) {
    const std::vector<uint8_t> datagram = Seal(unsealed);
    Reply reply;
    reply.bytes.resize(protocol::kMaxDatagramSize);
    size_t n = handler_.Handle(datagram, from, now_, reply.bytes);
    EXPECT_GT(n, 0u) << "no reply";
    EXPECT_LE(n, protocol::kMaxDatagramSize);
    reply.bytes.resize(n);
    if (n == 0) return reply;
    auto message = protocol::ParseDatagram(reply.bytes);
    EXPECT_TRUE(message.ok());
    reply.header = message->header;
    // A reply of a session the test knows is opened, unless the daemon
    // could not seal it (then its MAC field is zero).
    std::span<const uint8_t> body = message->body;
    auto keys = datagram_keys_.find(message->header.session_id);
    if (keys != datagram_keys_.end() && !IsUnsealed(reply.bytes)) {
      reply.opened.resize(body.size());
      EXPECT_TRUE(OpenDatagram(keys->second, Direction::kToClient, reply.bytes,
                               reply.opened)
                      .has_value());
      body = reply.opened;
    }
    auto status = protocol::DecodeReplyStatus(body);
    EXPECT_TRUE(status.ok());
    reply.status = *status;
    return reply;
  }

  Header MakeHeader(MessageType type, uint64_t session) {
    Header h;
    h.type = static_cast<uint8_t>(type);
    h.request_id = ++request_id_;
    h.session_id = session;
    return h;
  }

  std::vector<uint8_t> Encode(auto encode) {
    std::vector<uint8_t> out(protocol::kMaxDatagramSize);
    size_t n = encode(std::span<uint8_t>(out));
    EXPECT_GT(n, 0u);
    out.resize(n);
    return out;
  }

  // Runs both SCRAM steps with core/client's ClientSession (the client
  // peerctl uses) against the handler; returns the last reply (LOGIN's if
  // it refused, else LOGIN_FINISH's). `finish_datagram`, if given, receives
  // the LOGIN_FINISH sent. `key_pin` is the TLS key pin it registers;
  // `without_pin` sends LOGIN_FINISH as a peerctl older than pins did.
  Reply LoginExchange(const std::string& user, const std::string& password,
                      const Endpoint& from,
                      std::vector<uint8_t>* finish_datagram = nullptr,
                      const Sha256Digest& key_pin = {},
                      bool without_pin = false) {
    client::ClientSession session(request_id_ + 1);
    request_id_ += 2;  // the ids of LOGIN and LOGIN_FINISH
    session.SetKeyPin(key_pin);
    EXPECT_TRUE(session.StartLogin(user, password, 7000).ok());
    Reply reply;
    while (session.in_flight()) {
      std::vector<uint8_t> datagram(protocol::kMaxDatagramSize);
      datagram.resize(session.EncodeTry(now_, datagram));
      EXPECT_FALSE(datagram.empty());
      if (session.request_type() == MessageType::kLoginFinish &&
          finish_datagram != nullptr) {
        *finish_datagram = datagram;
      }
      if (session.request_type() == MessageType::kLoginFinish && without_pin) {
        datagram.resize(datagram.size() - kSha256Size);
      }
      reply = Send(datagram, from);
      std::optional<client::Reply> taken = session.Receive(reply.bytes);
      EXPECT_TRUE(taken.has_value()) << "the session did not take the reply";
      if (!taken.has_value() || taken->code != ResultCode::kOk) break;
      EXPECT_TRUE(session.ContinueLogin(*taken).ok());
    }
    if (session.logged_in()) {
      keys_[session.session_id()] = session.key();
      datagram_keys_[session.session_id()] = KeysOf(session.key());
    }
    return reply;
  }

  // Starts vader's session straight in the registry (no SCRAM: the lists
  // are under test, not the login) and publishes "<prefix>-<i>.mkv" for i
  // in [0, count).
  void PublishManyAsVader(int count, absl::string_view prefix) {
    Registry::LoginParams p;
    p.user = "vader";
    p.control = MakeEndpoint(5001);
    p.file_port = 7001;
    ASSERT_TRUE(registry_.Login(p, now_).ok());
    for (int i = 0; i < count; ++i) {
      registry_.Publish("vader", absl::StrCat(prefix, "-", i, ".mkv"),
                        FileMeta{});
    }
  }

  uint64_t Login(const std::string& user, const std::string& password,
                 const Endpoint& from) {
    Reply r = LoginExchange(user, password, from);
    EXPECT_EQ(r.status.code, ResultCode::kOk) << r.status.message;
    auto login = protocol::DecodeLoginFinishReply(r.status.payload);
    return login.ok() ? login->session_id : 0;
  }

  Reply Empty(MessageType type, uint64_t session, const Endpoint& from) {
    Header h = MakeHeader(type, session);
    return Send(Encode([&](std::span<uint8_t> out) {
                  return protocol::EncodeEmptyRequest(
                      h, out, protocol::kEmptyRequestPaddingBytes);
                }),
                from);
  }

  Reply Named(MessageType type, uint64_t session, const std::string& name,
              const Endpoint& from, uint32_t request_id = 0) {
    Header h = MakeHeader(type, session);
    if (request_id != 0) h.request_id = request_id;
    protocol::NameRequest request{name};
    return Send(Encode([&](std::span<uint8_t> out) {
                  return protocol::EncodeNameRequest(h, request, out);
                }),
                from);
  }

  Reply Publish(uint64_t session, const std::string& name, const Endpoint& from,
                uint32_t request_id = 0) {
    Header h = MakeHeader(MessageType::kPublish, session);
    if (request_id != 0) h.request_id = request_id;
    protocol::PublishRequest request;
    request.name = name;
    request.size = 42;
    request.root.fill(0xab);
    return Send(Encode([&](std::span<uint8_t> out) {
                  return protocol::EncodePublishRequest(h, request, out);
                }),
                from);
  }

  // Reads a whole list page by page, checking each page's size.
  std::vector<std::string> List(MessageType type, uint64_t session,
                                const std::string& pattern,
                                const Endpoint& from, int* pages = nullptr) {
    std::vector<std::string> names;
    protocol::ListRequest request;
    request.pattern = pattern;
    for (int page = 1; page < 100000; ++page) {
      Header h = MakeHeader(type, session);
      Reply r = Send(Encode([&](std::span<uint8_t> out) {
                       return protocol::EncodeListRequest(h, request, out);
                     }),
                     from);
      EXPECT_EQ(r.status.code, ResultCode::kOk) << r.status.message;
      if (r.status.code != ResultCode::kOk) break;
      auto list = protocol::DecodeListReply(r.status.payload);
      EXPECT_TRUE(list.ok());
      for (auto name : list->names) names.emplace_back(name);
      if (pages != nullptr) *pages = page;
      if (list->next_cursor == 0) break;
      request.snapshot = list->snapshot;
      request.cursor = list->next_cursor;
    }
    return names;
  }

  absl::Time now_ = absl::UnixEpoch() + absl::Hours(1000);
  absl::Time wall_ = absl::FromUnixSeconds(1800000000);
  Registry registry_;
  SessionTable sessions_;
  std::unique_ptr<CredentialStore> credentials_;
  DaemonCounters counters_;
  RateLimiter address_limiter_;
  RateLimiter failure_limiter_;
  RateLimiter login_budget_;
  UsedLoginNonces used_nonces_;
  RequestHandler handler_;
  absl::flat_hash_map<uint64_t, SessionKey> keys_;  // for tickets
  absl::flat_hash_map<uint64_t, DatagramKeys> datagram_keys_;
  absl::flat_hash_map<uint64_t, uint64_t> sequences_;
  uint32_t request_id_ = 100;
};

TEST_F(HandlersTest, LoginWithTheRightPasswordStartsASession) {
  uint64_t session = Login("hans", "hanspass", MakeEndpoint(5000));
  EXPECT_NE(session, 0u);
  EXPECT_TRUE(registry_.IsActive("hans", now_));
}

TEST_F(HandlersTest, LoginWithAWrongPasswordIsRefused) {
  EXPECT_EQ(LoginExchange("hans", "vaderpass", MakeEndpoint(5000)).status.code,
            ResultCode::kAuthFailed);
  EXPECT_FALSE(registry_.IsActive("hans", now_));
}

TEST_F(HandlersTest, LoginsAreCountedByResult) {
  Login("hans", "hanspass", MakeEndpoint(5000));
  LoginExchange("vader", "hanspass", MakeEndpoint(5001));
  EXPECT_EQ(handler_.metrics().logins_ok.Get(), 1u);
  EXPECT_EQ(handler_.metrics().logins_refused.Get(), 1u);
  const size_t finish = RequestMetrics::TypeIndex(
      static_cast<uint8_t>(MessageType::kLoginFinish));
  EXPECT_EQ(handler_.metrics().replies[finish][0].Get(), 1u);
  EXPECT_EQ(handler_.metrics()
                .replies[finish][static_cast<size_t>(ResultCode::kAuthFailed)]
                .Get(),
            1u);
}

TEST_F(HandlersTest, PingIsAnsweredWithoutALoginAndNeverLarger) {
  Header h = MakeHeader(MessageType::kPing, 0);
  const std::vector<uint8_t> ping = Encode([&](std::span<uint8_t> out) {
    return protocol::EncodePingRequest(h, protocol::PingRequest{77}, out);
  });
  Reply reply = Send(ping, MakeEndpoint(6000));
  EXPECT_EQ(reply.status.code, ResultCode::kOk);
  EXPECT_EQ(reply.header.request_id, h.request_id);
  EXPECT_LT(reply.bytes.size(), ping.size());
  absl::StatusOr<uint64_t> token =
      protocol::DecodePingReply(reply.status.payload);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, 77u);
  EXPECT_EQ(registry_.session_count(), 0u);
}

TEST_F(HandlersTest, MalformedOrExcessPingsAreDroppedNotAnswered) {
  std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
  // With a session id, or without its padding: dropped.
  Header with_session = MakeHeader(MessageType::kPing, 5);
  std::vector<uint8_t> bad = Encode([&](std::span<uint8_t> out) {
    return protocol::EncodePingRequest(with_session, {}, out);
  });
  EXPECT_EQ(handler_.Handle(bad, MakeEndpoint(6000), now_, reply), 0u);
  Header h = MakeHeader(MessageType::kPing, 0);
  std::vector<uint8_t> ping = Encode([&](std::span<uint8_t> out) {
    return protocol::EncodePingRequest(h, {}, out);
  });
  std::vector<uint8_t> short_ping(ping.begin(), ping.end() - 1);
  EXPECT_EQ(handler_.Handle(short_ping, MakeEndpoint(6000), now_, reply), 0u);
  // The budget (100 a second by default) runs out, then refills.
  int answered = 0;
  for (int i = 0; i < 150; ++i) {
    if (handler_.Handle(ping, MakeEndpoint(6000), now_, reply) > 0) ++answered;
  }
  EXPECT_EQ(answered, RequestHandler::Options{}.pings_per_second);
  EXPECT_EQ(handler_.metrics().pings_dropped.Get(), 50u);
  EXPECT_GT(
      handler_.Handle(ping, MakeEndpoint(6000), now_ + absl::Seconds(1), reply),
      0u);
}

TEST_F(HandlersTest, UnknownUserLooksLikeAWrongPasswordUntilTheEnd) {
  // LOGIN answers an unknown user like a known one (a mock salt), so that
  // it does not tell which users exist; only the proof fails.
  EXPECT_EQ(LoginExchange("palpatine", "x", MakeEndpoint(5000)).status.code,
            ResultCode::kAuthFailed);
}

TEST_F(HandlersTest, RetransmittedLoginFinishGetsTheSameSession) {
  std::vector<uint8_t> finish;
  Reply first = LoginExchange("hans", "hanspass", MakeEndpoint(5000), &finish);
  ASSERT_EQ(first.status.code, ResultCode::kOk);
  Reply repeat = Send(finish, MakeEndpoint(5000));
  ASSERT_EQ(repeat.status.code, ResultCode::kOk);
  EXPECT_EQ(
      protocol::DecodeLoginFinishReply(first.status.payload)->session_id,
      protocol::DecodeLoginFinishReply(repeat.status.payload)->session_id);
}

TEST_F(HandlersTest, LoginFinishReplayedAfterLogoutStartsNoSession) {
  std::vector<uint8_t> finish;
  Reply first = LoginExchange("hans", "hanspass", MakeEndpoint(5000), &finish);
  ASSERT_EQ(first.status.code, ResultCode::kOk);
  const uint64_t session =
      protocol::DecodeLoginFinishReply(first.status.payload)->session_id;
  ASSERT_EQ(
      Empty(MessageType::kLogout, session, MakeEndpoint(5000)).status.code,
      ResultCode::kOk);
  // Within the nonce's lifetime, from the same address: still refused.
  EXPECT_EQ(Send(finish, MakeEndpoint(5000)).status.code,
            ResultCode::kAuthFailed);
  EXPECT_FALSE(registry_.IsActive("hans", now_));
}

TEST_F(HandlersTest, SecondLoginOfAnActiveUserIsRefused) {
  ASSERT_NE(Login("hans", "hanspass", MakeEndpoint(5000)), 0u);
  EXPECT_EQ(LoginExchange("hans", "hanspass", MakeEndpoint(5001)).status.code,
            ResultCode::kAlreadyActive);
}

TEST_F(HandlersTest, LoginFinishFromAnotherAddressOrTooLateIsRefused) {
  std::vector<uint8_t> finish;
  ASSERT_EQ(LoginExchange("hans", "vaderpass", MakeEndpoint(5000), &finish)
                .status.code,
            ResultCode::kAuthFailed);
  // The server nonce was made for 5000: replaying the step from elsewhere
  // fails before any proof is checked.
  EXPECT_EQ(Send(finish, MakeEndpoint(5001)).status.code,
            ResultCode::kAuthFailed);
  now_ += absl::Seconds(11);
  EXPECT_EQ(Send(finish, MakeEndpoint(5000)).status.code,
            ResultCode::kAuthFailed);
}

TEST_F(HandlersTest, FailedLoginsThrottleTheAddressNotTheUser) {
  const Endpoint attacker = MakeEndpoint(5000);
  Endpoint elsewhere = MakeEndpoint(5001);
  elsewhere.ip = {127, 0, 0, 2};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(LoginExchange("hans", "guess", attacker).status.code,
              ResultCode::kAuthFailed);
  }
  // The guesser's address is throttled for hans, even with his password...
  Reply limited = LoginExchange("hans", "hanspass", attacker);
  EXPECT_EQ(limited.status.code, ResultCode::kRateLimited);
  EXPECT_TRUE(absl::StrContains(limited.status.message, "wait 60 s"))
      << limited.status.message;
  EXPECT_GT(counters_.rate_limited.load(), 0u);
  // ...but not for another user,
  EXPECT_EQ(LoginExchange("vader", "vaderpass", MakeEndpoint(5002)).status.code,
            ResultCode::kOk);
  // and hans from another address logs in at once.
  EXPECT_NE(Login("hans", "hanspass", elsewhere), 0u);
}

// The address's bucket is paid at LOGIN, once per login: a busy address
// (a NAT, a load generator) whose other logins spend every token between
// this login's two steps still completes it, or retries would keep all of
// them from completing. A LOGIN_FINISH not started here pays, as a LOGIN.
TEST_F(HandlersTest, ALoginCostsItsAddressOneTokenAtItsFirstStep) {
  const Endpoint from = MakeEndpoint(5000);
  std::vector<uint8_t> foreign;  // a LOGIN_FINISH made for another port
  ASSERT_EQ(LoginExchange("vader", "vaderpass", MakeEndpoint(5001), &foreign)
                .status.code,
            ResultCode::kOk);
  client::ClientSession session(request_id_ + 1);
  request_id_ += 2;
  ASSERT_TRUE(session.StartLogin("hans", "hanspass", 7000).ok());
  std::vector<uint8_t> datagram(protocol::kMaxDatagramSize);
  datagram.resize(session.EncodeTry(now_, datagram));
  Reply reply = Send(datagram, from);
  std::optional<client::Reply> taken = session.Receive(reply.bytes);
  ASSERT_TRUE(taken.has_value());
  ASSERT_EQ(taken->code, ResultCode::kOk);
  ASSERT_TRUE(session.ContinueLogin(*taken).ok());
  // The other logins behind this address take every token left.
  const std::string key(reinterpret_cast<const char*>(from.ip.data()), 4);
  while (address_limiter_.TryAcquire(key, now_)) {
  }
  datagram.assign(protocol::kMaxDatagramSize, 0);
  datagram.resize(session.EncodeTry(now_, datagram));
  reply = Send(datagram, from);
  EXPECT_EQ(reply.status.code, ResultCode::kOk) << reply.status.message;
  Reply refused = Send(foreign, from);
  EXPECT_EQ(refused.status.code, ResultCode::kRateLimited)
      << refused.status.message;
}

TEST_F(HandlersTest, AnIpv6SenderCountsAsItsSlash64) {
  Endpoint a;
  a.family = 6;
  a.ip = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
  a.port = 5000;
  for (int i = 0; i < 3; ++i) {
    a.ip[15] = static_cast<uint8_t>(i + 1);  // a new address each time
    EXPECT_EQ(LoginExchange("hans", "guess", a).status.code,
              ResultCode::kAuthFailed);
  }
  a.ip[15] = 99;
  EXPECT_EQ(LoginExchange("hans", "hanspass", a).status.code,
            ResultCode::kRateLimited);
}

TEST_F(HandlersTest, TheLoginBudgetRefusesProofChecksWhenSpent) {
  while (login_budget_.TryAcquire("", now_)) {
  }
  Reply busy = LoginExchange("hans", "hanspass", MakeEndpoint(5000));
  EXPECT_EQ(busy.status.code, ResultCode::kRateLimited);
  EXPECT_TRUE(absl::StrContains(busy.status.message, "busy"))
      << busy.status.message;
  // Not a failure of hans's: once the budget refills he logs in.
  now_ += absl::Seconds(1);
  EXPECT_NE(Login("hans", "hanspass", MakeEndpoint(5000)), 0u);
}

TEST_F(HandlersTest, HeartbeatKeepsASessionAliveAndSilenceEndsIt) {
  uint64_t session = Login("hans", "hanspass", MakeEndpoint(5000));
  for (int i = 0; i < 5; ++i) {
    now_ += absl::Seconds(2);
    handler_.Tick(now_);
    EXPECT_EQ(
        Empty(MessageType::kHeartbeat, session, MakeEndpoint(5000)).status.code,
        ResultCode::kOk);
  }
  now_ += absl::Milliseconds(2900);
  handler_.Tick(now_);
  EXPECT_TRUE(registry_.IsActive("hans", now_));
  now_ += absl::Milliseconds(200);
  handler_.Tick(now_);
  EXPECT_FALSE(registry_.IsActive("hans", now_));
  EXPECT_EQ(registry_.session_count(), 0u);
  EXPECT_EQ(counters_.expired_sessions.load(), 1u);
  EXPECT_EQ(
      Empty(MessageType::kHeartbeat, session, MakeEndpoint(5000)).status.code,
      ResultCode::kUnknownSession);
}

// Another reactor's socket may hold the session's heartbeat: the expiry
// waits until every socket was drained past the deadline (DrainClock).
TEST_F(HandlersTest, ExpiryWaitsUntilEverySocketIsDrainedPastTheDeadline) {
  Login("hans", "hanspass", MakeEndpoint(5000));
  const absl::Time deadline = now_ + absl::Seconds(3);
  now_ = deadline + absl::Milliseconds(200);
  handler_.Tick(now_, absl::InfinitePast(), deadline - absl::Milliseconds(1));
  EXPECT_EQ(registry_.session_count(), 1u);
  now_ += absl::Milliseconds(100);
  handler_.Tick(now_, absl::InfinitePast(), deadline + absl::Milliseconds(1));
  EXPECT_EQ(registry_.session_count(), 0u);
  EXPECT_EQ(counters_.expired_sessions.load(), 1u);
}

TEST_F(HandlersTest, SessionFollowsItsKeyToANewAddress) {
  uint64_t session = Login("hans", "hanspass", MakeEndpoint(5000));
  EXPECT_EQ(
      Empty(MessageType::kHeartbeat, session, MakeEndpoint(6000)).status.code,
      ResultCode::kOk);
}

TEST_F(HandlersTest, ForgedHeartbeatIsDroppedAndDoesNotSaveTheSession) {
  uint64_t session = Login("hans", "hanspass", MakeEndpoint(5000));
  Header h = MakeHeader(MessageType::kHeartbeat, session);
  h.sequence = 100;
  std::vector<uint8_t> forged(protocol::kMaxDatagramSize);
  forged.resize(protocol::EncodeEmptyRequest(h, forged));
  SessionKey wrong{};
  wrong.fill(0x55);
  SealDatagram(KeysOf(wrong), Direction::kToDaemon, h.sequence, forged);
  std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
  now_ += absl::Seconds(2);
  EXPECT_EQ(handler_.Handle(forged, MakeEndpoint(6666), now_, reply), 0u);
  EXPECT_EQ(counters_.bad_mac.load(), 1u);
  now_ += absl::Milliseconds(1100);
  handler_.Tick(now_);
  EXPECT_FALSE(registry_.IsActive("hans", now_));
}

TEST_F(HandlersTest, ReplayedDatagramIsDropped) {
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  ASSERT_EQ(Publish(hans, "a.txt", MakeEndpoint(5000)).status.code,
            ResultCode::kOk);
  Header h = MakeHeader(MessageType::kUnpublish, hans);
  protocol::NameRequest request{"a.txt"};
  std::vector<uint8_t> unp = Seal(Encode([&](std::span<uint8_t> out) {
    return protocol::EncodeNameRequest(h, request, out);
  }));
  std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
  ASSERT_GT(handler_.Handle(unp, MakeEndpoint(5000), now_, reply), 0u);
  ASSERT_EQ(Publish(hans, "a.txt", MakeEndpoint(5000)).status.code,
            ResultCode::kOk);
  // The captured UNP, replayed byte for byte: dropped, nothing undone.
  EXPECT_EQ(handler_.Handle(unp, MakeEndpoint(5000), now_, reply), 0u);
  EXPECT_EQ(counters_.replayed.load(), 1u);
  EXPECT_EQ(registry_.PublishedBy("hans"), std::vector<std::string>{"a.txt"});
}

TEST_F(HandlersTest, RepliesAreSealedWithTheSessionKey) {
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  Reply r = Empty(MessageType::kHeartbeat, hans, MakeEndpoint(5000));
  std::vector<uint8_t> body(r.bytes.size() - protocol::kHeaderSize);
  EXPECT_TRUE(
      OpenDatagram(datagram_keys_[hans], Direction::kToClient, r.bytes, body)
          .has_value());
  // Not with the key of requests.
  EXPECT_FALSE(
      OpenDatagram(datagram_keys_[hans], Direction::kToDaemon, r.bytes, body)
          .has_value());
}

TEST_F(HandlersTest, ClearBodyWithABogusTagIsDropped) {
  // A PUB whose body is sent in the clear but with a MAC field that is no
  // tag: refused like any forgery, never run.
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  Header h = MakeHeader(MessageType::kUnpublish, hans);
  h.sequence = ++sequences_[hans];
  std::vector<uint8_t> clear = Encode([&](std::span<uint8_t> out) {
    return protocol::EncodeNameRequest(h, protocol::NameRequest{"a.txt"}, out);
  });
  clear[protocol::kMacOffset] = 1;
  std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
  EXPECT_EQ(handler_.Handle(clear, MakeEndpoint(5000), now_, reply), 0u);
  EXPECT_EQ(counters_.bad_mac.load(), 1u);
}

TEST_F(HandlersTest, GetCarriesATicketTheHolderCanVerify) {
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  uint64_t vader = Login("vader", "vaderpass", MakeEndpoint(5001));
  ASSERT_EQ(Publish(hans, "BitTrickle.mp4", MakeEndpoint(5000)).status.code,
            ResultCode::kOk);
  Reply get =
      Named(MessageType::kGet, vader, "BitTrickle.mp4", MakeEndpoint(5001));
  ASSERT_EQ(get.status.code, ResultCode::kOk);
  auto where = protocol::DecodeGetReply(get.status.payload);
  ASSERT_TRUE(where.ok());
  absl::StatusOr<TicketClaims> claims =
      VerifyTicket(TicketKeyFor(keys_[hans]), "hans", where->holders[0].ticket,
                   "BitTrickle.mp4", wall_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->requester, "vader");
  // Not for another file, not with vader's key, not after a minute.
  EXPECT_FALSE(VerifyTicket(TicketKeyFor(keys_[hans]), "hans",
                            where->holders[0].ticket, "other.mp4", wall_)
                   .ok());
  EXPECT_FALSE(VerifyTicket(TicketKeyFor(keys_[vader]), "hans",
                            where->holders[0].ticket, "BitTrickle.mp4", wall_)
                   .ok());
  EXPECT_FALSE(VerifyTicket(TicketKeyFor(keys_[hans]), "hans",
                            where->holders[0].ticket, "BitTrickle.mp4",
                            wall_ + absl::Seconds(61))
                   .ok());
}

// Two holders of the same content: both named, each with a ticket MAC'd
// with its own ticket key.
TEST_F(HandlersTest, GetNamesEveryHolderOfTheContentWithItsOwnTicket) {
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  uint64_t yoda = Login("yoda", "yodapass", MakeEndpoint(5002));
  uint64_t vader = Login("vader", "vaderpass", MakeEndpoint(5001));
  ASSERT_EQ(Publish(hans, "BitTrickle.mp4", MakeEndpoint(5000)).status.code,
            ResultCode::kOk);
  ASSERT_EQ(Publish(yoda, "BitTrickle.mp4", MakeEndpoint(5002)).status.code,
            ResultCode::kOk);
  Reply get =
      Named(MessageType::kGet, vader, "BitTrickle.mp4", MakeEndpoint(5001));
  ASSERT_EQ(get.status.code, ResultCode::kOk);
  auto where = protocol::DecodeGetReply(get.status.payload);
  ASSERT_TRUE(where.ok()) << where.status();
  ASSERT_EQ(where->holder_count, 2u);
  std::vector<std::string> users;
  for (const protocol::GetHolder& holder : where->active_holders()) {
    users.emplace_back(holder.user);
    const uint64_t session = holder.user == "hans" ? hans : yoda;
    EXPECT_TRUE(VerifyTicket(TicketKeyFor(keys_[session]),
                             std::string(holder.user), holder.ticket,
                             "BitTrickle.mp4", wall_)
                    .ok())
        << holder.user;
    const uint64_t other = holder.user == "hans" ? yoda : hans;
    EXPECT_FALSE(VerifyTicket(TicketKeyFor(keys_[other]),
                              std::string(holder.user), holder.ticket,
                              "BitTrickle.mp4", wall_)
                     .ok())
        << holder.user;
  }
  std::sort(users.begin(), users.end());
  EXPECT_EQ(users, (std::vector<std::string>{"hans", "yoda"}));
}

TEST_F(HandlersTest, GetCarriesTheKeyPinTheHolderRegistered) {
  Sha256Digest pin;
  for (size_t i = 0; i < pin.size(); ++i) pin[i] = static_cast<uint8_t>(i + 1);
  Reply hans_login =
      LoginExchange("hans", "hanspass", MakeEndpoint(5000), nullptr, pin);
  ASSERT_EQ(hans_login.status.code, ResultCode::kOk);
  auto session = protocol::DecodeLoginFinishReply(hans_login.status.payload);
  ASSERT_TRUE(session.ok());
  uint64_t vader = Login("vader", "vaderpass", MakeEndpoint(5001));
  ASSERT_EQ(Publish(session->session_id, "BitTrickle.mp4", MakeEndpoint(5000))
                .status.code,
            ResultCode::kOk);
  Reply get =
      Named(MessageType::kGet, vader, "BitTrickle.mp4", MakeEndpoint(5001));
  ASSERT_EQ(get.status.code, ResultCode::kOk);
  auto where = protocol::DecodeGetReply(get.status.payload);
  ASSERT_TRUE(where.ok());
  ASSERT_EQ(where->holder_count, 1u);
  EXPECT_EQ(where->holders[0].key_pin, pin);
}

TEST_F(HandlersTest, LoginFinishWithoutAKeyPinAsksForANewerPeerctl) {
  Reply reply = LoginExchange("hans", "hanspass", MakeEndpoint(5000), nullptr,
                              {}, /*without_pin=*/true);
  EXPECT_EQ(reply.status.code, ResultCode::kUnsupportedVersion);
  EXPECT_TRUE(absl::StrContains(reply.status.message, "upgrade peerctl"))
      << reply.status.message;
}

TEST_F(HandlersTest, LogoutEndsTheSessionSoTheUserCanComeBack) {
  uint64_t session = Login("hans", "hanspass", MakeEndpoint(5000));
  EXPECT_EQ(
      Empty(MessageType::kLogout, session, MakeEndpoint(5000)).status.code,
      ResultCode::kOk);
  EXPECT_FALSE(registry_.IsActive("hans", now_));
  EXPECT_NE(Login("hans", "hanspass", MakeEndpoint(5002)), 0u);
}

TEST_F(HandlersTest, SeedSemantics) {
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  uint64_t vader = Login("vader", "vaderpass", MakeEndpoint(5001));
  uint64_t yoda = Login("yoda", "yodapass", MakeEndpoint(5002));
  ASSERT_EQ(Publish(hans, "BitTrickle.mp4", MakeEndpoint(5000)).status.code,
            ResultCode::kOk);
  EXPECT_EQ(List(MessageType::kListPublished, hans, "", MakeEndpoint(5000)),
            std::vector<std::string>{"BitTrickle.mp4"});
  EXPECT_EQ(List(MessageType::kSearch, vader, "BitTrickle", MakeEndpoint(5001)),
            std::vector<std::string>{"BitTrickle.mp4"});
  // The caller's own names never show up in its search.
  EXPECT_TRUE(List(MessageType::kSearch, hans, "BitTrickle", MakeEndpoint(5000))
                  .empty());
  Reply get =
      Named(MessageType::kGet, vader, "BitTrickle.mp4", MakeEndpoint(5001));
  ASSERT_EQ(get.status.code, ResultCode::kOk);
  auto where = protocol::DecodeGetReply(get.status.payload);
  ASSERT_TRUE(where.ok());
  ASSERT_EQ(where->holder_count, 1u);
  EXPECT_EQ(where->holders[0].user, "hans");
  EXPECT_EQ(where->holders[0].address.port, 7000);
  EXPECT_EQ(where->size, 42u);
  EXPECT_EQ(List(MessageType::kListActivePeers, yoda, "", MakeEndpoint(5002)),
            (std::vector<std::string>{"hans", "vader"}));
  // hans never gets his own file.
  EXPECT_EQ(Named(MessageType::kGet, hans, "BitTrickle.mp4", MakeEndpoint(5000))
                .status.code,
            ResultCode::kNotFound);
}

// STAT answers what the caller itself publishes under a name, and nothing
// of anybody else's.
TEST_F(HandlersTest, StatGivesTheCallersOwnPublication) {
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  uint64_t vader = Login("vader", "vaderpass", MakeEndpoint(5001));
  ASSERT_EQ(Publish(hans, "a.txt", MakeEndpoint(5000)).status.code,
            ResultCode::kOk);
  Reply stat = Named(MessageType::kStat, hans, "a.txt", MakeEndpoint(5000));
  ASSERT_EQ(stat.status.code, ResultCode::kOk);
  absl::StatusOr<protocol::StatReply> meta =
      protocol::DecodeStatReply(stat.status.payload);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->size, 42u);
  Sha256Digest root;
  root.fill(0xab);
  EXPECT_EQ(meta->root, root);
  Reply other = Named(MessageType::kStat, vader, "a.txt", MakeEndpoint(5001));
  EXPECT_EQ(other.status.code, ResultCode::kNotFound);
  EXPECT_EQ(other.status.message, "you do not publish a.txt");
  EXPECT_EQ(
      Named(MessageType::kStat, hans, "a/b", MakeEndpoint(5000)).status.code,
      ResultCode::kInvalidName);
}

TEST_F(HandlersTest, RetransmittedUnpublishIsAnsweredFromTheCache) {
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  ASSERT_EQ(Publish(hans, "a.txt", MakeEndpoint(5000)).status.code,
            ResultCode::kOk);
  Reply first =
      Named(MessageType::kUnpublish, hans, "a.txt", MakeEndpoint(5000), 777);
  Reply repeat =
      Named(MessageType::kUnpublish, hans, "a.txt", MakeEndpoint(5000), 777);
  EXPECT_EQ(first.status.code, ResultCode::kOk);
  EXPECT_EQ(repeat.status.code, ResultCode::kOk);
  EXPECT_EQ(counters_.retransmissions.load(), 1u);
  // A new request to unpublish it again fails: it is gone.
  EXPECT_EQ(Named(MessageType::kUnpublish, hans, "a.txt", MakeEndpoint(5000))
                .status.code,
            ResultCode::kNotFound);
}

TEST_F(HandlersTest, InvalidNamesAreRefusedNotTruncated) {
  uint64_t hans = Login("hans", "hanspass", MakeEndpoint(5000));
  EXPECT_EQ(
      Publish(hans, std::string(256, 'x'), MakeEndpoint(5000)).status.code,
      ResultCode::kInvalidName);
  EXPECT_EQ(Publish(hans, "a/b", MakeEndpoint(5000)).status.code,
            ResultCode::kInvalidName);
  EXPECT_EQ(Publish(hans, "..", MakeEndpoint(5000)).status.code,
            ResultCode::kInvalidName);
  EXPECT_EQ(registry_.publication_count(), 0u);
}

TEST_F(HandlersTest, LapPagesThroughTenThousandUsers) {
  for (int i = 0; i < 10000; ++i) {
    Registry::LoginParams p;
    std::string user = absl::StrCat("user", i);
    p.user = user;
    p.control = MakeEndpoint(static_cast<uint16_t>(10000 + i));
    ASSERT_TRUE(registry_.Login(p, now_).ok());
  }
  uint64_t yoda = Login("yoda", "yodapass", MakeEndpoint(5002));
  int pages = 0;
  std::vector<std::string> users =
      List(MessageType::kListActivePeers, yoda, "", MakeEndpoint(5002), &pages);
  EXPECT_EQ(users.size(), 10000u);
  EXPECT_TRUE(std::is_sorted(users.begin(), users.end()));
  EXPECT_GT(pages, 1);
}

TEST_F(HandlersTest, SearchPagesThroughAHundredThousandHits) {
  PublishManyAsVader(100000, "movie");
  uint64_t yoda = Login("yoda", "yodapass", MakeEndpoint(5002));
  std::vector<std::string> hits =
      List(MessageType::kSearch, yoda, "movie", MakeEndpoint(5002));
  EXPECT_EQ(hits.size(), 100000u);
}

// ---- SCH pages ----

class SearchPagingTest : public HandlersTest {
 protected:
  void SetUp() override {
    PublishManyAsVader(2000, "clip");
    yoda_ = Login("yoda", "yodapass", MakeEndpoint(5002));
  }

  // One SCH page request from yoda; `request_id` 0 takes a fresh one.
  Reply SearchPage(const protocol::ListRequest& request,
                   uint32_t request_id = 0) {
    Header h = MakeHeader(MessageType::kSearch, yoda_);
    if (request_id != 0) h.request_id = request_id;
    return Send(Encode([&](std::span<uint8_t> out) {
                  return protocol::EncodeListRequest(h, request, out);
                }),
                MakeEndpoint(5002));
  }

  // The request for the page after `reply`'s.
  static protocol::ListRequest Next(const Reply& reply,
                                    absl::string_view pattern) {
    auto page = protocol::DecodeListReply(reply.status.payload);
    EXPECT_TRUE(page.ok());
    protocol::ListRequest request;
    request.pattern = pattern;
    request.snapshot = page->snapshot;
    request.cursor = page->next_cursor;
    return request;
  }

  uint64_t yoda_ = 0;
};

TEST_F(SearchPagingTest, PagesCarryNoTotalAndTheSessionNoSnapshot) {
  protocol::ListRequest request;
  request.pattern = "clip";
  std::vector<std::string> names;
  for (int page = 0; page < 10000; ++page) {
    Reply r = SearchPage(request);
    ASSERT_EQ(r.status.code, ResultCode::kOk) << r.status.message;
    auto list = protocol::DecodeListReply(r.status.payload);
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list->total, protocol::kUnknownTotal);
    for (auto name : list->names) names.emplace_back(name);
    if (list->next_cursor == 0) break;
    request = Next(r, "clip");
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  EXPECT_EQ(names.size(), 2000u);
  EXPECT_EQ(sessions_.Snapshot(yoda_), nullptr);
}

TEST_F(SearchPagingTest, RetransmittedPageRequestGetsTheSamePage) {
  protocol::ListRequest first;
  first.pattern = "clip";
  const protocol::ListRequest second = Next(SearchPage(first), "clip");
  ASSERT_NE(second.cursor, 0u);
  Reply once = SearchPage(second, 4242);
  Reply again = SearchPage(second, 4242);
  ASSERT_EQ(once.status.code, ResultCode::kOk);
  const std::vector<uint8_t> a(once.status.payload.begin(),
                               once.status.payload.end());
  const std::vector<uint8_t> b(again.status.payload.begin(),
                               again.status.payload.end());
  EXPECT_EQ(a, b);
}

TEST_F(SearchPagingTest, CursorOfAnotherDaemonRunIsExpired) {
  protocol::ListRequest first;
  first.pattern = "clip";
  protocol::ListRequest next = Next(SearchPage(first), "clip");
  ASSERT_NE(next.cursor, 0u);
  protocol::ListRequest other_epoch = next;
  other_epoch.snapshot ^= 0x10000;
  EXPECT_EQ(SearchPage(other_epoch).status.code, ResultCode::kCursorExpired);
  protocol::ListRequest no_such_shard = next;
  no_such_shard.snapshot |= 0xFFFF;
  EXPECT_EQ(SearchPage(no_such_shard).status.code, ResultCode::kCursorExpired);
  EXPECT_EQ(SearchPage(next).status.code, ResultCode::kOk);
}

// SCH used to replace the session's snapshot; an LPF listing read around a
// search must now go on undisturbed.
TEST_F(SearchPagingTest, SearchLeavesAnotherListingsSnapshotAlone) {
  for (int i = 0; i < 300; ++i) {
    registry_.Publish("yoda", absl::StrCat("own-", i, ".txt"), FileMeta{});
  }
  Header h = MakeHeader(MessageType::kListPublished, yoda_);
  protocol::ListRequest lpf;
  Reply first = Send(Encode([&](std::span<uint8_t> out) {
                       return protocol::EncodeListRequest(h, lpf, out);
                     }),
                     MakeEndpoint(5002));
  protocol::ListRequest lpf_next = Next(first, "");
  ASSERT_NE(lpf_next.cursor, 0u);
  protocol::ListRequest sch;
  sch.pattern = "clip";
  ASSERT_EQ(SearchPage(sch).status.code, ResultCode::kOk);
  Header h2 = MakeHeader(MessageType::kListPublished, yoda_);
  Reply second = Send(Encode([&](std::span<uint8_t> out) {
                        return protocol::EncodeListRequest(h2, lpf_next, out);
                      }),
                      MakeEndpoint(5002));
  EXPECT_EQ(second.status.code, ResultCode::kOk) << second.status.message;
}

TEST_F(HandlersTest, StaleCursorIsReportedSoTheClientRestarts) {
  uint64_t yoda = Login("yoda", "yodapass", MakeEndpoint(5002));
  Header h = MakeHeader(MessageType::kListActivePeers, yoda);
  protocol::ListRequest request;
  request.snapshot = 12345;
  request.cursor = 3;
  Reply r = Send(Encode([&](std::span<uint8_t> out) {
                   return protocol::EncodeListRequest(h, request, out);
                 }),
                 MakeEndpoint(5002));
  EXPECT_EQ(r.status.code, ResultCode::kCursorExpired);
}

// Every reply to a datagram that proved no session key is at most the
// datagram's size: the daemon is no amplifier for a spoofed sender.
TEST_F(HandlersTest, NoUnauthenticatedReplyIsLargerThanItsRequest) {
  std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
  int answered = 0;
  // Sends `datagram` and every truncation of it; each reply must fit.
  auto check = [&](const std::vector<uint8_t>& datagram, const Endpoint& from,
                   const char* what) {
    for (size_t n = datagram.size(); n + 1 > 0; --n) {
      std::vector<uint8_t> cut(datagram.begin(), datagram.begin() + n);
      const size_t size = handler_.Handle(cut, from, now_, reply);
      EXPECT_LE(size, n) << what << " cut to " << n << " bytes";
      if (size > 0) ++answered;
    }
  };
  auto login = [&](absl::string_view client_first, bool padded) {
    Header h = MakeHeader(MessageType::kLogin, 0);
    protocol::LoginRequest request{
        client_first, padded ? protocol::LoginPaddingFor(client_first) : 0};
    return Encode([&](std::span<uint8_t> out) {
      return protocol::EncodeLoginRequest(h, request, out);
    });
  };
  const Endpoint from = MakeEndpoint(6000);
  // LOGIN: the challenge, an unpadded LOGIN, a malformed client-first, a
  // bad user name.
  check(login("n,,n=hans,r=abcdefghijklmnopqrstuvwx", true), from, "LOGIN");
  check(login("n,,n=hans,r=abcdefghijklmnopqrstuvwx", false), from,
        "unpadded LOGIN");
  check(login("garbage", true), from, "malformed LOGIN");
  check(login("n,,n=no/slash,r=abcdefghijklmnopqrstuvwx", true), from,
        "LOGIN with a bad name");
  // LOGIN_FINISH: a wrong password, a stale nonce, an active user.
  std::vector<uint8_t> finish;
  EXPECT_EQ(
      LoginExchange("vader", "wrong", MakeEndpoint(6001), &finish).status.code,
      ResultCode::kAuthFailed);
  check(finish, MakeEndpoint(6001), "LOGIN_FINISH, wrong password");
  check(finish, MakeEndpoint(6002), "LOGIN_FINISH, foreign nonce");
  EXPECT_NE(Login("yoda", "yodapass", MakeEndpoint(6003)), 0u);
  std::vector<uint8_t> again;
  EXPECT_EQ(
      LoginExchange("yoda", "yodapass", MakeEndpoint(6004), &again).status.code,
      ResultCode::kAlreadyActive);
  check(again, MakeEndpoint(6004), "LOGIN_FINISH, already active");
  // Rate limits: failures of one address, then the address itself.
  for (int i = 0; i < 3; ++i) {
    LoginExchange("hans", "guess", MakeEndpoint(6005));
  }
  check(login("n,,n=hans,r=abcdefghijklmnopqrstuvwx", true), MakeEndpoint(6005),
        "LOGIN, too many failures");
  Endpoint flooder = MakeEndpoint(6006);
  flooder.ip = {127, 0, 0, 9};
  while (address_limiter_.TryAcquire(
      std::string(reinterpret_cast<const char*>(flooder.ip.data()), 4), now_)) {
  }
  check(login("n,,n=hans,r=abcdefghijklmnopqrstuvwx", true), flooder,
        "LOGIN, address limit");
  // No session: padded and unpadded heartbeats, a GET, an unknown type, a
  // version the daemon does not speak.
  Header hb = MakeHeader(MessageType::kHeartbeat, 77);
  check(Encode([&](std::span<uint8_t> out) {
          return protocol::EncodeEmptyRequest(
              hb, out, protocol::kEmptyRequestPaddingBytes);
        }),
        from, "HEARTBEAT, unknown session");
  Header get = MakeHeader(MessageType::kGet, 77);
  check(Encode([&](std::span<uint8_t> out) {
          return protocol::EncodeNameRequest(get, protocol::NameRequest{"a"},
                                             out);
        }),
        from, "GET, unknown session");
  Header unknown = MakeHeader(static_cast<MessageType>(0x7e), 0);
  std::vector<uint8_t> odd = Encode([&](std::span<uint8_t> out) {
    return protocol::EncodeEmptyRequest(unknown, out, 40);
  });
  check(odd, from, "unknown type");
  odd[protocol::kVersionOffset] = 9;
  check(odd, from, "unknown version");
  Header ping = MakeHeader(MessageType::kPing, 0);
  check(Encode([&](std::span<uint8_t> out) {
          return protocol::EncodePingRequest(ping, {}, out);
        }),
        from, "PING");
  EXPECT_GT(answered, 20);  // the cases were answered, not just dropped
}

TEST_F(HandlersTest, AShortLoginGetsAnErrorWithinItsSize) {
  Header h = MakeHeader(MessageType::kLogin, 0);
  const std::string first = "n,,n=hans,r=abcdefghijklmnopqrstuvwx";
  std::vector<uint8_t> request = Encode([&](std::span<uint8_t> out) {
    return protocol::EncodeLoginRequest(h, protocol::LoginRequest{first}, out);
  });
  Reply r = Send(request, MakeEndpoint(6000));
  EXPECT_EQ(r.status.code, ResultCode::kMalformed);
  EXPECT_EQ(r.status.message, "pad LOGIN to 1200 bytes");
  EXPECT_LE(r.bytes.size(), request.size());
}

TEST_F(HandlersTest, AnUnknownSessionsUnpaddedHeartbeatGetsNoReply) {
  Header h = MakeHeader(MessageType::kHeartbeat, 77);
  std::vector<uint8_t> bare = Encode([&](std::span<uint8_t> out) {
    return protocol::EncodeEmptyRequest(h, out);
  });
  std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
  // 44 bytes cannot hold the 47 of an error reply.
  EXPECT_EQ(handler_.Handle(bare, MakeEndpoint(6000), now_, reply), 0u);
  // Padded as ClientSession sends it: the answer comes, its message left
  // out (whole or not at all).
  Reply r = Empty(MessageType::kHeartbeat, 77, MakeEndpoint(6000));
  EXPECT_EQ(r.status.code, ResultCode::kUnknownSession);
  EXPECT_EQ(r.status.message, "");
}

TEST_F(HandlersTest, MalformedDatagramsNeverCrashAndAreCounted) {
  std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
  // Too short, bad magic: dropped without a reply.
  std::vector<uint8_t> garbage = {1, 2, 3};
  EXPECT_EQ(handler_.Handle(garbage, MakeEndpoint(1), now_, reply), 0u);
  // A valid header of an unknown type: an error reply.
  Header h = MakeHeader(static_cast<MessageType>(0x7f), 0);
  std::vector<uint8_t> unknown = Encode([&](std::span<uint8_t> out) {
    return protocol::EncodeEmptyRequest(h, out,
                                        protocol::kEmptyRequestPaddingBytes);
  });
  EXPECT_EQ(Send(unknown, MakeEndpoint(1)).status.code,
            ResultCode::kUnknownType);
  // Another version: an error reply that says so.
  std::vector<uint8_t> future = unknown;
  future[protocol::kVersionOffset] = 9;
  future[protocol::kTypeOffset] = static_cast<uint8_t>(MessageType::kHeartbeat);
  // It comes in the sender's version, so that its client reads it.
  std::vector<uint8_t> answer(protocol::kMaxDatagramSize);
  const size_t answered =
      handler_.Handle(future, MakeEndpoint(1), now_, answer);
  ASSERT_GT(answered, protocol::kHeaderSize);
  EXPECT_EQ(answer[protocol::kVersionOffset], 9);
  EXPECT_EQ(answer[protocol::kHeaderSize],
            static_cast<uint8_t>(ResultCode::kUnsupportedVersion));
  // Every truncation of a valid login is answered or dropped, never crashes.
  std::vector<uint8_t> login;
  LoginExchange("hans", "wrong", MakeEndpoint(1), &login);
  for (size_t n = 0; n < login.size(); ++n) {
    std::vector<uint8_t> cut(login.begin(), login.begin() + n);
    handler_.Handle(cut, MakeEndpoint(1), now_, reply);
  }
  // Random bytes after a valid header, for every type.
  std::mt19937 random(1);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> d(protocol::kHeaderSize + random() % 300);
    for (uint8_t& b : d) b = static_cast<uint8_t>(random());
    Header rh =
        MakeHeader(static_cast<MessageType>(random() % 0x20), random() % 2);
    protocol::EncodeHeader(rh, d);
    handler_.Handle(d, MakeEndpoint(1), now_, reply);
  }
  EXPECT_GT(counters_.dropped_malformed.load(), 0u);
  // And the daemon still works.
  EXPECT_NE(Login("yoda", "yodapass", MakeEndpoint(5002)), 0u);
}

// PUB and UNP through a JournalWriter, as the daemon runs them: deferred
// until their batch is durable, then answered through the send path.
class DeferredPublicationTest : public HandlersTest {
 protected:
  DeferredPublicationTest()
      : completions_(*JournalWriter::CompletionQueue::Create()),
        writer_(
            [this](std::span<const PublicationChange> batch) {
              // Held while the test holds hold_: the batch is "on its way
              // to the disk".
              std::lock_guard<std::mutex> lock(hold_);
              appended_ += batch.size();
              return failing_.load() ? absl::ResourceExhaustedError(
                                           "No space left on device")
                                     : absl::OkStatus();
            },
            &registry_, JournalWriter::Options{}),
        deferred_(MakeDeferredShared(), RequestHandler::Options{}, now_) {
    deferred_.EnableDeferredReplies(
        completions_.get(),
        [this](std::span<const uint8_t> reply, const Endpoint& to) {
          sent_.emplace_back(std::vector<uint8_t>(reply.begin(), reply.end()),
                             to);
        });
  }
  ~DeferredPublicationTest() override { writer_.Shutdown(); }

  RequestHandler::Shared MakeDeferredShared() {
    RequestHandler::Shared shared = MakeShared();
    shared.journal = &writer_;
    return shared;
  }

  std::vector<uint8_t> PublishDatagram(uint64_t session,
                                       const std::string& name, uint64_t size,
                                       uint32_t request_id) {
    Header h = MakeHeader(MessageType::kPublish, session);
    h.request_id = request_id;
    protocol::PublishRequest request;
    request.name = name;
    request.size = size;
    request.root.fill(0xab);
    return Seal(Encode([&](std::span<uint8_t> out) {
      return protocol::EncodePublishRequest(h, request, out);
    }));
  }
  std::vector<uint8_t> UnpublishDatagram(uint64_t session,
                                         const std::string& name,
                                         uint32_t request_id) {
    Header h = MakeHeader(MessageType::kUnpublish, session);
    h.request_id = request_id;
    protocol::NameRequest request{name};
    return Seal(Encode([&](std::span<uint8_t> out) {
      return protocol::EncodeNameRequest(h, request, out);
    }));
  }

  // Hands a datagram to the deferred handler; returns its immediate reply
  // size (0: deferred or dropped).
  size_t Handle(const std::vector<uint8_t>& datagram, const Endpoint& from) {
    std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
    return deferred_.Handle(datagram, from, now_, reply);
  }

  // Runs completions as the reactor would, until `count` replies were sent
  // (bounded: 10 s).
  void WaitForSent(size_t count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (sent_.size() < count && absl::Now() < deadline) {
      pollfd p{completions_->fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) == 1) completions_->RunCompletions();
    }
    ASSERT_EQ(sent_.size(), count);
  }

  // The status of sent reply `i`, checking it is sealed with `session`'s
  // key and carries sequence `sequence`.
  protocol::ReplyStatus SentStatus(size_t i, uint64_t session,
                                   uint64_t sequence) {
    const std::vector<uint8_t>& bytes = sent_.at(i).first;
    opened_.assign(bytes.size() - protocol::kHeaderSize, 0);
    EXPECT_EQ(OpenDatagram(datagram_keys_[session], Direction::kToClient, bytes,
                           opened_),
              sequence);
    auto status = protocol::DecodeReplyStatus(opened_);
    EXPECT_TRUE(status.ok());
    return *status;
  }

  std::mutex hold_;
  std::atomic<bool> failing_{false};
  std::atomic<size_t> appended_{0};
  std::unique_ptr<JournalWriter::CompletionQueue> completions_;
  JournalWriter writer_;
  RequestHandler deferred_;
  std::vector<std::pair<std::vector<uint8_t>, Endpoint>> sent_;
  std::vector<uint8_t> opened_;  // SentStatus's body, which it views
};

TEST_F(DeferredPublicationTest, PubIsAnsweredOnceDurableRetransmissionsWait) {
  const Endpoint from = MakeEndpoint(5000);
  uint64_t hans = Login("hans", "hanspass", from);
  uint64_t first_sequence = 0;
  {
    std::lock_guard<std::mutex> disk_busy(hold_);
    EXPECT_EQ(Handle(PublishDatagram(hans, "a.txt", 42, 900), from),
              0u);  // deferred
    first_sequence = sequences_[hans];
    // A retransmission while the batch is on its way: dropped, not run
    // again (one change only reaches the journal).
    EXPECT_EQ(Handle(PublishDatagram(hans, "a.txt", 42, 900), from), 0u);
    EXPECT_EQ(counters_.retransmissions.load(), 1u);
    EXPECT_EQ(registry_.PublicationOf("hans", "a.txt"), std::nullopt);
    EXPECT_EQ(completions_->RunCompletions(), 0u);
    EXPECT_TRUE(sent_.empty());
  }
  WaitForSent(1);
  // Sealed for the first copy, whose sequence number the client waits on.
  EXPECT_EQ(SentStatus(0, hans, first_sequence).code, ResultCode::kOk);
  EXPECT_EQ(sent_[0].second, from);
  EXPECT_EQ(appended_.load(), 1u);
  FileMeta meta;
  meta.size = 42;
  meta.root.fill(0xab);
  EXPECT_EQ(registry_.PublicationOf("hans", "a.txt"), meta);
  // After completion, a retransmission gets the cached answer at once.
  std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
  const size_t n = deferred_.Handle(PublishDatagram(hans, "a.txt", 42, 900),
                                    from, now_, reply);
  ASSERT_GT(n, 0u);
  std::vector<uint8_t> body(n - protocol::kHeaderSize);
  EXPECT_EQ(OpenDatagram(datagram_keys_[hans], Direction::kToClient,
                         std::span<const uint8_t>(reply.data(), n), body),
            sequences_[hans]);
  EXPECT_EQ(counters_.retransmissions.load(), 2u);
}

TEST_F(DeferredPublicationTest, NoChangeIsAnsweredAtOnceWithoutARecord) {
  const Endpoint from = MakeEndpoint(5000);
  uint64_t hans = Login("hans", "hanspass", from);
  ASSERT_EQ(Handle(PublishDatagram(hans, "a.txt", 42, 901), from), 0u);
  WaitForSent(1);
  // The same publication again, and an unp of a name hans does not
  // publish: answered now, nothing written.
  EXPECT_GT(Handle(PublishDatagram(hans, "a.txt", 42, 902), from), 0u);
  EXPECT_GT(Handle(UnpublishDatagram(hans, "nope.txt", 903), from), 0u);
  EXPECT_EQ(appended_.load(), 1u);
  // An unp that changes something is deferred and then takes effect.
  ASSERT_EQ(Handle(UnpublishDatagram(hans, "a.txt", 904), from), 0u);
  WaitForSent(2);
  EXPECT_EQ(SentStatus(1, hans, sequences_[hans]).code, ResultCode::kOk);
  EXPECT_EQ(registry_.PublicationOf("hans", "a.txt"), std::nullopt);
  EXPECT_EQ(appended_.load(), 2u);
}

TEST_F(DeferredPublicationTest, FailedWriteLeavesMemoryAsBeforeTheRequest) {
  const Endpoint from = MakeEndpoint(5000);
  uint64_t hans = Login("hans", "hanspass", from);
  ASSERT_EQ(Handle(PublishDatagram(hans, "kept.txt", 42, 910), from), 0u);
  ASSERT_EQ(Handle(PublishDatagram(hans, "gone.txt", 42, 911), from), 0u);
  WaitForSent(2);
  const std::optional<FileMeta> kept =
      registry_.PublicationOf("hans", "kept.txt");
  ASSERT_TRUE(kept.has_value());
  failing_ = true;
  // Re-publish with a new size, unp, and a new pub: all fail.
  ASSERT_EQ(Handle(PublishDatagram(hans, "kept.txt", 43, 912), from), 0u);
  WaitForSent(3);
  EXPECT_EQ(SentStatus(2, hans, sequences_[hans]).code, ResultCode::kInternal);
  ASSERT_EQ(Handle(UnpublishDatagram(hans, "gone.txt", 913), from), 0u);
  WaitForSent(4);
  EXPECT_EQ(SentStatus(3, hans, sequences_[hans]).code, ResultCode::kInternal);
  ASSERT_EQ(Handle(PublishDatagram(hans, "new.txt", 42, 914), from), 0u);
  WaitForSent(5);
  EXPECT_EQ(SentStatus(4, hans, sequences_[hans]).code, ResultCode::kInternal);
  EXPECT_EQ(registry_.PublicationOf("hans", "kept.txt"), kept);
  EXPECT_TRUE(registry_.PublicationOf("hans", "gone.txt").has_value());
  EXPECT_EQ(registry_.PublicationOf("hans", "new.txt"), std::nullopt);
  EXPECT_EQ(counters_.state_errors.load(), 3u);
  // The error is not cached: once the disk recovers, the client's
  // retransmission carries the change out.
  failing_ = false;
  ASSERT_EQ(Handle(PublishDatagram(hans, "new.txt", 42, 914), from), 0u);
  WaitForSent(6);
  EXPECT_EQ(SentStatus(5, hans, sequences_[hans]).code, ResultCode::kOk);
  EXPECT_TRUE(registry_.PublicationOf("hans", "new.txt").has_value());
}

// ---- Cluster mode, with a fake link to the store ---------------------------

// The store as the handlers see it: claims wait until the test completes
// them, releases and commits are recorded, and the link can be cut.
class FakeClusterLink final : public ClusterLink {
 public:
  struct PendingClaim {
    ClusterSession session;
    ClusterStore::ClaimDone done;
  };

  const std::string& daemon_id() const override { return daemon_id_; }
  absl::Status CommitPublications(
      std::span<const PublicationChange> batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (down_)
      return absl::UnavailableError("redis at 127.0.0.1:6379: timeout");
    committed_ += batch.size();
    return absl::OkStatus();
  }
  void Claim(ClusterSession session, ClusterStore::ClaimDone done) override {
    std::lock_guard<std::mutex> lock(mu_);
    claims_.push_back(PendingClaim{std::move(session), std::move(done)});
  }
  void Release(std::string user, uint64_t session_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    releases_.emplace_back(std::move(user), session_id);
  }
  ClusterStore::Stats stats() const override { return {}; }
  void Stop() override {}

  void SetDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }
  // Completes claim `i` with `outcome` from another thread, as the store's
  // writer thread does.
  void CompleteClaim(size_t i, const absl::Status& outcome) {
    ClusterStore::ClaimDone done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done = std::move(claims_.at(i).done);
    }
    std::thread([&done, outcome] {
      if (outcome.ok()) {
        done(ClusterStore::ClaimResult::kClaimed);
      } else {
        done(outcome);
      }
    }).join();
  }
  size_t claim_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return claims_.size();
  }
  ClusterSession claimed(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return claims_.at(i).session;
  }
  std::vector<std::pair<std::string, uint64_t>> releases() {
    std::lock_guard<std::mutex> lock(mu_);
    return releases_;
  }
  size_t committed() {
    std::lock_guard<std::mutex> lock(mu_);
    return committed_;
  }

 private:
  const std::string daemon_id_ = "00000000000000aa";
  std::mutex mu_;
  bool down_ = false;
  size_t committed_ = 0;
  std::vector<PendingClaim> claims_;
  std::vector<std::pair<std::string, uint64_t>> releases_;
};

class ClusterHandlersTest : public HandlersTest {
 protected:
  ClusterHandlersTest()
      : completions_(*JournalWriter::CompletionQueue::Create()),
        writer_(
            [this](std::span<const PublicationChange> batch) {
              return link_.CommitPublications(batch);
            },
            &registry_, JournalWriter::Options{}),
        replica_(&registry_, link_.daemon_id(), [this] { return now_; }),
        cluster_(MakeClusterShared(), RequestHandler::Options{}, now_) {
    cluster_.EnableDeferredReplies(
        completions_.get(),
        [this](std::span<const uint8_t> reply, const Endpoint& to) {
          sent_.emplace_back(std::vector<uint8_t>(reply.begin(), reply.end()),
                             to);
        });
  }
  ~ClusterHandlersTest() override { writer_.Shutdown(); }

  RequestHandler::Shared MakeClusterShared() {
    RequestHandler::Shared shared = MakeShared();
    shared.journal = &writer_;
    shared.cluster = &link_;
    shared.replica = &replica_;
    return shared;
  }

  size_t Handle(const std::vector<uint8_t>& datagram, const Endpoint& from) {
    std::vector<uint8_t> reply(protocol::kMaxDatagramSize);
    const size_t n = cluster_.Handle(datagram, from, now_, reply);
    reply.resize(n);
    last_reply_ = reply;
    return n;
  }

  // Runs completions as the reactor would, until `count` replies were sent
  // (bounded: 10 s).
  void WaitForSent(size_t count) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (sent_.size() < count && absl::Now() < deadline) {
      pollfd p{completions_->fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) == 1) completions_->RunCompletions();
    }
    ASSERT_EQ(sent_.size(), count);
  }

  // A login through the cluster handler up to its LOGIN_FINISH, which the
  // handler defers; `finish` receives that datagram.
  void StartLogin(client::ClientSession& session, const std::string& user,
                  const std::string& password, const Endpoint& from,
                  std::vector<uint8_t>* finish) {
    ASSERT_TRUE(session.StartLogin(user, password, 7000).ok());
    std::vector<uint8_t> login(protocol::kMaxDatagramSize);
    login.resize(session.EncodeTry(now_, login));
    ASSERT_GT(Handle(login, from), 0u);
    std::optional<client::Reply> challenge = session.Receive(last_reply_);
    ASSERT_TRUE(challenge.has_value());
    ASSERT_TRUE(session.ContinueLogin(*challenge).ok());
    finish->resize(protocol::kMaxDatagramSize);
    finish->resize(session.EncodeTry(now_, *finish));
    EXPECT_EQ(Handle(*finish, from), 0u) << "LOGIN_FINISH was not deferred";
  }

  // Reply `i` as the client takes it.
  std::optional<client::Reply> Take(client::ClientSession& session, size_t i) {
    return session.Receive(sent_.at(i).first);
  }

  // Logs `user` in through the cluster handler with its claim granted;
  // returns the session id.
  uint64_t ClusterLogin(const std::string& user, const std::string& password,
                        const Endpoint& from) {
    client::ClientSession session(request_id_ + 1);
    request_id_ += 2;
    std::vector<uint8_t> finish;
    StartLogin(session, user, password, from, &finish);
    const size_t claim = link_.claim_count() - 1;
    const size_t sent = sent_.size();
    link_.CompleteClaim(claim, absl::OkStatus());
    WaitForSent(sent + 1);
    std::optional<client::Reply> reply = Take(session, sent);
    EXPECT_TRUE(reply.has_value());
    if (!reply.has_value() || reply->code != ResultCode::kOk) return 0;
    EXPECT_TRUE(session.ContinueLogin(*reply).ok());
    keys_[session.session_id()] = session.key();
    datagram_keys_[session.session_id()] = KeysOf(session.key());
    return session.session_id();
  }

  std::vector<uint8_t> SealedNamed(MessageType type, uint64_t session,
                                   const std::string& name,
                                   uint32_t request_id) {
    Header h = MakeHeader(type, session);
    h.request_id = request_id;
    if (type == MessageType::kPublish) {
      protocol::PublishRequest request;
      request.name = name;
      request.size = 42;
      request.root.fill(0xab);
      return Seal(Encode([&](std::span<uint8_t> out) {
        return protocol::EncodePublishRequest(h, request, out);
      }));
    }
    protocol::NameRequest request{name};
    return Seal(Encode([&](std::span<uint8_t> out) {
      return protocol::EncodeNameRequest(h, request, out);
    }));
  }

  // The status of a sealed reply of `session`.
  protocol::ReplyStatus Opened(const std::vector<uint8_t>& bytes,
                               uint64_t session) {
    opened_.assign(bytes.size() - protocol::kHeaderSize, 0);
    EXPECT_TRUE(OpenDatagram(datagram_keys_[session], Direction::kToClient,
                             bytes, opened_)
                    .has_value());
    auto status = protocol::DecodeReplyStatus(opened_);
    EXPECT_TRUE(status.ok());
    return *status;
  }

  // A session daemon "bb" holds, as its login event carries it.
  static ClusterSession RemoteSession(const std::string& user, uint64_t id) {
    ClusterSession session;
    session.user = user;
    session.daemon_id = "00000000000000bb";
    session.session_id = id;
    session.file_server.family = 4;
    session.file_server.ip = {10, 0, 0, 2};
    session.file_server.port = 7300;
    session.key_pin.fill(0x33);
    session.ticket_key.fill(0x44);
    return session;
  }

  FakeClusterLink link_;
  std::unique_ptr<JournalWriter::CompletionQueue> completions_;
  JournalWriter writer_;
  ClusterReplica replica_;
  RequestHandler cluster_;
  std::vector<std::pair<std::vector<uint8_t>, Endpoint>> sent_;
  std::vector<uint8_t> last_reply_;
  std::vector<uint8_t> opened_;
};

TEST_F(ClusterHandlersTest, LoginIsAnsweredOnceTheStoreClaimsIt) {
  const Endpoint from = MakeEndpoint(5000);
  client::ClientSession session(500);
  std::vector<uint8_t> finish;
  StartLogin(session, "hans", "hanspass", from, &finish);
  ASSERT_EQ(link_.claim_count(), 1u);
  EXPECT_TRUE(sent_.empty());
  const ClusterSession claimed = link_.claimed(0);
  EXPECT_EQ(claimed.user, "hans");
  EXPECT_EQ(claimed.daemon_id, "00000000000000aa");
  EXPECT_EQ(claimed.file_server.port, 7000);
  EXPECT_EQ(claimed.file_server.ip, from.ip);
  link_.CompleteClaim(0, absl::OkStatus());
  WaitForSent(1);
  EXPECT_EQ(sent_[0].second, from);
  // An unsealed reply is never larger than its request.
  EXPECT_LE(sent_[0].first.size(), finish.size());
  std::optional<client::Reply> reply = Take(session, 0);
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->code, ResultCode::kOk) << reply->message;
  ASSERT_TRUE(session.ContinueLogin(*reply).ok());
  EXPECT_EQ(session.session_id(), claimed.session_id);
  // The cluster's ticket key is the one the client derives: any daemon's
  // tickets for hans verify at hans.
  EXPECT_EQ(TicketKey{claimed.ticket_key}, TicketKeyFor(session.key()));
  EXPECT_TRUE(registry_.IsActive("hans", now_));
  EXPECT_EQ(cluster_.metrics().logins_ok.Get(), 1u);
}

TEST_F(ClusterHandlersTest, LoginRefusedByTheStoreEndsTheLocalSession) {
  const Endpoint from = MakeEndpoint(5000);
  client::ClientSession session(500);
  std::vector<uint8_t> finish;
  StartLogin(session, "hans", "hanspass", from, &finish);
  ASSERT_TRUE(registry_.IsActive("hans", now_));
  link_.CompleteClaim(0, absl::AlreadyExistsError("hans is held by bb"));
  WaitForSent(1);
  std::optional<client::Reply> reply = Take(session, 0);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, ResultCode::kAlreadyActive);
  EXPECT_EQ(reply->message, "user hans is already active on another daemon");
  EXPECT_FALSE(registry_.IsActive("hans", now_));
  EXPECT_EQ(sessions_.size(), 0u);
  EXPECT_EQ(cluster_.metrics().logins_refused.Get(), 1u);
  // Not ours: nothing to release.
  EXPECT_TRUE(link_.releases().empty());
}

// hans logs in here and on bb at once; bb's login reaches the replica
// while this one's claim is pending, and the store grants bb's.
TEST_F(ClusterHandlersTest, TheWinnersSessionIsSeenOnceTheLoserEnds) {
  const Endpoint from = MakeEndpoint(5000);
  client::ClientSession session(500);
  std::vector<uint8_t> finish;
  StartLogin(session, "hans", "hanspass", from, &finish);
  const ClusterSession there = RemoteSession("hans", 0x1234);
  replica_.ApplyEvent(ClusterEvent{ClusterEvent::Kind::kLogin, there, "", {}});
  EXPECT_EQ(replica_.TicketKeyOf(0x1234), std::nullopt);
  link_.CompleteClaim(0, absl::AlreadyExistsError("hans is held by bb"));
  WaitForSent(1);
  EXPECT_TRUE(registry_.IsActive("hans", now_));
  EXPECT_EQ(replica_.TicketKeyOf(0x1234), TicketKey{there.ticket_key});
  EXPECT_EQ(registry_.ActiveUsers("", now_), std::vector<std::string>{"hans"});
}

TEST_F(ClusterHandlersTest, LoginWithTheStoreUnreachableFailsClearly) {
  const Endpoint from = MakeEndpoint(5000);
  client::ClientSession session(500);
  std::vector<uint8_t> finish;
  StartLogin(session, "hans", "hanspass", from, &finish);
  const uint64_t id = link_.claimed(0).session_id;
  link_.CompleteClaim(0, absl::UnavailableError("redis: connection refused"));
  WaitForSent(1);
  std::optional<client::Reply> reply = Take(session, 0);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, ResultCode::kInternal);
  EXPECT_EQ(reply->message, "the index store is unreachable; try again");
  EXPECT_FALSE(registry_.IsActive("hans", now_));
  EXPECT_EQ(sessions_.size(), 0u);
  // The claim may have landed before the timeout: released, which frees it
  // only if it names this session.
  EXPECT_EQ(link_.releases(),
            (std::vector<std::pair<std::string, uint64_t>>{{"hans", id}}));
}

TEST_F(ClusterHandlersTest, RetransmissionWhileTheClaimIsPendingIsDropped) {
  const Endpoint from = MakeEndpoint(5000);
  client::ClientSession session(500);
  std::vector<uint8_t> finish;
  StartLogin(session, "hans", "hanspass", from, &finish);
  // The same LOGIN_FINISH again, twice: no reply, no second claim, no
  // second session.
  EXPECT_EQ(Handle(finish, from), 0u);
  EXPECT_EQ(Handle(finish, from), 0u);
  EXPECT_EQ(link_.claim_count(), 1u);
  EXPECT_EQ(registry_.session_count(), 1u);
  EXPECT_EQ(sessions_.size(), 1u);
  EXPECT_EQ(counters_.retransmissions.load(), 2u);
  link_.CompleteClaim(0, absl::OkStatus());
  WaitForSent(1);
  std::optional<client::Reply> reply = Take(session, 0);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->code, ResultCode::kOk);
  // One reply only: the retransmissions got none of their own.
  EXPECT_EQ(completions_->RunCompletions(), 0u);
  EXPECT_EQ(sent_.size(), 1u);
  // Once claimed, a retransmission is answered at once, claimed no more.
  EXPECT_GT(Handle(finish, from), 0u);
  EXPECT_EQ(link_.claim_count(), 1u);
}

TEST_F(ClusterHandlersTest, UserHeldOnAnotherDaemonIsRefusedWithoutAClaim) {
  replica_.ApplyEvent(ClusterEvent{
      ClusterEvent::Kind::kLogin, RemoteSession("hans", 0x1234), "", {}});
  const Reply r = [&] {
    Reply out;
    client::ClientSession session(500);
    EXPECT_TRUE(session.StartLogin("hans", "hanspass", 7000).ok());
    std::vector<uint8_t> datagram(protocol::kMaxDatagramSize);
    datagram.resize(session.EncodeTry(now_, datagram));
    EXPECT_GT(Handle(datagram, MakeEndpoint(5000)), 0u);
    std::optional<client::Reply> challenge = session.Receive(last_reply_);
    EXPECT_TRUE(challenge.has_value() &&
                session.ContinueLogin(*challenge).ok());
    datagram.resize(protocol::kMaxDatagramSize);
    datagram.resize(session.EncodeTry(now_, datagram));
    EXPECT_GT(Handle(datagram, MakeEndpoint(5000)), 0u);
    out.status = *protocol::DecodeReplyStatus(
        protocol::ParseDatagram(last_reply_)->body);
    return out;
  }();
  EXPECT_EQ(r.status.code, ResultCode::kAlreadyActive);
  EXPECT_EQ(r.status.message, "user hans is already active on another daemon");
  EXPECT_EQ(link_.claim_count(), 0u);
}

TEST_F(ClusterHandlersTest, LogoutAndExpiryReleaseTheClaim) {
  const uint64_t hans = ClusterLogin("hans", "hanspass", MakeEndpoint(5000));
  const uint64_t yoda = ClusterLogin("yoda", "yodapass", MakeEndpoint(5002));
  ASSERT_NE(hans, 0u);
  ASSERT_NE(yoda, 0u);
  Header h = MakeHeader(MessageType::kLogout, hans);
  ASSERT_GT(Handle(Seal(Encode([&](std::span<uint8_t> out) {
                     return protocol::EncodeEmptyRequest(
                         h, out, protocol::kEmptyRequestPaddingBytes);
                   })),
                   MakeEndpoint(5000)),
            0u);
  EXPECT_EQ(link_.releases(),
            (std::vector<std::pair<std::string, uint64_t>>{{"hans", hans}}));
  // yoda stops heartbeating.
  now_ += absl::Seconds(4);
  cluster_.Tick(now_);
  EXPECT_EQ(link_.releases(), (std::vector<std::pair<std::string, uint64_t>>{
                                  {"hans", hans}, {"yoda", yoda}}));
}

TEST_F(ClusterHandlersTest, PubAndUnpFailClearlyWhileTheStoreIsDown) {
  const Endpoint from = MakeEndpoint(5000);
  const uint64_t hans = ClusterLogin("hans", "hanspass", from);
  ASSERT_NE(hans, 0u);
  ASSERT_EQ(
      Handle(SealedNamed(MessageType::kPublish, hans, "a.txt", 900), from), 0u);
  WaitForSent(2);  // the login's reply, then the pub's
  EXPECT_EQ(Opened(sent_[1].first, hans).code, ResultCode::kOk);
  EXPECT_EQ(link_.committed(), 1u);

  link_.SetDown(true);
  ASSERT_EQ(
      Handle(SealedNamed(MessageType::kPublish, hans, "b.txt", 901), from), 0u);
  WaitForSent(3);
  protocol::ReplyStatus pub = Opened(sent_[2].first, hans);
  EXPECT_EQ(pub.code, ResultCode::kInternal);
  EXPECT_EQ(pub.message,
            "the index store is unreachable; the publication was not "
            "recorded: try again");
  ASSERT_EQ(
      Handle(SealedNamed(MessageType::kUnpublish, hans, "a.txt", 902), from),
      0u);
  WaitForSent(4);
  protocol::ReplyStatus unp = Opened(sent_[3].first, hans);
  EXPECT_EQ(unp.code, ResultCode::kInternal);
  EXPECT_TRUE(absl::StrContains(unp.message, "store is unreachable"))
      << unp.message;
  // Nothing changed, and nothing was lost: a.txt is still published.
  EXPECT_TRUE(registry_.PublicationOf("hans", "a.txt").has_value());
  EXPECT_EQ(registry_.PublicationOf("hans", "b.txt"), std::nullopt);
  EXPECT_EQ(link_.committed(), 1u);
  // Heartbeats, lists and get go on from the replica meanwhile.
  Header hb = MakeHeader(MessageType::kHeartbeat, hans);
  ASSERT_GT(Handle(Seal(Encode([&](std::span<uint8_t> out) {
                     return protocol::EncodeEmptyRequest(
                         hb, out, protocol::kEmptyRequestPaddingBytes);
                   })),
                   from),
            0u);
  EXPECT_EQ(Opened(last_reply_, hans).code, ResultCode::kOk);

  // Back: the client's retransmission (not cached) goes through.
  link_.SetDown(false);
  ASSERT_EQ(
      Handle(SealedNamed(MessageType::kPublish, hans, "b.txt", 901), from), 0u);
  WaitForSent(5);
  EXPECT_EQ(Opened(sent_[4].first, hans).code, ResultCode::kOk);
  EXPECT_TRUE(registry_.PublicationOf("hans", "b.txt").has_value());
}

TEST_F(ClusterHandlersTest, GetIssuesARemoteHoldersTicketWithItsTicketKey) {
  const Endpoint from = MakeEndpoint(5001);
  const uint64_t vader = ClusterLogin("vader", "vaderpass", from);
  ASSERT_NE(vader, 0u);
  const ClusterSession leia = RemoteSession("hans", 0x4321);
  replica_.ApplyEvent(ClusterEvent{ClusterEvent::Kind::kLogin, leia, "", {}});
  FileMeta meta;
  meta.size = 42;
  meta.root.fill(0xab);
  ClusterEvent pub;
  pub.kind = ClusterEvent::Kind::kPublish;
  pub.session.user = "hans";
  pub.name = "a.txt";
  pub.meta = meta;
  replica_.ApplyEvent(pub);
  ASSERT_GT(Handle(SealedNamed(MessageType::kGet, vader, "a.txt", 950), from),
            0u);
  protocol::ReplyStatus status = Opened(last_reply_, vader);
  ASSERT_EQ(status.code, ResultCode::kOk) << status.message;
  auto where = protocol::DecodeGetReply(status.payload);
  ASSERT_TRUE(where.ok()) << where.status();
  ASSERT_EQ(where->holder_count, 1u);
  EXPECT_EQ(where->holders[0].user, "hans");
  EXPECT_EQ(where->holders[0].address.port, 7300);
  EXPECT_EQ(where->holders[0].key_pin, leia.key_pin);
  absl::StatusOr<TicketClaims> claims =
      VerifyTicket(TicketKey{leia.ticket_key}, "hans", where->holders[0].ticket,
                   "a.txt", wall_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->requester, "vader");
  // Once hans logs out there, he is no holder.
  ClusterEvent logout{ClusterEvent::Kind::kLogout, leia, "", {}};
  replica_.ApplyEvent(logout);
  ASSERT_GT(Handle(SealedNamed(MessageType::kGet, vader, "a.txt", 951), from),
            0u);
  EXPECT_EQ(Opened(last_reply_, vader).code, ResultCode::kNotFound);
}

}  // namespace
}  // namespace pcfs
