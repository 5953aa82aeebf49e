#include "core/index/search_index.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "core/index/posting_list.h"

// Layout.
//   names     the bytes of every name, once, in one arena; a name's id
//             indexes `slots` (offset and length in the arena). Ids of
//             removed names are reused, newest first.
//   ids       the set of live ids, hashed and compared by the names they
//             stand for, so that a name finds its id without a second copy
//             of the name.
//   postings  trigram -> the index, in `lists`, of the PostingList of the
//             ids whose name holds it, in an ordered map so that the
//             trigrams starting with one or two given bytes form a range.
//   lists     the PostingLists (32 bytes each, a short one with its ids
//             inline) in chunks that never move, so that the map's slots
//             are 8 bytes: most trigrams of a large index are those of
//             the random parts of names, with a few ids each, and there
//             the map's slot and the list are most of their cost.
//
// Trigrams are taken over the name followed by two end marks, one starting
// at each byte: "ab" gives "ab$" and "b$$". A byte is one of 256 symbols and
// the end mark a 257th, so a trigram is three 9-bit symbols in a uint32 and
// the ones that start with bytes `c` or `cd` are one key range. Queries of
// 3+ bytes only look up trigrams of real bytes.

namespace pcfs {
namespace {

// ---- Trigram keys ---------------------------------------------------------

constexpr uint32_t kSymbolBits = 9;
constexpr uint32_t kEndMark = 256;

uint32_t Symbol(char c) { return static_cast<unsigned char>(c); }

uint32_t Key(uint32_t a, uint32_t b, uint32_t c) {
  return (a << (2 * kSymbolBits)) | (b << kSymbolBits) | c;
}

using Keys = absl::InlinedVector<uint32_t, 64>;

void SortUnique(Keys& keys) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
}

// The distinct trigrams of `name` padded with two end marks: those a name
// is filed under.
Keys NameTrigrams(absl::string_view name) {
  Keys keys;
  keys.reserve(name.size());
  auto at = [&](size_t i) {
    return i < name.size() ? Symbol(name[i]) : kEndMark;
  };
  for (size_t i = 0; i < name.size(); ++i) {
    keys.push_back(Key(at(i), at(i + 1), at(i + 2)));
  }
  SortUnique(keys);
  return keys;
}

// Enough of a long pattern's trigrams to find a rare one; any subset gives
// a superset of the matches, and every candidate is checked anyway.
constexpr size_t kMaxQueryTrigrams = 16;

// The distinct trigrams of a pattern of 3+ bytes (no end marks), at most
// kMaxQueryTrigrams of them, spread evenly over the pattern.
Keys PatternTrigrams(absl::string_view pattern) {
  const size_t count = pattern.size() - 2;
  const size_t taken = std::min(count, kMaxQueryTrigrams);
  Keys keys;
  for (size_t k = 0; k < taken; ++k) {
    const size_t i = taken == 1 ? 0 : k * (count - 1) / (taken - 1);
    keys.push_back(Key(Symbol(pattern[i]), Symbol(pattern[i + 1]),
                       Symbol(pattern[i + 2])));
  }
  SortUnique(keys);
  return keys;
}

// ---- Names ------------------------------------------------------------------

// Every name's bytes, once, by id: in one arena, each name as its length
// (a varint: one byte below 128) and its bytes, found by a 4-byte offset
// per id (an offset and a length per id would cost 8).
class NameTable {
 public:
  static constexpr uint32_t kFree = std::numeric_limits<uint32_t>::max();

  absl::string_view Get(uint32_t id) const {
    const uint8_t* p = At(offsets_[id]);
    const uint32_t length = GetVarint(p);
    return absl::string_view(reinterpret_cast<const char*>(p), length);
  }
  bool live(uint32_t id) const { return offsets_[id] != kFree; }
  void PrefetchSlot(uint32_t id) const { __builtin_prefetch(&offsets_[id]); }
  // The first two cache lines of the name: all of a name of up to 62
  // bytes (its length is read only with the name).
  // REQUIRES: live(id).
  void PrefetchBytes(uint32_t id) const {
    const uint8_t* bytes = At(offsets_[id]);
    __builtin_prefetch(bytes);
    __builtin_prefetch(bytes + 63);
  }
  // One past the largest id ever given.
  uint32_t id_limit() const { return static_cast<uint32_t>(offsets_.size()); }

  // Stores `name` and returns its id: the newest freed one, or a new one.
  uint32_t Store(absl::string_view name);
  // Forgets the name of `id` and frees the id.
  void Free(uint32_t id);

