#include "core/auth/scram.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/auth/hmac_sha256.h"

namespace pcfs {
namespace {

// GS2 headers we accept: no channel binding, no authorization identity. "y"
// says the client could bind but believes we cannot, which is true.
constexpr absl::string_view kGs2NoBinding = "n,,";
constexpr absl::string_view kGs2ClientCouldBind = "y,,";

constexpr absl::string_view kSessionKeyLabel = "PeerConnect session key";
constexpr absl::string_view kSaltLabel = "PeerConnect salt";
constexpr absl::string_view kMockStoredKeyLabel = "PeerConnect mock StoredKey";
constexpr absl::string_view kMockServerKeyLabel = "PeerConnect mock ServerKey";
constexpr int kNonceRandomBytes = 18;

absl::string_view AsText(std::span<const uint8_t> bytes) {
  return absl::string_view(reinterpret_cast<const char*>(bytes.data()),
                           bytes.size());
}

std::string Base64(std::span<const uint8_t> bytes) {
  return absl::Base64Escape(AsText(bytes));
}

// An Internal error for a failed libcrypto call, with OpenSSL's reason.
absl::Status CryptoError(absl::string_view call) {
  char reason[256] = "no reason given";
  unsigned long code = ERR_get_error();
  if (code != 0) ERR_error_string_n(code, reason, sizeof(reason));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(call, " failed: ", reason));
}

absl::Status OutOfOrder(absl::string_view call) {
  return absl::FailedPreconditionError(absl::StrCat(
      "SCRAM: ", call, " called out of order or after a failed step"));
}

absl::Status RandomBytes(std::span<uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return CryptoError("RAND_bytes");
  }
  return absl::OkStatus();
}

Sha256Digest Xor(const Sha256Digest& a, const Sha256Digest& b) {
  Sha256Digest out;
  for (size_t i = 0; i < out.size(); ++i) out[i] = a[i] ^ b[i];
  return out;
}

bool DigestsEqual(const Sha256Digest& a, const Sha256Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Decodes canonical, padded base64 (what Base64() makes) and nothing else,
// so that one value has one spelling.
absl::StatusOr<std::string> DecodeBase64(absl::string_view text,
                                         absl::string_view what) {
  std::string bytes;
  if (!absl::Base64Unescape(text, &bytes) ||
      absl::Base64Escape(bytes) != text) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is not canonical base64"));
  }
  return bytes;
}

absl::StatusOr<Sha256Digest> DecodeDigest(absl::string_view text,
                                          absl::string_view what) {
  absl::StatusOr<std::string> bytes = DecodeBase64(text, what);
  if (!bytes.ok()) return bytes.status();
  Sha256Digest digest;
  if (bytes->size() != digest.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", bytes->size(), " bytes, not ", digest.size()));
  }
  std::memcpy(digest.data(), bytes->data(), digest.size());
  return digest;
}

absl::Status CheckIterations(uint64_t iterations) {
  if (iterations < kScramMinIterations || iterations > kScramMaxIterations) {
    return absl::InvalidArgumentError(
        absl::StrCat("iteration count must be a whole number from ",
                     kScramMinIterations, " to ", kScramMaxIterations));
  }
  return absl::OkStatus();
}

// RFC 5802's posit-number (digits, no sign, no leading zero), in range.
absl::StatusOr<uint32_t> ParseIterations(absl::string_view text) {
  constexpr size_t kMaxDigits = 9;  // anything longer is out of range anyway
  bool well_formed =
      !text.empty() && text.size() <= kMaxDigits && text[0] != '0';
  uint64_t value = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)))
      well_formed = false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  absl::Status range = CheckIterations(well_formed ? value : 0);
  if (!range.ok()) return range;
  return static_cast<uint32_t>(value);
}

absl::Status CheckSaltSize(size_t size) {
  if (size == 0) return absl::InvalidArgumentError("salt is empty");
  if (size > kScramMaxSaltBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "salt is ", size, " bytes, more than ", kScramMaxSaltBytes));
  }
  return absl::OkStatus();
}

absl::Status CheckVerifier(const ScramVerifier& verifier) {
  absl::Status salt = CheckSaltSize(verifier.salt.size());
  if (!salt.ok()) return salt;
  return CheckIterations(verifier.iterations);
}

