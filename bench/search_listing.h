// CountListing: a whole `sch` listing read as the daemon serves it, for the
// registry and search benchmarks. Stateless; thread-safe as
// Registry::SearchPage is.
#ifndef PCFS_BENCH_SEARCH_LISTING_H_
#define PCFS_BENCH_SEARCH_LISTING_H_

#include <cstddef>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/index/registry.h"

namespace pcfs {

// A whole listing of `pattern` for `caller` as the daemon reads it: one
// SearchPage after another with the daemon's budget, each from the cursor
// the last one returned, every name taken. Returns the names listed.
inline size_t CountListing(const Registry& registry, absl::string_view pattern,
                           absl::string_view caller, absl::Time now) {
  size_t listed = 0;
  Registry::SearchCursor cursor;
  for (;;) {
    absl::StatusOr<std::optional<Registry::SearchCursor>> next =
        registry.SearchPage(pattern, caller, now, cursor,
                            Registry::kSearchPageBudget,
                            [&](absl::string_view) { return ++listed > 0; });
    if (!next.ok() || !next->has_value()) return listed;
    cursor = **next;
  }
}

}  // namespace pcfs

#endif  // PCFS_BENCH_SEARCH_LISTING_H_
