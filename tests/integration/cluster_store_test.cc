// The cluster store (daemon/cluster_store.h) against a real redis-server
// (tests/integration/redis_fixture.h), one for each test:
//   - two stores see each other's claims, releases and publications;
//   - a live user's second claim is refused, a retransmitted one is not; a
//     claim whose reply was lost is freed again;
//   - Stop() frees a daemon's sessions at once; a crashed daemon's (a
//     child process killed with SIGKILL) are reaped by another within its
//     liveness ttl and refresh, and a lapsed daemon's claim is taken over;
//   - with Redis killed, commits fail within about command_timeout, and
//     after its restart the stores catch up and every acknowledged change
//     is there; an outage longer than the liveness ttl reaps no one;
//   - a reader cut off while the stream was trimmed past it resyncs, and
//     its snapshot is the stored state.
//   - a Redis that does not sync every write is started with, and warned of.
// Every wait is bounded in time.
#include "daemon/cluster_store.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/redis_fixture.h"

namespace pcfs {
namespace {

using testing::RedisServer;
using Kind = ClusterEvent::Kind;

// Polls `done` every 10 ms until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (done()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

// What a daemon would build from its Listener: presence and publications.
struct Replica {
  std::map<std::string, ClusterSession> sessions;  // by user
  std::map<std::pair<std::string, std::string>, FileMeta> publications;

  void Load(const ClusterSnapshot& snapshot) {
    sessions.clear();
    publications.clear();
    for (const ClusterSession& s : snapshot.sessions) sessions[s.user] = s;
    for (const PublicationChange& p : snapshot.publications) {
      publications[{p.user, p.name}] = p.meta;
    }
  }
  void Apply(const ClusterEvent& event) {
    const std::string& user = event.session.user;
    switch (event.kind) {
      case Kind::kLogin:
        sessions[user] = event.session;
        break;
      case Kind::kLogout: {
        auto it = sessions.find(user);
        if (it != sessions.end() &&
            it->second.daemon_id == event.session.daemon_id &&
            it->second.session_id == event.session.session_id) {
          sessions.erase(it);
        }
        break;
      }
      case Kind::kPublish:
        publications[{user, event.name}] = event.meta;
        break;
      case Kind::kUnpublish:
        publications.erase({user, event.name});
        break;
    }
  }
  friend bool operator==(const Replica&, const Replica&) = default;
};

// The stream entry a publication change makes.
ClusterEvent EventOf(const PublicationChange& change) {
  ClusterEvent event;
  event.kind = change.kind == PublicationChange::Kind::kPublish
                   ? Kind::kPublish
                   : Kind::kUnpublish;
  event.session.user = change.user;
  event.name = change.name;
  event.meta = change.meta;
  return event;
}

Replica ReplicaOf(const ClusterSnapshot& snapshot) {
  Replica replica;
  replica.Load(snapshot);
  return replica;
}

// One store's Listener, recording everything; thread-safe. Hold() makes
// on_event wait (a reader that has stopped reading) until Release().
class Recorder {
 public:
  ClusterStore::Listener Listener() {
    ClusterStore::Listener listener;
    listener.on_snapshot = [this](const ClusterSnapshot& snapshot) {
      std::lock_guard<std::mutex> lock(mu_);
      ++snapshots_;
      last_snapshot_ = ReplicaOf(snapshot);
      replica_.Load(snapshot);
    };
    listener.on_event = [this](const ClusterEvent& event) {
      std::unique_lock<std::mutex> lock(mu_);
      events_.push_back(event);
      replica_.Apply(event);
      held_events_ += held_ ? 1 : 0;
      // Bounded: a test that forgets to let go fails, it does not hang.
      cv_.wait_for(lock, std::chrono::seconds(60), [this] { return !held_; });
    };
    listener.on_link = [this](bool up) {
      std::lock_guard<std::mutex> lock(mu_);
      links_.push_back(up);
    };
    return listener;
  }

  std::vector<ClusterEvent> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  Replica replica() const {
    std::lock_guard<std::mutex> lock(mu_);
    return replica_;
  }
  Replica last_snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_snapshot_;
  }
  int snapshots() const {
    std::lock_guard<std::mutex> lock(mu_);
    return snapshots_;
  }
  std::vector<bool> links() const {
    std::lock_guard<std::mutex> lock(mu_);
    return links_;
  }
  // What the daemon's JournalWriter does with a batch the store
  // acknowledged: applies it itself (the store does not hand its own
  // acknowledged changes back on the stream).
  void Acknowledged(std::span<const PublicationChange> changes) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const PublicationChange& change : changes) {
      replica_.Apply(EventOf(change));
    }
  }
  // The first event of `kind` for `user` (from `daemon_id` if given).
  bool Saw(Kind kind, const std::string& user,
           const std::string& daemon_id = "") const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::any_of(events_.begin(), events_.end(), [&](const auto& e) {
      return e.kind == kind && e.session.user == user &&
             (daemon_id.empty() || e.session.daemon_id == daemon_id);
    });
  }

  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  size_t held_events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return held_events_;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ClusterEvent> events_;
  Replica replica_;
  Replica last_snapshot_;
  int snapshots_ = 0;
  std::vector<bool> links_;
  bool held_ = false;
  size_t held_events_ = 0;
};