// RFC 5802: printable ASCII except ','.
bool IsValidNonce(absl::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

absl::Status CheckNonce(absl::string_view nonce, absl::string_view what) {
  if (IsValidNonce(nonce)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what, " must be 1 or more printable ASCII characters other than ','"));
}

// ---- Key derivation.

struct DerivedKeys {
  Sha256Digest client_key;
  Sha256Digest stored_key;
  Sha256Digest server_key;
};

absl::StatusOr<DerivedKeys> DeriveKeys(absl::string_view password,
                                       std::span<const uint8_t> salt,
                                       uint32_t iterations) {
  absl::Status valid = CheckSaltSize(salt.size());
  if (valid.ok()) valid = CheckIterations(iterations);
  if (valid.ok() && password.size() > static_cast<size_t>(INT_MAX)) {
    valid = absl::InvalidArgumentError("password is too long");
  }
  if (!valid.ok()) return valid;
  Sha256Digest salted;
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        salt.data(), static_cast<int>(salt.size()),
                        static_cast<int>(iterations), EVP_sha256(),
                        static_cast<int>(salted.size()), salted.data()) != 1) {
    return CryptoError("PKCS5_PBKDF2_HMAC");
  }
  absl::StatusOr<Sha256Digest> client_key =
      HmacSha256(AsText(salted), "Client Key");
  absl::StatusOr<Sha256Digest> server_key =
      HmacSha256(AsText(salted), "Server Key");
  OPENSSL_cleanse(salted.data(), salted.size());
  if (!client_key.ok()) return client_key.status();
  if (!server_key.ok()) return server_key.status();
  absl::StatusOr<Sha256Digest> stored_key = Sha256(AsText(*client_key));
  if (!stored_key.ok()) return stored_key.status();
  return DerivedKeys{*client_key, *stored_key, *server_key};
}

// What both sides compute from AuthMessage.
struct Signatures {
  Sha256Digest client_signature;
  Sha256Digest server_signature;
  SessionKey session_key;
};

absl::StatusOr<Signatures> SignAuthMessage(const Sha256Digest& stored_key,
                                           const Sha256Digest& server_key,
                                           absl::string_view auth_message) {
  absl::StatusOr<Sha256Digest> client_signature =
      HmacSha256(AsText(stored_key), auth_message);
  absl::StatusOr<Sha256Digest> server_signature =
      HmacSha256(AsText(server_key), auth_message);
  absl::StatusOr<Sha256Digest> session_key = HmacSha256(
      AsText(stored_key), absl::StrCat(kSessionKeyLabel, auth_message));
  if (!client_signature.ok()) return client_signature.status();
  if (!server_signature.ok()) return server_signature.status();
  if (!session_key.ok()) return session_key.status();
  return Signatures{*client_signature, *server_signature, *session_key};
}

// ---- Message parsing.

// One "x=value" of a SCRAM message.
struct Attribute {
  char name;
  absl::string_view value;
};
using Attributes = std::vector<Attribute>;

absl::StatusOr<Attributes> SplitAttributes(absl::string_view message,
                                           absl::string_view what) {
  Attributes attributes;
  for (absl::string_view part : absl::StrSplit(message, ',')) {
    if (part.size() < 2 ||
        !absl::ascii_isalpha(static_cast<unsigned char>(part[0])) ||
        part[1] != '=') {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": malformed attribute (expected x=value)"));
    }
    attributes.push_back({part[0], part.substr(2)});
  }
  // RFC 5802 reserves a leading "m=" for extensions that must be understood.
  if (attributes.front().name == 'm') {
    return absl::UnimplementedError(
        absl::StrCat(what, ": mandatory extension not supported"));
  }
  return attributes;
}

// OK if attribute number `index` (from 0) is `name`.
absl::Status Expect(const Attributes& attributes, size_t index, char name,
                    absl::string_view what) {
  if (index < attributes.size() && attributes[index].name == name) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": attribute ", index + 1, " must be ", std::string(1, name), "="));
}

