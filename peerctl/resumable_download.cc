#include "peerctl/resumable_download.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/base/clock.h"
#include "core/base/names.h"
#include "core/base/thread_name.h"
#include "core/base/unique_fd.h"
#include "core/proto/merkle.h"
#include "peerctl/body_sink.h"
#include "peerctl/chunk_hasher.h"
#include "peerctl/chunk_scheduler.h"
#include "peerctl/exit_codes.h"
#include "peerctl/file_flusher.h"
#include "peerctl/file_hash.h"

namespace pcfs {
namespace {

using download_internal::AtName;
using download_internal::Bounds;
using download_internal::LookAtName;

// With more than one holder active, the most chunks (MiB) one Range
// request asks for: what a holder that stalls or crawls holds up. Each run
// is a connection (the file server closes after one response), so fewer,
// larger runs cost less; a lone holder gets the whole rest in one.
constexpr uint64_t kMaxRunChunks = 16;

// DropSlowHolders: how long a run goes before its holder can be judged,
// and how many times slower than the fastest holder makes it too slow.
constexpr absl::Duration kSlowGrace = absl::Seconds(2);
constexpr uint64_t kSlowFactor = 4;

// How often the calling thread looks at the cancel flag, the deadline and
// the progress while the holders' workers run.
constexpr absl::Duration kWatchInterval = absl::Milliseconds(50);

// The leaves of a file this large (2^40 chunks would be 32 TiB of leaves)
// are not taken in memory: 64 MiB of leaves is a 2 TiB file.
constexpr uint64_t kMaxLeafBytes = uint64_t{64} << 20;

// One request on a fresh connection: the response head, and the connection
// with the body bytes that came with the head.
struct Exchange {
  download_internal::HolderConnection connection;
  http::Response response;
  std::vector<char> buffer = std::vector<char>(http::kMaxHeadBytes);
  size_t body_start = 0;
  size_t filled = 0;

