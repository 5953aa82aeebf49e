#include <algorithm>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "core/base/mutex_lock.h"
#include "daemon/handlers.h"

// What logins keep between requests: the credentials and derived
// verifiers, and the login nonces used lately.

namespace pcfs {

// ---- CredentialStore ------------------------------------------------------

CredentialStore::CredentialStore(CredentialTable table, SaltSecret secret)
    : salt_secret_(secret),
      table_(std::make_shared<const CredentialTable>(std::move(table))) {}

absl::StatusOr<std::unique_ptr<CredentialStore>> CredentialStore::Create(
    CredentialTable table) {
  absl::StatusOr<SaltSecret> secret = MakeSaltSecret();
  if (!secret.ok()) return secret.status();
  return std::unique_ptr<CredentialStore>(
      new CredentialStore(std::move(table), *secret));
}

std::shared_ptr<const CredentialTable> CredentialStore::Get() const {
  MutexLock lock(&mu_);
  return table_;
}

void CredentialStore::Replace(CredentialTable table) {
  auto fresh = std::make_shared<const CredentialTable>(std::move(table));
  MutexLock lock(&mu_);
  table_ = std::move(fresh);
  derived_.clear();
}

absl::StatusOr<ScramVerifier> CredentialStore::VerifierFor(
    absl::string_view user) const {
  std::shared_ptr<const CredentialTable> table;
  {
    MutexLock lock(&mu_);
    auto it = derived_.find(user);
    if (it != derived_.end()) return it->second;
    table = table_;
  }
  const Credential* credential = table->Find(user);
  if (credential == nullptr) return MockVerifierFor(user, salt_secret_);
  if (credential->is_verifier) return credential->verifier;
  // A PBKDF2, once per user and table: outside the lock.
  absl::StatusOr<ScramVerifier> verifier =
      ServerVerifierFor(user, *credential, salt_secret_);
  if (!verifier.ok()) return verifier.status();
  MutexLock lock(&mu_);
  if (table == table_) derived_.emplace(std::string(user), *verifier);
  return verifier;
}

// ---- UsedLoginNonces ------------------------------------------------------

bool UsedLoginNonces::Insert(const Nonce& nonce, absl::Time until,
                             absl::Time now) {
  MutexLock lock(&mu_);
  Purge(now);
  auto [it, inserted] = until_.try_emplace(nonce, until);
  if (!inserted) it->second = std::max(it->second, until);
  return !inserted;
}

bool UsedLoginNonces::Contains(const Nonce& nonce, absl::Time now) const {
  MutexLock lock(&mu_);
  auto it = until_.find(nonce);
  return it != until_.end() && now < it->second;
}

void UsedLoginNonces::Purge(absl::Time now) {
  // At most once a second, drop what has expired: the map holds only the
  // logins of the last few seconds.
  if (now < next_purge_) return;
  next_purge_ = now + absl::Seconds(1);
  absl::erase_if(until_,
                 [&](const auto& entry) { return entry.second <= now; });
}

}  // namespace pcfs
