// StartClusterStoreLink: a ClusterStore behind the ClusterLink interface;
// ClaimOf.
#include <memory>
#include <string>
#include <utility>

#include "core/auth/ticket.h"
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
  void Claim(ClusterSession session, ClusterStore::ClaimDone done) override {
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

ClusterSession ClaimOf(const ClusterLink& link,
                       const Registry::LocalSession& session,
                       const SessionKey& key) {
  ClusterSession claim;
  claim.user = std::string(session.user.view());
  claim.daemon_id = link.daemon_id();
  claim.session_id = session.id;
  claim.file_server = session.file_server;
  claim.key_pin = session.key_pin;
  claim.ticket_key = TicketKeyFor(key).bytes;
  return claim;
}

absl::StatusOr<std::unique_ptr<ClusterLink>> StartClusterStoreLink(
    ClusterStore::Options options, ClusterStore::Listener listener) {
  absl::StatusOr<std::unique_ptr<ClusterStore>> store =
      ClusterStore::Start(std::move(options), std::move(listener));
  if (!store.ok()) return store.status();
  return std::unique_ptr<ClusterLink>(
      std::make_unique<ClusterStoreLink>(*std::move(store)));
}

}  // namespace pcfs