  absl::string_view prefix() const {
    return {buffer.data() + body_start, filled - body_start};
  }
};

// Sends `head` on `connection` (open, handshake done) and reads the
// response head.
absl::StatusOr<std::unique_ptr<Exchange>> AskOn(
    download_internal::HolderConnection connection, const std::string& head,
    const Bounds& bounds) {
  auto exchange = std::make_unique<Exchange>();
  exchange->connection = std::move(connection);
  const download_internal::HolderLink link = exchange->connection.link();
  absl::Status sent = download_internal::SendAll(link, head, bounds);
  if (!sent.ok()) return sent;
  absl::StatusOr<http::Response> response = download_internal::ReadResponseHead(
      link, exchange->buffer, &exchange->body_start, &exchange->filled, bounds);
  if (!response.ok()) return response.status();
  exchange->response = *response;
  return exchange;
}

absl::StatusOr<std::unique_ptr<Exchange>> Ask(const DownloadRequest& request,
                                              const std::string& head,
                                              const Bounds& bounds) {
  absl::StatusOr<download_internal::HolderConnection> connection =
      download_internal::ConnectToHolder(request, bounds);
  if (!connection.ok()) return connection.status();
  return AskOn(*std::move(connection), head, bounds);
}

// The holder's leaves, checked against the expected root. NotFound when the
// holder has none to give (404).
absl::StatusOr<std::vector<Sha256Digest>> FetchLeaves(
    const DownloadRequest& request, uint64_t size, const Sha256Digest& root,
    const Bounds& bounds) {
  const uint64_t want = MerkleChunkCount(size) * kSha256Size;
  absl::StatusOr<std::unique_ptr<Exchange>> exchange =
      Ask(request,
          http::FormatRequestHead(request.name, request.holder.ToString(),
                                  request.ticket, std::nullopt,
                                  /*leaves=*/true),
          bounds);
  if (!exchange.ok()) return exchange.status();
  const http::Response& response = (*exchange)->response;
  if (response.status_code != http::kOk) {
    return http::StatusFromHttpCode(response.status_code);
  }
  if (!response.content_length || *response.content_length != want) {
    return absl::DataLossError(
        absl::StrCat("the holder offers ",
                     response.content_length ? *response.content_length : 0,
                     " bytes of chunk hashes; the file published has ", want));
  }
  std::string bytes((*exchange)->prefix().substr(0, want));
  bytes.resize(want);
  size_t have = std::min<size_t>((*exchange)->prefix().size(), want);
  while (have < want) {
    absl::StatusOr<size_t> n = download_internal::Receive(
        (*exchange)->connection.link(), bytes.data() + have, want - have,
        bounds, "sending the chunk hashes");
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return absl::DataLossError(
          "the holder closed the connection inside the chunk hashes");
    }
    have += *n;
  }
  absl::StatusOr<std::vector<Sha256Digest>> leaves =
      MerkleLeavesFromBytes(bytes);
  if (!leaves.ok()) return leaves.status();
  if (MerkleRoot(*leaves) != root) {
    return absl::DataLossError(absl::StrCat(
        "the holder's chunk hashes do not add up to the published root ",
        Sha256ToHex(root), ": it serves other contents"));
  }
  return leaves;
}

// Whether `name` in `dir_fd` leads to the file open as `fd` (false when
// nothing has that name).
absl::StatusOr<bool> NameLeadsTo(int dir_fd, const std::string& name, int fd) {
  struct stat held {};
  if (::fstat(fd, &held) != 0) return ErrnoStatus("fstat", errno);
  struct stat named {};
  if (::fstatat(dir_fd, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoStatus(absl::StrCat("stat ", name), errno);
  }
  return named.st_dev == held.st_dev && named.st_ino == held.st_ino;
}

// The partial file, open and locked. A get that finishes renames its
// partial to the file's name, so one that opened the partial just before
// then would lock the finished file: only a lock on the file the partial's
// name still leads to counts, and the name is opened again until it does.
absl::StatusOr<UniqueFd> LockPartial(int dir_fd, const std::string& name) {
  constexpr int kAttempts = 8;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    UniqueFd file(::openat(dir_fd, name.c_str(),
                           O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666));
    if (!file) return ErrnoStatus(absl::StrCat("open ", name), errno);
    if (::flock(file.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) break;
      return ErrnoStatus("flock", errno);
    }
    struct stat held {};
    if (::fstat(file.get(), &held) != 0) return ErrnoStatus("fstat", errno);
    if (!S_ISREG(held.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, " is not a regular file"));
    }
    absl::StatusOr<bool> locked = NameLeadsTo(dir_fd, name, file.get());
    if (!locked.ok()) return locked.status();
    if (*locked) return file;
  }
  return absl::AlreadyExistsError(
      absl::StrCat("another get is downloading into ", name));
}

// Gives the locked partial `fd` the file's `size`; true when it had that
// size already (so that its chunks are worth checking).
absl::StatusOr<bool> SizePartial(int fd, uint64_t size) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return ErrnoStatus("fstat", errno);
  if (static_cast<uint64_t>(info.st_size) == size) return true;
  // Another size: nothing in it can be this file's. Start over.
  if (::ftruncate(fd, 0) != 0) return ErrnoStatus("ftruncate", errno);
  absl::Status reserved = download_internal::Preallocate(fd, size);
  if (!reserved.ok()) return reserved;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return ErrnoStatus("ftruncate", errno);
  }
  return false;
}

// Which chunks of the partial already match their leaves. A large partial
// takes seconds to read: the cancel flag stops the read within a chunk,
// and the deadline within a batch of chunks (Cancelled "download
// cancelled", DeadlineExceeded, as the transfer's).
absl::StatusOr<std::vector<bool>> VerifiedChunks(
    int fd, uint64_t size, const std::vector<Sha256Digest>& leaves,
    const std::string& name, const Bounds& bounds) {
  constexpr uint64_t kBatchChunks = 64;
  ChunkHashPool::Options options;
  options.cancel = bounds.cancel;
  absl::StatusOr<std::unique_ptr<ChunkHashPool>> pool =
      ChunkHashPool::Create(fd, size, std::move(options));
  if (!pool.ok()) return pool.status();
  const uint64_t chunks = (*pool)->chunk_count();
  for (uint64_t first = 0; first < chunks; first += kBatchChunks) {
    const uint64_t end = std::min(chunks, first + kBatchChunks);
    for (uint64_t i = first; i < end; ++i) (*pool)->Submit(i);
    absl::Status status = (*pool)->Wait();
    if (absl::IsCancelled(status) || bounds.cancelled()) {
      return absl::CancelledError("download cancelled");
    }
    if (!status.ok()) return status;
    if (absl::Now() >= bounds.deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("out of time while checking what an earlier get of ",
                       name, " downloaded"));
    }
  }
  std::vector<bool> verified(leaves.size());
  for (size_t i = 0; i < leaves.size(); ++i) {
    verified[i] = (*pool)->leaf(i) == leaves[i];
  }
  return verified;
}

