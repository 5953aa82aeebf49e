#include "peerctl/resumable_download.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/base/names.h"
#include "core/base/unique_fd.h"
#include "core/proto/merkle.h"
#include "peerctl/body_sink.h"
#include "peerctl/chunk_hasher.h"
#include "peerctl/file_hash.h"

namespace pcfs {
namespace {

using download_internal::Bounds;

// The leaves of a file this large (2^40 chunks would be 32 TiB of leaves)
// are not taken in memory: 64 MiB of leaves is a 2 TiB file.
constexpr uint64_t kMaxLeafBytes = uint64_t{64} << 20;

// One request on a fresh connection: the response head, and the connection
// with the body bytes that came with the head.
struct Exchange {
  download_internal::HolderConnection connection;
  http::Response response;
  std::vector<char> buffer = std::vector<char>(http::kMaxHeadBytes);
  size_t body_start = 0;
  size_t filled = 0;

  absl::string_view prefix() const {
    return {buffer.data() + body_start, filled - body_start};
  }
};

absl::StatusOr<std::unique_ptr<Exchange>> Ask(const DownloadRequest& request,
                                              const std::string& head,
                                              const Bounds& bounds) {
  auto exchange = std::make_unique<Exchange>();
  absl::StatusOr<download_internal::HolderConnection> connection =
      download_internal::ConnectToHolder(request, bounds);
  if (!connection.ok()) return connection.status();
  exchange->connection = *std::move(connection);
  const download_internal::HolderLink link = exchange->connection.link();
  absl::Status sent = download_internal::SendAll(link, head, bounds);
  if (!sent.ok()) return sent;
  absl::StatusOr<http::Response> response = download_internal::ReadResponseHead(
      link, exchange->buffer, &exchange->body_start, &exchange->filled, bounds);
  if (!response.ok()) return response.status();
  exchange->response = *response;
  return exchange;
}

// The holder's leaves, checked against the expected root. NotFound when the
// holder has none to give (404).
absl::StatusOr<std::vector<Sha256Digest>> FetchLeaves(
    const DownloadRequest& request, uint64_t size, const Sha256Digest& root,
    const Bounds& bounds) {
  const uint64_t want = MerkleChunkCount(size) * kSha256Size;
  absl::StatusOr<std::unique_ptr<Exchange>> exchange =
      Ask(request,
          http::FormatRequestHead(request.name, request.holder.ToString(),
                                  request.ticket, std::nullopt,
                                  /*leaves=*/true),
          bounds);
  if (!exchange.ok()) return exchange.status();
  const http::Response& response = (*exchange)->response;
  if (response.status_code != http::kOk) {
    return http::StatusFromHttpCode(response.status_code);
  }
  if (!response.content_length || *response.content_length != want) {
    return absl::DataLossError(
        absl::StrCat("the holder offers ",
                     response.content_length ? *response.content_length : 0,
                     " bytes of chunk hashes; the file published has ", want));
  }
  std::string bytes((*exchange)->prefix().substr(0, want));
  bytes.resize(want);
  size_t have = std::min<size_t>((*exchange)->prefix().size(), want);
  while (have < want) {
    absl::StatusOr<size_t> n = download_internal::Receive(
        (*exchange)->connection.link(), bytes.data() + have, want - have,
        bounds, "sending the chunk hashes");
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return absl::DataLossError(
          "the holder closed the connection inside the chunk hashes");
    }
    have += *n;
  }
  absl::StatusOr<std::vector<Sha256Digest>> leaves =
      MerkleLeavesFromBytes(bytes);
  if (!leaves.ok()) return leaves.status();
  if (MerkleRoot(*leaves) != root) {
    return absl::DataLossError(absl::StrCat(
        "the holder's chunk hashes do not add up to the published root ",
        Sha256ToHex(root), ": it serves other contents"));
  }
  return leaves;
}

// The partial file, open, locked, of `size` bytes; `*reused` tells whether
// it held the file's size already (so that its chunks are worth checking).
absl::StatusOr<UniqueFd> OpenPartial(int dir_fd, const std::string& name,
                                     uint64_t size, bool* reused) {
  UniqueFd file(::openat(dir_fd, name.c_str(),
                         O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666));
  if (!file) return ErrnoStatus(absl::StrCat("open ", name), errno);
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) return ErrnoStatus("fstat", errno);
  if (!S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " is not a regular file"));
  }
  if (::flock(file.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::AlreadyExistsError(
          absl::StrCat("another get is downloading into ", name));
    }
    return ErrnoStatus("flock", errno);
  }
  *reused = static_cast<uint64_t>(info.st_size) == size;
  if (!*reused) {
    // Another size: nothing in it can be this file's. Start over.
    if (::ftruncate(file.get(), 0) != 0) return ErrnoStatus("ftruncate", errno);
    absl::Status reserved = download_internal::Preallocate(file.get(), size);
    if (!reserved.ok()) return reserved;
    if (::ftruncate(file.get(), static_cast<off_t>(size)) != 0) {
      return ErrnoStatus("ftruncate", errno);
    }
  }
  return file;
}

