#include "peerctl/hash_store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "core/base/unique_fd.h"
#include "core/proto/merkle.h"
#include "peerctl/state_folder.h"

namespace pcfs {
namespace {

constexpr absl::string_view kMagic = "PCFSHASH";
constexpr uint32_t kVersion = 1;
constexpr size_t kDigestBytes = sizeof(Sha256Digest);
// The fixed part of an entry: device, inode, size, mtime_sec, mtime_nsec.
constexpr size_t kEntryHeadBytes = size_t{5} * 8;

void AppendBig(std::string& out, uint64_t v, size_t bytes) {
  for (size_t i = bytes; i-- > 0;) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

uint64_t LoadBig(absl::string_view in, size_t at, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) {
    v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  }
  return v;
}

absl::StatusOr<Sha256Digest> DigestOf(absl::string_view bytes) {
  absl::StatusOr<Sha256Hasher> hasher = Sha256Hasher::Create();
  if (!hasher.ok()) return hasher.status();
  hasher->Update(bytes.data(), bytes.size());
  return hasher->Finish();
}

absl::Status Damaged(size_t offset, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("byte ", offset, ": ", what));
}

}  // namespace

std::string EncodeHashStore(const HashStoreEntries& entries) {
  std::string out(kMagic);
  AppendBig(out, kVersion, 4);
  AppendBig(out, entries.size(), 4);
  for (const auto& [identity, info] : entries) {
    AppendBig(out, identity.device, 8);
    AppendBig(out, identity.inode, 8);
    AppendBig(out, identity.size, 8);
    AppendBig(out, static_cast<uint64_t>(identity.mtime_sec), 8);
    AppendBig(out, static_cast<uint64_t>(identity.mtime_nsec), 8);
    out.append(reinterpret_cast<const char*>(info.root.data()),
               info.root.size());
    for (const Sha256Digest& leaf : info.leaves) {
      out.append(reinterpret_cast<const char*>(leaf.data()), leaf.size());
    }
  }
  absl::StatusOr<Sha256Digest> digest = DigestOf(out);
  // Without a digest context nothing is hashed in this process either; a
  // zero checksum makes the store ignored at the next load.
  const Sha256Digest sum = digest.ok() ? *digest : Sha256Digest{};
  out.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  return out;
}

absl::StatusOr<HashStoreEntries> DecodeHashStore(absl::string_view bytes) {
  if (bytes.size() < kMagic.size() + 8 + kDigestBytes ||
      bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::InvalidArgumentError("not a PeerConnect hash store");
  }
  const uint64_t version = LoadBig(bytes, kMagic.size(), 4);
  if (version != kVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("hash store version ", version, ", not ", kVersion));
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - kDigestBytes);
  absl::StatusOr<Sha256Digest> digest = DigestOf(body);
  if (!digest.ok()) return digest.status();
  if (std::memcmp(digest->data(), bytes.data() + body.size(), kDigestBytes) !=
      0) {
    return Damaged(body.size(), "checksum does not match");
  }
  const uint64_t count = LoadBig(bytes, kMagic.size() + 4, 4);
  HashStoreEntries entries;
  size_t at = kMagic.size() + 8;
  for (uint64_t i = 0; i < count; ++i) {
    if (body.size() - at < kEntryHeadBytes) {
      return Damaged(at, absl::StrCat("entry ", i, " is cut short"));
    }
    FileIdentity identity;
    identity.device = LoadBig(body, at, 8);
    identity.inode = LoadBig(body, at + 8, 8);
    identity.size = LoadBig(body, at + 16, 8);
    identity.mtime_sec = static_cast<int64_t>(LoadBig(body, at + 24, 8));
    identity.mtime_nsec = static_cast<int64_t>(LoadBig(body, at + 32, 8));
    at += kEntryHeadBytes;
    // The root, then the leaves: the root is not computed again (over a
    // large store that would take seconds); the checksum covers both.
    const uint64_t leaves = MerkleChunkCount(identity.size);
    if (leaves + 1 > (body.size() - at) / kDigestBytes) {
      return Damaged(at, absl::StrCat("entry ", i, "'s leaves are cut short"));
    }
    FileInfo info;
    info.size = identity.size;
    std::memcpy(info.root.data(), body.data() + at, kDigestBytes);
    at += kDigestBytes;
    info.leaves.resize(leaves);
    for (Sha256Digest& leaf : info.leaves) {
      std::memcpy(leaf.data(), body.data() + at, kDigestBytes);
      at += kDigestBytes;
    }
    entries.emplace_back(identity, std::move(info));
  }
  if (at != body.size()) {
    return Damaged(at, "bytes after the last entry");
  }
  return entries;
}

