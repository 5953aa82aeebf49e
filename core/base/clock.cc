#include "core/base/clock.h"

#include <time.h>

namespace pcfs {

absl::Time MonotonicNow() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return absl::UnixEpoch() + absl::DurationFromTimespec(ts);
}

}  // namespace pcfs