// Short liveness and timeouts, so that the tests wait little.
ClusterStore::Options Options(const RedisServer& redis) {
  ClusterStore::Options options;
  options.address = redis.address();
  options.key_prefix = "test:";
  options.liveness_ttl = absl::Milliseconds(1500);
  options.liveness_refresh = absl::Milliseconds(300);
  options.command_timeout = absl::Milliseconds(500);
  return options;
}

std::unique_ptr<ClusterStore> StartStore(ClusterStore::Options options,
                                         Recorder& recorder) {
  absl::StatusOr<std::unique_ptr<ClusterStore>> store =
      ClusterStore::Start(std::move(options), recorder.Listener());
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

ClusterSession Session(const std::string& user, uint64_t id,
                       const std::string& daemon_id) {
  ClusterSession session;
  session.user = user;
  session.daemon_id = daemon_id;
  session.session_id = id;
  session.file_server.family = 4;
  session.file_server.ip = {127, 0, 0, 1};
  session.file_server.port = static_cast<uint16_t>(40000 + id % 1000);
  session.key_pin.fill(static_cast<uint8_t>(id));
  session.ticket_key.fill(static_cast<uint8_t>(id + 1));
  return session;
}

// Claim's answer, waited for (at most 10 s: DeadlineExceeded otherwise).
absl::StatusOr<ClusterStore::ClaimResult> ClaimResultAndWait(
    ClusterStore& store, ClusterSession session) {
  using Result = absl::StatusOr<ClusterStore::ClaimResult>;
  auto promise = std::make_shared<std::promise<Result>>();
  std::future<Result> answer = promise->get_future();
  store.Claim(std::move(session), [promise](Result result) {
    promise->set_value(std::move(result));
  });
  if (answer.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return absl::DeadlineExceededError("no answer to Claim in 10 s");
  }
  return answer.get();
}

// The same, its status alone.
absl::Status ClaimAndWait(ClusterStore& store, ClusterSession session) {
  return ClaimResultAndWait(store, std::move(session)).status();
}

PublicationChange Pub(const std::string& user, const std::string& name,
                      uint64_t size) {
  PublicationChange change;
  change.kind = PublicationChange::Kind::kPublish;
  change.user = user;
  change.name = name;
  change.meta.size = size;
  change.meta.root.fill(static_cast<uint8_t>(size));
  return change;
}

PublicationChange Unp(const std::string& user, const std::string& name) {
  PublicationChange change;
  change.kind = PublicationChange::Kind::kUnpublish;
  change.user = user;
  change.name = name;
  return change;
}

// The stored state, as a store starting now finds it.
Replica StoredState(const RedisServer& redis) {
  Recorder recorder;
  std::unique_ptr<ClusterStore> store = StartStore(Options(redis), recorder);
  if (store == nullptr) return {};
  Replica state = recorder.last_snapshot();
  // Its own Stop() has no sessions to free: the state stays as it was.
  store->Stop();
  return state;
}

// A daemon in a child process that claims `users`, then waits to be
// killed: SIGKILL is a crash (no Stop(), its liveness key left to lapse).
// Fork before the test starts threads of its own.
class ChildDaemon {
 public:
  ChildDaemon(ClusterStore::Options options,
              const std::vector<std::string>& users) {
    int fds[2];
    if (::pipe(fds) != 0) {
      ADD_FAILURE() << "pipe";
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      RunChild(std::move(options), users, fds[1]);  // never returns
    }
    ::close(fds[1]);
    out_ = fds[0];
    // "ID\n", then one line for each claim.
    for (size_t lines = 0; lines < 1 + users.size();) {
      const std::string text = ReadLine(absl::Seconds(20));
      if (text.empty()) {
        ADD_FAILURE() << "child daemon: no answer; got so far: " << id_;
        return;
      }
      if (lines++ == 0) {
        id_ = text;
      } else {
        EXPECT_EQ(text, "claimed");
      }
    }
  }
  ~ChildDaemon() {
    Kill();
    if (out_ >= 0) ::close(out_);
  }

  const std::string& id() const { return id_; }
  void Signal(int signo) {
    if (pid_ > 0) ::kill(pid_, signo);
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  [[noreturn]] static void RunChild(ClusterStore::Options options,
                                    const std::vector<std::string>& users,
                                    int fd) {
    absl::StatusOr<std::unique_ptr<ClusterStore>> store =
        ClusterStore::Start(std::move(options), {});
    if (!store.ok()) {
      dprintf(fd, "error: %s\n", std::string(store.status().message()).c_str());
      _exit(1);
    }
    const std::string id = (*store)->daemon_id();
    dprintf(fd, "%s\n", id.c_str());
    uint64_t session_id = 1000;
    for (const std::string& user : users) {
      (*store)->Claim(Session(user, ++session_id, id),
                      [fd](const absl::StatusOr<ClusterStore::ClaimResult>& s) {
                        dprintf(fd, "%s\n", s.ok() ? "claimed" : "refused");
                      });
    }
    // The store stays as it is until the parent kills this process.
    (void)store->release();
    ::sleep(120);
    _exit(0);
  }

  std::string ReadLine(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) return "";
      pollfd fd{out_, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(left)) <= 0) continue;
      char chunk[256];
      const ssize_t n = ::read(out_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
  std::string id_;
};

// CommitPublications as the daemon calls it: on success the committing
// daemon applies the batch to its own replica (`seen`).
absl::Status Commit(ClusterStore& store, Recorder& seen,
                    const std::vector<PublicationChange>& changes) {
  absl::Status status = store.CommitPublications(changes);
  if (status.ok()) seen.Acknowledged(changes);
  return status;
}

TEST(ClusterStoreTest, StartFailsWithTheAddressWhenRedisIsUnreachable) {
  RedisServer redis;
  redis.Kill();
  Recorder recorder;
  absl::StatusOr<std::unique_ptr<ClusterStore>> store =
      ClusterStore::Start(Options(redis), recorder.Listener());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.status().message(),
            absl::StrCat("redis ", redis.address(),
                         " unreachable: Connection refused"));
  EXPECT_EQ(recorder.snapshots(), 0);
}

TEST(ClusterStoreTest, AddressesAreCheckedAndAnIPv6OneIsTried) {
  RedisServer redis;
  redis.Kill();  // its port: nothing listens there now
  ClusterStore::Options options = Options(redis);
  options.address = absl::StrCat("[::1]:", redis.port());
  absl::StatusOr<std::unique_ptr<ClusterStore>> store =
      ClusterStore::Start(options, {});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().message(),
            absl::StrCat("redis [::1]:", redis.port(),
                         " unreachable: Connection refused"));
  for (const char* bad : {"127.0.0.1", "::1:6379", "[::1]6379", ":6379",
                          "127.0.0.1:0", "127.0.0.1:65536", "host:port"}) {
    options.address = bad;
    store = ClusterStore::Start(options, {});
    ASSERT_FALSE(store.ok()) << bad;
    EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StrContains(store.status().message(), bad))
        << store.status();
  }
  options.address = redis.address();
  options.daemon_id = "not-hex";
  store = ClusterStore::Start(options, {});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClusterStoreTest, StartWarnsUnlessRedisSyncsEveryWrite) {
  RedisServer redis;
  Recorder recorder;
  ::testing::internal::CaptureStderr();
  std::unique_ptr<ClusterStore> durable = StartStore(Options(redis), recorder);
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(absl::StrContains(log, "could be lost")) << log;
  ASSERT_EQ(redis.Command({"CONFIG", "SET", "appendfsync", "everysec"}),
            std::vector<std::string>{"OK"});
  ::testing::internal::CaptureStderr();
  std::unique_ptr<ClusterStore> risky = StartStore(Options(redis), recorder);
  log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(absl::StrContains(
      log, absl::StrCat("redis ", redis.address(),
                        " runs with appendonly yes and appendfsync everysec: "
                        "acknowledged changes could be lost")))
      << log;
  EXPECT_NE(risky, nullptr);  // a warning, not a refusal
}

