#include "core/index/posting_list.h"

#include <algorithm>

namespace pcfs {

size_t PostingList::BlockFor(uint32_t id) const {
  const Block* begin = blocks();
  const Block* end = begin + block_count();
  const Block* it = std::upper_bound(
      begin, end, id,
      [](uint32_t value, const Block& block) { return value < block.first; });
  return it == begin ? 0 : static_cast<size_t>(it - begin) - 1;
}

uint32_t PostingList::last() const {
  if (heap()) return heap_.last;
  uint32_t id = inline_.first;
  const uint8_t* p = inline_.gaps;
  for (uint32_t i = 1; i < inline_.count; ++i) id += GetVarint(p);
  return id;
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

void PostingList::Splice(size_t i, size_t removed, const Block* fresh,
                         size_t added) {
  const size_t old_count = block_count();
  const size_t count = old_count - removed + added;
  if (count <= 1) {  // to (or staying in) the inline form
    Block only;
    if (count == 1) {
      only = added == 1 ? fresh[0] : blocks()[i == 0 ? removed : 0];
    }
    Release();
    inline_ = only;
    return;
  }
  // The heap form: reallocate when the array is inline, full, or holds
  // over a quarter more room than blocks (growth and shrinking by an
  // eighth keep the slack small at an amortized O(1) copy per block).
  const bool was_heap = heap();
  const size_t capacity = was_heap ? heap_.capacity : 0;
  Block* old = blocks();
  if (count > capacity || count + count / 4 + 1 < capacity) {
    const size_t room = count + count / 8;
    Block* array = new Block[room];
    std::copy(old, old + i, array);
    std::copy(fresh, fresh + added, array + i);
    std::copy(old + i + removed, old + old_count, array + i + added);
    const uint32_t size = was_heap ? heap_.size : inline_.count;
    const uint32_t last = was_heap ? heap_.last : 0;  // callers set it
    Release();
    heap_ = Heap{.size = size,
                 .mark = kHeapMark,
                 .blocks = array,
                 .count = static_cast<uint32_t>(count),
                 .capacity = static_cast<uint32_t>(room),
                 .last = last};
    return;
  }
  // In place (`fresh` is never part of the array: callers pass their own).
  if (added > removed) {
    std::copy_backward(old + i + removed, old + old_count, old + count);
  } else if (added < removed) {
    std::copy(old + i + removed, old + old_count, old + i + added);
  }
  std::copy(fresh, fresh + added, old + i);
  heap_.count = static_cast<uint32_t>(count);
}

void PostingList::Rewrite(size_t i, const Ids& ids) {
  absl::InlinedVector<Block, 2> fresh;
  for (size_t done = 0; done < ids.size();) {
    fresh.emplace_back();
    done += Encode(ids.data() + done, ids.size() - done, fresh.back());
  }
  Splice(i, 1, fresh.data(), fresh.size());
}

void PostingList::Insert(uint32_t id) {
  const uint32_t size = this->size() + 1;
  const size_t count = block_count();
  const uint32_t last = count == 0 ? 0 : this->last();
  if (count > 0 && id < last) {  // into the middle
    const size_t i = BlockFor(id);
    Ids ids;
    AppendIds(blocks()[i], ids);
    ids.insert(std::upper_bound(ids.begin(), ids.end(), id), id);
    Rewrite(i, ids);
    SetTotals(size, last);
    return;
  }
  const uint32_t gap = id - last;
  Block* tail = count == 0 ? nullptr : &blocks()[count - 1];
  if (tail != nullptr && tail->count < kMaxBlockIds &&
      tail->used + VarintSize(gap) <= kGapBytes) {
    tail->used = static_cast<uint8_t>(PutVarint(gap, tail->gaps + tail->used) -
                                      tail->gaps);
    ++tail->count;
  } else {
    Block fresh;
    Encode(&id, 1, fresh);
    Splice(count, 0, &fresh, 1);
  }
  SetTotals(size, id);
}

bool PostingList::Erase(uint32_t id) {
  const size_t count = block_count();
  if (count == 0 || id > last()) return false;
  const uint32_t size = this->size() - 1;
  const size_t i = BlockFor(id);
  Ids ids;
  AppendIds(blocks()[i], ids);
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  if (it == ids.end() || *it != id) return false;
  ids.erase(it);
  // Join with the next block when the two fit in one, so that erasing
  // leaves no trail of near-empty blocks.
  size_t replaced = 1;
  if (!ids.empty() && i + 1 < count) {
    const size_t mine = ids.size();
    AppendIds(blocks()[i + 1], ids);
    Block probe;
    if (Encode(ids.data(), ids.size(), probe) == ids.size()) {
      replaced = 2;
    } else {
      ids.resize(mine);
    }
  }
  absl::InlinedVector<Block, 2> fresh;
  for (size_t done = 0; done < ids.size();) {
    fresh.emplace_back();
    done += Encode(ids.data() + done, ids.size() - done, fresh.back());
  }
  const uint32_t old_last = last();
  Splice(i, replaced, fresh.data(), fresh.size());
  if (heap()) {
    uint32_t new_last = old_last;
    if (id == old_last) {
      Ids tail;
      AppendIds(heap_.blocks[heap_.count - 1], tail);
      new_last = tail.back();
    }
    SetTotals(size, new_last);
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
