// PublicationLog: the daemon's only durable state. Publications are kept in
// a state directory as a snapshot ("publications.snapshot") and a journal
// ("publications.journal") of the changes since. A change is appended and
// flushed to disk (fdatasync) before the request that made it is answered, so
// a restart, a crash or a power loss loses no acknowledged `pub` or `unp`.
//
// Record format (one per line; names hold no control characters, so a
// newline can only end a record):
//   P <user> <size> <sha256 hex> <name>
//   U <user> <name>
// A last line without its newline is a torn write from a crash and is
// ignored; any other malformed line makes Open() fail rather than guess.
//
// Thread-safety: Record*() may be called from any thread (a mutex serialises
// appends).
#ifndef PCFS_DAEMON_PUBLICATION_LOG_H_
#define PCFS_DAEMON_PUBLICATION_LOG_H_

#include <sys/types.h>

#include <memory>
#include <span>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/base/unique_fd.h"
#include "core/index/registry.h"
#include "daemon/metrics.h"

namespace pcfs {

// One change to the publications, as the journal records it.
struct PublicationChange {
  enum class Kind { kPublish, kUnpublish };
  Kind kind = Kind::kPublish;
  std::string user;
  std::string name;
  FileMeta meta;  // kPublish only
};

class PublicationLog {
 public:
  // Creates `state_dir` if needed, loads the snapshot and replays the journal
  // into `registry`, then compacts: writes a fresh snapshot (atomically, via
  // a temporary file and rename) and starts an empty journal.
  static absl::StatusOr<std::unique_ptr<PublicationLog>> Open(
      const std::string& state_dir, Registry& registry);

  // Appends a record and waits until it is on disk.
  absl::Status RecordPublish(absl::string_view user, absl::string_view name,
                             const FileMeta& meta);
  absl::Status RecordUnpublish(absl::string_view user, absl::string_view name);

  // Appends every change of `batch` with one write and makes them durable
  // with one fdatasync (group commit). All or nothing: if the write fails,
  // the journal is cut back to where it was and none of them counts; if the
  // fdatasync fails, none of them may be acknowledged either.
  absl::Status AppendBatch(std::span<const PublicationChange> batch);

  // Number of publications loaded by Open().
  size_t loaded() const { return loaded_; }

  // Reads the state in `state_dir` as Open() would, without changing any
  // file: for `peerconnectd check-config`. Returns the number of
  // publications. A missing folder is fine if it can be created.
  static absl::StatusOr<size_t> Check(const std::string& state_dir);

  // Times every append's write and fdatasync into `histogram` (which must
  // outlive this log). Call before the first Record*().
  void set_flush_latency(LatencyHistogram* histogram) {
    flush_latency_ = histogram;
  }

 private:
  PublicationLog(UniqueFd journal, size_t loaded)
      : journal_(std::move(journal)), loaded_(loaded) {}
  absl::Status Append(absl::string_view record);
  absl::Status AppendLocked(absl::string_view records)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  UniqueFd journal_ ABSL_GUARDED_BY(mu_);
  off_t journal_size_ ABSL_GUARDED_BY(mu_) = 0;
  const size_t loaded_;
  LatencyHistogram* flush_latency_ = nullptr;
};

// Parses one record line (without its newline) and applies it to `registry`.
// Exposed for tests.
absl::Status ApplyPublicationRecord(absl::string_view line, Registry& registry);

// Applies every complete line of `text` (a snapshot's or a journal's) to
// `registry`, as Open() does. When `allow_torn_tail`, a last line without a
// newline is ignored (an append cut short by a crash); otherwise it is an
// error. Errors: DataLoss "<what>: line N: ..." on the first bad line (the
// lines before it stay applied). Exposed for tests and the fuzzer.
absl::Status ReplayPublicationRecords(absl::string_view text,
                                      absl::string_view what,
                                      bool allow_torn_tail, Registry& registry);

// The snapshot Open() writes when it compacts: one P record per publication
// of `registry`.
std::string FormatPublicationSnapshot(const Registry& registry);

}  // namespace pcfs

#endif  // PCFS_DAEMON_PUBLICATION_LOG_H_
