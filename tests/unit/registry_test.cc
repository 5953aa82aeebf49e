#include "core/index/registry.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(100);
constexpr absl::Duration kTimeout = absl::Seconds(3);  // the default

absl::Time At(absl::Duration since) { return kT0 + since; }

Endpoint V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  Endpoint endpoint;
  endpoint.family = 4;
  endpoint.ip = {a, b, c, d};
  endpoint.port = port;
  return endpoint;
}

Endpoint Loopback(uint16_t port) { return V4(127, 0, 0, 1, port); }

std::array<uint8_t, 16> Nonce(uint8_t seed) {
  std::array<uint8_t, 16> nonce{};
  nonce.fill(seed);
  return nonce;
}

Registry::LoginParams Params(absl::string_view user, Endpoint control,
                             uint8_t nonce_seed = 1, uint16_t file_port = 0) {
  Registry::LoginParams params;
  params.user = user;
  params.control = control;
  params.file_port = file_port;
  params.nonce = Nonce(nonce_seed);
  return params;
}

FileMeta Meta(uint64_t size, uint8_t seed = 0) {
  FileMeta meta;
  meta.size = size;
  meta.root.fill(seed);
  return meta;
}

// Logs `user` in at kT0 from a loopback port of its own, serving files on
// port 7000, and returns the id.
uint64_t LogIn(Registry& registry, absl::string_view user,
               absl::Time now = kT0) {
  static std::atomic<uint16_t> next_port{20000};
  absl::StatusOr<uint64_t> id =
      registry.Login(Params(user, Loopback(next_port++), 1, 7000), now);
  EXPECT_TRUE(id.ok()) << id.status();
  return id.value_or(0);
}

// A whole listing read with SearchPage, in pages of at most `per_page` names
// and `budget` units of work, each from the cursor the last one returned.
// The names in the order listed (not sorted, repeats kept). Sets `pages` and
// `empty_pages` (pages that listed nothing) if given.
std::vector<std::string> ListPaged(const Registry& registry,
                                   absl::string_view pattern,
                                   absl::string_view caller, absl::Time now,
                                   size_t per_page, size_t budget,
                                   int* pages = nullptr,
                                   int* empty_pages = nullptr) {
  std::vector<std::string> names;
  Registry::SearchCursor cursor;
  for (int page = 1; page < 1000000; ++page) {
    size_t room = per_page;
    absl::StatusOr<std::optional<Registry::SearchCursor>> next =
        registry.SearchPage(pattern, caller, now, cursor, budget,
                            [&](absl::string_view name) {
                              if (room == 0) return false;
                              --room;
                              names.emplace_back(name);
                              return true;
                            });
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok()) break;
    if (pages != nullptr) *pages = page;
    if (empty_pages != nullptr && room == per_page) ++*empty_pages;
    if (!next->has_value()) break;
    EXPECT_FALSE(**next == cursor) << "the cursor did not move";
    cursor = **next;
  }
  return names;
}

std::vector<std::string> Sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

