#include "core/log.h"

#include <unistd.h>

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pcfs {

void LogLine(absl::string_view message) {
  std::string line = absl::FormatTime("%H:%M:%E3S: ", absl::Now(),
                                      absl::LocalTimeZone());
  line.append(message.data(), message.size());
  line.push_back('\n');
  // One write per line keeps lines from different threads whole. A failed
  // write to stderr has nowhere to be reported.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace pcfs
