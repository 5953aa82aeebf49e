// Tests of core/proto/merkle.h against vectors computed outside this code.
//
// The roots below were computed once with a ten-line Python reference
// (hashlib; leaves SHA-256(b"\x00" + chunk), nodes SHA-256(b"\x01" + l + r),
// an odd last node promoted, SHA-256(b"") for no chunks) over Pattern(n);
// the one-chunk "abc" value also equals `printf '\x00abc' | openssl dgst
// -sha256`. A second, recursive reference in this file checks the level by
// level code on every leaf count up to 33.
#include "core/proto/merkle.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

// Byte i is (31 i + 7) mod 251: no period that lines up with a chunk.
std::string Pattern(uint64_t size) {
  std::string data(size, '\0');
  for (uint64_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>((i * 31 + 7) % 251);
  }
  return data;
}

Sha256Digest RootOf(const std::string& data) {
  std::vector<Sha256Digest> leaves;
  for (uint64_t i = 0; i < MerkleChunkCount(data.size()); ++i) {
    leaves.push_back(MerkleLeafHash(absl::string_view(data).substr(
        i * kMerkleChunkBytes, MerkleChunkLength(data.size(), i))));
  }
  return MerkleRoot(leaves);
}

std::string Hex(const Sha256Digest& digest) {
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

TEST(MerkleTest, ChunkCountsAndLengths) {
  EXPECT_EQ(MerkleChunkCount(0), 0u);
  EXPECT_EQ(MerkleChunkCount(1), 1u);
  EXPECT_EQ(MerkleChunkCount(kMerkleChunkBytes), 1u);
  EXPECT_EQ(MerkleChunkCount(kMerkleChunkBytes + 1), 2u);
  EXPECT_EQ(MerkleChunkLength(kMerkleChunkBytes + 1, 0), kMerkleChunkBytes);
  EXPECT_EQ(MerkleChunkLength(kMerkleChunkBytes + 1, 1), 1u);
  EXPECT_EQ(MerkleChunkLength(3 * kMerkleChunkBytes, 2), kMerkleChunkBytes);
}

TEST(MerkleTest, EmptyFileIsSha256OfNothing) {
  EXPECT_EQ(Hex(MerkleRoot({})),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(MerkleTest, KnownRoots) {
  struct Case {
    uint64_t size;
    const char* root;
  };
  const Case cases[] = {
      {kMerkleChunkBytes,
       "b24f8976d4a396c1d3fb28a43f5f05bcad8dfb89016b46f53938dcbf9303e015"},
      {kMerkleChunkBytes + 1,
       "36bfec2e6acb3a2b121a1f5df553486b3536ea6b5495015ef955eb1329451e81"},
      {3 * kMerkleChunkBytes,
       "521593a135ed97ac61125f132d3982525617eca6426af380e99fad63198dd250"},
      {5 * kMerkleChunkBytes - 1,
       "45a2c3725f5a119ceb09f46e4e23a9dde51598ff2ef85ab00181345bb2e442e0"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Hex(RootOf(Pattern(c.size))), c.root) << c.size << " bytes";
  }
  EXPECT_EQ(Hex(RootOf("abc")),
            "609f6e36d2405585188d5cfd761f407c7cc46a7d3f314c88270469dde315fcd1");
}

// The leaf and node prefixes keep the two kinds apart: a leaf whose bytes
// are two digests does not hash like the node over them.
TEST(MerkleTest, LeavesAndNodesAreSeparated) {
  const Sha256Digest a = MerkleLeafHash("a");
  const Sha256Digest b = MerkleLeafHash("b");
  std::string joined(reinterpret_cast<const char*>(a.data()), a.size());
  joined.append(reinterpret_cast<const char*>(b.data()), b.size());
  EXPECT_NE(MerkleLeafHash(joined), MerkleNodeHash(a, b));
  EXPECT_NE(MerkleNodeHash(a, b), MerkleNodeHash(b, a));
}

// The same tree stated recursively with OpenSSL's one-shot SHA256(): pair
// (0,1), (2,3), ..., carry an odd last node up, recurse on the parents.
Sha256Digest ReferenceRoot(std::vector<Sha256Digest> level) {
  if (level.empty()) {
    Sha256Digest empty{};
    SHA256(nullptr, 0, empty.data());
    return empty;
  }
  if (level.size() == 1) return level[0];
  std::vector<Sha256Digest> parents;
  for (size_t i = 0; i < level.size(); i += 2) {
    if (i + 1 == level.size()) {
      parents.push_back(level[i]);
      continue;
    }
    Sha256Digest node{};
    unsigned char input[1 + 2 * kSha256Size];
    input[0] = 0x01;
    std::copy(level[i].begin(), level[i].end(), input + 1);
    std::copy(level[i + 1].begin(), level[i + 1].end(), input + 1 + 32);
    SHA256(input, sizeof(input), node.data());
    parents.push_back(node);
  }
  return ReferenceRoot(parents);
}

TEST(MerkleTest, MatchesReferenceForEveryLeafCountUpTo33) {
  std::vector<Sha256Digest> leaves;
  for (int n = 0; n <= 33; ++n) {
    EXPECT_EQ(MerkleRoot(leaves), ReferenceRoot(leaves)) << n << " leaves";
    leaves.push_back(MerkleLeafHash(std::to_string(n)));
  }
}

// Any changed leaf changes the root.
TEST(MerkleTest, EveryLeafCounts) {
  std::vector<Sha256Digest> leaves;
  for (int i = 0; i < 7; ++i)
    leaves.push_back(MerkleLeafHash(std::to_string(i)));
  const Sha256Digest root = MerkleRoot(leaves);
  for (size_t i = 0; i < leaves.size(); ++i) {
    std::vector<Sha256Digest> changed = leaves;
    changed[i][0] ^= 1;
    EXPECT_NE(MerkleRoot(changed), root) << "leaf " << i;
  }
}

}  // namespace
}  // namespace pcfs