// A whole listing as the daemon reads it (pages at the daemon's budget),
// sorted and each name once.
std::vector<std::string> ListAll(const Registry& registry,
                                 absl::string_view pattern,
                                 absl::string_view caller, absl::Time now) {
  std::vector<std::string> names = Sorted(ListPaged(
      registry, pattern, caller, now, 1000000, Registry::kSearchPageBudget));
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

// What a search must list, by a scan of every publication (no index): the
// names that contain `pattern`, that a user other than `caller` with a live
// session publishes, and that `caller` does not publish. Sorted.
std::vector<std::string> ScanSearch(const Registry& registry,
                                    absl::string_view pattern,
                                    absl::string_view caller, absl::Time now) {
  absl::flat_hash_set<std::string> mine;
  std::vector<std::pair<std::string, std::string>> others;  // (user, name)
  registry.ForEachPublication(
      [&](absl::string_view user, absl::string_view name, const FileMeta&) {
        if (user == caller) {
          mine.emplace(name);
        } else if (absl::StrContains(name, pattern)) {
          others.emplace_back(user, name);
        }
      });
  std::vector<std::string> names;
  for (const auto& [user, name] : others) {  // no registry lock held here
    if (!mine.contains(name) && registry.IsActive(user, now)) {
      names.push_back(name);
    }
  }
  names = Sorted(std::move(names));
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

// ---- Login ----------------------------------------------------------------

TEST(RegistryLoginTest, ReturnsANonZeroId) {
  Registry registry;
  absl::StatusOr<uint64_t> id =
      registry.Login(Params("luke", Loopback(1)), kT0);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_NE(*id, 0u);
}

TEST(RegistryLoginTest, GivesEachSessionItsOwnId) {
  Registry registry;
  EXPECT_NE(LogIn(registry, "luke"), LogIn(registry, "leia"));
}

TEST(RegistryLoginTest, SessionHoldsTheLoginParameters) {
  Registry registry;
  Registry::LoginParams params = Params("luke", V4(10, 1, 2, 3, 4000), 9, 5000);
  const uint64_t id = registry.Login(params, kT0).value();
  EXPECT_EQ(registry.ExpireIfDue(id, kT0), kT0 + kTimeout);
  // The same nonce from the same endpoint is the same login.
  EXPECT_EQ(registry.Login(params, kT0).value(), id);
  registry.Publish("luke", "plans.pdf", Meta(1));
  std::optional<Holder> holder = registry.Locate("plans.pdf", "leia", kT0);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->user, "luke");
  EXPECT_EQ(holder->session_id, id);
  EXPECT_EQ(holder->file_server, V4(10, 1, 2, 3, 5000));
  std::optional<UserName> user = registry.Admit(id, params.control, kT0, false);
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(*user, "luke");
}

TEST(RegistryLoginTest, RefusesAUserWhoIsActive) {
  Registry registry;
  ASSERT_TRUE(registry.Login(Params("luke", Loopback(1), 1), kT0).ok());
  absl::StatusOr<uint64_t> second =
      registry.Login(Params("luke", Loopback(1), 2), At(absl::Seconds(1)));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(RegistryLoginTest, RefusesTheSameNonceFromAnotherEndpoint) {
  Registry registry;
  ASSERT_TRUE(registry.Login(Params("luke", Loopback(1), 1), kT0).ok());
  absl::StatusOr<uint64_t> second =
      registry.Login(Params("luke", Loopback(2), 1), kT0);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(RegistryLoginTest, RetransmissionReturnsTheSameSession) {
  Registry registry;
  const uint64_t id =
      registry.Login(Params("luke", Loopback(1), 7), kT0).value();
  absl::StatusOr<uint64_t> again =
      registry.Login(Params("luke", Loopback(1), 7), At(absl::Seconds(1)));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, id);
  EXPECT_EQ(registry.session_count(), 1u);
}

TEST(RegistryLoginTest, RetransmissionExtendsTheDeadline) {
  Registry registry;
  const uint64_t id =
      registry.Login(Params("luke", Loopback(1), 7), kT0).value();
  ASSERT_TRUE(
      registry.Login(Params("luke", Loopback(1), 7), At(absl::Seconds(2)))
          .ok());
  EXPECT_EQ(registry.ExpireIfDue(id, At(absl::Seconds(4))),
            At(absl::Seconds(5)));
}

TEST(RegistryLoginTest, SucceedsAgainAfterLogout) {
  Registry registry;
  const uint64_t first = LogIn(registry, "luke");
  ASSERT_TRUE(registry.Logout(first).ok());
  absl::StatusOr<uint64_t> second =
      registry.Login(Params("luke", Loopback(1), 2), kT0);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(*second, first);
}

TEST(RegistryLoginTest, SucceedsAgainExactlyAtTheDeadlineWithoutExpireIfDue) {
  Registry registry;
  const uint64_t first = LogIn(registry, "luke");
  absl::StatusOr<uint64_t> second =
      registry.Login(Params("luke", Loopback(1), 2), kT0 + kTimeout);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(*second, first);
  EXPECT_EQ(registry.session_count(), 1u);  // the expired one is gone
}

TEST(RegistryLoginTest, StillRefusedJustBeforeTheDeadline) {
  Registry registry;
  LogIn(registry, "luke");
  absl::StatusOr<uint64_t> second = registry.Login(
      Params("luke", Loopback(1), 2), kT0 + kTimeout - absl::Nanoseconds(1));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST(RegistryLoginTest, OldIdIsDeadAfterReLoginFollowingExpiry) {
  Registry registry;
  const uint64_t first = LogIn(registry, "luke");
  const absl::Time later = At(absl::Seconds(10));
  const uint64_t second = LogIn(registry, "luke", later);
  EXPECT_FALSE(registry.IsLive(first, later));
  EXPECT_EQ(registry.ExpireIfDue(first, later), std::nullopt);
  EXPECT_TRUE(registry.IsActive("luke", later));
  EXPECT_TRUE(registry.IsLive(second, later));
}

TEST(RegistryLoginTest, ExpiringTheOldIdLaterLeavesTheNewSessionAlone) {
  Registry registry;
  const uint64_t first = LogIn(registry, "luke");
  const absl::Time later = At(absl::Seconds(10));
  LogIn(registry, "luke", later);
  EXPECT_EQ(registry.Heartbeat(first, Loopback(1), later).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Logout(first).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry.IsActive("luke", later));
}

// ---- Heartbeat ------------------------------------------------------------

TEST(RegistryHeartbeatTest, ExtendsTheDeadline) {
  Registry registry;
  const uint64_t id = registry.Login(Params("luke", Loopback(1)), kT0).value();
  ASSERT_TRUE(registry.Heartbeat(id, Loopback(1), At(absl::Seconds(2))).ok());
  EXPECT_TRUE(registry.IsActive("luke", At(absl::Milliseconds(4999))));
  EXPECT_FALSE(registry.IsActive("luke", At(absl::Seconds(5))));
}

TEST(RegistryHeartbeatTest, UnknownSessionIsNotFound) {
  Registry registry;
  EXPECT_EQ(registry.Heartbeat(12345, Loopback(1), kT0).code(),
            absl::StatusCode::kNotFound);
}

TEST(RegistryHeartbeatTest, AtTheDeadlineIsNotFoundAndEndsTheSession) {
  Registry registry;
  const uint64_t id = registry.Login(Params("luke", Loopback(1)), kT0).value();
  EXPECT_EQ(registry.Heartbeat(id, Loopback(1), kT0 + kTimeout).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.session_count(), 0u);
}

TEST(RegistryHeartbeatTest, FromAnotherEndpointIsPermissionDenied) {
  Registry registry;
  const uint64_t id = registry.Login(Params("luke", Loopback(1)), kT0).value();
  EXPECT_EQ(registry.Heartbeat(id, Loopback(2), At(absl::Seconds(2))).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(RegistryHeartbeatTest, FromAnotherEndpointDoesNotExtend) {
  Registry registry;
  const uint64_t id = registry.Login(Params("luke", Loopback(1)), kT0).value();
  (void)registry.Heartbeat(id, V4(10, 0, 0, 1, 1), At(absl::Seconds(2)));
  EXPECT_FALSE(registry.IsActive("luke", kT0 + kTimeout));
}

// ---- Logout ---------------------------------------------------------------

TEST(RegistryLogoutTest, EndsTheSessionAtOnce) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  ASSERT_TRUE(registry.Logout(id).ok());
  EXPECT_FALSE(registry.IsActive("luke", kT0));
  EXPECT_FALSE(registry.IsLive(id, kT0));
  EXPECT_EQ(registry.session_count(), 0u);
}

TEST(RegistryLogoutTest, UnknownSessionIsNotFound) {
  Registry registry;
  EXPECT_EQ(registry.Logout(42).code(), absl::StatusCode::kNotFound);
}

TEST(RegistryLogoutTest, SecondLogoutIsNotFound) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  ASSERT_TRUE(registry.Logout(id).ok());
  EXPECT_EQ(registry.Logout(id).code(), absl::StatusCode::kNotFound);
}

// ---- Admit and IsLive ----------------------------------------------------

TEST(RegistryAdmitTest, MovesTheSessionToTheRequestsEndpoint) {
  Registry registry;
  Registry::LoginParams params = Params("luke", V4(10, 1, 2, 3, 4000), 9, 5000);
  const uint64_t id = registry.Login(params, kT0).value();
  registry.Publish("luke", "plans.pdf", Meta(1));
  ASSERT_TRUE(registry.Admit(id, V4(10, 9, 9, 9, 4444), kT0, false));
  std::optional<Holder> holder = registry.Locate("plans.pdf", "leia", kT0);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->file_server, V4(10, 9, 9, 9, 5000));
}

TEST(RegistryAdmitTest, ExtendsTheDeadlineOnlyForAHeartbeat) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  ASSERT_TRUE(registry.Admit(id, Loopback(1), At(absl::Seconds(2)), false));
  EXPECT_EQ(registry.ExpireIfDue(id, kT0), kT0 + kTimeout);
  ASSERT_TRUE(registry.Admit(id, Loopback(1), At(absl::Seconds(2)), true));
  EXPECT_EQ(registry.ExpireIfDue(id, kT0), At(absl::Seconds(2)) + kTimeout);
}

TEST(RegistryAdmitTest, IsNulloptForAnUnknownSession) {
  Registry registry;
  EXPECT_FALSE(registry.Admit(9, Loopback(1), kT0, true).has_value());
  EXPECT_FALSE(registry.IsLive(9, kT0));
}

// Past its deadline a session is not listed, but it ends only when the
// expiry tick (ExpireIfDue) removes it: the daemon handles every datagram
// queued before the tick first, and a heartbeat among them arrived in time.
TEST(RegistryAdmitTest,
     AdmitsASessionPastItsDeadlineUntilExpireIfDueRemovesIt) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  EXPECT_TRUE(registry.IsLive(id, kT0 + kTimeout - absl::Nanoseconds(1)));
  EXPECT_FALSE(registry.IsLive(id, kT0 + kTimeout));
  EXPECT_FALSE(registry.IsActive("luke", kT0 + kTimeout));
  // A stall of 4 s: the heartbeat that waited through it renews the session.
  const absl::Time late = At(absl::Seconds(4));
  std::optional<UserName> user = registry.Admit(id, Loopback(1), late, true);
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(user->view(), "luke");
  EXPECT_TRUE(registry.IsActive("luke", late));
  EXPECT_EQ(registry.ExpireIfDue(id, late), late + kTimeout);
  // Once the tick has removed it, nothing brings it back.
  EXPECT_EQ(registry.ExpireIfDue(id, late + kTimeout), std::nullopt);
  EXPECT_FALSE(
      registry.Admit(id, Loopback(1), late + kTimeout, true).has_value());
  EXPECT_FALSE(registry.IsActive("luke", late + kTimeout));
}

// ---- ExpireIfDue ----------------------------------------------------------

TEST(RegistryExpireIfDueTest, ReturnsTheDeadlineOfALiveSession) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  EXPECT_EQ(registry.ExpireIfDue(id, At(absl::Seconds(1))), kT0 + kTimeout);
  EXPECT_EQ(registry.session_count(), 1u);
}

TEST(RegistryExpireIfDueTest, ReturnsTheDeadlineAHeartbeatMoved) {
  Registry registry;
  const uint64_t id = registry.Login(Params("luke", Loopback(1)), kT0).value();
  ASSERT_TRUE(registry.Heartbeat(id, Loopback(1), At(absl::Seconds(2))).ok());
  EXPECT_EQ(registry.ExpireIfDue(id, kT0 + kTimeout), At(absl::Seconds(5)));
}

TEST(RegistryExpireIfDueTest, RemovesASessionExactlyAtItsDeadline) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  EXPECT_EQ(registry.ExpireIfDue(id, kT0 + kTimeout), std::nullopt);
  EXPECT_EQ(registry.session_count(), 0u);
  EXPECT_FALSE(registry.IsActive("luke", kT0));  // gone even for an old now
}

// A loss (datagrams the daemon dropped unread) after the session was last
// heard from: its heartbeat may have been among them, so it gets one more
// timeout, once.
TEST(RegistryExpireIfDueTest, ALossSinceTheSessionWasHeardHoldsItOnce) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");  // heard at kT0
  bool expired = true;
  bool held = false;
  const absl::Time due = kT0 + kTimeout;
  EXPECT_EQ(registry.ExpireIfDue(id, due, &expired, nullptr,
                                 At(absl::Seconds(1)), &held),
            due + kTimeout);
  EXPECT_TRUE(held);
  EXPECT_FALSE(expired);
  EXPECT_TRUE(registry.IsActive("luke", due));
  EXPECT_TRUE(registry.IsLive(id, due + kTimeout - absl::Nanoseconds(1)));
  // At the moved deadline it goes, however recent the losses: the hold is
  // once per silence, so a peer that stopped is gone after twice the
  // timeout at most.
  UserName user;
  EXPECT_EQ(registry.ExpireIfDue(id, due + kTimeout, &expired, &user,
                                 due + kTimeout, &held),
            std::nullopt);
  EXPECT_FALSE(held);
  EXPECT_TRUE(expired);
  EXPECT_EQ(user.view(), "luke");
  EXPECT_FALSE(registry.IsActive("luke", due + kTimeout));
}

