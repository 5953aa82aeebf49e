// peerconnectd's cluster mode wired up (Server::Create with a link), with a
// fake link in place of Redis: the stored state loads into the replica at
// start, logins are answered only once claimed (through the reactor's
// completion queue and reply socket), logout releases, pub and unp commit
// through the link and fail clearly while it is down, GET issues a remote
// holder's ticket, and the metrics show the cluster. A real daemon on a
// loopback port and peerctl's ControlClient; no Redis.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "core/auth/ticket.h"
#include "core/io/reactor.h"
#include "daemon/cluster_link.h"
#include "daemon/server.h"
#include "gtest/gtest.h"
#include "peerctl/client.h"

namespace pcfs {
namespace {

// Claims complete on a thread of the link's own (as the store's writer
// thread), with the outcome the test sets.
class FakeLink final : public ClusterLink {
 public:
  explicit FakeLink(std::string daemon_id) : daemon_id_(std::move(daemon_id)) {}
  ~FakeLink() override { Stop(); }

  const std::string& daemon_id() const override { return daemon_id_; }
  absl::Status CommitPublications(
      std::span<const PublicationChange> batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (down_) return absl::UnavailableError("redis: connection refused");
    committed_ += batch.size();
    return absl::OkStatus();
  }
  void Claim(ClusterSession session, ClusterStore::ClaimDone done) override {
    std::lock_guard<std::mutex> lock(mu_);
    claimed_.push_back(session);
    // A status of its own (not a copy sharing claim_outcome_'s refcounted
    // payload), moved on to the daemon so that the thread keeps no share of
    // it: Debian's abseil is not built with TSan, which then cannot see that
    // the shared count orders the payload's deletion.
    absl::Status outcome =
        down_ ? absl::UnavailableError("redis: timeout")
              : absl::Status(claim_outcome_.code(),
                             std::string(claim_outcome_.message()));
    const ClusterStore::ClaimResult result =
        held_already_ ? ClusterStore::ClaimResult::kHeldAlready
                      : ClusterStore::ClaimResult::kClaimed;
    threads_.emplace_back([done = std::move(done), outcome = std::move(outcome),
                           result]() mutable {
      if (outcome.ok()) {
        done(result);
      } else {
        done(std::move(outcome));
      }
    });
  }
  void Release(std::string user, uint64_t session_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    released_.emplace_back(std::move(user), session_id);
  }
  ClusterStore::Stats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    ClusterStore::Stats stats;
    stats.link_up = !down_;
    stats.claims = claimed_.size();
    return stats;
  }
  void Stop() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

  void SetDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }
  void SetClaimOutcome(absl::Status outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    claim_outcome_ = std::move(outcome);
  }
  // A claim that succeeds finds its session holding it already (as a
  // claim made again of a session the store had kept).
  void SetHeldAlready(bool held) {
    std::lock_guard<std::mutex> lock(mu_);
    held_already_ = held;
  }
  std::vector<ClusterSession> claimed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return claimed_;
  }
  std::vector<std::pair<std::string, uint64_t>> released() const {
    std::lock_guard<std::mutex> lock(mu_);
    return released_;
  }
  size_t committed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return committed_;
  }

 private:
  const std::string daemon_id_;
  mutable std::mutex mu_;
  bool down_ = false;
  bool held_already_ = false;
  absl::Status claim_outcome_;
  size_t committed_ = 0;
  std::vector<ClusterSession> claimed_;
  std::vector<std::pair<std::string, uint64_t>> released_;
  std::vector<std::thread> threads_;
};

FileMeta Meta() {
  FileMeta meta;
  meta.size = 42;
  meta.root.fill(0xab);
  return meta;
}

// leia, on another daemon, serving files at 10.0.0.2:7300.
ClusterSession Leia() {
  ClusterSession leia;
  leia.user = "leia";
  leia.daemon_id = "00000000000000bb";
  leia.session_id = 0x4242;
  leia.file_server.family = 4;
  leia.file_server.ip = {10, 0, 0, 2};
  leia.file_server.port = 7300;
  leia.ticket_key.fill(0x44);
  return leia;
}

