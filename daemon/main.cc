// peerconnectd: the PeerConnectFS index daemon.
//
//   peerconnectd [PORT] [--port=N] [--bind=ADDR] [--credentials=FILE]
//                [--state_dir=DIR] [--io=auto|epoll|uring] [--threads=N]
//                [--metrics=ADDRESS:PORT] [--recover] [--verbose]
//                [--redis=HOST:PORT [--redis-timeout=DURATION]
//                 [--redis-password-file=FILE [--redis-user=NAME]]]
//                [--commit-interval=DURATION]
//   peerconnectd hash-password [--iterations=N]
//   peerconnectd ping [HOST:PORT] [--timeout=DURATION]
//   peerconnectd check-config [flags]
//
// hash-password reads a password (twice, without echo, from a terminal;
// else the first line of stdin) and prints its SCRAM-SHA-256 verifier, the
// SECRET to put in credentials.txt instead of the plain password. ping asks
// a running daemon for a sign of life (no login needed). check-config loads
// what a start would (flags, credentials, state) and says whether it is good.
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/auth/scram.h"
#include "core/base/cli.h"
#include "core/base/log.h"
#include "core/base/names.h"
#include "core/io/net.h"
#include "core/io/reactor.h"
#include "daemon/ping.h"
#include "daemon/server.h"

ABSL_FLAG(int, port, 50000, "UDP port to serve on (a positional PORT wins)");
ABSL_FLAG(std::string, bind,
          "::", "address to bind; '::' serves IPv6 and IPv4");
ABSL_FLAG(std::string, credentials, "credentials.txt",
          "credentials file: lines 'USER SECRET'");
// Empty by default, so that --redis can tell it was given (it has no use
// there); empty means peerconnect-state.
ABSL_FLAG(std::string, state_dir, "",
          "folder for the durable publication state (default "
          "peerconnect-state; unused with --redis)");
ABSL_FLAG(std::string, io, "auto",
          "I/O backend: auto (io_uring where it works, else epoll), uring "
          "or epoll");
ABSL_FLAG(int, threads, 0,
          "reactor threads, each with its own socket (0: one per core)");
ABSL_FLAG(bool, verbose, false,
          "log every request and reply (at debug priority)");
ABSL_FLAG(std::string, metrics, "",
          "serve Prometheus metrics at http://ADDRESS:PORT/metrics "
          "(e.g. 127.0.0.1:9650); empty: off");
ABSL_FLAG(bool, recover, false,
          "start on damaged state: keep every publication record that "
          "verifies, log what is dropped, rename the damaged files aside "
          "(nothing is deleted) and write a fresh snapshot");
ABSL_FLAG(std::string, redis, "",
          "cluster mode: the Redis (HOST:PORT) that the daemons of one "
          "cluster share; publications live there and the state folder is "
          "unused (--state-dir and --recover are refused with it); empty: "
          "standalone");
ABSL_FLAG(absl::Duration, redis_timeout, absl::Seconds(1),
          "cluster mode: the longest one Redis command may take before the "
          "store counts as unreachable");
ABSL_FLAG(std::string, redis_password_file, "",
          "cluster mode: a file whose one line is the password to log in to "
          "Redis with (AUTH); empty: no AUTH");
ABSL_FLAG(std::string, redis_user, "",
          "cluster mode: the Redis ACL user to log in as (needs "
          "--redis-password-file); empty: Redis's default user");
ABSL_FLAG(absl::Duration, commit_interval, pcfs::kDefaultCommitInterval,
          "group commit: at least this long between the starts of two "
          "journal batches while pub/unp keep coming (0: no wait); a change "
          "that finds the journal idle is written at once");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(2),
          "ping: how long to wait for the daemon's answer");
ABSL_FLAG(uint32_t, iterations, pcfs::kScramDefaultIterations,
          "hash-password: PBKDF2 iteration count of the verifier");

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFailure = 1;

#ifndef PCFS_VERSION
#error "PCFS_VERSION must be defined by the build"
#endif

