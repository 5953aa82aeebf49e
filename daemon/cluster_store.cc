#include "daemon/cluster_store.h"

#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/base/log.h"
#include "core/base/names.h"
#include "core/base/thread_name.h"

namespace pcfs {
namespace {

// ---- Lua scripts ----------------------------------------------------------
// Each check-and-set runs as one script, so that no other client's command
// falls between the check and the change, and the change and its stream
// entry are written together. The logout entries they write carry the
// fields of daemon/cluster_event.cc ("op", "user", "daemon", "session").
// Keys the scripts compute themselves (PREFIX..'daemon:'..ID) are not in
// KEYS: fine on one Redis, not on Redis Cluster (docs/SCALING.md).

// Claim. KEYS[1] the user's session hash, KEYS[2] this daemon's set of
// users, KEYS[3] the stream. ARGV[1] the key prefix, ARGV[2] this daemon's
// id, ARGV[3] the session id, ARGV[4] the stream's max length, ARGV[5] the
// user, ARGV[6] "1" if a lapsed daemon's claim may be taken over (see
// Impl::trusted_after), ARGV[7] how many of the arguments after it are the
// session hash's fields and values; the rest are the login entry's fields
// and values. Returns {1}: claimed; {0}: this very session holds it
// already (a retransmitted login; nothing written); {-1, DAEMON}: a session
// on DAEMON holds it, and DAEMON is alive (or may be). A claim whose
// daemon's liveness key is gone is taken over, with a logout entry for the
// session it named.
constexpr char kClaimScript[] = R"lua(
local holder = redis.call('HMGET', KEYS[1], 'daemon', 'session')
if holder[1] then
  if holder[1] == ARGV[2] and holder[2] == ARGV[3] then return {0} end
  if ARGV[6] ~= '1' or
     redis.call('EXISTS', ARGV[1] .. 'daemon:' .. holder[1]) == 1 then
    return {-1, holder[1]}
  end
  redis.call('SREM', ARGV[1] .. 'sessions:' .. holder[1], ARGV[5])
  redis.call('DEL', KEYS[1])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'logout',
             'user', ARGV[5], 'daemon', holder[1], 'session',
             holder[2] or '0')
end
local n = tonumber(ARGV[7])
redis.call('HSET', KEYS[1], unpack(ARGV, 8, 7 + n))
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 8 + n))
return {1}
)lua";

// Release. KEYS[1] the user's session hash, KEYS[2] this daemon's set of
// users, KEYS[3] the stream. ARGV[1] this daemon's id, ARGV[2] the session
// id, ARGV[3] the user, ARGV[4] the stream's max length. Frees the claim
// only if it still names this daemon and session (it may have been taken
// over, or reaped, meanwhile). Returns 1 if it freed it, else 0.
constexpr char kReleaseScript[] = R"lua(
local holder = redis.call('HMGET', KEYS[1], 'daemon', 'session')
if holder[1] ~= ARGV[1] or holder[2] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'logout',
           'user', ARGV[3], 'daemon', ARGV[1], 'session', ARGV[2])
return 1
)lua";

// Release every session of one daemon: a lapsed one (the reaping), or this
// one at a clean stop. KEYS[1] its liveness key, KEYS[2] its set of users,
// KEYS[3] the set of daemons, KEYS[4] the stream. ARGV[1] its id, ARGV[2]
// the key prefix, ARGV[3] the stream's max length, ARGV[4] "lapsed" (only
// if its liveness key is gone and it is still a member of the set: so of
// the daemons that notice, one reaps and the others find nothing) or
// "self" (unconditionally, and delete the liveness key too). Each claim
// that still names it is deleted with a logout entry. Returns how many, or
// -1 if there was nothing to reap. Idempotent.
constexpr char kReleaseDaemonScript[] = R"lua(
if ARGV[4] == 'lapsed' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then return -1 end
end
local released = 0
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[2] .. 'session:' .. user
  local holder = redis.call('HMGET', key, 'daemon', 'session')
  if holder[1] == ARGV[1] then
    redis.call('DEL', key)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'op', 'logout',
               'user', user, 'daemon', ARGV[1], 'session', holder[2] or '0')
    released = released + 1
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
if ARGV[4] == 'self' then redis.call('DEL', KEYS[1]) end
return released
)lua";

// ---- Time and text --------------------------------------------------------

constexpr absl::Duration kXreadBlock = absl::Milliseconds(500);
constexpr size_t kXreadCount = 512;
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(1);
// Claims and releases the writer serves between two looks at the clock.
constexpr size_t kWriterBatch = 256;

timeval TimevalOf(absl::Duration d) {
  timeval tv{};
  const int64_t us = std::max<int64_t>(absl::ToInt64Microseconds(d), 1000);
  tv.tv_sec = static_cast<time_t>(us / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
  return tv;
}

std::string RandomDaemonId() {
  uint8_t bytes[8];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return "";
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

bool IsDaemonId(absl::string_view id) {
  if (id.size() != 16) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

// A stream entry id, "MS-SEQ", compared as the pair it is.
struct StreamId {
  uint64_t ms = 0;
  uint64_t seq = 0;
  friend bool operator<(const StreamId& a, const StreamId& b) {
    return std::tie(a.ms, a.seq) < std::tie(b.ms, b.seq);
  }
  friend bool operator==(const StreamId& a, const StreamId& b) {
    return a.ms == b.ms && a.seq == b.seq;
  }
};

std::optional<StreamId> ParseStreamId(absl::string_view text) {
  const size_t dash = text.find('-');
  if (dash == absl::string_view::npos) return std::nullopt;
  StreamId id;
  if (!absl::SimpleAtoi(text.substr(0, dash), &id.ms) ||
      !absl::SimpleAtoi(text.substr(dash + 1), &id.seq)) {
    return std::nullopt;
  }
  return id;
}

// `prefix` with SCAN MATCH's special characters escaped.
std::string GlobEscape(absl::string_view prefix) {
  std::string out;
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

// Where a replica stands in the stream: the id of the last entry it took,
// and how many entries the stream had been given up to that one (XINFO
// STREAM's entries-added, Redis 7; nullopt when Redis does not say).
struct StreamPosition {
  std::string id = "0-0";
  std::optional<uint64_t> count = 0;
};

// What XINFO STREAM says (nothing of it if there is no stream).
struct StreamInfo {
  bool exists = false;
  StreamId last_generated;
  std::string last_generated_text = "0-0";
  uint64_t length = 0;
  std::optional<uint64_t> entries_added;  // Redis 7 and later
  std::optional<StreamId> first_entry;
};

// True if entries after `position` are no longer in the stream, or the
// stream is not the one `position` was taken from: the replica must be
// rebuilt from a snapshot. Trimming deletes from the front, so the entries
// lost are the first (entries_added - length) ever added: the replica has
// missed some exactly when that is more than it had taken. Without
// entries_added (Redis 6), lost entries cannot be told from ones that never
// were: a gap is assumed once the entry `position` names was trimmed.
bool IsGap(const StreamInfo& info, const StreamPosition& position) {
  const std::optional<StreamId> last = ParseStreamId(position.id);
  if (!last.has_value()) return true;
  if (!info.exists) return !(*last == StreamId{}) || position.count > 0u;
  if (info.last_generated < *last) return true;  // older than the replica
  if (info.entries_added.has_value() && position.count.has_value()) {
    if (*info.entries_added < *position.count) return true;  // not the same
    return *info.entries_added - std::min(info.length, *info.entries_added) >
           *position.count;
  }
  return info.first_entry.has_value() && *last < *info.first_entry;
}

// ---- Replies --------------------------------------------------------------

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

std::string ReplyText(const redisReply* reply) {
  if (reply == nullptr) return "";
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
      return absl::StrCat(reply->integer);
    default:
      return "";
  }
}

bool IsText(const redisReply* reply) {
  return reply != nullptr && (reply->type == REDIS_REPLY_STRING ||
                              reply->type == REDIS_REPLY_STATUS);
}

// Flat field/value pairs (HGETALL, a stream entry's fields); nullopt if the
// reply is not an even array of strings.
std::optional<FieldValues> PairsOf(const redisReply* reply) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY ||
      reply->elements % 2 != 0) {
    return std::nullopt;
  }
  FieldValues pairs;
  pairs.reserve(reply->elements / 2);
  for (size_t i = 0; i < reply->elements; i += 2) {
    if (!IsText(reply->element[i]) || !IsText(reply->element[i + 1])) {
      return std::nullopt;
    }
    pairs.emplace_back(ReplyText(reply->element[i]),
                       ReplyText(reply->element[i + 1]));
  }
  return pairs;
}

// The value of `field` in a flat name/value array reply (XINFO STREAM).
const redisReply* FieldOf(const redisReply* reply, absl::string_view field) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY) return nullptr;
  for (size_t i = 0; i + 1 < reply->elements; i += 2) {
    if (IsText(reply->element[i]) && ReplyText(reply->element[i]) == field) {
      return reply->element[i + 1];
    }
  }
  return nullptr;
}

