#include "peerctl/tls.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/base/file_util.h"
#include "core/base/unique_fd.h"
#include "peerctl/state_folder.h"

namespace pcfs {
namespace {

// TLS 1.3 suites, the cheapest first: with AES-NI, AES-128-GCM seals 16 KiB
// records a little faster than AES-256-GCM, OpenSSL's default first choice
// (`openssl speed -evp` here: 4.38 against 4.21 GB/s; ChaCha20-Poly1305
// 4.28). Both ends set the same order, so whichever side's preference
// OpenSSL follows, they agree.
constexpr char kCipherSuites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
    "TLS_CHACHA20_POLY1305_SHA256";

// The first queued OpenSSL error as text (and the queue emptied), for
// messages: "error:0A000086:SSL routines::certificate verify failed".
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();  // NOLINT(runtime/int): API
  ERR_clear_error();
  if (code == 0) return "no detail from OpenSSL";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

absl::Status OpenSslFailure(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslError()));
}

// The pin of a certificate's public key.
absl::StatusOr<KeyPin> PinOfCertificate(X509* certificate) {
  EVP_PKEY* key = X509_get0_pubkey(certificate);
  if (key == nullptr) return OpenSslFailure("X509_get0_pubkey");
  unsigned char* der = nullptr;
  const int size = i2d_PUBKEY(key, &der);
  if (size <= 0) return OpenSslFailure("i2d_PUBKEY");
  const KeyPin pin = PinOfSubjectPublicKeyInfo(absl::string_view(
      reinterpret_cast<const char*>(der), static_cast<size_t>(size)));
  OPENSSL_free(der);
  return pin;
}

// The SSL ex_data slot where a client connection keeps its State (the pin
// to accept and the verify callback's verdict); made once, thread-safely.
int ClientStateIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

KeyPin PinOfSubjectPublicKeyInfo(absl::string_view spki_der) {
  KeyPin pin{};
  unsigned int size = 0;
  EVP_Digest(spki_der.data(), spki_der.size(), pin.data(), &size, EVP_sha256(),
             nullptr);
  return pin;
}

std::string Base64Encode(absl::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int size =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(size));
  return out;
}

std::string CurlPinnedPublicKey(const KeyPin& pin) {
  return absl::StrCat(
      "sha256//", Base64Encode(absl::string_view(
                      reinterpret_cast<const char*>(pin.data()), pin.size())));
}

void OpenSslDeleter::operator()(evp_pkey_st* key) const { EVP_PKEY_free(key); }
void OpenSslDeleter::operator()(x509_st* cert) const { X509_free(cert); }
void OpenSslDeleter::operator()(ssl_ctx_st* context) const {
  SSL_CTX_free(context);
}
void OpenSslDeleter::operator()(ssl_st* ssl) const { SSL_free(ssl); }

absl::StatusOr<TlsIdentity> TlsIdentity::Generate() {
  TlsIdentity identity;
  identity.key_.reset(EVP_EC_gen("P-256"), OpenSslDeleter());
  if (identity.key_ == nullptr) return OpenSslFailure("EVP_EC_gen(P-256)");
  identity.certificate_.reset(X509_new(), OpenSslDeleter());
  X509* cert = identity.certificate_.get();
  if (cert == nullptr) return OpenSslFailure("X509_new");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) {
    return OpenSslFailure("RAND_bytes");
  }
  serial[0] &= 0x7F;  // a positive INTEGER
  BIGNUM* serial_number = BN_bin2bn(serial, sizeof(serial), nullptr);
  const bool serial_set =
      serial_number != nullptr &&
      BN_to_ASN1_INTEGER(serial_number, X509_get_serialNumber(cert)) != nullptr;
  BN_free(serial_number);
  if (!serial_set) return OpenSslFailure("certificate serial number");
  X509_NAME* name = X509_get_subject_name(cert);
  // No CA checks it: the name only helps a person reading the certificate.
  // It stays valid for a century: the pin, not the dates, is the check.
  if (X509_set_version(cert, 2) != 1 ||
      X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_ASC,
          reinterpret_cast<const unsigned char*>("peerconnectfs peer"), -1, -1,
          0) != 1 ||
      X509_set_issuer_name(cert, name) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert), 36500, 0, nullptr) ==
          nullptr ||
      X509_set_pubkey(cert, identity.key_.get()) != 1 ||
      X509_sign(cert, identity.key_.get(), EVP_sha256()) <= 0) {
    return OpenSslFailure("making the self-signed certificate");
  }
  absl::StatusOr<KeyPin> pin = PinOfCertificate(cert);
  if (!pin.ok()) return pin.status();
  identity.pin_ = *pin;
  return identity;
}

