// stall_probe: how long the machine itself keeps a ready thread from
// running. One thread per CPU, each pinned to its CPU and (when allowed) in
// SCHED_FIFO, sleeps 200 µs at a time and counts how far each sleep
// overran. A real-time thread that wakes late has been kept off its CPU by
// something that outranks every ordinary task: interrupts, or (in a virtual
// machine) the host not running the virtual CPU at all. bench/ runs it
// beside a benchmark to tell the machine's stalls from the program's.
//
//   stall_probe [--duration=5s] [--sleep=200us]
//
// Prints one line of JSON on stdout:
//   {"cpus":2,"fifo":true,"sleeps":N,"over_1ms":A,"over_5ms":B,
//    "worst_ms":W,"stalled_ms":S}
// over_1ms and over_5ms count, over all CPUs, the sleeps that overran by
// more than 1 and 5 ms; worst_ms is the longest overrun, stalled_ms the sum
// of the overruns beyond 1 ms. "fifo" is false when SCHED_FIFO was refused
// (not root): the figures then include ordinary scheduling delay.
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "core/base/cli.h"
#include "core/base/log.h"

ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "how long to probe");
ABSL_FLAG(absl::Duration, sleep, absl::Microseconds(200),
          "each sleep (at least 10us)");

namespace {

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct CpuFigures {
  uint64_t sleeps = 0;
  uint64_t over_1ms = 0;
  uint64_t over_5ms = 0;
  int64_t worst_ns = 0;
  int64_t stalled_ns = 0;  // overruns beyond 1 ms, summed
  bool fifo = false;
};

void Probe(int cpu, int64_t duration_ns, int64_t sleep_ns, CpuFigures* out) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  sched_param param{};
  param.sched_priority = 50;
  out->fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param) == 0;
  const timespec request{0, sleep_ns};
  const int64_t end = NowNs() + duration_ns;
  for (int64_t start = NowNs(); start < end; start = NowNs()) {
    nanosleep(&request, nullptr);
    const int64_t overrun = NowNs() - start - sleep_ns;
    ++out->sleeps;
    out->worst_ns = std::max(out->worst_ns, overrun);
    if (overrun > 1'000'000) {
      ++out->over_1ms;
      out->stalled_ns += overrun - 1'000'000;
    }
    if (overrun > 5'000'000) ++out->over_5ms;
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "stall_probe: counts how often, and how long, the machine keeps a "
      "ready real-time thread off each CPU. Usage: stall_probe "
      "[--duration=5s] [--sleep=200us]");
  pcfs::ParseCommandLineOrExit(argc, argv);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const absl::Duration sleep = absl::GetFlag(FLAGS_sleep);
  if (duration <= absl::ZeroDuration() || duration > absl::Minutes(10)) {
    pcfs::LogError("stall_probe: --duration must be in (0, 10m]");
    return 2;
  }
  if (sleep < absl::Microseconds(10) || sleep >= absl::Seconds(1)) {
    pcfs::LogError("stall_probe: --sleep must be in [10us, 1s)");
    return 2;
  }
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    pcfs::LogError("stall_probe: sched_getaffinity failed");
    return 1;
  }
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  }
  std::vector<CpuFigures> figures(cpus.size());
  std::vector<std::thread> threads;
  threads.reserve(cpus.size());
  for (size_t i = 0; i < cpus.size(); ++i) {
    threads.emplace_back(Probe, cpus[i], absl::ToInt64Nanoseconds(duration),
                         absl::ToInt64Nanoseconds(sleep), &figures[i]);
  }
  for (std::thread& t : threads) t.join();
  CpuFigures total;
  total.fifo = true;
  for (const CpuFigures& f : figures) {
    total.sleeps += f.sleeps;
    total.over_1ms += f.over_1ms;
    total.over_5ms += f.over_5ms;
    total.worst_ns = std::max(total.worst_ns, f.worst_ns);
    total.stalled_ns += f.stalled_ns;
    total.fifo = total.fifo && f.fifo;
  }
  std::printf(
      "{\"cpus\":%zu,\"fifo\":%s,\"sleeps\":%llu,\"over_1ms\":%llu,"
      "\"over_5ms\":%llu,\"worst_ms\":%.2f,\"stalled_ms\":%.1f}\n",
      cpus.size(), total.fifo ? "true" : "false",
      static_cast<unsigned long long>(total.sleeps),
      static_cast<unsigned long long>(total.over_1ms),
      static_cast<unsigned long long>(total.over_5ms),
      static_cast<double>(total.worst_ns) / 1e6,
      static_cast<double>(total.stalled_ns) / 1e6);
  return 0;
}