absl::Status ExpectSequence(const Attributes& attributes,
                            absl::string_view names, absl::string_view what) {
  for (size_t i = 0; i < names.size(); ++i) {
    absl::Status status = Expect(attributes, i, names[i], what);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

struct ClientFirst {
  absl::string_view gs2_header;
  absl::string_view bare;
  std::string user;
  absl::string_view nonce;
};

absl::StatusOr<absl::string_view> SplitGs2Header(absl::string_view message) {
  constexpr absl::string_view kWhat = "client-first-message";
  if (absl::StartsWith(message, kGs2NoBinding) ||
      absl::StartsWith(message, kGs2ClientCouldBind)) {
    return message.substr(0, kGs2NoBinding.size());
  }
  if (absl::StartsWith(message, "p=")) {
    return absl::UnimplementedError(
        absl::StrCat(kWhat, ": channel binding not supported"));
  }
  if (absl::StartsWith(message, "n,a=") || absl::StartsWith(message, "y,a=")) {
    return absl::UnimplementedError(
        absl::StrCat(kWhat, ": authorization identity not supported"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(kWhat, ": malformed GS2 header (expected \"n,,\")"));
}

absl::StatusOr<ClientFirst> ParseClientFirst(absl::string_view message) {
  constexpr absl::string_view kWhat = "client-first-message";
  absl::StatusOr<absl::string_view> gs2_header = SplitGs2Header(message);
  if (!gs2_header.ok()) return gs2_header.status();
  ClientFirst parsed;
  parsed.gs2_header = *gs2_header;
  parsed.bare = message.substr(gs2_header->size());
  absl::StatusOr<Attributes> attributes = SplitAttributes(parsed.bare, kWhat);
  if (!attributes.ok()) return attributes.status();
  absl::Status shape = ExpectSequence(*attributes, "nr", kWhat);
  if (!shape.ok()) return shape;
  absl::StatusOr<std::string> user = UnescapeSaslName((*attributes)[0].value);
  if (!user.ok()) return user.status();
  if (user->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, ": user is empty"));
  }
  parsed.user = *std::move(user);
  parsed.nonce = (*attributes)[1].value;
  absl::Status nonce = CheckNonce(parsed.nonce, "client nonce");
  if (!nonce.ok()) return nonce;
  return parsed;
}

struct ServerFirst {
  absl::string_view nonce;
  std::vector<uint8_t> salt;
  uint32_t iterations = 0;
};

absl::StatusOr<ServerFirst> ParseServerFirst(absl::string_view message,
                                             absl::string_view client_nonce) {
  constexpr absl::string_view kWhat = "server-first-message";
  absl::StatusOr<Attributes> attributes = SplitAttributes(message, kWhat);
  if (!attributes.ok()) return attributes.status();
  absl::Status shape = ExpectSequence(*attributes, "rsi", kWhat);
  if (!shape.ok()) return shape;
  ServerFirst parsed;
  parsed.nonce = (*attributes)[0].value;
  if (!IsValidNonce(parsed.nonce) ||
      !absl::StartsWith(parsed.nonce, client_nonce) ||
      parsed.nonce.size() == client_nonce.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        kWhat, ": nonce is not the client nonce followed by a server nonce"));
  }
  absl::StatusOr<std::string> salt =
      DecodeBase64((*attributes)[1].value, "salt");
  absl::Status valid = salt.ok() ? CheckSaltSize(salt->size()) : salt.status();
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": ", valid.message()));
  }
  parsed.salt.assign(salt->begin(), salt->end());
  absl::StatusOr<uint32_t> iterations = ParseIterations((*attributes)[2].value);
  if (!iterations.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": ", iterations.status().message()));
  }
  parsed.iterations = *iterations;
  return parsed;
}

struct ClientFinal {
  absl::string_view channel_binding;
  absl::string_view nonce;
  absl::string_view without_proof;
  Sha256Digest proof;
};

absl::StatusOr<ClientFinal> ParseClientFinal(absl::string_view message) {
  constexpr absl::string_view kWhat = "client-final-message";
  absl::StatusOr<Attributes> attributes = SplitAttributes(message, kWhat);
  if (!attributes.ok()) return attributes.status();
  absl::Status shape = ExpectSequence(*attributes, "cr", kWhat);
  if (shape.ok() && attributes->size() < 3) {
    shape = absl::InvalidArgumentError(absl::StrCat(kWhat, ": proof missing"));
  }
  if (shape.ok())
    shape = Expect(*attributes, attributes->size() - 1, 'p', kWhat);
  if (!shape.ok()) return shape;
  absl::StatusOr<Sha256Digest> proof =
      DecodeDigest(attributes->back().value, absl::StrCat(kWhat, ": proof"));
  if (!proof.ok()) return proof.status();
  ClientFinal parsed;
  parsed.channel_binding = (*attributes)[0].value;
  parsed.nonce = (*attributes)[1].value;
  // The proof is the last attribute, and base64 holds no ','.
  parsed.without_proof = message.substr(0, message.rfind(','));
  parsed.proof = *proof;
  return parsed;
}

}  // namespace