 private:
  const uint8_t* At(uint32_t offset) const {
    return reinterpret_cast<const uint8_t*>(arena_.data()) + offset;
  }
  // The bytes the name at `offset` takes: its length's and its own.
  size_t StoredSize(uint32_t offset) const {
    const uint8_t* p = At(offset);
    const uint32_t length = GetVarint(p);
    return VarintSize(length) + length;
  }
  // Rewrites the arena without the bytes of freed names once those are
  // the larger part: amortized O(1) per freed byte. Ids stay.
  void MaybeCompact();

  // Grown by an eighth at a time (reserve), not doubled as a std::string
  // would be: the slack stays under 1/8 of the bytes, at an amortized
  // copy of 8 bytes per byte stored.
  std::vector<char> arena_;
  size_t garbage_ = 0;             // bytes of `arena_` no live name uses
  std::vector<uint32_t> offsets_;  // by id; kFree for a free id
  std::vector<uint32_t> free_ids_;
};

uint32_t NameTable::Store(absl::string_view name) {
  uint32_t id;
  if (free_ids_.empty()) {
    id = static_cast<uint32_t>(offsets_.size());
    offsets_.push_back(kFree);
  } else {
    id = free_ids_.back();
    free_ids_.pop_back();
  }
  uint8_t length[5];
  const size_t length_size = static_cast<size_t>(
      PutVarint(static_cast<uint32_t>(name.size()), length) - length);
  const size_t needed = arena_.size() + length_size + name.size();
  if (needed > arena_.capacity()) {
    constexpr size_t kMinGrowth = 4096;
    arena_.reserve(needed + std::max(kMinGrowth, arena_.size() / 8));
  }
  offsets_[id] = static_cast<uint32_t>(arena_.size());
  arena_.insert(arena_.end(), length, length + length_size);
  arena_.insert(arena_.end(), name.begin(), name.end());
  return id;
}

void NameTable::Free(uint32_t id) {
  garbage_ += StoredSize(offsets_[id]);
  offsets_[id] = kFree;
  free_ids_.push_back(id);
  MaybeCompact();
}

void NameTable::MaybeCompact() {
  constexpr size_t kMinGarbage = 4096;
  if (garbage_ < kMinGarbage || garbage_ * 2 < arena_.size()) return;
  std::vector<char> compact;
  compact.reserve(arena_.size() - garbage_);
  for (uint32_t& offset : offsets_) {
    if (offset == kFree) continue;
    const auto begin = arena_.begin() + offset;
    const size_t size = StoredSize(offset);
    offset = static_cast<uint32_t>(compact.size());
    compact.insert(compact.end(), begin, begin + static_cast<ptrdiff_t>(size));
  }
  arena_ = std::move(compact);
  garbage_ = 0;
}

// PostingLists by a 4-byte index, in chunks that never move (a list's
// inline block is what a cursor reads). Indexes of freed lists are reused.
class PostingTable {
 public:
  PostingList& operator[](uint32_t index) {
    return chunks_[index / kChunk][index % kChunk];
  }
  const PostingList& operator[](uint32_t index) const {
    return chunks_[index / kChunk][index % kChunk];
  }
  // The index of an empty list.
  uint32_t Make() {
    if (!free_.empty()) {
      const uint32_t index = free_.back();
      free_.pop_back();
      return index;
    }
    if (next_ % kChunk == 0) {
      chunks_.push_back(std::make_unique<PostingList[]>(kChunk));
    }
    return next_++;
  }
  // Empties list `index` and frees the index.
  void Free(uint32_t index) {
    (*this)[index].Clear();
    free_.push_back(index);
  }

 private:
  static constexpr uint32_t kChunk = 1024;
  std::vector<std::unique_ptr<PostingList[]>> chunks_;
  std::vector<uint32_t> free_;
  uint32_t next_ = 0;  // indexes ever handed out
};

// Hashes and compares ids by their names, so that the set of ids can be
// searched with a name.
struct IdHash {
  using is_transparent = void;
  const NameTable* names;
  size_t operator()(uint32_t id) const { return (*this)(names->Get(id)); }
  size_t operator()(absl::string_view name) const {
    return absl::Hash<absl::string_view>()(name);
  }
};

struct IdEq {
  using is_transparent = void;
  const NameTable* names;
  bool operator()(uint32_t a, uint32_t b) const { return a == b; }
  bool operator()(uint32_t id, absl::string_view name) const {
    return names->Get(id) == name;
  }
  bool operator()(absl::string_view name, uint32_t id) const {
    return names->Get(id) == name;
  }
};

// Offers the names of candidate ids, given in increasing order, to the fn
// of a ForEachMatchFrom walk, prefetching a batch's slots and bytes before
// reading any (the ids of one list are spread over the whole table, and one
// at a time each would wait for memory alone); counts
// the candidates against the walk's budget and keeps where the next walk
// must start: the id fn refused, else the first id not yet ruled out.
class OrderedWalker {
 public:
  using Fn = absl::FunctionRef<bool(uint32_t, absl::string_view)>;
  // With `check`, only names containing `pattern` go to fn.
  OrderedWalker(const NameTable& names, absl::string_view pattern, bool check,
                size_t max_examined, Fn fn)
      : names_(names),
        pattern_(pattern),
        check_(check),
        max_examined_(max_examined),
        fn_(fn) {}
  OrderedWalker(const OrderedWalker&) = delete;
  OrderedWalker& operator=(const OrderedWalker&) = delete;

