#include <algorithm>
#include <array>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/base/mutex_lock.h"
#include "core/index/registry.h"
#include "core/index/registry_internal.h"

// Publications: who publishes what (the authority), the name shards derived
// from it, and Locate, which picks an active publisher of a name.

namespace pcfs {

std::optional<FileMeta> Registry::Impl::MetaOf(absl::string_view user,
                                               absl::string_view name) const {
  PublicationShard& shard = PublicationShardOf(user);
  MutexLock lock(&shard.mu);
  auto user_it = shard.by_user.find(user);
  if (user_it == shard.by_user.end()) return std::nullopt;
  auto name_it = user_it->second.find(name);
  if (name_it == user_it->second.end() || !name_it->second.live) {
    return std::nullopt;
  }
  return name_it->second.meta;
}
void Registry::Impl::SetPublisher(absl::string_view name,
                                  absl::string_view user,
                                  bool publishes) const {
  NameShard& shard = NameShardOf(name);
  MutexLock lock(&shard.mu);
  uint32_t id = shard.index.Find(name);
  if (publishes) {
    const bool is_new = id == SearchIndex::kNoId;
    if (is_new) {
      id = shard.index.Add(name);
      if (id >= shard.publishers.size()) shard.publishers.resize(id + 1);
    }
    Publishers& publishers = shard.publishers[id];
    if (publishers.Contains(user)) return;
    if (!is_new && publishers.empty()) --shard.dormant;  // revived
    publishers.Add(user);
    return;
  }
  if (id == SearchIndex::kNoId) return;
  Publishers& publishers = shard.publishers[id];
  if (!publishers.Remove(user)) return;
  if (publishers.empty()) {
    ++shard.dormant;
    if (TooManyDormant(shard.dormant, shard.index.size() - shard.dormant)) {
      shard.SweepDormant();
    }
  }
}
void Registry::Impl::SyncPublisher(absl::string_view user,
                                   absl::string_view name,
                                   bool publishes) const {
  for (;;) {
    SetPublisher(name, user, publishes);
    const bool actual = MetaOf(user, name).has_value();
    if (actual == publishes) return;
    publishes = actual;
  }
}
// ---- Publications -----------------------------------------------------

bool Registry::Publish(absl::string_view user, absl::string_view name,
                       const FileMeta& meta) {
  PublicationShard& shard = impl_->PublicationShardOf(user);
  bool added = false;
  bool changed = false;
  {
    MutexLock lock(&shard.mu);
    auto user_it = shard.by_user.find(user);
    if (user_it == shard.by_user.end()) {
      user_it = shard.by_user.try_emplace(std::string(user)).first;
    }
    PublicationsOfUser& names = user_it->second;
    auto name_it = names.find(name);
    if (name_it == names.end()) {
      name_it = names.try_emplace(std::string(name)).first;
    } else if (!name_it->second.live) {
      --shard.dormant;  // revived: the key and the slot are reused
    }
    Publication& publication = name_it->second;
    if (!publication.live) {
      publication.live = true;
      publication.meta = meta;
      ++shard.live;
      added = changed = true;
      impl_->publication_count.fetch_add(1, std::memory_order_relaxed);
    } else if (publication.meta != meta) {
      publication.meta = meta;
      changed = true;
    }
  }
  if (added) impl_->SyncPublisher(user, name, /*publishes=*/true);
  return changed;
}

absl::Status Registry::Unpublish(absl::string_view user,
                                 absl::string_view name) {
  PublicationShard& shard = impl_->PublicationShardOf(user);
  {
    MutexLock lock(&shard.mu);
    auto user_it = shard.by_user.find(user);
    Publication* publication = nullptr;
    if (user_it != shard.by_user.end()) {
      auto name_it = user_it->second.find(name);
      if (name_it != user_it->second.end() && name_it->second.live) {
        publication = &name_it->second;
      }
    }
    if (publication == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("user ", user, " does not publish \"", name, "\""));
    }
    publication->live = false;
    --shard.live;
    ++shard.dormant;
    impl_->publication_count.fetch_sub(1, std::memory_order_relaxed);
    if (TooManyDormant(shard.dormant, shard.live)) shard.SweepDormant();
  }
  impl_->SyncPublisher(user, name, /*publishes=*/false);
  return absl::OkStatus();
}