// ---- Primitives.

absl::StatusOr<Sha256Digest> Sha256(absl::string_view data) {
  Sha256Digest digest;
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(),
                 nullptr) != 1 ||
      size != digest.size()) {
    return CryptoError("EVP_Digest(SHA-256)");
  }
  return digest;
}

absl::StatusOr<Sha256Digest> HmacSha256(absl::string_view key,
                                        absl::string_view data) {
  // Stack-only (core/auth/hmac_sha256.h): download tickets are MAC'd on the
  // request path, which must not allocate.
  IncrementalHmacSha256 hmac(key);
  hmac.Update(data);
  return hmac.Finish();
}

absl::StatusOr<std::string> MakeScramNonce() {
  std::array<uint8_t, kNonceRandomBytes> bytes;
  absl::Status status = RandomBytes(bytes);
  if (!status.ok()) return status;
  return Base64(bytes);
}

// ---- Verifiers.

absl::StatusOr<ScramVerifier> MakeVerifier(absl::string_view password,
                                           std::span<const uint8_t> salt,
                                           uint32_t iterations) {
  absl::StatusOr<DerivedKeys> keys = DeriveKeys(password, salt, iterations);
  if (!keys.ok()) return keys.status();
  ScramVerifier verifier;
  verifier.iterations = iterations;
  verifier.salt.assign(salt.begin(), salt.end());
  verifier.stored_key = keys->stored_key;
  verifier.server_key = keys->server_key;
  return verifier;
}

std::string FormatVerifier(const ScramVerifier& verifier) {
  return absl::StrCat(kScramVerifierPrefix, verifier.iterations, ":",
                      Base64(verifier.salt), "$", Base64(verifier.stored_key),
                      ":", Base64(verifier.server_key));
}

absl::StatusOr<ScramVerifier> ParseVerifier(absl::string_view text) {
  absl::Status shape = absl::InvalidArgumentError(
      "verifier: expected "
      "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>");
  if (!absl::ConsumePrefix(&text, kScramVerifierPrefix)) return shape;
  std::vector<absl::string_view> halves = absl::StrSplit(text, '$');
  if (halves.size() != 2) return shape;
  std::vector<absl::string_view> head = absl::StrSplit(halves[0], ':');
  std::vector<absl::string_view> keys = absl::StrSplit(halves[1], ':');
  if (head.size() != 2 || keys.size() != 2) return shape;

  ScramVerifier verifier;
  absl::StatusOr<uint32_t> iterations = ParseIterations(head[0]);
  absl::StatusOr<std::string> salt = DecodeBase64(head[1], "salt");
  absl::StatusOr<Sha256Digest> stored_key = DecodeDigest(keys[0], "StoredKey");
  absl::StatusOr<Sha256Digest> server_key = DecodeDigest(keys[1], "ServerKey");
  absl::Status status = iterations.status();
  if (status.ok()) status = salt.status();
  if (status.ok()) status = CheckSaltSize(salt->size());
  if (status.ok()) status = stored_key.status();
  if (status.ok()) status = server_key.status();
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("verifier: ", status.message()));
  }
  verifier.iterations = *iterations;
  verifier.salt.assign(salt->begin(), salt->end());
  verifier.stored_key = *stored_key;
  verifier.server_key = *server_key;
  return verifier;
}

absl::StatusOr<bool> PasswordMatchesVerifier(const ScramVerifier& verifier,
                                             absl::string_view password) {
  absl::StatusOr<DerivedKeys> keys =
      DeriveKeys(password, verifier.salt, verifier.iterations);
  if (!keys.ok()) return keys.status();
  return DigestsEqual(keys->stored_key, verifier.stored_key);
}

absl::StatusOr<SaltSecret> MakeSaltSecret() {
  SaltSecret secret;
  absl::Status status = RandomBytes(secret);
  if (!status.ok()) return status;
  return secret;
}

absl::StatusOr<std::vector<uint8_t>> DerivedSaltFor(
    absl::string_view user, const SaltSecret& salt_secret) {
  absl::StatusOr<Sha256Digest> mac =
      HmacSha256(AsText(salt_secret), absl::StrCat(kSaltLabel, user));
  if (!mac.ok()) return mac.status();
  return std::vector<uint8_t>(mac->begin(), mac->begin() + kScramSaltBytes);
}

