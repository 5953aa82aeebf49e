// PostingList: a sorted set of small integer ids, packed as varint gaps in
// 32-byte blocks, with a cursor that walks it in order and seeks forward.
// SearchIndex keeps one per trigram. Pure; not thread-safe (its owner
// serialises access), and a list must not change while a cursor reads it.
#ifndef PCFS_CORE_INDEX_POSTING_LIST_H_
#define PCFS_CORE_INDEX_POSTING_LIST_H_

#include <cstddef>
#include <cstdint>

#include "absl/container/inlined_vector.h"

namespace pcfs {

// Varints: 7 bits a byte, low first, the high bit set on all but the last.
inline size_t VarintSize(uint32_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

inline uint8_t* PutVarint(uint32_t value, uint8_t* out) {
  while (value >= 0x80) {
    *out++ = static_cast<uint8_t>(value | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<uint8_t>(value);
  return out;
}

inline uint32_t GetVarint(const uint8_t*& p) {
  uint32_t value = 0;
  for (int shift = 0;; shift += 7) {
    const uint8_t byte = *p++;
    value |= static_cast<uint32_t>(byte & 0x7F) << shift;
    if (byte < 0x80) return value;
  }
}

// A sorted set of ids, in blocks of 32 bytes kept in one array: each block
// holds its first id and the gaps to the next ones as varints (one byte
// each where the trigram is common, so up to 27 ids a block). A walk reads
// the array in order; Insert and Erase rewrite one or two blocks and move
// the blocks after them; Cursor::SeekAtLeast gallops over the blocks.
class PostingList {
 public:
  uint32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // REQUIRES: `id` is not in the list.
  void Insert(uint32_t id);
  // Returns false if `id` is not in the list.
  bool Erase(uint32_t id);

  // Walks the ids in increasing order. Its state is a copy of the list's
  // block array's place and size, so that the list must not change while
  // a cursor is in use.
  class Cursor;

 private:
  static constexpr size_t kGapBytes = 26;
  static constexpr size_t kMaxBlockIds = kGapBytes + 1;
  struct Block {
    uint32_t first = 0;
    uint8_t count = 0;  // ids in the block, >= 1
    uint8_t used = 0;   // bytes of `gaps` in use
    uint8_t gaps[kGapBytes] = {};
  };
  static_assert(sizeof(Block) == 32);
  // Room for the ids of two blocks, when joining them.
  using Ids = absl::InlinedVector<uint32_t, 2 * kMaxBlockIds>;

  // The block that holds `id` or would: the last one starting at or before
  // it, else the first. REQUIRES: !blocks_.empty().
  size_t BlockFor(uint32_t id) const;
  static void AppendIds(const Block& block, Ids& ids);
  // Writes as many of ids[0..n) as fit into `block`; returns how many.
  static size_t Encode(const uint32_t* ids, size_t n, Block& block);
  // Replaces block i with blocks holding `ids` (none if it is empty).
  void Rewrite(size_t i, const Ids& ids);

  absl::InlinedVector<Block, 1> blocks_;
  uint32_t size_ = 0;
  uint32_t last_ = 0;  // the largest id, if any
};

class PostingList::Cursor {
 public:
  explicit Cursor(const PostingList& list)
      : blocks_(list.blocks_.data()), block_count_(list.blocks_.size()) {
    Enter(0);
  }
  bool done() const { return block_ == block_count_; }
  // REQUIRES: !done().
  uint32_t id() const { return id_; }
  void Next() {
    if (left_ == 0) return Enter(block_ + 1);
    id_ += GetVarint(gap_);
    --left_;
  }
  // Moves to the first id >= target (or to the end).
  void SeekAtLeast(uint32_t target);

 private:
  void Enter(size_t block) {
    block_ = block;
    if (done()) return;
    id_ = blocks_[block].first;
    gap_ = blocks_[block].gaps;
    left_ = blocks_[block].count - 1u;
  }
  // The last block starting at or before target, from the current one on.
  // REQUIRES: the next block starts at or before target.
  size_t Gallop(uint32_t target) const;

  const Block* blocks_;
  size_t block_count_;
  size_t block_ = 0;
  const uint8_t* gap_ = nullptr;
  uint32_t left_ = 0;  // ids after id_ in the block
  uint32_t id_ = 0;
};

}  // namespace pcfs

#endif  // PCFS_CORE_INDEX_POSTING_LIST_H_
