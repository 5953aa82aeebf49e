// StartClusterStoreLink for a tree without the cluster store's sources
// (daemon/cluster_store.cc): --redis is refused with a clear message.
// daemon/CMakeLists.txt picks this file or cluster_store_link.cc.
#include "daemon/cluster_link.h"

namespace pcfs {

absl::StatusOr<std::unique_ptr<ClusterLink>> StartClusterStoreLink(
    ClusterStore::Options /*options*/, ClusterStore::Listener /*listener*/) {
  return absl::UnimplementedError(
      "--redis: this peerconnectd was built without the Redis cluster store");
}

}  // namespace pcfs
