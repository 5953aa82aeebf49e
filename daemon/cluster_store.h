// ClusterStore: one daemon's link to the Redis that the daemons of a
// cluster share (peerconnectd --redis HOST:PORT; libhiredis). It keeps the
// hot path local: heartbeats never reach Redis. What crosses it is what
// changes (logins, logouts and expiries, pub and unp), and what it holds is
// what must be shared and durable:
//   pcfs:pub:USER       hash NAME -> "SIZE ROOTHEX": the publications
//   pcfs:session:USER   hash: the user's one live session (ClusterSession),
//                       which is also its claim: it names the owning daemon
//   pcfs:daemon:ID      this daemon's liveness key, refreshed every
//                       liveness_refresh, expiring after liveness_ttl
//   pcfs:daemons        set of daemon ids; pcfs:sessions:ID set of the
//                       users whose session daemon ID holds
//   pcfs:changes        stream of ClusterEvents (approximately trimmed to
//                       stream_max_len entries)
// Every change of state and its stream entry are written by one MULTI/EXEC
// or one Lua script, so the stream never tells of a change the keys do not
// hold, nor the other way round. Durability is Redis's: run it with
// appendonly yes and appendfsync always (Start() warns when it is not).
//
// Each daemon keeps a full replica (its Registry) fed by the Listener: the
// stored state at start (on_snapshot), then every stream entry in order
// (on_event), from the last id seen; when that id no longer lies inside the
// stream (it was trimmed while this daemon was cut off), on_snapshot again
// with the whole stored state, then on from there.
//
// The daemons free each other's sessions: a daemon whose liveness key has
// lapsed (killed, cut off) has its sessions released by whichever live
// daemon notices first (one idempotent script: each claim that still names
// it is deleted, with a logout entry on the stream).
//
// When Redis cannot be reached, calls fail with Unavailable after
// command_timeout and the daemon goes on from its replica; the store
// reconnects by itself (backoff up to 1 s) and catches up from its last
// stream id. Releases queued meanwhile are sent once it is back.
//
// Thread-safety: all public members may be called from any thread. The
// Listener's callbacks run on the store's reader thread, one at a time;
// Claim's `done` runs on the store's writer thread.
#ifndef PCFS_DAEMON_CLUSTER_STORE_H_
#define PCFS_DAEMON_CLUSTER_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/cluster_event.h"
#include "daemon/publication_log.h"

namespace pcfs {

class ClusterStore {
 public:
  struct Options {
    std::string address;    // Redis, "HOST:PORT" (an IPv6 HOST in [])
    std::string daemon_id;  // empty: 16 random hex digits
    absl::Duration liveness_ttl = absl::Seconds(3);
    absl::Duration liveness_refresh = absl::Seconds(1);
    // The longest one Redis command may take before it counts as
    // Unavailable.
    absl::Duration command_timeout = absl::Seconds(1);
    size_t stream_max_len = 1'000'000;
    std::string key_prefix = "pcfs:";  // tests give each store its own
    // Empty: no AUTH. Else every connection logs in with AUTH, as `user`
    // (a Redis ACL user) or, when `user` is empty, as Redis's default user
    // (its requirepass).
    std::string user;
    std::string password;
  };

  struct Listener {
    // Replace the replica with the whole stored state.
    absl::AnyInvocable<void(const ClusterSnapshot&)> on_snapshot;
    // Apply one change. This daemon's own logins and logouts come back
    // too; its acknowledged pub and unp do not (CommitPublications'
    // caller applies them), those of a failed commit do.
    absl::AnyInvocable<void(const ClusterEvent&)> on_event;
    // Redis became reachable (true) or not (false), which the store also
    // logs itself. Optional.
    absl::AnyInvocable<void(bool up)> on_link;
  };

  // Connects, registers this daemon's liveness, calls on_snapshot with the
  // stored state before returning, and starts the store's threads. Fails
  // (Unavailable, naming the address) when Redis cannot be reached or
  // refuses the login: a daemon in cluster mode does not start without its
  // store.
  static absl::StatusOr<std::unique_ptr<ClusterStore>> Start(Options options,
                                                             Listener listener);
  // Stop().
  ~ClusterStore();
  ClusterStore(const ClusterStore&) = delete;
  ClusterStore& operator=(const ClusterStore&) = delete;

  // Releases every session this daemon holds (a clean stop: their users
  // may log in elsewhere at once), deletes the liveness key, joins the
  // threads. Idempotent.
  void Stop();

  const std::string& daemon_id() const;

  // Makes a batch of pub and unp durable, as JournalWriter's AppendFn:
  // HSET/HDEL on pcfs:pub:USER and one stream entry each, in one MULTI/EXEC.
  // OK only once Redis has acknowledged the whole batch; Unavailable (and
  // nothing written) when it cannot be reached. Blocks: never call it from
  // a reactor thread.
  absl::Status CommitPublications(std::span<const PublicationChange> batch);

  // How a claim that succeeded went.
  enum class ClaimResult {
    kClaimed,      // written now
    kHeldAlready,  // this very session held it already; nothing written
  };
  using ClaimDone = absl::AnyInvocable<void(absl::StatusOr<ClaimResult>)>;
  // Claims session.user for this daemon and session, unless a live daemon
  // holds a session of that user (AlreadyExists; a claim by a daemon whose
  // liveness has lapsed is taken over), stores the session and appends a
  // login entry. Claiming again the session that already holds the claim
  // succeeds with kHeldAlready (a retransmitted login, or a claim made
  // again that the store had in fact kept). Unavailable when Redis cannot
  // be reached. Never blocks: `done` runs later on the store's writer
  // thread.
  void Claim(ClusterSession session, ClaimDone done);

  // Frees the user's claim if it still names this daemon and session_id,
  // and appends a logout entry. Never blocks; retried until Redis takes it.
  void Release(std::string user, uint64_t session_id);

  struct Stats {
    bool link_up = false;
    uint64_t events = 0;   // stream entries delivered
    uint64_t resyncs = 0;  // on_snapshot calls after the first
    uint64_t commits = 0;  // CommitPublications that succeeded
    uint64_t failed_commits = 0;
    uint64_t claims = 0;  // Claim calls that succeeded
    uint64_t refused_claims = 0;
    uint64_t reaped_daemons = 0;  // lapsed daemons this one released
  };
  Stats stats() const;

 private:
  ClusterStore() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pcfs

#endif  // PCFS_DAEMON_CLUSTER_STORE_H_
