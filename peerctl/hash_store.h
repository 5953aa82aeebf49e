// The hash store: FileHashCache's entries kept on disk between runs, so that
// a shell or agent that starts with files published by an earlier run checks
// the unchanged ones at once instead of reading them again (a large shared
// folder would otherwise be read whole at every start, and its files
// answered 503 meanwhile).
//
// The file ($XDG_STATE_HOME/peerconnect/file-hashes) holds, per version of
// a file (device, inode, size and mtime to the nanosecond, as FileIdentity),
// its Merkle leaves; the root is computed from them when loaded. It is a
// cache: a store that is missing, damaged or of another format is ignored
// with a warning and the files are hashed again; nothing else depends on it.
//
// Format (integers big-endian):
//   "PCFSHASH" | u32 version (1) | u32 entry count
//   per entry: u64 device | u64 inode | u64 size | i64 mtime_sec |
//              i64 mtime_nsec | the root (32 bytes) | the leaves, 32 bytes
//              each (MerkleChunkCount(size) of them)
//   SHA-256 of every byte before it
#ifndef PCFS_PEERCTL_HASH_STORE_H_
#define PCFS_PEERCTL_HASH_STORE_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "peerctl/file_hash.h"

namespace pcfs {

using HashStoreEntries = std::vector<std::pair<FileIdentity, FileInfo>>;

// The largest store read or written: 32 bytes of leaves a MiB, so 64 MiB
// holds the leaves of 2 TiB of files. Entries beyond it are not stored
// (those files are read again at a start).
inline constexpr size_t kMaxHashStoreBytes = size_t{64} << 20;

// The store's bytes for `entries` (each entry's leaves must add up to its
// root, as FileHashCache's do).
std::string EncodeHashStore(const HashStoreEntries& entries);
// The entries of a store. DataLoss naming the byte offset if it is cut
// short, its checksum does not match, or an entry's leaves do not fit its
// size; InvalidArgument if it is not a store of this format.
absl::StatusOr<HashStoreEntries> DecodeHashStore(absl::string_view bytes);

// $XDG_STATE_HOME/peerconnect/file-hashes (~/.local/state/... without
// XDG_STATE_HOME); empty if neither variable gives an absolute path.
std::string DefaultHashStorePath();

// The store at `path`: NotFound if there is none; FailedPrecondition if it
// is not a regular file (a FIFO does not block) or is larger than
// kMaxHashStoreBytes; the errors of DecodeHashStore (with the path)
// otherwise.
absl::StatusOr<HashStoreEntries> LoadHashStore(const std::string& path);

// Writes `entries` to `path` whole (a temporary file renamed over it, so a
// reader sees the old store or the new one), making its folder (mode 0700)
// if needed. The file is not fsynced: losing it costs only a new read of
// the files.
absl::Status SaveHashStore(const std::string& path,
                           const HashStoreEntries& entries);

// Loads the store at `path` into `cache`. Returns a warning for the user
// if the store was there and could not be used (empty otherwise).
std::string LoadHashStoreInto(const std::string& path, FileHashCache& cache);
// Writes `cache`'s entries to `path`, with those the store already holds
// for other files (another peerctl of the same state folder may have added
// them), up to the cache's capacity and kMaxHashStoreBytes. Holds an
// exclusive flock on PATH.lock meanwhile, so that two peerctl saving at
// once lose neither's entries, and removes temporary files a peerctl
// killed while saving left. Returns a warning for the user on failure
// (empty otherwise).
std::string SaveHashStoreFrom(const std::string& path,
                              const FileHashCache& cache);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_HASH_STORE_H_