constexpr char kHelp[] =
    "usage: peerconnectd [PORT] [flags]     serve (default port 50000)\n"
    "       peerconnectd hash-password [--iterations=N]\n"
    "       peerconnectd ping [HOST:PORT] [--timeout=2s]\n"
    "       peerconnectd check-config [flags]\n"
    "flags:\n"
    "  --port=N               UDP port (a positional PORT wins)\n"
    "  --bind=ADDR            address to bind (default '::', IPv6 and IPv4)\n"
    "  --credentials=FILE     lines 'USER SECRET' (default credentials.txt)\n"
    "  --state-dir=DIR        durable publication state "
    "(default peerconnect-state)\n"
    "  --io=auto|epoll|uring  I/O backend\n"
    "  --threads=N            reactor threads (0: one per core)\n"
    "  --metrics=ADDR:PORT    Prometheus metrics over HTTP (default off)\n"
    "  --recover              start on damaged state: keep what verifies,\n"
    "                         log what is dropped, move damaged files aside\n"
    "  --verbose              log every request and reply\n"
    "  --redis=HOST:PORT      cluster mode: the Redis the daemons of one\n"
    "                         cluster share; publications live there, the\n"
    "                         state folder is unused (--state-dir and\n"
    "                         --recover are refused with it)\n"
    "  --redis-timeout=1s     the longest one Redis command may take\n"
    "  --redis-password-file=FILE\n"
    "                         log in to Redis (AUTH) with the password on\n"
    "                         FILE's one line (default: no AUTH)\n"
    "  --redis-user=NAME      the Redis ACL user to log in as (default:\n"
    "                         Redis's default user)\n"
    "  --commit-interval=2ms  group commit: least time between two journal\n"
    "                         batches while pub/unp keep coming (0: none)\n"
    "  --flagfile=FILE        more flags, one --flag=value a line\n"
    "  --fromenv=NAME,...     flags from $FLAGS_NAME (--tryfromenv: those\n"
    "                         that are set)\n"
    "  -h, --help             this help;  --version  the version\n"
    "signals: SIGHUP reloads the credentials; SIGTERM stops. "
    "See peerconnectd(8).";

// -h, --help and --version are answered before absl sees them (absl's own
// exit 1 and print a build line).
std::optional<int> AnswerHelpOrVersion(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      std::printf("%s\n", kHelp);
      return 0;
    }
    if (arg == "--version" || arg == "-version") {
      std::printf("peerconnectd %s\n", PCFS_VERSION);
      return 0;
    }
  }
  return std::nullopt;
}

int Usage(const std::string& message) {
  // Under systemd the journal files the message at err, the usage below it
  // at the unit's default, so `journalctl -p err` shows why a start or a
  // reload (check-config) was refused.
  std::fprintf(stderr, "%speerconnectd: %s\n%s\n",
               pcfs::StderrIsJournal() ? "<3>" : "", message.c_str(),
               "usage: peerconnectd [PORT] [--port=N] [--bind=ADDR] "
               "[--credentials=FILE] [--state_dir=DIR] "
               "[--io=auto|epoll|uring] [--threads=N] "
               "[--metrics=ADDRESS:PORT] [--recover] [--verbose] "
               "[--redis=HOST:PORT] [--redis-timeout=DURATION] "
               "[--redis-password-file=FILE] [--redis-user=NAME] "
               "[--commit-interval=DURATION]\n"
               "       peerconnectd hash-password [--iterations=N]\n"
               "       peerconnectd ping [HOST:PORT] [--timeout=2s]\n"
               "       peerconnectd check-config [flags]");
  return kExitUsage;
}

// ---- hash-password

// Longer lines are refused rather than read without bound; anything past
// kMaxPasswordBytes is refused by ValidatePassword with its length.
constexpr size_t kMaxPasswordLineBytes = size_t{64} * 1024;

// Wipes a string that held a password.
void Cleanse(std::string& secret) {
  OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

// Turns off echo on a terminal for its lifetime.
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    active_ = ::tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (active_) ::tcsetattr(fd_, TCSAFLUSH, &saved_);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  const int fd_;
  termios saved_{};
  bool active_ = false;
};

