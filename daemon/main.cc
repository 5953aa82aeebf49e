// peerconnectd: the PeerConnectFS index daemon.
//
//   peerconnectd [PORT] [--port=N] [--bind=ADDR] [--credentials=FILE]
//                [--state_dir=DIR] [--io=epoll|uring] [--verbose]
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "core/net.h"
#include "core/reactor.h"
#include "daemon/server.h"

ABSL_FLAG(int, port, 50000, "UDP port to serve on (a positional PORT wins)");
ABSL_FLAG(std::string, bind, "::",
          "address to bind; '::' serves IPv6 and IPv4");
ABSL_FLAG(std::string, credentials, "credentials.txt",
          "credentials file: lines 'USER SECRET'");
ABSL_FLAG(std::string, state_dir, "peerconnect-state",
          "folder for the durable publication state");
ABSL_FLAG(std::string, io, "epoll", "I/O backend: epoll or uring");
ABSL_FLAG(bool, verbose, false, "log every request and reply");

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitFailure = 1;

int Usage(const std::string& message) {
  std::fprintf(stderr, "peerconnectd: %s\n%s\n", message.c_str(),
               "usage: peerconnectd [PORT] [--port=N] [--bind=ADDR] "
               "[--credentials=FILE] [--state_dir=DIR] [--io=epoll|uring] "
               "[--verbose]");
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "the PeerConnectFS index daemon. Usage: peerconnectd [PORT] [flags]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  pcfs::ServerOptions options;
  int port = absl::GetFlag(FLAGS_port);
  if (args.size() > 2) return Usage("too many arguments");
  if (args.size() == 2) {
    absl::StatusOr<uint16_t> parsed = pcfs::ParsePort(args[1]);
    if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
    port = *parsed;
  }
  if (port < 0 || port > 65535) return Usage("--port must be 0..65535");
  options.port = static_cast<uint16_t>(port);
  options.bind = absl::GetFlag(FLAGS_bind);
  options.credentials_path = absl::GetFlag(FLAGS_credentials);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.io = absl::GetFlag(FLAGS_io);
  options.verbose = absl::GetFlag(FLAGS_verbose);

  ::signal(SIGPIPE, SIG_IGN);
  if (absl::Status s = pcfs::BlockSignals({SIGINT, SIGTERM, SIGHUP}); !s.ok()) {
    pcfs::Log("peerconnectd: ", s.ToString());
    return kExitFailure;
  }
  absl::StatusOr<std::unique_ptr<pcfs::Server>> server =
      pcfs::Server::Create(options);
  if (!server.ok()) {
    pcfs::Log("peerconnectd: cannot start: ", server.status().message());
    return kExitFailure;
  }
  if (absl::Status s = (*server)->Run(); !s.ok()) {
    pcfs::Log("peerconnectd: ", s.message());
    return kExitFailure;
  }
  return 0;
}
