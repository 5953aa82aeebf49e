#include "core/auth/aes_gcm.h"

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

using Implementation = AesGcm128::Implementation;

std::vector<uint8_t> Bytes(const std::string& hex) {
  const std::string raw = absl::HexStringToBytes(hex);
  return std::vector<uint8_t>(raw.begin(), raw.end());
}

template <typename Array>
Array ArrayOf(const std::string& hex) {
  const std::vector<uint8_t> bytes = Bytes(hex);
  Array out{};
  EXPECT_EQ(bytes.size(), out.size());
  std::copy_n(bytes.begin(), std::min(bytes.size(), out.size()), out.begin());
  return out;
}

std::string Hex(std::span<const uint8_t> bytes) {
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string NameOf(Implementation implementation) {
  return implementation == Implementation::kAesNi ? "AesNi" : "Evp";
}

class AesGcmTest : public testing::TestWithParam<Implementation> {
 protected:
  void SetUp() override {
    if (!AesGcm128::Supported(GetParam())) {
      GTEST_SKIP() << "this CPU does not run " << NameOf(GetParam());
    }
  }

  std::unique_ptr<AesGcm128> Keyed(const AesGcm128::Key& key) {
    std::unique_ptr<AesGcm128> cipher = AesGcm128::Make(GetParam());
    EXPECT_NE(cipher, nullptr);
    if (cipher != nullptr) {
      EXPECT_TRUE(cipher->SetKey(key));
    }
    return cipher;
  }
};

// The test cases of McGrew and Viega's GCM specification (the ones NIST's
// SP 800-38D validation cites) with a 128-bit key and a 96-bit IV.
struct Vector {
  const char* key;
  const char* nonce;
  const char* aad;
  const char* plaintext;
  const char* ciphertext;
  const char* tag;
};
constexpr Vector kVectors[] = {
    // Test case 1: nothing to encrypt, nothing to authenticate.
    {"00000000000000000000000000000000", "000000000000000000000000", "", "", "",
     "58e2fccefa7e3061367f1d57a4e7455a"},
    // Test case 2: one zero block.
    {"00000000000000000000000000000000", "000000000000000000000000", "",
     "00000000000000000000000000000000", "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"},
    // Test case 3: four blocks (the four-block path of the counter mode).
    {"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    // Test case 4: a partial last block and associated data.
    {"feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
};

TEST_P(AesGcmTest, SealsAndOpensTheSpecificationsVectors) {
  for (const Vector& v : kVectors) {
    SCOPED_TRACE(v.tag);
    std::unique_ptr<AesGcm128> cipher = Keyed(ArrayOf<AesGcm128::Key>(v.key));
    ASSERT_NE(cipher, nullptr);
    const auto nonce = ArrayOf<AesGcm128::Nonce>(v.nonce);
    const std::vector<uint8_t> aad = Bytes(v.aad);
    std::vector<uint8_t> body = Bytes(v.plaintext);
    AesGcm128::Tag tag{};
    ASSERT_TRUE(cipher->Seal(nonce, aad, body, tag));
    EXPECT_EQ(Hex(body), v.ciphertext);
    EXPECT_EQ(Hex(tag), v.tag);

    std::vector<uint8_t> opened(body.size());
    ASSERT_TRUE(cipher->Open(nonce, aad, body, tag, opened));
    EXPECT_EQ(Hex(opened), v.plaintext);
  }
}

TEST_P(AesGcmTest, RefusesAnyChangedByteOfTagBodyOrAssociatedData) {
  std::unique_ptr<AesGcm128> cipher =
      Keyed(ArrayOf<AesGcm128::Key>("000102030405060708090a0b0c0d0e0f"));
  ASSERT_NE(cipher, nullptr);
  const AesGcm128::Nonce nonce{1, 2, 3};
  std::vector<uint8_t> aad(44, 0x33);
  std::vector<uint8_t> body(70, 0x44);
  AesGcm128::Tag tag{};
  ASSERT_TRUE(cipher->Seal(nonce, aad, body, tag));
  std::vector<uint8_t> out(body.size());
  ASSERT_TRUE(cipher->Open(nonce, aad, body, tag, out));

  for (size_t i = 0; i < tag.size(); ++i) {
    AesGcm128::Tag changed = tag;
    changed[i] ^= 0x01;
    EXPECT_FALSE(cipher->Open(nonce, aad, body, changed, out)) << "tag " << i;
  }
  for (size_t i = 0; i < body.size(); ++i) {
    std::vector<uint8_t> changed = body;
    changed[i] ^= 0x80;
    EXPECT_FALSE(cipher->Open(nonce, aad, changed, tag, out)) << "body " << i;
  }
  for (size_t i = 0; i < aad.size(); ++i) {
    std::vector<uint8_t> changed = aad;
    changed[i] ^= 0x10;
    EXPECT_FALSE(cipher->Open(nonce, changed, body, tag, out)) << "aad " << i;
  }
  AesGcm128::Nonce other_nonce = nonce;
  other_nonce[11] ^= 1;
  EXPECT_FALSE(cipher->Open(other_nonce, aad, body, tag, out));
  // Nor does a body cut short or grown by a byte.
  EXPECT_FALSE(cipher->Open(nonce, aad, std::span(body).first(69), tag, out));
  std::vector<uint8_t> longer = body;
  longer.push_back(0);
  out.resize(longer.size());
  EXPECT_FALSE(cipher->Open(nonce, aad, longer, tag, out));
}

TEST_P(AesGcmTest, OpensInPlace) {
  std::unique_ptr<AesGcm128> cipher = Keyed(AesGcm128::Key{9});
  ASSERT_NE(cipher, nullptr);
  const AesGcm128::Nonce nonce{7};
  const std::vector<uint8_t> plaintext(100, 0x61);
  std::vector<uint8_t> body = plaintext;
  AesGcm128::Tag tag{};
  ASSERT_TRUE(cipher->Seal(nonce, {}, body, tag));
  EXPECT_NE(body, plaintext);
  ASSERT_TRUE(cipher->Open(nonce, {}, body, tag, body));
  EXPECT_EQ(body, plaintext);
}

TEST_P(AesGcmTest, KeyingAgainReplacesTheKey) {
  const AesGcm128::Key first{1}, second{2};
  std::unique_ptr<AesGcm128> cipher = Keyed(first);
  ASSERT_NE(cipher, nullptr);
  const AesGcm128::Nonce nonce{};
  std::vector<uint8_t> under_first(40, 0x11), under_second(40, 0x11);
  AesGcm128::Tag first_tag{}, second_tag{};
  ASSERT_TRUE(cipher->Seal(nonce, {}, under_first, first_tag));
  ASSERT_TRUE(cipher->SetKey(second));
  ASSERT_TRUE(cipher->Seal(nonce, {}, under_second, second_tag));
  EXPECT_NE(under_first, under_second);
  EXPECT_NE(first_tag, second_tag);
  std::vector<uint8_t> out(40);
  EXPECT_FALSE(cipher->Open(nonce, {}, under_first, first_tag, out));
  ASSERT_TRUE(cipher->SetKey(first));
  EXPECT_TRUE(cipher->Open(nonce, {}, under_first, first_tag, out));
}

INSTANTIATE_TEST_SUITE_P(Implementations, AesGcmTest,
                         testing::Values(Implementation::kAesNi,
                                         Implementation::kEvp),
                         [](const testing::TestParamInfo<Implementation>& p) {
                           return NameOf(p.param);
                         });

// The AES-NI implementation against OpenSSL's EVP one, over every body
// length a datagram can have (and a little more) and associated data of
// several lengths: the same ciphertext and tag, and each opens the other's.
TEST(AesGcmAgreementTest, AesNiAndEvpGiveTheSameBytes) {
  if (!AesGcm128::Supported(Implementation::kAesNi)) {
    GTEST_SKIP() << "this CPU has no AES-NI and PCLMULQDQ";
  }
  std::unique_ptr<AesGcm128> aes_ni = AesGcm128::Make(Implementation::kAesNi);
  std::unique_ptr<AesGcm128> evp = AesGcm128::Make(Implementation::kEvp);
  ASSERT_NE(aes_ni, nullptr);
  ASSERT_NE(evp, nullptr);
  std::mt19937_64 random(20261204);
  const auto fill = [&](std::span<uint8_t> bytes) {
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(random());
  };
  // Past 128 bytes the associated data alone fills a GHASH group (eight
  // blocks) and its padded end shares the next one with the body.
  constexpr size_t kAadLengths[] = {0, 1, 15, 16, 17, 44, 64, 127, 128, 200};
  for (size_t length = 0; length <= 1300; ++length) {
    SCOPED_TRACE(length);
    AesGcm128::Key key;
    AesGcm128::Nonce nonce;
    fill(key);
    fill(nonce);
    ASSERT_TRUE(aes_ni->SetKey(key));
    ASSERT_TRUE(evp->SetKey(key));
    std::vector<uint8_t> aad(kAadLengths[length % std::size(kAadLengths)]);
    fill(aad);
    std::vector<uint8_t> plaintext(length);
    fill(plaintext);

    std::vector<uint8_t> by_aes_ni = plaintext, by_evp = plaintext;
    AesGcm128::Tag aes_ni_tag{}, evp_tag{};
    ASSERT_TRUE(aes_ni->Seal(nonce, aad, by_aes_ni, aes_ni_tag));
    ASSERT_TRUE(evp->Seal(nonce, aad, by_evp, evp_tag));
    ASSERT_EQ(by_aes_ni, by_evp);
    ASSERT_EQ(aes_ni_tag, evp_tag);

    std::vector<uint8_t> out(length);
    ASSERT_TRUE(evp->Open(nonce, aad, by_aes_ni, aes_ni_tag, out));
    ASSERT_EQ(out, plaintext);
    std::fill(out.begin(), out.end(), 0);
    ASSERT_TRUE(aes_ni->Open(nonce, aad, by_evp, evp_tag, out));
    ASSERT_EQ(out, plaintext);
  }
}

TEST(AesGcmAgreementTest, FastestIsAesNiWhereTheCpuRunsIt) {
  EXPECT_TRUE(AesGcm128::Supported(Implementation::kEvp));
  EXPECT_EQ(AesGcm128::Fastest(), AesGcm128::Supported(Implementation::kAesNi)
                                      ? Implementation::kAesNi
                                      : Implementation::kEvp);
  std::unique_ptr<AesGcm128> fastest = AesGcm128::Make();
  ASSERT_NE(fastest, nullptr);
  EXPECT_EQ(fastest->implementation(), AesGcm128::Fastest());
}

}  // namespace
}  // namespace pcfs
