#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/base/big_endian.h"
#include "core/base/log.h"
#include "core/base/names.h"
#include "core/io/net.h"
#include "daemon/handler_util.h"
#include "daemon/handlers.h"

// LOGIN and LOGIN_FINISH: the SCRAM exchange, its server nonces and rate
// limits, and the start of a session (its presence in the registry, then
// its key in the session table).

namespace pcfs {
namespace {

using handler_internal::Bump;
using protocol::Header;
using protocol::Message;
using protocol::MessageType;
using protocol::ResultCode;

constexpr size_t kNonceRandomBytes = 8;
constexpr size_t kNonceMacBytes = 16;

// The value of attribute `name` ("r") in a SCRAM message, or empty.
absl::string_view ScramAttribute(absl::string_view message, char name) {
  for (absl::string_view part : absl::StrSplit(message, ',')) {
    if (part.size() >= 2 && part[0] == name && part[1] == '=') {
      return part.substr(2);
    }
  }
  return {};
}

std::array<uint8_t, 16> LoginNonceOf(absl::string_view full_nonce) {
  std::array<uint8_t, 16> nonce{};
  absl::StatusOr<Sha256Digest> digest = Sha256(full_nonce);
  if (digest.ok()) std::memcpy(nonce.data(), digest->data(), nonce.size());
  return nonce;
}

std::string AddressKey(const Endpoint& from) {
  const size_t n = from.family == 4 ? 4 : 16;
  return std::string(reinterpret_cast<const char*>(from.ip.data()), n);
}

// The source of a login attempt for the rate limits: an IPv4 address, or an
// IPv6 /64 (one host may hold a whole /64; counting its addresses apart
// would give it 2^64 buckets).
std::string LimitKey(const Endpoint& from) {
  const size_t n = from.family == 4 ? 4 : 8;
  return std::string(reinterpret_cast<const char*>(from.ip.data()), n);
}

// The bucket of failed logins of `user` from `from`.
std::string FailureKey(absl::string_view user, const Endpoint& from) {
  return absl::StrCat(LimitKey(from), "/", user);
}

// Whole seconds to tell a client to wait: at least 1.
int64_t WaitSeconds(absl::Duration wait) {
  return std::max<int64_t>(
      1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))));
}

}  // namespace

void RequestHandler::LogFailedLogin(absl::string_view user,
                                    const Endpoint& from, absl::string_view why,
                                    absl::Time now) {
  if (now - failed_log_window_ >= absl::Seconds(10)) {
    if (failed_logs_suppressed_ > 0) {
      LogWarning("failed logins: ", failed_logs_suppressed_,
                 " more in the last 10 s were not logged");
    }
    failed_log_window_ = now;
    failed_logs_in_window_ = 0;
    failed_logs_suppressed_ = 0;
  }
  if (failed_logs_in_window_ >= kFailedLoginLogsPer10s) {
    ++failed_logs_suppressed_;
    return;
  }
  ++failed_logs_in_window_;
  LogWarning("failed login for user ", user, " from ",
             SocketAddress::FromEndpoint(from).ToString(), ": ", why);
}

absl::StatusOr<Sha256Digest> RequestHandler::ServerNonceMac(
    absl::string_view head, absl::string_view client_nonce,
    absl::string_view user, const Endpoint& from) const {
  return HmacSha256(
      absl::string_view(
          reinterpret_cast<const char*>(shared_.login_secret.data()),
          shared_.login_secret.size()),
      absl::StrCat("PeerConnect login nonce", head, client_nonce, "\n", user,
                   "\n", AddressKey(from), from.port));
}

std::string RequestHandler::MakeServerNonce(absl::string_view client_nonce,
                                            absl::string_view user,
                                            const Endpoint& from,
                                            absl::Time now) const {
  uint8_t raw[8 + kNonceRandomBytes + kNonceMacBytes];
  const uint64_t stamp = static_cast<uint64_t>(absl::ToUnixMillis(now));
  StoreBigEndian(stamp, raw);
  if (RAND_bytes(raw + 8, kNonceRandomBytes) != 1) {
    std::memset(raw + 8, 0, kNonceRandomBytes);  // still MAC'd and fresh
  }
  const absl::string_view head(reinterpret_cast<const char*>(raw),
                               8 + kNonceRandomBytes);
  absl::StatusOr<Sha256Digest> mac =
      ServerNonceMac(head, client_nonce, user, from);
  if (mac.ok()) std::memcpy(raw + head.size(), mac->data(), kNonceMacBytes);
  std::string encoded;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)),
      &encoded);
  return encoded;
}

