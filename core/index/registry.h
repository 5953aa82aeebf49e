// Registry: who is online (presence: each session's user, endpoints and
// deadline) and who publishes what (publications, and the search over them).
// In cluster mode (peerconnectd --redis) it is also the daemon's replica of
// the sessions the other daemons hold ("remote" sessions, which lap, sch and
// get see like local ones; daemon/cluster_replica.h keeps them).
// The semantic rules of docs/PROTOCOL.md ("Semantics") live here, in pure
// code: no sockets, no clock (every call that needs the time takes `now`).
//
// Thread-safety: all methods may be called concurrently from any thread.
// State is sharded by key hash with one absl::Mutex per shard (and the
// interned user names have a mutex of their own); no method
// holds two shard locks at once, so there is no lock ordering to respect and
// no global lock on any path.
//
// Allocation: in the steady state Heartbeat, Admit, Locate, LocateHolders,
// and Publish/Unpublish of names published before allocate nothing. A removed
// publication keeps its slots ("dormant": the name's entry and its
// search-index postings, its slot in its user's set) so that the same
// name published again reuses them; a shard drops its dormant slots once they
// outnumber a quarter of its live ones (and a small fixed slack), so they cost
// at most that share of memory.
#ifndef PCFS_CORE_INDEX_REGISTRY_H_
#define PCFS_CORE_INDEX_REGISTRY_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/base/endpoint.h"
#include "core/base/names.h"

namespace pcfs {

namespace registry_internal {
struct PublisherEntry;
}  // namespace registry_internal

// What the daemon knows about a published file: its size and Merkle root
// (core/proto/merkle.h), as the publisher reported them.
struct FileMeta {
  uint64_t size = 0;
  std::array<uint8_t, 32> root{};

  friend bool operator==(const FileMeta&, const FileMeta&) = default;
};

// One live session's presence, as the registry stores it: who, from where,
// until when. What the daemon keeps besides (the session key, the replay
// window, cached answers, list snapshots) is the daemon's own
// (daemon/session_table.h). Public so that bench/memory_bench.cc can report
// its size; reached only through Registry. Ordered to leave little padding.
struct Presence {
  uint64_t id = 0;
  std::string user;
  Endpoint control;        // where its datagrams come from
  uint16_t file_port = 0;  // its TCP file server, on control.ip
  // How far its deadline was moved past the last time it was heard from,
  // because the daemon dropped datagrams meanwhile (ExpireIfDue's
  // `last_loss`); 0 once a heartbeat renews it. In the padding after
  // file_port, so a session is no larger for it.
  uint16_t held_ms = 0;
  // The first 8 bytes of its login's nonce (LoginParams::nonce, a hash):
  // enough to know a retransmitted login, and 8 bytes less a session.
  uint64_t login_nonce_tag = 0;
  std::array<uint8_t, 32> key_pin{};  // its TLS key's; zero: plain HTTP
  // Expires when now >= deadline(); kept as Unix nanoseconds (8 bytes, an
  // absl::Time takes 16) so that a session fits in fewer bytes.
  // kRemoteDeadlineNs marks a session another daemon of the cluster holds
  // (Registry::AddRemoteSession): it never expires here, and a sentinel
  // rather than a flag keeps a local session's size as it was.
  int64_t deadline_ns = 0;

  static constexpr int64_t kRemoteDeadlineNs =
      std::numeric_limits<int64_t>::max();
  absl::Time deadline() const { return absl::FromUnixNanos(deadline_ns); }
  void set_deadline(absl::Time t) { deadline_ns = absl::ToUnixNanos(t); }
  bool is_remote() const { return deadline_ns == kRemoteDeadlineNs; }
};

// A user name held inline, so that copying one out of the registry (to
// answer GET, say) does not allocate. Longer input is cut at
// kMaxUserNameChars: the daemon only ever passes validated names.
class UserName {
 public:
  UserName() = default;
  explicit UserName(absl::string_view name)
      : size_(static_cast<uint8_t>(std::min(name.size(), kMaxUserNameChars))) {
    std::copy_n(name.data(), size_, bytes_.data());
  }
  absl::string_view view() const { return {bytes_.data(), size_}; }
  operator absl::string_view() const { return view(); }  // NOLINT: a view

  friend bool operator==(const UserName& a, absl::string_view b) {
    return a.view() == b;
  }
  friend std::ostream& operator<<(std::ostream& out, const UserName& name) {
    return out << name.view();
  }