// ---- One connection -------------------------------------------------------

// One synchronous hiredis connection, logged in (AUTH) when the store has
// a password. Not thread-safe: each is used by one thread at a time (its
// owner, or under its owner's mutex).
class RedisLink {
 public:
  RedisLink(std::string address, std::string host, int port,
            absl::Duration timeout, const ClusterStore::Options& login)
      : address_(std::move(address)),
        host_(std::move(host)),
        port_(port),
        timeout_(timeout),
        user_(login.user),
        password_(login.password) {}
  ~RedisLink() { Drop(); }
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  bool connected() const { return context_ != nullptr; }

  // Connects unless connected. A connection that Redis has closed while it
  // lay idle (a restart) is noticed here, before a command is lost on it:
  // an idle connection with something to read has only an end of file or
  // an error to offer.
  absl::Status Connect() {
    if (context_ != nullptr) {
      pollfd fd{context_->fd, POLLIN, 0};
      if (::poll(&fd, 1, 0) <= 0) return absl::OkStatus();
      Drop();
    }
    redisContext* c =
        redisConnectWithTimeout(host_.c_str(), port_, TimevalOf(timeout_));
    if (c == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("redis ", address_, " unreachable: out of memory"));
    }
    if (c->err != 0) {
      absl::Status status = absl::UnavailableError(
          absl::StrCat("redis ", address_, " unreachable: ", c->errstr));
      redisFree(c);
      return status;
    }
    redisSetTimeout(c, TimevalOf(timeout_));
    redisEnableKeepAlive(c);
    context_ = c;
    if (absl::Status s = LogIn(); !s.ok()) {
      Drop();
      return s;
    }
    ++connects_;
    return absl::OkStatus();
  }

  void Drop() {
    if (context_ != nullptr) redisFree(context_);
    context_ = nullptr;
  }

  // Queues one command (sent by the next Next()). Never connects: a
  // pipeline is begun on a link that Connect() just checked, and a link
  // lost halfway fails the whole pipeline rather than send its rest alone.
  absl::Status Append(const std::vector<std::string>& args) {
    if (context_ == nullptr) return Lost();
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (const std::string& arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context_, static_cast<int>(args.size()),
                               argv.data(), lengths.data()) != REDIS_OK) {
      return Lost();
    }
    return absl::OkStatus();
  }

  // The next reply, as Redis sent it (error replies included); Unavailable
  // (and the connection dropped) on an I/O error or a timeout.
  absl::StatusOr<Reply> Next() {
    if (context_ == nullptr) return Lost();
    void* reply = nullptr;
    if (redisGetReply(context_, &reply) != REDIS_OK || reply == nullptr) {
      return Lost();
    }
    return Reply(static_cast<redisReply*>(reply));
  }

  // One command; an error reply becomes a status (see ErrorReply).
  absl::StatusOr<Reply> Run(const std::vector<std::string>& args) {
    if (absl::Status s = Connect(); !s.ok()) return s;
    if (absl::Status s = Append(args); !s.ok()) return s;
    absl::StatusOr<Reply> reply = Next();
    if (!reply.ok()) return reply.status();
    if ((*reply)->type == REDIS_REPLY_ERROR) {
      return ErrorReply(args[0], ReplyText(reply->get()));
    }
    return reply;
  }

  // Redis refused `command` with `message`. Refusals that pass (loading
  // its data after a restart, a full or failing disk, a replica without
  // its primary) are Unavailable; the rest are Internal. The refusals of a
  // Redis that wants a password, or of a user without a permission the
  // store needs, say what to do.
  absl::Status ErrorReply(absl::string_view command,
                          absl::string_view message) const {
    std::string text =
        absl::StrCat("redis ", address_, " refused ", command, ": ", message);
    if (absl::StartsWith(message, "NOAUTH")) {
      absl::StrAppend(
          &text, " (give the daemon its password: ", "--redis-password-file)");
    } else if (absl::StartsWith(message, "NOPERM")) {
      absl::StrAppend(&text, " (the Redis user ",
                      user_.empty() ? "default" : user_,
                      " lacks a permission the daemon needs: see "
                      "docs/OPERATIONS.md, \"Cluster mode\")");
    }
    for (absl::string_view passing :
         {"LOADING", "MISCONF", "READONLY", "MASTERDOWN", "NOREPLICAS", "BUSY",
          "TRYAGAIN", "CLUSTERDOWN"}) {
      if (absl::StartsWith(message, passing)) {
        return absl::UnavailableError(text);
      }
    }
    return absl::InternalError(text);
  }

  const std::string& address() const { return address_; }
  // How many connections this link has made so far.
  uint64_t connects() const { return connects_; }

 private:
  // AUTH on a fresh connection, when there is a password: as Redis's
  // default user (AUTH PASSWORD) or as an ACL user (AUTH USER PASSWORD).
  // A refusal is Unavailable, like an unreachable Redis: the store keeps
  // trying (an operator may be changing the password on both sides), and
  // a start fails with it.
  absl::Status LogIn() {
    if (password_.empty()) return absl::OkStatus();
    std::vector<std::string> args = {"AUTH"};
    if (!user_.empty()) args.push_back(user_);
    args.push_back(password_);
    if (absl::Status s = Append(args); !s.ok()) return s;
    absl::StatusOr<Reply> reply = Next();
    if (!reply.ok()) return reply.status();
    if ((*reply)->type == REDIS_REPLY_ERROR) {
      return absl::UnavailableError(
          absl::StrCat("redis ", address_, " refused the login",
                       user_.empty() ? "" : absl::StrCat(" of user ", user_),
                       " (AUTH): ", ReplyText(reply->get())));
    }
    return absl::OkStatus();
  }

  absl::Status Lost() {
    std::string why = "not connected";
    if (context_ != nullptr) {
      why = context_->errstr;
      // hiredis reports a receive timeout as the errno of the read.
      if (context_->err == REDIS_ERR_IO &&
          (why == std::strerror(EAGAIN) || why == std::strerror(EWOULDBLOCK))) {
        why = absl::StrCat("no reply within ", absl::FormatDuration(timeout_));
      } else if (why.empty()) {
        why = "connection lost";
      }
    }
    Drop();
    return absl::UnavailableError(
        absl::StrCat("redis ", address_, " unreachable: ", why));
  }

  const std::string address_;
  const std::string host_;
  const int port_;
  const absl::Duration timeout_;
  const std::string user_;
  const std::string password_;
  redisContext* context_ = nullptr;
  uint64_t connects_ = 0;
};

