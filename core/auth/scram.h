// SCRAM-SHA-256 (RFC 5802 with the hash of RFC 7677): the login exchange in
// which the password never crosses the wire and the server holds only a
// verifier. This file is the pure part: the four messages, the key
// derivations, the verifier's text form, and the session key both sides
// derive after a successful exchange. It knows nothing of datagrams; the
// login handler carries the messages.
//
//   client                                    server
//   ScramClient::Start -> client-first  ----> ScramServer::HandleClientFirst
//                                             (caller looks the user up)
//   HandleServerFirst  <---- server-first <-- MakeServerFirst(verifier, nonce)
//                      --> client-final ----> HandleClientFinal (checks proof)
//   HandleServerFinal  <---- server-final <--
//   session_key()              ==             session_key()
//
// Deliberate limits: no channel binding (a client that asks for it is
// refused), no authorization identity, and no SASLprep: the password's bytes
// are used as they are. SASLprep leaves printable ASCII unchanged, so this
// matches other SCRAM implementations for ASCII passwords; a non-ASCII
// password hashed elsewhere after normalization may not match.
//
// Nonces are passed in so that tests are deterministic; MakeScramNonce()
// makes a random one for real use.
//
// Thread-safety: the free functions touch only their arguments and are
// thread-safe. A ScramClient or ScramServer is one login's state machine with
// one owner at a time: not thread-safe, movable. After any error it stays
// failed and every later call returns FailedPrecondition.
#ifndef PCFS_CORE_AUTH_SCRAM_H_
#define PCFS_CORE_AUTH_SCRAM_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/digest.h"

namespace pcfs {

// The secret both sides share after a successful exchange:
//   SessionKey = HMAC-SHA-256(StoredKey,
//                             "PeerConnect session key" || AuthMessage)
// where AuthMessage is RFC 5802's (client-first-bare "," server-first ","
// client-final-without-proof). Both nonces are in AuthMessage, so every login
// yields a fresh key; StoredKey is known to the client (from the password) and
// to the server (from the verifier) but never sent. The label keeps the key
// apart from ClientSignature = HMAC(StoredKey, AuthMessage). As with SCRAM
// itself, whoever steals a verifier and records an exchange can compute it.
using SessionKey = Sha256Digest;

// A SCRAM-SHA-256 verifier: what a server stores instead of the password.
struct ScramVerifier {
  uint32_t iterations = 0;
  std::vector<uint8_t> salt;
  std::array<uint8_t, 32> stored_key{};
  std::array<uint8_t, 32> server_key{};
};

inline constexpr absl::string_view kScramVerifierPrefix = "SCRAM-SHA-256$";
// The iteration counts accepted in a verifier and from a server: wide enough
// for any sensible setting, narrow enough that a hostile server cannot make a
// client spin for hours.
inline constexpr uint32_t kScramMinIterations = 1;
inline constexpr uint32_t kScramMaxIterations = 10'000'000;
// What this module uses when it makes a verifier itself (RFC 7677's minimum
// and PostgreSQL's default).
inline constexpr uint32_t kScramDefaultIterations = 4096;
// Salts this module makes, and the largest it accepts (the salt travels in
// server-first-message, which must fit a datagram with room to spare).
inline constexpr size_t kScramSaltBytes = 16;
inline constexpr size_t kScramMaxSaltBytes = 64;

// ---- Primitives (libcrypto); errors are Internal naming the failed call.

absl::StatusOr<Sha256Digest> Sha256(absl::string_view data);
absl::StatusOr<Sha256Digest> HmacSha256(absl::string_view key,
                                        absl::string_view data);

// A nonce of 24 printable characters (18 random bytes from RAND_bytes, in
// base64, which never contains ','). Errors: Internal if RAND_bytes fails.
absl::StatusOr<std::string> MakeScramNonce();

// ---- Verifiers.

// Derives the verifier for `password`:
//   SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations)
//   StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key"))
//   ServerKey = HMAC(SaltedPassword, "Server Key")
// Errors: InvalidArgument if the salt is empty or longer than
// kScramMaxSaltBytes, or `iterations` is outside
// [kScramMinIterations, kScramMaxIterations]; Internal from libcrypto.
absl::StatusOr<ScramVerifier> MakeVerifier(absl::string_view password,
                                           std::span<const uint8_t> salt,
                                           uint32_t iterations);

// PostgreSQL's text form:
// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64 with
// padding. ParseVerifier(FormatVerifier(v)) gives back v.
std::string FormatVerifier(const ScramVerifier& verifier);

// The inverse of FormatVerifier, and the one parser of that form (the
// credentials file uses it). Strict: the iteration count is a decimal number
// without sign or leading zero in the accepted range, the base64 is canonical
// with padding, the salt is 1 to kScramMaxSaltBytes bytes and each key exactly
// 32 bytes. Errors: InvalidArgument "verifier: ..." saying which part is
// wrong (the text itself is never echoed: it is a secret).
absl::StatusOr<ScramVerifier> ParseVerifier(absl::string_view text);

// True if `password` derives `verifier`'s StoredKey (compared in constant
// time). Costs one PBKDF2 of verifier.iterations. Errors: those of
// MakeVerifier.
absl::StatusOr<bool> PasswordMatchesVerifier(const ScramVerifier& verifier,
                                             absl::string_view password);

// A random key, made once per daemon start (CredentialStore::Create, kept
// across reloads), from which the server derives per-user salts. See
// ServerVerifierFor.
using SaltSecret = std::array<uint8_t, 32>;
absl::StatusOr<SaltSecret> MakeSaltSecret();

// The salt the server uses for `user` when it derives a verifier itself
// (a plain password, or an unknown user; see ServerVerifierFor in
// credentials.h): HMAC-SHA-256(salt_secret, "PeerConnect salt" || user), its
// first kScramSaltBytes bytes. Errors: Internal from libcrypto.
absl::StatusOr<std::vector<uint8_t>> DerivedSaltFor(
    absl::string_view user, const SaltSecret& salt_secret);

// A verifier for a user who is not in the table, so that the server can run
// the exchange to its end (and refuse the proof) instead of telling at once
// that the name is unknown. The salt is DerivedSaltFor's, the
// iteration count is kScramDefaultIterations, and the keys are HMACs of the
// secret and the name: the same for every attempt at that name, and no
// password matches them. Cheap (no PBKDF2), like a stored verifier.
absl::StatusOr<ScramVerifier> MockVerifierFor(absl::string_view user,
                                              const SaltSecret& salt_secret);

// ---- saslname escaping (RFC 5802 section 5.1): ',' is "=2C", '=' is "=3D".

std::string EscapeSaslName(absl::string_view name);
// Errors: InvalidArgument for '=' not starting "=2C" or "=3D", or a raw ','.
absl::StatusOr<std::string> UnescapeSaslName(absl::string_view escaped);

// ---- The exchange.

class ScramClient {
 public:
  // Starts a login as `user` with `password`. `client_nonce` must be 1 or
  // more printable ASCII characters other than ','.
  // Errors: InvalidArgument for an empty user or a bad nonce.
  static absl::StatusOr<ScramClient> Start(absl::string_view user,
                                           absl::string_view password,
                                           absl::string_view client_nonce);