absl::StatusOr<ScramVerifier> MockVerifierFor(absl::string_view user,
                                              const SaltSecret& salt_secret) {
  absl::StatusOr<std::vector<uint8_t>> salt = DerivedSaltFor(user, salt_secret);
  absl::StatusOr<Sha256Digest> stored_key =
      HmacSha256(AsText(salt_secret), absl::StrCat(kMockStoredKeyLabel, user));
  absl::StatusOr<Sha256Digest> server_key =
      HmacSha256(AsText(salt_secret), absl::StrCat(kMockServerKeyLabel, user));
  if (!salt.ok()) return salt.status();
  if (!stored_key.ok()) return stored_key.status();
  if (!server_key.ok()) return server_key.status();
  ScramVerifier verifier;
  verifier.iterations = kScramDefaultIterations;
  verifier.salt = *std::move(salt);
  verifier.stored_key = *stored_key;
  verifier.server_key = *server_key;
  return verifier;
}

// ---- saslname escaping.

std::string EscapeSaslName(absl::string_view name) {
  std::string escaped;
  escaped.reserve(name.size());
  for (char c : name) {
    if (c == ',') {
      escaped.append("=2C");
    } else if (c == '=') {
      escaped.append("=3D");
    } else {
      escaped.push_back(c);
    }
  }
  return escaped;
}

absl::StatusOr<std::string> UnescapeSaslName(absl::string_view escaped) {
  std::string name;
  name.reserve(escaped.size());
  for (size_t i = 0; i < escaped.size(); ++i) {
    char c = escaped[i];
    if (c == ',') {
      return absl::InvalidArgumentError("saslname: raw ','");
    }
    if (c != '=') {
      name.push_back(c);
      continue;
    }
    absl::string_view code = escaped.substr(i + 1, 2);
    if (code == "2C") {
      name.push_back(',');
    } else if (code == "3D") {
      name.push_back('=');
    } else {
      return absl::InvalidArgumentError("saslname: '=' must start =2C or =3D");
    }
    i += code.size();
  }
  return name;
}

// ---- ScramClient.

absl::StatusOr<ScramClient> ScramClient::Start(absl::string_view user,
                                               absl::string_view password,
                                               absl::string_view client_nonce) {
  if (user.empty()) return absl::InvalidArgumentError("SCRAM: user is empty");
  absl::Status nonce = CheckNonce(client_nonce, "client nonce");
  if (!nonce.ok()) return nonce;
  ScramClient client;
  client.state_ = State::kAwaitServerFirst;
  client.password_ = std::string(password);
  client.client_nonce_ = std::string(client_nonce);
  client.client_first_ = absl::StrCat(kGs2NoBinding, "n=", EscapeSaslName(user),
                                      ",r=", client_nonce);
  return client;
}

absl::StatusOr<std::string> ScramClient::HandleServerFirst(
    absl::string_view message) {
  if (state_ != State::kAwaitServerFirst)
    return OutOfOrder("HandleServerFirst");
  state_ = State::kFailed;
  absl::StatusOr<ServerFirst> server_first =
      ParseServerFirst(message, client_nonce_);
  if (!server_first.ok()) return server_first.status();
  absl::StatusOr<DerivedKeys> keys =
      DeriveKeys(password_, server_first->salt, server_first->iterations);
  OPENSSL_cleanse(password_.data(), password_.size());
  password_.clear();
  if (!keys.ok()) return keys.status();

  std::string without_proof = absl::StrCat(
      "c=", absl::Base64Escape(kGs2NoBinding), ",r=", server_first->nonce);
  absl::string_view client_first_bare =
      absl::string_view(client_first_).substr(kGs2NoBinding.size());
  std::string auth_message =
      absl::StrCat(client_first_bare, ",", message, ",", without_proof);
  absl::StatusOr<Signatures> signatures =
      SignAuthMessage(keys->stored_key, keys->server_key, auth_message);
  if (!signatures.ok()) return signatures.status();
  server_signature_ = signatures->server_signature;
  session_key_ = signatures->session_key;
  state_ = State::kAwaitServerFinal;
  Sha256Digest proof = Xor(keys->client_key, signatures->client_signature);
  return absl::StrCat(without_proof, ",p=", Base64(proof));
}

