#include "daemon/handlers.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/auth/datagram_auth.h"
#include "core/base/log.h"
#include "core/base/mutex_lock.h"
#include "core/base/names.h"
#include "core/auth/ticket.h"
#include "core/io/net.h"

namespace pcfs {
namespace {

using protocol::Header;
using protocol::Message;
using protocol::MessageType;
using protocol::ResultCode;

constexpr size_t kNonceRandomBytes = 8;
constexpr size_t kNonceMacBytes = 16;

void Bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

// Reads the header fields of a datagram whose version we do not speak, so
// that the reply can still echo its type and request id. Returns nullopt if
// even that much is missing.
std::optional<Header> HeaderOfOtherVersion(std::span<const uint8_t> datagram) {
  if (datagram.size() < protocol::kHeaderSize) return std::nullopt;
  protocol::Reader reader(datagram);
  Header header;
  uint16_t magic = 0;
  uint16_t reserved = 0;
  if (!reader.U16(&magic) || !reader.U8(&header.version) ||
      !reader.U8(&header.type) || !reader.U16(&header.flags) ||
      !reader.U16(&reserved) || !reader.U32(&header.request_id) ||
      !reader.U64(&header.session_id)) {
    return std::nullopt;
  }
  if (magic != ((protocol::kMagic[0] << 8) | protocol::kMagic[1])) {
    return std::nullopt;
  }
  return header;
}

bool IsMutating(uint8_t type) {
  return type == static_cast<uint8_t>(MessageType::kPublish) ||
         type == static_cast<uint8_t>(MessageType::kUnpublish);
}

// Writes the request's sequence number into a reply and seals it with the
// session key. Returns `size` (0 stays 0).
size_t SealReply(const SessionKey& key, uint64_t sequence,
                 std::span<uint8_t> reply, size_t size) {
  if (size < protocol::kHeaderSize) return size;
  SealDatagram(key, sequence, reply.first(size));
  return size;
}

// ---- SCH pages ----
// An SCH page is read straight from the registry's index (no snapshot), and
// the request's two list fields say where: `snapshot` holds the registry's
// search epoch in its high 16 bits and the name shard in its low 16 (there
// are at most 4096 shards); `cursor` holds the index id + 1, so that it is 0
// only on the first request and, in a reply, on the last page.

uint32_t SearchSnapshotField(uint16_t epoch, uint32_t shard) {
  return (static_cast<uint32_t>(epoch) << 16) | shard;
}

// The position an SCH request asks for, or nullopt if its cursor comes from
// another registry (a daemon run before a restart, whose ids mean other
// names).
std::optional<Registry::SearchCursor> SearchCursorOf(
    const protocol::ListRequest& request, uint16_t epoch) {
  if (request.cursor == 0) return Registry::SearchCursor{};
  if ((request.snapshot >> 16) != epoch) return std::nullopt;
  return Registry::SearchCursor{request.snapshot & 0xFFFF, request.cursor - 1};
}

// Answers an SCH page request whose pattern is valid: one page as the
// registry's SearchPage fills it, and the cursor of the next. A repeat of
// the request (a retransmission) is answered from the registry as it is
// then, which the client cannot tell from the first answer.
size_t SearchPageReply(const Registry& registry, const Header& h,
                       const protocol::ListRequest& request,
                       absl::string_view caller, absl::Time now,
                       std::span<uint8_t> reply) {
  const uint16_t epoch = registry.search_epoch();
  std::optional<Registry::SearchCursor> from = SearchCursorOf(request, epoch);
  absl::StatusOr<std::optional<Registry::SearchCursor>> next;
  protocol::ListReplyWriter writer(h, SearchSnapshotField(epoch, 0),
                                   protocol::kUnknownTotal, reply);
  if (from.has_value()) {
    next = registry.SearchPage(
        request.pattern, caller, now, *from, Registry::kSearchPageBudget,
        [&](absl::string_view name) { return writer.Add(name); });
  }
  if (!from.has_value() || !next.ok()) {
    return protocol::EncodeStatusReply(
        h, ResultCode::kCursorExpired,
        "the search cursor is not this daemon's: start again", reply);
  }
  if (!next->has_value()) return writer.Finish(0);
  writer.SetSnapshot(SearchSnapshotField(epoch, (*next)->shard));
  return writer.Finish((*next)->id + 1);
}

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

}  // namespace

// ---- CredentialStore ------------------------------------------------------

CredentialStore::CredentialStore(CredentialTable table, SaltSecret secret)
    : salt_secret_(secret),
      table_(std::make_shared<const CredentialTable>(std::move(table))) {}

absl::StatusOr<std::unique_ptr<CredentialStore>> CredentialStore::Create(
    CredentialTable table) {
  absl::StatusOr<SaltSecret> secret = MakeSaltSecret();
  if (!secret.ok()) return secret.status();
  return std::unique_ptr<CredentialStore>(
      new CredentialStore(std::move(table), *secret));
}

std::shared_ptr<const CredentialTable> CredentialStore::Get() const {
  MutexLock lock(&mu_);
  return table_;
}

void CredentialStore::Replace(CredentialTable table) {
  auto fresh = std::make_shared<const CredentialTable>(std::move(table));
  MutexLock lock(&mu_);
  table_ = std::move(fresh);
  derived_.clear();
}

absl::StatusOr<ScramVerifier> CredentialStore::VerifierFor(
    absl::string_view user) const {
  std::shared_ptr<const CredentialTable> table;
  {
    MutexLock lock(&mu_);
    auto it = derived_.find(user);
    if (it != derived_.end()) return it->second;
    table = table_;
  }
  const Credential* credential = table->Find(user);
  if (credential == nullptr) return MockVerifierFor(user, salt_secret_);
  if (credential->is_verifier) return credential->verifier;
  // A PBKDF2, once per user and table: outside the lock.
  absl::StatusOr<ScramVerifier> verifier =
      ServerVerifierFor(user, *credential, salt_secret_);
  if (!verifier.ok()) return verifier.status();
  MutexLock lock(&mu_);
  if (table == table_) derived_.emplace(std::string(user), *verifier);
  return verifier;
}

// ---- UsedLoginNonces ------------------------------------------------------

bool UsedLoginNonces::Insert(const Nonce& nonce, absl::Time until,
                             absl::Time now) {
  MutexLock lock(&mu_);
  Purge(now);
  auto [it, inserted] = until_.try_emplace(nonce, until);
  if (!inserted) it->second = std::max(it->second, until);
  return !inserted;
}

bool UsedLoginNonces::Contains(const Nonce& nonce, absl::Time now) const {
  MutexLock lock(&mu_);
  auto it = until_.find(nonce);
  return it != until_.end() && now < it->second;
}

void UsedLoginNonces::Purge(absl::Time now) {
  // At most once a second, drop what has expired: the map holds only the
  // logins of the last few seconds.
  if (now < next_purge_) return;
  next_purge_ = now + absl::Seconds(1);
  absl::erase_if(until_, [&](const auto& entry) { return entry.second <= now; });
}

// ---- DaemonCounters -------------------------------------------------------

std::string DaemonCounters::ToString() const {
  auto v = [](const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  return absl::StrCat(
      "requests=", v(requests), " replies=", v(replies),
      " dropped_malformed=", v(dropped_malformed),
      " rejected_malformed=", v(rejected_malformed),
      " bad_version=", v(bad_version), " unknown_type=", v(unknown_type),
      " unknown_session=", v(unknown_session), " bad_mac=", v(bad_mac),
      " replayed=", v(replayed), " auth_failed=", v(auth_failed),
      " rate_limited=", v(rate_limited),
      " retransmissions=", v(retransmissions),
      " expired_sessions=", v(expired_sessions),
      " state_errors=", v(state_errors));
}

absl::string_view ClassicCommandName(uint8_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kLogin:
    case MessageType::kLoginFinish: return "AUTH";
    case MessageType::kHeartbeat: return "HBT";
    case MessageType::kLogout: return "XIT";
    case MessageType::kPing: return "PING";
    case MessageType::kListActivePeers: return "LAP";
    case MessageType::kListPublished: return "LPF";
    case MessageType::kPublish: return "PUB";
    case MessageType::kUnpublish: return "UNP";
    case MessageType::kSearch: return "SCH";
    case MessageType::kGet: return "GET";
  }
  return "UNKNOWN";
}

// ---- RequestHandler -------------------------------------------------------

RequestHandler::RequestHandler(const Shared& shared, Options options,
                               absl::Time now)
    : shared_(shared),
      registry_(shared.registry),
      counters_(shared.counters),
      options_(options),
      // The wheel spans twice the session timeout, so a heartbeat-extended
      // deadline is normally re-armed without wrapping.
      wheel_(options.wheel_slot,
             static_cast<size_t>(2 * options.session_timeout /
                                 options.wheel_slot) + 2,
             now) {
  ping_budget_.per_second = options.pings_per_second;
}

size_t RequestHandler::Handle(std::span<const uint8_t> datagram,
                              const Endpoint& from, absl::Time now,
                              std::span<uint8_t> reply) {
  Bump(counters_->requests);
  log_user_[0] = '\0';
  absl::StatusOr<Message> message = protocol::ParseDatagram(datagram);
  size_t size = 0;
  if (!message.ok()) {
    std::optional<Header> other = HeaderOfOtherVersion(datagram);
    if (message.status().code() != absl::StatusCode::kFailedPrecondition ||
        !other.has_value() || other->is_response()) {
      Bump(counters_->dropped_malformed);
      return 0;
    }
    Bump(counters_->bad_version);
    size = Error(*other, ResultCode::kUnsupportedVersion,
                 absl::StrCat("protocol version ", other->version,
                              " is not supported; this daemon speaks ",
                              protocol::kVersion),
                 reply);
  } else if (message->header.is_response()) {
    // Replies are never answered: that could make two daemons loop.
    Bump(counters_->dropped_malformed);
    return 0;
  } else if (!protocol::IsKnownMessageType(message->header.type)) {
    Bump(counters_->unknown_type);
    size = Error(message->header, ResultCode::kUnknownType,
                 absl::StrCat("unknown message type ", message->header.type),
                 reply);
  } else if (message->header.message_type() == MessageType::kPing) {
    size = HandlePing(*message, now, reply);
  } else if (message->header.message_type() == MessageType::kLogin) {
    size = HandleLogin(*message, from, now, reply);
  } else if (message->header.message_type() == MessageType::kLoginFinish) {
    size = HandleLoginFinish(*message, from, now, reply);
  } else {
    size = HandleSessionRequest(*message, datagram, from, now, reply);
  }
  const uint8_t code =
      size > protocol::kHeaderSize ? reply[protocol::kHeaderSize] : 0;
  metrics_.Record(message.ok() ? message->header.type : 0, size > 0, code);
  if (size > 0) {
    Bump(counters_->replies);
    if (options_.verbose) {
      LogReply(from, log_user_, code == static_cast<uint8_t>(ResultCode::kOk));
    }
  }
  return size;
}

size_t RequestHandler::HandlePing(const Message& m, absl::Time now,
                                  std::span<uint8_t> reply) {
  absl::StatusOr<protocol::PingRequest> request =
      protocol::DecodePingRequest(m.body);
  // A bad or excess PING is dropped, never answered with an error: an error
  // reply could be larger than the request, and PING needs no login.
  if (!request.ok() || m.header.session_id != 0) {
    Bump(counters_->dropped_malformed);
    return 0;
  }
  if (!ping_budget_.TryTake(now)) {
    metrics_.pings_dropped.Add();
    return 0;
  }
  return protocol::EncodePingReply(m.header, request->token, reply);
}

bool RequestHandler::PingBudget::TryTake(absl::Time now) {
  if (now - window_start >= absl::Seconds(1)) {
    window_start = now;
    used = 0;
  }
  if (used >= per_second) return false;
  ++used;
  return true;
}

void RequestHandler::LogFailedLogin(absl::string_view user,
                                    const Endpoint& from,
                                    absl::string_view why, absl::Time now) {
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

std::string RequestHandler::MakeServerNonce(absl::string_view client_nonce,
                                            absl::string_view user,
                                            const Endpoint& from,
                                            absl::Time now) const {
  uint8_t raw[8 + kNonceRandomBytes + kNonceMacBytes];
  const uint64_t stamp = static_cast<uint64_t>(absl::ToUnixMillis(now));
  for (int i = 0; i < 8; ++i) raw[i] = static_cast<uint8_t>(stamp >> (56 - 8 * i));
  if (RAND_bytes(raw + 8, kNonceRandomBytes) != 1) {
    std::memset(raw + 8, 0, kNonceRandomBytes);  // still MAC'd and fresh
  }
  const absl::string_view head(reinterpret_cast<const char*>(raw),
                               8 + kNonceRandomBytes);
  absl::StatusOr<Sha256Digest> mac = HmacSha256(
      absl::string_view(reinterpret_cast<const char*>(
                            shared_.login_secret.data()),
                        shared_.login_secret.size()),
      absl::StrCat("PeerConnect login nonce", head, client_nonce, "\n", user,
                   "\n", AddressKey(from), from.port));
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
  uint64_t stamp = 0;
  for (int i = 0; i < 8; ++i) {
    stamp = (stamp << 8) | static_cast<uint8_t>(raw[i]);
  }
  const absl::Time made = absl::FromUnixMillis(static_cast<int64_t>(stamp));
  if (made > now || now - made > options_.login_window) return false;
  const absl::string_view head(raw.data(), 8 + kNonceRandomBytes);
  absl::StatusOr<Sha256Digest> mac = HmacSha256(
      absl::string_view(reinterpret_cast<const char*>(
                            shared_.login_secret.data()),
                        shared_.login_secret.size()),
      absl::StrCat("PeerConnect login nonce", head, client_nonce, "\n", user,
                   "\n", AddressKey(from), from.port));
  return mac.ok() && CRYPTO_memcmp(mac->data(), raw.data() + head.size(),
                                   kNonceMacBytes) == 0;
}

size_t RequestHandler::CheckLoginRate(const Header& h, absl::string_view user,
                                      const Endpoint& from, absl::Time now,
                                      bool charge_address,
                                      std::span<uint8_t> reply) {
  absl::Duration wait;
  if (charge_address && shared_.address_limiter != nullptr &&
      !shared_.address_limiter->TryAcquire(AddressKey(from), now, &wait)) {
    Bump(counters_->rate_limited);
    return Error(h, ResultCode::kRateLimited,
                 absl::StrCat("too many login attempts from your address; "
                              "try again in ",
                              absl::ToInt64Seconds(wait) + 1, " s"),
                 reply);
  }
  if (shared_.user_limiter != nullptr &&
      shared_.user_limiter->Available(user, now) < 1) {
    Bump(counters_->rate_limited);
    return Error(h, ResultCode::kRateLimited,
                 absl::StrCat("too many failed logins for ", user,
                              "; try again later"),
                 reply);
  }
  return 0;
}

size_t RequestHandler::HandleLogin(const Message& m, const Endpoint& from,
                                   absl::Time now, std::span<uint8_t> reply) {
  absl::StatusOr<protocol::LoginRequest> request =
      protocol::DecodeLoginRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(m.header, ResultCode::kMalformed, request.status().message(),
                 reply);
  }
  ScramServer scram;
  absl::StatusOr<std::string> user = scram.HandleClientFirst(
      request->client_first);
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
  if (size_t n = CheckLoginRate(m.header, *user, from, now, true, reply)) {
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

size_t RequestHandler::HandleLoginFinish(const Message& m,
                                         const Endpoint& from, absl::Time now,
                                         std::span<uint8_t> reply) {
  absl::StatusOr<protocol::LoginFinishRequest> request =
      protocol::DecodeLoginFinishRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(m.header, ResultCode::kMalformed, request.status().message(),
                 reply);
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
  if (size_t n = CheckLoginRate(m.header, *user, from, now, false, reply)) {
    return n;
  }
  // The server nonce must be one this daemon made for this very login.
  const std::string client_nonce = scram.nonce();
  const absl::string_view full_nonce =
      ScramAttribute(request->client_final, 'r');
  if (full_nonce.size() <= client_nonce.size() ||
      full_nonce.substr(0, client_nonce.size()) != client_nonce ||
      !CheckServerNonce(full_nonce.substr(client_nonce.size()), client_nonce,
                        *user, from, now)) {
    Bump(counters_->auth_failed);
    metrics_.logins_refused.Add();
    LogFailedLogin(*user, from, "stale or foreign server nonce", now);
    return Error(m.header, ResultCode::kAuthFailed,
                 "the login expired or was not started here; log in again",
                 reply);
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
    if (shared_.user_limiter != nullptr) {
      shared_.user_limiter->TryAcquire(*user, now);
    }
    return Error(m.header, ResultCode::kAuthFailed,
                 "wrong user name or password", reply);
  }
  Registry::LoginParams params;
  params.user = *user;
  params.control = from;
  params.file_port = request->tcp_port;
  params.nonce = LoginNonceOf(full_nonce);
  params.key = *key;
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
    metrics_.logins_refused.Add();
    LogFailedLogin(*user, from, "already active", now);
    return Error(m.header, ResultCode::kAlreadyActive,
                 absl::StrCat("user ", *user, " is already active"), reply);
  }
  if (used != nullptr) {
    used->Insert(params.nonce, now + options_.login_window, now);
  }
  wheel_.Schedule(*session, now + options_.session_timeout);
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

size_t RequestHandler::HandleSessionRequest(
    const Message& m, std::span<const uint8_t> datagram, const Endpoint& from,
    absl::Time now, std::span<uint8_t> reply) {
  const Header& h = m.header;
  Caller caller;
  caller.session_id = h.session_id;
  caller.sequence = h.sequence;
  bool bad_mac = false;
  bool replayed = false;
  std::optional<ResultCode> cached;
  bool found = registry_->WithSession(h.session_id, now, [&](Session& s) {
    // MAC first: a forged datagram must not move the replay window.
    if (!OpenDatagram(s.key, datagram).has_value()) {
      bad_mac = true;
      return;
    }
    if (!s.replay.Check(h.sequence)) {
      replayed = true;
      return;
    }
    s.replay.Record(h.sequence);
    // The session belongs to its key: a sealed datagram from a new address
    // (NAT rebinding) moves it there.
    s.control = from;
    caller.key = s.key;
    size_t n = std::min(s.user.size(), sizeof(caller.user) - 1);
    std::memcpy(caller.user, s.user.data(), n);
    caller.user[n] = '\0';
    for (const Session::CachedReply& c : s.reply_cache) {
      if (c.used && c.request_id == h.request_id && c.type == h.type) {
        cached = static_cast<ResultCode>(c.code);
      }
    }
  });
  if (!found) {
    // Unsealed: there is no key to seal it with. It only makes the client
    // log in again.
    Bump(counters_->unknown_session);
    LogRequest(h, from, "an unknown session");
    return Error(h, ResultCode::kUnknownSession,
                 "no such session (it expired or ended): log in again", reply);
  }
  if (bad_mac || replayed) {
    Bump(bad_mac ? counters_->bad_mac : counters_->replayed);
    return 0;  // dropped: answering would help an attacker probe
  }
  SetLogUser(caller.name());
  LogRequest(h, from, caller.name());
  size_t size;
  if (cached.has_value()) {
    // A retransmission of a request we already carried out: answer it the
    // same way without doing the work twice.
    Bump(counters_->retransmissions);
    size = protocol::EncodeStatusReply(h, *cached,
                                       protocol::ResultCodeName(*cached),
                                       reply);
  } else {
    size = DispatchSessionRequest(m, caller, from, now, reply);
  }
  return SealReply(caller.key, caller.sequence, reply, size);
}

size_t RequestHandler::DispatchSessionRequest(const Message& m,
                                              const Caller& caller,
                                              const Endpoint& from,
                                              absl::Time now,
                                              std::span<uint8_t> reply) {
  const Header& h = m.header;
  switch (h.message_type()) {
    case MessageType::kHeartbeat:
    case MessageType::kLogout: {
      if (absl::Status s = protocol::DecodeEmptyRequest(m.body); !s.ok()) {
        Bump(counters_->rejected_malformed);
        return Error(h, ResultCode::kMalformed, s.message(), reply);
      }
      absl::Status s = h.message_type() == MessageType::kHeartbeat
                           ? registry_->Heartbeat(h.session_id, from, now)
                           : registry_->Logout(h.session_id);
      if (!s.ok()) {
        return Error(h, ResultCode::kUnknownSession, s.message(), reply);
      }
      if (h.message_type() == MessageType::kLogout) {
        Log("logout: ", caller.name(),
            absl::StrFormat(" (session %016x)", h.session_id));
      }
      return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
    }
    case MessageType::kListActivePeers:
    case MessageType::kListPublished:
    case MessageType::kSearch:
      return HandleList(m, caller, now, reply);
    case MessageType::kPublish:
      return HandlePublish(m, caller, now, reply);
    case MessageType::kUnpublish:
      return HandleUnpublish(m, caller, now, reply);
    case MessageType::kGet:
      return HandleGet(m, caller, now, reply);
    case MessageType::kLogin:
    case MessageType::kLoginFinish:
    case MessageType::kPing:
      break;
  }
  return Error(h, ResultCode::kInternal, "unhandled message type", reply);
}

size_t RequestHandler::HandleList(const Message& m, const Caller& caller,
                                  absl::Time now, std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::ListRequest> request =
      protocol::DecodeListRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  const bool is_search = h.message_type() == MessageType::kSearch;
  if (!is_search && !request->pattern.empty()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, "only SCH takes a pattern", reply);
  }
  if (is_search) {
    if (absl::Status s = ValidateSearchPattern(request->pattern); !s.ok()) {
      return Error(h, ResultCode::kInvalidName, s.message(), reply);
    }
    return SearchPageReply(*registry_, h, *request, caller.name(), now, reply);
  }

  std::shared_ptr<const ListSnapshot> snapshot;
  if (request->cursor == 0) {
    auto fresh = std::make_shared<ListSnapshot>();
    fresh->id = next_snapshot_id_++;
    if (fresh->id == 0) fresh->id = next_snapshot_id_++;
    switch (h.message_type()) {
      case MessageType::kListActivePeers:
        fresh->names = registry_->ActiveUsers(caller.name(), now);
        break;
      default:
        fresh->names = registry_->PublishedBy(caller.name());
        break;
    }
    snapshot = std::move(fresh);
    registry_->WithSession(caller.session_id, now,
                           [&](Session& s) { s.snapshot = snapshot; });
  } else {
    registry_->WithSession(caller.session_id, now,
                           [&](Session& s) { snapshot = s.snapshot; });
    if (snapshot == nullptr || snapshot->id != request->snapshot ||
        request->cursor > snapshot->names.size()) {
      return Error(h, ResultCode::kCursorExpired,
                   "the list changed while it was read: start again", reply);
    }
  }

  const std::vector<std::string>& names = snapshot->names;
  protocol::ListReplyWriter writer(h, snapshot->id,
                                   static_cast<uint32_t>(names.size()), reply);
  size_t next = request->cursor;
  while (next < names.size() && writer.Add(names[next])) ++next;
  return writer.Finish(next < names.size() ? static_cast<uint32_t>(next) : 0);
}

size_t RequestHandler::HandlePublish(const Message& m, const Caller& caller,
                                     absl::Time now,
                                     std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::PublishRequest> request =
      protocol::DecodePublishRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  FileMeta meta;
  meta.size = request->size;
  meta.sha256 = request->sha256;
  if (registry_->Publish(caller.name(), request->name, meta) &&
      shared_.log != nullptr) {
    absl::Status s =
        shared_.log->RecordPublish(caller.name(), request->name, meta);
    if (!s.ok()) {
      // Not durable, so not acknowledged: take it back.
      registry_->Unpublish(caller.name(), request->name).IgnoreError();
      Bump(counters_->state_errors);
      LogError("cannot record a publication: ", s.ToString());
      return Error(h, ResultCode::kInternal,
                   "the daemon could not record the publication", reply);
    }
  }
  RememberReply(caller, h, ResultCode::kOk, now);
  return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
}

size_t RequestHandler::HandleUnpublish(const Message& m, const Caller& caller,
                                       absl::Time now,
                                       std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::NameRequest> request =
      protocol::DecodeNameRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  if (!registry_->Unpublish(caller.name(), request->name).ok()) {
    RememberReply(caller, h, ResultCode::kNotFound, now);
    return Error(h, ResultCode::kNotFound,
                 absl::StrCat("you do not publish ", request->name), reply);
  }
  if (shared_.log != nullptr) {
    absl::Status s =
        shared_.log->RecordUnpublish(caller.name(), request->name);
    if (!s.ok()) {
      Bump(counters_->state_errors);
      LogError("cannot record an unpublication: ", s.ToString());
      return Error(h, ResultCode::kInternal,
                   "the daemon could not record the unpublication", reply);
    }
  }
  RememberReply(caller, h, ResultCode::kOk, now);
  return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
}

size_t RequestHandler::HandleGet(const Message& m, const Caller& caller,
                                 absl::Time now, std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::NameRequest> request =
      protocol::DecodeNameRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  std::optional<Holder> holder =
      registry_->Locate(request->name, caller.name(), now);
  if (!holder.has_value()) {
    return Error(h, ResultCode::kNotFound, "File not found", reply);
  }
  protocol::GetReply get;
  get.holder = holder->user.view();
  get.address.family = holder->file_server.family;
  get.address.ip = holder->file_server.ip;
  get.address.port = holder->file_server.port;
  get.size = holder->meta.size;
  get.sha256 = holder->meta.sha256;
  // On the stack: a GET allocates nothing (tests/unit/
  // request_allocation_test.cc).
  char ticket[kMaxTicketChars];
  const size_t ticket_size = WriteTicket(
      holder->key, holder->user.view(), caller.name(), request->name,
      shared_.wall_clock() + options_.ticket_lifetime, ticket);
  get.ticket = absl::string_view(ticket, ticket_size);
  return protocol::EncodeGetReply(h, get, reply);
}

void RequestHandler::Tick(absl::Time now) {
  wheel_.Advance(now, [&](uint64_t session_id) {
    bool expired = false;
    std::optional<absl::Time> deadline =
        registry_->ExpireIfDue(session_id, now, &expired);
    if (deadline.has_value()) wheel_.Schedule(session_id, *deadline);
    if (expired) {
      Bump(counters_->expired_sessions);
      Log(absl::StrFormat("expiry: session %016x had no heartbeat for %s",
                          session_id,
                          absl::FormatDuration(options_.session_timeout)));
    }
  });
}

size_t RequestHandler::Error(const Header& request, ResultCode code,
                             absl::string_view message,
                             std::span<uint8_t> reply) {
  return protocol::EncodeStatusReply(request, code, message, reply);
}

void RequestHandler::RememberReply(const Caller& caller, const Header& request,
                                   ResultCode code, absl::Time now) {
  if (!IsMutating(request.type)) return;
  registry_->WithSession(caller.session_id, now, [&](Session& s) {
    Session::CachedReply& slot = s.reply_cache[s.reply_cache_next];
    slot.request_id = request.request_id;
    slot.type = request.type;
    slot.code = static_cast<uint8_t>(code);
    slot.used = true;
    s.reply_cache_next =
        static_cast<uint8_t>((s.reply_cache_next + 1) % s.reply_cache.size());
  });
}

void RequestHandler::SetLogUser(absl::string_view user) {
  size_t n = std::min(user.size(), sizeof(log_user_) - 1);
  std::memcpy(log_user_, user.data(), n);
  log_user_[n] = '\0';
}

void RequestHandler::LogRequest(const Header& header, const Endpoint& from,
                                absl::string_view user) const {
  if (!options_.verbose) return;
  LogDebug(from.port, ": Received ", ClassicCommandName(header.type),
           " from ", user);
}

void RequestHandler::LogReply(const Endpoint& from, absl::string_view user,
                              bool ok) const {
  if (user.empty()) user = "an unknown peer";
  LogDebug(from.port, ": Sent ", ok ? "OK" : "ERR", " to ", user);
}

}  // namespace pcfs
