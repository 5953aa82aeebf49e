// ClusterReplica applies the cluster store's snapshot and stream to a
// registry: no store, no threads.
#include "daemon/cluster_replica.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kOwnDaemon[] = "00000000000000aa";
constexpr char kOtherDaemon[] = "00000000000000bb";
const absl::Time kNow = absl::UnixEpoch() + absl::Hours(1000);

ClusterSession Session(const std::string& user, uint64_t id,
                       const std::string& daemon = kOtherDaemon) {
  ClusterSession session;
  session.user = user;
  session.daemon_id = daemon;
  session.session_id = id;
  session.file_server.family = 4;
  session.file_server.ip = {10, 0, 0, 2};
  session.file_server.port = 7300;
  session.key_pin.fill(0x33);
  session.ticket_key.fill(static_cast<uint8_t>(id));
  return session;
}

ClusterEvent Login(const ClusterSession& session) {
  ClusterEvent event;
  event.kind = ClusterEvent::Kind::kLogin;
  event.session = session;
  return event;
}

ClusterEvent Logout(const ClusterSession& session) {
  ClusterEvent event;
  event.kind = ClusterEvent::Kind::kLogout;
  event.session.user = session.user;
  event.session.daemon_id = session.daemon_id;
  event.session.session_id = session.session_id;
  return event;
}

FileMeta Meta(uint64_t size) {
  FileMeta meta;
  meta.size = size;
  meta.root.fill(0xab);
  return meta;
}

ClusterEvent Pub(const std::string& user, const std::string& name,
                 uint64_t size = 10) {
  ClusterEvent event;
  event.kind = ClusterEvent::Kind::kPublish;
  event.session.user = user;
  event.name = name;
  event.meta = Meta(size);
  return event;
}

ClusterEvent Unp(const std::string& user, const std::string& name) {
  ClusterEvent event;
  event.kind = ClusterEvent::Kind::kUnpublish;
  event.session.user = user;
  event.name = name;
  return event;
}

PublicationChange Stored(const std::string& user, const std::string& name,
                         uint64_t size = 10) {
  PublicationChange change;
  change.kind = PublicationChange::Kind::kPublish;
  change.user = user;
  change.name = name;
  change.meta = Meta(size);
  return change;
}

TicketKey KeyFilledWith(uint8_t byte) {
  TicketKey key;
  key.bytes.fill(byte);
  return key;
}

class ClusterReplicaTest : public ::testing::Test {
 protected:
  // A session of `user` held by this daemon (a local login): its id, or 0
  // (never a session's) if the login failed.
  uint64_t LocalLogin(const std::string& user) {
    Registry::LoginParams params;
    params.user = user;
    absl::StatusOr<uint64_t> id = registry_.Login(params, kNow);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : 0;
  }

  Registry registry_;
  ClusterReplica replica_{&registry_, kOwnDaemon, [] { return kNow; }};
};

TEST_F(ClusterReplicaTest, LoginOfAnotherDaemonAddsARemoteSession) {
  replica_.ApplyEvent(Login(Session("leia", 0x10)));
  EXPECT_TRUE(registry_.IsActive("leia", kNow));
  EXPECT_THAT(registry_.ActiveUsers("", kNow), ElementsAre("leia"));
  EXPECT_EQ(replica_.TicketKeyOf(0x10), KeyFilledWith(0x10));
  EXPECT_EQ(replica_.stats().remote_sessions, 1u);
  EXPECT_EQ(replica_.stats().events, 1u);
  // Remote: no heartbeat keeps it, none is needed.
  EXPECT_TRUE(registry_.IsActive("leia", kNow + absl::Hours(1)));
}

TEST_F(ClusterReplicaTest, OwnLoginsAreIgnored) {
  // The local registry holds this daemon's own session already.
  const uint64_t local = LocalLogin("luke");
  ASSERT_NE(local, 0u);
  replica_.ApplyEvent(Login(Session("luke", local, kOwnDaemon)));
  EXPECT_EQ(replica_.TicketKeyOf(local), std::nullopt);
  EXPECT_EQ(replica_.stats().conflicts, 0u);
  EXPECT_EQ(replica_.stats().remote_sessions, 0u);
  EXPECT_TRUE(registry_.IsLive(local, kNow));
  EXPECT_EQ(registry_.session_count(), 1u);
}

