#include "bench/peerload/workers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/peerload/driver.h"
#include "bench/peerload/sockets.h"
#include "core/base/log.h"
#include "core/base/unique_fd.h"

namespace pcfs::peerload {
namespace {

// The status pipe (worker to parent) carries kReady once, then one result:
// kResultOk and EncodeStats text, or kResultError, the status code as a
// number, a space and the message; then the worker exits. The control pipe
// (parent to worker) carries kGo once.
constexpr char kReady = 'R';
constexpr char kGo = 'G';
constexpr char kResultOk = 'O';
constexpr char kResultError = 'E';

// Beyond the run's own phases: time for a worker to start, to send its
// result and to exit.
constexpr absl::Duration kMargin = absl::Seconds(30);
constexpr absl::Duration kReapTimeout = absl::Seconds(5);
constexpr int kExitWorkerFailed = 1;
constexpr int kExitOrphaned = 3;

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write (peerload worker pipe)", errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// A worker's WindowGate: kReady on the status pipe, kGo on the control
// pipe (non-blocking).
class PipeGate : public WindowGate {
 public:
  PipeGate(int status_fd, int control_fd)
      : status_fd_(status_fd), control_fd_(control_fd) {}

  int fd() const override { return control_fd_; }

  absl::Status Ready() override {
    return WriteAll(status_fd_, absl::string_view(&kReady, 1));
  }

  absl::StatusOr<bool> Poll() override {
    char c = 0;
    const ssize_t n = ::read(control_fd_, &c, 1);
    if (n == 1) return c == kGo;
    if (n == 0) return absl::AbortedError("the parent peerload went away");
    if (errno == EAGAIN || errno == EINTR) return false;
    return ErrnoStatus("read (peerload control pipe)", errno);
  }

 private:
  const int status_fd_;
  const int control_fd_;
};

// The body of a forked worker; never returns. It runs on a copy of the
// parent's memory, so it leaves by _exit: no destructors of the parent's
// objects, no flush of the parent's stdio buffers.
[[noreturn]] void RunWorker(const LoadOptions& options,
                            const SocketAddress& server,
                            std::vector<LoadUser> users, int status_fd,
                            int control_fd, pid_t parent) {
  // Die with the parent; if it is already gone, do not run at all.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(kExitOrphaned);
  absl::StatusOr<LoadStats> stats = [&]() -> absl::StatusOr<LoadStats> {
    const int flags = ::fcntl(control_fd, F_GETFL);
    if (flags < 0 || ::fcntl(control_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      return ErrnoStatus("fcntl (control pipe)", errno);
    }
    if (absl::Status s = RaiseFileLimit(static_cast<uint64_t>(options.peers) +
                                        kSpareDescriptors);
        !s.ok()) {
      return s;
    }
    PipeGate gate(status_fd, control_fd);
    absl::StatusOr<std::unique_ptr<LoadDriver>> driver =
        LoadDriver::Create(options, server, std::move(users), &gate);
    if (!driver.ok()) return driver.status();
    return (*driver)->Run();
  }();
  const std::string result =
      stats.ok()
          ? absl::StrCat(absl::string_view(&kResultOk, 1), EncodeStats(*stats))
          : absl::StrCat(absl::string_view(&kResultError, 1),
                         static_cast<int>(stats.status().code()), " ",
                         stats.status().message());
  const bool sent = WriteAll(status_fd, result).ok();
  ::_exit(stats.ok() && sent ? 0 : kExitWorkerFailed);
}

// "exit status 1", "killed by signal 9".
std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status))
    return absl::StrCat("exit status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status));
  }
  return absl::StrCat("wait status ", status);
}

// The parent's side of one worker.
struct Worker {
  int index = 0;
  WorkerShare share;
  pid_t pid = -1;    // -1 once reaped
  UniqueFd status;   // read end, non-blocking
  UniqueFd control;  // write end
  std::string received;
  bool ready = false;  // kReady received
  bool ended = false;  // end of file on the status pipe
  int wait_status = 0;

  std::string Name() const {
    return absl::StrCat("peerload worker ", index, " (peers ", share.first,
                        "..", share.first + share.count - 1, ")");
  }
};

// Owns the workers: whatever path leaves RunInWorkers, every worker still
// running is killed and reaped, so none outlives the run.
//
// Not thread-safe: the parent's main thread only.
class WorkerSet {
 public:
  WorkerSet() = default;
  WorkerSet(const WorkerSet&) = delete;
  WorkerSet& operator=(const WorkerSet&) = delete;
  ~WorkerSet() {
    for (Worker& w : workers_) {
      if (w.pid > 0) ::kill(w.pid, SIGKILL);
    }
    for (Worker& w : workers_) {
      if (w.pid > 0) {
        while (::waitpid(w.pid, &w.wait_status, 0) < 0 && errno == EINTR) {
        }
        w.pid = -1;
      }
    }
  }

  std::vector<Worker>& workers() { return workers_; }

