#include "bench/peerload/echo_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/base/unique_fd.h"

extern char** environ;

namespace pcfs::peerload {
namespace {

constexpr int kStartTimeoutMs = 5000;
constexpr absl::Duration kStopTimeout = absl::Seconds(5);

// Reads udp_echo's first stdout line (its port), waiting at most
// kStartTimeoutMs in all.
absl::StatusOr<uint16_t> ReadPort(int fd) {
  std::string line;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(kStartTimeoutMs);
  while (line.find('\n') == std::string::npos) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      return absl::UnavailableError("udp_echo did not report its port in 5 s");
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left));
    if (ready < 0 && errno != EINTR) return ErrnoStatus("poll", errno);
    if (ready <= 0) continue;
    char buffer[64];
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno != EINTR) return ErrnoStatus("read", errno);
    if (n == 0) {
      return absl::UnavailableError("udp_echo exited before it served");
    }
    if (n > 0) line.append(buffer, static_cast<size_t>(n));
  }
  uint32_t port = 0;
  const absl::string_view text = absl::StripAsciiWhitespace(
      absl::string_view(line).substr(0, line.find('\n')));
  if (!absl::SimpleAtoi(text, &port) || port == 0 || port > 65535) {
    return absl::UnavailableError(
        absl::StrCat("udp_echo printed '", text, "' instead of its port"));
  }
  return static_cast<uint16_t>(port);
}

}  // namespace

std::string EchoProcess::DefaultBinary() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return "udp_echo";
  std::string self(path, static_cast<size_t>(n));
  const size_t slash = self.rfind('/');
  if (slash == std::string::npos) return "udp_echo";
  return absl::StrCat(self.substr(0, slash + 1), "udp_echo");
}

absl::StatusOr<std::unique_ptr<EchoProcess>> EchoProcess::Start(
    const Options& options) {
  if (::access(options.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot run udp_echo at ", options.binary,
                     " (build the udp_echo target, or pass --echo_binary)"));
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoStatus("pipe2", errno);
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);

  std::vector<std::string> args = {
      options.binary, "--port=0", absl::StrCat("--bind=", options.bind),
      absl::StrCat("--threads=", options.threads),
      absl::StrCat("--duration=", absl::ToInt64Seconds(options.lifetime), "s")};
  if (!options.cpus.empty())
    args.push_back(absl::StrCat("--cpu=", options.cpus));
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 onto stdout clears close-on-exec there; the pipe ends close.
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, options.binary.c_str(), &actions, nullptr,
                                argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0)
    return ErrnoStatus(absl::StrCat("posix_spawn ", options.binary), err);
  write_end.Reset();  // so that a dead child reads as end of file
  std::unique_ptr<EchoProcess> process(new EchoProcess(pid, 0));
  if (!options.cgroup.empty()) {
    const std::string procs = absl::StrCat(options.cgroup, "/cgroup.procs");
    const std::string line = absl::StrCat(pid, "\n");
    UniqueFd file(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
    if (!file || ::write(file.get(), line.data(), line.size()) !=
                     static_cast<ssize_t>(line.size())) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot move udp_echo into the cgroup ", options.cgroup,
                       " (", procs, ": ", std::strerror(errno), ")"));
    }  // the destructor kills the child
  }
  absl::StatusOr<uint16_t> port = ReadPort(read_end.get());
  if (!port.ok()) return port.status();  // the destructor kills the child
  process->port_ = *port;
  return process;
}

EchoProcess::~EchoProcess() {
  if (pid_ > 0) (void)Stop();
}

absl::Status EchoProcess::Stop() {
  if (pid_ <= 0) return absl::OkStatus();
  ::kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + kStopTimeout;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) break;
    if (done < 0 && errno != EINTR) {
      pid_ = -1;
      return ErrnoStatus("waitpid", errno);
    }
    if (absl::Now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  pid_ = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("udp_echo ended with status ", status));
}

}  // namespace pcfs::peerload