TEST(ClusterStoreTest, ARedisWithAPasswordIsLoggedInToAndARefusalSaysWhy) {
  RedisServer redis("a long secret, spaces and all");
  ClusterStore::Options options = Options(redis);
  Recorder recorder;
  // No password given: the refusal names the flag that gives one.
  absl::StatusOr<std::unique_ptr<ClusterStore>> refused =
      ClusterStore::Start(options, recorder.Listener());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            absl::StrCat("redis ", redis.address(),
                         " refused SET: NOAUTH Authentication required. (give "
                         "the daemon its password: --redis-password-file)"));
  // A wrong one.
  options.password = "a long secret";
  refused = ClusterStore::Start(options, recorder.Listener());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(refused.status().message(),
            absl::StrCat("redis ", redis.address(),
                         " refused the login (AUTH): WRONGPASS invalid "
                         "username-password pair or user is disabled."));
  EXPECT_EQ(recorder.snapshots(), 0);

  options.password = "a long secret, spaces and all";
  Recorder a_seen, b_seen;
  std::unique_ptr<ClusterStore> a = StartStore(options, a_seen);
  std::unique_ptr<ClusterStore> b = StartStore(options, b_seen);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(ClaimAndWait(*a, Session("hans", 7, a->daemon_id())).ok());
  ASSERT_TRUE(Commit(*a, a_seen, {Pub("hans", "a.txt", 10)}).ok());
  EXPECT_TRUE(
      WaitUntil([&] { return b_seen.replica().publications.size() == 1; },
                absl::Seconds(10)));
  // A restarted Redis: every link connects, and logs in, again.
  redis.Kill();
  redis.Restart();
  EXPECT_TRUE(WaitUntil(
      [&] { return Commit(*a, a_seen, {Pub("hans", "b.txt", 20)}).ok(); },
      absl::Seconds(10)));
  EXPECT_TRUE(
      WaitUntil([&] { return b_seen.replica().publications.size() == 2; },
                absl::Seconds(10)));
}

