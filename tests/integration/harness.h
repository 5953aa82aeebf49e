// Test harness for integration tests: real peerconnectd and peerctl
// processes on loopback, in temporary folders. Every wait is bounded.
//
// Not thread-safe: each test drives its processes from its own thread.
#ifndef PCFS_TESTS_INTEGRATION_HARNESS_H_
#define PCFS_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "peerctl/client.h"
#include "peerctl/tls.h"

namespace pcfs::testing {

// A temporary folder, removed with its contents when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name, after creating the subfolder `name`.
  std::string MakeSubdir(const std::string& name) const;
  // Writes `contents` to path()/name.
  void WriteFile(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

// The state folder (XDG_STATE_HOME) every child process gets unless its
// options say otherwise: one per test process, removed at its exit.
const std::string& SharedStateHome();

// Reads a whole file (empty string if missing).
std::string ReadFileOrEmpty(const std::string& path);
bool FileExists(const std::string& path);
// The names in a folder (not "." or ".."), sorted; empty if it is missing.
std::vector<std::string> ListFolder(const std::string& path);
// Writes `size` pseudo-random bytes (seeded) to `path`.
void WriteRandomFile(const std::string& path, size_t size, uint32_t seed);
// A counter of process `pid`'s I/O from /proc/PID/io: "rchar" (bytes
// read) or "wchar" (bytes written, sendfile(2) and sockets included);
// nullopt if the process or the counter is not there.
std::optional<uint64_t> IoCounterOf(pid_t pid, const std::string& counter);

// A child process with pipes on stdin, stdout and stderr.
class Process {
 public:
  struct Options {
    std::vector<std::string> argv;
    std::string cwd;
    std::map<std::string, std::string> env;  // added to the environment
  };
  explicit Process(const Options& options);
  // Kills (SIGKILL) and reaps the child if it is still running.
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }

  void Write(const std::string& text);
  void CloseStdin();

  // Waits until stdout (or stderr) holds `text` after the read position
  // and returns everything up to and including it, moving the position past
  // it. nullopt on timeout or end of output.
  std::optional<std::string> ReadStdoutUntil(const std::string& text,
                                             absl::Duration timeout);
  std::optional<std::string> ReadStderrUntil(const std::string& text,
                                             absl::Duration timeout);

  // What stdout held after the read position, moving the position to its
  // end: after Wait, the rest of the output.
  std::string ReadStdoutRest();

  // Reads whatever output is available now, without waiting. A test that
  // makes a child write a lot (a verbose daemon under a flood) calls it now
  // and then: a child whose pipe is full blocks on its next write.
  void DrainOutput() { Pump(absl::ZeroDuration()); }

  // Sends a signal.
  void Signal(int signo);
  // Waits for the exit; returns the exit code (128+signal if killed), or
  // nullopt on timeout. Drains the pipes meanwhile.
  std::optional<int> Wait(absl::Duration timeout);

  // Everything read so far.
  const std::string& stdout_text() const { return out_; }
  const std::string& stderr_text() const { return err_; }

 private:
  // Reads whatever is available into the buffers, waiting at most `wait`.
  void Pump(absl::Duration wait);
  std::optional<std::string> ReadUntil(std::string& buffer, size_t& position,
                                       const std::string& text,
                                       absl::Duration timeout);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  UniqueFd stdin_;
  UniqueFd stdout_;
  UniqueFd stderr_;
  std::string out_;
  std::string err_;
  size_t out_position_ = 0;
  size_t err_position_ = 0;
};

// The result of a command run to completion.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// A running peerconnectd on an ephemeral loopback port, in its own folder
// with the classic users (hans/hanspass, vader/vaderpass, yoda/yodapass)
// unless `credentials` says otherwise.
class Daemon {
 public:
  explicit Daemon(const std::string& credentials =
                      "hans hanspass\nvader vaderpass\nyoda yodapass\n",
                  std::vector<std::string> extra_flags = {});
  // Starts again on the same port and state folder (after Stop()).
  void Restart();
  // SIGTERM, and waits for a clean exit; returns its exit code.
  int Stop();

  uint16_t port() const { return port_; }
  std::string address() const;  // "127.0.0.1:PORT"
  const std::string& folder() const { return dir_.path(); }
  Process& process() { return *process_; }

 private:
  void Start(uint16_t port);

  TempDir dir_;
  std::vector<std::string> extra_flags_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> process_;
};

// Runs `peerconnectd ARGS...` in `cwd` to completion (a subcommand, or a
// start that is expected to fail), waiting at most `timeout`.
CommandResult RunDaemonCommand(const std::vector<std::string>& args,
                               const std::string& cwd,
                               absl::Duration timeout = absl::Seconds(20));

// Runs a one-shot `peerctl --server ADDR --user USER COMMAND ARGS...` with
// the password in PEERCTL_PASSWORD, in `cwd`, waiting at most `timeout`.
CommandResult RunPeerctl(const Daemon& daemon, const std::string& user,
                         const std::string& password,
                         const std::vector<std::string>& args,
                         const std::string& cwd,
                         absl::Duration timeout = absl::Seconds(60));

// peerctl's own control client, logged in to `daemon` as `user` on
// 127.0.0.1, registering `file_port` (0: it serves nothing) and the key
// `pin` (zero: plain HTTP). A failed connect or login is a test failure
// and gives null.
std::unique_ptr<ControlClient> LoggedInClient(const Daemon& daemon,
                                              const std::string& user,
                                              const std::string& password,
                                              uint16_t file_port = 0,
                                              const KeyPin& pin = KeyPin{});

// An interactive peerctl shell, logged in as `user` in folder `cwd`.
class Shell {
 public:
  // Starts `peerctl --server ADDR` in `cwd` and logs in; ASSERTs (via
  // gtest ADD_FAILURE) if the prompts do not appear.
  Shell(const Daemon& daemon, const std::string& user,
        const std::string& password, const std::string& cwd);
  // The same through `server` ("HOST:PORT", e.g. a UdpRelay's address),
  // with `extra_flags` (e.g. "--plaintext-transfers") before the rest.
  Shell(const std::string& server, const std::string& user,
        const std::string& password, const std::string& cwd,
        const std::vector<std::string>& extra_flags = {});
  // Sends "xit" if still running and waits for the exit.
  ~Shell();

