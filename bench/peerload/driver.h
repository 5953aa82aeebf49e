// LoadDriver: peerload's event loop. One epoll set over one connected UDP
// socket per simulated peer; a min-heap of due times (retransmission
// deadlines, heartbeats, retries), so that nothing scans the peers per tick.
//
// A run has three phases:
//   1. Login. Peers log in at --login_rate (each its own session, user and
//      source port), the publishers publish their names, and every logged-in
//      peer heartbeats every interval the daemon announced (2 s).
//   2. Measurement window, once every peer is logged in (or the ramp limit
//      passed), for --duration: the peers send the mix, closed loop (each
//      peer its next request as soon as the previous reply arrives) or open
//      loop (--rate requests/s spread evenly over idle peers), and keep
//      their mandatory heartbeats. One request in flight per peer; a lost
//      one is retransmitted as peerctl does (200 ms doubling, 5 tries).
//   3. Logout. Every peer sends LOGOUT, so that the next run finds no
//      session still active.
//
// Responses, latencies, errors and retransmissions are counted in the
// window. Timeouts and expiries are counted from the start to the end of
// the window: a session may expire wrongly at any time. An expiry (a
// kUnknownSession answer) is "false" when the refused request was first
// sent less than the session timeout (3 s) after the peer's last
// acknowledged heartbeat (or its LOGIN_FINISH) was first sent: the peer
// kept its side of the contract, so the daemon lost the session (expired
// it early, dropped the heartbeat's first tries from a full socket buffer,
// or queued it too long). Otherwise it is "late": peerload itself did not
// heartbeat in time (it was starved of CPU, or a heartbeat waited for the
// request in flight, as in peerctl). Either way the peer logs in again and
// goes on. A request without a reply after every try is a timeout (a
// login's counts as a login timeout and is retried).
//
// A driver that is one of several worker processes of a run (workers.h)
// gets a WindowGate: it reports when it is ready to measure and opens its
// window only when the gate says so, so that every worker measures the same
// window.
//
// Not thread-safe: Run() drives everything on the calling thread.
#ifndef PCFS_BENCH_PEERLOAD_DRIVER_H_
#define PCFS_BENCH_PEERLOAD_DRIVER_H_

#include <time.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <span>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/peerload/catalog.h"
#include "bench/peerload/options.h"
#include "bench/peerload/peer.h"
#include "bench/peerload/stats.h"
#include "bench/peerload/users.h"
#include "core/base/unique_fd.h"
#include "core/client/client_session.h"
#include "core/io/net.h"
#include "core/proto/protocol.h"

namespace pcfs::peerload {

// What holds a driver's measurement window shut until every worker of the
// run is ready. The driver polls fd() in its epoll set.
//
// Not thread-safe: called from the driver's loop only.
class WindowGate {
 public:
  virtual ~WindowGate() = default;
  // A descriptor that becomes readable when Poll() has news.
  virtual int fd() const = 0;
  // Called once, when the driver's own peers are all logged in (or its
  // ramp limit passed). Errors end the run.
  virtual absl::Status Ready() = 0;
  // Called when fd() is readable: true once the window may open. Errors
  // (the parent went away) end the run.
  virtual absl::StatusOr<bool> Poll() = 0;
};

class LoadDriver {
 public:
  // Opens the epoll set and one socket per peer. Peer i logs in as
  // users[i] (ignored in raw mode). REQUIRES: the file limit is raised.
  // Errors: InvalidArgument (more peers than users), and the failed system
  // call (socket, bind, connect, epoll).
  // With a `gate` (not owned; it must outlive the driver) the window opens
  // when the gate says so, after this driver is ready.
  static absl::StatusOr<std::unique_ptr<LoadDriver>> Create(
      const LoadOptions& options, const SocketAddress& server,
      std::vector<LoadUser> users, WindowGate* gate = nullptr);

  // Runs the three phases and returns what was measured. Errors: the
  // failures that make a run meaningless: nothing listens at the server,
  // it never answers, it refuses a login before any succeeded (wrong
  // credentials), or it fails to prove its identity.
  absl::StatusOr<LoadStats> Run();

 private:
  enum class Phase { kLogin, kMeasure, kLogout, kDone };

  // One simulated peer: its socket, its protocol state, its request.
  struct Slot {
    UniqueFd fd;
    client::ClientSession session;
    PendingRequest request;
    uint32_t raw_request_id = 0;  // raw mode: the next echo's request id
    int64_t heartbeat_due_ns = 0;
    // When the last acknowledged heartbeat (or LOGIN_FINISH) was first
    // sent: the daemon's deadline is at least this plus the timeout.
    int64_t session_proof_ns = 0;
    int64_t login_started_ns = 0;  // 0: not started yet (ramp)
    uint32_t timer_generation = 0;
    uint16_t published = 0;  // setup PUBs done or given up
    // Logins refused or unanswered in a row: the backoff of the next.
    uint8_t login_failures = 0;
    // The mix's own names (OwnName): [own_first, own_end) are published.
    uint32_t own_first = 0;
    uint32_t own_end = 0;
    bool active = false;  // logged in (raw mode: joined)
    bool ever_active = false;
    bool idle_queued = false;
    bool done = false;  // logged out at the end
  };