bool RequestHandler::CheckServerNonce(absl::string_view server_nonce,
                                      absl::string_view client_nonce,
                                      absl::string_view user,
                                      const Endpoint& from,
                                      absl::Time now) const {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(server_nonce, &raw) ||
      raw.size() != 8 + kNonceRandomBytes + kNonceMacBytes) {
    return false;
  }
  const auto stamp =
      LoadBigEndian<uint64_t>(reinterpret_cast<const uint8_t*>(raw.data()));
  const absl::Time made = absl::FromUnixMillis(static_cast<int64_t>(stamp));
  if (made > now || now - made > options_.login_window) return false;
  const absl::string_view head(raw.data(), 8 + kNonceRandomBytes);
  absl::StatusOr<Sha256Digest> mac =
      ServerNonceMac(head, client_nonce, user, from);
  return mac.ok() && CRYPTO_memcmp(mac->data(), raw.data() + head.size(),
                                   kNonceMacBytes) == 0;
}

size_t RequestHandler::CheckAddressRate(const Header& h, const Endpoint& from,
                                        absl::Time now,
                                        std::span<uint8_t> reply) {
  absl::Duration wait;
  if (shared_.address_limiter != nullptr &&
      !shared_.address_limiter->TryAcquire(LimitKey(from), now, &wait)) {
    Bump(counters_->rate_limited);
    return Error(h, ResultCode::kRateLimited,
                 absl::StrCat("too many logins from your address; wait ",
                              WaitSeconds(wait), " s"),
                 reply);
  }
  return 0;
}

size_t RequestHandler::CheckFailureRate(const Header& h, absl::string_view user,
                                        const Endpoint& from, absl::Time now,
                                        std::span<uint8_t> reply) {
  // Failures count per user *and* address: a stranger's wrong passwords
  // throttle the stranger, never the user at another address.
  if (shared_.failure_limiter != nullptr) {
    const absl::Duration wait =
        shared_.failure_limiter->WaitFor(FailureKey(user, from), now);
    if (wait > absl::ZeroDuration()) {
      Bump(counters_->rate_limited);
      return Error(h, ResultCode::kRateLimited,
                   absl::StrCat("too many failed logins from your address; "
                                "wait ",
                                WaitSeconds(wait), " s"),
                   reply);
    }
  }
  return 0;
}

size_t RequestHandler::HandleLogin(const Message& m, size_t size,
                                   const Endpoint& from, absl::Time now,
                                   std::span<uint8_t> reply) {
  // The challenge is larger than an unpadded LOGIN, and the reply may not
  // be larger than the request (a spoofed sender would make the daemon a
  // reflector): a short LOGIN gets only this, within its size.
  if (size < protocol::kLoginRequestMinSize) {
    Bump(counters_->rejected_malformed);
    return Error(
        m.header, ResultCode::kMalformed,
        absl::StrCat("pad LOGIN to ", protocol::kLoginRequestMinSize, " bytes"),
        reply);
  }
  absl::StatusOr<protocol::LoginRequest> request =
      protocol::DecodeLoginRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    // An older peerctl (no key pin) learns that it must be upgraded.
    return Error(m.header,
                 absl::IsFailedPrecondition(request.status())
                     ? ResultCode::kUnsupportedVersion
                     : ResultCode::kMalformed,
                 request.status().message(), reply);
  }
  ScramServer scram;
  absl::StatusOr<std::string> user =
      scram.HandleClientFirst(request->client_first);
  if (!user.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(m.header, ResultCode::kMalformed, user.status().message(),
                 reply);
  }
  if (absl::Status s = ValidateUserName(*user); !s.ok()) {
    return Error(m.header, ResultCode::kInvalidName, s.message(), reply);
  }
  SetLogUser(*user);
  LogRequest(m.header, from, *user);
  if (size_t n = CheckAddressRate(m.header, from, now, reply)) return n;
  if (size_t n = CheckFailureRate(m.header, *user, from, now, reply)) {
    return n;
  }
  absl::StatusOr<ScramVerifier> verifier =
      shared_.credentials->VerifierFor(*user);
  if (!verifier.ok()) {
    return Error(m.header, ResultCode::kInternal, "cannot run the login",
                 reply);
  }
  const std::string server_nonce =
      MakeServerNonce(scram.nonce(), *user, from, now);
  absl::StatusOr<std::string> server_first =
      scram.MakeServerFirst(*verifier, server_nonce);
  if (!server_first.ok()) {
    return Error(m.header, ResultCode::kInternal, "cannot run the login",
                 reply);
  }
  protocol::LoginReply login{*server_first};
  return protocol::EncodeLoginReply(m.header, login, reply);
}

