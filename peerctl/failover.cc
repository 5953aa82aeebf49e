#include "peerctl/failover.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "peerctl/config.h"

namespace pcfs {

std::string DaemonAddress::Name() const {
  return absl::StrCat(
      host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host,
      ":", port);
}

absl::StatusOr<std::vector<DaemonAddress>> ParseServerList(
    absl::string_view text) {
  std::vector<DaemonAddress> daemons;
  const std::vector<absl::string_view> entries = absl::StrSplit(text, ',');
  const bool several = entries.size() > 1;
  for (size_t i = 0; i < entries.size(); ++i) {
    const absl::string_view entry = absl::StripAsciiWhitespace(entries[i]);
    if (entry.empty()) {
      if (!several) return absl::InvalidArgumentError("the server is empty");
      return absl::InvalidArgumentError(
          absl::StrCat("server list '", text, "': entry ", i + 1,
                       " is empty (a stray or trailing comma?)"));
    }
    absl::StatusOr<std::pair<std::string, uint16_t>> address =
        ParseServerAddress(entry);
    if (!address.ok()) {
      if (!several) return address.status();
      return absl::InvalidArgumentError(
          absl::StrCat("server list '", text, "': entry ", i + 1, " '", entry,
                       "': ", address.status().message()));
    }
    DaemonAddress daemon{absl::AsciiStrToLower(address->first),
                         address->second};
    if (std::find(daemons.begin(), daemons.end(), daemon) != daemons.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("server list '", text, "': entry ", i + 1, " '", entry,
                       "' repeats ", daemon.Name()));
    }
    daemons.push_back(std::move(daemon));
  }
  return daemons;
}

FailoverPlan::FailoverPlan(size_t daemons)
    : size_(std::max<size_t>(1, daemons)) {}

size_t FailoverPlan::Advance() {
  current_ = (current_ + 1) % size_;
  return current_;
}

size_t FailoverPlan::StoppedAnswering() {
  // The daemon answered until now: this is the first silent one in a row.
  silent_in_a_row_ = 1;
  return Advance();
}

absl::Duration FailoverPlan::FailedLogin(LoginFailure failure, double jitter) {
  if (failure == LoginFailure::kSilent) {
    ++silent_in_a_row_;
    Advance();
    // Some daemon not tried since the last answer: try it at once.
    if (silent_in_a_row_ < size_) return absl::ZeroDuration();
  }
  silent_in_a_row_ = 0;
  ++backoff_failures_;
  // 500 ms doubled per failure (so 1 s after the first), 5 s at most.
  const absl::Duration pause = std::min(
      absl::Milliseconds(500) * (int64_t{1} << std::min(backoff_failures_, 4)),
      absl::Seconds(5));
  return pause * std::clamp(jitter, 0.75, 1.25);
}

void FailoverPlan::LoggedIn() {
  silent_in_a_row_ = 0;
  backoff_failures_ = 0;
}

}  // namespace pcfs
