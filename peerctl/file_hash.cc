#include "peerctl/file_hash.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "absl/base/config.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "core/base/mutex_lock.h"
#include "core/base/names.h"
#include "core/proto/merkle.h"
#include "peerctl/chunk_hasher.h"

namespace pcfs {
namespace {

// openat2(2) has no glibc wrapper before 2.39.
int OpenAt2(int dir_fd, const char* path, const open_how& how) {
  return static_cast<int>(
      ::syscall(SYS_openat2, dir_fd, path, &how, sizeof(how)));
}

absl::Status OpenError(absl::string_view name, int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(absl::StrCat("no such file: ", name));
    case EXDEV:
    case ELOOP:
      return absl::PermissionDeniedError(
          absl::StrCat(name, " leads outside the share folder"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(
          absl::StrCat(name, " is not readable"));
    case ENXIO:
      return absl::FailedPreconditionError(
          absl::StrCat(name, " is not a regular file"));
    default:
      return ErrnoStatus(absl::StrCat("openat2 ", name), err);
  }
}

bool SameContentsStat(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

absl::StatusOr<UniqueFd> OpenDirectory(absl::string_view dir_path) {
  std::string path(dir_path);
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return ErrnoStatus(absl::StrCat("open ", dir_path), errno);
  return dir;
}

}  // namespace

void Sha256Hasher::ContextDeleter::operator()(EVP_MD_CTX* context) const {
  EVP_MD_CTX_free(context);
}

absl::StatusOr<Sha256Hasher> Sha256Hasher::Create() {
  std::unique_ptr<EVP_MD_CTX, ContextDeleter> context(EVP_MD_CTX_new());
  if (!context ||
      EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("EVP_DigestInit_ex(SHA-256) failed");
  }
  return Sha256Hasher(std::move(context));
}

void Sha256Hasher::Update(const void* data, size_t size) {
  EVP_DigestUpdate(context_.get(), data, size);
}

Sha256Digest Sha256Hasher::Finish() {
  Sha256Digest digest{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(context_.get(), digest.data(), &length);
  return digest;
}

absl::StatusOr<SharedFile> OpenSharedFile(int dir_fd, absl::string_view name) {
  absl::Status valid = ValidateFileName(name);
  if (!valid.ok()) return valid;
  std::string path(name);
  open_how how{};
  how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  SharedFile file;
  // EAGAIN: the kernel saw a concurrent rename and refuses to guess.
  for (int attempt = 0; attempt < 4 && !file.fd; ++attempt) {
    file.fd.Reset(OpenAt2(dir_fd, path.c_str(), how));
    if (!file.fd && errno != EAGAIN && errno != EINTR) {
      return OpenError(name, errno);
    }
  }
  if (!file.fd) return OpenError(name, errno);
  if (::fstat(file.fd.get(), &file.info) != 0) {
    return ErrnoStatus(absl::StrCat("fstat ", name), errno);
  }
  if (!S_ISREG(file.info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " is not a regular file"));
  }
  return file;
}

namespace {

// Hashes `fd`, whose fstat was `before`; Aborted unless the fstat after
// reading still matches it; Cancelled once `*cancel` (if given) is true.
absl::StatusOr<FileInfo> HashOpenFileSince(
    int fd, const struct stat& before,
    const std::atomic<bool>* cancel = nullptr) {
  FileInfo info;
  info.size = static_cast<uint64_t>(before.st_size);
  absl::StatusOr<std::vector<Sha256Digest>> leaves =
      HashLeaves(fd, info.size, /*threads=*/0, cancel);
  // A file cut short while it was read is a change, not damage.
  if (absl::IsDataLoss(leaves.status())) {
    return absl::AbortedError("the file changed while it was hashed");
  }
  if (!leaves.ok()) return leaves.status();
  info.leaves = *std::move(leaves);
  info.root = MerkleRoot(info.leaves);
  struct stat after {};
  if (::fstat(fd, &after) != 0) return ErrnoStatus("fstat", errno);
  if (!SameContentsStat(before, after)) {
    return absl::AbortedError("the file changed while it was hashed");
  }
  return info;
}

}  // namespace

absl::StatusOr<FileInfo> HashOpenFile(int fd) {
  struct stat before {};
  if (::fstat(fd, &before) != 0) return ErrnoStatus("fstat", errno);
  return HashOpenFileSince(fd, before);
}

absl::StatusOr<FileInfo> HashFile(int dir_fd, absl::string_view name) {
  absl::StatusOr<SharedFile> file = OpenSharedFile(dir_fd, name);
  if (!file.ok()) return file.status();
  return HashOpenFileSince(file->fd.get(), file->info);
}

absl::StatusOr<FileInfo> HashFile(absl::string_view dir_path,
                                  absl::string_view name) {
  absl::StatusOr<UniqueFd> dir = OpenDirectory(dir_path);
  if (!dir.ok()) return dir.status();
  return HashFile(dir->get(), name);
}

std::string Sha256ToHex(const Sha256Digest& digest) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(digest.size() * 2);
  for (uint8_t byte : digest) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 0xf];
  }
  return hex;
}

