#include <algorithm>
#include <array>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/base/mutex_lock.h"
#include "core/index/registry.h"
#include "core/index/registry_internal.h"

// Publications: who publishes what (the authority), the name shards derived
// from it, and Locate/LocateHolders, which pick active publishers of a
// name.

namespace pcfs {

bool Registry::Impl::PublishesAt(uint32_t user, uint32_t ref) const {
  NameShard& shard = names[ShardOfRef(ref, name_shard_bits)];
  MutexLock lock(&shard.mu);
  const uint32_t id = IdOfRef(ref, name_shard_bits);
  return shard.index.Contains(id) && shard.publishers[id].Contains(user);
}

void Registry::Impl::SyncUserSide(uint32_t user, uint32_t ref,
                                  bool publishes) const {
  PublicationShard& shard = PublicationShardOf(user);
  for (;;) {
    {
      MutexLock lock(&shard.mu);
      if (publishes) {
        shard.by_user[user].insert(ref);
      } else if (auto it = shard.by_user.find(user);
                 it != shard.by_user.end()) {
        it->second.erase(ref);
      }
    }
    const bool actual = PublishesAt(user, ref);
    if (actual == publishes) return;
    publishes = actual;
  }
}

// ---- Publications -----------------------------------------------------

bool Registry::Publish(absl::string_view user, absl::string_view name,
                       const FileMeta& meta) {
  const uint32_t user_id = impl_->users.Intern(user);
  if (user_id == UserTable::kNoUser) return false;  // 16M users: see Intern
  const size_t shard_index = impl_->NameShardIndex(name);
  NameShard& shard = impl_->names[shard_index];
  uint32_t id;
  {
    MutexLock lock(&shard.mu);
    id = shard.index.Find(name);
    const bool is_new = id == SearchIndex::kNoId;
    if (is_new) {
      id = shard.index.Add(name);
      if (id >= MaxRefIds(impl_->name_shard_bits)) {  // see NameRef
        shard.index.Remove(name);
        return false;
      }
      shard.publishers.Reserve(id + 1);
    }
    Publishers& publishers = shard.publishers[id];
    if (PublisherEntry* entry = publishers.Find(user_id)) {
      if (entry->meta() == meta) return false;
      entry->set_meta(meta);
      return true;
    }
    if (!is_new && publishers.empty()) --shard.dormant;  // revived
    publishers.Add(user_id, meta);
    impl_->publication_count.fetch_add(1, std::memory_order_relaxed);
  }
  impl_->SyncUserSide(user_id, NameRef(shard_index, id, impl_->name_shard_bits),
                      /*publishes=*/true);
  return true;
}

absl::Status Registry::Unpublish(absl::string_view user,
                                 absl::string_view name) {
  const uint32_t user_id = impl_->users.Find(user);
  const size_t shard_index = impl_->NameShardIndex(name);
  NameShard& shard = impl_->names[shard_index];
  uint32_t id;
  {
    MutexLock lock(&shard.mu);
    id = shard.index.Find(name);
    if (user_id == UserTable::kNoUser || id == SearchIndex::kNoId ||
        !shard.publishers[id].Remove(user_id)) {
      return absl::NotFoundError(
          absl::StrCat("user ", user, " does not publish \"", name, "\""));
    }
    impl_->publication_count.fetch_sub(1, std::memory_order_relaxed);
    if (shard.publishers[id].empty()) {
      ++shard.dormant;
      if (TooManyDormant(shard.dormant, shard.index.size() - shard.dormant)) {
        shard.SweepDormant();
      }
    }
  }
  impl_->SyncUserSide(user_id, NameRef(shard_index, id, impl_->name_shard_bits),
                      /*publishes=*/false);
  return absl::OkStatus();
}

std::optional<FileMeta> Registry::PublicationOf(absl::string_view user,
                                                absl::string_view name) const {
  const uint32_t user_id = impl_->users.Find(user);
  if (user_id == UserTable::kNoUser) return std::nullopt;
  NameShard& shard = impl_->names[impl_->NameShardIndex(name)];
  MutexLock lock(&shard.mu);
  Publishers* publishers = shard.Find(name);
  if (publishers == nullptr) return std::nullopt;
  const PublisherEntry* entry = publishers->Find(user_id);
  if (entry == nullptr) return std::nullopt;
  return entry->meta();
}

std::vector<std::string> Registry::PublishedBy(absl::string_view user) const {
  std::vector<std::string> names;
  const uint32_t user_id = impl_->users.Find(user);
  if (user_id == UserTable::kNoUser) return names;
  std::vector<uint32_t> refs;
  {
    PublicationShard& shard = impl_->PublicationShardOf(user_id);
    MutexLock lock(&shard.mu);
    auto it = shard.by_user.find(user_id);
    if (it == shard.by_user.end()) return names;
    refs.assign(it->second.begin(), it->second.end());
  }
  // One lock of each name shard: by shard, then id.
  const uint32_t bits = impl_->name_shard_bits;
  std::sort(refs.begin(), refs.end(), [bits](uint32_t a, uint32_t b) {
    return std::pair(ShardOfRef(a, bits), IdOfRef(a, bits)) <
           std::pair(ShardOfRef(b, bits), IdOfRef(b, bits));
  });
  names.reserve(refs.size());
  for (size_t i = 0; i < refs.size();) {
    NameShard& shard = impl_->names[ShardOfRef(refs[i], bits)];
    MutexLock lock(&shard.mu);
    const size_t shard_index = ShardOfRef(refs[i], bits);
    for (; i < refs.size() && ShardOfRef(refs[i], bits) == shard_index; ++i) {
      // A reference the user side has not dropped yet may name a dormant
      // id, or one another name took since: the name shard decides.
      const uint32_t id = IdOfRef(refs[i], bits);
      if (shard.index.Contains(id) && shard.publishers[id].Contains(user_id)) {
        names.emplace_back(shard.index.NameOf(id));
      }
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::optional<Holder> Registry::Locate(absl::string_view name,
                                       absl::string_view caller,
                                       absl::Time now) const {
  std::array<Holder, 1> holder;
  if (LocateHolders(name, caller, now, holder) == 0) return std::nullopt;
  return holder[0];
}

size_t Registry::LocateHolders(absl::string_view name, absl::string_view caller,
                               absl::Time now, std::span<Holder> out) const {
  if (out.empty()) return 0;
  // Under the name's lock, a uniform random sample of the publishers other
  // than the caller (reservoir sampling), with their metas: 44 bytes each.
  std::array<PublisherEntry, kLocateSample> sample;
  size_t sampled = 0;
  size_t candidates = 0;
  std::mt19937_64& random = ThreadRandom();
  {
    NameShard& shard = impl_->NameShardOf(name);
    MutexLock lock(&shard.mu);
    const Publishers* publishers = shard.Find(name);
    if (publishers == nullptr) return 0;
    for (const PublisherEntry& entry : publishers->live()) {
      if (impl_->users.NameOf(entry.user) == caller) continue;
      ++candidates;
      if (sampled < sample.size()) {
        sample[sampled++] = entry;
      } else if (const size_t slot = random() % candidates;
                 slot < sample.size()) {
        sample[slot] = entry;
      }
    }
  }
  // Trying a random sample in random order picks uniformly among its active
  // members, and by symmetry among all the active publishers. One
  // publisher (the common case) needs no shuffle.
  if (sampled > 1)
    std::shuffle(sample.begin(), sample.begin() + sampled, random);
  const size_t found =
      GatherServing(std::span(sample).first(sampled), now, out);
  if (found > 0 || candidates <= sampled) return found;
  return LocateAmongAll(name, caller, now, out);
}

size_t Registry::GatherServing(
    std::span<const registry_internal::PublisherEntry> publishers,
    absl::Time now, std::span<Holder> out) const {
  size_t found = 0;
  for (const PublisherEntry& entry : publishers) {
    if (found == out.size()) break;
    // The first serving publisher fixes the content (size and root); a
    // download draws on holders of that content only.
    if (found > 0 && entry.meta() != out[0].meta) continue;
    if (std::optional<Holder> holder = HolderIfServing(entry, now)) {
      out[found++] = *holder;
    }
  }
  return found;
}

size_t Registry::LocateAmongAll(absl::string_view name,
                                absl::string_view caller, absl::Time now,
                                std::span<Holder> out) const {
  // Rare (no active holder among a sample of a popular name's publishers),
  // so a copy of them all on the heap is fine here.
  std::vector<PublisherEntry> publishers;
  {
    NameShard& shard = impl_->NameShardOf(name);
    MutexLock lock(&shard.mu);
    const Publishers* all = shard.Find(name);
    if (all == nullptr) return 0;
    for (const PublisherEntry& entry : all->live()) {
      if (impl_->users.NameOf(entry.user) != caller) {
        publishers.push_back(entry);
      }
    }
  }
  std::shuffle(publishers.begin(), publishers.end(), ThreadRandom());
  return GatherServing(publishers, now, out);
}

// The publication was live when the name's lock was held; the session is
// checked now. A publication withdrawn in between may still be named (as
// it may be withdrawn just after any answer): the download then fails and
// the client asks again.
std::optional<Holder> Registry::HolderIfServing(
    const registry_internal::PublisherEntry& publisher, absl::Time now) const {
  const absl::string_view user = impl_->users.NameOf(publisher.user);
  std::optional<Impl::FileServer> server = impl_->LiveFileServer(user, now);
  // A session with file port 0 (a one-shot command) serves nothing.
  if (!server.has_value() || server->endpoint.port == 0) return std::nullopt;
  return Holder{UserName(user), server->endpoint, publisher.meta(),
                server->session_id, server->key_pin};
}

size_t Registry::publication_count() const {
  return impl_->publication_count.load(std::memory_order_relaxed);
}

void Registry::ForEachPublication(
    absl::FunctionRef<void(absl::string_view user, absl::string_view name,
                           const FileMeta& meta)>
        fn) const {
  for (size_t i = 0; i < impl_->name_shard_count; ++i) {
    NameShard& shard = impl_->names[i];
    MutexLock lock(&shard.mu);
    for (uint32_t id = 0; id < shard.index.id_limit(); ++id) {
      if (!shard.index.Contains(id)) continue;
      const absl::string_view name = shard.index.NameOf(id);
      for (const PublisherEntry& entry : shard.publishers[id].live()) {
        fn(impl_->users.NameOf(entry.user), name, entry.meta());
      }
    }
  }
}

}  // namespace pcfs
