#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace pcfs::testing {
namespace {

void SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Reads what `fd` has into `buffer`; false at end of file.
bool Drain(int fd, std::string& buffer) {
  char chunk[8192];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n > 0) {
      buffer.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;
    return errno == EAGAIN || errno == EINTR;
  }
}

}  // namespace

TempDir::TempDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "pcfs-test-XXXXXX").string();
  char* made = ::mkdtemp(pattern.data());
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::MakeSubdir(const std::string& name) const {
  std::string path = absl::StrCat(path_, "/", name);
  std::filesystem::create_directories(path);
  return path;
}

void TempDir::WriteFile(const std::string& name,
                        const std::string& contents) const {
  std::ofstream out(absl::StrCat(path_, "/", name), std::ios::binary);
  out << contents;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<uint64_t> IoCounterOf(pid_t pid, const std::string& counter) {
  const std::string io = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/io"));
  const std::string key = counter + ":";
  const size_t at = io.find(key);
  if (at == std::string::npos) return std::nullopt;
  const size_t start = at + key.size();
  const size_t end = io.find('\n', start);
  uint64_t value = 0;
  if (!absl::SimpleAtoi(
          absl::StripAsciiWhitespace(absl::string_view(io).substr(
              start, end == std::string::npos ? end : end - start)),
          &value)) {
    return std::nullopt;
  }
  return value;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> ListFolder(const std::string& path) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void WriteRandomFile(const std::string& path, size_t size, uint32_t seed) {
  std::mt19937_64 random(seed);
  std::string data(size, '\0');
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t v = random();
    std::memcpy(&data[i], &v, 8);
  }
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// The state folder (XDG_STATE_HOME) every child gets unless its options say
// otherwise: peerctl keeps its TLS identity there, and a test must not
// write into the tester's home. One per test process, removed at its exit.
const std::string& SharedStateHome() {
  static const TempDir* dir = new TempDir();  // outlives every Process
  static const bool cleanup = [] {
    std::atexit([] { delete dir; });
    return true;
  }();
  (void)cleanup;
  return dir->path();
}

Process::Process(const Options& options) {
  const std::string& state_home = SharedStateHome();
  // Writing to a child that died must fail with EPIPE, not kill the test.
  ::signal(SIGPIPE, SIG_IGN);
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
      ::pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return;
  }
  std::vector<char*> argv;
  for (const std::string& arg : options.argv) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) _exit(126);
    ::setenv("XDG_STATE_HOME", state_home.c_str(), 1);
    for (const auto& [key, value] : options.env) {
      ::setenv(key.c_str(), value.c_str(), 1);
    }
    // Signals blocked by the test process must not stay blocked in the child.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  stdin_.Reset(in[1]);
  stdout_.Reset(out[0]);
  stderr_.Reset(err[0]);
  SetNonBlocking(stdout_.get());
  SetNonBlocking(stderr_.get());
}

Process::~Process() {
  if (pid_ > 0 && !exit_code_.has_value()) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
}

void Process::Write(const std::string& text) {
  if (!stdin_) return;
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(stdin_.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      // EPIPE: the child is gone (a test may have killed it on purpose).
      if (errno != EPIPE) {
        ADD_FAILURE() << "write to child stdin: " << std::strerror(errno);
      }
      return;
    }
    done += static_cast<size_t>(n);
  }
}

void Process::CloseStdin() { stdin_.Reset(); }

void Process::Pump(absl::Duration wait) {
  pollfd fds[2];
  nfds_t count = 0;
  if (stdout_) fds[count++] = {stdout_.get(), POLLIN, 0};
  if (stderr_) fds[count++] = {stderr_.get(), POLLIN, 0};
  if (count == 0) {
    absl::SleepFor(wait);
    return;
  }
  ::poll(fds, count, static_cast<int>(absl::ToInt64Milliseconds(wait)));
  if (stdout_ && !Drain(stdout_.get(), out_)) stdout_.Reset();
  if (stderr_ && !Drain(stderr_.get(), err_)) stderr_.Reset();
}