size_t RequestHandler::HandleLoginFinish(const Message& m, const Endpoint& from,
                                         absl::Time now,
                                         std::span<uint8_t> reply) {
  absl::StatusOr<protocol::LoginFinishRequest> request =
      protocol::DecodeLoginFinishRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    // An older peerctl (no key pin) learns that it must be upgraded.
    return Error(m.header,
                 absl::IsFailedPrecondition(request.status())
                     ? ResultCode::kUnsupportedVersion
                     : ResultCode::kMalformed,
                 request.status().message(), reply);
  }
  ScramServer scram;
  absl::StatusOr<std::string> user =
      scram.HandleClientFirst(request->client_first);
  if (!user.ok() || !ValidateUserName(*user).ok()) {
    Bump(counters_->rejected_malformed);
    return Error(m.header, ResultCode::kMalformed,
                 "LOGIN_FINISH repeats a malformed client-first-message",
                 reply);
  }
  SetLogUser(*user);
  LogRequest(m.header, from, *user);
  if (size_t n = CheckFailureRate(m.header, *user, from, now, reply)) {
    return n;
  }
  // The server nonce must be one this daemon made for this very login.
  // (It binds the sender's address, so only a sender that got the LOGIN
  // reply there gets past it, to the budget and the proof check.) Its
  // LOGIN took the address's token for the whole login: were the second
  // step charged again, a busy address (many users behind one NAT) would
  // spend its tokens on LOGINs whose LOGIN_FINISH then finds none left, and
  // retries would keep every login from completing.
  const std::string client_nonce = scram.nonce();
  const absl::string_view full_nonce =
      ScramAttribute(request->client_final, 'r');
  if (full_nonce.size() <= client_nonce.size() ||
      full_nonce.substr(0, client_nonce.size()) != client_nonce ||
      !CheckServerNonce(full_nonce.substr(client_nonce.size()), client_nonce,
                        *user, from, now)) {
    // Not a login started here: it costs its address a token, as a LOGIN.
    if (size_t n = CheckAddressRate(m.header, from, now, reply)) return n;
    Bump(counters_->auth_failed);
    metrics_.logins_refused.Add();
    LogFailedLogin(*user, from, "stale or foreign server nonce", now);
    return Error(m.header, ResultCode::kAuthFailed,
                 "the login expired or was not started here; log in again",
                 reply);
  }
  // The proof check is the CPU a distributed flood would burn: the
  // daemon's budget for it is shared by everyone.
  if (shared_.login_budget != nullptr) {
    absl::Duration wait;
    if (!shared_.login_budget->TryAcquire("", now, &wait)) {
      Bump(counters_->rate_limited);
      return Error(m.header, ResultCode::kRateLimited,
                   absl::StrCat("the daemon is busy with logins; wait ",
                                WaitSeconds(wait), " s"),
                   reply);
    }
  }
  absl::StatusOr<ScramVerifier> verifier =
      shared_.credentials->VerifierFor(*user);
  absl::StatusOr<std::string> server_first =
      verifier.ok() ? scram.MakeServerFirst(
                          *verifier, full_nonce.substr(client_nonce.size()))
                    : verifier.status();
  absl::StatusOr<std::string> server_final =
      server_first.ok() ? scram.HandleClientFinal(request->client_final)
                        : server_first.status();
  absl::StatusOr<SessionKey> key =
      server_final.ok() ? scram.session_key() : server_final.status();
  if (!key.ok()) {
    Bump(counters_->auth_failed);
    metrics_.logins_refused.Add();
    LogFailedLogin(*user, from, "wrong user name or password", now);
    if (shared_.failure_limiter != nullptr) {
      shared_.failure_limiter->TryAcquire(FailureKey(*user, from), now);
    }
    return Error(m.header, ResultCode::kAuthFailed,
                 "wrong user name or password", reply);
  }
  Registry::LoginParams params;
  params.user = *user;
  params.control = from;
  params.file_port = request->tcp_port;
  params.key_pin = request->key_pin;
  params.nonce = LoginNonceOf(full_nonce);
  // A nonce seen before may only fetch the session it made (a
  // retransmission), never start another (a replay).
  UsedLoginNonces* used = shared_.used_nonces;
  params.retransmission_only =
      used != nullptr && used->Contains(params.nonce, now);
  absl::StatusOr<uint64_t> session = registry_->Login(params, now);
  if (absl::IsFailedPrecondition(session.status())) {
    Bump(counters_->replayed);
    metrics_.logins_refused.Add();
    LogFailedLogin(*user, from, "replayed login", now);
    return Error(m.header, ResultCode::kAuthFailed,
                 "this login was already used; log in again", reply);
  }
  if (!session.ok()) {
    const bool elsewhere = Registry::IsHeldElsewhere(session.status());
    metrics_.logins_refused.Add();
    LogFailedLogin(
        *user, from,
        elsewhere ? "already active on another daemon" : "already active", now);
    return Error(m.header, ResultCode::kAlreadyActive,
                 absl::StrCat("user ", *user,
                              elsewhere ? protocol::kActiveOnAnotherDaemon
                                        : protocol::kActiveHere),
                 reply);
  }
  if (used != nullptr) {
    used->Insert(params.nonce, now + options_.login_window, now);
  }
  // After the presence, so that no session a client knows of lacks its key
  // (a retransmitted login keeps the entry it has).
  const bool inserted = sessions_->Insert(*session, *key);
  wheel_.Schedule(*session, now + options_.session_timeout);
  if (shared_.cluster != nullptr && completions_ != nullptr) {
    if (pending_logins_.contains(*session)) {
      // A retransmission while the claim is pending: the reply to its
      // first copy comes once the claim is done.
      Bump(counters_->retransmissions);
      deferred_ = true;
      return 0;
    }
    if (inserted) {
      // A new session: the cluster must grant it before its client learns
      // of it. (A retransmission of a login whose claim is done is
      // answered at once below.)
      auto pending = std::make_unique<PendingLogin>();
      pending->header = m.header;
      pending->from = from;
      pending->user = UserName(*user);
      pending->server_final = *server_final;
      pending->reply_limit = reply.size();
      ClaimLogin(std::move(pending), *session, *key, request->tcp_port,
                 request->key_pin);
      deferred_ = true;
      return 0;
    }
  }
  metrics_.logins_ok.Add();
  Log("login: ", *user, " from ", SocketAddress::FromEndpoint(from).ToString(),
      absl::StrFormat(" (session %016x)", *session));
  protocol::LoginFinishReply login;
  login.server_final = *server_final;
  login.session_id = *session;
  login.heartbeat_interval_ms = static_cast<uint32_t>(
      absl::ToInt64Milliseconds(options_.heartbeat_interval));
  login.session_timeout_ms = static_cast<uint32_t>(
      absl::ToInt64Milliseconds(options_.session_timeout));
  return protocol::EncodeLoginFinishReply(m.header, login, reply);
}

