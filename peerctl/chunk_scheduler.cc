#include "peerctl/chunk_scheduler.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "core/proto/merkle.h"

namespace pcfs {

ChunkScheduler::ChunkScheduler(uint64_t size, std::vector<bool> verified,
                               size_t holders, uint64_t max_run_chunks)
    : size_(size),
      max_run_chunks_(std::max<uint64_t>(max_run_chunks, 1)),
      owner_(verified.size(), kFree),
      dropped_(holders),
      active_(holders) {
  for (uint64_t i = 0; i < verified.size(); ++i) {
    if (verified[i]) {
      owner_[i] = kDone;
      ++done_;
      done_bytes_ += ChunkBytes(i);
    } else {
      ++free_;
    }
  }
}

uint64_t ChunkScheduler::ChunkBytes(uint64_t index) const {
  return MerkleChunkLength(size_, index);
}

bool ChunkScheduler::EndedLocked() const {
  return stopped_.load(std::memory_order_relaxed) || done_ == owner_.size() ||
         active_ == 0;
}

bool ChunkScheduler::WaitForWork(size_t holder) {
  std::unique_lock<std::mutex> lock(mu_);
  ++waiting_;
  changed_.wait(lock, [&] {
    return EndedLocked() || !dropped_[holder].ok() || free_ > 0;
  });
  --waiting_;
  return !EndedLocked() && dropped_[holder].ok();
}

bool ChunkScheduler::starving() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !EndedLocked() && free_ == 0 && waiting_ > 0;
}

std::optional<ChunkScheduler::Run> ChunkScheduler::TryTake(size_t holder) {
  std::lock_guard<std::mutex> lock(mu_);
  if (EndedLocked() || !dropped_[holder].ok() || free_ == 0) {
    return std::nullopt;
  }
  uint64_t first = first_free_hint_;
  while (owner_[first] != kFree) ++first;  // free_ > 0: one is ahead
  first_free_hint_ = first;
  // A fair share of what is still missing, whoever has it now: with two
  // holders, ten missing chunks go five and five.
  const uint64_t missing = owner_.size() - done_;
  uint64_t share = (missing + active_ - 1) / active_;
  if (active_ > 1) share = std::min(share, max_run_chunks_);
  uint64_t end = first;
  while (end < owner_.size() && end - first < share && owner_[end] == kFree) {
    owner_[end++] = static_cast<int64_t>(holder);
  }
  free_ -= end - first;
  return Run{first, end};
}

void ChunkScheduler::MarkVerified(size_t holder, uint64_t index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (owner_[index] != static_cast<int64_t>(holder)) return;
    owner_[index] = kDone;
    ++done_;
    done_bytes_ += ChunkBytes(index);
    ++changes_;
  }
  changed_.notify_all();
}

void ChunkScheduler::Release(size_t holder, uint64_t index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (owner_[index] != static_cast<int64_t>(holder)) return;
    owner_[index] = kFree;
    ++free_;
    first_free_hint_ = std::min(first_free_hint_, index);
  }
  changed_.notify_all();
}

void ChunkScheduler::Drop(size_t holder, absl::Status why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!dropped_[holder].ok()) return;
    if (why.ok()) why = absl::UnknownError("dropped");
    dropped_[holder] = std::move(why);
    --active_;
    ++changes_;
    for (uint64_t i = 0; i < owner_.size(); ++i) {
      if (owner_[i] != static_cast<int64_t>(holder)) continue;
      owner_[i] = kFree;
      ++free_;
      first_free_hint_ = std::min(first_free_hint_, i);
    }
  }
  changed_.notify_all();
}

void ChunkScheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_.store(true, std::memory_order_relaxed);
  }
  changed_.notify_all();
}

bool ChunkScheduler::WaitForEndOrChange(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(
      lock, std::chrono::microseconds(absl::ToInt64Microseconds(timeout)),
      [&] { return EndedLocked() || changes_ != changes_seen_; });
  changes_seen_ = changes_;
  return EndedLocked();
}

bool ChunkScheduler::complete() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_ == owner_.size();
}

size_t ChunkScheduler::active_holders() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

uint64_t ChunkScheduler::verified_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_bytes_;
}

std::vector<absl::Status> ChunkScheduler::drop_reasons() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

}  // namespace pcfs