  // Reaps `w`, which closed its status pipe, waiting at most kReapTimeout
  // before it kills it.
  static void Reap(Worker& w) {
    const absl::Time deadline = absl::Now() + kReapTimeout;
    while (w.pid > 0) {
      const pid_t done = ::waitpid(w.pid, &w.wait_status, WNOHANG);
      if (done == w.pid || (done < 0 && errno != EINTR)) {
        w.pid = -1;
        return;
      }
      if (absl::Now() >= deadline) {
        ::kill(w.pid, SIGKILL);
        ::waitpid(w.pid, &w.wait_status, 0);
        w.pid = -1;
        return;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

 private:
  std::vector<Worker> workers_;
};

// Reads what `w` sent; notes its kReady and its end of file.
absl::Status ReadFrom(Worker& w) {
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(w.status.get(), buffer, sizeof(buffer));
    if (n > 0) {
      w.received.append(buffer, static_cast<size_t>(n));
      if (!w.ready && w.received.front() == kReady) {
        w.ready = true;
        w.received.erase(0, 1);
      }
      continue;
    }
    if (n == 0) {
      w.ended = true;
      return absl::OkStatus();
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return absl::OkStatus();
    return ErrnoStatus(absl::StrCat("read from ", w.Name()), errno);
  }
}

// The result `w` sent before its end of file.
absl::StatusOr<LoadStats> ResultOf(const Worker& w) {
  const absl::string_view text = w.received;
  if (text.empty()) {
    return absl::InternalError(
        absl::StrCat(w.Name(), " ended without a result (",
                     DescribeWaitStatus(w.wait_status), ")"));
  }
  if (text.front() == kResultError) {
    const absl::string_view rest = text.substr(1);
    const size_t space = rest.find(' ');
    int code = static_cast<int>(absl::StatusCode::kInternal);
    if (space == absl::string_view::npos ||
        !absl::SimpleAtoi(rest.substr(0, space), &code)) {
      return absl::InternalError(absl::StrCat(w.Name(), " failed: ", rest));
    }
    return absl::Status(static_cast<absl::StatusCode>(code),
                        absl::StrCat(w.Name(), ": ", rest.substr(space + 1)));
  }
  if (text.front() != kResultOk) {
    return absl::InternalError(absl::StrCat(w.Name(), " sent garbage"));
  }
  absl::StatusOr<LoadStats> stats = DecodeStats(text.substr(1));
  if (!stats.ok()) {
    return absl::InternalError(
        absl::StrCat(w.Name(), ": ", stats.status().message()));
  }
  if (!WIFEXITED(w.wait_status) || WEXITSTATUS(w.wait_status) != 0) {
    return absl::InternalError(absl::StrCat(w.Name(), " ended with ",
                                            DescribeWaitStatus(w.wait_status)));
  }
  return stats;
}

}  // namespace

int ProcessesFor(int peers, uint64_t fd_limit) {
  const uint64_t per_process =
      fd_limit > 2 * static_cast<uint64_t>(kSpareDescriptors)
          ? fd_limit - kSpareDescriptors
          : static_cast<uint64_t>(kSpareDescriptors);
  const uint64_t n = static_cast<uint64_t>(std::max(peers, 1));
  return static_cast<int>((n + per_process - 1) / per_process);
}

std::vector<WorkerShare> SplitPeers(int peers, int processes) {
  std::vector<WorkerShare> shares;
  shares.reserve(static_cast<size_t>(processes));
  const int base = peers / processes;
  const int extra = peers % processes;
  int first = 0;
  for (int w = 0; w < processes; ++w) {
    const int count = base + (w < extra ? 1 : 0);
    shares.push_back(WorkerShare{first, count});
    first += count;
  }
  return shares;
}

LoadOptions WorkerOptions(const LoadOptions& run, const WorkerShare& share,
                          int processes) {
  LoadOptions o = run;
  o.peers = share.count;
  o.first_peer_index =
      run.first_peer_index + static_cast<uint64_t>(share.first);
  // Rates in proportion to the peers, so that the run's add up to the flags.
  const double fraction =
      run.peers > 0 ? static_cast<double>(share.count) / run.peers : 0;
  o.login_rate = run.login_rate * fraction;
  o.logout_rate = run.logout_rate * fraction;
  o.rate = run.rate * fraction;
  // The publishers spread like the peers: about publishers/processes each,
  // the first ones of each block (a worker's GET and SCH pick among the
  // names its own peers published).
  const int index = processes > 0 && run.peers > 0
                        ? static_cast<int>(static_cast<int64_t>(share.first) *
                                           processes / run.peers)
                        : 0;
  const std::vector<WorkerShare> publisher_shares =
      SplitPeers(run.publishers, std::max(1, processes));
  o.publishers = run.publishers > 0 && index < processes
                     ? publisher_shares[static_cast<size_t>(index)].count
                     : 0;
  return o;
}

absl::StatusOr<LoadStats> RunInWorkers(const LoadOptions& options,
                                       const SocketAddress& server,
                                       const std::vector<LoadUser>& users,
                                       int processes) {
  if (processes < 2 || processes > options.peers) {
    return absl::InvalidArgumentError(absl::StrCat("--processes must be in 2..",
                                                   options.peers, " for ",
                                                   options.peers, " peers"));
  }
  if (!options.raw && users.size() < static_cast<size_t>(options.peers)) {
    return absl::InvalidArgumentError("fewer users than peers");
  }
  // A worker that died leaves a control pipe without a reader: its write
  // must fail with EPIPE, not kill peerload.
  ::signal(SIGPIPE, SIG_IGN);
  const pid_t parent = ::getpid();
  const std::vector<WorkerShare> shares = SplitPeers(options.peers, processes);
  Log("peerload: ", options.peers, " peers over ", processes,
      " worker processes (", shares.front().count, " at most each)");

  WorkerSet set;
  std::vector<Worker>& workers = set.workers();
  workers.reserve(shares.size());
  for (int w = 0; w < processes; ++w) {
    const WorkerShare share = shares[static_cast<size_t>(w)];
    int status_pipe[2];
    int control_pipe[2];
    if (::pipe2(status_pipe, O_CLOEXEC) != 0)
      return ErrnoStatus("pipe2", errno);
    UniqueFd status_read(status_pipe[0]);
    UniqueFd status_write(status_pipe[1]);
    if (::pipe2(control_pipe, O_CLOEXEC) != 0) {
      return ErrnoStatus("pipe2", errno);
    }
    UniqueFd control_read(control_pipe[0]);
    UniqueFd control_write(control_pipe[1]);
    const int flags = ::fcntl(status_read.get(), F_GETFL);
    if (flags < 0 ||
        ::fcntl(status_read.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
      return ErrnoStatus("fcntl (status pipe)", errno);
    }
    const LoadOptions worker_options = WorkerOptions(options, share, processes);
    const pid_t pid = ::fork();
    if (pid < 0) return ErrnoStatus("fork", errno);
    if (pid == 0) {
      // The child: only its own pipe ends stay open.
      for (Worker& other : workers) {
        other.status.Reset();
        other.control.Reset();
      }
      status_read.Reset();
      control_write.Reset();
      std::vector<LoadUser> slice;
      if (!options.raw) {
        slice.assign(users.begin() + share.first,
                     users.begin() + share.first + share.count);
      }
      RunWorker(worker_options, server, std::move(slice), status_write.get(),
                control_read.get(), parent);
    }
    Worker worker;
    worker.index = w;
    worker.share = share;
    worker.pid = pid;
    worker.status = std::move(status_read);
    worker.control = std::move(control_write);
    workers.push_back(std::move(worker));
  }

  // Until every worker is ready: the ramp bounds each one's login phase.
  absl::Time deadline = absl::Now() + options.ramp + kMargin;
  bool go_sent = false;
  size_t ended = 0;
  while (ended < workers.size()) {
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the peerload workers did not ",
                       go_sent ? "finish in time" : "all log in within --ramp",
                       " (", ended, " of ", workers.size(), " ended)"));
    }
    std::vector<pollfd> fds;
    std::vector<Worker*> polled;
    for (Worker& w : workers) {
      if (w.ended) continue;
      fds.push_back(pollfd{w.status.get(), POLLIN, 0});
      polled.push_back(&w);
    }
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>(
        absl::ToInt64Milliseconds(deadline - now) + 1, 1, 1000));
    const int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("poll", errno);
    }
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      Worker& w = *polled[k];
      if (absl::Status s = ReadFrom(w); !s.ok()) return s;
      if (!w.ended) continue;
      ++ended;
      WorkerSet::Reap(w);
      w.status.Reset();
      // A failed worker fails the run at once; the others are killed.
      absl::StatusOr<LoadStats> result = ResultOf(w);
      if (!result.ok()) return result.status();
    }
    if (!go_sent && std::all_of(workers.begin(), workers.end(),
                                [](const Worker& w) { return w.ready; })) {
      for (Worker& w : workers) {
        if (absl::Status s =
                WriteAll(w.control.get(), absl::string_view(&kGo, 1));
            !s.ok()) {
          return absl::Status(s.code(),
                              absl::StrCat(w.Name(), ": ", s.message()));
        }
      }
      go_sent = true;
      Log("peerload: every worker is ready; measuring for ",
          absl::FormatDuration(options.duration));
      // The window, then the logouts (the driver's own bound) and margin.
      deadline = absl::Now() + options.duration + options.logout_grace +
                 absl::Seconds(static_cast<double>(shares.front().count) /
                               std::max(1.0, options.logout_rate / processes)) +
                 kMargin;
    }
  }

  LoadStats total;
  for (const Worker& w : workers) {
    absl::StatusOr<LoadStats> result = ResultOf(w);
    if (!result.ok()) return result.status();
    MergeStats(*result, &total);
  }
  return total;
}

}  // namespace pcfs::peerload