// The logout this daemon wrote for a session that ended here: nothing
// left to do.
TEST_F(ClusterReplicaTest, OwnLogoutOfASessionEndedHereChangesNothing) {
  const uint64_t local = LocalLogin("luke");
  ASSERT_NE(local, 0u);
  ASSERT_TRUE(registry_.Logout(local).ok());
  replica_.ApplyEvent(Logout(Session("luke", local, kOwnDaemon)));
  EXPECT_THAT(replica_.TakeReleasedOwnSessions(), IsEmpty());
  // A new session of luke is not touched by the old one's logout.
  const uint64_t again = LocalLogin("luke");
  ASSERT_NE(again, 0u);
  replica_.ApplyEvent(Logout(Session("luke", local, kOwnDaemon)));
  EXPECT_TRUE(registry_.IsLive(again, kNow));
  EXPECT_THAT(replica_.TakeReleasedOwnSessions(), IsEmpty());
  EXPECT_EQ(replica_.stats().own_sessions_released, 0u);
}

// Another daemon released luke's claim (it reaped this one's while this
// daemon was cut off from the store): the session goes on here, and is
// handed over once, with what a claim of it needs, to be claimed again.
TEST_F(ClusterReplicaTest, OwnSessionLoggedOutByAnotherDaemonIsClaimedAgain) {
  Registry::LoginParams params;
  params.user = "luke";
  params.control.family = 4;
  params.control.ip = {10, 0, 0, 7};
  params.control.port = 5000;
  params.file_port = 7301;
  params.key_pin.fill(0x5a);
  absl::StatusOr<uint64_t> luke = registry_.Login(params, kNow);
  ASSERT_TRUE(luke.ok());
  const uint64_t leia = LocalLogin("leia");
  ASSERT_NE(leia, 0u);

  replica_.ApplyEvent(Logout(Session("luke", *luke, kOwnDaemon)));
  // Read again before the daemon took it (a repeat): still once.
  replica_.ApplyEvent(Logout(Session("luke", *luke, kOwnDaemon)));
  // A logout naming another user's session id changes nothing.
  replica_.ApplyEvent(Logout(Session("han", leia, kOwnDaemon)));
  EXPECT_TRUE(registry_.IsLive(*luke, kNow));
  const std::vector<Registry::LocalSession> released =
      replica_.TakeReleasedOwnSessions();
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].user, "luke");
  EXPECT_EQ(released[0].id, *luke);
  EXPECT_EQ(released[0].file_server.ip, params.control.ip);
  EXPECT_EQ(released[0].file_server.port, 7301);
  EXPECT_EQ(released[0].key_pin, params.key_pin);
  EXPECT_THAT(replica_.TakeReleasedOwnSessions(), IsEmpty());
  EXPECT_EQ(replica_.stats().own_sessions_released, 1u);
}

// A take-over: another daemon claimed leia while this one was cut off, so
// the stream holds the logout of this daemon's session, then the login of
// the other's, which waits while the local session lives. The daemon's
// claim of it is refused, the session ends here, and the other daemon's
// is what remains.
TEST_F(ClusterReplicaTest, TakeOverOfALocalSessionLeavesTheOtherDaemonsOne) {
  const uint64_t local = LocalLogin("leia");
  ASSERT_NE(local, 0u);
  replica_.ApplyEvent(Logout(Session("leia", local, kOwnDaemon)));
  replica_.ApplyEvent(Login(Session("leia", 0x10)));
  EXPECT_EQ(replica_.stats().set_aside, 1u);
  ASSERT_EQ(replica_.TakeReleasedOwnSessions().size(), 1u);

  ASSERT_TRUE(registry_.Logout(local).ok());
  replica_.LocalSessionEnded("leia");
  EXPECT_TRUE(registry_.IsActive("leia", kNow));
  EXPECT_EQ(replica_.TicketKeyOf(0x10), KeyFilledWith(0x10));
  EXPECT_EQ(replica_.stats().set_aside, 0u);
}

