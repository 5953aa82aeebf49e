// A minimal logger for the binaries: one line per event on stderr, at one of
// four syslog priorities (error, warning, info, debug).
//
// Where a line goes decides its form. When stderr is the systemd journal
// ($JOURNAL_STREAM names stderr's device and inode), a line is
// "<N>message" with N the syslog priority (sd-daemon(3)'s prefixes: 3 err,
// 4 warning, 6 info, 7 debug), so `journalctl -p err` finds the errors and
// journald adds the time itself. Elsewhere it is
// "2026-12-02T09:11:23.445+01:00 warning: message": an ISO-8601 local time
// with its zone, and the priority named for errors and warnings.
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
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pcfs {

// syslog(3) priorities, as sd-daemon(3) prefixes carry them.
enum class LogPriority { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };

// Writes one line at `priority` to stderr (or queues it).
void LogLine(LogPriority priority, absl::string_view message);
// An info line.
inline void LogLine(absl::string_view message) {
  LogLine(LogPriority::kInfo, message);
}

template <typename... Args>
void Log(const Args&... args) {
  LogLine(LogPriority::kInfo, absl::StrCat(args...));
}
template <typename... Args>
void LogError(const Args&... args) {
  LogLine(LogPriority::kError, absl::StrCat(args...));
}
template <typename... Args>
void LogWarning(const Args&... args) {
  LogLine(LogPriority::kWarning, absl::StrCat(args...));
}
template <typename... Args>
void LogDebug(const Args&... args) {
  LogLine(LogPriority::kDebug, absl::StrCat(args...));
}

// The line LogLine writes, without its newline: "<N>message" for the
// journal, else the ISO-8601 form above with `now` in `zone`. Pure (tests).
std::string FormatLogLine(LogPriority priority, absl::string_view message,
                          bool journal, absl::Time now, absl::TimeZone zone);

// True if $JOURNAL_STREAM ("DEVICE:INODE") names the file stderr is.
// Decided once, at the first line logged.
bool StderrIsJournal();

// Switches to the queued mode, holding at most `max_lines` lines.
void StartAsyncLogging(size_t max_lines = 65536);
// Writes what is queued, stops the writer thread and returns to direct
// writes. Call before exiting.
void StopAsyncLogging();

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_LOG_H_
