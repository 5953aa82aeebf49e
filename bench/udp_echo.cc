// udp_echo: the raw UDP baseline for peerload. It echoes every datagram
// back to its sender and does nothing else, with the system calls a fast UDP
// server would use (recvmmsg/sendmmsg in batches of 8, one SO_REUSEPORT
// socket per thread, opened as the daemon opens its own: OpenUdpSocket), so
// that `peerload --compare_raw` can print the daemon's throughput beside the
// machine's raw UDP limit.
//
//   udp_echo [--port=P] [--bind=ADDR] [--threads=N] [--duration=D]
//            [--cpu=LIST]
//
// --port 0 lets the kernel pick. Once it serves, udp_echo prints the port
// as one line on stdout (peerload reads it); logs go to stderr. It stops on
// SIGINT or SIGTERM, or after --duration (0: never), and then prints how
// many datagrams it echoed.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "core/base/cli.h"
#include "core/base/log.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"

ABSL_FLAG(int, port, 50001, "UDP port to echo on (0: the kernel picks)");
ABSL_FLAG(std::string, bind,
          "::", "address to bind; '::' serves IPv6 and IPv4");
ABSL_FLAG(int, threads, 0,
          "threads, each with its own socket (0: one per core)");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "stop after this long (0: only on SIGINT/SIGTERM)");
ABSL_FLAG(std::string, cpu, "", "pin to these CPUs, e.g. \"1\" or \"0,1\"");

namespace {

// Datagrams per recvmmsg/sendmmsg. Smaller batches were cheaper per
// datagram: two echoes at once on one CPU, each capped at 25% of it,
// answered 1.7-3.2% more with 16 than with 64, and 0.6-1.1% more again with
// 8 (four and three runs); presumably the smaller batch's buffers stay in
// the L1 cache (not measured). The baseline is the fastest echo measured,
// so the smallest of those.
constexpr int kBatch = 8;
constexpr size_t kMaxDatagram = 2048;
constexpr int kSocketBufferBytes = 4 << 20;

std::atomic<bool> stopping{false};

// One thread's socket and its echo loop.
class EchoWorker {
 public:
  explicit EchoWorker(pcfs::UniqueFd socket) : socket_(std::move(socket)) {}

  // Echoes until `stopping`; the socket's receive timeout makes it look.
  void Run() {
    for (int i = 0; i < kBatch; ++i) {
      iov_[i].iov_base = buffers_[i];
      messages_[i].msg_hdr.msg_iov = &iov_[i];
      messages_[i].msg_hdr.msg_iovlen = 1;
      messages_[i].msg_hdr.msg_name = &peers_[i];
    }
    while (!stopping.load(std::memory_order_relaxed)) {
      for (int i = 0; i < kBatch; ++i) {
        iov_[i].iov_len = kMaxDatagram;
        messages_[i].msg_hdr.msg_namelen = sizeof(peers_[i]);
        messages_[i].msg_hdr.msg_controllen = 0;
        messages_[i].msg_hdr.msg_flags = 0;
      }
      const int n =
          ::recvmmsg(socket_.get(), messages_, kBatch, MSG_WAITFORONE, nullptr);
      if (n <= 0) continue;  // timeout (EAGAIN), EINTR, ICMP errors
      for (int i = 0; i < n; ++i) iov_[i].iov_len = messages_[i].msg_len;
      for (int sent = 0; sent < n;) {
        const int m = ::sendmmsg(socket_.get(), messages_ + sent, n - sent, 0);
        if (m <= 0) {
          ++sent;  // drop the one that failed (e.g. ECONNREFUSED), go on
          continue;
        }
        sent += m;
      }
      echoed_ += static_cast<uint64_t>(n);
    }
  }

  uint64_t echoed() const { return echoed_; }

