#include "peerctl/signal_catcher.h"

namespace pcfs {

SignalCatcher::SignalCatcher(std::initializer_list<int> signals,
                             void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  ::sigemptyset(&action.sa_mask);
  for (const int signo : signals) {
    struct sigaction saved {};
    ::sigaction(signo, &action, &saved);
    saved_.emplace_back(signo, saved);
  }
}

SignalCatcher::~SignalCatcher() {
  for (const auto& [signo, saved] : saved_) {
    ::sigaction(signo, &saved, nullptr);
  }
}

}  // namespace pcfs