TEST_F(ClusterReplicaTest, LogoutRemovesTheSession) {
  const ClusterSession leia = Session("leia", 0x10);
  replica_.ApplyEvent(Login(leia));
  replica_.ApplyEvent(Logout(leia));
  EXPECT_FALSE(registry_.IsActive("leia", kNow));
  EXPECT_EQ(replica_.TicketKeyOf(0x10), std::nullopt);
  EXPECT_EQ(replica_.stats().remote_sessions, 0u);
  // Again, or of a session it never had: nothing.
  replica_.ApplyEvent(Logout(leia));
  replica_.ApplyEvent(Logout(Session("han", 0x20)));
  EXPECT_EQ(registry_.session_count(), 0u);
}

TEST_F(ClusterReplicaTest, LogoutOfAnOlderSessionLeavesTheNewOne) {
  replica_.ApplyEvent(Login(Session("leia", 0x10)));
  replica_.ApplyEvent(Login(Session("leia", 0x11)));
  EXPECT_EQ(replica_.TicketKeyOf(0x10), std::nullopt);
  replica_.ApplyEvent(Logout(Session("leia", 0x10)));
  EXPECT_TRUE(registry_.IsActive("leia", kNow));
  EXPECT_EQ(replica_.TicketKeyOf(0x11), KeyFilledWith(0x11));
  EXPECT_EQ(replica_.stats().remote_sessions, 1u);
}

// Two logins of leia at once, here and on bb: bb's reaches the replica
// while leia's local session lives (its claim pending). It waits, and
// enters once the local session ends (its claim refused).
TEST_F(ClusterReplicaTest, RemoteLoginOfAUserLiveHereWaitsForItToEnd) {
  const uint64_t local = LocalLogin("leia");
  ASSERT_NE(local, 0u);
  replica_.ApplyEvent(Login(Session("leia", 0x10)));
  EXPECT_EQ(replica_.stats().conflicts, 1u);
  EXPECT_EQ(replica_.stats().set_aside, 1u);
  EXPECT_EQ(replica_.TicketKeyOf(0x10), std::nullopt);
  EXPECT_EQ(replica_.stats().remote_sessions, 0u);
  EXPECT_TRUE(registry_.IsLive(local, kNow));

  ASSERT_TRUE(registry_.Logout(local).ok());
  replica_.LocalSessionEnded("leia");
  EXPECT_TRUE(registry_.IsActive("leia", kNow));
  EXPECT_EQ(replica_.TicketKeyOf(0x10), KeyFilledWith(0x10));
  EXPECT_EQ(replica_.stats().set_aside, 0u);
  // Once only.
  replica_.LocalSessionEnded("leia");
  EXPECT_EQ(replica_.stats().remote_sessions, 1u);
}

TEST_F(ClusterReplicaTest, ASetAsideSessionThatLogsOutNeverEnters) {
  const uint64_t local = LocalLogin("leia");
  ASSERT_NE(local, 0u);
  replica_.ApplyEvent(Login(Session("leia", 0x10)));
  replica_.ApplyEvent(Logout(Session("leia", 0x10)));
  EXPECT_EQ(replica_.stats().set_aside, 0u);
  ASSERT_TRUE(registry_.Logout(local).ok());
  replica_.LocalSessionEnded("leia");
  EXPECT_FALSE(registry_.IsActive("leia", kNow));
}

TEST_F(ClusterReplicaTest, PubAndUnpApplyIdempotently) {
  replica_.ApplyEvent(Pub("leia", "plans.pdf"));
  replica_.ApplyEvent(Pub("leia", "plans.pdf"));
  EXPECT_EQ(registry_.PublicationOf("leia", "plans.pdf"), Meta(10));
  EXPECT_EQ(registry_.publication_count(), 1u);
  replica_.ApplyEvent(Pub("leia", "plans.pdf", 11));
  EXPECT_EQ(registry_.PublicationOf("leia", "plans.pdf"), Meta(11));
  replica_.ApplyEvent(Unp("leia", "plans.pdf"));
  replica_.ApplyEvent(Unp("leia", "plans.pdf"));
  EXPECT_EQ(registry_.PublicationOf("leia", "plans.pdf"), std::nullopt);
  EXPECT_EQ(registry_.publication_count(), 0u);
}

