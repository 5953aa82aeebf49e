#include "peerctl/chunk_hasher.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/base/thread_name.h"
#include "core/base/unique_fd.h"
#include "core/proto/merkle.h"
#include "peerctl/exit_codes.h"

namespace pcfs {

absl::StatusOr<std::unique_ptr<ChunkHashPool>> ChunkHashPool::Create(
    int fd, uint64_t size, Options options) {
  const uint64_t chunks = MerkleChunkCount(size);
  if (!options.expected.empty() && options.expected.size() != chunks) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.expected.size(), " expected leaves for ", chunks, " chunks"));
  }
  size_t threads = options.threads;
  if (threads == 0) threads = std::thread::hardware_concurrency();
  threads = std::clamp<size_t>(threads, 1, kMaxHashThreads);
  threads = static_cast<size_t>(
      std::min<uint64_t>(threads, std::max<uint64_t>(chunks, 1)));
  std::unique_ptr<ChunkHashPool> pool(
      new ChunkHashPool(fd, size, std::move(options.expected), options.cancel));
  for (size_t i = 0; i < threads; ++i) {
    pool->threads_.emplace_back([p = pool.get(), i] {
      NameThisThread(absl::StrCat("hasher-", i));
      p->Work();
    });
  }
  return pool;
}

ChunkHashPool::ChunkHashPool(int fd, uint64_t size,
                             std::vector<Sha256Digest> expected,
                             const std::atomic<bool>* cancel)
    : fd_(fd),
      size_(size),
      expected_(std::move(expected)),
      cancel_(cancel),
      leaves_(MerkleChunkCount(size)),
      verified_(MerkleChunkCount(size), 0) {}

ChunkHashPool::~ChunkHashPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  work_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void ChunkHashPool::Submit(uint64_t index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(index);
    ++pending_;
  }
  work_.notify_one();
}

absl::Status ChunkHashPool::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [this] { return pending_ == 0; });
  return error_;
}

absl::Status ChunkHashPool::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void ChunkHashPool::Work() {
  std::vector<char> buffer(kMerkleChunkBytes);
  for (;;) {
    uint64_t index = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      index = queue_.front();
      queue_.pop_front();
    }
    // Once cancelled, this chunk and every one still queued count as
    // done, unhashed.
    const bool cancelled =
        cancel_ != nullptr && cancel_->load(std::memory_order_relaxed);
    absl::Status status = cancelled
                              ? absl::CancelledError("hashing was stopped")
                              : HashChunk(index, buffer);
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!status.ok() && error_.ok()) error_ = std::move(status);
      uint64_t done = 1;
      if (cancelled) {
        done += queue_.size();
        queue_.clear();
      }
      pending_ -= done;
      last = pending_ == 0;
    }
    if (last) done_.notify_all();
  }
}

absl::Status ChunkHashPool::HashChunk(uint64_t index,
                                      std::vector<char>& buffer) {
  const uint64_t offset = index * kMerkleChunkBytes;
  const size_t length = static_cast<size_t>(MerkleChunkLength(size_, index));
  absl::Status read = ReadAndHash(index, offset, length, buffer);
  if (!read.ok()) return read;
  if (expected_.empty()) {
    verified_[index] = 1;
    return absl::OkStatus();
  }
  if (leaves_[index] != expected_[index]) {
    return absl::DataLossError(absl::StrCat(
        "chunk ", index, " (bytes ", offset, "-", offset + length - 1,
        ") does not match its published hash: the holder sent corrupt data"));
  }
  verified_[index] = 1;
  return absl::OkStatus();
}

absl::Status ChunkHashPool::ReadAndHash(uint64_t index, uint64_t offset,
                                        size_t length,
                                        std::vector<char>& buffer) {
  size_t have = 0;
  while (have < length) {
    ssize_t n = ::pread(fd_, buffer.data() + have, length - have,
                        static_cast<off_t>(offset + have));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return MarkFolderFailure(ErrnoStatus("pread", errno));
    if (n == 0) {
      return absl::DataLossError(absl::StrCat("chunk ", index,
                                              " is cut short at byte ",
                                              offset + have, " of ", size_));
    }
    have += static_cast<size_t>(n);
  }
  leaves_[index] = MerkleLeafHash(absl::string_view(buffer.data(), length));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Sha256Digest>> HashLeaves(
    int fd, uint64_t size, size_t threads, const std::atomic<bool>* cancel) {
  ChunkHashPool::Options options;
  options.threads = threads;
  options.cancel = cancel;
  absl::StatusOr<std::unique_ptr<ChunkHashPool>> pool =
      ChunkHashPool::Create(fd, size, std::move(options));
  if (!pool.ok()) return pool.status();
  for (uint64_t i = 0; i < (*pool)->chunk_count(); ++i) (*pool)->Submit(i);
  absl::Status status = (*pool)->Wait();
  if (!status.ok()) return status;
  return (*pool)->leaves();
}

}  // namespace pcfs
