// EchoProcess: a udp_echo child process for --compare_raw. peerload starts
// it on a port the kernel picks (udp_echo prints the port on its stdout),
// drives the raw pattern against it, and stops it with SIGTERM. The child
// also gets a --duration, so that it ends by itself if peerload dies.
//
// Thread-safety: one owner; Stop() and the destructor from the thread that
// started it.
#ifndef PCFS_BENCH_PEERLOAD_ECHO_PROCESS_H_
#define PCFS_BENCH_PEERLOAD_ECHO_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pcfs::peerload {

class EchoProcess {
 public:
  struct Options {
    std::string binary;  // path of udp_echo
    std::string bind = "::";
    int threads = 0;   // 0: udp_echo's default (one per core)
    std::string cpus;  // udp_echo --cpu; empty: not pinned
    // A cgroup directory (v1 or v2) to move the child into, before it
    // serves: its cgroup.procs file must be writable. Empty: peerload's.
    std::string cgroup;
    absl::Duration lifetime = absl::Minutes(15);  // it stops by itself then
  };

  // The udp_echo next to the running executable (/proc/self/exe).
  static std::string DefaultBinary();

  // Starts udp_echo and waits (at most 5 s) for the port it serves.
  // Errors: NotFound (no such binary), Unavailable (it did not start),
  // FailedPrecondition (it could not be moved into options.cgroup).
  static absl::StatusOr<std::unique_ptr<EchoProcess>> Start(
      const Options& options);

  ~EchoProcess();
  EchoProcess(const EchoProcess&) = delete;
  EchoProcess& operator=(const EchoProcess&) = delete;

  uint16_t port() const { return port_; }

  // Sends SIGTERM and reaps the child (SIGKILL after 5 s). Errors:
  // Internal if it exited with a failure.
  absl::Status Stop();

 private:
  EchoProcess(pid_t pid, uint16_t port) : pid_(pid), port_(port) {}

  pid_t pid_;
  uint16_t port_;
};

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_ECHO_PROCESS_H_