// Fetches chunks [first, end) from `request`'s holder over `connection`
// (open, handshake done) into `fd` at their offset, each verified by `pool`
// on arrival, and counted to `flusher`; `on_bytes` hears how many bytes of
// the run have arrived.
absl::Status FetchRun(const DownloadRequest& request,
                      download_internal::HolderConnection connection, int fd,
                      ChunkHashPool& pool, FileFlusher& flusher, uint64_t first,
                      uint64_t end, const Bounds& bounds,
                      const std::function<void(uint64_t)>& on_bytes) {
  const uint64_t size = pool.size();
  const uint64_t from = first * kMerkleChunkBytes;
  const uint64_t to = std::min(end * kMerkleChunkBytes, size);  // exclusive
  const http::ByteRange range{from, to - 1};
  absl::StatusOr<std::unique_ptr<Exchange>> exchange =
      AskOn(std::move(connection),
            http::FormatRequestHead(request.name, request.holder.ToString(),
                                    request.ticket, range),
            bounds);
  if (!exchange.ok()) return exchange.status();
  const http::Response& response = (*exchange)->response;
  if (response.status_code != http::kPartialContent) {
    return response.status_code == http::kOk
               ? absl::InvalidArgumentError(
                     "the holder ignored the Range of the request")
               : http::StatusFromHttpCode(response.status_code);
  }
  const http::ContentRange expected{from, to - 1, size};
  if (!response.content_range || !(*response.content_range == expected)) {
    return absl::DataLossError(
        absl::StrCat("the holder sent another range than bytes ", from, "-",
                     to - 1, "/", size, " (the file published)"));
  }
  if (::lseek(fd, static_cast<off_t>(from), SEEK_SET) < 0) {
    return MarkFolderFailure(ErrnoStatus("lseek", errno));
  }
  BodySink::Options sink_options;
  sink_options.flusher = &flusher;
  absl::StatusOr<std::unique_ptr<BodySink>> sink =
      BodySink::Create(fd, &pool, sink_options);
  if (!sink.ok()) return sink.status();
  std::function<void(uint64_t, uint64_t)> progress;
  if (on_bytes) progress = [&](uint64_t got, uint64_t) { on_bytes(got); };
  absl::Status status = download_internal::ReceiveBody(
      (*exchange)->connection.link(), **sink, (*exchange)->prefix(), to - from,
      bounds, progress);
  // Wait for the chunks handed over either way: a corrupt chunk is the
  // better explanation of a body cut short by it.
  absl::Status checked = (*sink)->Finish();
  if (!checked.ok()) return checked;
  return status;
}

// One holder of a multi-holder download: `first` (the request as it goes to
// the daemon's first choice) with another holder's address, ticket, pin and
// name, so that every other field stays the same for all holders.
DownloadRequest RequestForHolder(const DownloadRequest& first,
                                 const DownloadSource& source) {
  DownloadRequest one = first;
  one.holder = source.address;
  one.ticket = source.ticket;
  one.holder_pin = source.pin;
  one.holder_name = source.name;
  return one;
}

// "hans at 127.0.0.1:40123" (or just the address, for a holder without a
// name).
std::string HolderLabel(const DownloadRequest& holder) {
  const std::string address = holder.holder.ToString();
  return holder.holder_name.empty()
             ? address
             : absl::StrCat(holder.holder_name, " at ", address);
}