TEST(RegistryExpireIfDueTest, ALossBeforeTheSessionWasHeardHoldsNothing) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  ASSERT_TRUE(registry.Admit(id, Loopback(20000), At(absl::Seconds(2)), true)
                  .has_value());  // heard at 2 s
  bool expired = false;
  bool held = true;
  EXPECT_EQ(registry.ExpireIfDue(id, At(absl::Seconds(5)), &expired, nullptr,
                                 At(absl::Seconds(2)), &held),
            std::nullopt);
  EXPECT_FALSE(held);
  EXPECT_TRUE(expired);
}

TEST(RegistryExpireIfDueTest, AHeartbeatDuringAHoldRenewsItAndAllowsAnother) {
  Registry registry;
  const uint64_t id = registry.Login(Params("luke", Loopback(1)), kT0).value();
  bool held = false;
  ASSERT_EQ(registry.ExpireIfDue(id, kT0 + kTimeout, nullptr, nullptr,
                                 At(absl::Seconds(1)), &held),
            kT0 + 2 * kTimeout);
  ASSERT_TRUE(held);
  // The heartbeat that was lost is retransmitted and gets through.
  ASSERT_TRUE(registry.Heartbeat(id, Loopback(1), At(absl::Seconds(4))).ok());
  EXPECT_EQ(registry.ExpireIfDue(id, At(absl::Seconds(6))),
            At(absl::Seconds(7)));
  // A later silence with a loss in it is held again.
  EXPECT_EQ(registry.ExpireIfDue(id, At(absl::Seconds(7)), nullptr, nullptr,
                                 At(absl::Seconds(5)), &held),
            At(absl::Seconds(10)));
  EXPECT_TRUE(held);
}

TEST(RegistryExpireIfDueTest, ATickTooLateForTheHoldExpires) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  bool expired = false;
  bool held = true;
  EXPECT_EQ(registry.ExpireIfDue(id, kT0 + 2 * kTimeout, &expired, nullptr,
                                 At(absl::Seconds(1)), &held),
            std::nullopt);
  EXPECT_FALSE(held);
  EXPECT_TRUE(expired);
}

TEST(RegistryExpireIfDueTest, UnknownSessionIsNullopt) {
  Registry registry;
  EXPECT_EQ(registry.ExpireIfDue(5, kT0), std::nullopt);
}

// ---- ActiveUsers, IsActive, session_count -----------------------------------

TEST(RegistryActiveUsersTest, ListsOthersSortedWithoutTheCaller) {
  Registry registry;
  for (const char* user : {"yoda", "han", "luke", "chewie"}) {
    LogIn(registry, user);
  }
  EXPECT_THAT(registry.ActiveUsers("luke", kT0),
              ElementsAre("chewie", "han", "yoda"));
}

TEST(RegistryActiveUsersTest, OmitsSessionsPastTheirDeadline) {
  Registry registry;
  LogIn(registry, "han");
  LogIn(registry, "leia", At(absl::Seconds(2)));
  EXPECT_THAT(registry.ActiveUsers("", kT0 + kTimeout), ElementsAre("leia"));
}

TEST(RegistryActiveUsersTest, OmitsLoggedOutUsers) {
  Registry registry;
  const uint64_t han = LogIn(registry, "han");
  LogIn(registry, "leia");
  ASSERT_TRUE(registry.Logout(han).ok());
  EXPECT_THAT(registry.ActiveUsers("", kT0), ElementsAre("leia"));
}

TEST(RegistryActiveUsersTest, IsEmptyWhenOnlyTheCallerIsOnline) {
  Registry registry;
  LogIn(registry, "luke");
  EXPECT_THAT(registry.ActiveUsers("luke", kT0), IsEmpty());
}

TEST(RegistryIsActiveTest, FollowsTheSessionLifetime) {
  Registry registry;
  EXPECT_FALSE(registry.IsActive("luke", kT0));
  LogIn(registry, "luke");
  EXPECT_TRUE(registry.IsActive("luke", kT0 + kTimeout - absl::Nanoseconds(1)));
  EXPECT_FALSE(registry.IsActive("luke", kT0 + kTimeout));
}

TEST(RegistrySessionCountTest, CountsSessions) {
  Registry registry;
  LogIn(registry, "a");
  const uint64_t b = LogIn(registry, "b");
  LogIn(registry, "c");
  ASSERT_TRUE(registry.Logout(b).ok());
  EXPECT_EQ(registry.session_count(), 2u);
}

TEST(RegistryOptionsTest, HonoursTheSessionTimeout) {
  Registry registry(Registry::Options{.shard_count = 4,
                                      .session_timeout = absl::Seconds(10)});
  LogIn(registry, "luke");
  EXPECT_TRUE(registry.IsActive("luke", At(absl::Seconds(9))));
  EXPECT_FALSE(registry.IsActive("luke", At(absl::Seconds(10))));
}

TEST(RegistryOptionsTest, AnyShardCountWorks) {
  for (size_t shards :
       {size_t{0}, size_t{1}, size_t{3}, size_t{1000}, size_t{1} << 20}) {
    Registry registry(Registry::Options{.shard_count = shards});
    LogIn(registry, "luke");
    LogIn(registry, "leia");
    registry.Publish("leia", "plans.pdf", Meta(1));
    EXPECT_THAT(registry.ActiveUsers("luke", kT0), ElementsAre("leia"))
        << shards;
    EXPECT_THAT(ListAll(registry, "plans", "luke", kT0),
                ElementsAre("plans.pdf"))
        << shards;
  }
}

// ---- Publish, Unpublish, PublishedBy ----------------------------------------

TEST(RegistryPublishTest, ReturnsTrueForANewPublication) {
  Registry registry;
  EXPECT_TRUE(registry.Publish("leia", "plans.pdf", Meta(10)));
}

TEST(RegistryPublishTest, RepeatWithTheSameMetaReturnsFalse) {
  Registry registry;
  registry.Publish("leia", "plans.pdf", Meta(10));
  EXPECT_FALSE(registry.Publish("leia", "plans.pdf", Meta(10)));
  EXPECT_EQ(registry.publication_count(), 1u);
}

TEST(RegistryPublishTest, RepeatWithNewMetaReturnsTrueAndKeepsTheNewMeta) {
  Registry registry;
  registry.Publish("leia", "plans.pdf", Meta(10, 1));
  EXPECT_TRUE(registry.Publish("leia", "plans.pdf", Meta(12, 2)));
  std::vector<FileMeta> metas;
  registry.ForEachPublication(
      [&](absl::string_view, absl::string_view, const FileMeta& meta) {
        metas.push_back(meta);
      });
  EXPECT_THAT(metas, ElementsAre(Meta(12, 2)));
}

TEST(RegistryPublishTest, SameNameByTwoUsersIsTwoPublications) {
  Registry registry;
  EXPECT_TRUE(registry.Publish("leia", "plans.pdf", Meta(10)));
  EXPECT_TRUE(registry.Publish("han", "plans.pdf", Meta(10)));
  EXPECT_EQ(registry.publication_count(), 2u);
}

// A name's first publisher is held inline, the others on the heap: each
// keeps its own meta through growth, removal from either place and
// re-publication.
TEST(RegistryPublishTest, ManyPublishersOfANameKeepTheirOwnMeta) {
  Registry registry;
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(
        registry.Publish(absl::StrCat("user", i), "plans.pdf", Meta(100 + i)));
  }
  EXPECT_EQ(registry.publication_count(), 9u);
  ASSERT_TRUE(registry.Unpublish("user0", "plans.pdf").ok());  // the first
  ASSERT_TRUE(registry.Unpublish("user4", "plans.pdf").ok());
  ASSERT_TRUE(registry.Unpublish("user8", "plans.pdf").ok());  // the last
  EXPECT_EQ(registry.Unpublish("user4", "plans.pdf").code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(registry.Publish("user4", "plans.pdf", Meta(7)));
  for (int i = 0; i < 9; ++i) {
    const std::string user = absl::StrCat("user", i);
    std::optional<FileMeta> meta = registry.PublicationOf(user, "plans.pdf");
    if (i == 0 || i == 8) {
      EXPECT_FALSE(meta.has_value()) << user;
    } else {
      ASSERT_TRUE(meta.has_value()) << user;
      EXPECT_EQ(*meta, i == 4 ? Meta(7) : Meta(100 + i)) << user;
    }
  }
  EXPECT_EQ(registry.publication_count(), 7u);
  // All gone, then back: the name revives with one publisher.
  for (int i = 1; i < 8; ++i) {
    ASSERT_TRUE(registry.Unpublish(absl::StrCat("user", i), "plans.pdf").ok());
  }
  EXPECT_EQ(registry.publication_count(), 0u);
  ASSERT_TRUE(registry.Publish("user8", "plans.pdf", Meta(8)));
  EXPECT_THAT(registry.PublishedBy("user8"), ElementsAre("plans.pdf"));
  EXPECT_EQ(registry.PublicationOf("user8", "plans.pdf"), Meta(8));
}

