// SignalCatcher: while it lives, the signals it was given go to a handler
// of the caller's (typically one that sets an atomic flag) instead of their
// dispositions, which come back when it ends. Installed without SA_RESTART,
// so that a blocking call sees EINTR and the code around it can look at
// the flag. For the shell's Ctrl-C and a one-shot get's SIGINT and SIGTERM:
// what they stop ends cleanly (a logout, a partial kept) instead of the
// process being killed.
//
// Not thread-safe: dispositions are per process; one scope at a time per
// signal, made and ended on one thread.
#ifndef PCFS_PEERCTL_SIGNAL_CATCHER_H_
#define PCFS_PEERCTL_SIGNAL_CATCHER_H_

#include <signal.h>

#include <initializer_list>
#include <utility>
#include <vector>

namespace pcfs {

class SignalCatcher {
 public:
  SignalCatcher(std::initializer_list<int> signals, void (*handler)(int));
  ~SignalCatcher();
  SignalCatcher(const SignalCatcher&) = delete;
  SignalCatcher& operator=(const SignalCatcher&) = delete;

 private:
  // Each signal with the disposition it had.
  std::vector<std::pair<int, struct sigaction>> saved_;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_SIGNAL_CATCHER_H_
