// RequestHandler: the daemon's request logic, joining the protocol codec to
// the registry (presence, publications, search) and the session table (the
// daemon's part of each session). Handle() is a plain function of (datagram,
// sender, now) to a reply, so the same code runs under either reactor backend
// and in tests without sockets.
//
// Login is SCRAM-SHA-256 in two exchanges (LOGIN, LOGIN_FINISH) with no
// state kept between them; every later datagram must carry a MAC under the
// session key and a fresh sequence number, or it is dropped. A session
// request is admitted once (SessionTable::Admit: MAC, replay window, cached
// answer; Registry::Admit: live, endpoint), runs, and completes (its answer
// cached if it is PUB or UNP, then sealed the same way). With a
// JournalWriter (the daemon), PUB and UNP that change something are
// deferred: Handle() submits them and returns 0, and the reply goes out
// from the reactor thread once the change is durable (EnableDeferredReplies:
// the completion queue and the send path). Without one (tests), they are
// recorded (Shared::log) and answered synchronously.
//
// Cluster mode (Shared::cluster and Shared::replica set; peerconnectd
// --redis): a LOGIN_FINISH that passes SCRAM and Registry::Login is
// answered only once the cluster store has claimed the user for this
// session (ClusterLink::Claim; the reply goes out through the same
// completion queue and send path as a deferred PUB). A refused claim ends
// the local session ("already active on another daemon"), as does a store
// that cannot be reached ("the index store is unreachable"); a
// retransmission while the claim is pending is dropped. A session that ends
// here (logout, expiry) is released in the store. GET issues tickets for
// holders on other daemons with the ticket keys the replica holds. PUB and
// UNP go through the JournalWriter as standalone, its append being the
// store's. Heartbeats never reach the store. Definitions:
// handlers.cc (admission, dispatch, expiry), login_handlers.cc,
// list_handlers.cc, publication_handlers.cc, login_state.cc
// (CredentialStore, UsedLoginNonces). See docs/PROTOCOL.md.
//
// Thread-safety: one RequestHandler per reactor thread (it owns that
// thread's expiry wheel); everything in Shared is shared and thread-safe.
#ifndef PCFS_DAEMON_HANDLERS_H_
#define PCFS_DAEMON_HANDLERS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/auth/credentials.h"
#include "core/auth/datagram_auth.h"
#include "core/auth/hmac_sha256.h"
#include "core/auth/rate_limiter.h"
#include "core/auth/scram.h"
#include "core/auth/ticket.h"
#include "core/auth/ticket_key_cache.h"
#include "core/base/mutex_lock.h"
#include "core/base/prefetch_hints.h"
#include "core/index/expiry_wheel.h"
#include "core/index/registry.h"
#include "core/proto/protocol.h"
#include "daemon/cluster_link.h"
#include "daemon/cluster_replica.h"
#include "daemon/journal_writer.h"
#include "daemon/metrics.h"
#include "daemon/publication_log.h"
#include "daemon/session_table.h"

namespace pcfs {

// The credentials in force, replaced as a whole on SIGHUP, and the SCRAM
// verifiers derived from them. A plain password's verifier costs a PBKDF2,
// so it is derived on the user's first login and kept until the next reload.
// Thread-safe.
class CredentialStore {
 public:
  // Fails only if libcrypto cannot make the random salt secret.
  static absl::StatusOr<std::unique_ptr<CredentialStore>> Create(
      CredentialTable table);

  std::shared_ptr<const CredentialTable> Get() const;
  // Replaces the table and forgets the derived verifiers.
  void Replace(CredentialTable table);

  // The verifier to run SCRAM with for `user`: the stored one, one derived
  // from a plain password, or, for a user not in the table, a mock one that
  // no password matches (so that LOGIN does not tell which users exist).
  absl::StatusOr<ScramVerifier> VerifierFor(absl::string_view user) const;

 private:
  explicit CredentialStore(CredentialTable table, SaltSecret secret);