  // client-first-message: "n,,n=<escaped user>,r=<client nonce>".
  const std::string& client_first_message() const { return client_first_; }

  // Consumes server-first-message ("r=<nonce>,s=<salt>,i=<iterations>") and
  // returns client-final-message ("c=biws,r=<nonce>,p=<proof>"). The nonce
  // must be ours followed by at least one server character; the salt and
  // iteration count must be within the module's limits. Costs one PBKDF2.
  // Errors: InvalidArgument (malformed message, nonce, salt or count),
  // Unimplemented (a mandatory extension), FailedPrecondition (out of
  // order), Internal (libcrypto).
  absl::StatusOr<std::string> HandleServerFirst(absl::string_view message);

  // Consumes server-final-message and checks the server's signature. OK
  // means the server knows the user's verifier: the login succeeded and
  // session_key() is available.
  // Errors: Unauthenticated (wrong signature), PermissionDenied (the server
  // sent "e=<reason>", named in the message), InvalidArgument (malformed),
  // FailedPrecondition (out of order).
  absl::Status HandleServerFinal(absl::string_view message);

  // Errors: FailedPrecondition until HandleServerFinal has returned OK.
  absl::StatusOr<SessionKey> session_key() const;

 private:
  enum class State { kAwaitServerFirst, kAwaitServerFinal, kDone, kFailed };

  ScramClient() = default;

  State state_ = State::kFailed;
  std::string password_;  // cleared once the keys are derived
  std::string client_nonce_;
  std::string client_first_;
  Sha256Digest server_signature_{};  // the one we expect
  SessionKey session_key_{};         // valid once kDone
};

class ScramServer {
 public:
  ScramServer() = default;

  // Consumes client-first-message and returns the user name it carries,
  // unescaped. The caller looks the name up (and validates it) and passes
  // the matching verifier, or MockVerifierFor's, to MakeServerFirst.
  // Errors: InvalidArgument (malformed message, name or nonce),
  // Unimplemented (channel binding, authorization identity or a mandatory
  // extension requested), FailedPrecondition (out of order).
  absl::StatusOr<std::string> HandleClientFirst(absl::string_view message);

  // Returns server-first-message for `verifier`; `server_nonce` (same rules
  // as a client nonce) is appended to the client's.
  // Errors: InvalidArgument (bad nonce or verifier), FailedPrecondition.
  absl::StatusOr<std::string> MakeServerFirst(const ScramVerifier& verifier,
                                              absl::string_view server_nonce);

  // Consumes client-final-message and checks the client's proof against
  // StoredKey. On success returns server-final-message ("v=<signature>") and
  // session_key() becomes available.
  // Errors: Unauthenticated (wrong proof: wrong password or unknown user),
  // InvalidArgument (malformed message, nonce or channel binding),
  // FailedPrecondition (out of order), Internal (libcrypto).
  absl::StatusOr<std::string> HandleClientFinal(absl::string_view message);

  // The name from client-first-message (empty before it).
  const std::string& user() const { return user_; }
  // After HandleClientFirst: the client's nonce; after MakeServerFirst: the
  // whole nonce (the client's followed by the server's).
  const std::string& nonce() const { return nonce_; }

  // Errors: FailedPrecondition until HandleClientFinal has succeeded.
  absl::StatusOr<SessionKey> session_key() const;

 private:
  enum class State {
    kAwaitClientFirst,
    kAwaitVerifier,
    kAwaitClientFinal,
    kDone,
    kFailed
  };

  State state_ = State::kAwaitClientFirst;
  std::string user_;
  std::string gs2_header_;  // "n,," or "y,,": bound by the client's c=
  std::string client_first_bare_;
  std::string nonce_;  // client's then server's
  std::string server_first_;
  ScramVerifier verifier_;
  SessionKey session_key_{};
};

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_SCRAM_H_