TEST(RegistryUnpublishTest, RemovesThePublication) {
  Registry registry;
  registry.Publish("leia", "plans.pdf", Meta(10));
  registry.Publish("leia", "map.png", Meta(10));
  ASSERT_TRUE(registry.Unpublish("leia", "plans.pdf").ok());
  EXPECT_THAT(registry.PublishedBy("leia"), ElementsAre("map.png"));
  EXPECT_EQ(registry.publication_count(), 1u);
}

TEST(RegistryUnpublishTest, NameNotPublishedIsNotFound) {
  Registry registry;
  registry.Publish("leia", "plans.pdf", Meta(10));
  EXPECT_EQ(registry.Unpublish("leia", "other.pdf").code(),
            absl::StatusCode::kNotFound);
}

TEST(RegistryUnpublishTest, AnotherUsersPublicationIsNotFound) {
  Registry registry;
  registry.Publish("leia", "plans.pdf", Meta(10));
  EXPECT_EQ(registry.Unpublish("han", "plans.pdf").code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(registry.PublishedBy("leia"), ElementsAre("plans.pdf"));
}

TEST(RegistryUnpublishTest, SecondUnpublishIsNotFound) {
  Registry registry;
  registry.Publish("leia", "plans.pdf", Meta(10));
  ASSERT_TRUE(registry.Unpublish("leia", "plans.pdf").ok());
  EXPECT_EQ(registry.Unpublish("leia", "plans.pdf").code(),
            absl::StatusCode::kNotFound);
}

TEST(RegistryPublicationOfTest, GivesTheMetaOfALivePublicationOnly) {
  Registry registry;
  EXPECT_EQ(registry.PublicationOf("leia", "plans.pdf"), std::nullopt);
  registry.Publish("leia", "plans.pdf", Meta(10));
  registry.Publish("leia", "plans.pdf", Meta(12));
  EXPECT_EQ(registry.PublicationOf("leia", "plans.pdf"), Meta(12));
  EXPECT_EQ(registry.PublicationOf("han", "plans.pdf"), std::nullopt);
  ASSERT_TRUE(registry.Unpublish("leia", "plans.pdf").ok());
  EXPECT_EQ(registry.PublicationOf("leia", "plans.pdf"), std::nullopt);
}

TEST(RegistryPublishedByTest, IsSortedAndNeedsNoSession) {
  Registry registry;
  registry.Publish("leia", "b.txt", Meta(1));
  registry.Publish("leia", "a.txt", Meta(1));
  registry.Publish("leia", "c.txt", Meta(1));
  registry.Publish("han", "z.txt", Meta(1));
  EXPECT_THAT(registry.PublishedBy("leia"),
              ElementsAre("a.txt", "b.txt", "c.txt"));
  EXPECT_THAT(registry.PublishedBy("nobody"), IsEmpty());
}

TEST(RegistryPublishTest, PublicationsOutliveSessions) {
  Registry registry;
  const uint64_t id = LogIn(registry, "leia");
  registry.Publish("leia", "plans.pdf", Meta(10));
  ASSERT_TRUE(registry.Logout(id).ok());
  EXPECT_THAT(registry.PublishedBy("leia"), ElementsAre("plans.pdf"));
  LogIn(registry, "leia", At(absl::Seconds(1)));
  LogIn(registry, "luke", At(absl::Seconds(1)));
  EXPECT_THAT(ListAll(registry, "", "luke", At(absl::Seconds(1))),
              ElementsAre("plans.pdf"));
}

TEST(RegistryForEachPublicationTest, VisitsEveryPublicationOnce) {
  Registry registry;
  registry.Publish("leia", "a", Meta(1));
  registry.Publish("leia", "b", Meta(2));
  registry.Publish("han", "a", Meta(3));
  std::vector<std::string> seen;
  registry.ForEachPublication([&](absl::string_view user,
                                  absl::string_view name,
                                  const FileMeta& meta) {
    seen.push_back(absl::StrCat(user, "/", name, "/", meta.size));
  });
  EXPECT_THAT(seen, UnorderedElementsAre("leia/a/1", "leia/b/2", "han/a/3"));
}

// ---- Search ---------------------------------------------------------------

// A registry where luke asks, and others publish.
class RegistrySearchTest : public ::testing::Test {
 protected:
  void SetUp() override { LogIn(registry_, "luke"); }
  Registry registry_;
};

TEST_F(RegistrySearchTest, FindsNamesContainingThePattern) {
  LogIn(registry_, "leia");
  registry_.Publish("leia", "deathstar-plans.pdf", Meta(1));
  registry_.Publish("leia", "starmap.png", Meta(1));
  registry_.Publish("leia", "notes.txt", Meta(1));
  EXPECT_THAT(ListAll(registry_, "star", "luke", kT0),
              ElementsAre("deathstar-plans.pdf", "starmap.png"));
}

TEST_F(RegistrySearchTest, IsCaseSensitive) {
  LogIn(registry_, "leia");
  registry_.Publish("leia", "Plans.pdf", Meta(1));
  EXPECT_THAT(ListAll(registry_, "plans", "luke", kT0), IsEmpty());
  EXPECT_THAT(ListAll(registry_, "Plans", "luke", kT0),
              ElementsAre("Plans.pdf"));
}

TEST_F(RegistrySearchTest, EmptyPatternMatchesEveryName) {
  LogIn(registry_, "leia");
  registry_.Publish("leia", "b", Meta(1));
  registry_.Publish("leia", "a", Meta(1));
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0), ElementsAre("a", "b"));
}

TEST_F(RegistrySearchTest, ListsANamePublishedByManyOnce) {
  LogIn(registry_, "leia");
  LogIn(registry_, "han");
  registry_.Publish("leia", "plans.pdf", Meta(1));
  registry_.Publish("han", "plans.pdf", Meta(1));
  EXPECT_THAT(ListAll(registry_, "plans", "luke", kT0),
              ElementsAre("plans.pdf"));
}

TEST_F(RegistrySearchTest, ResultIsSorted) {
  LogIn(registry_, "leia");
  LogIn(registry_, "han");
  for (const char* name : {"m", "c", "x", "a", "q"}) {
    registry_.Publish("leia", name, Meta(1));
  }
  registry_.Publish("han", "b", Meta(1));
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0),
              ElementsAre("a", "b", "c", "m", "q", "x"));
}

TEST_F(RegistrySearchTest, OmitsNamesOfUsersWhoNeverLoggedIn) {
  registry_.Publish("leia", "plans.pdf", Meta(1));
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0), IsEmpty());
}

TEST_F(RegistrySearchTest, OmitsNamesOfUsersWhoLoggedOut) {
  const uint64_t leia = LogIn(registry_, "leia");
  registry_.Publish("leia", "plans.pdf", Meta(1));
  ASSERT_TRUE(registry_.Logout(leia).ok());
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0), IsEmpty());
}

TEST_F(RegistrySearchTest, OmitsNamesOfUsersPastTheirDeadline) {
  LogIn(registry_, "leia");
  registry_.Publish("leia", "plans.pdf", Meta(1));
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0 + kTimeout), IsEmpty());
}

TEST_F(RegistrySearchTest, OmitsTheCallersOwnNames) {
  registry_.Publish("luke", "lightsaber.txt", Meta(1));
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0), IsEmpty());
}

TEST_F(RegistrySearchTest, OmitsANameTheCallerPublishesEvenIfOthersDoToo) {
  LogIn(registry_, "leia");
  registry_.Publish("leia", "plans.pdf", Meta(1));
  registry_.Publish("leia", "other.pdf", Meta(1));
  registry_.Publish("luke", "plans.pdf", Meta(1));
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0), ElementsAre("other.pdf"));
}

TEST_F(RegistrySearchTest, KeepsANameWhileOneOfItsPublishersIsActive) {
  LogIn(registry_, "leia");
  registry_.Publish("han", "plans.pdf", Meta(1));  // han is offline
  registry_.Publish("leia", "plans.pdf", Meta(1));
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0), ElementsAre("plans.pdf"));
}

TEST_F(RegistrySearchTest, OmitsUnpublishedNames) {
  LogIn(registry_, "leia");
  registry_.Publish("leia", "plans.pdf", Meta(1));
  ASSERT_TRUE(registry_.Unpublish("leia", "plans.pdf").ok());
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0), IsEmpty());
}

