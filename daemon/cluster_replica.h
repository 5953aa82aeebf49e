// ClusterReplica: a daemon's copy of what the other daemons of its cluster
// (peerconnectd --redis) hold, kept in the daemon's Registry so that lap,
// sch and get see the whole cluster. It applies what the ClusterStore's
// listener delivers: the stored state (ApplySnapshot, at start and after a
// resync) and each change after it (ApplyEvent). Beside the registry it
// keeps, for each remote session, the ticket key its holder's tickets are
// MAC'd with (core/auth/ticket.h), for GET to issue them.
//
// What applies how:
//  - login of another daemon's session: the session becomes a remote one in
//    the registry (replacing an older remote one of the same user);
//  - login of this daemon's own session: nothing, the registry holds it
//    already (it is local, with a deadline);
//  - logout of this daemon's own session: this daemon wrote it when the
//    session ended here, and then nothing is left to do; otherwise the
//    session still lives here and another daemon wrote it, reaping this
//    one's claims while this daemon was cut off from the store (its
//    liveness key lapsed: a stall, a partition) or taking its user over.
//    The store no longer holds the session, so the rest of the cluster no
//    longer sees it: it is kept for TakeReleasedOwnSessions, and the daemon
//    claims it again (or ends it, if the store refuses);
//  - logout: the remote session (user, id) goes;
//  - pub, unp: Publish, Unpublish, both idempotent (this daemon's own
//    acknowledged changes do not come back: the JournalWriter applied
//    them, and the store skips them; those of a failed commit do);
//  - snapshot: the remote sessions become exactly the snapshot's (those of
//    other daemons), the publications exactly the snapshot's (missing ones
//    go, the rest are set).
// A remote login of a user who holds a live local session cannot enter the
// registry (counted as a conflict): two logins of one user on two daemons
// at once, of which the store grants one (this daemon's login then ends
// when its claim is refused), or a daemon cut off from the store while
// another took its user over (this daemon's claim of it again is refused).
// The replica keeps that session aside and applies it once the local
// session ends (LocalSessionEnded), unless a logout or a snapshot says it
// is gone meanwhile.
//
// A snapshot (a resync, after the stream was trimmed past this replica)
// carries no logouts: the local sessions it does not hold as this
// daemon's claims are kept for TakeReleasedOwnSessions too. Among them may
// be logins claimed while the snapshot was read; claimed again, such a
// claim finds itself (ClusterStore::ClaimResult::kHeldAlready), and the
// daemon changes nothing.
//
// Pure: no I/O, no threads; the time comes from the clock it is given (the
// registry's, monotonic in the daemon).
//
// Thread-safety: all methods may be called from any thread. Apply* run one
// at a time (the store's reader thread) and hold the replica's mutex while
// they change the registry, which never calls back; TicketKeyOf (reactor
// threads) takes the mutex briefly and allocates nothing.
#ifndef PCFS_DAEMON_CLUSTER_REPLICA_H_
#define PCFS_DAEMON_CLUSTER_REPLICA_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/auth/ticket.h"
#include "core/index/registry.h"
#include "daemon/cluster_event.h"

namespace pcfs {

class ClusterReplica {
 public:
  // `registry` must outlive the replica; `own_daemon_id` is this daemon's
  // (ClusterStore::Options::daemon_id); `now` the registry's clock.
  ClusterReplica(Registry* registry, std::string own_daemon_id,
                 std::function<absl::Time()> now);
  ClusterReplica(const ClusterReplica&) = delete;
  ClusterReplica& operator=(const ClusterReplica&) = delete;

  // Listener::on_snapshot.
  void ApplySnapshot(const ClusterSnapshot& snapshot);
  // Listener::on_event.
  void ApplyEvent(const ClusterEvent& event);

  // The handlers' call when a local session of `user` ended (logout,
  // expiry, a refused claim, a credentials reload): a remote session of
  // that user kept aside as a conflict is applied now.
  void LocalSessionEnded(absl::string_view user);

  // This daemon's local sessions that the store was found not to hold
  // (above) since the last call, each once: the daemon claims them again.
  std::vector<Registry::LocalSession> TakeReleasedOwnSessions();

  // The ticket key of remote session `session_id`, or nullopt if the
  // replica holds no such remote session.
  std::optional<TicketKey> TicketKeyOf(uint64_t session_id) const;

  struct Stats {
    uint64_t events = 0;     // ApplyEvent calls
    uint64_t snapshots = 0;  // ApplySnapshot calls
    // Remote logins not applied at once (the user held a live local
    // session, or the id clashed with a local one's).
    uint64_t conflicts = 0;
    size_t set_aside = 0;  // remote sessions waiting for a local one to end
    // Local sessions found released in the store (TakeReleasedOwnSessions).
    uint64_t own_sessions_released = 0;
    size_t remote_sessions = 0;
  };
  Stats stats() const;

  const std::string& own_daemon_id() const { return own_daemon_id_; }

 private:
  struct RemoteEntry {
    std::string user;
    TicketKey ticket_key;
  };

  void AddRemote(const ClusterSession& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveRemote(absl::string_view user, uint64_t session_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteReleased(const Registry::LocalSession& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Registry* const registry_;
  const std::string own_daemon_id_;
  const std::function<absl::Time()> now_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, RemoteEntry> by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> by_user_ ABSL_GUARDED_BY(mu_);
  // Remote sessions that met a live local session of their user, by user.
  absl::flat_hash_map<std::string, ClusterSession> set_aside_
      ABSL_GUARDED_BY(mu_);
  // TakeReleasedOwnSessions's answer so far, by id.
  absl::flat_hash_map<uint64_t, Registry::LocalSession> released_own_
      ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pcfs

#endif  // PCFS_DAEMON_CLUSTER_REPLICA_H_