absl::StatusOr<TlsIdentity> TlsIdentity::FromPem(absl::string_view pem,
                                                 absl::string_view origin) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (bio == nullptr) return OpenSslFailure("BIO_new_mem_buf");
  TlsIdentity identity;
  identity.key_.reset(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
      OpenSslDeleter());
  identity.certificate_.reset(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
      OpenSslDeleter());
  if (identity.key_ == nullptr || identity.certificate_ == nullptr ||
      X509_check_private_key(identity.certificate_.get(),
                             identity.key_.get()) != 1) {
    ERR_clear_error();
    return absl::DataLossError(absl::StrCat(
        origin,
        " does not hold a private key and its certificate; move it away to "
        "make a new identity (holders then announce the new key at their "
        "next login)"));
  }
  absl::StatusOr<KeyPin> pin = PinOfCertificate(identity.certificate_.get());
  if (!pin.ok()) return pin.status();
  identity.pin_ = *pin;
  return identity;
}

absl::StatusOr<std::string> TlsIdentity::ToPem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()),
                                                &BIO_free);
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0,
                               nullptr, nullptr) != 1 ||
      PEM_write_bio_X509(bio.get(), certificate_.get()) != 1) {
    return OpenSslFailure("writing the identity as PEM");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);  // NOLINT: API type
  return std::string(data, static_cast<size_t>(size));
}

absl::StatusOr<TlsIdentity> TlsIdentity::LoadOrCreate(const std::string& path) {
  absl::StatusOr<std::string> existing = ReadFileToString(path);
  if (existing.ok()) return FromPem(*existing, path);
  if (!absl::IsNotFound(existing.status())) return existing.status();

  const std::string folder = FolderOf(path);
  if (absl::Status s = MakePrivateFolders(folder); !s.ok()) return s;
  absl::StatusOr<TlsIdentity> made = Generate();
  if (!made.ok()) return made.status();
  absl::StatusOr<std::string> pem = made->ToPem();
  if (!pem.ok()) return pem.status();

  // mkstemp makes the file 0600 before a byte of the key is in it.
  std::string temp = absl::StrCat(path, ".tmp.XXXXXX");
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(absl::StrCat("mkstemp ", temp), errno);
  absl::Status status = WriteAll(fd.get(), *pem, temp);
  if (status.ok() && ::fsync(fd.get()) != 0) {
    status = ErrnoStatus(absl::StrCat("fsync ", temp), errno);
  }
  fd.Reset();
  if (status.ok() && ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(),
                                 RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) {
      // Another peerctl made it first: use that one, as every later start
      // will.
      ::unlink(temp.c_str());
      absl::StatusOr<std::string> theirs = ReadFileToString(path);
      if (!theirs.ok()) return theirs.status();
      return FromPem(*theirs, path);
    }
    status = ErrnoStatus(absl::StrCat("rename ", temp, " to ", path), errno);
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  UniqueFd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir || ::fsync(dir.get()) != 0) {
    return ErrnoStatus(absl::StrCat("fsync ", folder), errno);
  }
  return made;
}

std::string DefaultTlsIdentityPath() {
  return StateFilePath("tls-identity.pem");
}

bool KernelTlsAvailable() {
  // The ULP can only be set on an established connection: make one.
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (!listener ||
      ::bind(listener.get(), reinterpret_cast<sockaddr*>(&address),
             sizeof(address)) != 0 ||
      ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address),
                    &length) != 0) {
    return false;
  }
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!client || ::connect(client.get(), reinterpret_cast<sockaddr*>(&address),
                           sizeof(address)) != 0) {
    return false;
  }
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return ::setsockopt(client.get(), SOL_TCP, TCP_ULP, "tls", sizeof("tls")) ==
         0;
}

