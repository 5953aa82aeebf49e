#include "core/io/port_lock.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace pcfs {
namespace {

// A UDP port that was free a moment ago (bound, read, closed).
uint16_t FreePort() {
  absl::StatusOr<SocketAddress> any =
      SocketAddress::FromNumeric("127.0.0.1", 0);
  EXPECT_TRUE(any.ok());
  absl::StatusOr<UniqueFd> socket = OpenUdpSocket(*any, UdpSocketOptions{});
  EXPECT_TRUE(socket.ok());
  absl::StatusOr<SocketAddress> local = LocalAddress(socket->get());
  EXPECT_TRUE(local.ok());
  return local->port();
}

SocketAddress Loopback(uint16_t port) {
  return *SocketAddress::FromNumeric("127.0.0.1", port);
}

TEST(PortLockTest, ASecondLockOnThePortNamesTheHolder) {
  const uint16_t port = FreePort();
  absl::StatusOr<PortLock> first = PortLock::Acquire(Loopback(port));
  ASSERT_TRUE(first.ok()) << first.status();
  // Another address, same port: still refused (one daemon per port).
  absl::StatusOr<PortLock> second =
      PortLock::Acquire(*SocketAddress::FromNumeric("::", port));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  // This process holds it: "port N/udp is in use by port_lock_test, pid P"
  // (the name as /proc/PID/comm has it, at most 15 characters).
  EXPECT_TRUE(absl::StrContains(
      second.status().message(),
      absl::StrCat("port ", port, "/udp is in use by port_lock_test")))
      << second.status();
  EXPECT_TRUE(absl::StrContains(second.status().message(),
                                absl::StrCat("pid ", getpid())))
      << second.status();
  // The asker's connection waits in the backlog until answered.
  first->AnswerProbes();
  for (int i = 0; i < 40; ++i) {  // more askers than the backlog holds
    absl::StatusOr<PortLock> again = PortLock::Acquire(Loopback(port));
    ASSERT_FALSE(again.ok());
    EXPECT_TRUE(absl::StrContains(again.status().message(), "pid ")) << i;
    first->AnswerProbes();
  }
}

// A live holder is refused at once, whatever the patience.
TEST(PortLockTest, ALiveHolderIsRefusedWithoutWaiting) {
  const uint16_t port = FreePort();
  absl::StatusOr<PortLock> first = PortLock::Acquire(Loopback(port));
  ASSERT_TRUE(first.ok()) << first.status();
  const absl::Time start = absl::Now();
  absl::StatusOr<PortLock> second =
      PortLock::Acquire(Loopback(port), absl::Seconds(30));
  EXPECT_FALSE(second.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

// The lock's socket as a killed daemon leaves it: made to listen by a
// process that has exited (and been reaped), still open because another
// holds it (here this process; for the daemon, its io_uring).
UniqueFd ListenerOfAnExitedProcess(uint16_t port) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.valid());
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string name = PortLock::NameFor(port);
  std::memcpy(address.sun_path + 1, name.data(), name.size());
  const auto length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  EXPECT_EQ(
      ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length), 0)
      << strerror(errno);
  // SO_PEERCRED names the process that called listen().
  const pid_t child = fork();
  if (child == 0) _exit(listen(fd.get(), 16) == 0 ? 0 : 1);
  int status = 0;
  EXPECT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return fd;
}

// A daemon restarted at once after a kill -9 waits for the dead one's
// sockets (its lock, then its port) instead of calling the port in use.
TEST(PortLockTest, AHolderThatHasExitedIsWaitedFor) {
  const uint16_t port = FreePort();
  UniqueFd lock = ListenerOfAnExitedProcess(port);
  absl::StatusOr<UniqueFd> udp = OpenUdpSocket(Loopback(port), {});
  ASSERT_TRUE(udp.ok()) << udp.status();
  std::thread kernel([&] {  // lets go of them a little later
    absl::SleepFor(absl::Milliseconds(100));
    lock.Reset();
    absl::SleepFor(absl::Milliseconds(50));
    udp->Reset();
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<PortLock> acquired =
      PortLock::Acquire(Loopback(port), absl::Seconds(30));
  const absl::Duration waited = absl::Now() - start;
  kernel.join();
  EXPECT_TRUE(acquired.ok()) << acquired.status();
  EXPECT_GE(waited, absl::Milliseconds(150));
}

// Not for ever: past the patience, the refusal says what holds the port.
TEST(PortLockTest, AHolderThatHasExitedButHoldsOnIsNamed) {
  const uint16_t port = FreePort();
  UniqueFd lock = ListenerOfAnExitedProcess(port);
  absl::StatusOr<PortLock> refused =
      PortLock::Acquire(Loopback(port), absl::Milliseconds(100));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      absl::StrContains(refused.status().message(),
                        "which has exited but whose sockets are still open"))
      << refused.status();
}

TEST(PortLockTest, TheLockIsFreeAgainOnceItsHolderIsGone) {
  const uint16_t port = FreePort();
  {
    absl::StatusOr<PortLock> held = PortLock::Acquire(Loopback(port));
    ASSERT_TRUE(held.ok()) << held.status();
  }
  absl::StatusOr<PortLock> again = PortLock::Acquire(Loopback(port));
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(PortLockTest, APortHeldByAnotherProgramIsNamedAsSuch) {
  absl::StatusOr<UniqueFd> holder =
      OpenUdpSocket(Loopback(0), UdpSocketOptions{});
  ASSERT_TRUE(holder.ok());
  const uint16_t port = LocalAddress(holder->get())->port();
  absl::StatusOr<PortLock> lock =
      PortLock::Acquire(Loopback(port), absl::Milliseconds(50));
  ASSERT_FALSE(lock.ok());
  EXPECT_TRUE(absl::StrContains(
      lock.status().message(),
      absl::StrCat("port ", port, "/udp is in use by another program")))
      << lock.status();
  // The failed attempt left no lock behind.
  holder->Reset();
  EXPECT_TRUE(PortLock::Acquire(Loopback(port)).ok());
}

TEST(PortLockTest, PortZeroTakesNoLock) {
  EXPECT_FALSE(PortLock::Acquire(Loopback(0)).ok());
}

}  // namespace
}  // namespace pcfs
