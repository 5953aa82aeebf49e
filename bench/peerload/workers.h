// Worker processes: one peerload run split over several processes, for more
// simulated peers than one process may hold sockets (RLIMIT_NOFILE is per
// process, and one peer is one socket). The parent forks K workers; worker
// w drives a contiguous block of the peers (its users, its loopback source
// addresses: LoadOptions::first_peer_index) with its share of the login,
// logout and request rates and of the publishers. Each worker reports on
// its status pipe when its own peers are logged in; once all are, the
// parent opens every worker's window at once (the control pipe), so that
// all measure the same --duration. At the end each worker writes its
// LoadStats (EncodeStats) and exits; the parent merges them (MergeStats:
// histograms bucket by bucket) into one LoadStats, reported as a one-process
// run is.
//
// No orphans: a worker dies with its parent (PR_SET_PDEATHSIG), its run is
// bounded by the ramp, the window and the logout grace, and the parent kills
// and reaps every worker on any error and at its own deadline.
//
// Thread-safety: RunInWorkers forks, so call it from a single-threaded
// process (peerload's main); the plain functions are pure.
#ifndef PCFS_BENCH_PEERLOAD_WORKERS_H_
#define PCFS_BENCH_PEERLOAD_WORKERS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/peerload/options.h"
#include "bench/peerload/stats.h"
#include "bench/peerload/users.h"
#include "core/io/net.h"

namespace pcfs::peerload {

// Descriptors a peerload process needs beyond one per peer: epoll, stdio,
// pipes, libraries.
inline constexpr int kSpareDescriptors = 256;

// One worker's block of the run's peers: first .. first + count - 1.
struct WorkerShare {
  int first = 0;
  int count = 0;
};

// How many processes `peers` peers need when each may open `fd_limit`
// descriptors (its hard RLIMIT_NOFILE): 1 when they fit in one, else the
// fewest that keep each below the limit. REQUIRES: peers >= 1.
int ProcessesFor(int peers, uint64_t fd_limit);

// Splits `peers` into `processes` contiguous blocks whose sizes differ by
// at most one, in order. REQUIRES: 1 <= processes <= peers.
std::vector<WorkerShare> SplitPeers(int peers, int processes);

// The options of the worker that drives `share` of a run of `processes`
// workers with `run`'s options: its peer count and first index, and its
// share of --login_rate, the logout rate, --rate and --publishers.
LoadOptions WorkerOptions(const LoadOptions& run, const WorkerShare& share,
                          int processes);

// Runs `options` (options.peers peers; users[i] is peer i's, none in raw
// mode) over `processes` worker processes against `server`, and returns
// the merged statistics. REQUIRES: processes >= 2, a single-threaded
// caller. Errors: the first worker's failure (prefixed with its number and
// peers), Internal if a worker died or sent garbage, DeadlineExceeded if
// the run outlived its bound, and the failed system calls (pipe2, fork).
absl::StatusOr<LoadStats> RunInWorkers(const LoadOptions& options,
                                       const SocketAddress& server,
                                       const std::vector<LoadUser>& users,
                                       int processes);

}  // namespace pcfs::peerload

#endif  // PCFS_BENCH_PEERLOAD_WORKERS_H_
