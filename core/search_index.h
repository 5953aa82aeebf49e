// SearchIndex: the set of distinct published names, answering "which names
// contain this substring". Pure. Not thread-safe: the Registry guards it
// with its own mutex.
#ifndef PCFS_CORE_SEARCH_INDEX_H_
#define PCFS_CORE_SEARCH_INDEX_H_

#include <cstddef>
#include <memory>
#include "absl/strings/string_view.h"

#include "absl/functional/function_ref.h"

namespace pcfs {

class SearchIndex {
 public:
  SearchIndex();
  ~SearchIndex();
  SearchIndex(const SearchIndex&) = delete;
  SearchIndex& operator=(const SearchIndex&) = delete;

  // Adds `name` (no-op if present).
  void Add(absl::string_view name);
  // Removes `name` (no-op if absent).
  void Remove(absl::string_view name);
  // Calls fn(name) once for every indexed name that contains `pattern`
  // (case-sensitive bytes; an empty pattern matches every name), in no
  // particular order. fn must not modify the index.
  void ForEachMatch(absl::string_view pattern,
                    absl::FunctionRef<void(absl::string_view name)> fn) const;
  size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pcfs

#endif  // PCFS_CORE_SEARCH_INDEX_H_