 private:
  pcfs::UniqueFd socket_;
  mmsghdr messages_[kBatch] = {};
  iovec iov_[kBatch] = {};
  sockaddr_storage peers_[kBatch] = {};
  uint8_t buffers_[kBatch][kMaxDatagram];
  uint64_t echoed_ = 0;
};

absl::StatusOr<pcfs::UniqueFd> OpenEchoSocket(const pcfs::SocketAddress& bind) {
  pcfs::UdpSocketOptions options;
  options.reuse_port = true;
  options.non_blocking = false;
  options.receive_buffer_bytes = kSocketBufferBytes;
  options.send_buffer_bytes = kSocketBufferBytes;
  absl::StatusOr<pcfs::UniqueFd> fd = pcfs::OpenUdpSocket(bind, options);
  if (!fd.ok()) return fd.status();
  timeval timeout{0, 100'000};  // look at `stopping` ten times a second
  if (::setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                   sizeof(timeout)) != 0) {
    return pcfs::ErrnoStatus("setsockopt(SO_RCVTIMEO)", errno);
  }
  return fd;
}

absl::Status PinToCpus(const std::string& list) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    int cpu = -1;
    if (!absl::SimpleAtoi(part, &cpu) || cpu < 0 || cpu >= CPU_SETSIZE) {
      return absl::InvalidArgumentError(
          "--cpu takes a list like \"1\" or \"0,1\"");
    }
    CPU_SET(cpu, &set);
  }
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
    return pcfs::ErrnoStatus("sched_setaffinity", errno);
  }
  return absl::OkStatus();
}

// Waits for SIGINT/SIGTERM (blocked in every thread) or the duration.
void WaitForStop(absl::Duration duration) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const absl::Time deadline = absl::Now() + duration;
  for (;;) {
    absl::Duration left = duration == absl::ZeroDuration()
                              ? absl::Hours(1)
                              : deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return;
    const timespec timeout = absl::ToTimespec(left);
    if (::sigtimedwait(&set, nullptr, &timeout) > 0) return;
    // EAGAIN: the wait ran out; EINTR: another signal. Look again.
  }
}

int Fail(const absl::Status& status) {
  pcfs::Log("udp_echo: ", status.message());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "the raw UDP baseline for peerload: echoes every datagram. Usage: "
      "udp_echo [--port=P] [--bind=ADDR] [--threads=N] [--duration=D] "
      "[--cpu=LIST]");
  pcfs::ParseCommandLineOrExit(argc, argv);
  const int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) {
    return Fail(absl::InvalidArgumentError("--port must be 0..65535"));
  }
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (duration < absl::ZeroDuration()) {
    return Fail(absl::InvalidArgumentError("--duration must not be negative"));
  }
  if (const std::string cpus = absl::GetFlag(FLAGS_cpu); !cpus.empty()) {
    if (absl::Status s = PinToCpus(cpus); !s.ok()) return Fail(s);
  }
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) {
    threads =
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }

  // Blocked before any thread starts, so that only sigtimedwait takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<pcfs::SocketAddress> bind = pcfs::SocketAddress::FromNumeric(
      absl::GetFlag(FLAGS_bind), static_cast<uint16_t>(port));
  if (!bind.ok()) return Fail(bind.status());
  std::vector<std::unique_ptr<EchoWorker>> workers;
  pcfs::SocketAddress at = *bind;
  for (int i = 0; i < threads; ++i) {
    absl::StatusOr<pcfs::UniqueFd> fd = OpenEchoSocket(at);
    if (!fd.ok()) return Fail(fd.status());
    if (i == 0) {
      // The others bind the port the first one got.
      absl::StatusOr<pcfs::SocketAddress> local = pcfs::LocalAddress(fd->get());
      if (!local.ok()) return Fail(local.status());
      at = *local;
    }
    workers.push_back(std::make_unique<EchoWorker>(*std::move(fd)));
  }
  std::vector<std::thread> running;
  for (auto& worker : workers) {
    running.emplace_back([w = worker.get()] { w->Run(); });
  }
  std::printf("%u\n", static_cast<unsigned>(at.port()));
  std::fflush(stdout);
  pcfs::Log("udp_echo: echoing on ", at.ToString(), " with ", threads,
            threads == 1 ? " thread" : " threads");

  WaitForStop(duration);
  stopping.store(true, std::memory_order_relaxed);
  uint64_t echoed = 0;
  for (size_t i = 0; i < running.size(); ++i) {
    running[i].join();
    echoed += workers[i]->echoed();
  }
  pcfs::Log("udp_echo: stopped after echoing ", echoed, " datagrams");
  return 0;
}