  // Examines candidate `id` (greater than every id before it). Returns
  // false when the walk must stop: fn refused a name or the budget is spent.
  bool Offer(uint32_t id) {
    batch_[size_++] = id;
    if (size_ == kBatch) Flush();
    return Pass(id);
  }
  // Counts `id` as examined and ruled out (a free slot of the name table).
  bool Pass(uint32_t id) {
    ++examined_;
    frontier_ = id + 1;
    return !refused_ && examined_ < max_examined_;
  }
  // Rules out the ids below `id` without examining them.
  void SkipTo(uint32_t id) { frontier_ = std::max(frontier_, id); }
  // Ends the walk; `exhausted` says that no candidate remains after those
  // examined.
  SearchIndex::WalkEnd Finish(bool exhausted) {
    Flush();
    SearchIndex::WalkEnd end;
    end.examined = examined_;
    if (refused_) {
      end.next_id = refused_id_;
    } else if (exhausted) {
      end.done = true;
    } else {
      end.next_id = frontier_;
    }
    return end;
  }

 private:
  static constexpr size_t kBatch = 32;

  void Flush() {
    for (size_t i = 0; i < size_; ++i) names_.PrefetchSlot(batch_[i]);
    for (size_t i = 0; i < size_; ++i) names_.PrefetchBytes(batch_[i]);
    for (size_t i = 0; i < size_ && !refused_; ++i) {
      const absl::string_view name = names_.Get(batch_[i]);
      if (check_ && !absl::StrContains(name, pattern_)) continue;
      if (!fn_(batch_[i], name)) {
        refused_ = true;
        refused_id_ = batch_[i];
      }
    }
    size_ = 0;
  }

  const NameTable& names_;
  const absl::string_view pattern_;
  const bool check_;
  const size_t max_examined_;
  const Fn fn_;
  uint32_t batch_[kBatch];
  size_t size_ = 0;
  size_t examined_ = 0;
  uint32_t frontier_ = 0;
  bool refused_ = false;
  uint32_t refused_id_ = 0;
};

// A filter list is worth walking beside the rarest one while it is at most
// this many times longer; past that, checking the candidates is cheaper.
constexpr uint32_t kMaxFilterRatio = 16;
// A 1-2 byte pattern's walk merges its trigram lists, rather than scan
// the names, only when there are at most this many lists (each is sought
// on every walk) and their ids are at most 1/kMinMergeSparsity of the
// names (a merge pays for each id of each list; a scan for each name).
constexpr size_t kMaxMergeLists = 64;
constexpr size_t kMinMergeSparsity = 4;

}  // namespace

struct SearchIndex::Impl {
  Impl() : ids(0, IdHash{&names}, IdEq{&names}) {}

  using Postings = absl::btree_map<uint32_t, uint32_t>;
  using PostingsRange =
      std::pair<Postings::const_iterator, Postings::const_iterator>;
  // The lists of the trigrams that start with a 1- or 2-byte pattern.
  PostingsRange ListsStartingWith(absl::string_view pattern) const;

  // The walks of ForEachMatchFrom: every name (an empty pattern, or a
  // short one whose lists are too many or too dense), a 1-2 byte pattern's
  // lists, a 3+ byte pattern's rarest trigrams.
  SearchIndex::WalkEnd WalkScan(uint32_t first_id, OrderedWalker& walker) const;
  SearchIndex::WalkEnd WalkShort(absl::string_view pattern, uint32_t first_id,
                                 size_t max_examined,
                                 OrderedWalker::Fn fn) const;
  SearchIndex::WalkEnd WalkLong(absl::string_view pattern, uint32_t first_id,
                                size_t max_examined,
                                OrderedWalker::Fn fn) const;

