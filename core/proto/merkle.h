// Merkle trees over fixed-size chunks: the content identity of a published
// file (its "root"), as `pub` records it, the daemon hands it out and the
// downloader verifies it (docs/PROTOCOL.md, "Content identity").
//
// A file is cut into chunks of kMerkleChunkBytes (the last one shorter, and
// an empty file has none). With RFC 6962's domain separation, so that a leaf
// can never pass for an inner node nor the other way round:
//   leaf = SHA-256(0x00 || chunk)
//   node = SHA-256(0x01 || left || right)
// The leaves are paired level by level from the left; an odd node at the end
// of a level is promoted to the next level unchanged. The root of one chunk
// is its leaf; the root of the empty file is SHA-256 of the empty string.
//
// Pure functions (libcrypto only); all are thread-safe.
#ifndef PCFS_CORE_PROTO_MERKLE_H_
#define PCFS_CORE_PROTO_MERKLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/base/digest.h"

namespace pcfs {

// The size of every chunk but the last. Part of the content identity: a
// different size gives different roots, so it changes only with the
// protocol version.
inline constexpr uint64_t kMerkleChunkBytes = uint64_t{1} << 20;

// The number of chunks of a file of `size` bytes (0 for the empty file).
uint64_t MerkleChunkCount(uint64_t size);

// The length of chunk `index` of a file of `size` bytes.
// REQUIRES: index < MerkleChunkCount(size).
uint64_t MerkleChunkLength(uint64_t size, uint64_t index);

// SHA-256(0x00 || chunk).
Sha256Digest MerkleLeafHash(absl::string_view chunk);

// SHA-256(0x01 || left || right).
Sha256Digest MerkleNodeHash(const Sha256Digest& left,
                            const Sha256Digest& right);

// The root over `leaves` (in chunk order); SHA-256("") for none.
Sha256Digest MerkleRoot(absl::Span<const Sha256Digest> leaves);

// The leaves as the holder sends them ("GET /m/NAME", docs/PROTOCOL.md):
// 32 bytes each, in chunk order, nothing else.
std::string MerkleLeavesToBytes(absl::Span<const Sha256Digest> leaves);
// The reverse; InvalidArgument unless `bytes` is a whole number of leaves.
absl::StatusOr<std::vector<Sha256Digest>> MerkleLeavesFromBytes(
    absl::string_view bytes);

}  // namespace pcfs

#endif  // PCFS_CORE_PROTO_MERKLE_H_
