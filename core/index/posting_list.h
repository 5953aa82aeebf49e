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

// A sorted set of ids, in blocks of 32 bytes: each block holds its first
// id and the gaps to the next ones as varints (one byte each where the
// trigram is common, so up to 27 ids a block). A walk reads the blocks in
// order; Cursor::SeekAtLeast gallops over the blocks. Insert and Erase
// find the block by binary search and move the gap bytes within it; only
// an insert into a full block (which splits it in halves) and an erase that
// leaves a block and the next one within three quarters of a block (which
// joins them) move the blocks after it.
//
// The list itself is 32 bytes. Up to one block's worth of ids (most lists
// of a large index: the trigrams of the random parts of names hold a few
// ids each) live inline, in the list, with no heap block; longer lists
// keep an array of blocks on the heap, sized to within an eighth of what
// they hold (not doubled), and go back inline once their ids fit in one
// block again.
class PostingList {
 public:
  PostingList() = default;
  ~PostingList() { Release(); }
  // Not copied or moved: a cursor points into the list's inline block.
  PostingList(const PostingList&) = delete;
  PostingList& operator=(const PostingList&) = delete;

  uint32_t size() const { return heap() ? heap_.size : inline_.count; }
  bool empty() const { return size() == 0; }
  // Bytes of heap the list holds (its block array; 0 while inline).
  size_t heap_bytes() const {
    return heap() ? size_t{heap_.capacity} * sizeof(Block) : 0;
  }

  // REQUIRES: `id` is not in the list.
  void Insert(uint32_t id);
  // Returns false if `id` is not in the list.
  bool Erase(uint32_t id);
  // Removes every id and lets go of the heap array.
  void Clear() {
    Release();
    inline_ = Block{};
  }

  // Walks the ids in increasing order. Its state is a copy of the list's
  // block array's place and size, so that the list must not change while
  // a cursor is in use.
  class Cursor;

 private:
  static constexpr size_t kGapBytes = 26;
  static constexpr size_t kMaxBlockIds = kGapBytes + 1;
  // Erase joins two blocks whose gaps fit in this many bytes.
  static constexpr size_t kJoinBytes = kGapBytes * 3 / 4;
  struct Block {
    uint32_t first = 0;
    uint8_t count = 0;  // ids in the block: >= 1, but 0 in an empty list
    uint8_t used = 0;   // bytes of `gaps` in use
    uint8_t gaps[kGapBytes] = {};
  };
  static_assert(sizeof(Block) == 32);
  // The heap form. Its first two fields share their layout with Block's
  // (a common initial sequence), so `count` tells the forms apart: no
  // inline block holds kHeapMark ids.
  static constexpr uint8_t kHeapMark = 0xff;
  struct Heap {
    uint32_t size;  // ids
    uint8_t mark;   // kHeapMark
    Block* blocks;  // `count` blocks in use of `capacity`, count >= 2
    uint32_t count;
    uint32_t capacity;
    uint32_t last;  // the largest id
  };
  static_assert(sizeof(Heap) <= sizeof(Block));
  // Room for the ids of two blocks, when joining them.
  using Ids = absl::InlinedVector<uint32_t, 2 * kMaxBlockIds>;

  bool heap() const { return inline_.count == kHeapMark; }
  const Block* blocks() const { return heap() ? heap_.blocks : &inline_; }
  Block* blocks() { return heap() ? heap_.blocks : &inline_; }
  size_t block_count() const {
    return heap() ? heap_.count : (inline_.count == 0 ? 0 : 1);
  }
  uint32_t last() const;
  static uint32_t LastOf(const Block& block);
  void Release() {
    if (heap()) delete[] heap_.blocks;
  }

  // The block that holds `id` or would: the last one starting at or before
  // it, else the first. REQUIRES: block_count() > 0.
  size_t BlockFor(uint32_t id) const;
  static void AppendIds(const Block& block, Ids& ids);
  // Inserts `id` into `block` by moving its gap bytes, when the block has
  // room; false (and the block unchanged) when it is full. REQUIRES: `id`
  // is not in the list, and belongs in this block (BlockFor).
  static bool InsertInBlock(Block& block, uint32_t id);
  // Erases `id` from a block of two or more ids by moving its gap bytes;
  // false if the block does not hold it.
  static bool EraseInBlock(Block& block, uint32_t id);
  // Writes as many of ids[0..n) as fit into `block`; returns how many.
  static size_t Encode(const uint32_t* ids, size_t n, Block& block);
  // Replaces `removed` blocks from block i on with `added` blocks from
  // `fresh`, switching between the inline and heap forms as the count of
  // blocks requires. Leaves size and last to the caller.
  void Splice(size_t i, size_t removed, const Block* fresh, size_t added);
  // Replaces block i with two blocks (or more, where gaps are long)
  // holding `ids`, half of them each.
  void Split(size_t i, const Ids& ids);
  // Sets the heap form's size and last (no-op while inline).
  void SetTotals(uint32_t size, uint32_t last) {
    if (!heap()) return;
    heap_.size = size;
    heap_.last = last;
  }

  union {
    Block inline_{};
    Heap heap_;
  };
};
static_assert(sizeof(PostingList) == 32);

class PostingList::Cursor {
 public:
  explicit Cursor(const PostingList& list)
      : blocks_(list.blocks()), block_count_(list.block_count()) {
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