// Which chunks of the partial already match their leaves.
absl::StatusOr<std::vector<bool>> VerifiedChunks(
    int fd, uint64_t size, const std::vector<Sha256Digest>& leaves) {
  absl::StatusOr<std::vector<Sha256Digest>> found = HashLeaves(fd, size);
  if (!found.ok()) return found.status();
  std::vector<bool> verified(leaves.size());
  for (size_t i = 0; i < leaves.size(); ++i) {
    verified[i] = (*found)[i] == leaves[i];
  }
  return verified;
}

// Fetches chunks [first, end) into `fd` at their offset, each verified by
// `pool` on arrival.
absl::Status FetchRun(const DownloadRequest& request, int fd,
                      ChunkHashPool& pool, uint64_t first, uint64_t end,
                      const Bounds& bounds, uint64_t* received) {
  const uint64_t size = pool.size();
  const uint64_t from = first * kMerkleChunkBytes;
  const uint64_t to = std::min(end * kMerkleChunkBytes, size);  // exclusive
  const http::ByteRange range{from, to - 1};
  absl::StatusOr<std::unique_ptr<Exchange>> exchange =
      Ask(request,
          http::FormatRequestHead(request.name, request.holder.ToString(),
                                  request.ticket, range),
          bounds);
  if (!exchange.ok()) return exchange.status();
  const http::Response& response = (*exchange)->response;
  if (response.status_code != http::kPartialContent) {
    return response.status_code == http::kOk
               ? absl::InvalidArgumentError(
                     "the holder ignored the Range of the request")
               : http::StatusFromHttpCode(response.status_code);
  }
  const http::ContentRange expected{from, to - 1, size};
  if (!response.content_range || !(*response.content_range == expected)) {
    return absl::DataLossError(
        absl::StrCat("the holder sent another range than bytes ", from, "-",
                     to - 1, "/", size, " (the file published)"));
  }
  if (::lseek(fd, static_cast<off_t>(from), SEEK_SET) < 0) {
    return ErrnoStatus("lseek", errno);
  }
  absl::StatusOr<std::unique_ptr<BodySink>> sink = BodySink::Create(fd, &pool);
  if (!sink.ok()) return sink.status();
  const uint64_t before = *received;
  std::function<void(uint64_t, uint64_t)> progress;
  if (request.progress) {
    progress = [&](uint64_t got, uint64_t) {
      request.progress(before + got, size);
    };
  }
  absl::Status status = download_internal::ReceiveBody(
      (*exchange)->connection.link(), **sink, (*exchange)->prefix(), to - from,
      bounds, progress);
  // Wait for the chunks handed over either way: a corrupt chunk is the
  // better explanation of a body cut short by it.
  absl::Status checked = (*sink)->Finish();
  if (!checked.ok()) return checked;
  if (!status.ok()) return status;
  *received += to - from;
  return absl::OkStatus();
}