absl::StatusOr<std::shared_ptr<TlsServerContext>> TlsServerContext::Create(
    const TlsIdentity& identity) {
  auto server = std::make_shared<TlsServerContext>();
  server->context_.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* context = server->context_.get();
  if (context == nullptr) return OpenSslFailure("SSL_CTX_new");
  if (SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) != 1 ||
      SSL_CTX_use_certificate(context, identity.certificate()) != 1 ||
      SSL_CTX_use_PrivateKey(context, identity.key()) != 1 ||
      SSL_CTX_check_private_key(context) != 1 ||
      SSL_CTX_set_num_tickets(context, 0) != 1 ||
      SSL_CTX_set_ciphersuites(context, kCipherSuites) != 1) {
    return OpenSslFailure("setting up the TLS server");
  }
  SSL_CTX_set_options(context, SSL_OP_ENABLE_KTLS);
  // Partial writes: a non-blocking send moves what the socket takes.
  SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  server->pin_ = identity.pin();
  return server;
}

absl::StatusOr<SslPtr> TlsServerContext::NewConnection(int fd) const {
  SslPtr ssl(SSL_new(context_.get()));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), fd) != 1) {
    return OpenSslFailure("SSL_new");
  }
  SSL_set_accept_state(ssl.get());
  return ssl;
}

namespace {

// Maps one SSL call's result to a wait, or an error.
absl::StatusOr<TlsWait> WaitOrError(ssl_st* ssl, int result,
                                    absl::string_view call) {
  const int error = SSL_get_error(ssl, result);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return TlsWait::kRead;
    case SSL_ERROR_WANT_WRITE:
      return TlsWait::kWrite;
    case SSL_ERROR_SYSCALL: {
      const int err = errno;
      ERR_clear_error();
      return absl::UnavailableError(absl::StrCat(
          call, ": ",
          err != 0 ? std::strerror(err) : "the connection was cut"));
    }
    default:
      return absl::UnavailableError(absl::StrCat(call, ": ", OpenSslError()));
  }
}

}  // namespace

absl::StatusOr<TlsIo> TlsRead(ssl_st* ssl, char* data, size_t size) {
  TlsIo io;
  errno = 0;
  const int result = SSL_read_ex(ssl, data, size, &io.bytes);
  if (result == 1) return io;
  if (SSL_get_error(ssl, result) == SSL_ERROR_ZERO_RETURN) {
    io.closed = true;
    return io;
  }
  absl::StatusOr<TlsWait> wait = WaitOrError(ssl, result, "TLS read");
  if (!wait.ok()) return wait.status();
  io.wait = *wait;
  return io;
}

absl::StatusOr<TlsIo> TlsWrite(ssl_st* ssl, const char* data, size_t size) {
  TlsIo io;
  errno = 0;
  const int result = SSL_write_ex(ssl, data, size, &io.bytes);
  if (result == 1) return io;
  absl::StatusOr<TlsWait> wait = WaitOrError(ssl, result, "TLS write");
  if (!wait.ok()) return wait.status();
  io.wait = *wait;
  return io;
}

absl::StatusOr<TlsWait> TlsHandshakeStep(ssl_st* ssl) {
  errno = 0;
  const int result = SSL_do_handshake(ssl);
  if (result == 1) return TlsWait::kNone;
  return WaitOrError(ssl, result, "TLS handshake");
}

ssize_t ReceiveSome(int fd, ssl_st* ssl, char* data, size_t size, TlsWait* wait,
                    absl::Status* tls_error) {
  *wait = TlsWait::kRead;
  if (ssl == nullptr) return ::recv(fd, data, size, 0);
  absl::StatusOr<TlsIo> io = TlsRead(ssl, data, size);
  if (!io.ok()) {
    *tls_error = io.status();
    errno = EPROTO;
    return -1;
  }
  if (io->closed) return 0;
  if (io->wait != TlsWait::kNone) {
    *wait = io->wait;
    errno = EAGAIN;
    return -1;
  }
  return static_cast<ssize_t>(io->bytes);
}