absl::Status ScramClient::HandleServerFinal(absl::string_view message) {
  constexpr absl::string_view kWhat = "server-final-message";
  if (state_ != State::kAwaitServerFinal)
    return OutOfOrder("HandleServerFinal");
  state_ = State::kFailed;
  absl::StatusOr<Attributes> attributes = SplitAttributes(message, kWhat);
  if (!attributes.ok()) return attributes.status();
  if (attributes->front().name == 'e') {
    return absl::PermissionDeniedError(absl::StrCat(
        "SCRAM: the server refused the login: ", attributes->front().value));
  }
  absl::Status shape = Expect(*attributes, 0, 'v', kWhat);
  if (!shape.ok()) return shape;
  absl::StatusOr<Sha256Digest> signature = DecodeDigest(
      attributes->front().value, absl::StrCat(kWhat, ": signature"));
  if (!signature.ok()) return signature.status();
  if (!DigestsEqual(*signature, server_signature_)) {
    return absl::UnauthenticatedError(
        "SCRAM: server signature does not match: the server does not hold "
        "this user's verifier");
  }
  state_ = State::kDone;
  return absl::OkStatus();
}

absl::StatusOr<SessionKey> ScramClient::session_key() const {
  if (state_ != State::kDone) {
    return absl::FailedPreconditionError(
        "SCRAM: no session key before the server's signature is verified");
  }
  return session_key_;
}

// ---- ScramServer.

absl::StatusOr<std::string> ScramServer::HandleClientFirst(
    absl::string_view message) {
  if (state_ != State::kAwaitClientFirst)
    return OutOfOrder("HandleClientFirst");
  state_ = State::kFailed;
  absl::StatusOr<ClientFirst> client_first = ParseClientFirst(message);
  if (!client_first.ok()) return client_first.status();
  user_ = client_first->user;
  gs2_header_ = std::string(client_first->gs2_header);
  client_first_bare_ = std::string(client_first->bare);
  nonce_ = std::string(client_first->nonce);
  state_ = State::kAwaitVerifier;
  return user_;
}

absl::StatusOr<std::string> ScramServer::MakeServerFirst(
    const ScramVerifier& verifier, absl::string_view server_nonce) {
  if (state_ != State::kAwaitVerifier) return OutOfOrder("MakeServerFirst");
  state_ = State::kFailed;
  absl::Status valid = CheckNonce(server_nonce, "server nonce");
  if (valid.ok()) valid = CheckVerifier(verifier);
  if (!valid.ok()) return valid;
  verifier_ = verifier;
  absl::StrAppend(&nonce_, server_nonce);
  server_first_ = absl::StrCat("r=", nonce_, ",s=", Base64(verifier.salt),
                               ",i=", verifier.iterations);
  state_ = State::kAwaitClientFinal;
  return server_first_;
}

absl::StatusOr<std::string> ScramServer::HandleClientFinal(
    absl::string_view message) {
  constexpr absl::string_view kWhat = "client-final-message";
  if (state_ != State::kAwaitClientFinal)
    return OutOfOrder("HandleClientFinal");
  state_ = State::kFailed;
  absl::StatusOr<ClientFinal> client_final = ParseClientFinal(message);
  if (!client_final.ok()) return client_final.status();
  if (client_final->channel_binding != absl::Base64Escape(gs2_header_)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": channel binding does not match the GS2 header"));
  }
  if (client_final->nonce != nonce_) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": nonce does not match"));
  }
  std::string auth_message = absl::StrCat(
      client_first_bare_, ",", server_first_, ",", client_final->without_proof);
  absl::StatusOr<Signatures> signatures =
      SignAuthMessage(verifier_.stored_key, verifier_.server_key, auth_message);
  if (!signatures.ok()) return signatures.status();
  absl::StatusOr<Sha256Digest> stored_key =
      Sha256(AsText(Xor(client_final->proof, signatures->client_signature)));
  if (!stored_key.ok()) return stored_key.status();
  if (!DigestsEqual(*stored_key, verifier_.stored_key)) {
    return absl::UnauthenticatedError("SCRAM: client proof does not match");
  }
  session_key_ = signatures->session_key;
  state_ = State::kDone;
  return absl::StrCat("v=", Base64(signatures->server_signature));
}

absl::StatusOr<SessionKey> ScramServer::session_key() const {
  if (state_ != State::kDone) {
    return absl::FailedPreconditionError(
        "SCRAM: no session key before the client's proof is verified");
  }
  return session_key_;
}

}  // namespace pcfs