TEST(ClusterStoreTest,
     AnAclUserWithTheDocumentedRulesServesAndOneWithoutDoesNot) {
  RedisServer redis("admin secret");
  // docs/OPERATIONS.md's rules, for this test's key prefix.
  ASSERT_EQ(redis.Command({"ACL", "SETUSER", "peerconnect", "on", ">its secret",
                           "~test:*", "+@all", "-@dangerous"}),
            std::vector<std::string>{"OK"});
  ASSERT_EQ(redis.Command({"ACL", "SETUSER", "elsewhere", "on", ">its secret",
                           "~other:*", "+@all", "-@dangerous"}),
            std::vector<std::string>{"OK"});
  ClusterStore::Options options = Options(redis);
  options.user = "peerconnect";
  options.password = "its secret";
  Recorder a_seen, b_seen;
  std::unique_ptr<ClusterStore> a = StartStore(options, a_seen);
  std::unique_ptr<ClusterStore> b = StartStore(options, b_seen);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const ClusterSession hans = Session("hans", 7, a->daemon_id());
  ASSERT_TRUE(ClaimAndWait(*a, hans).ok());
  ASSERT_TRUE(Commit(*a, a_seen, {Pub("hans", "a.txt", 10)}).ok());
  Replica expected;
  expected.sessions["hans"] = hans;
  expected.publications[{"hans", "a.txt"}] = Pub("hans", "a.txt", 10).meta;
  EXPECT_TRUE(WaitUntil([&] { return b_seen.replica() == expected; },
                        absl::Seconds(10)));
  a->Stop();  // releases hans: the release script runs as the user too
  expected.sessions.clear();
  EXPECT_TRUE(WaitUntil([&] { return b_seen.replica() == expected; },
                        absl::Seconds(10)));

  options.password = "wrong";
  absl::StatusOr<std::unique_ptr<ClusterStore>> refused =
      ClusterStore::Start(options, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            absl::StrCat("redis ", redis.address(),
                         " refused the login of user peerconnect (AUTH): "
                         "WRONGPASS invalid username-password pair or user is "
                         "disabled."));
  // A user whose keys are elsewhere: the refusal names it.
  options.user = "elsewhere";
  options.password = "its secret";
  refused = ClusterStore::Start(options, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "NOPERM"))
      << refused.status();
  EXPECT_TRUE(absl::StrContains(
      refused.status().message(),
      "(the Redis user elsewhere lacks a permission the daemon needs"))
      << refused.status();
}

TEST(ClusterStoreTest, TwoStoresSeeEachOthersClaimsReleasesAndPublications) {
  RedisServer redis;
  Recorder a_seen, b_seen;
  std::unique_ptr<ClusterStore> a = StartStore(Options(redis), a_seen);
  std::unique_ptr<ClusterStore> b = StartStore(Options(redis), b_seen);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->daemon_id(), b->daemon_id());
  EXPECT_EQ(a->daemon_id().size(), 16u);
  EXPECT_EQ(a_seen.snapshots(), 1);  // before Start returned

  const ClusterSession hans = Session("hans", 7, a->daemon_id());
  ASSERT_TRUE(ClaimAndWait(*a, hans).ok());
  ASSERT_TRUE(
      Commit(*a, a_seen, {Pub("hans", "a.txt", 10), Pub("hans", "b.txt", 20)})
          .ok());
  // (A user's changes come from the one daemon that holds its session.)
  ASSERT_TRUE(Commit(*b, b_seen,
                     {Pub("vader", "plans.pdf", 30), Unp("vader", "gone.txt")})
                  .ok());

  Replica expected;
  expected.sessions["hans"] = hans;
  expected.publications[{"hans", "a.txt"}] = Pub("hans", "a.txt", 10).meta;
  expected.publications[{"hans", "b.txt"}] = Pub("hans", "b.txt", 20).meta;
  expected.publications[{"vader", "plans.pdf"}] =
      Pub("vader", "plans.pdf", 30).meta;
  // Each sees the other's changes (its own acknowledged ones it applied
  // itself; the stream does not hand them back).
  for (Recorder* seen : {&a_seen, &b_seen}) {
    EXPECT_TRUE(WaitUntil([&] { return seen->replica() == expected; },
                          absl::Seconds(10)));
  }
  EXPECT_TRUE(b_seen.Saw(Kind::kLogin, "hans", a->daemon_id()));
  const std::vector<ClusterEvent> events = b_seen.events();
  ASSERT_EQ(events.size(), 3u);  // a's login and two pubs; not b's own
  EXPECT_EQ(events[0].kind, Kind::kLogin);
  EXPECT_EQ(events[0].session, hans);  // every field crossed over
  EXPECT_EQ(events[1].kind, Kind::kPublish);
  EXPECT_EQ(events[2].kind, Kind::kPublish);
  // b's unp of a name nobody published leaves a's replica as it was, so
  // the wait above may end before a has read it: wait for the entry.
  EXPECT_TRUE(WaitUntil(
      [&] {
        const std::vector<ClusterEvent> seen = a_seen.events();
        return !seen.empty() && seen.back().kind == Kind::kUnpublish;
      },
      absl::Seconds(10)));
  const std::vector<ClusterEvent> a_events = a_seen.events();
  ASSERT_GE(a_events.size(), 3u);  // its own login, then b's two changes
  EXPECT_EQ(a_events[a_events.size() - 2].kind, Kind::kPublish);
  EXPECT_EQ(a_events[a_events.size() - 2].name, "plans.pdf");
  EXPECT_EQ(a_events.back().kind, Kind::kUnpublish);

  a->Release("hans", 7);
  expected.sessions.clear();
  EXPECT_TRUE(WaitUntil([&] { return b_seen.replica() == expected; },
                        absl::Seconds(10)));
  EXPECT_TRUE(b_seen.Saw(Kind::kLogout, "hans", a->daemon_id()));
  // And what is stored is what they hold.
  EXPECT_EQ(StoredState(redis), expected);
  EXPECT_EQ(a->stats().claims, 1u);
  EXPECT_EQ(a->stats().commits, 1u);
  EXPECT_EQ(b->stats().commits, 1u);
  EXPECT_GE(b->stats().events, 6u);
  EXPECT_TRUE(b->stats().link_up);
  // Stored readably: "SIZE ROOTHEX".
  std::string root;
  for (int i = 0; i < 32; ++i) root += "0a";
  EXPECT_EQ(redis.Command({"HGET", "test:pub:hans", "a.txt"}),
            std::vector<std::string>{"10 " + root});
}