// The error of a download whose every holder was dropped: the holder's own
// when it was the only one; otherwise every holder and why it was dropped,
// with the code they share (Unavailable when they differ), marked as a key
// mismatch or as busy when every holder's was.
absl::Status AllHoldersFailed(const std::string& name,
                              const std::vector<DownloadRequest>& holders,
                              const std::vector<absl::Status>& reasons) {
  if (holders.size() == 1) return reasons[0];
  std::string message = absl::StrCat("no holder could send ", name, ":");
  absl::StatusCode code = reasons[0].code();
  bool all_key_mismatch = true;
  bool all_busy = true;
  for (size_t i = 0; i < holders.size(); ++i) {
    absl::StrAppend(&message, i == 0 ? " " : "; ", HolderLabel(holders[i]),
                    ": ", reasons[i].message());
    if (reasons[i].code() != code) code = absl::StatusCode::kUnavailable;
    all_key_mismatch = all_key_mismatch && IsKeyMismatch(reasons[i]);
    all_busy = all_busy && IsHolderBusy(reasons[i]);
  }
  absl::Status status(code, message);
  if (all_key_mismatch) return MarkKeyMismatch(status);
  return all_busy ? MarkHolderBusy(status) : status;
}

// The partial again, with a file offset of its own (a BodySink writes at
// its fd's offset, and every holder's worker has one).
absl::StatusOr<UniqueFd> ReopenPartial(int fd, int dir_fd,
                                       const std::string& partial) {
  UniqueFd again(
      ::open(absl::StrCat("/proc/self/fd/", fd).c_str(), O_RDWR | O_CLOEXEC));
  if (!again) {
    // No /proc: the name, which this get holds locked.
    again.Reset(
        ::openat(dir_fd, partial.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!again) return ErrnoStatus(absl::StrCat("open ", partial), errno);
  return again;
}

// What every holder's worker shares.
struct Shared {
  const std::vector<Sha256Digest>* leaves;
  uint64_t size;
  int partial_fd;
  int dir_fd;
  const std::string* partial;
  size_t hash_threads;
  ChunkScheduler* scheduler;
  FileFlusher* flusher;  // of the partial file, for every worker
};

// What a holder's worker shows the watching thread, and the flag that
// stops it.
struct WorkerState {
  std::atomic<uint64_t> in_flight{0};    // bytes of the current run so far
  std::atomic<int64_t> run_start_ns{0};  // monotonic; 0: no run in flight
  std::atomic<uint64_t> best_rate{0};    // bytes/s of its fastest whole run
  std::atomic<bool> cancel{false};       // its Bounds' cancel flag
};

// One holder's worker: connects, takes a run, fetches it, reports each of
// its chunks verified or not, and again, until the scheduler has no more
// for it; any failure drops the holder (its unverified chunks go to the
// others). `bounds.cancel` is state.cancel: set by the watcher to stop
// every worker, or this one alone when it is too slow (DropSlowHolders).
void FetchFromHolder(size_t me, const DownloadRequest& holder,
                     const Shared& shared, const Bounds& bounds,
                     WorkerState& state) {
  std::atomic<uint64_t>& in_flight = state.in_flight;
  ChunkScheduler& scheduler = *shared.scheduler;
  const auto drop = [&](absl::Status why) {
    if (absl::IsCancelled(why) &&
        !scheduler.stop_flag()->load(std::memory_order_relaxed)) {
      // Stopped alone by the watcher: too slow beside the others.
      why = absl::DeadlineExceededError(
          "much slower than the other holders while they waited");
    }
    // The folder's failure is every holder's: the download stops.
    const bool folder = IsFolderFailure(why);
    scheduler.Drop(me, std::move(why));
    if (folder) scheduler.Stop();
  };
  // The first holder's worker writes through the partial's own descriptor;
  // each other one through a descriptor of its own.
  UniqueFd own_fd;
  if (me > 0) {
    absl::StatusOr<UniqueFd> fd =
        ReopenPartial(shared.partial_fd, shared.dir_fd, *shared.partial);
    if (!fd.ok()) return drop(MarkFolderFailure(fd.status()));
    own_fd = *std::move(fd);
  }
  const int fd = me > 0 ? own_fd.get() : shared.partial_fd;
  ChunkHashPool::Options options;
  options.threads = shared.hash_threads;
  options.expected = *shared.leaves;
  absl::StatusOr<std::unique_ptr<ChunkHashPool>> pool =
      ChunkHashPool::Create(fd, shared.size, std::move(options));
  if (!pool.ok()) return drop(pool.status());
  while (scheduler.WaitForWork(me)) {
    // Connected before it takes a run, so that a holder that does not
    // answer holds no chunks while the others could fetch them.
    absl::StatusOr<download_internal::HolderConnection> connection =
        download_internal::ConnectToHolder(holder, bounds);
    if (!connection.ok()) return drop(connection.status());
    std::optional<ChunkScheduler::Run> run = scheduler.TryTake(me);
    if (!run.has_value()) continue;  // another holder took the last
    const int64_t start_ns = absl::ToUnixNanos(MonotonicNow());
    state.run_start_ns.store(start_ns, std::memory_order_relaxed);
    absl::Status status =
        FetchRun(holder, *std::move(connection), fd, **pool, *shared.flusher,
                 run->first, run->end, bounds, [&](uint64_t got) {
                   // Read by the watcher when it next looks (no wake-up
                   // per receive: those cost the transfer CPU time).
                   in_flight.store(got, std::memory_order_relaxed);
                 });
    const uint64_t run_bytes = in_flight.load(std::memory_order_relaxed);
    in_flight.store(0, std::memory_order_relaxed);
    state.run_start_ns.store(0, std::memory_order_relaxed);
    if (status.ok()) {
      const int64_t took_ns =
          std::max<int64_t>(absl::ToUnixNanos(MonotonicNow()) - start_ns, 1);
      const auto rate = static_cast<uint64_t>(
          static_cast<double>(run_bytes) * 1e9 / static_cast<double>(took_ns));
      if (rate > state.best_rate.load(std::memory_order_relaxed)) {
        state.best_rate.store(rate, std::memory_order_relaxed);
      }
    }
    // FetchRun waited for the pool (if it handed it anything): Verified()
    // is settled for the run.
    for (uint64_t i = run->first; i < run->end; ++i) {
      if ((*pool)->Verified(i)) {
        scheduler.MarkVerified(me, i);
      } else {
        scheduler.Release(me, i);
      }
    }
    if (!status.ok()) return drop(status);
  }
}

// Renames the verified partial (open as `fd`) to `name`, never replacing a
// file, and only while the partial's name still leads to that file: one
// removed during the download (and maybe made again by another get, which
// writes into it) never becomes the file. (Between that check and the
// rename, a partial made again could still be taken: a window of
// microseconds, against the whole download before.)
absl::Status Publish(int dir_fd, int fd, const std::string& partial,
                     const std::string& name) {
  absl::StatusOr<bool> ours = NameLeadsTo(dir_fd, partial, fd);
  if (!ours.ok()) return ours.status();
  if (!*ours) {
    return absl::FailedPreconditionError(
        absl::StrCat(partial, " was removed during the download, so ", name,
                     " was not made: get it again"));
  }
  if (::renameat2(dir_fd, partial.c_str(), dir_fd, name.c_str(),
                  RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  int err = errno;
  if (err == EINVAL) {
    // No RENAME_NOREPLACE on this file system: link (which never
    // replaces), then drop the partial name.
    if (::linkat(dir_fd, partial.c_str(), dir_fd, name.c_str(), 0) == 0) {
      ::unlinkat(dir_fd, partial.c_str(), 0);
      return absl::OkStatus();
    }
    err = errno;
  }
  // The caller looks at what took the name.
  if (err == EEXIST) return absl::AlreadyExistsError(name);
  return ErrnoStatus("renameat2", err);
}

// The end of a get that finds a file at its name, which held nothing when
// it began (`at_name` is not kNothing), `downloaded` or before it fetched a
// byte: done if it is the published file, whose partial then goes; else
// refused, and what was downloaded kept in the partial for a later get.
absl::StatusOr<bool> EndAtAFileThere(AtName at_name, bool downloaded,
                                     int dir_fd, int partial_fd,
                                     const std::string& partial,
                                     const DownloadRequest& request) {
  struct stat info {};
  const bool empty = ::fstat(partial_fd, &info) == 0 && info.st_size == 0;
  if (at_name == AtName::kTheFile || empty) {
    if (::unlinkat(dir_fd, partial.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(absl::StrCat("unlink ", partial), errno);
    }
  }
  if (at_name == AtName::kTheFile) return true;
  if (!downloaded) {
    return absl::AlreadyExistsError(absl::StrCat(
        request.name, " already exists in ", request.destination_dir));
  }
  return absl::AlreadyExistsError(absl::StrCat(
      request.name, " appeared in ", request.destination_dir,
      " during the download and is not the published file; not overwriting "
      "it (what was downloaded stays in ",
      partial, " for a get after it is moved away)"));
}

// The end of a download, where the others wait for a slow holder: a holder
// whose run has lasted kSlowGrace at under 1/kSlowFactor of the fastest
// holder's rate is stopped (its worker then drops it, and its chunks go to
// the holders that wait). Only then: a slow holder that holds nobody up is
// still worth its share, and the stall timeout catches one that sends
// nothing at all.
void DropSlowHolders(const ChunkScheduler& scheduler,
                     std::vector<WorkerState>& workers) {
  if (workers.size() < 2 || !scheduler.starving()) return;
  const int64_t now_ns = absl::ToUnixNanos(MonotonicNow());
  auto current_rate = [now_ns](const WorkerState& worker) -> uint64_t {
    const int64_t start = worker.run_start_ns.load(std::memory_order_relaxed);
    if (start == 0 || now_ns <= start) return 0;
    return static_cast<uint64_t>(
        static_cast<double>(worker.in_flight.load(std::memory_order_relaxed)) *
        1e9 / static_cast<double>(now_ns - start));
  };
  uint64_t best = 0;
  for (const WorkerState& worker : workers) {
    best = std::max({best, worker.best_rate.load(std::memory_order_relaxed),
                     current_rate(worker)});
  }
  for (WorkerState& worker : workers) {
    const int64_t start = worker.run_start_ns.load(std::memory_order_relaxed);
    if (start == 0 || now_ns - start < absl::ToInt64Nanoseconds(kSlowGrace)) {
      continue;
    }
    if (current_rate(worker) * kSlowFactor < best) {
      worker.cancel.store(true, std::memory_order_relaxed);
    }
  }
}

// The leaves from every holder at once, the first that add up taken and
// the other requests stopped, so that holders that do not answer cost one
// connect timeout in all, not one each. `errors[i]` gets the error of each
// holder that failed before that (not those stopped); with no leaves from
// anyone, the result is an error and `errors` holds every holder's.
absl::StatusOr<std::vector<Sha256Digest>> RaceForLeaves(
    const std::vector<DownloadRequest>& holders, uint64_t size,
    const Sha256Digest& root, const Bounds& bounds,
    std::vector<absl::Status>& errors) {
  std::mutex mu;
  std::condition_variable finished;
  std::optional<std::vector<Sha256Digest>> winner;  // guarded by mu
  size_t running = holders.size();                  // guarded by mu
  std::vector<std::atomic<bool>> stop(holders.size());
  std::vector<std::thread> threads;
  threads.reserve(holders.size());
  for (size_t i = 0; i < holders.size(); ++i) {
    threads.emplace_back([&, i] {
      NameThisThread(absl::StrCat("leaves-", i));
      Bounds own = bounds;
      own.cancel = &stop[i];
      absl::StatusOr<std::vector<Sha256Digest>> got =
          FetchLeaves(holders[i], size, root, own);
      {
        std::lock_guard<std::mutex> lock(mu);
        --running;
        if (got.ok()) {
          if (!winner.has_value()) winner = *std::move(got);
        } else if (!winner.has_value() &&
                   !stop[i].load(std::memory_order_relaxed)) {
          errors[i] = got.status();
        }
      }
      finished.notify_all();
    });
  }
  bool cancelled = false;
  {
    std::unique_lock<std::mutex> lock(mu);
    while (!winner.has_value() && running > 0) {
      finished.wait_for(lock, std::chrono::milliseconds(
                                  absl::ToInt64Milliseconds(kWatchInterval)));
      if (bounds.cancelled()) {
        cancelled = true;
        break;
      }
    }
  }
  for (std::atomic<bool>& flag : stop) {
    flag.store(true, std::memory_order_relaxed);
  }
  for (std::thread& thread : threads) thread.join();
  if (cancelled) return absl::CancelledError("download cancelled");
  if (winner.has_value()) return *std::move(winner);
  return absl::UnavailableError("no holder sent the chunk hashes");
}

}  // namespace

std::string PartialFileName(absl::string_view name) {
  std::string partial = absl::StrCat(".", name, kPartialSuffix);
  return partial.size() <= kMaxFileNameBytes ? partial : std::string();
}

absl::StatusOr<bool> DownloadResumable(const DownloadRequest& request,
                                       int dir_fd, const Bounds& bounds) {
  if (!request.expected_size || !request.expected_root ||
      *request.expected_size == 0) {
    return false;
  }
  const std::string partial = PartialFileName(request.name);
  if (partial.empty()) return false;
  const uint64_t size = *request.expected_size;
  if (MerkleChunkCount(size) * kSha256Size > kMaxLeafBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a file of ", size, " bytes is too large"));
  }

  // Every holder, the daemon's first choice first.
  std::vector<DownloadRequest> holders;
  holders.push_back(request);
  holders[0].progress = nullptr;
  holders[0].cancel = nullptr;
  holders[0].other_holders.clear();
  for (const DownloadSource& other : request.other_holders) {
    holders.push_back(RequestForHolder(holders[0], other));
  }
  // With another holder to turn to, a silent holder is dropped sooner.
  Bounds holder_bounds = bounds;
  if (holders.size() > 1) {
    holder_bounds.timeout = std::min(bounds.timeout, request.stall_timeout);
  }

  // The leaves, from the first holder that gives ones that add up.
  std::vector<absl::Status> leaf_errors(holders.size());
  bool some_without_leaves = false;
  absl::StatusOr<std::vector<Sha256Digest>> leaves =
      holders.size() == 1
          ? FetchLeaves(holders[0], size, *request.expected_root, bounds)
          : RaceForLeaves(holders, size, *request.expected_root, holder_bounds,
                          leaf_errors);
  if (absl::IsCancelled(leaves.status())) return leaves.status();
  if (holders.size() == 1 && !leaves.ok()) leaf_errors[0] = leaves.status();
  for (const absl::Status& error : leaf_errors) {
    if (absl::IsNotFound(error)) some_without_leaves = true;
  }
  if (!leaves.ok()) {
    // A holder without leaves (an older peerctl): the whole file instead.
    if (some_without_leaves) return false;
    return AllHoldersFailed(request.name, holders, leaf_errors);
  }

  // Failures from here on are the download folder's, unless a holder's.
  absl::StatusOr<UniqueFd> file = LockPartial(dir_fd, partial);
  if (!file.ok()) return MarkFolderFailure(file.status());
  // Another get of the name may have finished since this one looked.
  absl::StatusOr<AtName> at_name =
      LookAtName(dir_fd, request.name, size, *request.expected_root);
  if (!at_name.ok()) return MarkFolderFailure(at_name.status());
  if (*at_name != AtName::kNothing) {
    absl::StatusOr<bool> end = EndAtAFileThere(
        *at_name, /*downloaded=*/false, dir_fd, file->get(), partial, request);
    if (!end.ok()) return MarkFolderFailure(end.status());
    return end;
  }
  absl::StatusOr<bool> reused = SizePartial(file->get(), size);
  if (!reused.ok()) {
    // Emptied to be sized (or new): a partial that holds nothing goes.
    struct stat info {};
    if (::fstat(file->get(), &info) == 0 && info.st_size == 0) {
      ::unlinkat(dir_fd, partial.c_str(), 0);
    }
    return MarkFolderFailure(reused.status());
  }
  std::vector<bool> verified(leaves->size(), false);
  if (*reused) {
    absl::StatusOr<std::vector<bool>> found =
        VerifiedChunks(file->get(), size, *leaves, request.name, bounds);
    if (absl::IsCancelled(found.status()) ||
        absl::IsDeadlineExceeded(found.status())) {
      return found.status();
    }
    if (!found.ok()) return MarkFolderFailure(found.status());
    verified = *std::move(found);
  }

  ChunkScheduler scheduler(size, std::move(verified), holders.size(),
                           kMaxRunChunks);
  // A holder whose leaves failed (it did not answer, or sent leaves of
  // another file) is dropped before it starts. One without leaves (404)
  // may still serve ranges, checked against the others' leaves.
  for (size_t i = 0; i < holders.size(); ++i) {
    if (!leaf_errors[i].ok() && !absl::IsNotFound(leaf_errors[i])) {
      scheduler.Drop(i, leaf_errors[i]);
    }
  }
  if (request.progress) request.progress(scheduler.verified_bytes(), size);

  // The hashing cores shared out among the holders' pools.
  const size_t cores = std::max<size_t>(1, std::thread::hardware_concurrency());
  // Flushes the partial file as it fills, so that the fsync below has
  // little left (peerctl/file_flusher.h); made durable, its verified
  // chunks also survive a crash for the next get to resume from.
  FileFlusher flusher(file->get(), kFlushStepBytes);
  const Shared shared{&*leaves,    size,
                      file->get(), dir_fd,
                      &partial,    std::max<size_t>(1, cores / holders.size()),
                      &scheduler,  &flusher};
  std::vector<WorkerState> states(holders.size());
  std::vector<std::thread> workers;
  workers.reserve(holders.size());
  for (size_t i = 0; i < holders.size(); ++i) {
    Bounds worker_bounds = holder_bounds;
    worker_bounds.cancel = &states[i].cancel;
    workers.emplace_back([&, i, worker_bounds] {
      NameThisThread(absl::StrCat("fetch-", i));
      FetchFromHolder(i, holders[i], shared, worker_bounds, states[i]);
    });
  }
  // Ends the download: the scheduler first (so that a worker stopped now
  // is not taken for a slow one), then every worker's flag.
  auto stop_all = [&] {
    scheduler.Stop();
    for (WorkerState& state : states) {
      state.cancel.store(true, std::memory_order_relaxed);
    }
  };
  // The calling thread watches: the cancel flag and the deadline (which
  // stop every worker), and the progress, until the download ends.
  absl::Status ended;
  uint64_t last_progress = ~uint64_t{0};
  for (;;) {
    const bool done = scheduler.WaitForEndOrChange(kWatchInterval);
    if (request.progress) {
      uint64_t received = scheduler.verified_bytes();
      for (const WorkerState& state : states) {
        received += state.in_flight.load(std::memory_order_relaxed);
      }
      received = std::min(received, size);
      if (received != last_progress) request.progress(received, size);
      last_progress = received;
    }
    // After the progress, which may be what sets the cancel flag.
    if (bounds.cancelled()) {
      ended = absl::CancelledError("download cancelled");
      stop_all();
    } else if (absl::Now() >= bounds.deadline) {
      ended = absl::DeadlineExceededError(
          absl::StrCat("out of time while downloading ", request.name));
      stop_all();
    }
    if (done || !ended.ok()) break;
    DropSlowHolders(scheduler, states);
  }
  // Done: a worker still connecting to a holder that does not answer (or
  // waiting for work) stops at once instead of at its timeout.
  stop_all();
  for (std::thread& worker : workers) worker.join();
  if (!ended.ok()) return ended;
  if (!scheduler.complete()) {
    std::vector<absl::Status> reasons = scheduler.drop_reasons();
    // The folder's failure stopped every holder: it alone says why.
    for (const absl::Status& reason : reasons) {
      if (IsFolderFailure(reason)) return reason;
    }
    for (size_t i = 0; i < reasons.size(); ++i) {
      if (reasons[i].ok()) reasons[i] = absl::UnknownError("not dropped");
    }
    return AllHoldersFailed(request.name, holders, reasons);
  }
  if (request.progress && last_progress != size) {
    request.progress(size, size);
  }
  absl::Status status = flusher.Sync();
  if (!status.ok()) return status;
  status = Publish(dir_fd, file->get(), partial, request.name);
  if (absl::IsAlreadyExists(status)) {
    absl::StatusOr<AtName> there =
        LookAtName(dir_fd, request.name, size, *request.expected_root);
    if (!there.ok()) return MarkFolderFailure(there.status());
    absl::StatusOr<bool> end = EndAtAFileThere(
        *there, /*downloaded=*/true, dir_fd, file->get(), partial, request);
    if (!end.ok()) return MarkFolderFailure(end.status());
    return end;
  }
  if (!status.ok()) return MarkFolderFailure(status);
  if (::fsync(dir_fd) != 0) {
    return MarkFolderFailure(ErrnoStatus("fsync(folder)", errno));
  }
  return true;
}

}  // namespace pcfs
