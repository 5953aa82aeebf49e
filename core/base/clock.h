// Clocks. Pure modules never read a clock: they take the time as an argument,
// so tests drive them with a fake one. Only the reactor layer and the mains
// call MonotonicNow().
#ifndef PCFS_CORE_BASE_CLOCK_H_
#define PCFS_CORE_BASE_CLOCK_H_

#include "absl/time/time.h"

namespace pcfs {

// Returns the current reading of CLOCK_MONOTONIC as an absl::Time. Values from
// it are only meaningful relative to each other (differences, ordering); they
// are not wall-clock instants and must never be formatted as dates.
// Thread-safe.
absl::Time MonotonicNow();

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_CLOCK_H_
