// StartClusterStoreLink: a ClusterStore behind the ClusterLink interface.
#include <memory>
#include <utility>

#include "daemon/cluster_link.h"
#include "daemon/cluster_store.h"

namespace pcfs {
namespace {

class ClusterStoreLink final : public ClusterLink {
 public:
  explicit ClusterStoreLink(std::unique_ptr<ClusterStore> store)
      : store_(std::move(store)) {}

  const std::string& daemon_id() const override { return store_->daemon_id(); }
  absl::Status CommitPublications(
      std::span<const PublicationChange> batch) override {
    return store_->CommitPublications(batch);
  }
  void Claim(ClusterSession session, ClusterStore::Done done) override {
    store_->Claim(std::move(session), std::move(done));
  }
  void Release(std::string user, uint64_t session_id) override {
    store_->Release(std::move(user), session_id);
  }
  ClusterStore::Stats stats() const override { return store_->stats(); }
  void Stop() override { store_->Stop(); }

 private:
  const std::unique_ptr<ClusterStore> store_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClusterLink>> StartClusterStoreLink(
    ClusterStore::Options options, ClusterStore::Listener listener) {
  absl::StatusOr<std::unique_ptr<ClusterStore>> store =
      ClusterStore::Start(std::move(options), std::move(listener));
  if (!store.ok()) return store.status();
  return std::unique_ptr<ClusterLink>(
      std::make_unique<ClusterStoreLink>(*std::move(store)));
}

}  // namespace pcfs
