#include "core/base/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/base/thread_name.h"

namespace pcfs {
namespace {

void WriteToStderr(absl::string_view line) {
  while (!line.empty()) {
    ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0) return;  // nowhere to report a failed write to stderr
    line.remove_prefix(static_cast<size_t>(n));
  }
}

// The queued mode's state. std primitives rather than absl's: this runs in
// every binary, TSan builds included (see core/base/mutex_lock.h).
struct AsyncLog {
  std::mutex mu;
  std::condition_variable wake;
  std::deque<std::string> lines;  // guarded by mu
  size_t max_lines = 0;           // 0: not queued; guarded by mu
  size_t dropped = 0;             // guarded by mu
  bool stopping = false;          // guarded by mu
  std::thread writer;
};

AsyncLog& State() {
  static AsyncLog* state = new AsyncLog;  // never destroyed: used at exit
  return *state;
}

void WriterLoop() {
  AsyncLog& log = State();
  std::unique_lock<std::mutex> lock(log.mu);
  for (;;) {
    log.wake.wait(lock, [&] { return log.stopping || !log.lines.empty(); });
    std::deque<std::string> batch;
    batch.swap(log.lines);
    const size_t dropped = std::exchange(log.dropped, 0);
    const bool stopping = log.stopping;
    lock.unlock();
    for (const std::string& line : batch) WriteToStderr(line);
    if (dropped > 0) {
      WriteToStderr(absl::StrCat(dropped,
                                 " log lines dropped (stderr was "
                                 "not read fast enough)\n"));
    }
    lock.lock();
    if (stopping && log.lines.empty()) return;
  }
}

}  // namespace

std::string FormatLogLine(LogPriority priority, absl::string_view message,
                          bool journal, absl::Time now, absl::TimeZone zone) {
  if (journal) {
    return absl::StrCat("<", static_cast<int>(priority), ">", message);
  }
  absl::string_view level;
  if (priority == LogPriority::kError) level = "error: ";
  if (priority == LogPriority::kWarning) level = "warning: ";
  return absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3S%Ez ", now, zone),
                      level, message);
}

bool StderrIsJournal() {
  static const bool journal = [] {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(stream, ':');
    uint64_t device = 0;
    uint64_t inode = 0;
    struct stat st {};
    if (!absl::SimpleAtoi(parts.first, &device) ||
        !absl::SimpleAtoi(parts.second, &inode) ||
        ::fstat(STDERR_FILENO, &st) != 0) {
      return false;
    }
    return static_cast<uint64_t>(st.st_dev) == device &&
           static_cast<uint64_t>(st.st_ino) == inode;
  }();
  return journal;
}

void LogLine(LogPriority priority, absl::string_view message) {
  std::string line = FormatLogLine(priority, message, StderrIsJournal(),
                                   absl::Now(), absl::LocalTimeZone());
  line.push_back('\n');
  AsyncLog& log = State();
  {
    std::lock_guard<std::mutex> lock(log.mu);
    if (log.max_lines > 0) {
      if (log.lines.size() >= log.max_lines) {
        ++log.dropped;
        return;
      }
      log.lines.push_back(std::move(line));
      log.wake.notify_one();
      return;
    }
  }
  WriteToStderr(line);
}

void StartAsyncLogging(size_t max_lines) {
  AsyncLog& log = State();
  std::lock_guard<std::mutex> lock(log.mu);
  if (log.max_lines > 0 || max_lines == 0) return;
  log.max_lines = max_lines;
  log.stopping = false;
  log.writer = std::thread([] {
    NameThisThread("log-writer");
    WriterLoop();
  });
}

void StopAsyncLogging() {
  AsyncLog& log = State();
  std::thread writer;
  {
    std::lock_guard<std::mutex> lock(log.mu);
    if (log.max_lines == 0) return;
    log.stopping = true;
    log.wake.notify_one();
    writer = std::move(log.writer);
  }
  writer.join();
  std::lock_guard<std::mutex> lock(log.mu);
  log.max_lines = 0;
}

}  // namespace pcfs
