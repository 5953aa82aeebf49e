// ClusterLink: what the daemon's request path and server use of the
// cluster store (daemon/cluster_store.h), as an interface, so that the
// handlers and their tests do not need Redis: the daemon runs a ClusterStore
// behind it (StartClusterStoreLink), tests a fake. Each method has the
// contract of ClusterStore's method of the same name.
//
// Thread-safety: as ClusterStore: every method may be called from any
// thread; Claim's `done` may run on any thread (the store's writer).
#ifndef PCFS_DAEMON_CLUSTER_LINK_H_
#define PCFS_DAEMON_CLUSTER_LINK_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/auth/scram.h"
#include "core/index/registry.h"
#include "daemon/cluster_event.h"
#include "daemon/cluster_store.h"
#include "daemon/publication_log.h"

namespace pcfs {

class ClusterLink {
 public:
  virtual ~ClusterLink() = default;

  virtual const std::string& daemon_id() const = 0;
  // Blocks: the JournalWriter's AppendFn, never a reactor thread's call.
  virtual absl::Status CommitPublications(
      std::span<const PublicationChange> batch) = 0;
  // Never blocks; `done` runs later, on another thread.
  virtual void Claim(ClusterSession session, ClusterStore::ClaimDone done) = 0;
  // Never blocks.
  virtual void Release(std::string user, uint64_t session_id) = 0;
  virtual ClusterStore::Stats stats() const = 0;
  // Releases this daemon's sessions and joins the store's threads; no
  // `done` runs after it returns. Idempotent.
  virtual void Stop() = 0;
};

// The claim of this daemon's session `session`, whose session key is
// `key`: what the other daemons need to list it, send downloaders to its
// file server and issue its tickets, which they MAC with the ticket key
// derived from `key` (they never learn the session key itself).
ClusterSession ClaimOf(const ClusterLink& link,
                       const Registry::LocalSession& session,
                       const SessionKey& key);

// Starts a ClusterStore (ClusterStore::Start: connects, delivers the stored
// state to listener.on_snapshot before returning) behind a ClusterLink.
absl::StatusOr<std::unique_ptr<ClusterLink>> StartClusterStoreLink(
    ClusterStore::Options options, ClusterStore::Listener listener);

}  // namespace pcfs

#endif  // PCFS_DAEMON_CLUSTER_LINK_H_
