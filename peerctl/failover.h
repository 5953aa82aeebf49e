// The daemons a client knows (peerctl --server A,B,...) and which one it
// talks to: the address list as the user wrote it, and FailoverPlan, the
// decisions of moving on when a daemon stops answering and of pausing
// between logins. Pure: no I/O, no clock; the jitter is passed in.
// peerctl/client.cc does the sending and the waiting.
//
// Thread-safety: DaemonAddress and the parser are plain values and pure
// functions; a FailoverPlan is not thread-safe (ControlClient keeps its one
// under its command mutex).
#ifndef PCFS_PEERCTL_FAILOVER_H_
#define PCFS_PEERCTL_FAILOVER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pcfs {

// One daemon of the list.
struct DaemonAddress {
  std::string host;
  uint16_t port = 0;

  // "host:port", "[v6]:port": how messages and logs name it.
  std::string Name() const;
  friend bool operator==(const DaemonAddress&, const DaemonAddress&) = default;
};

// Parses a server setting: one address as ParseServerAddress (config.h)
// takes it, or several separated by commas ("a:50000,b:50000,[::1]:50001").
// Blanks around an entry are ignored. InvalidArgument naming the bad entry:
// an empty entry ("a:1,,b:2", a trailing comma), an entry that is not an
// address (a bad port), or an entry listed twice (the same host and port,
// the default port included: "a,a:50000").
absl::StatusOr<std::vector<DaemonAddress>> ParseServerList(
    absl::string_view text);

// Which daemon of `daemons` a client uses, and how long it waits before its
// next login. The rules:
//   - It starts on the first daemon.
//   - A daemon that stops answering (a request or a heartbeat times out, or
//     its port is closed) is left for the next one in the list, wrapping
//     around: StoppedAnswering().
//   - A login that gets no answer moves on the same way; one that is
//     refused stays: a refusal is an answer (a wrong password is wrong on
//     every daemon; "already logged in on another daemon" passes once the
//     dead daemon's claim is freed). FailedLogin() returns the pause.
//   - The pause is 0 while some daemon of the list has not been tried since
//     the last answer; otherwise it is the backoff: 1 s after the first
//     failure, doubling to 5 s at most, each times the jitter (0.75 to
//     1.25, so that many clients do not come back as one). With a single
//     daemon, every failure pauses, as peerctl always did.
//   - A login that succeeds starts the backoff again: LoggedIn().
class FailoverPlan {
 public:
  enum class LoginFailure {
    kSilent,   // no answer: the daemon is down, stopped or unreachable
    kRefused,  // an answer: wrong password, already logged in, rate limited
  };

  // REQUIRES: daemons >= 1.
  explicit FailoverPlan(size_t daemons);

  size_t current() const { return current_; }
  size_t size() const { return size_; }
  bool several() const { return size_ > 1; }

  // The current daemon stopped answering while this client was logged in:
  // moves to the next one and returns its index (the same one when there
  // is only one).
  size_t StoppedAnswering();
  // A login at current() failed; returns how long to wait before the next
  // login, which goes to current() (moved on after kSilent, when there are
  // several daemons). `jitter` is in [0.75, 1.25].
  absl::Duration FailedLogin(LoginFailure failure, double jitter);
  // A login at current() succeeded.
  void LoggedIn();

  // Failed logins that paused, since the last success.
  int backoff_failures() const { return backoff_failures_; }

 private:
  size_t Advance();

  size_t size_;
  size_t current_ = 0;
  // Daemons that did not answer in a row, since the last answer.
  size_t silent_in_a_row_ = 0;
  int backoff_failures_ = 0;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_FAILOVER_H_