absl::StatusOr<std::pair<std::string, int>> ParseAddress(
    absl::string_view address) {
  std::string host;
  absl::string_view port_text;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("redis address \"", address, "\" is not [IPV6]:PORT"));
    }
    host = std::string(address.substr(1, close - 1));
    port_text = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos || address.find(':') != colon) {
      return absl::InvalidArgumentError(absl::StrCat(
          "redis address \"", address,
          "\" is not HOST:PORT (an IPv6 address goes in brackets)"));
    }
    host = std::string(address.substr(0, colon));
    port_text = address.substr(colon + 1);
  }
  int port = 0;
  if (host.empty() || !absl::SimpleAtoi(port_text, &port) || port < 1 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis address \"", address, "\" has no host or no port (1-65535)"));
  }
  return std::make_pair(host, port);
}

}  // namespace

// ---- The store ------------------------------------------------------------

struct ClusterStore::Impl {
  struct ClaimTask {
    ClusterSession session;
    ClaimDone done;
  };
  struct ReleaseTask {
    std::string user;
    uint64_t session_id = 0;
  };
  using Task = std::variant<ClaimTask, ReleaseTask>;

  Impl(Options o, Listener l, const std::string& host, int port)
      : options(std::move(o)),
        listener(std::move(l)),
        writer_link(options.address, host, port, options.command_timeout,
                    options),
        commit_link(options.address, host, port, options.command_timeout,
                    options),
        // The reader's link waits out XREAD BLOCK besides a command.
        reader_link(options.address, host, port,
                    options.command_timeout + kXreadBlock, options) {}

  // ---- Keys
  std::string Key(absl::string_view rest) const {
    return absl::StrCat(options.key_prefix, rest);
  }
  std::string PubKey(absl::string_view user) const {
    return Key(absl::StrCat("pub:", user));
  }
  std::string SessionKey(absl::string_view user) const {
    return Key(absl::StrCat("session:", user));
  }
  std::string DaemonKey(absl::string_view id) const {
    return Key(absl::StrCat("daemon:", id));
  }
  std::string SessionsKey(absl::string_view id) const {
    return Key(absl::StrCat("sessions:", id));
  }
  std::string DaemonsKey() const { return Key("daemons"); }
  std::string StreamKey() const { return Key("changes"); }
  std::string MaxLen() const { return absl::StrCat(options.stream_max_len); }

  // ---- Start and stop
  absl::Status Register();
  void WarnUnlessDurable();
  void StartThreads();
  void StopAll();

  // ---- Writer thread
  void WriterLoop();
  // Connects the writer's link unless it is up or the backoff says not
  // yet; true if it is up.
  bool EnsureWriterLink();
  // After the writer's link connected again: trusts no lapsed liveness key
  // for a liveness_ttl (see trusted_after).
  void NoteReconnects();
  void SendPendingReleases();
  // After an Unavailable: drops the link and backs off before the next try.
  void NoteWriterFailure(const absl::Status& status);
  void RefreshLiveness();
  void ReapLapsedDaemons();
  absl::StatusOr<ClaimResult> RunClaim(ClusterSession& session);
  absl::Status RunRelease(const ReleaseTask& release);
  absl::StatusOr<int64_t> ReleaseDaemon(const std::string& id, bool self);

  // ---- Commits
  absl::Status Commit(std::span<const PublicationChange> batch);

  // ---- Reader thread
  void ReaderLoop();
  absl::Status ReadOnce();
  absl::StatusOr<ClusterSnapshot> TakeSnapshot(StreamPosition& position);
  // XINFO STREAM's reply (or its error: no stream is an empty StreamInfo).
  absl::StatusOr<StreamInfo> ParseStreamInfo(const redisReply* reply) const;
  absl::Status ScanKeys(absl::string_view pattern,
                        std::vector<std::string>& keys);
  void SetLink(bool up, absl::string_view why);
  void Deliver(const redisReply* entries);
  bool WaitForStop(absl::Duration d);

  Options options;
  Listener listener;
  std::string daemon_id;

  // Wakes the writer (tasks, stop) and the reader's backoff (stop).
  std::mutex mu;
  std::condition_variable wake;
  std::deque<Task> tasks;  // guarded by mu
  bool stopping = false;   // guarded by mu
  bool stopped = false;    // Stop() ran; guarded by mu
  // `stopping`, for the writer to look at between two claims of a batch
  // without the lock.
  std::atomic<bool> stop_requested{false};

  // The writer thread's (Start's and Stop's while it does not run).
  RedisLink writer_link;
  std::deque<ReleaseTask> pending_releases;  // waiting for Redis
  absl::Time next_connect = absl::InfinitePast();
  absl::Duration backoff = kFirstBackoff;
  std::string writer_error;  // why the link is down, for Claim's answer
  // When Redis comes back after an outage longer than the liveness ttl,
  // every daemon's liveness key has lapsed, and the live ones register
  // again only as each reconnects (within its backoff and refresh). Until a
  // ttl after this daemon's own reconnection, a lapsed key proves nothing:
  // it neither reaps nor takes claims over.
  uint64_t writer_connects = 1;  // Start() connected once
  absl::Time trusted_after = absl::InfinitePast();
  std::thread writer;

  // CommitPublications' own link, so that a commit never waits behind the
  // writer's queue.
  std::mutex commit_mu;
  RedisLink commit_link;         // guarded by commit_mu
  bool commits_stopped = false;  // guarded by commit_mu
  // The stream ids of this daemon's acknowledged pub and unp entries that
  // the reader has not passed yet, in stream order (guarded by commit_mu).
  // The journal writer applies an acknowledged change to the registry
  // itself, so the reader must not apply it again: read back late, after a
  // newer change of the same name, it would undo that change (`pub X;
  // unp X; lpf` listing X). An entry of a commit that failed, which Redis
  // may still have applied, is not here, and the reader applies it.
  std::deque<StreamId> own_commits;
  static constexpr size_t kMaxOwnCommits = size_t{1} << 20;

