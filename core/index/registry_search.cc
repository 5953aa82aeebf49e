#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/base/mutex_lock.h"
#include "core/index/registry.h"
#include "core/index/registry_internal.h"

// The paged search over published names (Registry::SearchPage): each page
// walks the name shards' SearchIndex in id order within a budget.

namespace pcfs {

namespace registry_internal {

// When `active` does not tell, the publishers it does not hold are appended
// to `unknown`.
Verdict Judge(std::span<const PublisherEntry> publishers,
              const absl::flat_hash_map<uint32_t, bool>& active,
              std::vector<uint32_t>& unknown) {
  const size_t before = unknown.size();
  for (const PublisherEntry& publisher : publishers) {
    auto known = active.find(publisher.user);
    if (known == active.end()) {
      unknown.push_back(publisher.user);
    } else if (known->second) {
      unknown.resize(before);
      return Verdict::kListed;
    }
  }
  return unknown.size() == before ? Verdict::kUnlisted : Verdict::kUnknown;
}

}  // namespace registry_internal

Registry::Impl::ShardWalk Registry::Impl::WalkNameShard(
    size_t shard_index, absl::string_view pattern, uint32_t caller,
    uint32_t first_id, size_t budget,
    const absl::flat_hash_map<uint32_t, bool>& active,
    absl::FunctionRef<bool(absl::string_view)> emit) const {
  NameShard& shard = names[shard_index];
  ShardWalk walk;
  MutexLock lock(&shard.mu);
  walk.end = shard.index.ForEachMatchFrom(
      pattern, first_id, budget,
      // Runs inside ForEachMatchFrom, with the lock taken above held.
      [&](uint32_t id,
          absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
        if (walk.checked > 0 && (walk.checked + 1) * kCheckCost > budget) {
          return false;  // out of budget: the next page starts here
        }
        ++walk.checked;
        const Publishers& publishers = shard.publishers[id];
        if (publishers.Contains(caller)) return true;
        const bool gathering = !walk.unknown.empty();
        const Verdict verdict = Judge(publishers.live(), active, walk.unknown);
        if (gathering || verdict == Verdict::kUnknown) {
          // From the first name it cannot judge on, it emits nothing.
          if (!gathering) walk.unjudged_id = id;
          return walk.unknown.size() < kMaxUnknownPerWalk;
        }
        if (verdict == Verdict::kUnlisted) return true;
        walk.page_full = !emit(name);
        return !walk.page_full;
      });
  return walk;
}

size_t Registry::Impl::LearnLiveness(
    const std::vector<uint32_t>& publishers, absl::Time now,
    absl::flat_hash_map<uint32_t, bool>& active) const {
  size_t lookups = 0;
  for (uint32_t user : publishers) {
    auto [it, inserted] = active.try_emplace(user, false);
    if (inserted) {
      ++lookups;
      it->second = LiveFileServer(users.NameOf(user), now).has_value();
    }
  }
  return lookups;
}

// Walks shard after shard from `from`. Liveness is learnt with no name
// shard lock held (no method holds two locks): a walk that meets a name
// whose publishers' sessions are not known yet emits nothing from there
// on, gathers the unknown publishers of the next few names, and stops; the
// sessions are looked up, and the next walk starts at that name again.
absl::StatusOr<std::optional<Registry::SearchCursor>> Registry::SearchPage(
    absl::string_view pattern, absl::string_view caller, absl::Time now,
    SearchCursor from, size_t budget,
    absl::FunctionRef<bool(absl::string_view name)> emit) const {
  if (from.shard >= impl_->name_shard_count) {
    return absl::OutOfRangeError(absl::StrCat("search cursor names shard ",
                                              from.shard, " of ",
                                              impl_->name_shard_count));
  }
  absl::flat_hash_map<uint32_t, bool> active;
  // A caller who never published has no id, and matches no publisher.
  const uint32_t caller_id = impl_->users.Find(caller);
  SearchCursor at = from;
  size_t left = budget;
  // The last walk stopped at a name whose publishers are now known: the
  // next one must take it, budget or not, so that every page moves on.
  bool learnt = false;
  while (at.shard < impl_->name_shard_count) {
    if (left == 0 && !learnt) return at;
    Impl::ShardWalk walk =
        impl_->WalkNameShard(at.shard, pattern, caller_id, at.id,
                             std::max<size_t>(left, 1), active, emit);
    const size_t spent = 1 + walk.end.examined + walk.checked * kCheckCost;
    left -= std::min(left, spent);
    learnt = !walk.unknown.empty();
    if (walk.page_full) return SearchCursor{at.shard, walk.end.next_id};
    if (learnt) {
      const size_t lookups = impl_->LearnLiveness(walk.unknown, now, active);
      left -= std::min(left, lookups * kCheckCost);
      at.id = walk.unjudged_id;
    } else if (walk.end.done) {
      at = SearchCursor{at.shard + 1, 0};
    } else {
      at.id = walk.end.next_id;
    }
  }
  return std::nullopt;
}

uint16_t Registry::search_epoch() const { return impl_->search_epoch; }

}  // namespace pcfs