std::optional<std::string> Process::ReadUntil(std::string& buffer,
                                              size_t& position,
                                              const std::string& text,
                                              absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    size_t found = buffer.find(text, position);
    if (found != std::string::npos) {
      std::string result =
          buffer.substr(position, found + text.size() - position);
      position = found + text.size();
      return result;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    if (!stdout_ && !stderr_) return std::nullopt;
    Pump(std::min(left, absl::Milliseconds(50)));
  }
}

std::optional<std::string> Process::ReadStdoutUntil(const std::string& text,
                                                    absl::Duration timeout) {
  return ReadUntil(out_, out_position_, text, timeout);
}

std::string Process::ReadStdoutRest() {
  std::string rest = out_.substr(out_position_);
  out_position_ = out_.size();
  return rest;
}

std::optional<std::string> Process::ReadStderrUntil(const std::string& text,
                                                    absl::Duration timeout) {
  return ReadUntil(err_, err_position_, text, timeout);
}

void Process::Signal(int signo) {
  if (pid_ > 0 && !exit_code_.has_value()) ::kill(pid_, signo);
}

std::optional<int> Process::Wait(absl::Duration timeout) {
  if (exit_code_.has_value()) return exit_code_;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      // Collect what is left in the pipes.
      for (int i = 0; i < 20 && (stdout_ || stderr_); ++i) {
        Pump(absl::Milliseconds(10));
      }
      exit_code_ =
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    Pump(absl::Milliseconds(20));
  }
}

Daemon::Daemon(const std::string& credentials,
               std::vector<std::string> extra_flags)
    : extra_flags_(std::move(extra_flags)) {
  dir_.WriteFile("credentials.txt", credentials);
  Start(0);
}

void Daemon::Start(uint16_t port) {
  Process::Options options;
  options.argv = {PCFS_DAEMON_PATH, absl::StrCat("--port=", port),
                  "--bind=127.0.0.1", "--verbose"};
  options.argv.insert(options.argv.end(), extra_flags_.begin(),
                      extra_flags_.end());
  options.cwd = dir_.path();
  process_ = std::make_unique<Process>(options);
  std::optional<std::string> line =
      process_->ReadStderrUntil(" (UDP", absl::Seconds(20));
  if (!line.has_value()) {
    ADD_FAILURE() << "peerconnectd did not start; stderr:\n"
                  << process_->stderr_text();
    return;
  }
  // "... listening on 127.0.0.1:PORT (UDP, ..."
  const size_t colon = line->rfind(':');
  const size_t end = line->rfind(" (UDP");
  uint32_t parsed = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(line->substr(colon + 1, end - colon - 1), &parsed)) {
    ADD_FAILURE() << "cannot read the port from: " << *line;
  }
  port_ = static_cast<uint16_t>(parsed);
}

void Daemon::Restart() { Start(port_); }

int Daemon::Stop() {
  process_->Signal(SIGTERM);
  std::optional<int> code = process_->Wait(absl::Seconds(20));
  if (!code.has_value()) {
    ADD_FAILURE() << "peerconnectd did not stop on SIGTERM";
    return -1;
  }
  return *code;
}

std::string Daemon::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

Process::Options PeerctlOptions(const std::string& server,
                                const std::string& user,
                                const std::string& password,
                                const std::vector<std::string>& args,
                                const std::string& cwd) {
  Process::Options options;
  options.argv = {PCFS_PEERCTL_PATH, "--server", server, "--user", user};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.cwd = cwd;
  options.env["PEERCTL_PASSWORD"] = password;
  // A `peerctl serve` agent of the person running the tests is no part of
  // them: point at a socket that does not exist (a test sets its own).
  options.env["PEERCTL_SOCKET"] = kNoAgentSocket;
  return options;
}

CommandResult RunDaemonCommand(const std::vector<std::string>& args,
                               const std::string& cwd, absl::Duration timeout) {
  Process::Options options;
  options.argv = {PCFS_DAEMON_PATH};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.cwd = cwd;
  return RunToCompletion(options, timeout);
}

