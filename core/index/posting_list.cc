#include "core/index/posting_list.h"

#include <algorithm>
#include <cstring>

namespace pcfs {

size_t PostingList::BlockFor(uint32_t id) const {
  const Block* begin = blocks();
  const Block* end = begin + block_count();
  const Block* it = std::upper_bound(
      begin, end, id,
      [](uint32_t value, const Block& block) { return value < block.first; });
  return it == begin ? 0 : static_cast<size_t>(it - begin) - 1;
}

uint32_t PostingList::LastOf(const Block& block) {
  uint32_t id = block.first;
  const uint8_t* p = block.gaps;
  for (uint32_t i = 1; i < block.count; ++i) id += GetVarint(p);
  return id;
}

uint32_t PostingList::last() const {
  return heap() ? heap_.last : LastOf(inline_);
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

void PostingList::Split(size_t i, const Ids& ids) {
  // Halves, not a full block and a near-empty one: the next change of
  // either would join or split them again (Erase joins below kJoinBytes).
  const size_t half = (ids.size() + 1) / 2;
  absl::InlinedVector<Block, 3> fresh;
  for (size_t done = 0; done < ids.size();) {
    fresh.emplace_back();
    done += Encode(ids.data() + done, std::min(half, ids.size() - done),
                   fresh.back());
  }
  Splice(i, 1, fresh.data(), fresh.size());
}

void PostingList::Insert(uint32_t id) {
  const uint32_t size = this->size() + 1;
  const size_t count = block_count();
  const uint32_t last = count == 0 ? 0 : this->last();
  if (count > 0 && id < last) {  // into the middle
    const size_t i = BlockFor(id);
    if (!InsertInBlock(blocks()[i], id)) {  // full: split it
      Ids ids;
      AppendIds(blocks()[i], ids);
      ids.insert(std::upper_bound(ids.begin(), ids.end(), id), id);
      Split(i, ids);
    }
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

bool PostingList::InsertInBlock(Block& block, uint32_t id) {
  if (block.count >= kMaxBlockIds) return false;
  uint8_t* const gaps = block.gaps;
  // Where the new gap bytes go, the bytes they replace, and the gaps.
  size_t at = block.used;
  size_t replaced = 0;
  uint32_t before = 0;  // from the id before (0: `id` becomes the first)
  uint32_t after = 0;   // to the id after (0: `id` becomes the last)
  if (id < block.first) {
    at = 0;
    after = block.first - id;
  } else {
    uint32_t previous = block.first;
    const uint8_t* p = gaps;
    for (uint32_t k = 1; k < block.count; ++k) {
      const uint8_t* gap_start = p;
      const uint32_t next = previous + GetVarint(p);
      if (next > id) {
        at = static_cast<size_t>(gap_start - gaps);
        replaced = static_cast<size_t>(p - gap_start);
        after = next - id;
        break;
      }
      previous = next;
    }
    before = id - previous;
  }
  const size_t added = (before == 0 ? 0 : VarintSize(before)) +
                       (after == 0 ? 0 : VarintSize(after));
  if (block.used - replaced + added > kGapBytes) return false;
  std::memmove(gaps + at + added, gaps + at + replaced,
               block.used - at - replaced);
  uint8_t* out = gaps + at;
  if (before != 0) out = PutVarint(before, out);
  if (after != 0) PutVarint(after, out);
  if (before == 0) block.first = id;
  block.used = static_cast<uint8_t>(block.used - replaced + added);
  ++block.count;
  return true;
}

bool PostingList::EraseInBlock(Block& block, uint32_t id) {
  uint8_t* const gaps = block.gaps;
  if (id == block.first) {  // the next id becomes the first
    const uint8_t* p = gaps;
    block.first += GetVarint(p);
    const size_t size = static_cast<size_t>(p - gaps);
    std::memmove(gaps, p, block.used - size);
    block.used = static_cast<uint8_t>(block.used - size);
    --block.count;
    return true;
  }
  uint32_t previous = block.first;
  const uint8_t* p = gaps;
  for (uint32_t k = 1; k < block.count; ++k) {
    const uint8_t* gap_start = p;
    const uint32_t gap = GetVarint(p);
    if (previous + gap > id) return false;
    if (previous + gap < id) {
      previous += gap;
      continue;
    }
    const size_t at = static_cast<size_t>(gap_start - gaps);
    if (k + 1 == block.count) {  // the block's last id
      block.used = static_cast<uint8_t>(at);
    } else {  // its gap and the next one become one gap
      const uint8_t* tail = p;
      const uint32_t joined = gap + GetVarint(tail);
      const size_t end = static_cast<size_t>(tail - gaps);
      const size_t size =
          static_cast<size_t>(PutVarint(joined, gaps + at) - (gaps + at));
      std::memmove(gaps + at + size, gaps + end, block.used - end);
      block.used = static_cast<uint8_t>(block.used - (end - at - size));
    }
    --block.count;
    return true;
  }
  return false;
}

bool PostingList::Erase(uint32_t id) {
  const size_t count = block_count();
  if (count == 0) return false;
  const uint32_t old_last = last();
  if (id > old_last) return false;
  const size_t i = BlockFor(id);
  Block& block = blocks()[i];
  if (block.count == 1) {  // the block goes
    if (block.first != id) return false;
    Splice(i, 1, nullptr, 0);
  } else {
    if (!EraseInBlock(block, id)) return false;
    // Join with the next block when the two fit in three quarters of one,
    // so that erasing leaves no trail of near-empty blocks, and a block
    // just joined is not split again by the next insert.
    if (i + 1 < count) {
      const Block& next = blocks()[i + 1];
      const uint32_t gap = next.first - LastOf(block);
      if (block.used + VarintSize(gap) + next.used <= kJoinBytes) {
        uint8_t* out = PutVarint(gap, block.gaps + block.used);
        std::memcpy(out, next.gaps, next.used);
        block.used = static_cast<uint8_t>(out + next.used - block.gaps);
        block.count = static_cast<uint8_t>(block.count + next.count);
        Splice(i + 1, 1, nullptr, 0);
      }
    }
  }
  if (heap()) {
    SetTotals(size() - 1, id == old_last ? LastOf(heap_.blocks[heap_.count - 1])
                                         : old_last);
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