std::optional<FileMeta> Registry::PublicationOf(absl::string_view user,
                                                absl::string_view name) const {
  PublicationShard& shard = impl_->PublicationShardOf(user);
  MutexLock lock(&shard.mu);
  auto user_it = shard.by_user.find(user);
  if (user_it == shard.by_user.end()) return std::nullopt;
  auto name_it = user_it->second.find(name);
  if (name_it == user_it->second.end() || !name_it->second.live) {
    return std::nullopt;
  }
  return name_it->second.meta;
}

std::vector<std::string> Registry::PublishedBy(absl::string_view user) const {
  PublicationShard& shard = impl_->PublicationShardOf(user);
  std::vector<std::string> names;
  {
    MutexLock lock(&shard.mu);
    auto user_it = shard.by_user.find(user);
    if (user_it == shard.by_user.end()) return names;
    names.reserve(user_it->second.size());
    for (const auto& [name, publication] : user_it->second) {
      if (publication.live) names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<Holder> Registry::Locate(absl::string_view name,
                                       absl::string_view caller,
                                       absl::Time now) const {
  // Under the name's lock, a uniform random sample of the publishers other
  // than the caller (reservoir sampling), copied inline.
  std::array<UserName, kLocateSample> sample;
  size_t sampled = 0;
  size_t candidates = 0;
  std::mt19937_64& random = ThreadRandom();
  {
    NameShard& shard = impl_->NameShardOf(name);
    MutexLock lock(&shard.mu);
    const Publishers* publishers = shard.Find(name);
    if (publishers == nullptr) return std::nullopt;
    for (const std::string& user : publishers->live()) {
      if (user == caller) continue;
      ++candidates;
      if (sampled < sample.size()) {
        sample[sampled++] = UserName(user);
      } else if (const size_t slot = random() % candidates;
                 slot < sample.size()) {
        sample[slot] = UserName(user);
      }
    }
  }
  // Trying a random sample in random order picks uniformly among its active
  // members, and by symmetry among all the active publishers.
  std::shuffle(sample.begin(), sample.begin() + sampled, random);
  for (size_t i = 0; i < sampled; ++i) {
    if (std::optional<Holder> holder = HolderIfServing(sample[i], name, now)) {
      return holder;
    }
  }
  if (candidates <= sampled) return std::nullopt;
  return LocateAmongAll(name, caller, now);
}

std::optional<Holder> Registry::LocateAmongAll(absl::string_view name,
                                               absl::string_view caller,
                                               absl::Time now) const {
  // Rare (no active holder among a sample of a popular name's publishers),
  // so a copy of them all on the heap is fine here.
  std::vector<UserName> publishers;
  {
    NameShard& shard = impl_->NameShardOf(name);
    MutexLock lock(&shard.mu);
    const Publishers* all = shard.Find(name);
    if (all == nullptr) return std::nullopt;
    for (const std::string& user : all->live()) {
      if (user != caller) publishers.emplace_back(user);
    }
  }
  std::shuffle(publishers.begin(), publishers.end(), ThreadRandom());
  for (const UserName& user : publishers) {
    if (std::optional<Holder> holder = HolderIfServing(user, name, now)) {
      return holder;
    }
  }
  return std::nullopt;
}

std::optional<Holder> Registry::HolderIfServing(const UserName& user,
                                                absl::string_view name,
                                                absl::Time now) const {
  std::optional<Impl::FileServer> server = impl_->LiveFileServer(user, now);
  // A session with file port 0 (a one-shot command) serves nothing.
  if (!server.has_value() || server->endpoint.port == 0) return std::nullopt;
  std::optional<FileMeta> meta = impl_->MetaOf(user, name);
  if (!meta.has_value()) return std::nullopt;  // unpublished meanwhile
  return Holder{user, server->endpoint, *meta, server->session_id};
}

size_t Registry::publication_count() const {
  return impl_->publication_count.load(std::memory_order_relaxed);
}

void Registry::ForEachPublication(
    absl::FunctionRef<void(absl::string_view user, absl::string_view name,
                           const FileMeta& meta)>
        fn) const {
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    PublicationShard& shard = impl_->publications[i];
    MutexLock lock(&shard.mu);
    for (const auto& [user, names] : shard.by_user) {
      for (const auto& [name, publication] : names) {
        if (publication.live) fn(user, name, publication.meta);
      }
    }
  }
}

}  // namespace pcfs