  // The reader thread's (Start's before it runs).
  RedisLink reader_link;
  StreamPosition position;  // of the last entry delivered
  std::thread reader;

  std::atomic<bool> link_up{true};
  std::atomic<uint64_t> events{0}, resyncs{0}, commits{0}, failed_commits{0},
      claims{0}, refused_claims{0}, reaped_daemons{0};
};

absl::StatusOr<std::unique_ptr<ClusterStore>> ClusterStore::Start(
    Options options, Listener listener) {
  absl::StatusOr<std::pair<std::string, int>> target =
      ParseAddress(options.address);
  if (!target.ok()) return target.status();
  if (options.daemon_id.empty()) {
    options.daemon_id = RandomDaemonId();
    if (options.daemon_id.empty()) {
      return absl::InternalError("RAND_bytes failed: no daemon id");
    }
  } else if (!IsDaemonId(options.daemon_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("daemon id \"", options.daemon_id,
                     "\" is not 16 lowercase hex digits"));
  }
  if (options.liveness_refresh <= absl::ZeroDuration() ||
      options.liveness_ttl <= options.liveness_refresh ||
      options.command_timeout <= absl::ZeroDuration() ||
      options.stream_max_len == 0) {
    return absl::InvalidArgumentError(
        "cluster store: liveness_ttl must exceed liveness_refresh > 0, "
        "command_timeout > 0 and stream_max_len > 0");
  }
  std::unique_ptr<ClusterStore> store(new ClusterStore());
  store->impl_ = std::make_unique<Impl>(std::move(options), std::move(listener),
                                        target->first, target->second);
  Impl& impl = *store->impl_;
  impl.daemon_id = impl.options.daemon_id;
  // Until the threads run, a failure needs no Stop(): nothing was claimed.
  auto abandon = [&impl] {
    std::lock_guard<std::mutex> lock(impl.mu);
    impl.stopped = true;
  };
  if (absl::Status s = impl.Register(); !s.ok()) {
    abandon();
    return s;
  }
  impl.WarnUnlessDurable();
  absl::StatusOr<ClusterSnapshot> snapshot = impl.TakeSnapshot(impl.position);
  if (!snapshot.ok()) {
    // Leave no liveness key behind for the others to wait out.
    (void)impl.ReleaseDaemon(impl.daemon_id, /*self=*/true);
    abandon();
    return snapshot.status();
  }
  if (impl.listener.on_snapshot) impl.listener.on_snapshot(*snapshot);
  impl.StartThreads();
  Log("cluster store: daemon ", impl.daemon_id, " joined redis ",
      impl.options.address, " (stream from ", impl.position.id, ")");
  return store;
}

ClusterStore::~ClusterStore() { Stop(); }

void ClusterStore::Stop() {
  if (impl_ != nullptr) impl_->StopAll();
}

const std::string& ClusterStore::daemon_id() const { return impl_->daemon_id; }

absl::Status ClusterStore::CommitPublications(
    std::span<const PublicationChange> batch) {
  return impl_->Commit(batch);
}

void ClusterStore::Claim(ClusterSession session, ClaimDone done) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->stopping) {
      impl_->tasks.emplace_back(
          Impl::ClaimTask{std::move(session), std::move(done)});
      impl_->wake.notify_all();
      return;
    }
  }
  // No writer thread any more: answer here rather than never.
  done(absl::UnavailableError("cluster store stopped"));
}

void ClusterStore::Release(std::string user, uint64_t session_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  // Once stopping, Stop() releases every session of this daemon at once.
  if (impl_->stopping) return;
  impl_->tasks.emplace_back(Impl::ReleaseTask{std::move(user), session_id});
  impl_->wake.notify_all();
}

ClusterStore::Stats ClusterStore::stats() const {
  Stats s;
  s.link_up = impl_->link_up.load();
  s.events = impl_->events.load();
  s.resyncs = impl_->resyncs.load();
  s.commits = impl_->commits.load();
  s.failed_commits = impl_->failed_commits.load();
  s.claims = impl_->claims.load();
  s.refused_claims = impl_->refused_claims.load();
  s.reaped_daemons = impl_->reaped_daemons.load();
  return s;
}

// ---- Start and stop -------------------------------------------------------

// The liveness key first, then the set: whoever finds an id in the set and
// no liveness key may reap it.
absl::Status ClusterStore::Impl::Register() {
  const std::string ttl_ms =
      absl::StrCat(absl::ToInt64Milliseconds(options.liveness_ttl));
  if (absl::Status s = writer_link.Connect(); !s.ok()) return s;
  if (absl::Status s = writer_link.Append(
          {"SET", DaemonKey(daemon_id), daemon_id, "PX", ttl_ms});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = writer_link.Append({"SADD", DaemonsKey(), daemon_id});
      !s.ok()) {
    return s;
  }
  for (const char* command : {"SET", "SADD"}) {
    absl::StatusOr<Reply> reply = writer_link.Next();
    if (!reply.ok()) return reply.status();
    if ((*reply)->type == REDIS_REPLY_ERROR) {
      return writer_link.ErrorReply(command, ReplyText(reply->get()));
    }
  }
  return absl::OkStatus();
}

void ClusterStore::Impl::WarnUnlessDurable() {
  std::string appendonly, appendfsync;
  for (const char* name : {"appendonly", "appendfsync"}) {
    absl::StatusOr<Reply> reply = writer_link.Run({"CONFIG", "GET", name});
    // CONFIG may be renamed away (rename-command): nothing to check then.
    if (!reply.ok() || (*reply)->type != REDIS_REPLY_ARRAY ||
        (*reply)->elements != 2) {
      LogDebug("cluster store: cannot read redis ", options.address, "'s ",
               name, " setting; not checked");
      return;
    }
    (name == std::string("appendonly") ? appendonly : appendfsync) =
        ReplyText((*reply)->element[1]);
  }
  if (appendonly != "yes" || appendfsync != "always") {
    LogWarning("cluster store: redis ", options.address,
               " runs with appendonly ", appendonly, " and appendfsync ",
               appendfsync,
               ": acknowledged changes could be lost if it stops; run it "
               "with appendonly yes and appendfsync always "
               "(docs/OPERATIONS.md)");
  }
}

void ClusterStore::Impl::StartThreads() {
  writer = std::thread([this] {
    NameThisThread("redis-writer");
    WriterLoop();
  });
  reader = std::thread([this] {
    NameThisThread("redis-reader");
    ReaderLoop();
  });
}