// Renames the verified partial to `name`, never replacing a file.
absl::Status Publish(int dir_fd, const std::string& partial,
                     const std::string& name) {
  if (::renameat2(dir_fd, partial.c_str(), dir_fd, name.c_str(),
                  RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  int err = errno;
  if (err == EINVAL) {
    // No RENAME_NOREPLACE on this file system: link (which never
    // replaces), then drop the partial name.
    if (::linkat(dir_fd, partial.c_str(), dir_fd, name.c_str(), 0) == 0) {
      ::unlinkat(dir_fd, partial.c_str(), 0);
      return absl::OkStatus();
    }
    err = errno;
  }
  if (err == EEXIST) {
    return absl::AlreadyExistsError(
        absl::StrCat(name, " appeared in the folder during the download"));
  }
  return ErrnoStatus("renameat2", err);
}

}  // namespace

std::string PartialFileName(absl::string_view name) {
  std::string partial = absl::StrCat(".", name, kPartialSuffix);
  return partial.size() <= kMaxFileNameBytes ? partial : std::string();
}

absl::StatusOr<bool> DownloadResumable(const DownloadRequest& request,
                                       int dir_fd, const Bounds& bounds) {
  if (!request.expected_size || !request.expected_root ||
      *request.expected_size == 0) {
    return false;
  }
  const std::string partial = PartialFileName(request.name);
  if (partial.empty()) return false;
  const uint64_t size = *request.expected_size;

  absl::StatusOr<std::vector<Sha256Digest>> leaves =
      MerkleChunkCount(size) * kSha256Size > kMaxLeafBytes
          ? absl::InvalidArgumentError(
                absl::StrCat("a file of ", size, " bytes is too large"))
          : FetchLeaves(request, size, *request.expected_root, bounds);
  if (absl::IsNotFound(leaves.status())) return false;
  if (!leaves.ok()) return leaves.status();

  bool reused = false;
  absl::StatusOr<UniqueFd> file = OpenPartial(dir_fd, partial, size, &reused);
  if (!file.ok()) return file.status();
  std::vector<bool> verified(leaves->size(), false);
  if (reused) {
    absl::StatusOr<std::vector<bool>> found =
        VerifiedChunks(file->get(), size, *leaves);
    if (!found.ok()) return found.status();
    verified = *std::move(found);
  }
  uint64_t received = 0;
  for (uint64_t i = 0; i < verified.size(); ++i) {
    if (verified[i]) received += MerkleChunkLength(size, i);
  }
  if (request.progress) request.progress(received, size);

  ChunkHashPool::Options options;
  options.expected = *leaves;
  absl::StatusOr<std::unique_ptr<ChunkHashPool>> pool =
      ChunkHashPool::Create(file->get(), size, std::move(options));
  if (!pool.ok()) return pool.status();
  // Each run of missing chunks is one Range request.
  for (uint64_t i = 0; i < verified.size();) {
    if (verified[i]) {
      ++i;
      continue;
    }
    uint64_t end = i + 1;
    while (end < verified.size() && !verified[end]) ++end;
    absl::Status status =
        FetchRun(request, file->get(), **pool, i, end, bounds, &received);
    if (!status.ok()) return status;
    i = end;
  }
  for (uint64_t i = 0; i < verified.size(); ++i) {
    if (!verified[i] && !(*pool)->Verified(i)) {
      return absl::InternalError(
          absl::StrCat("chunk ", i, " was not verified"));
    }
  }
  if (::fsync(file->get()) != 0) return ErrnoStatus("fsync", errno);
  absl::Status status = Publish(dir_fd, partial, request.name);
  if (!status.ok()) return status;
  if (::fsync(dir_fd) != 0) return ErrnoStatus("fsync(folder)", errno);
  return true;
}

}  // namespace pcfs