  NameTable names;
  absl::flat_hash_set<uint32_t, IdHash, IdEq> ids;
  Postings postings;  // trigram -> index in `lists`
  PostingTable lists;
};

SearchIndex::Impl::PostingsRange SearchIndex::Impl::ListsStartingWith(
    absl::string_view pattern) const {
  const uint32_t first = Symbol(pattern[0]);
  uint32_t lo = Key(first, 0, 0);
  uint32_t hi = Key(first + 1, 0, 0);
  if (pattern.size() == 2) {
    lo = Key(first, Symbol(pattern[1]), 0);
    hi = Key(first, Symbol(pattern[1]) + 1, 0);
  }
  return {postings.lower_bound(lo), postings.lower_bound(hi)};
}

// Every id slot from first_id on is a candidate, free ones included (they
// cost a look too); the walker checks the names against the pattern.
SearchIndex::WalkEnd SearchIndex::Impl::WalkScan(uint32_t first_id,
                                                 OrderedWalker& walker) const {
  for (uint32_t id = first_id; id < names.id_limit(); ++id) {
    const bool go_on = names.live(id) ? walker.Offer(id) : walker.Pass(id);
    if (!go_on) return walker.Finish(id + 1 == names.id_limit());
  }
  return walker.Finish(/*exhausted=*/true);
}

