#include "peerctl/signal_catcher.h"

#include <signal.h>

#include <atomic>

#include "gtest/gtest.h"

namespace pcfs {
namespace {

std::atomic<int> caught{0};
void Catch(int signo) { caught.store(signo); }

// The handler a signal has now.
void (*HandlerOf(int signo))(int) {
  struct sigaction now {};
  ::sigaction(signo, nullptr, &now);
  return now.sa_handler;
}

TEST(SignalCatcherTest, CatchesWhileItLivesAndRestoresAfter) {
  ::signal(SIGUSR1, SIG_IGN);
  ::signal(SIGUSR2, SIG_DFL);
  {
    const SignalCatcher catcher({SIGUSR1, SIGUSR2}, Catch);
    EXPECT_EQ(HandlerOf(SIGUSR1), &Catch);
    ::raise(SIGUSR2);
    EXPECT_EQ(caught.load(), SIGUSR2);
    // No SA_RESTART: a blocking call sees EINTR.
    struct sigaction now {};
    ::sigaction(SIGUSR1, nullptr, &now);
    EXPECT_EQ(now.sa_flags & SA_RESTART, 0);
  }
  EXPECT_EQ(HandlerOf(SIGUSR1), SIG_IGN);
  EXPECT_EQ(HandlerOf(SIGUSR2), SIG_DFL);
}

}  // namespace
}  // namespace pcfs
