// libFuzzer target for daemon/publication_log.h: the replay of a snapshot or
// journal that runs at every daemon start on whatever a crash, a failing
// disk or a hand edit left in the state folder (format 3; older formats are
// refused with FailedPrecondition). Besides crashes and sanitizer reports it
// checks:
//   - --recover never refuses damage (only a format it does not read), and
//     where the strict replay accepts a file, --recover finds nothing to
//     drop and loads the same publications;
//   - the snapshot written after a replay replays strictly, into an empty
//     registry, to the same snapshot (the same records; their order follows
//     hash tables and may differ).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
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

pcfs::Registry::Options FewShards() {
  // A fresh registry per input, and replay does not need more.
  pcfs::Registry::Options options;
  options.shard_count = 2;
  return options;
}

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

void FuzzAs(absl::string_view text, pcfs::StateFileKind kind) {
  pcfs::Registry strict(FewShards());
  const absl::Status strict_status =
      pcfs::ReplayStateFile(text, "state", kind, false, strict, nullptr);

  pcfs::Registry recovered(FewShards());
  pcfs::StateFileReport report;
  const absl::Status recover_status =
      pcfs::ReplayStateFile(text, "state", kind, true, recovered, &report);
  Check(recover_status.ok() || absl::IsFailedPrecondition(recover_status));
  if (!recover_status.ok()) return;

  const std::string snapshot = pcfs::FormatPublicationSnapshot(recovered);
  if (strict_status.ok()) {
    Check(report.damage.empty());
    Check(SortedLines(pcfs::FormatPublicationSnapshot(strict)) ==
          SortedLines(snapshot));
  }
  pcfs::Registry compacted(FewShards());
  pcfs::StateFileReport again;
  Check(pcfs::ReplayStateFile(snapshot, "snapshot",
                              pcfs::StateFileKind::kSnapshot, false, compacted,
                              &again)
            .ok());
  Check(again.format == 3 && again.damage.empty() && !again.torn_tail);
  Check(SortedLines(pcfs::FormatPublicationSnapshot(compacted)) ==
        SortedLines(snapshot));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  FuzzAs(text, pcfs::StateFileKind::kJournal);
  FuzzAs(text, pcfs::StateFileKind::kSnapshot);
  return 0;
}