  struct Timer {
    int64_t due_ns;
    uint32_t slot;
    uint32_t generation;
    bool operator>(const Timer& other) const { return due_ns > other.due_ns; }
  };

  LoadDriver(const LoadOptions& options, const SocketAddress& server,
             std::vector<LoadUser> users, WindowGate* gate);

  // ---- Time and timers.
  static int64_t NowNs();
  void ArmTimer(uint32_t i, int64_t due_ns);
  void FireTimers(int64_t now);
  void OnTimer(uint32_t i, int64_t now);
  // How long the loop may wait for replies before something is due.
  timespec WaitFor(int64_t now) const;

  // ---- Phases.
  void StartDueLogins(int64_t now);
  // Schedules slot `i`'s next login after one that was refused (rate
  // limited, say) or went unanswered: 1 s, doubling per failure in a row
  // up to 8 s, spread over half to one and a half times that, so that
  // peers refused together neither come back together nor keep an
  // overloaded daemon busy with logins.
  void RetryLoginLater(uint32_t i, int64_t now);
  void UpdatePhase(int64_t now);
  void OpenWindow(int64_t now);
  void CloseWindow(int64_t now);
  void SendDueLogouts(int64_t now);
  void IssueOpenLoop(int64_t now);

  // ---- Per peer.
  void StartLogin(uint32_t i, int64_t now);
  void BecomeActive(uint32_t i, int64_t now);
  // Sends the next request the peer owes, if any, else sleeps or queues.
  void Advance(uint32_t i, int64_t now);
  void SendMix(uint32_t i, int64_t now);
  void Send(uint32_t i, PendingRequest request, int64_t now);
  void Try(uint32_t i, int64_t now);
  void OnReadable(uint32_t i, int64_t now);
  void OnReply(uint32_t i, const client::Reply& reply, int64_t now);
  void OnLoginReply(uint32_t i, const client::Reply& reply, int64_t now);
  void OnLoginFinishReply(uint32_t i, const PendingRequest& r,
                          const client::Reply& reply, int64_t now);
  void OnSessionReply(uint32_t i, const PendingRequest& r,
                      const client::Reply& reply, int64_t now);
  void OnExpired(uint32_t i, const PendingRequest& r, int64_t now);
  void OnLoginRefused(uint32_t i, protocol::ResultCode code, int64_t now);
  void OnAbandoned(uint32_t i, int64_t now);
  void OnRefused(uint32_t i, int64_t now);
  void FinishLogout(uint32_t i);

  int64_t HeartbeatIntervalNs(const Slot& s) const;
  int PublicationsOf(uint32_t i) const;
  bool InWindow() const { return phase_ == Phase::kMeasure; }
  bool InRun() const { return phase_ <= Phase::kMeasure; }
  void Fail(absl::Status status);
  void OnGateReadable();

  const LoadOptions options_;
  const SocketAddress server_;
  WindowGate* const gate_;  // null: open the window when ready
  const std::vector<LoadUser> users_;
  const int publishers_;
  const client::RetryPolicy retry_;
  UniqueFd epoll_;
  std::vector<Slot> slots_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  std::deque<uint32_t> idle_;  // open loop: peers waiting for a request
  Catalog catalog_;
  std::vector<uint32_t> mix_table_;  // cumulative weights
  absl::InsecureBitGen random_;
  uint8_t buffer_[protocol::kMaxDatagramSize + 1];
  std::string own_name_;  // the body of the mix PUB or UNP being encoded

  Phase phase_ = Phase::kLogin;
  absl::Status fatal_;
  bool heard_from_server_ = false;
  bool gate_told_ready_ = false;
  bool gate_open_ = false;
  int64_t start_ns_ = 0;
  int64_t window_start_ns_ = 0;
  int64_t window_end_ns_ = 0;
  int64_t logout_start_ns_ = 0;
  int64_t logout_deadline_ns_ = 0;
  uint32_t logins_started_ = 0;  // initial logins (the ramp)
  int active_once_ = 0;          // peers that logged in at least once
  int pending_publications_ = 0;
  uint64_t open_loop_issued_ = 0;
  uint32_t logouts_started_ = 0;
  uint32_t logouts_outstanding_ = 0;
  int false_expiries_logged_ = 0;
  LoadStats stats_;
};

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_DRIVER_H_