// One line of stdin without its line ending ("\n" or "\r\n"); the rest of
// the input at its end. Errors: InvalidArgument for an overlong line.
absl::StatusOr<std::string> ReadLine() {
  std::string line;
  int c;
  while ((c = std::getc(stdin)) != EOF && c != '\n') {
    if (line.size() == kMaxPasswordLineBytes) {
      Cleanse(line);
      return absl::InvalidArgumentError(absl::StrCat(
          "password line is longer than ", kMaxPasswordLineBytes, " bytes"));
    }
    line.push_back(static_cast<char>(c));
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// Prompts on stderr and reads a line from the terminal without echo.
absl::StatusOr<std::string> PromptWithoutEcho(const char* prompt) {
  std::fputs(prompt, stderr);
  std::fflush(stderr);
  absl::StatusOr<std::string> line;
  {
    EchoOff quiet(STDIN_FILENO);
    line = ReadLine();
  }
  std::fputc('\n', stderr);  // the Enter key was not echoed
  return line;
}

// The password: typed twice on a terminal, else the first line of stdin.
absl::StatusOr<std::string> ReadPassword() {
  if (!::isatty(STDIN_FILENO)) return ReadLine();
  absl::StatusOr<std::string> first = PromptWithoutEcho("Password: ");
  if (!first.ok()) return first;
  absl::StatusOr<std::string> again = PromptWithoutEcho("Again: ");
  if (!again.ok()) {
    Cleanse(*first);
    return again;
  }
  const bool same = *first == *again;
  Cleanse(*again);
  if (!same) {
    Cleanse(*first);
    return absl::InvalidArgumentError("the two passwords differ");
  }
  return first;
}

int HashPasswordError(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "peerconnectd: hash-password: %s\n",
               std::string(status.message()).c_str());
  return exit_code;
}

// `peerconnectd hash-password`: prints the verifier of the password read.
int HashPassword() {
  absl::StatusOr<std::string> password = ReadPassword();
  if (!password.ok()) return HashPasswordError(password.status(), kExitUsage);
  if (absl::Status s = pcfs::ValidatePassword(*password); !s.ok()) {
    Cleanse(*password);
    return HashPasswordError(s, kExitUsage);
  }
  std::vector<uint8_t> salt(pcfs::kScramSaltBytes);
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
    Cleanse(*password);
    return HashPasswordError(absl::InternalError("RAND_bytes failed"),
                             kExitFailure);
  }
  absl::StatusOr<pcfs::ScramVerifier> verifier =
      pcfs::MakeVerifier(*password, salt, absl::GetFlag(FLAGS_iterations));
  Cleanse(*password);
  if (!verifier.ok()) {
    return HashPasswordError(
        verifier.status(),
        absl::IsInvalidArgument(verifier.status()) ? kExitUsage : kExitFailure);
  }
  std::printf("%s\n", pcfs::FormatVerifier(*verifier).c_str());
  if (std::fflush(stdout) != 0) {
    return HashPasswordError(absl::InternalError("cannot write stdout"),
                             kExitFailure);
  }
  return 0;
}

// ---- ping

