// Catalog: the file names the simulated peers publish, and the ones known
// to be published (their PUB was answered kOk), from which GET and SCH pick
// what to ask for, so that they find something.
//
// A user's names are derived from its name alone ("<12 hex digits>.<ext>"),
// so a second run against the same daemon republishes the same names (PUB is
// idempotent) instead of adding new ones to the durable state.
//
// Not thread-safe: owned by peerload's single event loop.
#ifndef PCFS_BENCH_PEERLOAD_CATALOG_H_
#define PCFS_BENCH_PEERLOAD_CATALOG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace pcfs::peerload {

class Catalog {
 public:
  // Index 0 is a name nobody publishes, asked for while nothing is
  // published yet (GET answers kNotFound, SCH an empty list).
  Catalog();

  // The k-th name `user` publishes.
  static std::string NameFor(absl::string_view user, int k);

  // Adds a name and returns its index.
  uint32_t Add(std::string name);
  absl::string_view name(uint32_t index) const { return names_[index]; }

  // Records that the name at `index` is published (once is enough).
  void MarkPublished(uint32_t index);
  size_t published() const { return published_.size(); }
  // A published name, chosen by `random` (any value); index 0 if none is.
  uint32_t PickPublished(uint64_t random) const;

 private:
  std::vector<std::string> names_;
  std::vector<bool> is_published_;
  std::vector<uint32_t> published_;
};

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_CATALOG_H_