TEST(ClusterStoreTest,
     ALiveUsersSecondClaimIsRefusedAndARetransmittedOneIsNot) {
  RedisServer redis;
  Recorder a_seen, b_seen;
  std::unique_ptr<ClusterStore> a = StartStore(Options(redis), a_seen);
  std::unique_ptr<ClusterStore> b = StartStore(Options(redis), b_seen);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  EXPECT_EQ(ClaimResultAndWait(*a, Session("yoda", 1, a->daemon_id()))
                .value_or(ClusterStore::ClaimResult::kHeldAlready),
            ClusterStore::ClaimResult::kClaimed);
  absl::Status second = ClaimAndWait(*b, Session("yoda", 2, b->daemon_id()));
  EXPECT_EQ(second.code(), absl::StatusCode::kAlreadyExists) << second;
  EXPECT_TRUE(absl::StrContains(second.message(), a->daemon_id())) << second;
  // A's own other session of yoda is refused as well: one session a user.
  EXPECT_EQ(ClaimAndWait(*a, Session("yoda", 3, a->daemon_id())).code(),
            absl::StatusCode::kAlreadyExists);
  // The same login again (a retransmission): it holds the claim already.
  EXPECT_EQ(ClaimResultAndWait(*a, Session("yoda", 1, a->daemon_id()))
                .value_or(ClusterStore::ClaimResult::kClaimed),
            ClusterStore::ClaimResult::kHeldAlready);
  // The daemon may leave its id to the store.
  EXPECT_EQ(ClaimResultAndWait(*a, Session("yoda", 1, ""))
                .value_or(ClusterStore::ClaimResult::kClaimed),
            ClusterStore::ClaimResult::kHeldAlready);
  EXPECT_EQ(a->stats().claims, 3u);
  EXPECT_EQ(a->stats().refused_claims, 1u);
  EXPECT_EQ(b->stats().refused_claims, 1u);

  // Freed, it is B's to take.
  a->Release("yoda", 1);
  EXPECT_TRUE(WaitUntil(
      [&] { return ClaimAndWait(*b, Session("yoda", 2, b->daemon_id())).ok(); },
      absl::Seconds(10)));
  // One login entry for A's claim (not one per retransmission), one for B's.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return b_seen.replica().sessions.count("yoda") == 1 &&
               b_seen.replica().sessions.at("yoda").daemon_id == b->daemon_id();
      },
      absl::Seconds(10)));
  size_t logins = 0;
  for (const ClusterEvent& e : b_seen.events()) {
    logins += e.kind == Kind::kLogin ? 1 : 0;
  }
  EXPECT_EQ(logins, 2u);
}

TEST(ClusterStoreTest, StopFreesEverySessionOfTheDaemonAtOnce) {
  RedisServer redis;
  Recorder a_seen, b_seen;
  std::unique_ptr<ClusterStore> a = StartStore(Options(redis), a_seen);
  std::unique_ptr<ClusterStore> b = StartStore(Options(redis), b_seen);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::string a_id = a->daemon_id();
  for (uint64_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
        ClaimAndWait(*a, Session(absl::StrCat("user", i), i, a_id)).ok());
  }
  a->Stop();
  a->Stop();  // idempotent
  EXPECT_EQ(redis.Command({"EXISTS", "test:daemon:" + a_id}),
            std::vector<std::string>{"0"});
  EXPECT_EQ(redis.Command({"SISMEMBER", "test:daemons", a_id}),
            std::vector<std::string>{"0"});
  EXPECT_EQ(redis.Command({"EXISTS", "test:sessions:" + a_id}),
            std::vector<std::string>{"0"});
  // Free at once, not after a liveness ttl.
  EXPECT_TRUE(ClaimAndWait(*b, Session("user1", 9, b->daemon_id())).ok());
  EXPECT_TRUE(
      WaitUntil([&] { return b_seen.Saw(Kind::kLogout, "user3", a_id); },
                absl::Seconds(10)));
  EXPECT_EQ(a->CommitPublications(
                 std::vector<PublicationChange>{Pub("user1", "x", 1)})
                .code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(ClaimAndWait(*a, Session("user4", 4, a_id)).code(),
            absl::StatusCode::kUnavailable);
}