 private:
  uint8_t size_ = 0;
  std::array<char, kMaxUserNameChars> bytes_{};
};

// An active publisher of a file, as returned by Locate().
struct Holder {
  UserName user;
  Endpoint file_server;  // control.ip with the session's file_port
  FileMeta meta;
  uint64_t session_id = 0;  // the holder's session (its key MACs tickets)
  std::array<uint8_t, 32> key_pin{};  // its TLS key's; zero: plain HTTP
};

class Registry {
 public:
  struct Options {
    size_t shard_count = 64;  // rounded up to 2^k
    // Name shards (each a SearchIndex under its own mutex), rounded up to
    // 2^k and at most shard_count. Fewer than the others: a trigram's key
    // and list head cost once per shard that holds it, and with 1M names
    // in 64 shards most trigrams (a random tag's, say) are a key of their
    // own with a single name in each shard, which made the search index
    // most of a publication's cost (274 bytes a name, 110 in 8 shards).
    // Name locks are held for a hash lookup (Locate) or a bounded walk
    // (SearchPage), so 8 leave little contention to a few reactors.
    size_t name_shard_count = 8;
    absl::Duration session_timeout = absl::Seconds(3);
  };

  explicit Registry(Options options);
  Registry() : Registry(Options{}) {}
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  // ---- Sessions ---------------------------------------------------------

  struct LoginParams {
    absl::string_view user;
    Endpoint control;
    uint16_t file_port = 0;
    std::array<uint8_t, 32> key_pin{};  // zero: it serves plain HTTP
    std::array<uint8_t, 16> nonce{};
    // Only a retransmission may succeed: return the live session this very
    // login made, or fail (FailedPrecondition) rather than start a new one.
    // For a login whose nonce was used before (a replay after logout).
    bool retransmission_only = false;
  };

  // Starts a session for `user` with deadline now + session_timeout and a
  // fresh random non-zero id (its low bits name its shard). If the user
  // already holds a live session: when that session was created by a login
  // with the same nonce and from the same control endpoint (a
  // retransmission), returns it again with its deadline extended; otherwise
  // AlreadyExists (IsHeldElsewhere() of it tells whether that session is a
  // remote one). A session whose deadline has
  // passed counts as gone even if ExpireIfDue() has not run yet.
  // The caller has already checked the credentials.
  absl::StatusOr<uint64_t> Login(const LoginParams& params, absl::Time now);

  // True for Login's AlreadyExists when the user's session is one another
  // daemon of the cluster holds.
  static bool IsHeldElsewhere(const absl::Status& login_status);

  // Extends a live session's deadline to now + session_timeout.
  // NotFound: no such session, or its deadline has passed (it is removed).
  // PermissionDenied: `from` is not the session's control endpoint.
  absl::Status Heartbeat(uint64_t session_id, const Endpoint& from,
                         absl::Time now);

  // Ends a session at once. NotFound if there is none.
  absl::Status Logout(uint64_t session_id);

  // Ends every local session whose user `doomed(user)` says must go (after
  // the credentials are reloaded without that user). Returns how many
  // ended; appends their ids to `ended_ids` and their users to
  // `ended_users` (in the same order) for those that are not null.
  size_t EndSessionsIf(absl::FunctionRef<bool(absl::string_view user)> doomed,
                       std::vector<uint64_t>* ended_ids = nullptr,
                       std::vector<UserName>* ended_users = nullptr);

  // The registry's part of admitting a request of a session whose key the
  // daemon has checked: if the session is still held (not ended, and not
  // yet removed by ExpireIfDue), moves its control endpoint to `from` (a
  // sealed datagram from a new address, NAT rebinding, moves the session
  // there), extends its deadline to now + session_timeout when
  // `heartbeat`, and returns its user; otherwise nullopt.
  //
  // A session past its deadline is admitted until ExpireIfDue removes it:
  // the daemon judges an expiry only once every datagram that reached any
  // of its sockets before the deadline is handled (Reactor::DrainDatagrams,
  // RequestHandler::Tick), so a heartbeat that waited on a socket through a
  // stall longer than the timeout arrived in time and keeps its session,
  // though the clock says otherwise by the time it is read. Between the
  // deadline and the tick that removes it (one or two wheel slots of
  // 100 ms, unless the daemon is behind) the session is not listed
  // (IsActive, Locate...).
  std::optional<UserName> Admit(uint64_t session_id, const Endpoint& from,
                                absl::Time now, bool heartbeat);

  // True if the session exists and its deadline has not passed at `now`.
  bool IsLive(uint64_t session_id, absl::Time now) const;