// The stream's logout of `session` (of this daemon's own, one another
// daemon wrote: it reaped this one's claims while this daemon was cut off
// from the store). Its fields beyond the user, daemon and id are ignored.
ClusterEvent LogoutOf(const ClusterSession& session) {
  ClusterEvent logout;
  logout.kind = ClusterEvent::Kind::kLogout;
  logout.session = session;
  return logout;
}

class ClusterServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(BlockSignals({SIGINT, SIGTERM, SIGHUP}).ok());
    char pattern[] = "/tmp/pcfs-cluster-server-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    std::ofstream(dir_ + "/credentials.txt")
        << "hans hanspass\nleia leiapass\nvader vaderpass\n";
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  ServerOptions Options() {
    ServerOptions options;
    options.port = 0;
    options.bind = "127.0.0.1";
    options.credentials_path = dir_ + "/credentials.txt";
    options.state_dir = dir_ + "/state";
    options.io = "epoll";
    options.threads = 1;
    options.redis = "127.0.0.1:6379";  // never dialled: the fake stands in
    return options;
  }

  // Starts the daemon with a fake link whose stored state holds leia's
  // session and her publication "plans.pdf".
  void Start() {
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(
        Options(),
        [this](const std::string& daemon_id, ClusterStore::Listener listener)
            -> absl::StatusOr<std::unique_ptr<ClusterLink>> {
          daemon_id_ = daemon_id;
          ClusterSnapshot snapshot;
          snapshot.sessions.push_back(Leia());
          PublicationChange plans;
          plans.user = "leia";
          plans.name = "plans.pdf";
          plans.meta = Meta();
          snapshot.publications.push_back(plans);
          listener.on_snapshot(snapshot);
          listener_ = std::move(listener);
          auto link = std::make_unique<FakeLink>(daemon_id);
          link_ = link.get();
          return std::unique_ptr<ClusterLink>(std::move(link));
        });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    thread_ = std::thread([this] { server_->Run().IgnoreError(); });
  }

  std::unique_ptr<ControlClient> Connect() {
    ControlClient::Options options;
    options.host = "127.0.0.1";
    options.port = server_->address().port();
    absl::StatusOr<std::unique_ptr<ControlClient>> client =
        ControlClient::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // Start(), then hans logged in (file port 7000) as `*hans`, whose
  // session's claim, the link's first, is `*claim`.
  void StartWithHans(std::unique_ptr<ControlClient>* hans,
                     ClusterSession* claim) {
    Start();
    *hans = Connect();
    ASSERT_NE(*hans, nullptr);
    ASSERT_TRUE((*hans)->Login("hans", "hanspass", 7000).ok());
    ASSERT_EQ(link_->claimed().size(), 1u);
    *claim = link_->claimed()[0];
  }

  // Waits (up to 5 s) until the daemon's metrics hold `line`.
  bool MetricsShow(const std::string& line) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!absl::StrContains(server_->RenderMetrics(), line)) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }

  std::string dir_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::string daemon_id_;
  ClusterStore::Listener listener_;
  FakeLink* link_ = nullptr;  // owned by server_
};

TEST(RedisPasswordTest, IsTheFilesOneLineWithoutItsEnd) {
  EXPECT_EQ(*ParseRedisPassword("s3cret\n"), "s3cret");
  EXPECT_EQ(*ParseRedisPassword("s3cret\r\n"), "s3cret");
  EXPECT_EQ(*ParseRedisPassword("s3cret"), "s3cret");
  // Spaces are the password's own.
  EXPECT_EQ(*ParseRedisPassword(" two words \n"), " two words ");
  EXPECT_EQ(*ParseRedisPassword(std::string(kMaxRedisPasswordBytes, 'x')),
            std::string(kMaxRedisPasswordBytes, 'x'));
}

TEST(RedisPasswordTest, RefusesWhatCannotBeOnePasswordWithoutQuotingIt) {
  for (const std::string& text :
       {std::string(""), std::string("\n"), std::string("\r\n"),
        std::string("first\nsecond\n"), std::string("secret\n\n"),
        std::string("sec\0ret", 7), std::string("se\rcret"),
        std::string(kMaxRedisPasswordBytes + 1, 'x')}) {
    absl::StatusOr<std::string> password = ParseRedisPassword(text);
    ASSERT_FALSE(password.ok()) << text;
    EXPECT_EQ(password.status().code(), absl::StatusCode::kInvalidArgument);
    if (text.size() > 3) {
      EXPECT_FALSE(
          absl::StrContains(password.status().message(), text.substr(0, 3)))
          << password.status();
    }
  }
}