void ClusterStore::Impl::StopAll() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopped) return;
    stopped = true;
    stopping = true;
  }
  stop_requested = true;
  wake.notify_all();
  if (writer.joinable()) writer.join();
  if (reader.joinable()) reader.join();
  {
    std::lock_guard<std::mutex> lock(commit_mu);
    commits_stopped = true;
    commit_link.Drop();
  }
  // The threads are gone: the writer's link is this thread's now.
  absl::StatusOr<int64_t> released = ReleaseDaemon(daemon_id, /*self=*/true);
  if (released.ok()) {
    Log("cluster store: daemon ", daemon_id, " left redis ", options.address,
        " (", *released, " sessions released)");
  } else {
    LogWarning("cluster store: ", released.status().message(), "; daemon ",
               daemon_id,
               "'s sessions stay claimed until the other daemons see its "
               "liveness lapse");
  }
  writer_link.Drop();
  reader_link.Drop();
  link_up = false;
}

// ---- Writer thread ----------------------------------------------------------

void ClusterStore::Impl::WriterLoop() {
  absl::Time next_refresh = absl::Now() + options.liveness_refresh;
  for (;;) {
    std::deque<Task> batch;
    {
      std::unique_lock<std::mutex> lock(mu);
      absl::Time until = next_refresh;
      if (!pending_releases.empty()) until = std::min(until, next_connect);
      const absl::Duration wait =
          std::max(until - absl::Now(), absl::ZeroDuration());
      wake.wait_for(
          lock, absl::ToChronoMilliseconds(wait) + std::chrono::milliseconds(1),
          [this] { return stopping || !tasks.empty(); });
      if (stopping) {
        batch.swap(tasks);
        lock.unlock();
        // Stop() releases every session at once: the queued releases are
        // part of it. A claim not made is refused.
        for (Task& task : batch) {
          if (auto* claim = std::get_if<ClaimTask>(&task)) {
            claim->done(absl::UnavailableError("cluster store stopped"));
          }
        }
        return;
      }
      // A bounded batch, so that a burst of logins (a failover) never
      // holds back the liveness refresh for long.
      while (!tasks.empty() && batch.size() < kWriterBatch) {
        batch.push_back(std::move(tasks.front()));
        tasks.pop_front();
      }
    }
    const absl::Time now = absl::Now();
    const bool up = EnsureWriterLink();
    if (up && now >= next_refresh) {
      RefreshLiveness();
      ReapLapsedDaemons();
    }
    if (now >= next_refresh) next_refresh = now + options.liveness_refresh;
    // Releases keep their order: one that waits for Redis holds back the
    // ones after it.
    SendPendingReleases();
    for (Task& task : batch) {
      if (auto* release = std::get_if<ReleaseTask>(&task)) {
        pending_releases.push_back(std::move(*release));
        SendPendingReleases();
        continue;
      }
      auto& claim = std::get<ClaimTask>(task);
      absl::StatusOr<ClaimResult> s;
      if (stop_requested.load()) {
        s = absl::UnavailableError("cluster store stopped");
      } else if (!pending_releases.empty() || !EnsureWriterLink()) {
        s = absl::UnavailableError(writer_error);
      } else {
        s = RunClaim(claim.session);
      }
      if (s.ok()) {
        ++claims;
      } else if (absl::IsAlreadyExists(s.status())) {
        ++refused_claims;
      }
      claim.done(std::move(s));
    }
  }
}

void ClusterStore::Impl::SendPendingReleases() {
  while (!pending_releases.empty()) {
    if (!EnsureWriterLink()) return;
    // Unavailable: kept for later. Refused: retrying would not help.
    if (absl::IsUnavailable(RunRelease(pending_releases.front()))) return;
    pending_releases.pop_front();
  }
}

// Connects the writer's link unless it is up or the backoff says not yet.
// After a reconnect the daemon registers again: if its liveness lapsed
// meanwhile, another daemon has released its sessions and removed it from
// the set.
bool ClusterStore::Impl::EnsureWriterLink() {
  const absl::Time now = absl::Now();
  absl::Status s;
  if (writer_link.connected()) {
    // Notices a link that Redis closed while it lay idle (and connects
    // again once).
    s = writer_link.Connect();
    if (s.ok()) {
      NoteReconnects();
      return true;
    }
  } else {
    if (now < next_connect) return false;
    s = writer_link.Connect();
    if (s.ok()) s = Register();
  }
  if (!s.ok()) {
    NoteWriterFailure(s);
    return false;
  }
  backoff = kFirstBackoff;
  next_connect = absl::InfinitePast();
  NoteReconnects();
  return true;
}

void ClusterStore::Impl::NoteReconnects() {
  if (writer_link.connects() == writer_connects) return;
  writer_connects = writer_link.connects();
  trusted_after = absl::Now() + options.liveness_ttl;
}

void ClusterStore::Impl::NoteWriterFailure(const absl::Status& status) {
  if (!absl::IsUnavailable(status)) return;
  writer_error = std::string(status.message());
  writer_link.Drop();
  next_connect = absl::Now() + backoff;
  backoff = std::min(backoff * 2, kMaxBackoff);
}

void ClusterStore::Impl::RefreshLiveness() {
  // SET and SADD: SADD again in case a daemon reaped this one while its
  // link was down and its key lapsed.
  if (absl::Status s = Register(); !s.ok()) {
    NoteWriterFailure(s);
    LogDebug("cluster store: liveness refresh failed: ", s.message());
  }
}

void ClusterStore::Impl::ReapLapsedDaemons() {
  NoteReconnects();
  if (absl::Now() < trusted_after) return;
  absl::StatusOr<Reply> members = writer_link.Run({"SMEMBERS", DaemonsKey()});
  if (!members.ok()) return NoteWriterFailure(members.status());
  if ((*members)->type != REDIS_REPLY_ARRAY) return;
  std::vector<std::string> others;
  for (size_t i = 0; i < (*members)->elements; ++i) {
    std::string id = ReplyText((*members)->element[i]);
    if (id != daemon_id) others.push_back(std::move(id));
  }
  if (others.empty()) return;
  for (const std::string& id : others) {
    if (absl::Status s = writer_link.Append({"EXISTS", DaemonKey(id)});
        !s.ok()) {
      return NoteWriterFailure(s);
    }
  }
  std::vector<std::string> lapsed;
  for (size_t i = 0; i < others.size(); ++i) {
    absl::StatusOr<Reply> exists = writer_link.Next();
    if (!exists.ok()) return NoteWriterFailure(exists.status());
    const std::string& id = others[i];
    if ((*exists)->type == REDIS_REPLY_INTEGER && (*exists)->integer == 0) {
      lapsed.push_back(id);
    }
  }
  for (const std::string& id : lapsed) {
    absl::StatusOr<int64_t> released = ReleaseDaemon(id, /*self=*/false);
    if (!released.ok()) {
      LogWarning("cluster store: reaping daemon ", id, ": ",
                 released.status().message());
      return NoteWriterFailure(released.status());
    }
    if (*released < 0) continue;  // another daemon was first
    ++reaped_daemons;
    Log("cluster store: daemon ", id, "'s liveness lapsed; released its ",
        *released, " sessions");
  }
}