TEST_F(ClusterReplicaTest, RemotePublisherIsAHolder) {
  replica_.ApplyEvent(Login(Session("leia", 0x10)));
  replica_.ApplyEvent(Pub("leia", "plans.pdf"));
  std::optional<Holder> holder = registry_.Locate("plans.pdf", "luke", kNow);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->session_id, 0x10u);
  EXPECT_EQ(holder->file_server.port, 7300);
  EXPECT_EQ(replica_.TicketKeyOf(holder->session_id), KeyFilledWith(0x10));
}

TEST_F(ClusterReplicaTest, SnapshotReplacesRemotePresence) {
  replica_.ApplyEvent(Login(Session("leia", 0x10)));
  replica_.ApplyEvent(Login(Session("han", 0x20)));
  ClusterSnapshot snapshot;
  snapshot.sessions = {Session("han", 0x20), Session("lando", 0x30),
                       Session("luke", 0x40, kOwnDaemon)};
  replica_.ApplySnapshot(snapshot);
  EXPECT_FALSE(registry_.IsActive("leia", kNow));
  EXPECT_TRUE(registry_.IsActive("han", kNow));
  EXPECT_TRUE(registry_.IsActive("lando", kNow));
  // This daemon's own session is local or gone, never remote.
  EXPECT_FALSE(registry_.IsActive("luke", kNow));
  EXPECT_EQ(replica_.TicketKeyOf(0x10), std::nullopt);
  EXPECT_EQ(replica_.TicketKeyOf(0x30), KeyFilledWith(0x30));
  EXPECT_EQ(replica_.TicketKeyOf(0x40), std::nullopt);
  EXPECT_EQ(replica_.stats().remote_sessions, 2u);
  EXPECT_EQ(replica_.stats().snapshots, 1u);
}

TEST_F(ClusterReplicaTest, SnapshotReplacesPublications) {
  replica_.ApplyEvent(Pub("leia", "old.pdf"));
  replica_.ApplyEvent(Pub("leia", "kept.pdf", 10));
  replica_.ApplyEvent(Pub("han", "changed.pdf", 10));
  ClusterSnapshot snapshot;
  snapshot.publications = {Stored("leia", "kept.pdf", 10),
                           Stored("han", "changed.pdf", 12),
                           Stored("lando", "new.pdf", 5)};
  replica_.ApplySnapshot(snapshot);
  EXPECT_EQ(registry_.PublicationOf("leia", "old.pdf"), std::nullopt);
  EXPECT_EQ(registry_.PublicationOf("leia", "kept.pdf"), Meta(10));
  EXPECT_EQ(registry_.PublicationOf("han", "changed.pdf"), Meta(12));
  EXPECT_EQ(registry_.PublicationOf("lando", "new.pdf"), Meta(5));
  EXPECT_EQ(registry_.publication_count(), 3u);
  // An empty snapshot empties it.
  replica_.ApplySnapshot(ClusterSnapshot{});
  EXPECT_EQ(registry_.publication_count(), 0u);
  EXPECT_THAT(registry_.PublishedBy("leia"), IsEmpty());
}

// A resync's snapshot carries no logouts: the local sessions it does not
// hold as this daemon's claims are handed over to be claimed again (those
// released while the stream went past, or logins whose claim is on its
// way, which finds itself); the others are left alone.
TEST_F(ClusterReplicaTest, SnapshotHandsOverLocalSessionsItDoesNotHold) {
  const uint64_t luke = LocalLogin("luke");
  ASSERT_NE(luke, 0u);
  const uint64_t leia = LocalLogin("leia");
  ASSERT_NE(leia, 0u);
  ClusterSnapshot snapshot;
  snapshot.sessions.push_back(Session("leia", leia, kOwnDaemon));
  replica_.ApplySnapshot(snapshot);
  EXPECT_TRUE(registry_.IsLive(luke, kNow));
  EXPECT_TRUE(registry_.IsLive(leia, kNow));
  EXPECT_EQ(replica_.stats().remote_sessions, 0u);
  const std::vector<Registry::LocalSession> released =
      replica_.TakeReleasedOwnSessions();
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].id, luke);
}

}  // namespace
}  // namespace pcfs
