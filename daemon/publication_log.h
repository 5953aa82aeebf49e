// PublicationLog: the daemon's only durable state. Publications are kept in
// a state folder as a snapshot ("publications.snapshot") and a journal
// ("publications.journal") of the changes since. A change is appended and
// flushed to disk (fdatasync) before the request that made it is answered, so
// a restart, a crash or a power loss loses no acknowledged `pub` or `unp`.
//
// Files (format 3; one record a line; names hold no control characters, so
// a newline can only end a record). Every line ends in " <crc>", the CRC32C
// (core/base/crc32c.h) of the rest of the line as 8 lowercase hex digits:
//   snapshot:  PCFS-SNAPSHOT 3 <crc>
//              P <user> <size> <root hex> <name> <crc>    (one a publication)
//              END <record count> <crc>
//   journal:   PCFS-JOURNAL 3 <crc>
//              P <user> <size> <root hex> <name> <crc>
//              U <user> <name> <crc>
// So a changed byte, a snapshot cut at a line boundary (no END, or a count
// that does not match) and an emptied snapshot (a journal in format 3 beside
// a snapshot without its header) are all detected. <root hex> is the file's
// Merkle root (core/proto/merkle.h). Format 2 (the same lines) and 0.1.0's
// files (the same P and U lines without checksums or header) hold
// whole-file SHA-256 digests in that place instead: Open() refuses them with
// FailedPrecondition and the way out (move the files aside; publishers
// publish again), rather than load digests that would pass for roots and
// fail every download.
//
// A journal's last line without its newline (a crash cut the append short,
// possibly leaving NUL bytes) is a torn tail and is ignored. Anything else
// that does not verify is damage: Open() refuses to start and says where,
// unless Options::recover asks it to keep what verifies (see Open()).
//
// Compaction: Open() writes a fresh snapshot and empties the journal. While
// the daemon runs, once the journal passes Options::compact_journal_bytes,
// the next append first rotates it ("publications.journal" becomes
// "publications.journal.old" and a new journal starts) and a background
// thread writes a snapshot of the registry and then deletes the .old
// journal. Open() replays snapshot, .old journal, journal, in that order;
// replay is idempotent (P overwrites, U of an absent name is ignored), so a
// snapshot taken while changes keep coming, replayed with both journals,
// yields the state the journals end in.
//
// One daemon a state folder: Open() holds an exclusive flock on
// "<state folder>/lock" (holding the pid) for the log's life.
//
// Caller contract (what the background snapshot relies on):
//   - a change is applied to the registry only after the Append that
//     records it returned OK (a change in the registry whose append then
//     fails could reach a snapshot and outlive its refusal), and
//   - every change an earlier append returned OK for has been applied to the
//     registry before the next append begins (the append that rotates the
//     journal is the cut: the snapshot must hold everything before it).
// Changes made to the registry other than through the log are not durable.
//
// Thread-safety: Record*(), AppendBatch() and WaitForCompaction() may be
// called from any thread (a mutex serialises appends; the background
// snapshot takes it only briefly to say it is done). Only one thread at a
// time may call WaitForCompaction(). The registry passed to
// Open() must outlive the log; the destructor waits for a running
// compaction.
#ifndef PCFS_DAEMON_PUBLICATION_LOG_H_
#define PCFS_DAEMON_PUBLICATION_LOG_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

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
  struct Options {
    // Once the journal holds this many bytes, the next append rotates it
    // and a background snapshot compacts the state (tests make it tiny).
    uint64_t compact_journal_bytes = uint64_t{64} << 20;
    // Keep every record that verifies instead of refusing damaged state:
    // what is dropped is logged (file, byte offset, line), the damaged files
    // are renamed aside ("<file>.damaged-<UTC time>", never deleted) and a
    // fresh snapshot is written. Fails if that snapshot cannot be written.
    bool recover = false;
  };

  // Creates `state_dir` if needed, locks it (FailedPrecondition "state
  // folder X is in use by pid N (X/lock)" if another process holds it),
  // loads the snapshot and replays the journals into `registry`, then
  // compacts: writes a fresh snapshot (atomically, via a temporary file and
  // rename) and starts an empty journal. Damaged state fails with DataLoss:
  // the file, the byte offset and line, what is wrong and what to do. If the
  // compaction cannot write for want of space (ENOSPC, EDQUOT), it logs a
  // warning and goes on with the files as they are (appends then go to the
  // existing journal, or fail while the disk stays full).
  static absl::StatusOr<std::unique_ptr<PublicationLog>> Open(
      const std::string& state_dir, Registry& registry, Options options);
  static absl::StatusOr<std::unique_ptr<PublicationLog>> Open(
      const std::string& state_dir, Registry& registry);

  // Waits for a running background compaction, then releases the lock.
  ~PublicationLog();
  PublicationLog(const PublicationLog&) = delete;
  PublicationLog& operator=(const PublicationLog&) = delete;

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

  // Waits until the background compaction running now, if any, is done
  // (tests; an orderly stop).
  void WaitForCompaction();
  // Background compactions that completed (snapshot written, .old journal
  // removed) since Open().
  uint64_t compactions() const;

  // Reads the state in `state_dir` as Open() would, without changing any
  // file and without the lock (a running daemon's folder can be checked):
  // for `peerconnectd check-config`. Returns the number of publications.
  // A missing folder is fine if it can be created. Damage is reported as
  // Open() reports it.
  static absl::StatusOr<size_t> Check(const std::string& state_dir);

  // Times every append's write and fdatasync into `histogram` (which must
  // outlive this log). Call before the first Record*().
  void set_flush_latency(LatencyHistogram* histogram) {
    flush_latency_ = histogram;
  }

 private:
  PublicationLog(std::string state_dir, Registry& registry, Options options,
                 UniqueFd lock, size_t loaded);
  absl::Status Append(absl::string_view records);
  absl::Status AppendLocked(absl::string_view records)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rotates the journal and starts the background snapshot, if the journal
  // is past its size and no compaction runs. A failure only postpones it.
  void MaybeCompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The background thread: snapshot the registry, then drop the .old
  // journal.
  void RunCompaction();

  const std::string dir_;
  Registry& registry_;
  const Options options_;
  const UniqueFd lock_;  // flock held for the log's life
  const size_t loaded_;
  LatencyHistogram* flush_latency_ = nullptr;

  mutable absl::Mutex mu_;
  UniqueFd journal_ ABSL_GUARDED_BY(mu_);
  // Bytes of the journal that count (header and whole records).
  uint64_t journal_size_ ABSL_GUARDED_BY(mu_) = 0;
  // The journal size at which the next compaction is tried.
  uint64_t compact_at_ ABSL_GUARDED_BY(mu_) = 0;
  // Set when the files could not be brought to format 3 (a full disk at
  // start): appends fail with this reason until a restart.
  std::string refuse_appends_ ABSL_GUARDED_BY(mu_);
  // "publications.journal.old" exists: it still holds changes the snapshot
  // on disk may lack.
  bool old_journal_present_ ABSL_GUARDED_BY(mu_) = false;
  bool compaction_running_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t compactions_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread compactor_ ABSL_GUARDED_BY(mu_);
};