  // Sends a command and returns what it printed before the next prompt
  // (without the prompt).
  std::string Run(const std::string& command,
                  absl::Duration timeout = absl::Seconds(60));
  // Sends "xit"; returns what it printed and its exit code.
  CommandResult Exit();

  bool logged_in() const { return logged_in_; }
  Process& process() { return *process_; }

 private:
  std::unique_ptr<Process> process_;
  bool logged_in_ = false;
  bool exited_ = false;
};

// The agent socket the harness's peerctl processes are given (it never
// exists), so that an agent the tester runs does not take their commands.
inline constexpr char kNoAgentSocket[] = "/nonexistent/pcfs-test/peerctl.sock";

// The options of a one-shot `peerctl --server SERVER --user USER ARGS...`
// with the password in PEERCTL_PASSWORD, in `cwd`, for a test that starts
// several at once or runs one against something other than a Daemon.
Process::Options PeerctlOptions(const std::string& server,
                                const std::string& user,
                                const std::string& password,
                                const std::vector<std::string>& args,
                                const std::string& cwd);

// Starts a process with its stdin closed and waits at most `timeout` for its
// exit (an ADD_FAILURE if it does not come; the child is then killed).
CommandResult RunToCompletion(const Process::Options& options,
                              absl::Duration timeout = absl::Seconds(60));

// A UDP socket bound to 127.0.0.1 (or another loopback IPv4 address:
// 127.0.0.2 is a second source) on an ephemeral port.
class UdpSocket {
 public:
  explicit UdpSocket(const std::string& ip = "127.0.0.1");
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  uint16_t port() const { return port_; }
  int fd() const { return fd_.get(); }

  // Sends one datagram to 127.0.0.1:`port`; false if send(2) failed.
  bool SendTo(uint16_t port, const std::string& datagram);
  // The next datagram, waiting at most `timeout`; nullopt if none came.
  // `from_port`, if given, receives the sender's port.
  std::optional<std::string> Receive(absl::Duration timeout,
                                     uint16_t* from_port = nullptr);

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
};

// Forwards datagrams between clients and a daemon on loopback, records each
// one, and lets a rule drop a datagram or answer one on the daemon's behalf
// (an on-path loss or forgery). Each client endpoint gets its own upstream
// socket, so the daemon sees one endpoint per client, as it would without
// the relay. One thread runs it until Stop() or destruction (two minutes at
// most).
//
// Thread-safety: the rule runs on the relay thread only; dropped() may be
// called from any thread; Stop() from the owning thread.
class UdpRelay {
 public:
  enum class Direction { kToDaemon, kToClient };
  struct Datagram {
    Direction direction;
    std::string bytes;
  };
  // What the rule decides for one datagram.
  struct Verdict {
    enum class Action { kForward, kDrop, kAnswer };
    Action action = Action::kForward;
    std::string answer;  // kAnswer: sent back to the client instead

    static Verdict Forward() { return {}; }
    static Verdict Drop() { return {Action::kDrop, ""}; }
    // For a datagram on its way to the daemon only.
    static Verdict Answer(std::string reply) {
      return {Action::kAnswer, std::move(reply)};
    }
  };
  // Given the direction, the datagram's number in that direction (from 1)
  // and the datagram, decides its fate.
  using Rule = std::function<Verdict(Direction, uint64_t, const std::string&)>;

  // Without a rule, forwards everything.
  explicit UdpRelay(uint16_t daemon_port, Rule rule = nullptr);
  ~UdpRelay();
  UdpRelay(const UdpRelay&) = delete;
  UdpRelay& operator=(const UdpRelay&) = delete;

  uint16_t port() const { return front_.port(); }
  std::string address() const;
  // Datagrams the rule dropped so far.
  uint64_t dropped() const { return dropped_; }

  // Stops the relay; returns every datagram it received, in order (dropped
  // and answered ones included; the rule's answers are not recorded).
  std::vector<Datagram> Stop();

 private:
  void Run();
  // Records the datagram and applies the rule to it.
  Verdict Judge(Direction direction, uint64_t number,
                const std::string& datagram);

  const uint16_t daemon_port_;
  Rule rule_;
  UdpSocket front_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> dropped_{0};
  std::vector<Datagram> recorded_;  // the relay thread's until joined
  std::thread thread_;
};

// A UdpRelay rule that drops each datagram, either way, with probability
// `fraction`, drawn from a generator seeded with `seed` (the same seed, the
// same drops for the same sequence of datagrams): a lossy network.
UdpRelay::Rule DropFraction(double fraction, uint32_t seed);

}  // namespace pcfs::testing

#endif  // PCFS_TESTS_INTEGRATION_HARNESS_H_
