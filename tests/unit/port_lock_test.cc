#include "core/io/port_lock.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
  absl::StatusOr<PortLock> lock = PortLock::Acquire(Loopback(port));
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
