// peerctl/tls.h: the pin and base64 helpers, the identity file, and a
// TLS 1.3 handshake that accepts only the pinned key.
#include "peerctl/tls.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "core/base/unique_fd.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

TEST(Base64Test, MatchesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(PinTest, IsTheSha256OfTheSpkiDer) {
  // SHA-256("abc"), FIPS 180-2's example.
  const KeyPin pin = PinOfSubjectPublicKeyInfo("abc");
  EXPECT_EQ(absl::BytesToHexString(absl::string_view(
                reinterpret_cast<const char*>(pin.data()), pin.size())),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(CurlPinnedPublicKey(pin),
            "sha256//ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
  EXPECT_FALSE(IsPlaintextPin(pin));
  EXPECT_TRUE(IsPlaintextPin(KeyPin{}));
}

TEST(TlsIdentityTest, PinCoversTheCertificatesPublicKey) {
  absl::StatusOr<TlsIdentity> identity = TlsIdentity::Generate();
  ASSERT_TRUE(identity.ok()) << identity.status();
  unsigned char* der = nullptr;
  const int size = i2d_PUBKEY(X509_get0_pubkey(identity->certificate()), &der);
  ASSERT_GT(size, 0);
  const KeyPin expected = PinOfSubjectPublicKeyInfo(absl::string_view(
      reinterpret_cast<const char*>(der), static_cast<size_t>(size)));
  OPENSSL_free(der);
  EXPECT_EQ(identity->pin(), expected);
}

class TempFolder {
 public:
  TempFolder() {
    std::string pattern = "/tmp/pcfs-tls-test.XXXXXX";
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempFolder() {
    std::string command = absl::StrCat("rm -rf '", path_, "'");
    (void)!std::system(command.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(TlsIdentityTest, IsMadeOnceWithMode0600AndReused) {
  TempFolder folder;
  const std::string path = folder.path() + "/state/peerconnect/id.pem";
  absl::StatusOr<TlsIdentity> first = TlsIdentity::LoadOrCreate(path);
  ASSERT_TRUE(first.ok()) << first.status();
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  absl::StatusOr<TlsIdentity> second = TlsIdentity::LoadOrCreate(path);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->pin(), second->pin());
  // No temporary file is left beside it.
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           folder.path() + "/state/peerconnect")) {
    EXPECT_EQ(entry.path().filename(), "id.pem");
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(TlsIdentityTest, DamagedFileIsAnErrorNotReplaced) {
  TempFolder folder;
  const std::string path = folder.path() + "/id.pem";
  {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT, 0600));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::write(fd.get(), "junk\n", 5), 5);
  }
  absl::StatusOr<TlsIdentity> identity = TlsIdentity::LoadOrCreate(path);
  EXPECT_TRUE(absl::IsDataLoss(identity.status())) << identity.status();
  EXPECT_EQ(*ReadFileToString(path), "junk\n");
}

// Runs a handshake over a socket pair: the server with `server_identity`,
// the client pinning `pin`. Returns the client's outcome.
absl::Status Handshake(const TlsIdentity& server_identity, const KeyPin& pin) {
  int ends[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, ends), 0);
  UniqueFd client_fd(ends[0]);
  UniqueFd server_fd(ends[1]);
  auto context = TlsServerContext::Create(server_identity);
  EXPECT_TRUE(context.ok());
  absl::StatusOr<SslPtr> server = (*context)->NewConnection(server_fd.get());
  EXPECT_TRUE(server.ok());
  absl::StatusOr<TlsClientConnection> client =
      TlsClientConnection::Create(client_fd.get(), pin);
  EXPECT_TRUE(client.ok());
  bool server_done = false;
  // Both ends step in turn on one thread; a handshake needs a few rounds.
  for (int round = 0; round < 50; ++round) {
    absl::StatusOr<TlsWait> c = client->HandshakeStep();
    if (!c.ok()) return c.status();
    if (!server_done) {
      absl::StatusOr<TlsWait> s = TlsHandshakeStep(server->get());
      if (s.ok() && *s == TlsWait::kNone) server_done = true;
      if (!s.ok()) return s.status();
    }
    if (*c == TlsWait::kNone && server_done) return absl::OkStatus();
  }
  return absl::DeadlineExceededError("handshake did not finish");
}

TEST(TlsHandshakeTest, AcceptsThePinnedKeyOnly) {
  absl::StatusOr<TlsIdentity> holder = TlsIdentity::Generate();
  absl::StatusOr<TlsIdentity> other = TlsIdentity::Generate();
  ASSERT_TRUE(holder.ok() && other.ok());
  EXPECT_TRUE(Handshake(*holder, holder->pin()).ok());
  absl::Status refused = Handshake(*other, holder->pin());
  EXPECT_TRUE(absl::IsPermissionDenied(refused)) << refused;
}

}  // namespace
}  // namespace pcfs