TEST(ClusterStoreTest, ACrashedDaemonsSessionsAreReapedWithinTtlAndRefresh) {
  RedisServer redis;
  ClusterStore::Options child_options = Options(redis);
  ChildDaemon crashed(child_options, {"hans", "vader"});
  ASSERT_EQ(crashed.id().size(), 16u);

  Recorder b_seen;
  std::unique_ptr<ClusterStore> b = StartStore(Options(redis), b_seen);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b_seen.last_snapshot().sessions.size(), 2u);
  EXPECT_EQ(ClaimAndWait(*b, Session("hans", 5, b->daemon_id())).code(),
            absl::StatusCode::kAlreadyExists);

  crashed.Kill();
  const absl::Time killed = absl::Now();
  // Its key lapses at most liveness_ttl after its last refresh, and B looks
  // every liveness_refresh (plus slack for a loaded machine).
  const absl::Duration bound = child_options.liveness_ttl +
                               child_options.liveness_refresh +
                               absl::Seconds(2);
  EXPECT_TRUE(
      WaitUntil([&] { return b_seen.replica().sessions.empty(); }, bound))
      << "still held after " << absl::FormatDuration(absl::Now() - killed);
  EXPECT_TRUE(b_seen.Saw(Kind::kLogout, "hans", crashed.id()));
  EXPECT_TRUE(b_seen.Saw(Kind::kLogout, "vader", crashed.id()));
  EXPECT_EQ(b->stats().reaped_daemons, 1u);
  EXPECT_EQ(redis.Command({"SISMEMBER", "test:daemons", crashed.id()}),
            std::vector<std::string>{"0"});
  EXPECT_TRUE(ClaimAndWait(*b, Session("hans", 5, b->daemon_id())).ok());
}

TEST(ClusterStoreTest, AClaimOfALapsedDaemonIsTakenOver) {
  RedisServer redis;
  ChildDaemon crashed(Options(redis), {"yoda"});
  // B reaps no one during this test: only the claim can free yoda.
  ClusterStore::Options b_options = Options(redis);
  b_options.liveness_refresh = absl::Seconds(30);
  b_options.liveness_ttl = absl::Seconds(60);
  Recorder b_seen;
  std::unique_ptr<ClusterStore> b = StartStore(b_options, b_seen);
  ASSERT_NE(b, nullptr);

  crashed.Kill();
  EXPECT_EQ(ClaimAndWait(*b, Session("yoda", 5, b->daemon_id())).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return redis.Command({"EXISTS", "test:daemon:" + crashed.id()}) ==
               std::vector<std::string>{"0"};
      },
      absl::Seconds(10)));
  EXPECT_TRUE(ClaimAndWait(*b, Session("yoda", 5, b->daemon_id())).ok());
  EXPECT_TRUE(WaitUntil(
      [&] { return b_seen.Saw(Kind::kLogin, "yoda", b->daemon_id()); },
      absl::Seconds(10)));
  EXPECT_TRUE(b_seen.Saw(Kind::kLogout, "yoda", crashed.id()));
  EXPECT_EQ(b_seen.replica().sessions.at("yoda").daemon_id, b->daemon_id());
  EXPECT_EQ(b->stats().reaped_daemons, 0u);
  EXPECT_EQ(redis.Command({"SMEMBERS", "test:sessions:" + crashed.id()}),
            std::vector<std::string>{});
}

