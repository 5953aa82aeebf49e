#include "core/proto/merkle.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "absl/strings/str_cat.h"

namespace pcfs {
namespace {

constexpr uint8_t kLeafPrefix = 0x00;
constexpr uint8_t kNodePrefix = 0x01;

// SHA-256 over the concatenation of `parts`. A context that OpenSSL cannot
// set up is out of memory or a broken libcrypto: there is no digest to
// return, and carrying on with a wrong one would be worse than stopping.
Sha256Digest Sha256Of(std::initializer_list<absl::string_view> parts) {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  if (context == nullptr ||
      EVP_DigestInit_ex(context, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
  for (absl::string_view part : parts) {
    EVP_DigestUpdate(context, part.data(), part.size());
  }
  Sha256Digest digest{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(context, digest.data(), &length);
  EVP_MD_CTX_free(context);
  return digest;
}

absl::string_view View(const Sha256Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

}  // namespace

uint64_t MerkleChunkCount(uint64_t size) {
  return size / kMerkleChunkBytes + (size % kMerkleChunkBytes != 0 ? 1 : 0);
}

uint64_t MerkleChunkLength(uint64_t size, uint64_t index) {
  const uint64_t start = index * kMerkleChunkBytes;
  return size - start < kMerkleChunkBytes ? size - start : kMerkleChunkBytes;
}

Sha256Digest MerkleLeafHash(absl::string_view chunk) {
  const char prefix = static_cast<char>(kLeafPrefix);
  return Sha256Of({absl::string_view(&prefix, 1), chunk});
}

Sha256Digest MerkleNodeHash(const Sha256Digest& left,
                            const Sha256Digest& right) {
  const char prefix = static_cast<char>(kNodePrefix);
  return Sha256Of({absl::string_view(&prefix, 1), View(left), View(right)});
}

Sha256Digest MerkleRoot(absl::Span<const Sha256Digest> leaves) {
  if (leaves.empty()) return Sha256Of({});
  std::vector<Sha256Digest> level(leaves.begin(), leaves.end());
  while (level.size() > 1) {
    size_t out = 0;
    for (size_t i = 0; i + 1 < level.size(); i += 2) {
      level[out++] = MerkleNodeHash(level[i], level[i + 1]);
    }
    if (level.size() % 2 == 1) level[out++] = level.back();  // promoted
    level.resize(out);
  }
  return level.front();
}

std::string MerkleLeavesToBytes(absl::Span<const Sha256Digest> leaves) {
  std::string bytes;
  bytes.reserve(leaves.size() * kSha256Size);
  for (const Sha256Digest& leaf : leaves) {
    bytes.append(reinterpret_cast<const char*>(leaf.data()), leaf.size());
  }
  return bytes;
}

absl::StatusOr<std::vector<Sha256Digest>> MerkleLeavesFromBytes(
    absl::string_view bytes) {
  if (bytes.size() % kSha256Size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        bytes.size(), " bytes are not a whole number of 32-byte leaves"));
  }
  std::vector<Sha256Digest> leaves(bytes.size() / kSha256Size);
  for (size_t i = 0; i < leaves.size(); ++i) {
    std::memcpy(leaves[i].data(), bytes.data() + i * kSha256Size, kSha256Size);
  }
  return leaves;
}

}  // namespace pcfs