TEST_F(RegistrySearchTest, NameStaysWhileAnotherUserStillPublishesIt) {
  LogIn(registry_, "leia");
  LogIn(registry_, "han");
  registry_.Publish("leia", "plans.pdf", Meta(1));
  registry_.Publish("han", "plans.pdf", Meta(1));
  ASSERT_TRUE(registry_.Unpublish("leia", "plans.pdf").ok());
  EXPECT_THAT(ListAll(registry_, "", "luke", kT0), ElementsAre("plans.pdf"));
}

// ---- SearchPage -------------------------------------------------------------

// luke asks; leia and han are online, chewie is not. Names published by
// each of them, by two, and by luke with or without others.
class RegistrySearchPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LogIn(registry_, "luke");
    LogIn(registry_, "leia");
    LogIn(registry_, "han");
    for (int i = 0; i < 300; ++i) {
      const std::string name = absl::StrCat("plans-", i, ".pdf");
      switch (i % 6) {
        case 0:
          registry_.Publish("leia", name, Meta(1));
          break;
        case 1:
          registry_.Publish("han", name, Meta(1));
          break;
        case 2:
          registry_.Publish("chewie", name, Meta(1));
          break;
        case 3:
          registry_.Publish("chewie", name, Meta(1));
          registry_.Publish("han", name, Meta(1));
          break;
        case 4:
          registry_.Publish("luke", name, Meta(1));
          registry_.Publish("leia", name, Meta(1));
          break;
        case 5:
          registry_.Publish("luke", name, Meta(1));
          break;
      }
    }
  }
  Registry registry_{Registry::Options{.shard_count = 8}};
};

TEST_F(RegistrySearchPageTest, ListsWhatAScanFindsOnceEachAtAnyPageSize) {
  struct Paging {
    size_t per_page;
    size_t budget;
  };
  for (const char* pattern : {"", "p", "s-", "plans", "1.pdf", "nothing"}) {
    const std::vector<std::string> expected =
        ScanSearch(registry_, pattern, "luke", kT0);
    for (Paging paging : {Paging{1, 1}, Paging{3, 7}, Paging{7, 40},
                          Paging{50, 300}, Paging{1000, 1000000}}) {
      const std::vector<std::string> listed = ListPaged(
          registry_, pattern, "luke", kT0, paging.per_page, paging.budget);
      EXPECT_EQ(Sorted(listed), expected)
          << "\"" << pattern << "\" in pages of " << paging.per_page
          << " with budget " << paging.budget;
    }
  }
  EXPECT_EQ(ScanSearch(registry_, "", "luke", kT0).size(), 150u);
}

TEST_F(RegistrySearchPageTest, OneSmallPageCostsLittleAndStillMovesOn) {
  int pages = 0;
  const std::vector<std::string> listed =
      ListPaged(registry_, "", "luke", kT0, 1000, 8, &pages);
  EXPECT_EQ(Sorted(listed), ScanSearch(registry_, "", "luke", kT0));
  // 300 names cost at least one unit each: a budget of 8 takes many pages.
  EXPECT_GE(pages, 300 / 8);
}

TEST(RegistrySearchPageAloneTest, PageMayListNothingAndGoOn) {
  Registry registry(Registry::Options{.shard_count = 1});
  LogIn(registry, "leia");
  for (int i = 0; i < 200; ++i) {
    registry.Publish("luke", absl::StrCat("mine-", i), Meta(1));
  }
  registry.Publish("leia", "theirs", Meta(1));
  int empty_pages = 0;
  EXPECT_THAT(
      ListPaged(registry, "", "luke", kT0, 100, 16, nullptr, &empty_pages),
      ElementsAre("theirs"));
  EXPECT_GT(empty_pages, 0);
}

TEST(RegistrySearchPageAloneTest, CursorPastTheLastShardIsOutOfRange) {
  Registry registry(Registry::Options{.shard_count = 4});
  auto page = registry.SearchPage("", "luke", kT0, {.shard = 4, .id = 0}, 100,
                                  [](absl::string_view) { return true; });
  EXPECT_EQ(page.status().code(), absl::StatusCode::kOutOfRange);
}

TEST(RegistrySearchPageAloneTest, LearnsLivenessOfManyPublishersOfOneName) {
  Registry registry(Registry::Options{.shard_count = 2});
  for (int u = 0; u < 100; ++u) {
    registry.Publish(absl::StrCat("offline", u), "popular.txt", Meta(1));
  }
  EXPECT_THAT(ListPaged(registry, "pop", "luke", kT0, 10, 4), IsEmpty());
  LogIn(registry, "offline99");
  EXPECT_THAT(ListPaged(registry, "pop", "luke", kT0, 10, 4),
              ElementsAre("popular.txt"));
}

// Between pages, other names go and come (their ids reused, the name bytes
// compacted): the names that stay are listed once each all the same.
TEST(RegistrySearchPageAloneTest, ChurnBetweenPagesKeepsStableNamesOnce) {
  Registry registry(Registry::Options{.shard_count = 2});
  LogIn(registry, "leia");
  std::vector<std::string> stable;
  for (int i = 0; i < 100; ++i) {
    stable.push_back(absl::StrCat("stable-", i, ".mkv"));
    registry.Publish("leia", stable.back(), Meta(1));
  }
  std::vector<std::string> listed;
  Registry::SearchCursor cursor;
  for (int page = 0;; ++page) {
    size_t room = 4;
    auto next = registry.SearchPage(".mkv", "luke", kT0, cursor, 1000,
                                    [&](absl::string_view name) {
                                      if (room == 0) return false;
                                      --room;
                                      listed.emplace_back(name);
                                      return true;
                                    });
    ASSERT_TRUE(next.ok());
    if (!next->has_value()) break;
    cursor = **next;
    for (int i = 0; i < 30; ++i) {
      const std::string churn = absl::StrCat("churn-", (page * 7 + i) % 50);
      if (i % 3 == 0) {
        (void)registry.Unpublish("leia", churn);
      } else {
        registry.Publish("leia", churn, Meta(1));
      }
    }
  }
  EXPECT_EQ(Sorted(listed), Sorted(stable));
}

// ---- Locate ---------------------------------------------------------------

TEST(RegistryLocateTest, ReturnsTheHoldersFileServerAndMeta) {
  Registry registry;
  ASSERT_TRUE(
      registry.Login(Params("leia", V4(10, 0, 0, 7, 40000), 1, 8080), kT0)
          .ok());
  registry.Publish("leia", "plans.pdf", Meta(1234, 5));
  std::optional<Holder> holder = registry.Locate("plans.pdf", "luke", kT0);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->user, "leia");
  EXPECT_EQ(holder->file_server, V4(10, 0, 0, 7, 8080));
  EXPECT_EQ(holder->meta, Meta(1234, 5));
}

TEST(RegistryLocateTest, KeepsTheFamilyAndAddressOfAnIpv6Holder) {
  Registry registry;
  Endpoint control;
  control.family = 6;
  control.ip = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};  // ::1
  control.port = 40000;
  ASSERT_TRUE(registry.Login(Params("leia", control, 1, 8080), kT0).ok());
  registry.Publish("leia", "plans.pdf", Meta(1));
  std::optional<Holder> holder = registry.Locate("plans.pdf", "luke", kT0);
  ASSERT_TRUE(holder.has_value());
  Endpoint expected = control;
  expected.port = 8080;
  EXPECT_EQ(holder->file_server, expected);
}

TEST(RegistryLocateTest, SkipsASessionThatServesNothing) {
  Registry registry;
  // A one-shot command logs in with file port 0: it cannot serve.
  ASSERT_TRUE(registry.Login(Params("luke", Loopback(30000)), kT0).ok());
  registry.Publish("luke", "x.bin", Meta(1));
  EXPECT_FALSE(registry.Locate("x.bin", "leia", kT0).has_value());
  EXPECT_TRUE(registry.IsActive("luke", kT0));
}

TEST(RegistryLocateTest, UnknownNameIsNullopt) {
  Registry registry;
  EXPECT_EQ(registry.Locate("nothing", "luke", kT0), std::nullopt);
}

TEST(RegistryLocateTest, MatchesTheWholeNameOnly) {
  Registry registry;
  LogIn(registry, "leia");
  registry.Publish("leia", "plans.pdf", Meta(1));
  EXPECT_EQ(registry.Locate("plans", "luke", kT0), std::nullopt);
}

TEST(RegistryLocateTest, NeverReturnsTheCaller) {
  Registry registry;
  LogIn(registry, "luke");
  registry.Publish("luke", "plans.pdf", Meta(1));
  EXPECT_EQ(registry.Locate("plans.pdf", "luke", kT0), std::nullopt);
}

