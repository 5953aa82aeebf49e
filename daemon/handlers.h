// RequestHandler: the daemon's request logic, joining the protocol codec to
// the registry. Handle() is a plain function of (datagram, sender, now) to a
// reply, so the same code runs under either reactor backend and in tests
// without sockets.
//
// Thread-safety: one RequestHandler per reactor thread (it owns that
// thread's expiry wheel); the Registry, CredentialStore, PublicationLog and
// DaemonCounters it points to are shared and thread-safe.
#ifndef PCFS_DAEMON_HANDLERS_H_
#define PCFS_DAEMON_HANDLERS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/credentials.h"
#include "core/mutex_lock.h"
#include "core/expiry_wheel.h"
#include "core/protocol.h"
#include "core/registry.h"
#include "daemon/publication_log.h"

namespace pcfs {

// The credentials in force; replaced as a whole on SIGHUP. Thread-safe.
class CredentialStore {
 public:
  explicit CredentialStore(CredentialTable table)
      : table_(std::make_shared<const CredentialTable>(std::move(table))) {}
  std::shared_ptr<const CredentialTable> Get() const {
    MutexLock lock(&mu_);
    return table_;
  }
  void Replace(CredentialTable table) {
    auto fresh = std::make_shared<const CredentialTable>(std::move(table));
    MutexLock lock(&mu_);
    table_ = std::move(fresh);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const CredentialTable> table_ ABSL_GUARDED_BY(mu_);
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
  std::atomic<uint64_t> session_mismatch{0};
  std::atomic<uint64_t> auth_failed{0};
  std::atomic<uint64_t> retransmissions{0};
  std::atomic<uint64_t> expired_sessions{0};
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
    // Log every request and reply in the classic form
    // "09:11:23.445: 57820: Received AUTH from hans".
    bool verbose = false;
  };

  // All pointers must outlive the handler. `log` may be null (no
  // durability: tests that do not need it).
  RequestHandler(Registry* registry, const CredentialStore* credentials,
                 PublicationLog* log, DaemonCounters* counters,
                 Options options, absl::Time now);

  // Handles one datagram from `from` and writes the reply into `reply`
  // (at least kMaxDatagramSize bytes). Returns the reply size; 0 means the
  // datagram is dropped without a reply (it is not ours to answer: too short
  // for a header, bad magic, or itself a reply).
  size_t Handle(std::span<const uint8_t> datagram, const Endpoint& from,
                absl::Time now, std::span<uint8_t> reply);

  // Expires the sessions whose deadline has passed. Called by the reactor's
  // timer every wheel slot.
  void Tick(absl::Time now);

 private:
  // What a session request carries once its session is checked.
  struct Caller {
    uint64_t session_id = 0;
    char user[65] = {};  // fixed storage: no allocation per request
    absl::string_view name() const { return user; }
  };

  size_t HandleLogin(const protocol::Message& m, const Endpoint& from,
                     absl::Time now, std::span<uint8_t> reply);
  size_t HandleSessionRequest(const protocol::Message& m, const Endpoint& from,
                              absl::Time now, std::span<uint8_t> reply);
  size_t HandleList(const protocol::Message& m, const Caller& caller,
                    absl::Time now, std::span<uint8_t> reply);
  size_t HandlePublish(const protocol::Message& m, const Caller& caller,
                       absl::Time now, std::span<uint8_t> reply);
  size_t HandleUnpublish(const protocol::Message& m, const Caller& caller,
                         absl::Time now, std::span<uint8_t> reply);
  size_t HandleGet(const protocol::Message& m, const Caller& caller,
                   absl::Time now, std::span<uint8_t> reply);

  size_t Error(const protocol::Header& request, protocol::ResultCode code,
               absl::string_view message, std::span<uint8_t> reply);
  void RememberReply(const Caller& caller, const protocol::Header& request,
                     protocol::ResultCode code, absl::Time now);
  void SetLogUser(absl::string_view user);
  void LogRequest(const protocol::Header& header, const Endpoint& from,
                  absl::string_view user) const;
  void LogReply(const Endpoint& from, absl::string_view user,
                bool ok) const;

  Registry* const registry_;
  const CredentialStore* const credentials_;
  PublicationLog* const log_;
  DaemonCounters* const counters_;
  const Options options_;
  ExpiryWheel wheel_;
  uint32_t next_snapshot_id_ = 1;
  char log_user_[65] = {};  // who the current request is from, for the log
};

// The classic name a request type has in the verbose log ("AUTH", "HBT",
// "LAP", "LPF", "PUB", "UNP", "SCH", "GET", "XIT").
absl::string_view ClassicCommandName(uint8_t type);

}  // namespace pcfs

#endif  // PCFS_DAEMON_HANDLERS_H_