absl::StatusOr<int64_t> ClusterStore::Impl::ReleaseDaemon(const std::string& id,
                                                          bool self) {
  absl::StatusOr<Reply> reply =
      writer_link.Run({"EVAL", kReleaseDaemonScript, "4", DaemonKey(id),
                       SessionsKey(id), DaemonsKey(), StreamKey(), id,
                       options.key_prefix, MaxLen(), self ? "self" : "lapsed"});
  if (!reply.ok()) return reply.status();
  if ((*reply)->type != REDIS_REPLY_INTEGER) {
    return absl::InternalError(absl::StrCat(
        "redis ", options.address, ": unexpected reply to the release script"));
  }
  return static_cast<int64_t>((*reply)->integer);
}

absl::StatusOr<ClusterStore::ClaimResult> ClusterStore::Impl::RunClaim(
    ClusterSession& session) {
  // The caller may leave the daemon to the store.
  if (session.daemon_id.empty()) session.daemon_id = daemon_id;
  if (session.daemon_id != daemon_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("claim of ", session.user, " names daemon ",
                     session.daemon_id, ", not this one (", daemon_id, ")"));
  }
  if (absl::Status s = ValidateUserName(session.user); !s.ok()) return s;
  const FieldValues hash = EncodeClusterSession(session);
  ClusterEvent login;
  login.kind = ClusterEvent::Kind::kLogin;
  login.session = session;
  const FieldValues entry = EncodeClusterEvent(login);
  std::vector<std::string> args = {"EVAL",
                                   kClaimScript,
                                   "3",
                                   SessionKey(session.user),
                                   SessionsKey(daemon_id),
                                   StreamKey(),
                                   options.key_prefix,
                                   daemon_id,
                                   absl::StrCat(session.session_id),
                                   MaxLen(),
                                   session.user,
                                   absl::Now() >= trusted_after ? "1" : "0",
                                   absl::StrCat(2 * hash.size())};
  for (const auto& [field, value] : hash) {
    args.push_back(field);
    args.push_back(value);
  }
  for (const auto& [field, value] : entry) {
    args.push_back(field);
    args.push_back(value);
  }
  if (absl::Status s = writer_link.Connect(); !s.ok()) {
    NoteWriterFailure(s);
    return s;
  }
  absl::StatusOr<Reply> reply = writer_link.Run(args);
  if (!reply.ok()) {
    if (absl::IsUnavailable(reply.status())) {
      // The script may have run before the link broke (no reply within
      // command_timeout): the login fails, so free the claim if it was
      // made, or it would shut the user out for as long as this daemon
      // lives. Released before any later claim is tried.
      pending_releases.push_back(ReleaseTask{session.user, session.session_id});
    }
    NoteWriterFailure(reply.status());
    return reply.status();
  }
  const redisReply* r = reply->get();
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      r->element[0]->type != REDIS_REPLY_INTEGER) {
    return absl::InternalError(absl::StrCat(
        "redis ", options.address, ": unexpected reply to the claim script"));
  }
  if (r->element[0]->integer < 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("user ", session.user, " is logged in through daemon ",
                     r->elements > 1 ? ReplyText(r->element[1]) : "?"));
  }
  return r->element[0]->integer == 0 ? ClaimResult::kHeldAlready
                                     : ClaimResult::kClaimed;
}

absl::Status ClusterStore::Impl::RunRelease(const ReleaseTask& release) {
  absl::StatusOr<Reply> reply = writer_link.Run(
      {"EVAL", kReleaseScript, "3", SessionKey(release.user),
       SessionsKey(daemon_id), StreamKey(), daemon_id,
       absl::StrCat(release.session_id), release.user, MaxLen()});
  if (!reply.ok()) {
    if (absl::IsUnavailable(reply.status())) {
      NoteWriterFailure(reply.status());
    } else {
      // Retrying a refusal would refuse again: say so once and drop it.
      LogWarning("cluster store: release of ", release.user, ": ",
                 reply.status().message());
    }
    return reply.status();
  }
  return absl::OkStatus();
}

// ---- Commits ----------------------------------------------------------------

absl::Status ClusterStore::Impl::Commit(
    std::span<const PublicationChange> batch) {
  if (batch.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(commit_mu);
  if (commits_stopped) {
    ++failed_commits;
    return absl::UnavailableError("cluster store stopped");
  }
  // MULTI, one HSET or HDEL and one XADD a change, EXEC: sent at once,
  // then the replies read in order.
  auto fail = [this](absl::Status s) {
    ++failed_commits;
    commit_link.Drop();
    return s;
  };
  absl::Status sent = commit_link.Connect();
  if (sent.ok()) sent = commit_link.Append({"MULTI"});
  for (const PublicationChange& change : batch) {
    if (!sent.ok()) break;
    ClusterEvent event;
    event.session.user = change.user;
    event.name = change.name;
    if (change.kind == PublicationChange::Kind::kPublish) {
      event.kind = ClusterEvent::Kind::kPublish;
      event.meta = change.meta;
      sent = commit_link.Append({"HSET", PubKey(change.user), change.name,
                                 EncodePublicationValue(change.meta)});
    } else {
      event.kind = ClusterEvent::Kind::kUnpublish;
      sent = commit_link.Append({"HDEL", PubKey(change.user), change.name});
    }
    if (!sent.ok()) break;
    std::vector<std::string> xadd = {"XADD", StreamKey(), "MAXLEN",
                                     "~",    MaxLen(),    "*"};
    for (auto& [field, value] : EncodeClusterEvent(event)) {
      xadd.push_back(std::move(field));
      xadd.push_back(std::move(value));
    }
    sent = commit_link.Append(xadd);
  }
  if (sent.ok()) sent = commit_link.Append({"EXEC"});
  if (!sent.ok()) return fail(sent);
  // MULTI's +OK and each command's +QUEUED (or its refusal: EXEC then
  // aborts the whole transaction).
  std::string refused;
  for (size_t i = 0; i < 1 + 2 * batch.size(); ++i) {
    absl::StatusOr<Reply> reply = commit_link.Next();
    if (!reply.ok()) return fail(reply.status());
    if ((*reply)->type == REDIS_REPLY_ERROR && refused.empty()) {
      refused = ReplyText(reply->get());
    }
  }
  absl::StatusOr<Reply> exec = commit_link.Next();
  if (!exec.ok()) return fail(exec.status());
  const redisReply* r = exec->get();
  if (r->type == REDIS_REPLY_ERROR) {
    ++failed_commits;
    if (refused.empty()) return commit_link.ErrorReply("EXEC", ReplyText(r));
    // EXECABORT says only that a queued command was refused; that refusal
    // says why, and decides whether it passes (LOADING while Redis reloads
    // its append-only file after a restart: Unavailable, try again).
    const absl::Status why = commit_link.ErrorReply("EXEC", refused);
    return absl::Status(why.code(),
                        absl::StrCat(why.message(), " (", ReplyText(r), ")"));
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * batch.size()) {
    ++failed_commits;
    return absl::InternalError(
        absl::StrCat("redis ", options.address, ": EXEC of ", batch.size(),
                     " publication changes did not run them all"));
  }
  for (size_t i = 0; i < r->elements; ++i) {
    if (r->element[i]->type == REDIS_REPLY_ERROR) {
      // A command that failed as it ran: the others did run (Redis has no
      // rollback). Reported, never acknowledged.
      ++failed_commits;
      return absl::InternalError(absl::StrCat(
          "redis ", options.address,
          " failed a publication change: ", ReplyText(r->element[i])));
    }
  }
  // Each change's XADD reply (every second element) is its entry's id.
  for (size_t i = 1; i < r->elements; i += 2) {
    if (std::optional<StreamId> id = ParseStreamId(ReplyText(r->element[i]))) {
      own_commits.push_back(*id);
    }
  }
  while (own_commits.size() > kMaxOwnCommits) own_commits.pop_front();
  ++commits;
  return absl::OkStatus();
}

// ---- Reader thread ----------------------------------------------------------

bool ClusterStore::Impl::WaitForStop(absl::Duration d) {
  std::unique_lock<std::mutex> lock(mu);
  return wake.wait_for(lock, absl::ToChronoMilliseconds(d),
                       [this] { return stopping; });
}

void ClusterStore::Impl::SetLink(bool up, absl::string_view why) {
  if (link_up.exchange(up) == up) return;
  if (up) {
    Log("cluster store: redis ", options.address,
        " reachable again; catching up from stream id ", position.id);
  } else {
    LogWarning("cluster store: ", why,
               "; serving from the replica, pub and unp fail until it is "
               "back");
  }
  if (listener.on_link) listener.on_link(up);
}

void ClusterStore::Impl::ReaderLoop() {
  absl::Duration delay = kFirstBackoff;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return;
    }
    absl::Status s = reader_link.Connect();
    if (s.ok()) s = ReadOnce();
    if (s.ok()) {
      delay = kFirstBackoff;
      SetLink(true, "");
      continue;
    }
    if (absl::IsUnavailable(s)) {
      reader_link.Drop();
      SetLink(false, s.message());
    } else {
      LogError("cluster store: reading the stream: ", s.message());
    }
    if (WaitForStop(delay)) return;
    delay = std::min(delay * 2, kMaxBackoff);
  }
}