TEST(RegistryLocateTest, FindsAnotherHolderWhenTheCallerAlsoPublishes) {
  Registry registry;
  LogIn(registry, "luke");
  LogIn(registry, "leia");
  registry.Publish("luke", "plans.pdf", Meta(1));
  registry.Publish("leia", "plans.pdf", Meta(1));
  std::optional<Holder> holder = registry.Locate("plans.pdf", "luke", kT0);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->user, "leia");
}

TEST(RegistryLocateTest, SkipsInactivePublishers) {
  Registry registry;
  LogIn(registry, "leia");
  registry.Publish("han", "plans.pdf", Meta(1));  // han is offline
  registry.Publish("leia", "plans.pdf", Meta(2));
  for (int i = 0; i < 20; ++i) {
    std::optional<Holder> holder = registry.Locate("plans.pdf", "luke", kT0);
    ASSERT_TRUE(holder.has_value());
    EXPECT_EQ(holder->user, "leia");
  }
}

TEST(RegistryLocateTest, IsNulloptOnceTheOnlyHolderPassedItsDeadline) {
  Registry registry;
  LogIn(registry, "leia");
  registry.Publish("leia", "plans.pdf", Meta(1));
  EXPECT_EQ(registry.Locate("plans.pdf", "luke", kT0 + kTimeout), std::nullopt);
}

TEST(RegistryLocateTest, ReturnsTheMetaOfTheChosenHolder) {
  Registry registry;
  LogIn(registry, "leia");
  LogIn(registry, "han");
  registry.Publish("leia", "plans.pdf", Meta(100, 1));
  registry.Publish("han", "plans.pdf", Meta(200, 2));
  for (int i = 0; i < 20; ++i) {
    std::optional<Holder> holder = registry.Locate("plans.pdf", "luke", kT0);
    ASSERT_TRUE(holder.has_value());
    EXPECT_EQ(holder->meta,
              holder->user == "leia" ? Meta(100, 1) : Meta(200, 2));
  }
}

// Chance of a false failure: 3 * (2/3)^300, about 1e-52.
TEST(RegistryLocateTest, SpreadsRequestsOverTheActiveHolders) {
  Registry registry;
  for (const char* user : {"leia", "han", "chewie"}) {
    LogIn(registry, user);
    registry.Publish(user, "plans.pdf", Meta(1));
  }
  absl::flat_hash_set<std::string> chosen;
  for (int i = 0; i < 300; ++i) {
    std::optional<Holder> holder = registry.Locate("plans.pdf", "luke", kT0);
    ASSERT_TRUE(holder.has_value());
    chosen.insert(std::string(holder->user.view()));
  }
  EXPECT_THAT(chosen, UnorderedElementsAre("leia", "han", "chewie"));
}

// ---- LocateHolders ----------------------------------------------------------

// The users of holders[0, count), sorted.
std::vector<std::string> UsersOf(const std::array<Holder, 8>& holders,
                                 size_t count) {
  std::vector<std::string> users;
  for (size_t i = 0; i < count; ++i) {
    users.emplace_back(holders[i].user.view());
  }
  std::sort(users.begin(), users.end());
  return users;
}

TEST(RegistryLocateHoldersTest, ReturnsEveryActiveHolderOfTheSameContent) {
  Registry registry;
  for (const char* user : {"leia", "han", "chewie", "luke"}) {
    LogIn(registry, user);
    registry.Publish(user, "plans.pdf", Meta(100, 1));
  }
  std::array<Holder, 8> holders;
  const size_t count =
      registry.LocateHolders("plans.pdf", "luke", kT0, holders);
  EXPECT_THAT(UsersOf(holders, count), ElementsAre("chewie", "han", "leia"));
  for (size_t i = 0; i < count; ++i) {
    EXPECT_EQ(holders[i].meta, Meta(100, 1));
    EXPECT_NE(holders[i].session_id, 0u);
  }
}

TEST(RegistryLocateHoldersTest, KeepsOnlyHoldersWithTheFirstOnesRootAndSize) {
  Registry registry;
  LogIn(registry, "leia");
  LogIn(registry, "han");
  LogIn(registry, "chewie");
  registry.Publish("leia", "plans.pdf", Meta(100, 1));
  registry.Publish("han", "plans.pdf", Meta(100, 2));     // another root
  registry.Publish("chewie", "plans.pdf", Meta(101, 1));  // another size
  absl::flat_hash_set<std::string> first;
  for (int i = 0; i < 60; ++i) {
    std::array<Holder, 8> holders;
    const size_t count =
        registry.LocateHolders("plans.pdf", "luke", kT0, holders);
    ASSERT_EQ(count, 1u) << "holders of different contents were grouped";
    first.insert(std::string(holders[0].user.view()));
  }
  // Chance of a false failure: 3 * (2/3)^60, about 1e-10.
  EXPECT_THAT(first, UnorderedElementsAre("leia", "han", "chewie"));
}

TEST(RegistryLocateHoldersTest, StopsAtTheRoomItIsGiven) {
  Registry registry;
  for (const char* user : {"leia", "han", "chewie"}) {
    LogIn(registry, user);
    registry.Publish(user, "plans.pdf", Meta(1));
  }
  std::array<Holder, 2> two;
  EXPECT_EQ(registry.LocateHolders("plans.pdf", "luke", kT0, two), 2u);
  EXPECT_NE(two[0].user.view(), two[1].user.view());
  EXPECT_EQ(
      registry.LocateHolders("plans.pdf", "luke", kT0, std::span<Holder>()),
      0u);
}

TEST(RegistryLocateHoldersTest, SkipsInactiveAndNonServingPublishers) {
  Registry registry;
  LogIn(registry, "leia");
  // A one-shot command logs in with file port 0: it cannot serve.
  ASSERT_TRUE(registry.Login(Params("han", Loopback(30000)), kT0).ok());
  registry.Publish("leia", "plans.pdf", Meta(1));
  registry.Publish("han", "plans.pdf", Meta(1));
  registry.Publish("chewie", "plans.pdf", Meta(1));  // offline
  for (int i = 0; i < 20; ++i) {
    std::array<Holder, 8> holders;
    const size_t count =
        registry.LocateHolders("plans.pdf", "luke", kT0, holders);
    EXPECT_THAT(UsersOf(holders, count), ElementsAre("leia"));
  }
}

TEST(RegistryLocateHoldersTest, NeverReturnsTheCallerNorAnExpiredSession) {
  Registry registry;
  LogIn(registry, "luke");
  LogIn(registry, "leia");
  registry.Publish("luke", "plans.pdf", Meta(1));
  registry.Publish("leia", "plans.pdf", Meta(1));
  std::array<Holder, 8> holders;
  size_t count = registry.LocateHolders("plans.pdf", "luke", kT0, holders);
  EXPECT_THAT(UsersOf(holders, count), ElementsAre("leia"));
  count = registry.LocateHolders("plans.pdf", "luke", kT0 + kTimeout, holders);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(registry.LocateHolders("nothing", "luke", kT0, holders), 0u);
}

// Past the sample: many offline publishers and a few active ones. Whether
// the sample or the fallback finds them, every holder returned is active
// and they share one content.
TEST(RegistryLocateHoldersTest, FindsActiveHoldersAmongManyOfflinePublishers) {
  Registry registry;
  for (int i = 0; i < 200; ++i) {
    registry.Publish(absl::StrCat("offline", i), "plans.pdf", Meta(1));
  }
  LogIn(registry, "leia");
  LogIn(registry, "han");
  registry.Publish("leia", "plans.pdf", Meta(1));
  registry.Publish("han", "plans.pdf", Meta(1));
  for (int i = 0; i < 20; ++i) {
    std::array<Holder, 8> holders;
    const size_t count =
        registry.LocateHolders("plans.pdf", "luke", kT0, holders);
    ASSERT_GE(count, 1u);
    for (const std::string& user : UsersOf(holders, count)) {
      EXPECT_TRUE(user == "leia" || user == "han") << user;
    }
  }
}

// ---- Concurrency (run under TSan) -------------------------------------------

// The searches under churn below: leia and luke log in; leia publishes
// kStable names that stay published ("holiday-video-<i>.mkv"), returned;
// luke, the searcher, publishes one of the same shape. The churning names
// continue the numbering from kStable, kChurning of them.
constexpr int kStable = 50;
constexpr int kChurning = 50;
std::vector<std::string> PublishStableVideos(Registry& registry) {
  LogIn(registry, "leia");
  LogIn(registry, "luke");
  std::vector<std::string> stable;
  for (int i = 0; i < kStable; ++i) {
    stable.push_back(absl::StrCat("holiday-video-", i, ".mkv"));
    registry.Publish("leia", stable.back(), Meta(1));
  }
  registry.Publish("luke", "holiday-video-mine.mkv", Meta(1));
  return stable;
}

