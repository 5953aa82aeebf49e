// Files of the share folder: opening one safely, and its size and Merkle
// root (core/proto/merkle.h), the content identity `pub` records.
//
// OpenSharedFile() is the one place that decides which files of a share
// folder may leave the machine: the file server serves through it and `pub`
// hashes through it, so both refuse the same names. The name must pass
// ValidateFileName, is resolved with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS) below the folder (no "..", absolute path or symlink
// leads outside it; a symlink to another file inside it is followed), and
// must be a readable regular file.
#ifndef PCFS_PEERCTL_FILE_HASH_H_
#define PCFS_PEERCTL_FILE_HASH_H_

#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/base/digest.h"
#include "core/base/unique_fd.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace pcfs {

// A file of the share folder, open for reading, with its fstat.
struct SharedFile {
  UniqueFd fd;
  struct stat info {};
};

// Opens `name` below the directory `dir_fd` (O_RDONLY, O_NONBLOCK so that a
// FIFO cannot block the caller). Errors:
//   InvalidArgument     the name fails ValidateFileName
//   NotFound            no such file
//   PermissionDenied    not readable, or it resolves outside the folder
//   FailedPrecondition  not a regular file (a directory, a FIFO, ...)
// and the openat2 errno otherwise. Thread-safe.
absl::StatusOr<SharedFile> OpenSharedFile(int dir_fd, absl::string_view name);

// An incremental SHA-256 (OpenSSL EVP). Not thread-safe: one owner.
class Sha256Hasher {
 public:
  // Internal if OpenSSL cannot set up a digest context.
  static absl::StatusOr<Sha256Hasher> Create();

  void Update(const void* data, size_t size);
  // The digest of everything passed to Update(). REQUIRES: called once.
  Sha256Digest Finish();

 private:
  struct ContextDeleter {
    void operator()(evp_md_ctx_st* context) const;
  };
  explicit Sha256Hasher(std::unique_ptr<evp_md_ctx_st, ContextDeleter> c)
      : context_(std::move(c)) {}

  std::unique_ptr<evp_md_ctx_st, ContextDeleter> context_;
};

// The size and Merkle root of a file's contents, and the leaves (one a
// chunk) the root is computed from: a holder serves them to a resuming
// downloader (32 bytes a MiB).
struct FileInfo {
  uint64_t size = 0;
  Sha256Digest root{};
  std::vector<Sha256Digest> leaves;

  friend bool operator==(const FileInfo&, const FileInfo&) = default;
};

// Reads the whole of `fd` from offset 0 (pread; the file offset is not
// used) and hashes its chunks on a pool of threads (peerctl/chunk_hasher.h,
// one a core). Aborted if the file changed size or mtime while it was read.
// Thread-safe.
absl::StatusOr<FileInfo> HashOpenFile(int fd);

// OpenSharedFile + HashOpenFile, with the errors of both. Thread-safe.
absl::StatusOr<FileInfo> HashFile(int dir_fd, absl::string_view name);
// The same with the folder given by path (opened, then closed).
absl::StatusOr<FileInfo> HashFile(absl::string_view dir_path,
                                  absl::string_view name);

// Lower-case hex of a digest, and back (InvalidArgument unless exactly 64
// hex digits).
std::string Sha256ToHex(const Sha256Digest& digest);
absl::StatusOr<Sha256Digest> Sha256FromHex(absl::string_view hex);

// Remembers the hashes of files (root and leaves) by (device, inode, size,
// mtime), so that re-publishing an unchanged large file does not read it
// again, and a holder answers a resuming downloader's request for the leaves
// (peerctl/file_server.h) without reading the file. The leaves are kept, not
// just the root: 32 KiB a GiB, against a whole read of the file. A file
// changed in place keeps its inode but not its mtime (to the nanosecond), so
// it is hashed again. Holds at most `capacity` entries; when full it forgets
// an arbitrary one.
//
// Thread-safe: Hash() may be called from any number of threads; two threads
// hashing the same new file may both read it.
// Which version of a file's contents a path held: its device and inode,
// size and mtime to the nanosecond (a file changed in place keeps its inode
// but not its mtime; one replaced gets another inode).
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;

  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FileIdentity& identity) {
    return H::combine(std::move(h), identity.device, identity.inode,
                      identity.size, identity.mtime_sec, identity.mtime_nsec);
  }
};
FileIdentity IdentityOf(const struct stat& info);

class FileHashCache {
 public:
  explicit FileHashCache(size_t capacity = 1024) : capacity_(capacity) {}

  FileHashCache(const FileHashCache&) = delete;
  FileHashCache& operator=(const FileHashCache&) = delete;

  // Like HashFile(), but answers from the cache when the file is unchanged.
  // `identity`, if given, is set to that of the contents hashed. A read
  // stops, Cancelled, once `*cancel` (if given) is true. With
  // `reread_added`, an entry that Add() put in (another run's hash, from
  // the hash store) is not taken: the file is read and hashed here. `pub`
  // does so, so that a file changed in place since that run, keeping its
  // size and mtime, is published as it is now.
  absl::StatusOr<FileInfo> Hash(int dir_fd, absl::string_view name,
                                FileIdentity* identity = nullptr,
                                const std::atomic<bool>* cancel = nullptr,
                                bool reread_added = false);
  absl::StatusOr<FileInfo> Hash(absl::string_view dir_path,
                                absl::string_view name,
                                FileIdentity* identity = nullptr,
                                const std::atomic<bool>* cancel = nullptr,
                                bool reread_added = false);

  // What the cache holds for the file `name` is now, without reading it:
  // nullopt if it has nothing for that version. The errors of
  // OpenSharedFile; `identity`, if given, is set as by Hash().
  absl::StatusOr<std::optional<FileInfo>> Cached(
      absl::string_view dir_path, absl::string_view name,
      FileIdentity* identity = nullptr) const;

  // Every entry, and one more (for the hash store, peerctl/hash_store.h):
  // `info` must be what hashing the version `identity` gives. Add forgets
  // an arbitrary entry when full, as Hash does.
  std::vector<std::pair<FileIdentity, FileInfo>> Entries() const;
  void Add(const FileIdentity& identity, FileInfo info);
  size_t capacity() const { return capacity_; }

  // How many times a file's contents were read (misses); for tests.
  uint64_t files_read() const;

 private:
  using Key = FileIdentity;

  const size_t capacity_;
  mutable absl::Mutex mu_;
  struct Entry {
    FileInfo info;
    bool added = false;  // by Add() (from the hash store), not hashed here
  };
  absl::flat_hash_map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t files_read_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_FILE_HASH_H_
