#include "core/index/posting_list.h"

#include <algorithm>

namespace pcfs {

size_t PostingList::BlockFor(uint32_t id) const {
  auto it = std::upper_bound(
      blocks_.begin(), blocks_.end(), id,
      [](uint32_t value, const Block& block) { return value < block.first; });
  return it == blocks_.begin() ? 0
                               : static_cast<size_t>(it - blocks_.begin()) - 1;
}

void PostingList::AppendIds(const Block& block, Ids& ids) {
  ids.push_back(block.first);
  const uint8_t* p = block.gaps;
  for (uint32_t i = 1; i < block.count; ++i) {
    ids.push_back(ids.back() + GetVarint(p));
  }
}

size_t PostingList::Encode(const uint32_t* ids, size_t n, Block& block) {
  block.first = ids[0];
  uint8_t* out = block.gaps;
  size_t taken = 1;
  for (; taken < n; ++taken) {
    const uint32_t gap = ids[taken] - ids[taken - 1];
    if (static_cast<size_t>(out - block.gaps) + VarintSize(gap) > kGapBytes) {
      break;
    }
    out = PutVarint(gap, out);
  }
  block.count = static_cast<uint8_t>(taken);
  block.used = static_cast<uint8_t>(out - block.gaps);
  return taken;
}

void PostingList::Rewrite(size_t i, const Ids& ids) {
  absl::InlinedVector<Block, 2> fresh;
  for (size_t done = 0; done < ids.size();) {
    fresh.emplace_back();
    done += Encode(ids.data() + done, ids.size() - done, fresh.back());
  }
  const auto at = blocks_.begin() + static_cast<ptrdiff_t>(i);
  if (fresh.empty()) {
    blocks_.erase(at);
    return;
  }
  *at = fresh[0];
  blocks_.insert(at + 1, fresh.begin() + 1, fresh.end());
}

void PostingList::Insert(uint32_t id) {
  ++size_;
  if (!blocks_.empty() && id < last_) {  // into the middle
    const size_t i = BlockFor(id);
    Ids ids;
    AppendIds(blocks_[i], ids);
    ids.insert(std::upper_bound(ids.begin(), ids.end(), id), id);
    Rewrite(i, ids);
    return;
  }
  const uint32_t gap = id - last_;
  if (!blocks_.empty() && blocks_.back().used + VarintSize(gap) <= kGapBytes) {
    Block& tail = blocks_.back();
    tail.used =
        static_cast<uint8_t>(PutVarint(gap, tail.gaps + tail.used) - tail.gaps);
    ++tail.count;
  } else {
    blocks_.emplace_back();
    Encode(&id, 1, blocks_.back());
  }
  last_ = id;
}

bool PostingList::Erase(uint32_t id) {
  if (blocks_.empty() || id > last_) return false;
  const size_t i = BlockFor(id);
  Ids ids;
  AppendIds(blocks_[i], ids);
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  if (it == ids.end() || *it != id) return false;
  ids.erase(it);
  --size_;
  // Join with the next block when the two fit in one, so that erasing
  // leaves no trail of near-empty blocks.
  if (!ids.empty() && i + 1 < blocks_.size()) {
    const size_t mine = ids.size();
    AppendIds(blocks_[i + 1], ids);
    Block probe;
    if (Encode(ids.data(), ids.size(), probe) == ids.size()) {
      blocks_.erase(blocks_.begin() + static_cast<ptrdiff_t>(i) + 1);
    } else {
      ids.resize(mine);
    }
  }
  Rewrite(i, ids);
  if (size_ > 0 && id == last_) {
    Ids tail;
    AppendIds(blocks_.back(), tail);
    last_ = tail.back();
  }
  return true;
}

size_t PostingList::Cursor::Gallop(uint32_t target) const {
  // Every block before `lo` starts at or before target.
  size_t lo = block_ + 2;
  size_t probe = lo;
  for (size_t step = 1; probe < block_count_ && blocks_[probe].first <= target;
       step *= 2) {
    lo = probe + 1;
    probe = lo + step;
  }
  const Block* it = std::partition_point(
      blocks_ + lo, blocks_ + std::min(probe, block_count_),
      [&](const Block& b) { return b.first <= target; });
  return static_cast<size_t>(it - blocks_) - 1;
}

void PostingList::Cursor::SeekAtLeast(uint32_t target) {
  if (done() || id_ >= target) return;
  if (block_ + 1 < block_count_ && blocks_[block_ + 1].first <= target) {
    Enter(Gallop(target));
    if (id_ >= target) return;
  }
  // Target lies before the next block: the answer is in this block or is
  // that block's first id.
  uint32_t id = id_;
  uint32_t left = left_;
  const uint8_t* gap = gap_;
  while (id < target && left > 0) {
    id += GetVarint(gap);
    --left;
  }
  if (id < target) return Enter(block_ + 1);
  id_ = id;
  left_ = left;
  gap_ = gap;
}

}  // namespace pcfs