// Two threads that each publish and unpublish leia's kChurning churning
// names 3,000 times, interleaved differently. The caller joins them.
std::vector<std::thread> StartChurners(Registry& registry) {
  std::vector<std::thread> churners;
  for (int t = 0; t < 2; ++t) {
    churners.emplace_back([&registry, t] {
      for (int i = 0; i < 3000; ++i) {
        const std::string name = absl::StrCat(
            "holiday-video-", kStable + (i * 7 + t) % kChurning, ".mkv");
        if ((i + t) % 3 != 0) {
          registry.Publish("leia", name, Meta(2));
        } else {
          (void)registry.Unpublish("leia", name);
        }
      }
    });
  }
  return churners;
}

TEST(RegistryConcurrencyTest, ConcurrentLoginsForOneUserAdmitExactlyOne) {
  Registry registry;
  constexpr int kThreads = 4;
  constexpr int kUsers = 200;
  std::vector<std::atomic<int>> admitted(kUsers);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int u = 0; u < kUsers; ++u) {
        absl::StatusOr<uint64_t> id =
            registry.Login(Params(absl::StrCat("user", u), Loopback(1000 + t),
                                  static_cast<uint8_t>(t)),
                           kT0);
        if (id.ok()) {
          admitted[u]++;
        } else {
          EXPECT_EQ(id.status().code(), absl::StatusCode::kAlreadyExists);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int u = 0; u < kUsers; ++u) EXPECT_EQ(admitted[u].load(), 1) << u;
  EXPECT_EQ(registry.session_count(), static_cast<size_t>(kUsers));
}

// Publish and Unpublish calls racing on the same few (user, name) pairs:
// afterwards search and locate must agree with the publications that
// remain, however the calls interleaved.
TEST(RegistryConcurrencyTest, RacingPublishAndUnpublishLeaveSearchConsistent) {
  Registry registry;
  LogIn(registry, "leia");
  constexpr int kNames = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string name = absl::StrCat("file", (i / 2 + t) % kNames);
        if ((i + t) % 2 == 0) {
          registry.Publish("leia", name, Meta(1));
        } else {
          (void)registry.Unpublish("leia", name);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::vector<std::string> published = registry.PublishedBy("leia");
  EXPECT_EQ(ListAll(registry, "", "luke", kT0), published);
  for (int n = 0; n < kNames; ++n) {
    const std::string name = absl::StrCat("file", n);
    const bool listed =
        std::find(published.begin(), published.end(), name) != published.end();
    EXPECT_EQ(registry.Locate(name, "luke", kT0).has_value(), listed) << name;
  }
  EXPECT_EQ(registry.publication_count(), published.size());
}

// Several workers, each its own user, log in, heartbeat, publish shared and
// own names, search, locate, unpublish and log out, with checks of what
// each can know for sure along the way.
TEST(RegistryConcurrencyTest, MixedWorkloadKeepsEveryRule) {
  Registry registry(Registry::Options{.shard_count = 8});
  constexpr int kWorkers = 4;
  constexpr int kIterations = 1500;
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      const std::string me = absl::StrCat("worker", w);
      const Endpoint control = Loopback(static_cast<uint16_t>(3000 + w));
      absl::flat_hash_set<std::string> mine;
      uint64_t id = 0;
      for (int i = 0; i < kIterations; ++i) {
        const absl::Time now = At(absl::Milliseconds(i));
        if (id == 0) {
          absl::StatusOr<uint64_t> login = registry.Login(
              Params(me, control, static_cast<uint8_t>(i), 9000), now);
          ASSERT_TRUE(login.ok()) << login.status();
          id = *login;
        }
        ASSERT_TRUE(registry.Heartbeat(id, control, now).ok());
        const std::string shared = absl::StrCat("shared", i % 7);
        const std::string own = absl::StrCat(me, "-", i % 5);
        switch (i % 6) {
          case 0:
            registry.Publish(me, shared, Meta(i % 3));
            mine.insert(shared);
            break;
          case 1:
            registry.Publish(me, own, Meta(1));
            mine.insert(own);
            break;
          case 2:
            if (registry.Unpublish(me, shared).ok()) mine.erase(shared);
            EXPECT_FALSE(mine.contains(shared));
            break;
          case 3:
            for (const std::string& name : ListAll(registry, "", me, now)) {
              EXPECT_FALSE(mine.contains(name)) << me << " found " << name;
            }
            break;
          case 4:
            if (std::optional<Holder> holder =
                    registry.Locate(shared, me, now)) {
              EXPECT_NE(holder->user, me);
              EXPECT_EQ(holder->file_server.port, 9000);
            }
            break;
          case 5:
            EXPECT_TRUE(registry.IsActive(me, now));
            if (i % 30 == 5) {
              ASSERT_TRUE(registry.Logout(id).ok());
              id = 0;
            }
            break;
        }
      }
      std::vector<std::string> expected(mine.begin(), mine.end());
      std::sort(expected.begin(), expected.end());
      EXPECT_EQ(registry.PublishedBy(me), expected) << me;
    });
  }
  for (std::thread& thread : threads) thread.join();
  size_t total = 0;
  for (int w = 0; w < kWorkers; ++w) {
    total += registry.PublishedBy(absl::StrCat("worker", w)).size();
  }
  EXPECT_EQ(registry.publication_count(), total);
}

// Searches with 1-, 3- and 5-byte patterns (each path of the trigram index)
// while other threads publish and unpublish names that share their trigrams.
// At every moment: names that stay published are always found, the
// caller's own names never are, every result contains the pattern, and no
// name comes twice. Afterwards the result is exactly what remains.
TEST(RegistryConcurrencyTest, SearchDuringPublishAndUnpublishKeepsItsRules) {
  Registry registry(Registry::Options{.shard_count = 4});
  const std::vector<std::string> stable = PublishStableVideos(registry);
  const std::vector<std::string> patterns = {"holiday-video-", "day", "v",
                                             "o-1", "video"};
  std::atomic<bool> churning{true};
  std::vector<std::thread> churners = StartChurners(registry);
  std::thread searcher([&] {
    for (int round = 0; churning.load() && round < 2000; ++round) {
      const std::string& pattern = patterns[round % patterns.size()];
      // A name unpublished and published again during the listing may
      // come twice (SearchPage's contract); a stable one comes once.
      const std::vector<std::string> found =
          Sorted(ListPaged(registry, pattern, "luke", kT0, 1000000,
                           Registry::kSearchPageBudget));
      for (const std::string& name : found) {
        ASSERT_NE(name.find(pattern), std::string::npos) << name;
        ASSERT_NE(name, "holiday-video-mine.mkv");
      }
      for (const std::string& name : stable) {
        if (name.find(pattern) == std::string::npos) continue;
        const auto [first, last] =
            std::equal_range(found.begin(), found.end(), name);
        ASSERT_EQ(last - first, 1)
            << name << " not listed once for " << pattern;
      }
    }
  });
  for (std::thread& thread : churners) thread.join();
  churning = false;
  searcher.join();
  std::vector<std::string> remaining = registry.PublishedBy("leia");
  EXPECT_EQ(ListAll(registry, "holiday-video-", "luke", kT0), remaining);
  EXPECT_GE(remaining.size(), static_cast<size_t>(kStable));
}

// The paged listing while other threads publish and unpublish names that
// share its trigrams, in small pages with small budgets: names that stay
// published come exactly once, the caller's never, every one contains the
// pattern; a churning name may come twice (unpublished and published again
// under a new id) but no more often than it was published.
TEST(RegistryConcurrencyTest, PagedSearchDuringPublishAndUnpublishKeepsRules) {
  Registry registry(Registry::Options{.shard_count = 4});
  const std::vector<std::string> stable = PublishStableVideos(registry);
  const std::vector<std::string> patterns = {
      "holiday-video-", "day", "v", "o-1", "video", ""};
  std::atomic<bool> churning{true};
  std::vector<std::thread> churners = StartChurners(registry);
  std::thread searcher([&] {
    for (int round = 0; churning.load() && round < 2000; ++round) {
      const std::string& pattern = patterns[round % patterns.size()];
      const std::vector<std::string> found = Sorted(ListPaged(
          registry, pattern, "luke", kT0, 1 + round % 7, 5 + round % 50));
      for (const std::string& name : found) {
        ASSERT_NE(name.find(pattern), std::string::npos) << name;
        ASSERT_NE(name, "holiday-video-mine.mkv");
      }
      for (const std::string& name : stable) {
        if (name.find(pattern) == std::string::npos) continue;
        ASSERT_EQ(std::count(found.begin(), found.end(), name), 1)
            << name << " for " << pattern;
      }
    }
  });
  for (std::thread& thread : churners) thread.join();
  churning = false;
  searcher.join();
  EXPECT_EQ(Sorted(ListPaged(registry, "holiday-video-", "luke", kT0, 3, 20)),
            registry.PublishedBy("leia"));
}