// One step of the stream: MULTI, XINFO STREAM, XREAD (not blocking), EXEC,
// so that the check for a gap and the read see one state. A gap (entries
// after the last id seen were trimmed away, or the stream went back in time)
// means a new snapshot. Caught up, it waits in XREAD BLOCK for the next
// entry, only as a wake-up: the entries are read by the next step, checked.
absl::Status ClusterStore::Impl::ReadOnce() {
  const std::string stream = StreamKey();
  const std::string count = absl::StrCat(kXreadCount);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"MULTI"},
        std::vector<std::string>{"XINFO", "STREAM", stream},
        std::vector<std::string>{"XREAD", "COUNT", count, "STREAMS", stream,
                                 position.id},
        std::vector<std::string>{"EXEC"}}) {
    if (absl::Status s = reader_link.Append(args); !s.ok()) return s;
  }
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Reply> queued = reader_link.Next();
    if (!queued.ok()) return queued.status();
  }
  absl::StatusOr<Reply> exec = reader_link.Next();
  if (!exec.ok()) return exec.status();
  const redisReply* r = exec->get();
  if (r->type == REDIS_REPLY_ERROR) {
    return reader_link.ErrorReply("EXEC", ReplyText(r));
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
    return absl::InternalError(absl::StrCat(
        "redis ", options.address, ": unexpected reply to the stream read"));
  }
  absl::StatusOr<StreamInfo> info = ParseStreamInfo(r->element[0]);
  if (!info.ok()) return info.status();
  const redisReply* read = r->element[1];
  if (IsGap(*info, position)) {
    const std::string from = position.id;
    StreamPosition fresh;
    // No commit finishes while the replica is rebuilt. A commit done before
    // the snapshot is in it (the journal writer's own apply of it, before
    // or after the load, agrees with it), and every later one has an id
    // past the snapshot's, recorded after own_commits is emptied here: so
    // no entry of a change the load overwrote is skipped. Commits wait for
    // the snapshot meanwhile (a resync is rare: a reader cut off while the
    // stream was trimmed past it).
    std::lock_guard<std::mutex> lock(commit_mu);
    absl::StatusOr<ClusterSnapshot> snapshot = TakeSnapshot(fresh);
    if (!snapshot.ok()) return snapshot.status();
    position = fresh;
    own_commits.clear();
    ++resyncs;
    LogWarning("cluster store: the stream of redis ", options.address,
               " no longer holds every entry after id ", from,
               "; the replica is rebuilt from the stored state (",
               snapshot->sessions.size(), " sessions, ",
               snapshot->publications.size(), " publications)");
    if (listener.on_snapshot) listener.on_snapshot(*snapshot);
    return absl::OkStatus();
  }
  if (read->type == REDIS_REPLY_ARRAY && read->elements > 0) {
    Deliver(read);
    return absl::OkStatus();
  }
  if (read->type == REDIS_REPLY_ERROR) {
    return reader_link.ErrorReply("XREAD", ReplyText(read));
  }
  // Caught up: wait for the next entry (or half a second, to see Stop).
  absl::StatusOr<Reply> woken = reader_link.Run(
      {"XREAD", "BLOCK", absl::StrCat(absl::ToInt64Milliseconds(kXreadBlock)),
       "COUNT", "1", "STREAMS", stream, position.id});
  return woken.status();
}

absl::StatusOr<StreamInfo> ClusterStore::Impl::ParseStreamInfo(
    const redisReply* reply) const {
  StreamInfo info;
  if (reply->type == REDIS_REPLY_ERROR) {
    if (absl::StrContains(ReplyText(reply), "no such key")) return info;
    return reader_link.ErrorReply("XINFO", ReplyText(reply));
  }
  info.exists = true;
  info.last_generated_text = ReplyText(FieldOf(reply, "last-generated-id"));
  std::optional<StreamId> generated = ParseStreamId(info.last_generated_text);
  const redisReply* length = FieldOf(reply, "length");
  if (!generated.has_value() || length == nullptr ||
      length->type != REDIS_REPLY_INTEGER || length->integer < 0) {
    return absl::InternalError(absl::StrCat(
        "redis ", options.address, ": unexpected reply to XINFO STREAM"));
  }
  info.last_generated = *generated;
  info.length = static_cast<uint64_t>(length->integer);
  const redisReply* added = FieldOf(reply, "entries-added");
  if (added != nullptr && added->type == REDIS_REPLY_INTEGER &&
      added->integer >= 0) {
    info.entries_added = static_cast<uint64_t>(added->integer);
  }
  const redisReply* first = FieldOf(reply, "first-entry");
  if (first != nullptr && first->type == REDIS_REPLY_ARRAY &&
      first->elements == 2) {
    info.first_entry = ParseStreamId(ReplyText(first->element[0]));
  }
  return info;
}