  // For the expiry timer: if the session's deadline has passed at `now`,
  // removes it and returns nullopt; if it no longer exists, returns nullopt;
  // otherwise returns its current deadline (the caller re-arms its timer).
  // `expired`, if not null, is set to whether this call removed it, and
  // `expired_user`, if not null, to its user when it did.
  //
  // `last_loss` is the last time the caller knows its sockets to have
  // dropped datagrams unread (a full receive buffer; InfinitePast: never).
  // A session last heard from before then may have sent a heartbeat that
  // was among them, so instead of expiring it is held: its deadline moves
  // to one more session timeout past the first (so it expires after twice
  // the timeout of silence at most), once per silence; `held`, if not
  // null, says whether this call did so. Expiry under overload then takes
  // a peer that really stopped, not one whose heartbeat the daemon lost.
  std::optional<absl::Time> ExpireIfDue(
      uint64_t session_id, absl::Time now, bool* expired = nullptr,
      UserName* expired_user = nullptr,
      absl::Time last_loss = absl::InfinitePast(), bool* held = nullptr);

  // A session of this daemon's clients, as a claim in the cluster store
  // describes it (daemon/cluster_store.h).
  struct LocalSession {
    UserName user;
    uint64_t id = 0;
    Endpoint file_server;  // control.ip with its file_port (0: none)
    std::array<uint8_t, 32> key_pin{};  // zero: plain HTTP
  };
  // The local session `id` of `user`, if the registry holds it (its
  // deadline may have passed: ExpireIfDue has not removed it yet).
  std::optional<LocalSession> FindLocalSession(absl::string_view user,
                                               uint64_t id) const;
  // Every local session the registry holds, in no order.
  std::vector<LocalSession> LocalSessions() const;

  // The users with a live session at `now`, except `exclude`, sorted.
  std::vector<std::string> ActiveUsers(absl::string_view exclude,
                                       absl::Time now) const;
  // True if `user` holds a live session at `now`.
  bool IsActive(absl::string_view user, absl::Time now) const;
  // Sessions stored, local and remote, including any past their deadline
  // that no call has removed yet.
  size_t session_count() const;

  // ---- Sessions other daemons hold (cluster mode) ------------------------

  // A session of the cluster that another daemon holds: its heartbeats go
  // there, so it never expires here; it ends by RemoveRemoteSession.
  struct RemoteSession {
    absl::string_view user;
    uint64_t id = 0;
    Endpoint file_server;  // where it serves files (port 0: nowhere)
    std::array<uint8_t, 32> key_pin{};  // zero: plain HTTP
  };

  // Records `session` as live with no deadline (`now` only judges a local
  // session of the same user). Heartbeat, Admit, IsLive,
  // ExpireIfDue, Logout and EndSessionsIf ignore it (they concern the
  // sessions of this daemon's clients); ActiveUsers, IsActive, Locate,
  // LocateHolders and SearchPage see it like a local one. A remote session
  // of the same user is replaced, and a local one whose deadline has passed
  // is dropped. FailedPrecondition if the user holds a live local session
  // (it stays); AlreadyExists if a local session of that user's shard has
  // the same id (odds of 2^-58).
  absl::Status AddRemoteSession(const RemoteSession& session, absl::Time now);

  // Removes the remote session `id` of `user`. False (and nothing changes)
  // if the user's session is another one or a local one.
  bool RemoveRemoteSession(absl::string_view user, uint64_t id);

  // ---- Publications -----------------------------------------------------

  // Records that `user` publishes `name` (idempotent: publishing again only
  // updates the meta). Publications outlive sessions. Returns true if the
  // publication is new or its meta changed (the caller persists it); false
  // also, recording nothing, past the registry's limits: 2^24 users who
  // publish, and 2^32 / name_shard_count names held at once in one name
  // shard (registry_internal.h, NameRef).
  bool Publish(absl::string_view user, absl::string_view name,
               const FileMeta& meta);

  // Removes a publication. NotFound if `user` does not publish `name`.
  absl::Status Unpublish(absl::string_view user, absl::string_view name);

  // The meta `user` publishes `name` with, or nullopt if it does not
  // publish it. Allocates nothing.
  std::optional<FileMeta> PublicationOf(absl::string_view user,
                                        absl::string_view name) const;

  // The names `user` publishes, sorted, whether or not anyone is online.
  std::vector<std::string> PublishedBy(absl::string_view user) const;