// A pattern of 1 or 2 bytes is in a name iff some trigram of the padded
// name starts with it: the lists of a key range, walked in id order from
// first_id. One list is walked as it is; several are merged (each id once)
// when few and sparse; otherwise the names are scanned.
SearchIndex::WalkEnd SearchIndex::Impl::WalkShort(absl::string_view pattern,
                                                  uint32_t first_id,
                                                  size_t max_examined,
                                                  OrderedWalker::Fn fn) const {
  const auto [begin, end] = ListsStartingWith(pattern);
  size_t total = 0;
  size_t count = 0;
  for (auto it = begin; it != end && count <= kMaxMergeLists; ++it, ++count) {
    total += lists[it->second].size();
  }
  if (count == 0) return SearchIndex::WalkEnd{.done = true};
  const bool dense = total * kMinMergeSparsity > ids.size();
  if (count > kMaxMergeLists || (count > 1 && dense)) {
    OrderedWalker scan(names, pattern, /*check=*/true, max_examined, fn);
    return WalkScan(first_id, scan);
  }
  OrderedWalker walker(names, pattern, /*check=*/false, max_examined, fn);
  // A min-heap of (next id, list) over the lists not yet exhausted.
  absl::InlinedVector<PostingList::Cursor, kMaxMergeLists> cursors;
  absl::InlinedVector<std::pair<uint32_t, size_t>, kMaxMergeLists> heap;
  for (auto it = begin; it != end; ++it) {
    cursors.emplace_back(lists[it->second]);
    cursors.back().SeekAtLeast(first_id);
    if (!cursors.back().done()) {
      heap.emplace_back(cursors.back().id(), cursors.size() - 1);
    }
  }
  const auto later = std::greater<std::pair<uint32_t, size_t>>();
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    const uint32_t id = heap.front().first;
    // Moves every list at `id` on, so that the id is offered once.
    while (!heap.empty() && heap.front().first == id) {
      std::pop_heap(heap.begin(), heap.end(), later);
      PostingList::Cursor& cursor = cursors[heap.back().second];
      cursor.Next();
      if (cursor.done()) {
        heap.pop_back();
      } else {
        heap.back().first = cursor.id();
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    if (!walker.Offer(id)) return walker.Finish(heap.empty());
  }
  return walker.Finish(/*exhausted=*/true);
}

// Walks the rarest trigram's list from first_id on, leapfrogging with the
// lists not much longer than it, and checks each id they all hold for the
// substring (a 3-byte pattern is its own trigram and needs no check). Each
// turn of the leapfrog examines one candidate, the driver's current id.
SearchIndex::WalkEnd SearchIndex::Impl::WalkLong(absl::string_view pattern,
                                                 uint32_t first_id,
                                                 size_t max_examined,
                                                 OrderedWalker::Fn fn) const {
  absl::InlinedVector<const PostingList*, kMaxQueryTrigrams> found;
  for (uint32_t key : PatternTrigrams(pattern)) {
    auto it = postings.find(key);
    if (it == postings.end()) return SearchIndex::WalkEnd{.done = true};
    found.push_back(&lists[it->second]);
  }
  std::sort(found.begin(), found.end(),
            [](const PostingList* a, const PostingList* b) {
              return a->size() < b->size();
            });
  PostingList::Cursor driver(*found[0]);
  driver.SeekAtLeast(first_id);
  absl::InlinedVector<PostingList::Cursor, kMaxQueryTrigrams> filters;
  for (size_t i = 1; i < found.size(); ++i) {
    if (found[i]->size() / kMaxFilterRatio > found[0]->size()) break;
    filters.emplace_back(*found[i]);
  }
  OrderedWalker walker(names, pattern, /*check=*/pattern.size() > 3,
                       max_examined, fn);
  while (!driver.done()) {
    const uint32_t id = driver.id();
    bool agreed = true;
    for (PostingList::Cursor& filter : filters) {
      filter.SeekAtLeast(id);
      if (filter.done()) {
        walker.Pass(id);
        return walker.Finish(/*exhausted=*/true);
      }
      if (filter.id() != id) {
        driver.SeekAtLeast(filter.id());
        agreed = false;
        break;
      }
    }
    if (!agreed) {
      const bool go_on = walker.Pass(id);
      if (!driver.done()) walker.SkipTo(driver.id());
      if (!go_on) return walker.Finish(driver.done());
      continue;
    }
    driver.Next();
    if (!walker.Offer(id)) return walker.Finish(driver.done());
  }
  return walker.Finish(/*exhausted=*/true);
}

SearchIndex::SearchIndex() : impl_(std::make_unique<Impl>()) {}

SearchIndex::~SearchIndex() = default;

uint32_t SearchIndex::Add(absl::string_view name) {
  if (auto it = impl_->ids.find(name); it != impl_->ids.end()) return *it;
  const uint32_t id = impl_->names.Store(name);
  impl_->ids.insert(id);
  // Every list is found (and prefetched) before any changes: the lists lie
  // all over memory, and changed one at a time each would wait for memory
  // alone. (Lists never move, so the pointers stay good.)
  absl::InlinedVector<PostingList*, 64> lists;
  for (uint32_t key : NameTrigrams(name)) {
    auto [it, fresh] = impl_->postings.try_emplace(key, 0);
    if (fresh) it->second = impl_->lists.Make();
    PostingList* list = &impl_->lists[it->second];
    __builtin_prefetch(list);
    lists.push_back(list);
  }
  for (PostingList* list : lists) list->Insert(id);
  return id;
}

uint32_t SearchIndex::Find(absl::string_view name) const {
  auto it = impl_->ids.find(name);
  return it == impl_->ids.end() ? kNoId : *it;
}

bool SearchIndex::Contains(uint32_t id) const {
  return id < impl_->names.id_limit() && impl_->names.live(id);
}

absl::string_view SearchIndex::NameOf(uint32_t id) const {
  return impl_->names.Get(id);
}

uint32_t SearchIndex::id_limit() const { return impl_->names.id_limit(); }

void SearchIndex::Remove(absl::string_view name) {
  auto it = impl_->ids.find(name);
  if (it == impl_->ids.end()) return;
  const uint32_t id = *it;
  // As in Add: find and prefetch every list first, then change them.
  const Keys keys = NameTrigrams(impl_->names.Get(id));
  absl::InlinedVector<uint32_t, 64> indexes;
  for (uint32_t key : keys) {
    const uint32_t index = impl_->postings.find(key)->second;
    __builtin_prefetch(&impl_->lists[index]);
    indexes.push_back(index);
  }
  for (size_t k = 0; k < keys.size(); ++k) {
    PostingList& list = impl_->lists[indexes[k]];
    list.Erase(id);
    if (list.empty()) {
      impl_->lists.Free(indexes[k]);
      impl_->postings.erase(keys[k]);
    }
  }
  impl_->ids.erase(it);
  impl_->names.Free(id);
}

SearchIndex::WalkEnd SearchIndex::ForEachMatchFrom(
    absl::string_view pattern, uint32_t first_id, size_t max_examined,
    absl::FunctionRef<bool(uint32_t id, absl::string_view name)> fn) const {
  if (max_examined == 0) return WalkEnd{.next_id = first_id};
  if (pattern.empty()) {
    OrderedWalker walker(impl_->names, pattern, /*check=*/false, max_examined,
                         fn);
    return impl_->WalkScan(first_id, walker);
  }
  if (pattern.size() < 3) {
    return impl_->WalkShort(pattern, first_id, max_examined, fn);
  }
  return impl_->WalkLong(pattern, first_id, max_examined, fn);
}

size_t SearchIndex::size() const { return impl_->ids.size(); }

}  // namespace pcfs