TEST(ClusterStoreTest, WithRedisKilledCommitsFailAndAfterItsRestartAllIsThere) {
  RedisServer redis;
  Recorder a_seen, b_seen;
  std::unique_ptr<ClusterStore> a = StartStore(Options(redis), a_seen);
  std::unique_ptr<ClusterStore> b = StartStore(Options(redis), b_seen);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Replica expected;
  auto commit = [&](ClusterStore& store, const PublicationChange& change) {
    absl::Status status =
        Commit(store, &store == a.get() ? a_seen : b_seen, {change});
    if (status.ok()) {
      // Only acknowledged changes are expected to be stored.
      expected.Apply(EventOf(change));
    }
    return status;
  };
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(
        commit(i % 2 ? *a : *b, Pub("hans", absl::StrCat("before", i), 100 + i))
            .ok());
  }
  ASSERT_TRUE(commit(*a, Unp("hans", "before3")).ok());
  const ClusterSession hans = Session("hans", 11, a->daemon_id());
  ASSERT_TRUE(ClaimAndWait(*a, hans).ok());

  redis.Kill();
  const absl::Time killed = absl::Now();
  absl::Status down = commit(*a, Pub("hans", "lost", 1));
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_TRUE(absl::StrContains(
      down.message(), absl::StrCat("redis ", redis.address(), " unreachable")))
      << down;
  // About command_timeout at most (here a refused connection is at once).
  EXPECT_LT(absl::Now() - killed, absl::Seconds(3));
  EXPECT_EQ(ClaimAndWait(*b, Session("vader", 12, b->daemon_id())).code(),
            absl::StatusCode::kUnavailable);
  // A release while Redis is down is kept until it is back.
  a->Release("hans", 11);
  EXPECT_TRUE(WaitUntil(
      [&] {
        return !a_seen.links().empty() && !b_seen.links().empty() &&
               !a->stats().link_up;
      },
      absl::Seconds(10)));
  EXPECT_EQ(a_seen.links(), std::vector<bool>{false});
  EXPECT_GE(a->stats().failed_commits, 1u);

  redis.Restart();
  // Commits go through again at once: each is tried on a fresh link.
  ASSERT_TRUE(commit(*b, Pub("vader", "after", 7)).ok());
  ASSERT_TRUE(commit(*a, Unp("hans", "before4")).ok());
  EXPECT_TRUE(WaitUntil(
      [&] {
        return a->stats().link_up && b->stats().link_up &&
               a_seen.links() == std::vector<bool>{false, true};
      },
      absl::Seconds(10)));
  // The release waited and went through.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return redis.Command({"EXISTS", "test:session:hans"}) ==
               std::vector<std::string>{"0"};
      },
      absl::Seconds(10)));
  // Every acknowledged change is stored (the append-only file reloaded),
  // the refused one is not, and both replicas caught up to it.
  const Replica stored = StoredState(redis);
  EXPECT_EQ(stored.publications, expected.publications);
  EXPECT_EQ(stored.publications.count({"hans", "lost"}), 0u);
  EXPECT_TRUE(stored.sessions.empty());
  for (Recorder* seen : {&a_seen, &b_seen}) {
    EXPECT_TRUE(WaitUntil([&] { return seen->replica() == stored; },
                          absl::Seconds(10)));
  }
}

TEST(ClusterStoreTest, AClaimWhoseReplyIsLostIsFreedAgain) {
  RedisServer redis;
  // No liveness refresh during the test: the claim is the command that
  // meets the stalled server.
  ClusterStore::Options options = Options(redis);
  options.liveness_refresh = absl::Seconds(30);
  options.liveness_ttl = absl::Seconds(60);
  Recorder a_seen;
  std::unique_ptr<ClusterStore> a = StartStore(options, a_seen);
  ASSERT_NE(a, nullptr);
  // Redis takes the claim but answers after command_timeout: the login
  // fails, so the claim it may have made must not stay.
  redis.Signal(SIGSTOP);
  const absl::Status lost = ClaimAndWait(*a, Session("hans", 1, ""));
  redis.Signal(SIGCONT);
  EXPECT_EQ(lost.code(), absl::StatusCode::kUnavailable) << lost;
  EXPECT_TRUE(absl::StrContains(lost.message(), "no reply within")) << lost;
  // The user's next login (another session) gets through.
  EXPECT_TRUE(
      WaitUntil([&] { return ClaimAndWait(*a, Session("hans", 2, "")).ok(); },
                absl::Seconds(10)));
  EXPECT_EQ(redis.Command({"HGET", "test:session:hans", "session"}),
            std::vector<std::string>{"2"});
}

TEST(ClusterStoreTest, ACommitToAStalledRedisFailsAfterTheCommandTimeout) {
  RedisServer redis;
  Recorder a_seen;
  const ClusterStore::Options options = Options(redis);
  std::unique_ptr<ClusterStore> a = StartStore(options, a_seen);
  ASSERT_NE(a, nullptr);
  redis.Signal(SIGSTOP);
  const absl::Time start = absl::Now();
  const absl::Status stalled = a->CommitPublications(
      std::vector<PublicationChange>{Pub("hans", "late.txt", 5)});
  const absl::Duration took = absl::Now() - start;
  redis.Signal(SIGCONT);
  EXPECT_EQ(stalled.code(), absl::StatusCode::kUnavailable) << stalled;
  EXPECT_EQ(stalled.message(),
            absl::StrCat("redis ", redis.address(),
                         " unreachable: no reply within 500ms"));
  EXPECT_GE(took, options.command_timeout);
  EXPECT_LT(took, options.command_timeout + absl::Seconds(2));
  // Redis had the whole transaction and runs it once it goes on: not
  // acknowledged, yet applied, and the stream tells every replica (a
  // retried pub is idempotent). docs/ARCHITECTURE.md, "Cluster store".
  EXPECT_TRUE(WaitUntil(
      [&] {
        return a_seen.replica().publications.count({"hans", "late.txt"});
      },
      absl::Seconds(10)));
  EXPECT_TRUE(a->CommitPublications(
                   std::vector<PublicationChange>{Pub("hans", "late.txt", 5)})
                  .ok());
}

