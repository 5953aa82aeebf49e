// libFuzzer target for daemon/publication_log.h: the journal replay that
// runs at every daemon start on whatever a crash (or a hand edit) left in the
// state folder. Besides crashes and sanitizer reports it checks the property
// compaction relies on: the snapshot written after a replay replays, into an
// empty registry, to the same snapshot (the same records; their order follows
// hash tables and may differ).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/index/registry.h"
#include "daemon/publication_log.h"

namespace {

std::vector<std::string> SortedLines(absl::string_view text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::sort(lines.begin(), lines.end());
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  // Few shards: a fresh registry per input, and replay does not need more.
  pcfs::Registry::Options options;
  options.shard_count = 2;

  // As a journal (a torn last line is fine) and as a snapshot (it is not).
  pcfs::Registry strict(options);
  (void)pcfs::ReplayPublicationRecords(text, "snapshot", false, strict);

  pcfs::Registry registry(options);
  if (!pcfs::ReplayPublicationRecords(text, "journal", true, registry).ok()) {
    return 0;
  }
  const std::string snapshot = pcfs::FormatPublicationSnapshot(registry);
  pcfs::Registry compacted(options);
  if (!pcfs::ReplayPublicationRecords(snapshot, "snapshot", false, compacted)
           .ok() ||
      SortedLines(pcfs::FormatPublicationSnapshot(compacted)) !=
          SortedLines(snapshot)) {
    __builtin_trap();
  }
  return 0;
}