void RequestHandler::ClaimLogin(std::unique_ptr<PendingLogin> pending,
                                uint64_t session_id, const SessionKey& key,
                                uint16_t file_port,
                                const Sha256Digest& key_pin) {
  // Where other daemons send downloaders: the address its datagrams come
  // from, with its file port, as Locate gives for a local session.
  Registry::LocalSession local;
  local.user = pending->user;
  local.id = session_id;
  local.file_server = pending->from;
  local.file_server.port = file_port;
  local.key_pin = key_pin;
  ClusterSession session = ClaimOf(*shared_.cluster, local, key);
  pending_logins_.emplace(session_id, std::move(pending));
  JournalWriter::CompletionQueue* queue = completions_;
  // Held already (a claim the store had taken before its link broke) is a
  // claim made as well as a new one.
  shared_.cluster->Claim(
      std::move(session),
      [this, queue,
       session_id](const absl::StatusOr<ClusterStore::ClaimResult>& outcome) {
        queue->Push(
            [this, session_id](const absl::Status& status) {
              CompleteLogin(session_id, status);
            },
            outcome.status());
      });
}

void RequestHandler::CompleteLogin(uint64_t session_id,
                                   const absl::Status& outcome) {
  auto it = pending_logins_.find(session_id);
  if (it == pending_logins_.end()) return;
  const std::unique_ptr<PendingLogin> pending = std::move(it->second);
  pending_logins_.erase(it);
  const Header& h = pending->header;
  const absl::string_view user = pending->user.view();
  std::span<uint8_t> reply =
      std::span<uint8_t>(deferred_reply_).first(pending->reply_limit);
  size_t size = 0;
  if (outcome.ok() && sessions_->KeyOf(session_id).has_value()) {
    metrics_.logins_ok.Add();
    Log("login: ", user, " from ",
        SocketAddress::FromEndpoint(pending->from).ToString(),
        absl::StrFormat(" (session %016x, claimed in the cluster)",
                        session_id));
    protocol::LoginFinishReply login;
    login.server_final = pending->server_final;
    login.session_id = session_id;
    login.heartbeat_interval_ms = static_cast<uint32_t>(
        absl::ToInt64Milliseconds(options_.heartbeat_interval));
    login.session_timeout_ms = static_cast<uint32_t>(
        absl::ToInt64Milliseconds(options_.session_timeout));
    size = protocol::EncodeLoginFinishReply(h, login, reply);
  } else {
    // The cluster did not grant the session (or it ended here while the
    // claim was pending): it ends, and its client learns why.
    registry_->Logout(session_id).IgnoreError();
    sessions_->Erase(session_id);
    metrics_.logins_refused.Add();
    // The session that holds the user elsewhere may have reached the
    // replica while this one was pending (set aside until now).
    LocalSessionEnded(user, session_id, /*release=*/false);
    if (absl::IsAlreadyExists(outcome)) {
      LogWarning("failed login for user ", user, " from ",
                 SocketAddress::FromEndpoint(pending->from).ToString(),
                 ": already active on another daemon");
      size = Error(
          h, ResultCode::kAlreadyActive,
          absl::StrCat("user ", user, protocol::kActiveOnAnotherDaemon), reply);
    } else {
      // Unavailable (the store may still have taken the claim: it is
      // released, which frees it only if it names this session), or a
      // session that ended while its claim was pending.
      shared_.cluster->Release(std::string(user), session_id);
      if (outcome.ok()) return;  // nobody waits for this reply any more
      LogWarning("login of ", user,
                 " refused: the index store: ", outcome.message());
      size = Error(h, ResultCode::kInternal,
                   absl::IsUnavailable(outcome)
                       ? "the index store is unreachable; try again"
                       : "the index store could not record the login; try "
                         "again",
                   reply);
    }
  }
  const uint8_t code =
      size > protocol::kHeaderSize ? reply[protocol::kHeaderSize] : 0;
  metrics_.Record(h.type, size > 0, code);
  if (size == 0) return;
  Bump(counters_->replies);
  if (options_.verbose) {
    LogReply(pending->from, user,
             code == static_cast<uint8_t>(ResultCode::kOk));
  }
  send_(reply.first(size), pending->from);
}

// Admission: the daemon's session table checks the MAC and the replay
// window and finds a cached answer; the registry checks that the session is
// live and moves it to the datagram's endpoint. Then the request runs, and
// its answer is cached (mutating requests) and sealed.

}  // namespace pcfs
