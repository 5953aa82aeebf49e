// A minimal logger for the binaries: one line per event on stderr, prefixed
// with the local wall-clock time in the classic form "09:11:23.445: ".
//
// By default each line is written at once with a single write(2). A daemon
// calls StartAsyncLogging() so that a slow reader of stderr (a full pipe,
// journald pushing back) never stalls a reactor thread: lines then go
// through a bounded queue to a writer thread, and when the queue is full new
// lines are dropped and counted ("N log lines dropped" follows once there
// is room again).
//
// Thread-safety: all functions may be called from any thread.
#ifndef PCFS_CORE_BASE_LOG_H_
#define PCFS_CORE_BASE_LOG_H_

#include <cstddef>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace pcfs {

// Writes "HH:MM:SS.mmm: <message>\n" to stderr (or queues it).
void LogLine(absl::string_view message);

template <typename... Args>
void Log(const Args&... args) {
  LogLine(absl::StrCat(args...));
}

// Switches to the queued mode, holding at most `max_lines` lines.
void StartAsyncLogging(size_t max_lines = 65536);
// Writes what is queued, stops the writer thread and returns to direct
// writes. Call before exiting.
void StopAsyncLogging();

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_LOG_H_