TEST(ClusterStoreTest, AnOutageLongerThanTheLivenessTtlReapsNoLiveDaemon) {
  RedisServer redis;
  ClusterStore::Options options = Options(redis);
  options.liveness_ttl = absl::Seconds(4);
  // A daemon in a child process, to be frozen (SIGSTOP) while Redis comes
  // back: one slower to reconnect than the other.
  // Redis expires keys by the wall clock: a jump of it (a virtual machine's
  // clock being stepped) lapses every liveness key at once, and then a reap
  // is right. Measured against the steady clock, such a run is skipped.
  const absl::Time wall_start = absl::Now();
  const auto steady_start = std::chrono::steady_clock::now();
  ChildDaemon slow(options, {"vader"});
  ASSERT_EQ(slow.id().size(), 16u);
  Recorder a_seen;
  std::unique_ptr<ClusterStore> a = StartStore(options, a_seen);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(ClaimAndWait(*a, Session("hans", 1, a->daemon_id())).ok());

  redis.Kill();
  // Every liveness key lapses meanwhile (their expiry is a point in time,
  // past when the append-only file is loaded again).
  absl::SleepFor(options.liveness_ttl + absl::Milliseconds(500));
  slow.Signal(SIGSTOP);
  redis.Restart();
  // A is back within its backoff (1 s) and a refresh; the other is not,
  // and its key has lapsed. A must not take that for a dead daemon.
  absl::SleepFor(absl::Seconds(2));
  slow.Signal(SIGCONT);
  EXPECT_TRUE(WaitUntil(
      [&] {
        return redis.Command({"EXISTS", "test:daemon:" + slow.id()}) ==
               std::vector<std::string>{"1"};
      },
      absl::Seconds(5)));
  absl::SleepFor(2 * options.liveness_refresh);  // a reap round or two
  const absl::Duration clock_jump = absl::AbsDuration(
      (absl::Now() - wall_start) -
      absl::FromChrono(std::chrono::steady_clock::now() - steady_start));
  if (clock_jump > absl::Seconds(1)) {
    GTEST_SKIP() << "the wall clock jumped by " << clock_jump
                 << " during the test: Redis expired the keys early";
  }
  EXPECT_EQ(a->stats().reaped_daemons, 0u);
  EXPECT_FALSE(a_seen.Saw(Kind::kLogout, "vader"));
  EXPECT_EQ(StoredState(redis).sessions.size(), 2u);
}

TEST(ClusterStoreTest,
     AReaderCutOffPastTheTrimmedStreamResyncsToTheStoredState) {
  RedisServer redis;
  ClusterStore::Options a_options = Options(redis);
  a_options.stream_max_len = 10;
  Recorder a_seen, b_seen;
  std::unique_ptr<ClusterStore> a = StartStore(a_options, a_seen);
  std::unique_ptr<ClusterStore> b = StartStore(Options(redis), b_seen);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  // B's reader stops inside on_event, at the first entry.
  b_seen.Hold();
  ASSERT_TRUE(Commit(*a, a_seen, {Pub("hans", "first", 1)}).ok());
  ASSERT_TRUE(
      WaitUntil([&] { return b_seen.held_events() == 1; }, absl::Seconds(10)));
  ASSERT_TRUE(ClaimAndWait(*a, Session("hans", 3, a->daemon_id())).ok());
  // Far more changes than the stream keeps (it is trimmed by whole nodes
  // of up to 100 entries, down to about 10).
  for (int batch = 0; batch < 40; ++batch) {
    std::vector<PublicationChange> changes;
    for (int i = 0; i < 20; ++i) {
      const std::string name = absl::StrCat("file", (batch * 20 + i) % 300);
      changes.push_back((batch + i) % 3 == 0
                            ? Unp("hans", name)
                            : Pub("hans", name, batch * 20 + i));
    }
    ASSERT_TRUE(Commit(*a, a_seen, changes).ok());
  }
  const std::vector<std::string> length =
      redis.Command({"XLEN", "test:changes"});
  ASSERT_EQ(length.size(), 1u);
  EXPECT_LT(std::stoi(length[0]), 300);

  b_seen.Release();
  EXPECT_TRUE(
      WaitUntil([&] { return b->stats().resyncs >= 1; }, absl::Seconds(10)));
  const Replica stored = StoredState(redis);
  EXPECT_EQ(stored.sessions.size(), 1u);
  EXPECT_GT(stored.publications.size(), 100u);
  // The resync's snapshot is the stored state (nothing changed since),
  // and B's replica is that.
  EXPECT_EQ(b_seen.last_snapshot(), stored);
  EXPECT_EQ(b_seen.snapshots(), 2);
  EXPECT_TRUE(
      WaitUntil([&] { return b_seen.replica() == stored; }, absl::Seconds(10)));
  EXPECT_TRUE(
      WaitUntil([&] { return a_seen.replica() == stored; }, absl::Seconds(10)));
}

}  // namespace
}  // namespace pcfs