// ---- The file format, exposed for tests and the fuzzer.

enum class StateFileKind { kSnapshot, kJournal };

// One record (or missing part) that did not verify.
struct StateDamage {
  uint64_t offset = 0;  // byte offset of the line in its file
  uint64_t line = 0;    // 1-based line number
  std::string what;     // what is wrong, e.g. "checksum does not match"
  std::string text;     // the start of the line, C-escaped (for the log)
};

// What replaying one file found.
struct StateFileReport {
  int format = 0;        // 3, or 0 for an empty file (older ones are refused)
  uint64_t records = 0;  // records that verified and were applied
  std::vector<StateDamage> damage;
  bool torn_tail = false;       // a journal's last line had no newline
  uint64_t end_of_records = 0;  // bytes up to the torn tail (or all)
};

// Replays `text`, a snapshot's or a journal's contents, into `registry`.
// Without `recover`, stops at the first damage with DataLoss
// "<what>: byte B (line L): <problem>" (records before it stay applied);
// with it, skips every line that does not verify and lists it in `report`
// (which may be null without `recover`). A format this build does not know
// fails with FailedPrecondition either way.
absl::Status ReplayStateFile(absl::string_view text, absl::string_view what,
                             StateFileKind kind, bool recover,
                             Registry& registry, StateFileReport* report);

// Parses one record line (P or U, without its checksum or newline) and
// applies it to `registry`.
absl::Status ApplyPublicationRecord(absl::string_view line, Registry& registry);

// The snapshot of `registry` in format 3: header, one P record per
// publication, END with the count.
std::string FormatPublicationSnapshot(const Registry& registry);
// The first line of a journal in format 3.
std::string FormatJournalHeader();
// `change` as one journal line of format 3 (with its newline).
std::string FormatJournalRecord(const PublicationChange& change);

}  // namespace pcfs

#endif  // PCFS_DAEMON_PUBLICATION_LOG_H_
