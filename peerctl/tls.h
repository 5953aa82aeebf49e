// TLS for peer transfers (docs/SECURITY.md, "Transfers"): each peerctl's
// identity (a key pair and a self-signed certificate kept in its state
// folder), the key pin the daemon hands downloaders, the server context the
// file server uses and the client connection the downloader uses.
//
// Trust: there is no CA and no trust on first use. A holder registers the
// pin of its key (SHA-256 of the DER SubjectPublicKeyInfo, exactly what
// curl's --pinnedpubkey sha256//BASE64 checks) with the daemon at login,
// inside the authenticated session; the GET reply hands it to the
// downloader, whose TLS client accepts only a certificate with that key. A
// zero pin means the holder serves plain HTTP (--plaintext-transfers).
// Only TLS 1.3 is spoken, both ways.
//
// Thread-safety: the pure helpers and TlsIdentity's const methods may be
// called from any thread; a TlsServerContext may be shared by threads (an
// SSL_CTX is, once set up). A TlsClientConnection is used by one thread.
#ifndef PCFS_PEERCTL_TLS_H_
#define PCFS_PEERCTL_TLS_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/digest.h"

// OpenSSL's types, declared so that users of this header need not include
// OpenSSL's.
struct evp_pkey_st;
struct x509_st;
struct ssl_ctx_st;
struct ssl_st;

namespace pcfs {

// SHA-256 of a DER SubjectPublicKeyInfo; all zero: plain HTTP.
using KeyPin = Sha256Digest;

inline bool IsPlaintextPin(const KeyPin& pin) { return pin == KeyPin{}; }

// The pin of a DER-encoded SubjectPublicKeyInfo (pure).
KeyPin PinOfSubjectPublicKeyInfo(absl::string_view spki_der);

// Standard base64 (RFC 4648, with padding; pure).
std::string Base64Encode(absl::string_view bytes);

// "sha256//BASE64": the pin as curl's --pinnedpubkey takes it (pure).
std::string CurlPinnedPublicKey(const KeyPin& pin);

struct OpenSslDeleter {
  void operator()(evp_pkey_st* key) const;
  void operator()(x509_st* cert) const;
  void operator()(ssl_ctx_st* context) const;
  void operator()(ssl_st* ssl) const;
};
using SslPtr = std::unique_ptr<ssl_st, OpenSslDeleter>;

// A key pair (ECDSA P-256) and a self-signed certificate for it.
class TlsIdentity {
 public:
  // The identity kept in `path` (a PEM file holding the private key and the
  // certificate, mode 0600), made on first use: generated, written to a
  // temporary file in the same folder, fsynced and linked into place
  // without replacing a file there (a concurrent first start of another
  // peerctl wins, and this one loads what it wrote). The folder is created
  // (0700) if need be. Errors name the file; a damaged file is an error,
  // never silently replaced.
  static absl::StatusOr<TlsIdentity> LoadOrCreate(const std::string& path);
  // A fresh identity held only in memory (tests, benchmarks).
  static absl::StatusOr<TlsIdentity> Generate();

  const KeyPin& pin() const { return pin_; }
  evp_pkey_st* key() const { return key_.get(); }
  x509_st* certificate() const { return certificate_.get(); }

 private:
  TlsIdentity() = default;
  static absl::StatusOr<TlsIdentity> FromPem(absl::string_view pem,
                                             absl::string_view origin);
  absl::StatusOr<std::string> ToPem() const;

  std::shared_ptr<evp_pkey_st> key_;
  std::shared_ptr<x509_st> certificate_;
  KeyPin pin_{};
};

// Where peerctl keeps its identity:
// $XDG_STATE_HOME/peerconnect/tls-identity.pem, else
// $HOME/.local/state/peerconnect/tls-identity.pem; empty if neither variable is
// set (to an absolute path).
std::string DefaultTlsIdentityPath();

// Whether this kernel offers kernel TLS (the "tls" TCP upper-layer
// protocol), probed on a loopback connection: the module may be absent.
bool KernelTlsAvailable();

// The file server's side: a TLS 1.3-only server context with the identity,
// kernel TLS asked for (SSL_OP_ENABLE_KTLS; OpenSSL uses it when the kernel
// and the cipher allow), no session tickets (each transfer is one
// connection; nothing to resume).
class TlsServerContext {
 public:
  static absl::StatusOr<std::shared_ptr<TlsServerContext>> Create(
      const TlsIdentity& identity);
  // A server connection on the non-blocking socket `fd` (not owned).
  absl::StatusOr<SslPtr> NewConnection(int fd) const;
  const KeyPin& pin() const { return pin_; }

 private:
  std::unique_ptr<ssl_ctx_st, OpenSslDeleter> context_;
  KeyPin pin_{};
};

// What a non-blocking TLS call needs before it can go on.
enum class TlsWait { kNone, kRead, kWrite };

// The result of one non-blocking TLS read or write: `bytes` moved, or a
// wait (bytes 0), or the end of the stream (`closed`), or an error.
struct TlsIo {
  size_t bytes = 0;
  TlsWait wait = TlsWait::kNone;
  bool closed = false;
};

// One non-blocking step of SSL_read_ex / SSL_write_ex / SSL_do_handshake on
// `ssl`. Errors: Unavailable for a reset or a TLS failure (an alert, a
// refused certificate), with OpenSSL's reason.
absl::StatusOr<TlsIo> TlsRead(ssl_st* ssl, char* data, size_t size);
absl::StatusOr<TlsIo> TlsWrite(ssl_st* ssl, const char* data, size_t size);
absl::StatusOr<TlsWait> TlsHandshakeStep(ssl_st* ssl);

// One recv(2) on `fd`, or one TLS read when `ssl` is not null, with recv's
// contract: the bytes read, 0 at the end of the stream, or -1 with errno.
// When the call must wait: -1 with errno EAGAIN, and `*wait` says for what
// (a TLS read may need the socket writable). A TLS failure: -1 with errno
// EPROTO and its status in `*tls_error`. Both the downloader and the file
// server move their bytes through these two.
ssize_t ReceiveSome(int fd, ssl_st* ssl, char* data, size_t size, TlsWait* wait,
                    absl::Status* tls_error);
// One send(2) on `fd` with `flags`, or one TLS write, the same way.
ssize_t SendSome(int fd, ssl_st* ssl, const char* data, size_t size, int flags,
                 TlsWait* wait, absl::Status* tls_error);

// Whether `ssl` sends through kernel TLS (then SSL_sendfile works).
bool UsesKernelTlsSend(ssl_st* ssl);

// The downloader's side: a TLS 1.3 client on the non-blocking socket `fd`
// (not owned) that accepts only a certificate whose key has `pin` (checked
// by the verify callback during the handshake, and again after it).
class TlsClientConnection {
 public:
  static absl::StatusOr<TlsClientConnection> Create(int fd, const KeyPin& pin);
  TlsClientConnection(TlsClientConnection&&) noexcept;
  TlsClientConnection& operator=(TlsClientConnection&&) noexcept;
  ~TlsClientConnection();

  // One handshake step. PermissionDenied if the holder presented another
  // key (key_mismatch() is then true); Unavailable for any other failure.
  absl::StatusOr<TlsWait> HandshakeStep();
  bool key_mismatch() const;
  ssl_st* ssl() const { return ssl_.get(); }

  // The pin and the verify callback's verdict (public for the callback).
  struct State;

 private:
  TlsClientConnection() = default;
  std::unique_ptr<ssl_ctx_st, OpenSslDeleter> context_;
  std::unique_ptr<State> state_;  // the pin and the verdict; stable address
  SslPtr ssl_;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_TLS_H_