  const SaltSecret salt_secret_;  // lives as long as the daemon
  mutable absl::Mutex mu_;
  std::shared_ptr<const CredentialTable> table_ ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_map<std::string, ScramVerifier> derived_
      ABSL_GUARDED_BY(mu_);
};

// The login nonces used in the last few seconds, so that a LOGIN_FINISH
// replayed within its nonce's lifetime never starts a new session (after
// the user logged out, say); a retransmission of a live login still gets
// its session back. Entries live as long as a server nonce is valid.
// Thread-safe.
class UsedLoginNonces {
 public:
  using Nonce = std::array<uint8_t, 16>;
  // Records `nonce` until `until`; true if it was already recorded.
  bool Insert(const Nonce& nonce, absl::Time until, absl::Time now);
  bool Contains(const Nonce& nonce, absl::Time now) const;

 private:
  void Purge(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Nonce, absl::Time> until_ ABSL_GUARDED_BY(mu_);
  absl::Time next_purge_ ABSL_GUARDED_BY(mu_);
};

// Counters of what the daemon saw, shared by all reactor threads. Relaxed
// atomics: they are statistics, not synchronisation.
struct DaemonCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> replies{0};
  std::atomic<uint64_t> dropped_malformed{0};   // not even a header: dropped
  std::atomic<uint64_t> rejected_malformed{0};  // header ok, body bad
  std::atomic<uint64_t> bad_version{0};
  std::atomic<uint64_t> unknown_type{0};
  std::atomic<uint64_t> unknown_session{0};
  std::atomic<uint64_t> bad_mac{0};   // dropped: MAC did not verify
  std::atomic<uint64_t> replayed{0};  // dropped: sequence number seen
  std::atomic<uint64_t> auth_failed{0};
  std::atomic<uint64_t> rate_limited{0};
  std::atomic<uint64_t> retransmissions{0};
  std::atomic<uint64_t> expired_sessions{0};
  // Expiries put off because the daemon had dropped datagrams unread since
  // the session was last heard from (Registry::ExpireIfDue).
  std::atomic<uint64_t> expiries_held{0};
  std::atomic<uint64_t> state_errors{0};

  // One line: "requests=N replies=N ...".
  std::string ToString() const;
};

class RequestHandler {
 public:
  struct Options {
    absl::Duration heartbeat_interval = absl::Seconds(2);
    absl::Duration session_timeout = absl::Seconds(3);
    absl::Duration wheel_slot = absl::Milliseconds(100);
    // How long a server nonce from LOGIN stays good for LOGIN_FINISH.
    absl::Duration login_window = absl::Seconds(10);
    // How long a download ticket is valid.
    absl::Duration ticket_lifetime = absl::Seconds(60);
    // Log every request and reply at debug priority in the classic form
    // "57820: Received AUTH from hans".
    bool verbose = false;
    // PINGs answered per second by this handler; more are dropped.
    int pings_per_second = 100;
  };

  // What all reactor threads share. Every pointer must outlive the
  // handlers; `log` may be null (no durability: tests that do not need it).
  struct Shared {
    Registry* registry = nullptr;
    // The daemon's part of each session (key, replay window, cached
    // answers, list snapshots); the registry holds its presence.
    SessionTable* sessions = nullptr;
    const CredentialStore* credentials = nullptr;
    PublicationLog* log = nullptr;
    // Group commit: PUB and UNP go through it and are answered when
    // durable (see EnableDeferredReplies). Null: `log`, synchronously.
    JournalWriter* journal = nullptr;
    DaemonCounters* counters = nullptr;
    // Login limits (docs/SECURITY.md, "Login limits"); each may be null (no
    // limit). Every LOGIN and LOGIN_FINISH, per source address (an IPv6
    // address counts as its /64).
    RateLimiter* address_limiter = nullptr;
    // Failed logins per user and source address: one address's wrong
    // passwords throttle that address for that user, never the user.
    RateLimiter* failure_limiter = nullptr;
    // One bucket (key "") for the whole daemon: the proof checks of
    // LOGIN_FINISH, the CPU a distributed flood could burn.
    RateLimiter* login_budget = nullptr;
    UsedLoginNonces* used_nonces = nullptr;
    // Key of the MAC in the server nonces (random per daemon start).
    std::array<uint8_t, 32> login_secret{};
    // Wall-clock time, for ticket expiry (the holder checks it).
    std::function<absl::Time()> wall_clock = [] { return absl::Now(); };
    // Cluster mode (see the file comment); both null standalone. Logins
    // are claimed in the store only with deferred replies enabled.
    ClusterLink* cluster = nullptr;
    ClusterReplica* replica = nullptr;
  };

