// Tests of peerload's split over worker processes (bench/peerload/
// workers.h): the split itself, each worker's options, and two short runs
// of real forked workers against a loopback UDP echo and against nothing.
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "bench/peerload/workers.h"
#include "core/io/net.h"
#include "gtest/gtest.h"

namespace pcfs::peerload {
namespace {

TEST(SplitPeersTest, BlocksAreContiguousAndBalanced) {
  const std::vector<WorkerShare> shares = SplitPeers(100000, 6);
  ASSERT_EQ(shares.size(), 6u);
  int next = 0;
  for (const WorkerShare& share : shares) {
    EXPECT_EQ(share.first, next);
    EXPECT_TRUE(share.count == 16666 || share.count == 16667) << share.count;
    next += share.count;
  }
  EXPECT_EQ(next, 100000);
}

TEST(ProcessesForTest, OneProcessWhileThePeersFitItsDescriptors) {
  EXPECT_EQ(ProcessesFor(19000, 20000), 1);
  EXPECT_EQ(ProcessesFor(20000 - kSpareDescriptors, 20000), 1);
  EXPECT_EQ(ProcessesFor(20000 - kSpareDescriptors + 1, 20000), 2);
  EXPECT_EQ(ProcessesFor(100000, 20000), 6);
  EXPECT_EQ(ProcessesFor(100000, 1u << 20), 1);
}

TEST(WorkerOptionsTest, RatesAndPublishersAreShared) {
  LoadOptions run;
  run.peers = 100000;
  run.login_rate = 3000;
  run.logout_rate = 20000;
  run.rate = 600;
  run.publishers = 100;
  const std::vector<WorkerShare> shares = SplitPeers(run.peers, 4);
  double login_rate = 0;
  int publishers = 0;
  for (const WorkerShare& share : shares) {
    const LoadOptions o = WorkerOptions(run, share, 4);
    EXPECT_EQ(o.peers, 25000);
    EXPECT_EQ(o.first_peer_index, static_cast<uint64_t>(share.first));
    EXPECT_DOUBLE_EQ(o.rate, 150);
    EXPECT_DOUBLE_EQ(o.logout_rate, 5000);
    login_rate += o.login_rate;
    publishers += o.publishers;
  }
  EXPECT_DOUBLE_EQ(login_rate, 3000);
  EXPECT_EQ(publishers, 100);
}

// A UDP echo on 127.0.0.1 in a thread, until destroyed.
class EchoThread {
 public:
  EchoThread() {
    UdpSocketOptions options;
    options.non_blocking = false;
    absl::StatusOr<UniqueFd> fd =
        OpenUdpSocket(*SocketAddress::FromNumeric("127.0.0.1", 0), options);
    EXPECT_TRUE(fd.ok()) << fd.status();
    fd_ = *std::move(fd);
    timeval timeout{0, 50'000};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    address_ = *LocalAddress(fd_.get());
    thread_ = std::thread([this] {
      uint8_t buffer[2048];
      while (!stop_.load()) {
        sockaddr_storage from{};
        socklen_t length = sizeof(from);
        const ssize_t n =
            ::recvfrom(fd_.get(), buffer, sizeof(buffer), 0,
                       reinterpret_cast<sockaddr*>(&from), &length);
        if (n > 0) {
          ::sendto(fd_.get(), buffer, static_cast<size_t>(n), 0,
                   reinterpret_cast<sockaddr*>(&from), length);
        }
      }
    });
  }
  ~EchoThread() {
    stop_ = true;
    thread_.join();
  }
  const SocketAddress& address() const { return address_; }

 private:
  UniqueFd fd_;
  SocketAddress address_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

LoadOptions ShortRawRun(int peers) {
  LoadOptions o;
  o.raw = true;
  o.peers = peers;
  o.duration = absl::Milliseconds(600);
  o.ramp = absl::Seconds(5);
  o.mix.weights[0] = 1;  // closed-loop heartbeats
  o.login_rate = 1000;
  return o;
}

bool NoChildLeft() {
  return ::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD;
}

TEST(RunInWorkersTest, MergesTheWorkersFigures) {
  EchoThread echo;
  absl::StatusOr<LoadStats> stats =
      RunInWorkers(ShortRawRun(30), echo.address(), {}, 3);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->peers, 30);
  EXPECT_EQ(stats->logged_in, 30);
  EXPECT_GT(stats->responses, 30u);
  EXPECT_EQ(stats->latency.count(), stats->responses);
  EXPECT_EQ(stats->timeouts, 0u);
  EXPECT_EQ(stats->false_expiries, 0u);
  EXPECT_GT(stats->measured_s, 0.5);
  EXPECT_LT(stats->measured_s, 1.5);
  EXPECT_TRUE(NoChildLeft());
}

TEST(RunInWorkersTest, AFailingWorkerFailsTheRunAndLeavesNoChild) {
  // Nothing listens on this port once the socket is gone.
  SocketAddress nobody;
  {
    absl::StatusOr<UniqueFd> fd = OpenUdpSocket(
        *SocketAddress::FromNumeric("127.0.0.1", 0), UdpSocketOptions{});
    ASSERT_TRUE(fd.ok());
    nobody = *LocalAddress(fd->get());
  }
  absl::StatusOr<LoadStats> stats = RunInWorkers(ShortRawRun(4), nobody, {}, 2);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kUnavailable)
      << stats.status();
  EXPECT_NE(stats.status().message().find("peerload worker"),
            std::string::npos);
  EXPECT_TRUE(NoChildLeft());
}

}  // namespace
}  // namespace pcfs::peerload
