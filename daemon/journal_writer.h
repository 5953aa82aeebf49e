// JournalWriter: group commit for publication changes. Reactor threads
// Submit() a `pub` or `unp` and go on serving; one writer thread takes
// everything queued (up to a batch cap), decides each change against the
// registry, makes the batch durable with one append (PublicationLog::
// AppendBatch: one write, one fdatasync), and only then applies it to the
// registry, in submission order. So memory changes only once the change is
// durable, and a failed write leaves memory exactly as it was. Each
// request's completion then goes back to the reactor thread that submitted
// it, through that thread's CompletionQueue (a queue and an eventfd the
// reactor watches with AddReadable); nothing on a reactor thread waits for
// the disk.
//
// Deciding on the writer thread (not at Submit) keeps the answers right when
// changes of one name are queued together: a `pub` identical to what is
// published, once the changes before it are counted, is acknowledged
// without a record; an `unp` of a name not published then is NotFound,
// also without a record.
//
// The contract with PublicationLog (which compacts from the registry in the
// background): every change of a batch that AppendBatch accepted is applied
// to the registry before the next AppendBatch call starts.
//
// In cluster mode (the append is ClusterStore::CommitPublications) the
// store's reader thread applies the cluster's stream to the registry too,
// in stream order, but not this daemon's own acknowledged changes: the
// store remembers their entries' ids and skips them when it reads them
// back, since this writer has applied them (read back late, they would
// undo a newer change of the same name). The entries of a commit that
// failed, which Redis may have applied all the same, are applied by the
// reader when they come. The order is right because a user's changes come
// from the one daemon that holds the user's session: a change of the same
// name made on another daemon that this one had not read yet when it
// applied its own would be applied after it (possible only across a move
// of the user between daemons, which takes seconds; not otherwise
// handled).
//
// Thread-safety: Submit() may be called from any thread; Shutdown() and the
// destructor from one thread, after which Submit() refuses. A
// CompletionQueue's RunCompletions() runs on its one owning thread (or any
// one thread once that thread has stopped); Push, from any thread.
#ifndef PCFS_DAEMON_JOURNAL_WRITER_H_
#define PCFS_DAEMON_JOURNAL_WRITER_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "core/index/registry.h"
#include "daemon/publication_log.h"

namespace pcfs {

class JournalWriter {
 public:
  // The outcome of one change: OK (durable and applied, or already so),
  // NotFound (an `unp` of a name its user does not publish: nothing
  // written), or the append's error (nothing applied).
  using Completion = absl::AnyInvocable<void(absl::Status)>;

  // Makes a batch durable; all or nothing. PublicationLog::AppendBatch in
  // the daemon; tests inject failures and count calls.
  using AppendFn =
      absl::AnyInvocable<absl::Status(std::span<const PublicationChange>)>;

  // The completions bound for one reactor thread. The writer pushes and
  // writes the eventfd; the reactor, woken by fd(), runs them. Another
  // producer may push its own (the cluster store's login claims: Push).
  class CompletionQueue {
   public:
    static absl::StatusOr<std::unique_ptr<CompletionQueue>> Create();
    // Readable while completions wait (an eventfd): give it to
    // Reactor::AddReadable with a callback that calls RunCompletions().
    int fd() const { return event_.get(); }
    // Runs every completion queued so far, in order; returns how many.
    size_t RunCompletions();
    // Queues `completion` to run with `status` on the owning thread. Any
    // thread; never blocks but on the queue's mutex.
    void Push(Completion completion, absl::Status status);

   private:
    friend class JournalWriter;
    struct Done {
      Completion completion;
      absl::Status status;
    };
    explicit CompletionQueue(UniqueFd event) : event_(std::move(event)) {}
    void Push(std::vector<Done>& done);

    UniqueFd event_;
    absl::Mutex mu_;
    std::vector<Done> queue_ ABSL_GUARDED_BY(mu_);
    std::vector<Done> running_;  // the owning thread's; reused
  };

  struct Options {
    // Changes waiting at most; Submit refuses beyond (the client retries).
    size_t queue_capacity = 8192;
    // Changes per AppendBatch at most.
    size_t max_batch = 1024;
    // At least this long from the start of one AppendBatch to the start of
    // the next: under a stream of changes the writer gathers them for that
    // long (or until max_batch changes wait) and makes them durable together. A
    // change that finds the writer idle longer than that is written at
    // once, so this delays only changes that come while batches follow one
    // another. Fewer fdatasync calls: on a virtual disk each one can stall
    // the machine's CPUs (docs/PERFORMANCE.md, group commit). Zero: each
    // batch as soon as the one before is done.
    absl::Duration commit_interval = absl::ZeroDuration();
  };

  struct Stats {
    uint64_t batches = 0;         // AppendBatch calls
    uint64_t changes = 0;         // changes submitted and accepted
    uint64_t records = 0;         // changes written (no-ops need none)
    uint64_t failed_batches = 0;  // AppendBatch errors
    uint64_t refused = 0;         // Submit refusals (queue full, shut down)
  };

  // Starts the writer thread. `registry` must outlive this writer.
  JournalWriter(AppendFn append, Registry* registry, Options options);
  // A writer for `log` (which must outlive it).
  JournalWriter(PublicationLog* log, Registry* registry, Options options);
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;
  ~JournalWriter();  // Shutdown()

  // Queues `change`; `done` later runs on `queue`'s thread with the
  // outcome. Never blocks on the disk. ResourceExhausted if the queue is
  // full, FailedPrecondition after Shutdown(); `done` is then dropped
  // without running.
  absl::Status Submit(PublicationChange change, CompletionQueue* queue,
                      Completion done);

  // Stops taking changes, makes durable and completes (pushes to their
  // queues) everything queued, and joins the thread. Idempotent.
  void Shutdown();

  Stats stats() const;

 private:
  struct Pending {
    PublicationChange change;
    CompletionQueue* queue;
    Completion done;
  };

  void Loop();
  // Decides, writes and applies one batch; pushes its completions.
  void CommitBatch(std::vector<Pending>& batch);

  AppendFn append_;
  Registry* const registry_;
  const Options options_;

  // std primitives rather than absl's: the writer waits on a condition, and
  // Debian's abseil is built without TSan, which then cannot see that an
  // absl::Mutex orders what it guards (see core/base/mutex_lock.h).
  mutable std::mutex mu_;
  std::condition_variable wake_;  // the writer waits on it for changes
  std::deque<Pending> queue_;     // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  bool writer_idle_ = false;      // waiting on wake_; guarded by mu_
  Stats stats_;                   // guarded by mu_
  std::thread thread_;
};

}  // namespace pcfs

#endif  // PCFS_DAEMON_JOURNAL_WRITER_H_