  RequestHandler(const Shared& shared, Options options, absl::Time now);

  // Sends a deferred reply to `to`, on this handler's socket.
  using ReplySender = absl::AnyInvocable<void(std::span<const uint8_t> reply,
                                              const Endpoint& to)>;
  // Defers PUB and UNP to shared.journal, and in cluster mode LOGIN_FINISH
  // to the store's claim: their completions come back on `completions`
  // (whose RunCompletions() this handler's thread calls) and their replies
  // go out through `send`. REQUIRES: shared.journal set; called before the
  // first Handle(); in cluster mode, the store's claims stop
  // (ClusterLink::Stop) before this handler and `completions` go.
  void EnableDeferredReplies(JournalWriter::CompletionQueue* completions,
                             ReplySender send);

  // Handles one datagram from `from` and writes the reply into `reply`
  // (at least kMaxDatagramSize bytes). Returns the reply size; 0 means the
  // datagram is dropped without a reply (it is not ours to answer: too short
  // for a header, bad magic, or itself a reply). A reply that is not sealed
  // with a session key (to LOGIN, LOGIN_FINISH, PING, or any error before a
  // session is admitted) is never larger than the datagram: error messages
  // are cut to fit, and what cannot fit is dropped (no amplification).
  size_t Handle(std::span<const uint8_t> datagram, const Endpoint& from,
                absl::Time now, std::span<uint8_t> reply);

  // Starts loading the state that handling `datagram` will read, as far as
  // this thread noted it for the datagram's session (SessionHints): the
  // reactor's DatagramPeek, run over a batch before Handle. Changes nothing
  // that Handle sees.
  void Prefetch(std::span<const uint8_t> datagram) const;

  // Expires the sessions whose deadline has passed. Called by the reactor's
  // timer every wheel slot. `last_loss`: when the daemon last found its
  // sockets to have dropped datagrams unread (InfinitePast: never); a
  // session silent since before then is held instead, once
  // (Registry::ExpireIfDue). `drained_until`: every datagram that reached
  // any of the daemon's sockets before it has been handled (each reactor
  // drains its own socket at its tick, and a session's heartbeats may come
  // to another reactor's socket than its login did: DrainClock); a session
  // whose deadline is later waits for a later tick.
  void Tick(absl::Time now, absl::Time last_loss = absl::InfinitePast(),
            absl::Time drained_until = absl::InfiniteFuture());

  absl::Duration session_timeout() const { return options_.session_timeout; }

  // What this handler counted. Written only by its thread (Handle, Tick);
  // any thread may read it.
  const RequestMetrics& metrics() const { return metrics_; }

 private:
  // A fixed window of PING replies, so that the unauthenticated PING cannot
  // keep a reactor busy. No allocation, one per handler.
  struct PingBudget {
    bool TryTake(absl::Time now);
    absl::Time window_start = absl::InfinitePast();
    int used = 0;
    int per_second = 100;
  };
  // Failed logins logged at warning per 10 s, per handler; the rest are
  // counted and summed up in one line.
  static constexpr int kFailedLoginLogsPer10s = 20;

  // What a session request carries once its session is checked.
  struct Caller {
    uint64_t session_id = 0;
    uint64_t sequence = 0;  // of the request; its reply carries it too
    SessionKey key{};       // to seal its reply with
    UserName user;          // inline: no allocation per request
    Endpoint from;          // where the request came from: its reply goes there
    absl::string_view name() const { return user.view(); }
  };