absl::StatusOr<Sha256Digest> Sha256FromHex(absl::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Sha256Digest digest{};
  if (hex.size() != digest.size() * 2) {
    return absl::InvalidArgumentError("a SHA-256 is 64 hex digits");
  }
  for (size_t i = 0; i < digest.size(); ++i) {
    int high = nibble(hex[2 * i]);
    int low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      return absl::InvalidArgumentError("a SHA-256 is 64 hex digits");
    }
    digest[i] = static_cast<uint8_t>(high * 16 + low);
  }
  return digest;
}

FileIdentity IdentityOf(const struct stat& info) {
  FileIdentity key;
  key.device = static_cast<uint64_t>(info.st_dev);
  key.inode = static_cast<uint64_t>(info.st_ino);
  key.size = static_cast<uint64_t>(info.st_size);
  key.mtime_sec = info.st_mtim.tv_sec;
  key.mtime_nsec = info.st_mtim.tv_nsec;
  return key;
}

absl::StatusOr<FileInfo> FileHashCache::Hash(int dir_fd, absl::string_view name,
                                             FileIdentity* identity,
                                             const std::atomic<bool>* cancel,
                                             bool reread_added) {
  absl::StatusOr<SharedFile> file = OpenSharedFile(dir_fd, name);
  if (!file.ok()) return file.status();
  const Key key = IdentityOf(file->info);
  if (identity != nullptr) *identity = key;
  {
    MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && !(reread_added && it->second.added)) {
      return it->second.info;
    }
    ++files_read_;
  }
  // Hash outside the lock: a large file takes seconds.
  absl::StatusOr<FileInfo> info =
      HashOpenFileSince(file->fd.get(), file->info, cancel);
  if (!info.ok() || capacity_ == 0) return info;
  // The fstat after hashing matched the one `key` comes from (else Aborted),
  // so `key` describes the contents hashed.
  MutexLock lock(&mu_);
  if (entries_.size() >= capacity_ && !entries_.contains(key)) {
    entries_.erase(entries_.begin());
  }
  entries_[key] = Entry{*info, false};
  return info;
}

absl::StatusOr<FileInfo> FileHashCache::Hash(absl::string_view dir_path,
                                             absl::string_view name,
                                             FileIdentity* identity,
                                             const std::atomic<bool>* cancel,
                                             bool reread_added) {
  absl::StatusOr<UniqueFd> dir = OpenDirectory(dir_path);
  if (!dir.ok()) return dir.status();
  return Hash(dir->get(), name, identity, cancel, reread_added);
}

absl::StatusOr<std::optional<FileInfo>> FileHashCache::Cached(
    absl::string_view dir_path, absl::string_view name,
    FileIdentity* identity) const {
  absl::StatusOr<UniqueFd> dir = OpenDirectory(dir_path);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<SharedFile> file = OpenSharedFile(dir->get(), name);
  if (!file.ok()) return file.status();
  const Key key = IdentityOf(file->info);
  if (identity != nullptr) *identity = key;
  MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.info;
}

std::vector<std::pair<FileIdentity, FileInfo>> FileHashCache::Entries() const {
  MutexLock lock(&mu_);
  std::vector<std::pair<FileIdentity, FileInfo>> entries;
  entries.reserve(entries_.size());
  for (const auto& [identity, entry] : entries_) {
    entries.emplace_back(identity, entry.info);
  }
  return entries;
}

void FileHashCache::Add(const FileIdentity& identity, FileInfo info) {
  if (capacity_ == 0) return;
  MutexLock lock(&mu_);
  if (entries_.size() >= capacity_ && !entries_.contains(identity)) {
    entries_.erase(entries_.begin());
  }
  entries_[identity] = Entry{std::move(info), true};
}

uint64_t FileHashCache::files_read() const {
  MutexLock lock(&mu_);
  return files_read_;
}

}  // namespace pcfs