// Hands XREAD's entries (a reply [[stream, [[id, [field, value, ...]],
// ...]]]) to on_event in order, but for this daemon's own acknowledged pub
// and unp (own_commits).
void ClusterStore::Impl::Deliver(const redisReply* read) {
  const redisReply* stream = read->element[0];
  if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
      stream->element[1]->type != REDIS_REPLY_ARRAY) {
    return;
  }
  const redisReply* entries = stream->element[1];
  struct Entry {
    StreamId id;
    std::string text;
    absl::StatusOr<ClusterEvent> event;
    bool own = false;
  };
  std::vector<Entry> batch;
  batch.reserve(entries->elements);
  for (size_t i = 0; i < entries->elements; ++i) {
    const redisReply* entry = entries->element[i];
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
    std::string text = ReplyText(entry->element[0]);
    const std::optional<StreamId> id = ParseStreamId(text);
    if (!id.has_value()) continue;
    std::optional<FieldValues> fields = PairsOf(entry->element[1]);
    batch.push_back({*id, std::move(text),
                     fields.has_value() ? DecodeClusterEvent(*fields)
                                        : absl::InvalidArgumentError(
                                              "not field/value pairs")});
  }
  {
    // A commit whose entries this read returned may still be reading its
    // EXEC reply: taking commit_mu waits for it to record their ids.
    std::lock_guard<std::mutex> lock(commit_mu);
    for (Entry& e : batch) {
      while (!own_commits.empty() && own_commits.front() < e.id) {
        own_commits.pop_front();
      }
      if (!own_commits.empty() && own_commits.front() == e.id) {
        own_commits.pop_front();
        e.own = true;
      }
    }
  }
  for (Entry& e : batch) {
    position.id = e.text;
    if (position.count.has_value()) ++*position.count;
    if (!e.event.ok()) {
      LogWarning("cluster store: stream entry ", e.text, " of redis ",
                 options.address, " skipped: ", e.event.status().message());
      continue;
    }
    ++events;
    if (e.own) continue;  // applied by the journal writer already
    if (listener.on_event) listener.on_event(*e.event);
  }
}

absl::Status ClusterStore::Impl::ScanKeys(absl::string_view pattern,
                                          std::vector<std::string>& keys) {
  std::string cursor = "0";
  // Bounded: SCAN ends when the cursor comes back to 0; a Redis that kept
  // handing out cursors would be a broken one.
  for (int round = 0; round < 10'000'000; ++round) {
    absl::StatusOr<Reply> reply = reader_link.Run(
        {"SCAN", cursor, "MATCH", std::string(pattern), "COUNT", "1000"});
    if (!reply.ok()) return reply.status();
    const redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
      return absl::InternalError(absl::StrCat("redis ", options.address,
                                              ": unexpected reply to SCAN"));
    }
    cursor = ReplyText(r->element[0]);
    for (size_t i = 0; i < r->element[1]->elements; ++i) {
      keys.push_back(ReplyText(r->element[1]->element[i]));
    }
    if (cursor == "0") return absl::OkStatus();
  }
  return absl::InternalError(
      absl::StrCat("redis ", options.address, ": SCAN did not end"));
}

// The stream's last id first, then the keys: a change made meanwhile is
// both in the keys and after that id, and replaying it is harmless (each
// event sets a state); a change the keys miss is after that id.
absl::StatusOr<ClusterSnapshot> ClusterStore::Impl::TakeSnapshot(
    StreamPosition& snapshot_position) {
  // XINFO STREAM rather than XREVRANGE + - COUNT 1: the last id and the
  // count of entries up to it in one reply.
  absl::StatusOr<Reply> xinfo =
      reader_link.Run({"XINFO", "STREAM", StreamKey()});
  absl::StatusOr<StreamInfo> info =
      xinfo.ok() ? ParseStreamInfo(xinfo->get()) : xinfo.status();
  if (!info.ok() && absl::StrContains(info.status().message(), "no such key")) {
    info = StreamInfo{};
  }
  if (!info.ok()) return info.status();
  snapshot_position.id = info->last_generated_text;
  snapshot_position.count =
      info->exists ? info->entries_added : std::optional<uint64_t>(0);
  ClusterSnapshot snapshot;
  const std::string glob = GlobEscape(options.key_prefix);
  for (const bool sessions : {false, true}) {
    const std::string kind = sessions ? "session:" : "pub:";
    std::vector<std::string> keys;
    if (absl::Status s = ScanKeys(absl::StrCat(glob, kind, "*"), keys);
        !s.ok()) {
      return s;
    }
    // Every HGETALL of a page of keys sent at once.
    constexpr size_t kPage = 256;
    for (size_t start = 0; start < keys.size(); start += kPage) {
      const size_t end = std::min(keys.size(), start + kPage);
      for (size_t i = start; i < end; ++i) {
        if (absl::Status s = reader_link.Append({"HGETALL", keys[i]});
            !s.ok()) {
          return s;
        }
      }
      for (size_t i = start; i < end; ++i) {
        absl::StatusOr<Reply> reply = reader_link.Next();
        if (!reply.ok()) return reply.status();
        const std::string user =
            keys[i].substr(options.key_prefix.size() + kind.size());
        std::optional<FieldValues> fields = PairsOf(reply->get());
        if (!fields.has_value()) {
          LogWarning("cluster store: key ", keys[i], " of redis ",
                     options.address, " is not a hash; skipped");
          continue;
        }
        if (sessions) {
          if (fields->empty()) continue;  // deleted since the SCAN
          absl::StatusOr<ClusterSession> session =
              DecodeClusterSession(*fields);
          if (session.ok() && session->user != user) {
            session = absl::InvalidArgumentError(
                absl::StrCat("it holds user ", session->user));
          }
          if (!session.ok()) {
            LogWarning("cluster store: key ", keys[i], " of redis ",
                       options.address,
                       " skipped: ", session.status().message());
            continue;
          }
          snapshot.sessions.push_back(*std::move(session));
          continue;
        }
        if (!ValidateUserName(user).ok()) {
          LogWarning("cluster store: key ", keys[i], " of redis ",
                     options.address, " names no user; skipped");
          continue;
        }
        for (auto& [name, value] : *fields) {
          absl::StatusOr<FileMeta> meta = DecodePublicationValue(value);
          absl::Status valid =
              meta.ok() ? ValidateFileName(name) : meta.status();
          if (!valid.ok()) {
            LogWarning("cluster store: ", keys[i], " field \"",
                       absl::CHexEscape(name), "\" of redis ", options.address,
                       " skipped: ", valid.message());
            continue;
          }
          PublicationChange change;
          change.kind = PublicationChange::Kind::kPublish;
          change.user = user;
          change.name = std::move(name);
          change.meta = *meta;
          snapshot.publications.push_back(std::move(change));
        }
      }
    }
  }
  // In order, so that two snapshots of one state are equal.
  std::sort(snapshot.sessions.begin(), snapshot.sessions.end(),
            [](const ClusterSession& a, const ClusterSession& b) {
              return a.user < b.user;
            });
  std::sort(snapshot.publications.begin(), snapshot.publications.end(),
            [](const PublicationChange& a, const PublicationChange& b) {
              return std::tie(a.user, a.name) < std::tie(b.user, b.name);
            });
  return snapshot;
}

}  // namespace pcfs
