// peerload: PeerConnectFS's load generator. N simulated peers, each with its
// own session, user and source port, log in to one peerconnectd, heartbeat
// every 2 s and send a mix of requests, for a bounded time; peerload then
// reports responses/s, latency percentiles, errors, timeouts and false
// session expiries. See driver.h for what a run does and counts.
//
//   peerload --server HOST:PORT --credentials FILE [--duration 10s]
//            [--peers N] [--mix heartbeat=1,get=1,sch=1] [--rate R]
//            [--compare-raw] [--json] [--cpu LIST] [--echo-cpu LIST]
//            [--processes K]
//   peerload --raw --server HOST:PORT [--peers N] ...   (against udp_echo)
//   peerload --make-credentials N [--iterations 16] > FILE
//
// Flags may be spelled with dashes or underscores (--compare-raw and
// --compare_raw are the same flag).
//
// Users come from the credentials file, in file order: peer i is the i-th
// user. A plain-password line gives the password; a verifier line cannot, so
// peerload uses "pw-<user>" for it. That is the convention of
// --make-credentials, which writes users load0..load<N-1> with verifiers of
// 16 PBKDF2 iterations for the passwords pw-load0.., so that 100,000 logins
// cost neither side 100,000 PBKDF2s of 4096 iterations.
//
// Example (the daemon and peerload on one machine):
//   peerload --make-credentials 10000 > /tmp/load-creds.txt
//   peerconnectd --port 50000 --credentials /tmp/load-creds.txt
//                --state_dir /tmp/load-state &          (one line)
//   peerload --server 127.0.0.1:50000 --credentials /tmp/load-creds.txt
//            --peers 10000 --duration 10s --compare-raw --json
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "bench/peerload/driver.h"
#include "bench/peerload/echo_process.h"
#include "bench/peerload/options.h"
#include "bench/peerload/sockets.h"
#include "bench/peerload/stats.h"
#include "bench/peerload/users.h"
#include "bench/peerload/workers.h"
#include "core/base/cli.h"
#include "core/base/log.h"
#include "core/io/net.h"

ABSL_FLAG(std::string, server, "", "HOST:PORT of peerconnectd (or udp_echo)");
ABSL_FLAG(std::string, credentials, "", "credentials file: the users");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "measurement window (at most 600s)");
ABSL_FLAG(absl::Duration, ramp, absl::Seconds(120),
          "longest login phase before measuring anyway (at most 600s)");
ABSL_FLAG(int, peers, 0,
          "simulated peers (0: every user of the file; raw mode: 100)");
ABSL_FLAG(std::string, mix, "heartbeat=1,get=1,sch=1",
          "request mix weights: heartbeat, get, sch, lap, lpf, pub, unp; or "
          "none");
ABSL_FLAG(double, rate, 0,
          "mix requests/s over all peers (0: closed loop, unbounded)");
ABSL_FLAG(double, login_rate, 2000, "initial logins started per second");
ABSL_FLAG(int, publishers, 100, "peers that publish names at start");
ABSL_FLAG(int, names_per_publisher, 3, "names each publisher publishes");
ABSL_FLAG(bool, raw, false, "drive a udp_echo server instead of the daemon");
ABSL_FLAG(bool, compare_raw, false,
          "after the run, run the raw pattern against a udp_echo child");
ABSL_FLAG(bool, json, false, "print one JSON object instead of the report");
ABSL_FLAG(std::string, echo_binary, "",
          "udp_echo to start (default: next to peerload)");
ABSL_FLAG(std::string, echo_cpu, "", "pin udp_echo to these CPUs");
ABSL_FLAG(int, echo_threads, 0, "udp_echo threads (0: one per core)");
ABSL_FLAG(std::string, echo_cgroup, "",
          "move udp_echo into this cgroup directory (as the daemon's)");
ABSL_FLAG(std::string, cpu, "", "pin peerload to these CPUs");
ABSL_FLAG(bool, spread_sources, true,
          "spread peers over 127.x.y.z source addresses (IPv4 loopback)");
ABSL_FLAG(int, peers_per_source, 100, "peers per loopback source address");
ABSL_FLAG(int, processes, 0,
          "peerload processes to split the peers over (0: as few as the "
          "file descriptor limit allows; 1: this process alone)");
ABSL_FLAG(int, make_credentials, 0,
          "print N load users' credential lines and exit");
ABSL_FLAG(uint32_t, iterations, 16,
          "--make-credentials: PBKDF2 iterations of the verifiers");