std::string DefaultHashStorePath() { return StateFilePath("file-hashes"); }

absl::StatusOr<HashStoreEntries> LoadHashStore(const std::string& path) {
  // O_NONBLOCK: a FIFO put there must not block the start.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return absl::NotFoundError(path);
    return ErrnoStatus(absl::StrCat("open ", path), errno);
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    return ErrnoStatus(absl::StrCat("fstat ", path), errno);
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  if (size > kMaxHashStoreBytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": larger than ", kMaxHashStoreBytes, " bytes, so not read"));
  }
  // What fstat said, at most (a store cut short meanwhile: the checksum
  // says so).
  absl::StatusOr<std::string> bytes =
      ReadUpTo(fd.get(), static_cast<size_t>(size), path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<HashStoreEntries> entries = DecodeHashStore(*bytes);
  if (!entries.ok()) {
    return absl::Status(entries.status().code(),
                        absl::StrCat(path, ": ", entries.status().message()));
  }
  return entries;
}

absl::Status SaveHashStore(const std::string& path,
                           const HashStoreEntries& entries) {
  if (absl::Status s = MakePrivateFolderOf(path); !s.ok()) return s;
  std::string temp = absl::StrCat(path, ".tmp.XXXXXX");
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(absl::StrCat("mkstemp ", temp), errno);
  absl::Status status = WriteAll(fd.get(), EncodeHashStore(entries), temp);
  fd.Reset();
  if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus(absl::StrCat("rename ", temp, " to ", path), errno);
  }
  if (!status.ok()) ::unlink(temp.c_str());
  return status;
}

std::string LoadHashStoreInto(const std::string& path, FileHashCache& cache) {
  if (path.empty()) return "";
  absl::StatusOr<HashStoreEntries> entries = LoadHashStore(path);
  if (absl::IsNotFound(entries.status())) return "";
  if (!entries.ok()) {
    return absl::StrCat("not using the hash store (",
                        entries.status().message(),
                        "): files published earlier are read again");
  }
  for (auto& [identity, info] : *entries) {
    cache.Add(identity, std::move(info));
  }
  return "";
}

namespace {

// The bytes an entry takes in a store.
size_t EncodedSize(const FileInfo& info) {
  return kEntryHeadBytes + (info.leaves.size() + 1) * kDigestBytes;
}

// Removes PATH.tmp.* files in PATH's folder: under the lock, no other
// peerctl is writing one, so any there was left by one that was killed.
void RemoveStaleTemporaries(const std::string& path) {
  const std::string prefix =
      absl::StrCat(std::filesystem::path(path).filename().string(), ".tmp.");
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(FolderOf(path), error)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) == 0) {
      std::filesystem::remove(entry.path(), error);
    }
  }
}

}  // namespace

std::string SaveHashStoreFrom(const std::string& path,
                              const FileHashCache& cache) {
  if (path.empty()) return "";
  // The lock file goes beside the store.
  if (absl::Status s = MakePrivateFolderOf(path); !s.ok()) {
    return absl::StrCat("cannot save the hash store: ", s.message());
  }
  const std::string lock_path = absl::StrCat(path, ".lock");
  UniqueFd lock(::open(lock_path.c_str(),
                       O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock || ::flock(lock.get(), LOCK_EX) != 0) {
    return absl::StrCat(
        "cannot save the hash store: ",
        ErrnoStatus(absl::StrCat("lock ", lock_path), errno).message());
  }
  RemoveStaleTemporaries(path);
  HashStoreEntries entries;
  size_t bytes = kMagic.size() + 8 + kDigestBytes;
  absl::flat_hash_set<FileIdentity> held;
  const auto keep = [&](std::pair<FileIdentity, FileInfo> entry) {
    if (entries.size() >= cache.capacity()) return;
    const size_t more = EncodedSize(entry.second);
    if (bytes + more > kMaxHashStoreBytes) return;
    if (!held.insert(entry.first).second) return;
    bytes += more;
    entries.push_back(std::move(entry));
  };
  for (auto& entry : cache.Entries()) keep(std::move(entry));
  absl::StatusOr<HashStoreEntries> stored = LoadHashStore(path);
  if (stored.ok()) {
    for (auto& entry : *stored) keep(std::move(entry));
  }
  if (absl::Status s = SaveHashStore(path, entries); !s.ok()) {
    return absl::StrCat("cannot save the hash store: ", s.message(),
                        " (files published now are read again at the next "
                        "start)");
  }
  return "";
}

}  // namespace pcfs