// `peerconnectd ping [HOST:PORT]`: 0 when the daemon answers, 1 if not.
int Ping(const std::vector<std::string>& args) {
  std::string host = "localhost";
  int port = absl::GetFlag(FLAGS_port);
  if (args.size() > 2) return Usage("ping takes at most one HOST:PORT");
  if (args.size() == 2) {
    absl::StatusOr<std::pair<std::string, uint16_t>> host_port =
        pcfs::ParseHostPort(args[1]);
    if (!host_port.ok())
      return Usage(std::string(host_port.status().message()));
    host = host_port->first;
    port = host_port->second;
  }
  if (port <= 0 || port > 65535) return Usage("--port must be 1..65535");
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout <= absl::ZeroDuration()) return Usage("--timeout must be > 0");
  absl::StatusOr<pcfs::PingResult> result =
      pcfs::PingDaemon(host, static_cast<uint16_t>(port), timeout);
  if (!result.ok()) {
    std::fprintf(stderr, "peerconnectd: ping: %s\n",
                 std::string(result.status().message()).c_str());
    return absl::IsInvalidArgument(result.status()) ? kExitUsage : kExitFailure;
  }
  std::printf("peerconnectd at %s answered in %s\n",
              result->answered_by.ToString().c_str(),
              absl::FormatDuration(result->round_trip).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (std::optional<int> code = AnswerHelpOrVersion(argc, argv)) return *code;
  // Debian builds abseil without NDEBUG, so each absl::Mutex::Lock would
  // also run abseil's deadlock detector, which takes one process-wide
  // spinlock: a global lock on every request (4% of a GET's CPU in
  // bench/handler_bench on one thread, more with reactors contending for
  // it). Lock order is checked by the TSan stage and
  // clang's -Wthread-safety instead. Before any thread starts.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "the PeerConnectFS index daemon. Usage: peerconnectd [PORT] [flags], "
      "peerconnectd hash-password [--iterations=N], "
      "peerconnectd ping [HOST:PORT] [--timeout=2s], or "
      "peerconnectd check-config [flags] (checks the flags, the credentials "
      "file and the state folder without starting)");
  // --help lists the flags of this file (absl's default looks for a file
  // named after the program).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "daemon/main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  // Dashes are accepted in flag names (--state-dir), and an unknown flag is
  // a usage error (exit 2), not absl's exit 1.
  absl::StatusOr<std::vector<std::string>> args =
      pcfs::ParseCommandLineStrictly(argc, argv);
  if (!args.ok()) return Usage(std::string(args.status().message()));
  if (!args->empty() && (*args)[0] == "hash-password") {
    if (args->size() > 1) return Usage("hash-password takes no argument");
    return HashPassword();
  }
  if (!args->empty() && (*args)[0] == "ping") return Ping(*args);
  const bool check_only = !args->empty() && (*args)[0] == "check-config";
  if (check_only) args->erase(args->begin());
  pcfs::ServerOptions options;
  int port = absl::GetFlag(FLAGS_port);
  if (args->size() > 1) return Usage("too many arguments");
  if (args->size() == 1) {
    absl::StatusOr<uint16_t> parsed = pcfs::ParsePort((*args)[0]);
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
    port = *parsed;
  }
  if (port < 0 || port > 65535) return Usage("--port must be 0..65535");
  options.port = static_cast<uint16_t>(port);
  options.bind = absl::GetFlag(FLAGS_bind);
  options.credentials_path = absl::GetFlag(FLAGS_credentials);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  const bool state_dir_given = !options.state_dir.empty();
  if (!state_dir_given) options.state_dir = "peerconnect-state";
  options.io = absl::GetFlag(FLAGS_io);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.verbose = absl::GetFlag(FLAGS_verbose);
  options.metrics = absl::GetFlag(FLAGS_metrics);
  options.recover = absl::GetFlag(FLAGS_recover);
  options.redis = absl::GetFlag(FLAGS_redis);
  options.redis_timeout = absl::GetFlag(FLAGS_redis_timeout);
  options.redis_password_file = absl::GetFlag(FLAGS_redis_password_file);
  options.redis_user = absl::GetFlag(FLAGS_redis_user);
  options.commit_interval = absl::GetFlag(FLAGS_commit_interval);
  if (!options.redis.empty() && state_dir_given) {
    return Usage(
        "--state-dir has no use with --redis: publications live in Redis");
  }
  // Every flag that needs no file to check (an unknown --io, an address
  // that does not parse, ...) is a usage error, as a value that does not
  // parse as its type already is.
  if (absl::Status s = pcfs::CheckOptions(options); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  if (check_only) {
    absl::StatusOr<std::string> summary = pcfs::CheckConfiguration(options);
    if (!summary.ok()) {
      // Under systemd (ExecReload) the journal files this at err, so
      // `journalctl -p err` shows why a reload failed.
      std::fprintf(stderr, "%speerconnectd: check-config: %s\n",
                   pcfs::StderrIsJournal() ? "<3>" : "",
                   std::string(summary.status().message()).c_str());
      return kExitFailure;
    }
    std::printf("peerconnectd: configuration is good: %s\n", summary->c_str());
    return 0;
  }

  ::signal(SIGPIPE, SIG_IGN);
  if (absl::Status s = pcfs::BlockSignals({SIGINT, SIGTERM, SIGHUP}); !s.ok()) {
    pcfs::LogError("peerconnectd: ", s.ToString());
    return kExitFailure;
  }
  absl::StatusOr<std::unique_ptr<pcfs::Server>> server =
      pcfs::Server::Create(options);
  if (!server.ok()) {
    pcfs::LogError("peerconnectd: cannot start: ", server.status().message());
    return kExitFailure;
  }
  // From here on a slow stderr reader must not stall a reactor thread.
  pcfs::StartAsyncLogging();
  absl::Status status = (*server)->Run();
  if (!status.ok()) pcfs::LogError("peerconnectd: ", status.message());
  pcfs::StopAsyncLogging();
  return status.ok() ? 0 : kExitFailure;
}