TEST_F(ClusterServerTest, ServesTheStoredStateAndClaimsLogins) {
  Start();
  ASSERT_NE(link_, nullptr);
  EXPECT_EQ(daemon_id_.size(), 16u);
  EXPECT_EQ(daemon_id_.find_first_not_of("0123456789abcdef"),
            std::string::npos);
  // No state folder in cluster mode.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state"));

  std::unique_ptr<ControlClient> hans = Connect();
  ASSERT_NE(hans, nullptr);
  ASSERT_TRUE(hans->Login("hans", "hanspass", 7000).ok());
  ASSERT_EQ(link_->claimed().size(), 1u);
  EXPECT_EQ(link_->claimed()[0].user, "hans");
  EXPECT_EQ(link_->claimed()[0].daemon_id, daemon_id_);
  EXPECT_EQ(TicketKey{link_->claimed()[0].ticket_key},
            TicketKeyFor(hans->session_key()));

  // leia, on another daemon, is listed, found and fetched from there.
  absl::StatusOr<std::vector<std::string>> peers = hans->ListActivePeers();
  ASSERT_TRUE(peers.ok()) << peers.status();
  EXPECT_EQ(*peers, std::vector<std::string>{"leia"});
  absl::StatusOr<std::vector<std::string>> found = hans->Search("plans");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, std::vector<std::string>{"plans.pdf"});
  absl::StatusOr<FileLocation> where = hans->Get("plans.pdf");
  ASSERT_TRUE(where.ok()) << where.status();
  EXPECT_EQ(where->holder, "leia");
  EXPECT_EQ(where->address.port(), 7300);
  EXPECT_TRUE(VerifyTicket(TicketKey{Leia().ticket_key}, "leia", where->ticket,
                           "plans.pdf", absl::Now())
                  .ok());

  // pub commits through the link.
  ASSERT_TRUE(hans->Publish("mine.txt", 42, Meta().root).ok());
  EXPECT_EQ(link_->committed(), 1u);

  // A stream event applies: leia logs out there.
  listener_.on_event(LogoutOf(Leia()));
  peers = hans->ListActivePeers();
  ASSERT_TRUE(peers.ok());
  EXPECT_TRUE(peers->empty());

  const std::string metrics = server_->RenderMetrics();
  EXPECT_TRUE(absl::StrContains(metrics, "pcfs_cluster_link_up 1\n"));
  EXPECT_TRUE(
      absl::StrContains(metrics, "pcfs_cluster_events_applied_total 1\n"));
  EXPECT_TRUE(absl::StrContains(metrics, "pcfs_cluster_resyncs_total 0\n"));
  EXPECT_TRUE(absl::StrContains(
      metrics, "pcfs_cluster_claims_total{result=\"ok\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(
      metrics, "pcfs_cluster_claims_total{result=\"refused\"} 0\n"));
  EXPECT_TRUE(absl::StrContains(metrics, "pcfs_cluster_remote_sessions 0\n"));
  EXPECT_TRUE(absl::StrContains(
      metrics, "pcfs_cluster_reclaims_total{result=\"ended\"} 0\n"));
  // Well-formed for Prometheus, where promtool is installed.
  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    std::ofstream(dir_ + "/metrics.txt") << metrics;
    EXPECT_EQ(std::system(("promtool check metrics < " + dir_ +
                           "/metrics.txt >/dev/null 2>&1")
                              .c_str()),
              0)
        << metrics;
  }

  // Logout releases the claim.
  const uint64_t id = link_->claimed()[0].session_id;
  ASSERT_TRUE(hans->Logout().ok());
  EXPECT_EQ(link_->released(),
            (std::vector<std::pair<std::string, uint64_t>>{{"hans", id}}));
}