  size_t HandlePing(const protocol::Message& m, absl::Time now,
                    std::span<uint8_t> reply);
  void LogFailedLogin(absl::string_view user, const Endpoint& from,
                      absl::string_view why, absl::Time now);
  // `size` is the datagram's: a LOGIN shorter than
  // protocol::kLoginRequestMinSize is refused.
  size_t HandleLogin(const protocol::Message& m, size_t size,
                     const Endpoint& from, absl::Time now,
                     std::span<uint8_t> reply);
  size_t HandleLoginFinish(const protocol::Message& m, const Endpoint& from,
                           absl::Time now, std::span<uint8_t> reply);
  size_t DispatchSessionRequest(const protocol::Message& m,
                                const Caller& caller, absl::Time now,
                                std::span<uint8_t> reply);
  // The server nonce for a LOGIN: timestamp, random bytes and their MAC.
  std::string MakeServerNonce(absl::string_view client_nonce,
                              absl::string_view user, const Endpoint& from,
                              absl::Time now) const;
  // The MAC a server nonce carries: over its timestamp and random bytes
  // (`head`), the client's nonce, the user and the sender.
  absl::StatusOr<Sha256Digest> ServerNonceMac(absl::string_view head,
                                              absl::string_view client_nonce,
                                              absl::string_view user,
                                              const Endpoint& from) const;
  // True if `server_nonce` is one MakeServerNonce made for these, within
  // options_.login_window of `now`.
  bool CheckServerNonce(absl::string_view server_nonce,
                        absl::string_view client_nonce, absl::string_view user,
                        const Endpoint& from, absl::Time now) const;
  // Refuses a login step that exceeds a rate limit (returns the reply
  // size), or returns 0 to go on. CheckAddressRate takes a token of the
  // address's bucket: a LOGIN does, and a LOGIN_FINISH only if its server
  // nonce fails (a good one was paid for by its LOGIN, so a login costs
  // one token however busy the address is). CheckFailureRate checks the
  // (user, address) bucket of failures, at both steps. (LOGIN_FINISH takes
  // a token of the daemon's login budget itself, once its nonce checks.)
  size_t CheckAddressRate(const protocol::Header& h, const Endpoint& from,
                          absl::Time now, std::span<uint8_t> reply);
  size_t CheckFailureRate(const protocol::Header& h, absl::string_view user,
                          const Endpoint& from, absl::Time now,
                          std::span<uint8_t> reply);
  size_t HandleSessionRequest(const protocol::Message& m,
                              std::span<const uint8_t> datagram,
                              const Endpoint& from, absl::Time now,
                              std::span<uint8_t> reply);
  size_t HandleList(const protocol::Message& m, const Caller& caller,
                    absl::Time now, std::span<uint8_t> reply);
  size_t HandlePublish(const protocol::Message& m, const Caller& caller,
                       absl::Time now, std::span<uint8_t> reply);
  size_t HandleUnpublish(const protocol::Message& m, const Caller& caller,
                         absl::Time now, std::span<uint8_t> reply);
  size_t HandleGet(const protocol::Message& m, const Caller& caller,
                   absl::Time now, std::span<uint8_t> reply);
  // The name of a UNP, GET or STAT request, decoded and checked; or
  // nullopt, with the error reply written and its size in `*error_size`.
  std::optional<absl::string_view> RequestedName(const protocol::Message& m,
                                                 std::span<uint8_t> reply,
                                                 size_t* error_size);
  // STAT: the size and root the caller publishes a name with.
  size_t HandleStat(const protocol::Message& m, const Caller& caller,
                    std::span<uint8_t> reply);
  // Carries out a PUB or UNP that changes the publications: submits it to
  // the journal writer (returns 0, the reply comes later) or, without one,
  // records and applies it now (returns the reply size).
  size_t CommitChange(const protocol::Header& h, const Caller& caller,
                      PublicationChange::Kind kind, absl::string_view name,
                      const FileMeta& meta, std::span<uint8_t> reply);
  // What a deferred request needs to be answered.
  struct DeferredRequest {
    protocol::Header header;
    Caller caller;
  };
  // Answers a deferred request with `outcome` (JournalWriter::Completion),
  // on this handler's thread.
  void CompleteDeferred(const DeferredRequest& request,
                        const absl::Status& outcome);
  // A login whose claim is pending: what its reply needs.
  struct PendingLogin {
    protocol::Header header;
    Endpoint from;
    UserName user;
    std::string server_final;
    size_t reply_limit = 0;  // an unsealed reply is no larger than its request
  };
  // Cluster mode: claims the user of `pending` for session `session_id`
  // (serving files on `file_port` with `key_pin`) in the store and defers
  // the LOGIN_FINISH reply until the claim is done (CompleteLogin).
  void ClaimLogin(std::unique_ptr<PendingLogin> pending, uint64_t session_id,
                  const SessionKey& key, uint16_t file_port,
                  const Sha256Digest& key_pin);
  // Answers the LOGIN_FINISH of session `session_id` once its claim is
  // done with `outcome`, on this handler's thread.
  void CompleteLogin(uint64_t session_id, const absl::Status& outcome);
  // Cluster mode: a local session of `user` ended here: releases its claim
  // (`release`) and lets the replica apply a remote session of that user it
  // had to set aside.
  void LocalSessionEnded(absl::string_view user, uint64_t session_id,
                         bool release);
  // The ticket key of the holder's session, as the HMAC states WriteTicket
  // takes: derived from its session key for a local session (kept in
  // ticket_keys_), from the replica's ticket key for a remote one; nullopt
  // if the session is gone.
  std::optional<HmacSha256Key> HolderTicketKey(uint64_t session_id);
  // The reply to a PUB or UNP whose change failed to be recorded.
  size_t RecordFailed(const protocol::Header& h, const absl::Status& s,
                      std::span<uint8_t> reply);