  // Where a paged search goes on (see SearchPage): a name shard, and the
  // first id in that shard's SearchIndex not yet visited. {0, 0} starts.
  struct SearchCursor {
    uint32_t shard = 0;
    uint32_t id = 0;
    friend bool operator==(const SearchCursor&, const SearchCursor&) = default;
  };

  // One page of a search listing, read straight from the index (no copy,
  // no sort, no snapshot), so that its cost is bounded by `budget` however
  // many names match. Calls emit(name), from `from` on, for the names that
  // contain `pattern` (case-sensitive; an empty pattern matches all), that
  // a user other than `caller` publishes and holds a live session for at
  // `now`, and that `caller` does not publish, in shard order and then index id
  // order, until emit returns false (the page is full: that name is not taken
  // and comes first on the next page) or about `budget` units of work are spent
  // (a unit is one index candidate; checking a name's publishers costs a few).
  // Returns the next page's cursor, or nullopt when the listing is complete. A
  // page may emit nothing and still return a cursor; one whose emit takes its
  // first name always returns a cursor past `from`.
  //
  // A listing is the pages read from {0, 0} on, each from the cursor the
  // last one returned. While Publish and Unpublish run, a listing
  //  - lists every name that, for the whole listing, contains the pattern,
  //    is published by a user other than the caller with a session live at
  //    every page's `now`, and is not published by the caller;
  //  - never lists a name that the caller publishes when its page is read;
  //  - lists a name once, unless every publisher dropped it and one
  //    published it again during the listing (it may then come twice, as
  //    it may take another index id: readers de-duplicate);
  //  - may or may not list a name published or unpublished meanwhile.
  // OutOfRange if from.shard is not a shard of this registry.
  // REQUIRES: budget >= 1; emit does not call back into the Registry.
  // The budget the daemon gives each SCH page request, and the one
  // bench/search_bench.cc times: about 4096 index candidates, or 800 names
  // checked, bound the time one request holds its reactor thread.
  static constexpr size_t kSearchPageBudget = 4096;
  absl::StatusOr<std::optional<SearchCursor>> SearchPage(
      absl::string_view pattern, absl::string_view caller, absl::Time now,
      SearchCursor from, size_t budget,
      absl::FunctionRef<bool(absl::string_view name)> emit) const;

  // Random per Registry (fixed for its lifetime), for cursors that leave
  // the process: a SearchCursor of another registry (the daemon's before a
  // restart) names other ids, and this tells them apart (with odds of 2^-16
  // of a clash).
  uint16_t search_epoch() const;

  // An active publisher of exactly `name` other than `caller` whose session
  // serves files (file port not 0), chosen at random among them to spread
  // downloads, with its session id (the daemon MACs the download ticket with
  // that session's key); or nullopt.
  std::optional<Holder> Locate(absl::string_view name, absl::string_view caller,
                               absl::Time now) const;

  // Up to out.size() holders of `name` for one download, written to `out`;
  // returns how many. The first is chosen as Locate chooses; the others are
  // the further active serving publishers (other than `caller`) with the
  // same size and root as the first, from the same bounded random sample
  // (kLocateSample publishers; all of them only when the sample holds no
  // active one), in random order. Allocates nothing when Locate does not.
  size_t LocateHolders(absl::string_view name, absl::string_view caller,
                       absl::Time now, std::span<Holder> out) const;

  size_t publication_count() const;

  // Calls fn(user, name, meta) for every publication (for snapshots of
  // durable state), name shard by name shard. Takes each shard lock in
  // turn and holds it while fn runs: fn must not call back into the
  // Registry.
  void ForEachPublication(
      absl::FunctionRef<void(absl::string_view user, absl::string_view name,
                             const FileMeta& meta)>
          fn) const;

 private:
  struct Impl;
  // LocateHolders' fallback when its sample holds no active publisher.
  size_t LocateAmongAll(absl::string_view name, absl::string_view caller,
                        absl::Time now, std::span<Holder> out) const;
  // The serving ones of `publishers`, in their order, that share the first
  // one's meta, written to `out` (at most out.size()); returns how many.
  size_t GatherServing(
      std::span<const registry_internal::PublisherEntry> publishers,
      absl::Time now, std::span<Holder> out) const;
  // The publisher as a holder, if its live session serves files.
  std::optional<Holder> HolderIfServing(
      const registry_internal::PublisherEntry& publisher, absl::Time now) const;

  std::unique_ptr<Impl> impl_;
};

}  // namespace pcfs

#endif  // PCFS_CORE_INDEX_REGISTRY_H_