// ---- Remote sessions (cluster mode) --------------------------------------

Registry::RemoteSession Remote(absl::string_view user, uint64_t id,
                               uint16_t file_port = 7100) {
  Registry::RemoteSession remote;
  remote.user = user;
  remote.id = id;
  remote.file_server = V4(10, 0, 0, 9, file_port);
  remote.key_pin.fill(0x5a);
  return remote;
}

TEST(RegistryRemoteTest, IsListedFoundAndActiveLikeALocalSession) {
  Registry registry;
  LogIn(registry, "luke");
  ASSERT_TRUE(registry.AddRemoteSession(Remote("leia", 0xabc0), kT0).ok());
  registry.Publish("leia", "plans.pdf", Meta(10));
  EXPECT_THAT(registry.ActiveUsers("luke", kT0), ElementsAre("leia"));
  EXPECT_TRUE(registry.IsActive("leia", kT0));
  EXPECT_THAT(ListAll(registry, "plans", "luke", kT0),
              ElementsAre("plans.pdf"));
  std::optional<Holder> holder = registry.Locate("plans.pdf", "luke", kT0);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->user, "leia");
  EXPECT_EQ(holder->session_id, 0xabc0u);
  EXPECT_EQ(holder->file_server, V4(10, 0, 0, 9, 7100));
  EXPECT_EQ(holder->key_pin[0], 0x5a);
  std::array<Holder, 4> holders;
  EXPECT_EQ(registry.LocateHolders("plans.pdf", "luke", kT0, holders), 1u);
  EXPECT_EQ(holders[0].session_id, 0xabc0u);
}

TEST(RegistryRemoteTest, NeverExpires) {
  Registry registry;
  ASSERT_TRUE(registry.AddRemoteSession(Remote("leia", 0xabc0), kT0).ok());
  const absl::Time much_later = At(absl::Hours(24 * 365));
  EXPECT_TRUE(registry.IsActive("leia", much_later));
  EXPECT_THAT(registry.ActiveUsers("", much_later), ElementsAre("leia"));
  bool expired = true;
  EXPECT_EQ(registry.ExpireIfDue(0xabc0, much_later, &expired), std::nullopt);
  EXPECT_FALSE(expired);
  EXPECT_TRUE(registry.IsActive("leia", much_later));
}

// The calls about this daemon's own clients leave a remote session alone.
TEST(RegistryRemoteTest, IsIgnoredByHeartbeatAdmitLogoutAndIsLive) {
  // One shard: the remote id is found wherever the calls look for it.
  Registry registry(Registry::Options{.shard_count = 1});
  ASSERT_TRUE(registry.AddRemoteSession(Remote("leia", 0xabc0), kT0).ok());
  EXPECT_TRUE(absl::IsNotFound(registry.Heartbeat(0xabc0, Loopback(1), kT0)));
  EXPECT_EQ(registry.Admit(0xabc0, Loopback(1), kT0, true), std::nullopt);
  EXPECT_FALSE(registry.IsLive(0xabc0, kT0));
  EXPECT_TRUE(absl::IsNotFound(registry.Logout(0xabc0)));
  std::vector<uint64_t> ended;
  EXPECT_EQ(
      registry.EndSessionsIf([](absl::string_view) { return true; }, &ended),
      0u);
  EXPECT_TRUE(registry.IsActive("leia", kT0));
}

TEST(RegistryRemoteTest, LocalLoginOfItsUserIsRefusedAsHeldElsewhere) {
  Registry registry;
  ASSERT_TRUE(registry.AddRemoteSession(Remote("leia", 0xabc0), kT0).ok());
  absl::StatusOr<uint64_t> id =
      registry.Login(Params("leia", Loopback(1)), kT0);
  EXPECT_TRUE(absl::IsAlreadyExists(id.status()));
  EXPECT_TRUE(Registry::IsHeldElsewhere(id.status()));
  // A local double login is not "elsewhere".
  LogIn(registry, "luke");
  absl::StatusOr<uint64_t> again =
      registry.Login(Params("luke", Loopback(2), 9), kT0);
  EXPECT_TRUE(absl::IsAlreadyExists(again.status()));
  EXPECT_FALSE(Registry::IsHeldElsewhere(again.status()));
}

TEST(RegistryRemoteTest, RemovedByUserAndIdOnly) {
  Registry registry;
  ASSERT_TRUE(registry.AddRemoteSession(Remote("leia", 0xabc0), kT0).ok());
  EXPECT_FALSE(registry.RemoveRemoteSession("leia", 0xdef0));
  EXPECT_FALSE(registry.RemoveRemoteSession("luke", 0xabc0));
  EXPECT_TRUE(registry.IsActive("leia", kT0));
  EXPECT_TRUE(registry.RemoveRemoteSession("leia", 0xabc0));
  EXPECT_FALSE(registry.IsActive("leia", kT0));
  EXPECT_FALSE(registry.RemoveRemoteSession("leia", 0xabc0));
  EXPECT_EQ(registry.session_count(), 0u);
  // Its user may now log in here.
  EXPECT_TRUE(registry.Login(Params("leia", Loopback(1)), kT0).ok());
}

TEST(RegistryRemoteTest, RemoveLeavesALocalSessionOfTheSameIdAlone) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  EXPECT_FALSE(registry.RemoveRemoteSession("luke", id));
  EXPECT_TRUE(registry.IsLive(id, kT0));
}

TEST(RegistryRemoteTest, ReplacesTheUsersRemoteSession) {
  Registry registry;
  ASSERT_TRUE(registry.AddRemoteSession(Remote("leia", 0xabc0), kT0).ok());
  ASSERT_TRUE(
      registry.AddRemoteSession(Remote("leia", 0xdef0, 7200), kT0).ok());
  EXPECT_EQ(registry.session_count(), 1u);
  registry.Publish("leia", "plans.pdf", Meta(10));
  std::optional<Holder> holder = registry.Locate("plans.pdf", "luke", kT0);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->session_id, 0xdef0u);
  EXPECT_EQ(holder->file_server.port, 7200);
  EXPECT_FALSE(registry.RemoveRemoteSession("leia", 0xabc0));
}

TEST(RegistryRemoteTest, RefusedWhileItsUserHoldsALiveLocalSession) {
  Registry registry;
  const uint64_t id = LogIn(registry, "leia");
  EXPECT_TRUE(absl::IsFailedPrecondition(
      registry.AddRemoteSession(Remote("leia", 0xabc0), kT0)));
  EXPECT_TRUE(registry.IsLive(id, kT0));
  // Once the local one's deadline has passed, the remote one takes over.
  const absl::Time later = At(kTimeout);
  ASSERT_TRUE(registry.AddRemoteSession(Remote("leia", 0xabc0), later).ok());
  EXPECT_FALSE(registry.IsLive(id, later));
  EXPECT_TRUE(registry.IsActive("leia", later));
}

TEST(RegistryRemoteTest, ANonServingRemoteSessionIsNoHolder) {
  Registry registry;
  ASSERT_TRUE(registry.AddRemoteSession(Remote("leia", 0xabc0, 0), kT0).ok());
  registry.Publish("leia", "plans.pdf", Meta(10));
  EXPECT_TRUE(registry.IsActive("leia", kT0));
  EXPECT_EQ(registry.Locate("plans.pdf", "luke", kT0), std::nullopt);
}

TEST(RegistryRemoteTest, ExpireIfDueNamesTheExpiredUser) {
  Registry registry;
  const uint64_t id = LogIn(registry, "luke");
  UserName user;
  bool expired = false;
  EXPECT_EQ(registry.ExpireIfDue(id, At(kTimeout), &expired, &user),
            std::nullopt);
  EXPECT_TRUE(expired);
  EXPECT_EQ(user, "luke");
}

TEST(RegistryRemoteTest, EndSessionsIfNamesTheEndedUsers) {
  Registry registry;
  const uint64_t luke = LogIn(registry, "luke");
  LogIn(registry, "leia");
  std::vector<uint64_t> ids;
  std::vector<UserName> users;
  EXPECT_EQ(
      registry.EndSessionsIf(
          [](absl::string_view user) { return user == "luke"; }, &ids, &users),
      1u);
  EXPECT_THAT(ids, ElementsAre(luke));
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0], "luke");
}

}  // namespace
}  // namespace pcfs