  size_t Error(const protocol::Header& request, protocol::ResultCode code,
               absl::string_view message, std::span<uint8_t> reply);
  // Completes a mutating request: caches its answer for retransmissions.
  void RememberReply(const Caller& caller, const protocol::Header& request,
                     protocol::ResultCode code);
  void SetLogUser(absl::string_view user);
  void LogRequest(const protocol::Header& header, const Endpoint& from,
                  absl::string_view user) const;
  void LogReply(const Endpoint& from, absl::string_view user, bool ok) const;

  const Shared shared_;
  Registry* const registry_;
  SessionTable* const sessions_;
  DaemonCounters* const counters_;
  const Options options_;
  ExpiryWheel wheel_;
  uint32_t next_snapshot_id_ = 1;
  char log_user_[65] = {};  // who the current request is from, for the log
  RequestMetrics metrics_;
  // Deferred PUB and UNP (EnableDeferredReplies).
  JournalWriter::CompletionQueue* completions_ = nullptr;
  ReplySender send_;
  bool deferred_ = false;  // the request Handle() runs was deferred
  // Cluster mode: logins waiting for their claim, by session id. A
  // client's datagrams stay on one reactor thread, so its retransmissions
  // find their first copy here.
  absl::flat_hash_map<uint64_t, std::unique_ptr<PendingLogin>> pending_logins_;
  // The result code of the reply HandleSessionRequest() sealed (the sealed
  // bytes no longer show it), for the metrics; unset for other replies.
  std::optional<uint8_t> sealed_code_;
  std::array<uint8_t, protocol::kMaxDatagramSize> deferred_reply_{};
  // The decrypted body of the session request being handled (its decoded
  // fields are views into it until Handle() returns).
  std::array<uint8_t, protocol::kMaxBodySize> opened_body_{};
  PingBudget ping_budget_;
  // Where each session's state lay when this thread last handled one of
  // its requests (HandleSessionRequest records, Prefetch reads).
  SessionHints session_hints_;
  // The ticket keys of the local holders this thread issued tickets for
  // lately (core/auth/ticket_key_cache.h).
  TicketKeyCache ticket_keys_;
  absl::Time failed_log_window_ = absl::InfinitePast();
  int failed_logs_in_window_ = 0;
  int failed_logs_suppressed_ = 0;
  // RecordFailed's log lines: one per 10 s (wall clock), the rest counted.
  absl::Time record_failed_window_ = absl::InfinitePast();
  int record_failed_suppressed_ = 0;
};

// The classic name a request type has in the verbose log ("AUTH" for both
// login steps, "HBT",
// "LAP", "LPF", "PUB", "UNP", "SCH", "GET", "XIT").
absl::string_view ClassicCommandName(uint8_t type);

}  // namespace pcfs

#endif  // PCFS_DAEMON_HANDLERS_H_