namespace {

using pcfs::peerload::LoadOptions;
using pcfs::peerload::LoadStats;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr absl::Duration kMaxDuration = absl::Seconds(600);
using pcfs::peerload::kSpareDescriptors;

constexpr char kUsage[] =
    R"(peerload: PeerConnectFS's load generator.

  peerload --server HOST:PORT --credentials FILE [--duration 10s] [--peers N]
           [--mix heartbeat=1,get=1,sch=1] [--rate R] [--compare-raw] [--json]
  peerload --raw --server HOST:PORT [--peers N] [--duration 10s] ...
  peerload --make-credentials N [--iterations 16] > FILE

N simulated peers (each its own UDP socket, session and user) log in at
--login-rate per second, heartbeat every 2 s, and once all are logged in send
the mix for --duration: closed loop (each peer its next request when the
previous reply arrives) or, with --rate R, R requests/s spread evenly. Lost
requests are retransmitted like peerctl's (200 ms doubling, 5 tries). A login
that is refused (rate limited, say) or unanswered is tried again after 1 s,
doubling per failure in a row up to 8 s, with jitter. The report gives
responses/s, p50/p99/p999 latency, errors, timeouts and false expiries (the
daemon forgot a session that heartbeated on schedule).

Users: the credentials file's, in file order. A verifier line's password is
taken to be "pw-<user>", as --make-credentials writes them: N users
load0..load<N-1>, passwords pw-load0.., verifiers of 16 PBKDF2 iterations
(cheap logins for large N). --peers must not exceed the users.

Flags (dashes or underscores):
  --server HOST:PORT      the daemon (or udp_echo with --raw)
  --credentials FILE      the users (the daemon's file)
  --duration D            measurement window, e.g. 10s, 60s (max 600s)
  --peers N               simulated peers (default: every user; raw: 100)
  --mix K=W,...           weights of heartbeat, get, sch, lap, lpf, pub
                          (a new name of the peer's own), unp (its oldest
                          own name still published); "none": mandatory
                          heartbeats only (default heartbeat=1,get=1,sch=1)
  --rate R                mix requests/s in all (default 0: closed loop)
  --ramp D                measure anyway after this login phase (120s)
  --login-rate R          initial logins per second (2000)
  --publishers N          peers that publish names for get/sch (100)
  --names-per-publisher N (3)
  --compare-raw           then run the same pattern against a udp_echo child
                          (each request sealed and its echo opened, as with
                          the daemon, so peerload's own work is the same)
                          and report both, with baseline_responses_per_s and
                          ratio (the daemon must run on this machine)
  --raw                   drive an existing udp_echo at --server
  --echo-binary PATH      udp_echo to start (default: next to peerload)
  --echo-cpu LIST         pin udp_echo (e.g. 1 or 0,1; default: unpinned)
  --echo-threads N        udp_echo threads (default: one per core)
  --echo-cgroup DIR       move udp_echo into the cgroup DIR (v1 or v2; its
                          cgroup.procs must be writable), so that the echo
                          gets the CPU share the daemon had
  --cpu LIST              pin peerload itself
  --processes K           split the peers over K worker processes, each
                          driving a block of them and opening its window
                          with the others; their figures are merged into one
                          report (default 0: one process if the peers fit
                          its hard file descriptor limit, else the fewest
                          that do; RLIMIT_NOFILE is per process)
  --json                  print one line of JSON instead of the report
  --spread-sources        on an IPv4 loopback server, bind peers to
                          127.1.x.y addresses, --peers-per-source (100) each:
                          the daemon rate-limits LOGINs per source address
                          (default true)
  --make-credentials N    print N load users' lines and exit
  --iterations N          their PBKDF2 iterations (16)
)";

int Usage(const std::string& message) {
  std::fprintf(stderr, "peerload: %s\n(peerload --help for usage)\n",
               message.c_str());
  return kExitUsage;
}

int Failure(const std::string& message) {
  pcfs::Log("peerload: ", message);
  return kExitFailure;
}

absl::StatusOr<LoadOptions> OptionsFromFlags() {
  LoadOptions o;
  const std::string server = absl::GetFlag(FLAGS_server);
  if (server.empty()) {
    return absl::InvalidArgumentError("--server HOST:PORT is required");
  }
  absl::StatusOr<std::pair<std::string, uint16_t>> host_port =
      pcfs::ParseHostPort(server);
  if (!host_port.ok()) return host_port.status();
  o.host = host_port->first;
  o.port = host_port->second;
  o.raw = absl::GetFlag(FLAGS_raw);
  o.duration = absl::GetFlag(FLAGS_duration);
  o.ramp = absl::GetFlag(FLAGS_ramp);
  if (o.duration <= absl::ZeroDuration() || o.duration > kMaxDuration) {
    return absl::InvalidArgumentError("--duration must be in (0, 600s]");
  }
  if (o.ramp <= absl::ZeroDuration() || o.ramp > kMaxDuration) {
    return absl::InvalidArgumentError("--ramp must be in (0, 600s]");
  }
  absl::StatusOr<pcfs::peerload::Mix> mix =
      pcfs::peerload::ParseMix(absl::GetFlag(FLAGS_mix));
  if (!mix.ok()) return mix.status();
  o.mix = *mix;
  o.rate = absl::GetFlag(FLAGS_rate);
  if (!(o.rate >= 0)) return absl::InvalidArgumentError("--rate must be >= 0");
  o.login_rate = absl::GetFlag(FLAGS_login_rate);
  if (!(o.login_rate > 0)) {
    return absl::InvalidArgumentError("--login_rate must be > 0");
  }
  o.publishers = absl::GetFlag(FLAGS_publishers);
  o.names_per_publisher = absl::GetFlag(FLAGS_names_per_publisher);
  if (o.publishers < 0 || o.names_per_publisher < 0 ||
      o.names_per_publisher > 100) {
    return absl::InvalidArgumentError(
        "--publishers must be >= 0 and --names_per_publisher 0..100");
  }
  o.spread_sources = absl::GetFlag(FLAGS_spread_sources);
  o.peers_per_source = absl::GetFlag(FLAGS_peers_per_source);
  if (o.peers_per_source < 1) {
    return absl::InvalidArgumentError("--peers_per_source must be >= 1");
  }
  o.peers = absl::GetFlag(FLAGS_peers);
  if (o.peers < 0) return absl::InvalidArgumentError("--peers must be >= 0");
  return o;
}

// One run of the driver against `server`, in this process or split over
// `processes` workers.
absl::StatusOr<LoadStats> RunOnce(const LoadOptions& options,
                                  std::vector<pcfs::peerload::LoadUser> users,
                                  int processes) {
  absl::StatusOr<pcfs::SocketAddress> server =
      pcfs::peerload::ResolveServer(options.host, options.port);
  if (!server.ok()) return server.status();
  if (processes > 1) {
    return pcfs::peerload::RunInWorkers(options, *server, users, processes);
  }
  if (absl::Status s = pcfs::peerload::RaiseFileLimit(
          static_cast<uint64_t>(options.peers) + kSpareDescriptors);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::unique_ptr<pcfs::peerload::LoadDriver>> driver =
      pcfs::peerload::LoadDriver::Create(options, *server, std::move(users));
  if (!driver.ok()) return driver.status();
  return (*driver)->Run();
}

// --compare-raw: the same pattern against a udp_echo child.
absl::StatusOr<LoadStats> RunBaseline(const LoadOptions& real,
                                      const std::string& original_cpus,
                                      int processes) {
  pcfs::peerload::EchoProcess::Options echo;
  echo.binary = absl::GetFlag(FLAGS_echo_binary);
  if (echo.binary.empty()) {
    echo.binary = pcfs::peerload::EchoProcess::DefaultBinary();
  }
  echo.threads = absl::GetFlag(FLAGS_echo_threads);
  echo.cgroup = absl::GetFlag(FLAGS_echo_cgroup);
  // On the daemon's address when it is a literal one (a socket bound to
  // 127.0.0.1 takes IPv4's path through the kernel; one bound to "::"
  // takes IPv6's for the same datagrams, which costs a little more).
  in6_addr literal;
  if (::inet_pton(AF_INET, real.host.c_str(), &literal) == 1 ||
      ::inet_pton(AF_INET6, real.host.c_str(), &literal) == 1) {
    echo.bind = real.host;
  }
  // Unpinned means every CPU peerload started with, not peerload's --cpu
  // (which the child would inherit).
  echo.cpus = absl::GetFlag(FLAGS_echo_cpu);
  if (echo.cpus.empty() && !absl::GetFlag(FLAGS_cpu).empty()) {
    echo.cpus = original_cpus;
  }
  absl::StatusOr<std::unique_ptr<pcfs::peerload::EchoProcess>> process =
      pcfs::peerload::EchoProcess::Start(echo);
  if (!process.ok()) return process.status();
  LoadOptions raw = real;
  raw.raw = true;
  raw.port = (*process)->port();
  pcfs::Log("peerload: raw baseline: udp_echo on port ", raw.port);
  absl::StatusOr<LoadStats> stats = RunOnce(raw, {}, processes);
  if (absl::Status s = (*process)->Stop(); !s.ok() && stats.ok()) {
    pcfs::Log("peerload: ", s.message());
  }
  return stats;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  // Dashes or underscores in flag names (--compare-raw), and a bad flag or
  // value is a usage error (exit 2), as for the daemon and peerctl.
  absl::SetProgramUsageMessage("PeerConnectFS's load generator (--help)");
  const std::vector<std::string> positional =
      pcfs::ParseCommandLineOrExit(argc, argv);
  if (!positional.empty()) {
    return Usage(absl::StrCat("unexpected argument '", positional[0], "'"));
  }

  if (const int n = absl::GetFlag(FLAGS_make_credentials); n != 0) {
    absl::Status s = pcfs::peerload::WriteLoadCredentials(
        n, absl::GetFlag(FLAGS_iterations), stdout);
    return s.ok() ? 0 : Failure(std::string(s.message()));
  }

  absl::StatusOr<LoadOptions> options = OptionsFromFlags();
  if (!options.ok()) return Usage(std::string(options.status().message()));
  const bool compare_raw = absl::GetFlag(FLAGS_compare_raw);
  if (compare_raw && options->raw) {
    return Usage("--compare_raw and --raw exclude each other");
  }
  std::vector<pcfs::peerload::LoadUser> users;
  if (!options->raw) {
    const std::string path = absl::GetFlag(FLAGS_credentials);
    if (path.empty()) return Usage("--credentials FILE is required");
    absl::StatusOr<std::vector<pcfs::peerload::LoadUser>> read =
        pcfs::peerload::ReadLoadUsers(path);
    if (!read.ok()) return Failure(std::string(read.status().message()));
    users = *std::move(read);
    if (users.empty()) return Failure(path + " holds no users");
    if (options->peers == 0) options->peers = static_cast<int>(users.size());
    if (static_cast<size_t>(options->peers) > users.size()) {
      return Failure(absl::StrCat("--peers ", options->peers, " exceeds the ",
                                  users.size(), " users of ", path,
                                  " (make more with --make-credentials)"));
    }
  } else if (options->peers == 0) {
    options->peers = 100;
  }

  absl::StatusOr<std::string> original_cpus = pcfs::peerload::CurrentCpuList();
  if (!original_cpus.ok()) {
    return Failure(std::string(original_cpus.status().message()));
  }
  if (const std::string cpu = absl::GetFlag(FLAGS_cpu); !cpu.empty()) {
    absl::StatusOr<std::vector<int>> cpus = pcfs::peerload::ParseCpuList(cpu);
    if (!cpus.ok()) return Usage(std::string(cpus.status().message()));
    if (absl::Status s = pcfs::peerload::PinToCpus(*cpus); !s.ok()) {
      return Failure(std::string(s.message()));
    }
  }
  int processes = absl::GetFlag(FLAGS_processes);
  if (processes < 0 || processes > options->peers) {
    return Usage(absl::StrCat("--processes must be in 0..", options->peers));
  }
  if (processes == 0) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return Failure("getrlimit(RLIMIT_NOFILE) failed");
    }
    processes = pcfs::peerload::ProcessesFor(
        options->peers, static_cast<uint64_t>(limit.rlim_max));
  }

  absl::StatusOr<LoadStats> stats =
      RunOnce(*options, std::move(users), processes);
  if (!stats.ok()) return Failure(std::string(stats.status().message()));
  std::optional<LoadStats> baseline;
  if (compare_raw) {
    absl::StatusOr<LoadStats> raw =
        RunBaseline(*options, *original_cpus, processes);
    if (!raw.ok()) {
      return Failure(absl::StrCat("raw baseline: ", raw.status().message()));
    }
    baseline = *std::move(raw);
  }

  pcfs::peerload::RunDescription run;
  run.options = &*options;
  run.server = absl::GetFlag(FLAGS_server);
  run.processes = processes;
  const std::string out =
      absl::GetFlag(FLAGS_json)
          ? pcfs::peerload::FormatJson(run, *stats, baseline) + "\n"
          : pcfs::peerload::FormatReport(run, *stats, baseline);
  std::fputs(out.c_str(), stdout);
  return std::fflush(stdout) == 0 ? 0 : kExitFailure;
}