ssize_t SendSome(int fd, ssl_st* ssl, const char* data, size_t size, int flags,
                 TlsWait* wait, absl::Status* tls_error) {
  *wait = TlsWait::kWrite;
  if (ssl == nullptr) return ::send(fd, data, size, flags);
  absl::StatusOr<TlsIo> io = TlsWrite(ssl, data, size);
  if (!io.ok()) {
    *tls_error = io.status();
    errno = EPROTO;
    return -1;
  }
  if (io->wait != TlsWait::kNone) {
    *wait = io->wait;
    errno = EAGAIN;
    return -1;
  }
  return static_cast<ssize_t>(io->bytes);
}

bool UsesKernelTlsSend(ssl_st* ssl) {
  return BIO_get_ktls_send(SSL_get_wbio(ssl)) != 0;
}

// The client's pin and what the verify callback found.
struct TlsClientConnection::State {
  KeyPin pin{};
  bool mismatch = false;
};

namespace {

// Accepts the chain only if the holder's own certificate (depth 0) has the
// pinned key; no CA is consulted, so the chain's other errors (self-signed,
// dates) do not matter. TLS 1.3's CertificateVerify then proves that the
// holder has the private key.
int VerifyPinnedKey(int /*preverify_ok*/, X509_STORE_CTX* store) {
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* state = static_cast<TlsClientConnection::State*>(
      SSL_get_ex_data(ssl, ClientStateIndex()));
  X509* certificate = X509_STORE_CTX_get_current_cert(store);
  absl::StatusOr<KeyPin> pin = certificate != nullptr
                                   ? PinOfCertificate(certificate)
                                   : absl::InternalError("no certificate");
  if (state == nullptr || !pin.ok() || *pin != state->pin) {
    if (state != nullptr) state->mismatch = true;
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

}  // namespace

TlsClientConnection::TlsClientConnection(TlsClientConnection&&) noexcept =
    default;
TlsClientConnection& TlsClientConnection::operator=(
    TlsClientConnection&&) noexcept = default;
TlsClientConnection::~TlsClientConnection() = default;

absl::StatusOr<TlsClientConnection> TlsClientConnection::Create(
    int fd, const KeyPin& pin) {
  const int index = ClientStateIndex();
  if (index < 0) return OpenSslFailure("SSL_get_ex_new_index");
  TlsClientConnection connection;
  connection.state_ = std::make_unique<State>();
  connection.state_->pin = pin;
  connection.context_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* context = connection.context_.get();
  if (context == nullptr ||
      SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(context, kCipherSuites) != 1) {
    return OpenSslFailure("setting up the TLS client");
  }
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, VerifyPinnedKey);
  // Read ahead: one recv may bring several records, instead of two recvs
  // (header, then body) a record. SSL_read still says WANT_READ only when
  // no whole record is buffered, so waiting for the socket stays right.
  SSL_CTX_set_read_ahead(context, 1);
  SSL_CTX_set_default_read_buffer_len(context, 256 << 10);
  SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  connection.ssl_.reset(SSL_new(context));
  if (connection.ssl_ == nullptr ||
      SSL_set_fd(connection.ssl_.get(), fd) != 1 ||
      SSL_set_ex_data(connection.ssl_.get(), index, connection.state_.get()) !=
          1) {
    return OpenSslFailure("SSL_new");
  }
  SSL_set_connect_state(connection.ssl_.get());
  return connection;
}

bool TlsClientConnection::key_mismatch() const { return state_->mismatch; }

absl::StatusOr<TlsWait> TlsClientConnection::HandshakeStep() {
  absl::StatusOr<TlsWait> wait = TlsHandshakeStep(ssl_.get());
  if (state_->mismatch) {
    return absl::PermissionDeniedError("the holder presented another key");
  }
  if (!wait.ok() || *wait != TlsWait::kNone) return wait;
  // Belt and braces: the verify callback must have seen the pinned key.
  X509* certificate = SSL_get0_peer_certificate(ssl_.get());
  absl::StatusOr<KeyPin> pin = certificate != nullptr
                                   ? PinOfCertificate(certificate)
                                   : absl::InternalError("no certificate");
  if (!pin.ok() || *pin != state_->pin) {
    state_->mismatch = true;
    return absl::PermissionDeniedError("the holder presented another key");
  }
  return TlsWait::kNone;
}

}  // namespace pcfs
