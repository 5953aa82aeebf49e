#include "daemon/journal_writer.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/base/mutex_lock.h"
#include "core/base/thread_name.h"

namespace pcfs {

// ---- CompletionQueue ------------------------------------------------------

absl::StatusOr<std::unique_ptr<JournalWriter::CompletionQueue>>
JournalWriter::CompletionQueue::Create() {
  UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!event) return ErrnoStatus("eventfd", errno);
  return std::unique_ptr<CompletionQueue>(
      new CompletionQueue(std::move(event)));
}

void JournalWriter::CompletionQueue::Push(std::vector<Done>& done) {
  MutexLock lock(&mu_);
  for (Done& d : done) queue_.push_back(std::move(d));
  done.clear();
  // Under the lock: once the owner has taken the last completion it
  // expects, this queue is not touched again (the owner may destroy it).
  // Cannot fail but for an overflow of the counter (2^64 - 1 wake-ups
  // unread), which a reader resets long before.
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_.get(), &one, sizeof(one));
}

void JournalWriter::CompletionQueue::Push(Completion completion,
                                          absl::Status status) {
  std::vector<Done> done;
  done.push_back(Done{std::move(completion), std::move(status)});
  Push(done);
}

size_t JournalWriter::CompletionQueue::RunCompletions() {
  // Reset the eventfd before taking the queue: a push after the take writes
  // it again, so no completion is left without a wake-up.
  uint64_t count = 0;
  [[maybe_unused]] ssize_t n = ::read(event_.get(), &count, sizeof(count));
  {
    MutexLock lock(&mu_);
    running_.swap(queue_);
  }
  const size_t ran = running_.size();
  for (Done& d : running_) d.completion(std::move(d.status));
  running_.clear();
  return ran;
}

// ---- JournalWriter --------------------------------------------------------

JournalWriter::JournalWriter(AppendFn append, Registry* registry,
                             Options options)
    : append_(std::move(append)), registry_(registry), options_(options) {
  thread_ = std::thread([this] {
    NameThisThread("journal");
    Loop();
  });
}

JournalWriter::JournalWriter(PublicationLog* log, Registry* registry,
                             Options options)
    : JournalWriter(
          [log](std::span<const PublicationChange> batch) {
            return log->AppendBatch(batch);
          },
          registry, options) {}

JournalWriter::~JournalWriter() { Shutdown(); }

absl::Status JournalWriter::Submit(PublicationChange change,
                                   CompletionQueue* queue, Completion done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ++stats_.refused;
      return absl::FailedPreconditionError("the daemon is shutting down");
    }
    if (queue_.size() >= options_.queue_capacity) {
      ++stats_.refused;
      return absl::ResourceExhaustedError(
          "the publication journal is busy: retry");
    }
    ++stats_.changes;
    queue_.push_back(Pending{std::move(change), queue, std::move(done)});
    // A busy writer takes this change with the rest of its next batch; only
    // an idle one needs waking (a futex call per submit would cost the
    // reactor more than the submit itself).
    if (!writer_idle_) return absl::OkStatus();
  }
  wake_.notify_one();
  return absl::OkStatus();
}

void JournalWriter::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

JournalWriter::Stats JournalWriter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void JournalWriter::Loop() {
  using Clock = std::chrono::steady_clock;
  const auto interval = std::chrono::nanoseconds(
      absl::ToInt64Nanoseconds(options_.commit_interval));
  std::vector<Pending> batch;
  // Long ago: the first change is written at once.
  Clock::time_point last_start = Clock::now() - interval;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      writer_idle_ = true;
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      writer_idle_ = false;
      // Gather until the interval since the last batch has passed, unless
      // a full batch is waiting or the writer stops. Submit does not wake a
      // writer that is not idle, so a batch filling up is seen at the
      // deadline (at most one interval late).
      const Clock::time_point due = last_start + interval;
      if (!stopping_ && queue_.size() < options_.max_batch &&
          Clock::now() < due) {
        wake_.wait_until(lock, due, [this] { return stopping_; });
      }
      // Stopping still drains: what was accepted is written and completed.
      if (queue_.empty()) return;
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    last_start = Clock::now();
    CommitBatch(batch);
    batch.clear();
  }
}

void JournalWriter::CommitBatch(std::vector<Pending>& batch) {
  // Decide each change against the registry as the changes before it in
  // this batch leave it. The registry holds every earlier batch already
  // (applied before this one was taken), and only this thread changes
  // publications while the daemon serves.
  using Key = std::pair<std::string, std::string>;
  absl::flat_hash_map<Key, std::optional<FileMeta>> overlay;
  std::vector<PublicationChange> records;
  std::vector<bool> written(batch.size(), false);
  std::vector<absl::Status> outcome(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    PublicationChange& change = batch[i].change;
    Key key(change.user, change.name);
    auto it = overlay.find(key);
    const std::optional<FileMeta> current =
        it != overlay.end()
            ? it->second
            : registry_->PublicationOf(change.user, change.name);
    if (change.kind == PublicationChange::Kind::kPublish) {
      if (current.has_value() && *current == change.meta) continue;  // OK
      overlay[key] = change.meta;
    } else {
      if (!current.has_value()) {
        outcome[i] = absl::NotFoundError(
            absl::StrCat("you do not publish ", change.name));
        continue;
      }
      overlay[key] = std::nullopt;
    }
    written[i] = true;
    records.push_back(std::move(change));
  }

  absl::Status status = absl::OkStatus();
  if (!records.empty()) status = append_(records);
  if (status.ok()) {
    // Durable: now memory may change, in order, before the next append.
    for (const PublicationChange& change : records) {
      if (change.kind == PublicationChange::Kind::kPublish) {
        registry_->Publish(change.user, change.name, change.meta);
      } else {
        registry_->Unpublish(change.user, change.name).IgnoreError();
      }
    }
  } else {
    // A copy of its own for each request: copies of one Status share a
    // reference-counted message that Debian's abseil counts with atomics
    // TSan cannot see (as core/base/mutex_lock.h says of its mutex).
    for (size_t i = 0; i < batch.size(); ++i) {
      if (written[i])
        outcome[i] = absl::Status(status.code(), status.message());
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!records.empty()) {
      ++stats_.batches;
      stats_.records += records.size();
      if (!status.ok()) ++stats_.failed_batches;
    }
  }

  // Hand the completions back, one push per queue, in submission order.
  std::vector<std::pair<CompletionQueue*, std::vector<CompletionQueue::Done>>>
      by_queue;
  for (size_t i = 0; i < batch.size(); ++i) {
    CompletionQueue* queue = batch[i].queue;
    auto it = by_queue.begin();
    while (it != by_queue.end() && it->first != queue) ++it;
    if (it == by_queue.end()) {
      by_queue.emplace_back(queue, std::vector<CompletionQueue::Done>());
      it = by_queue.end() - 1;
    }
    it->second.push_back(
        CompletionQueue::Done{std::move(batch[i].done), std::move(outcome[i])});
  }
  for (auto& [queue, done] : by_queue) queue->Push(done);
}

}  // namespace pcfs
