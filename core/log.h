// A minimal logger for the binaries: one line per event on stderr, prefixed
// with the local wall-clock time in the classic form "09:11:23.445: ".
// Thread-safe: each line is written with a single write(2).
#ifndef PCFS_CORE_LOG_H_
#define PCFS_CORE_LOG_H_

#include "absl/strings/string_view.h"

#include "absl/strings/str_cat.h"

namespace pcfs {

// Writes "HH:MM:SS.mmm: <message>\n" to stderr.
void LogLine(absl::string_view message);

template <typename... Args>
void Log(const Args&... args) {
  LogLine(absl::StrCat(args...));
}

}  // namespace pcfs

#endif  // PCFS_CORE_LOG_H_
