#include "core/search_index.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"

namespace pcfs {

// For now a plain set scanned on every query; an n-gram index replaces it
// behind the same interface.
struct SearchIndex::Impl {
  absl::flat_hash_set<std::string> names;
};

SearchIndex::SearchIndex() : impl_(std::make_unique<Impl>()) {}

SearchIndex::~SearchIndex() = default;

void SearchIndex::Add(absl::string_view name) {
  if (!impl_->names.contains(name))
    impl_->names.emplace(name.data(), name.size());
}

void SearchIndex::Remove(absl::string_view name) {
  auto it = impl_->names.find(name);
  if (it != impl_->names.end()) impl_->names.erase(it);
}

void SearchIndex::ForEachMatch(
    absl::string_view pattern,
    absl::FunctionRef<void(absl::string_view name)> fn) const {
  for (const std::string& name : impl_->names) {
    if (absl::StrContains(name, pattern)) fn(name);
  }
}

size_t SearchIndex::size() const { return impl_->names.size(); }

}  // namespace pcfs