// Waits (up to 5 s) until the link has seen `n` claims.
bool ClaimsReach(const FakeLink& link, size_t n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (link.claimed().size() < n && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  return link.claimed().size() >= n;
}

// The same session is claimed again, and goes on: its client notices
// nothing.
TEST_F(ClusterServerTest, AnOwnSessionTheStoreReleasedIsClaimedAgain) {
  std::unique_ptr<ControlClient> hans;
  ClusterSession first;
  ASSERT_NO_FATAL_FAILURE(StartWithHans(&hans, &first));

  listener_.on_event(LogoutOf(first));
  ASSERT_TRUE(ClaimsReach(*link_, 2));
  const ClusterSession again = link_->claimed()[1];
  EXPECT_EQ(again.user, "hans");
  EXPECT_EQ(again.daemon_id, daemon_id_);
  EXPECT_EQ(again.session_id, first.session_id);
  EXPECT_EQ(again.file_server.port, 7000);
  EXPECT_EQ(again.ticket_key, first.ticket_key);
  // Counted once the claim's answer is in.
  EXPECT_TRUE(MetricsShow("pcfs_cluster_reclaims_total{result=\"ok\"} 1\n"));
  EXPECT_TRUE(hans->Heartbeat().ok());
  absl::StatusOr<std::vector<std::string>> peers = hans->ListActivePeers();
  ASSERT_TRUE(peers.ok()) << peers.status();
  EXPECT_EQ(link_->claimed().size(), 2u);  // no new login
  EXPECT_TRUE(link_->released().empty());

  // A resync whose snapshot does not hold it: the same again.
  ClusterSnapshot snapshot;
  snapshot.sessions.push_back(Leia());
  listener_.on_snapshot(snapshot);
  ASSERT_TRUE(ClaimsReach(*link_, 3));
  EXPECT_EQ(link_->claimed()[2].session_id, first.session_id);
  EXPECT_TRUE(MetricsShow("pcfs_cluster_reclaims_total{result=\"ok\"} 2\n"));
  EXPECT_TRUE(hans->Heartbeat().ok());
}

// A resync whose snapshot read missed a session the store in fact holds
// (a login claimed while the snapshot was read): claimed again, the store
// answers that this very session holds it, and nothing is counted, said
// or changed.
TEST_F(ClusterServerTest, AClaimTheStoreHeldAllAlongIsNoReclaim) {
  std::unique_ptr<ControlClient> hans;
  ClusterSession first;
  ASSERT_NO_FATAL_FAILURE(StartWithHans(&hans, &first));

  link_->SetHeldAlready(true);
  ClusterSnapshot snapshot;
  snapshot.sessions.push_back(Leia());
  listener_.on_snapshot(snapshot);
  ASSERT_TRUE(ClaimsReach(*link_, 2));
  EXPECT_EQ(link_->claimed()[1].session_id, first.session_id);
  link_->Stop();  // joins the thread that answered the claim
  const std::string metrics = server_->RenderMetrics();
  EXPECT_TRUE(absl::StrContains(
      metrics, "pcfs_cluster_reclaims_total{result=\"ok\"} 0\n"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(
      metrics, "pcfs_cluster_reclaims_total{result=\"ended\"} 0\n"))
      << metrics;
  EXPECT_TRUE(hans->Heartbeat().ok());
  EXPECT_TRUE(link_->released().empty());
}

// Refused (hans logged in through another daemon meanwhile): the session
// ends here, with no release (the claim is the other's), and the client's
// login again, and any other login of hans, is refused as active on
// another daemon. Not known to be made (the
// store unreachable): the session ends, and the claim is released in case
// it was.
TEST_F(ClusterServerTest, AnOwnSessionTheStoreWillNotTakeBackEndsHere) {
  std::unique_ptr<ControlClient> hans;
  ClusterSession first;
  ASSERT_NO_FATAL_FAILURE(StartWithHans(&hans, &first));
  link_->SetClaimOutcome(absl::AlreadyExistsError("held by bb"));
  listener_.on_event(LogoutOf(first));
  ASSERT_TRUE(ClaimsReach(*link_, 2));
  ASSERT_TRUE(MetricsShow("pcfs_cluster_reclaims_total{result=\"ended\"} 1\n"));
  EXPECT_TRUE(link_->released().empty());
  // Gone here: the client's login again is refused, and it says why (it
  // does not take the refusal for a sign of a forged "unknown session").
  absl::StatusOr<std::vector<std::string>> peers = hans->ListActivePeers();
  ASSERT_FALSE(peers.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(peers.status())) << peers.status();
  EXPECT_EQ(peers.status().message(),
            "user hans is already active on another daemon");
  std::unique_ptr<ControlClient> hans_again = Connect();
  ASSERT_NE(hans_again, nullptr);
  absl::Status s = hans_again->Login("hans", "hanspass", 7000);
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(s.message(), "user hans is already active on another daemon");

  std::unique_ptr<ControlClient> vader = Connect();
  ASSERT_NE(vader, nullptr);
  link_->SetClaimOutcome(absl::OkStatus());
  ASSERT_TRUE(vader->Login("vader", "vaderpass", 7000).ok());
  const ClusterSession vaders = link_->claimed().back();
  link_->SetDown(true);
  const size_t claims = link_->claimed().size();
  listener_.on_event(LogoutOf(vaders));
  ASSERT_TRUE(ClaimsReach(*link_, claims + 1));
  ASSERT_TRUE(MetricsShow("pcfs_cluster_reclaims_total{result=\"ended\"} 2\n"));
  EXPECT_EQ(link_->released(), (std::vector<std::pair<std::string, uint64_t>>{
                                   {"vader", vaders.session_id}}));
}

TEST_F(ClusterServerTest, RefusedAndUnreachableLoginsSayWhy) {
  Start();
  std::unique_ptr<ControlClient> vader = Connect();
  ASSERT_NE(vader, nullptr);
  link_->SetClaimOutcome(absl::AlreadyExistsError("held by bb"));
  absl::Status s = vader->Login("vader", "vaderpass", 7000);
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(s.message(), "user vader is already active on another daemon");
  link_->SetClaimOutcome(absl::OkStatus());
  link_->SetDown(true);
  s = vader->Login("vader", "vaderpass", 7000);
  EXPECT_TRUE(absl::IsInternal(s)) << s;
  EXPECT_EQ(s.message(), "the index store is unreachable; try again");
  link_->SetDown(false);
  EXPECT_TRUE(vader->Login("vader", "vaderpass", 7000).ok());
  // leia is held by the other daemon: refused here without a claim.
  std::unique_ptr<ControlClient> leia = Connect();
  ASSERT_NE(leia, nullptr);
  const size_t claims = link_->claimed().size();
  s = leia->Login("leia", "leiapass", 7000);
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(s.message(), "user leia is already active on another daemon");
  EXPECT_EQ(link_->claimed().size(), claims);
}

TEST_F(ClusterServerTest, PubFailsClearlyWhileTheStoreIsDown) {
  Start();
  std::unique_ptr<ControlClient> hans = Connect();
  ASSERT_NE(hans, nullptr);
  ASSERT_TRUE(hans->Login("hans", "hanspass", 7000).ok());
  link_->SetDown(true);
  absl::Status s = hans->Publish("mine.txt", 42, Meta().root);
  EXPECT_TRUE(absl::IsInternal(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "store is unreachable")) << s;
  absl::StatusOr<std::vector<std::string>> mine = hans->ListPublished();
  ASSERT_TRUE(mine.ok());
  EXPECT_TRUE(mine->empty());
  // Heartbeats and lookups go on.
  EXPECT_TRUE(hans->Heartbeat().ok());
  EXPECT_TRUE(hans->Get("plans.pdf").ok());
  link_->SetDown(false);
  EXPECT_TRUE(hans->Publish("mine.txt", 42, Meta().root).ok());
}

TEST_F(ClusterServerTest, DoesNotStartWithoutItsStore) {
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Create(Options(),
                     [](const std::string&, ClusterStore::Listener)
                         -> absl::StatusOr<std::unique_ptr<ClusterLink>> {
                       return absl::UnavailableError("connection refused");
                     });
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().message(),
            "cluster store at 127.0.0.1:6379: connection refused");
}

}  // namespace
}  // namespace pcfs
