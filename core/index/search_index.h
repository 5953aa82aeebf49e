// SearchIndex: the set of distinct published names, answering "which names
// contain this substring". Pure. Not thread-safe: the Registry guards it
// with its own mutex (const methods included).
//
// It is a trigram index: each name has a small integer id, its bytes are
// stored once, and each trigram of the name maps to the sorted ids of the
// names holding it. A query of 3+ bytes intersects the lists of its
// trigrams and checks each candidate for the substring, so its cost follows
// the rarest trigram's list and the number of matches, not the number of
// names. Queries of 1 or 2 bytes join the lists of the trigrams that start
// with them, or scan every name when that would cost more.
//
// Each name has an id from Add until Remove: it never changes while the
// name is present; a removed name's id may go to a name added later.
// ForEachMatchFrom walks the matches in increasing id order, from any id
// on and with a bound on its work, so that a listing can be read in pieces
// that each cost little, resuming where the last one stopped.
//
// Limits: at most 2^32 - 2 names and 4 GiB of name bytes in one index (the
// Registry keeps one index per name shard, each far below both).
#ifndef PCFS_CORE_INDEX_SEARCH_INDEX_H_
#define PCFS_CORE_INDEX_SEARCH_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace pcfs {

class SearchIndex {
 public:
  SearchIndex();
  ~SearchIndex();
  SearchIndex(const SearchIndex&) = delete;
  SearchIndex& operator=(const SearchIndex&) = delete;

  // Returned by Find for a name not in the index.
  static constexpr uint32_t kNoId = 0xffffffff;

  // Adds `name` (no-op if present) and returns its id, which stays the
  // name's until Remove(name); the ids of removed names are reused, so ids
  // stay below about the largest number of names ever held at once. For
  // each distinct trigram of the name: a lookup, then an append or an
  // insert into one block of at most 27 ids (plus, when the block splits, a
  // move of the 32-byte blocks after it).
  uint32_t Add(absl::string_view name);
  // The id of `name`, or kNoId.
  uint32_t Find(absl::string_view name) const;
  // True if `id` is the id of an indexed name.
  bool Contains(uint32_t id) const;
  // The name of `id`, valid until the index next changes.
  // REQUIRES: Contains(id).
  absl::string_view NameOf(uint32_t id) const;
  // One past the largest id ever given (ids index a caller's table).
  uint32_t id_limit() const;
  // Removes `name` (no-op if absent), at the cost of Add; it never visits
  // the other names. Now and then it also compacts the stored name bytes,
  // which costs O(1) amortized per byte removed.
  void Remove(absl::string_view name);
  // Where a ForEachMatchFrom walk stopped.
  struct WalkEnd {
    // Every match with an id >= the walk's first_id was offered to fn.
    bool done = false;
    // When !done: the first_id for the next walk, so that it offers the
    // matches this one did not take (none it took, none it skipped).
    uint32_t next_id = 0;
    // Candidates examined, at most the walk's max_examined.
    size_t examined = 0;
  };

  // Offers fn(id, name) each indexed name that contains `pattern`
  // (case-sensitive bytes; an empty pattern matches every name) whose id is
  // >= first_id, in increasing id order. fn returns false to
  // refuse a name and stop: that name is not taken, and next_id is its id.
  // The walk also stops once it has examined max_examined candidates (the
  // ids it reads from a posting list or the name table, whether or not they
  // match; at least one if any remain), so a walk that finds few matches
  // still costs at most that much and may end with none offered and
  // !done. Over a series of walks, each starting at the last one's next_id
  // until one is done, no id is taken twice, and a name present throughout
  // is taken exactly once (a refused name comes first in the next walk).
  // fn must not modify the index. With max_examined 0 a walk does nothing.
  WalkEnd ForEachMatchFrom(
      absl::string_view pattern, uint32_t first_id, size_t max_examined,
      absl::FunctionRef<bool(uint32_t id, absl::string_view name)> fn) const;

  size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pcfs

#endif  // PCFS_CORE_INDEX_SEARCH_INDEX_H_