CommandResult RunToCompletion(const Process::Options& options,
                              absl::Duration timeout) {
  Process process(options);
  process.CloseStdin();
  CommandResult result;
  std::optional<int> code = process.Wait(timeout);
  if (!code.has_value()) {
    ADD_FAILURE() << options.argv[0] << " did not finish in time";
  }
  result.exit_code = code.value_or(-1);
  result.out = process.stdout_text();
  result.err = process.stderr_text();
  return result;
}

CommandResult RunPeerctl(const Daemon& daemon, const std::string& user,
                         const std::string& password,
                         const std::vector<std::string>& args,
                         const std::string& cwd, absl::Duration timeout) {
  return RunToCompletion(
      PeerctlOptions(daemon.address(), user, password, args, cwd), timeout);
}

namespace {

sockaddr_in LoopbackAddress(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

}  // namespace

UdpSocket::UdpSocket(const std::string& ip)
    : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {
  if (!fd_) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return;
  }
  sockaddr_in address = LoopbackAddress(0);
  if (inet_pton(AF_INET, ip.c_str(), &address.sin_addr) != 1) {
    ADD_FAILURE() << "not an IPv4 address: " << ip;
    return;
  }
  socklen_t length = sizeof(address);
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address),
                    &length) != 0) {
    ADD_FAILURE() << "bind/getsockname: " << std::strerror(errno);
    return;
  }
  port_ = ntohs(address.sin_port);
}

bool UdpSocket::SendTo(uint16_t port, const std::string& datagram) {
  const sockaddr_in to = LoopbackAddress(port);
  for (int attempt = 0; attempt < 100; ++attempt) {
    ssize_t n = ::sendto(fd_.get(), datagram.data(), datagram.size(), 0,
                         reinterpret_cast<const sockaddr*>(&to), sizeof(to));
    if (n >= 0) return true;
    if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return false;
}

std::optional<std::string> UdpSocket::Receive(absl::Duration timeout,
                                              uint16_t* from_port) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    char buffer[65536];
    sockaddr_in from{};
    socklen_t length = sizeof(from);
    ssize_t n = ::recvfrom(fd_.get(), buffer, sizeof(buffer), 0,
                           reinterpret_cast<sockaddr*>(&from), &length);
    if (n >= 0) {
      if (from_port != nullptr) *from_port = ntohs(from.sin_port);
      return std::string(buffer, static_cast<size_t>(n));
    }
    // ECONNREFUSED: an ICMP error for an earlier datagram; keep waiting.
    if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED) {
      return std::nullopt;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    pollfd entry{fd_.get(), POLLIN, 0};
    ::poll(&entry, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
}

Shell::Shell(const Daemon& daemon, const std::string& user,
             const std::string& password, const std::string& cwd)
    : Shell(daemon.address(), user, password, cwd) {}

Shell::Shell(const std::string& server, const std::string& user,
             const std::string& password, const std::string& cwd,
             const std::vector<std::string>& extra_flags) {
  Process::Options options;
  options.argv = {PCFS_PEERCTL_PATH};
  options.argv.insert(options.argv.end(), extra_flags.begin(),
                      extra_flags.end());
  options.argv.insert(options.argv.end(), {"--server", server});
  options.cwd = cwd;
  options.env["PEERCTL_SOCKET"] = kNoAgentSocket;
  process_ = std::make_unique<Process>(options);
  if (!process_->ReadStdoutUntil("Username: ", absl::Seconds(20))) {
    ADD_FAILURE() << "no Username prompt; stderr: " << process_->stderr_text();
    return;
  }
  process_->Write(user + "\n");
  if (!process_->ReadStdoutUntil("Password: ", absl::Seconds(20))) {
    ADD_FAILURE() << "no Password prompt";
    return;
  }
  process_->Write(password + "\n");
  std::optional<std::string> reply =
      process_->ReadStdoutUntil("> ", absl::Seconds(20));
  logged_in_ = reply.has_value() && reply->find("failed") == std::string::npos;
}

Shell::~Shell() {
  if (!exited_ && process_ != nullptr) Exit();
}

std::string Shell::Run(const std::string& command, absl::Duration timeout) {
  process_->Write(command + "\n");
  std::optional<std::string> output = process_->ReadStdoutUntil("> ", timeout);
  if (!output.has_value()) {
    ADD_FAILURE() << "no prompt after '" << command << "'; stdout so far:\n"
                  << process_->stdout_text() << "\nstderr:\n"
                  << process_->stderr_text();
    return "";
  }
  return output->substr(0, output->size() - 2);
}

CommandResult Shell::Exit() {
  exited_ = true;
  process_->Write("xit\n");
  CommandResult result;
  result.exit_code = process_->Wait(absl::Seconds(20)).value_or(-1);
  result.out = process_->ReadStdoutRest();
  result.err = process_->stderr_text();
  return result;
}

UdpRelay::UdpRelay(uint16_t daemon_port, Rule rule)
    : daemon_port_(daemon_port), rule_(std::move(rule)) {
  thread_ = std::thread([this] { Run(); });
}

UdpRelay::~UdpRelay() { Stop(); }

std::string UdpRelay::address() const {
  return absl::StrCat("127.0.0.1:", port());
}

std::vector<UdpRelay::Datagram> UdpRelay::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  return recorded_;
}

UdpRelay::Verdict UdpRelay::Judge(Direction direction, uint64_t number,
                                  const std::string& datagram) {
  recorded_.push_back({direction, datagram});
  Verdict verdict = rule_ == nullptr ? Verdict::Forward()
                                     : rule_(direction, number, datagram);
  if (verdict.action == Verdict::Action::kDrop) ++dropped_;
  return verdict;
}

void UdpRelay::Run() {
  std::map<uint16_t, std::unique_ptr<UdpSocket>> upstream;  // by client
  uint64_t to_daemon = 0;
  uint64_t to_client = 0;
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  while (!stop_ && absl::Now() < deadline) {
    std::vector<pollfd> fds = {{front_.fd(), POLLIN, 0}};
    for (const auto& [client, socket] : upstream) {
      fds.push_back({socket->fd(), POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
    uint16_t client = 0;
    while (std::optional<std::string> datagram =
               front_.Receive(absl::ZeroDuration(), &client)) {
      std::unique_ptr<UdpSocket>& socket = upstream[client];
      if (socket == nullptr) socket = std::make_unique<UdpSocket>();
      const Verdict verdict =
          Judge(Direction::kToDaemon, ++to_daemon, *datagram);
      switch (verdict.action) {
        case Verdict::Action::kForward:
          socket->SendTo(daemon_port_, *datagram);
          break;
        case Verdict::Action::kAnswer:
          front_.SendTo(client, verdict.answer);
          break;
        case Verdict::Action::kDrop:
          break;
      }
    }
    for (const auto& [to, socket] : upstream) {
      while (std::optional<std::string> datagram =
                 socket->Receive(absl::ZeroDuration())) {
        // An answer makes no sense towards the client: only a drop counts.
        if (Judge(Direction::kToClient, ++to_client, *datagram).action !=
            Verdict::Action::kDrop) {
          front_.SendTo(to, *datagram);
        }
      }
    }
  }
}

UdpRelay::Rule DropFraction(double fraction, uint32_t seed) {
  auto generator = std::make_shared<std::mt19937>(seed);
  return
      [generator, fraction](UdpRelay::Direction, uint64_t, const std::string&) {
        std::uniform_real_distribution<double> uniform(0.0, 1.0);
        return uniform(*generator) < fraction ? UdpRelay::Verdict::Drop()
                                              : UdpRelay::Verdict::Forward();
      };
}

std::unique_ptr<ControlClient> LoggedInClient(const Daemon& daemon,
                                              const std::string& user,
                                              const std::string& password,
                                              uint16_t file_port,
                                              const KeyPin& pin) {
  ControlClient::Options options;
  options.host = "127.0.0.1";
  options.port = daemon.port();
  absl::StatusOr<std::unique_ptr<ControlClient>> client =
      ControlClient::Connect(options);
  if (!client.ok()) {
    ADD_FAILURE() << client.status();
    return nullptr;
  }
  (*client)->SetKeyPin(pin);
  if (absl::Status s = (*client)->Login(user, password, file_port); !s.ok()) {
    ADD_FAILURE() << user << ": " << s;
    return nullptr;
  }
  return *std::move(client);
}

}  // namespace pcfs::testing
