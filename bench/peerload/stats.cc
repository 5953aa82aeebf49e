#include "bench/peerload/stats.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pcfs::peerload {
namespace {

double Micros(int64_t nanos) { return static_cast<double>(nanos) / 1000.0; }

// A JSON string literal (the texts here are ASCII; control characters are
// escaped anyway).
std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, absl::StrFormat("\\u%04x", c));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string JsonErrors(const LoadStats& stats) {
  std::vector<std::string> parts;
  for (const auto& [kind, count] : stats.errors_by_kind) {
    parts.push_back(absl::StrCat(JsonString(kind), ":", count));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

std::string RateText(const LoadOptions& options) {
  if (options.mix.empty()) return "mandatory heartbeats only";
  if (options.rate > 0) {
    return absl::StrFormat("open loop, %.0f mix requests/s", options.rate);
  }
  return "closed loop (unbounded rate)";
}

// One row of the side-by-side table.
void Row(std::string& out, absl::string_view label, const std::string& daemon,
         const std::optional<std::string>& raw) {
  absl::StrAppend(&out, absl::StrFormat("  %-22s %14s", label, daemon));
  if (raw.has_value()) absl::StrAppend(&out, absl::StrFormat(" %14s", *raw));
  out.push_back('\n');
}

std::string Count(uint64_t n) { return absl::StrCat(n); }
std::string Fixed(double v) { return absl::StrFormat("%.1f", v); }

// The counters of a LoadStats, by the names EncodeStats gives them.
struct CounterField {
  absl::string_view name;
  uint64_t LoadStats::*member;
};
constexpr CounterField kCounterFields[] = {
    {"logins", &LoadStats::logins},
    {"login_retries", &LoadStats::login_retries},
    {"login_timeouts", &LoadStats::login_timeouts},
    {"publications", &LoadStats::publications},
    {"requests", &LoadStats::requests},
    {"responses", &LoadStats::responses},
    {"heartbeat_responses", &LoadStats::heartbeat_responses},
    {"retransmissions", &LoadStats::retransmissions},
    {"timeouts", &LoadStats::timeouts},
    {"not_found", &LoadStats::not_found},
    {"false_expiries", &LoadStats::false_expiries},
    {"late_expiries", &LoadStats::late_expiries},
    {"relogins", &LoadStats::relogins},
    {"rate_missed", &LoadStats::rate_missed},
    {"stray_replies", &LoadStats::stray_replies},
    {"logouts", &LoadStats::logouts},
};

std::string EncodeHistogram(const LatencyHistogram& h) {
  std::string out;
  for (const auto& [bucket, count] : h.NonEmptyBuckets()) {
    absl::StrAppend(&out, " ", bucket, ":", count);
  }
  return out;
}

bool DecodeHistogram(absl::string_view text, LatencyHistogram* h) {
  for (absl::string_view pair : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits(':', 1));
    uint32_t bucket = 0;
    uint64_t count = 0;
    if (!absl::SimpleAtoi(kv.first, &bucket) ||
        !absl::SimpleAtoi(kv.second, &count) ||
        !h->AddToBucket(bucket, count)) {
      return false;
    }
  }
  return true;
}

}  // namespace

void MergeStats(const LoadStats& from, LoadStats* into) {
  into->peers += from.peers;
  into->logged_in += from.logged_in;
  into->login_s = std::max(into->login_s, from.login_s);
  into->measured_s = std::max(into->measured_s, from.measured_s);
  for (const CounterField& field : kCounterFields) {
    into->*field.member += from.*field.member;
  }
  for (size_t i = 0; i < from.mix_responses.size(); ++i) {
    into->mix_responses[i] += from.mix_responses[i];
  }
  for (const auto& [kind, count] : from.errors_by_kind) {
    into->errors_by_kind[kind] += count;
  }
  into->latency.Merge(from.latency);
  into->heartbeat_latency.Merge(from.heartbeat_latency);
  into->login_latency.Merge(from.login_latency);
}

std::string EncodeStats(const LoadStats& stats) {
  std::string out = absl::StrFormat(
      "peers %d\nlogged_in %d\nlogin_s %.9g\nmeasured_s %.9g\n", stats.peers,
      stats.logged_in, stats.login_s, stats.measured_s);
  for (const CounterField& field : kCounterFields) {
    absl::StrAppend(&out, field.name, " ", stats.*field.member, "\n");
  }
  absl::StrAppend(&out, "mix_responses ",
                  absl::StrJoin(stats.mix_responses, " "), "\n");
  // The kind last: it may hold spaces (never a newline).
  for (const auto& [kind, count] : stats.errors_by_kind) {
    absl::StrAppend(&out, "error ", count, " ", kind, "\n");
  }
  absl::StrAppend(&out, "latency", EncodeHistogram(stats.latency), "\n");
  absl::StrAppend(&out, "heartbeat_latency",
                  EncodeHistogram(stats.heartbeat_latency), "\n");
  absl::StrAppend(&out, "login_latency", EncodeHistogram(stats.login_latency),
                  "\n");
  return out;
}

absl::StatusOr<LoadStats> DecodeStats(absl::string_view text) {
  LoadStats stats;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line_number;
    const size_t space = line.find(' ');
    const absl::string_view name = line.substr(0, space);
    const absl::string_view value =
        space == absl::string_view::npos ? "" : line.substr(space + 1);
    bool ok = false;
    if (name == "peers") {
      ok = absl::SimpleAtoi(value, &stats.peers);
    } else if (name == "logged_in") {
      ok = absl::SimpleAtoi(value, &stats.logged_in);
    } else if (name == "login_s") {
      ok = absl::SimpleAtod(value, &stats.login_s);
    } else if (name == "measured_s") {
      ok = absl::SimpleAtod(value, &stats.measured_s);
    } else if (name == "mix_responses") {
      std::vector<absl::string_view> parts =
          absl::StrSplit(value, ' ', absl::SkipEmpty());
      ok = parts.size() == stats.mix_responses.size();
      for (size_t i = 0; ok && i < parts.size(); ++i) {
        ok = absl::SimpleAtoi(parts[i], &stats.mix_responses[i]);
      }
    } else if (name == "error") {
      const size_t gap = value.find(' ');
      uint64_t count = 0;
      ok = gap != absl::string_view::npos &&
           absl::SimpleAtoi(value.substr(0, gap), &count);
      if (ok) stats.errors_by_kind[std::string(value.substr(gap + 1))] += count;
    } else if (name == "latency") {
      ok = DecodeHistogram(value, &stats.latency);
    } else if (name == "heartbeat_latency") {
      ok = DecodeHistogram(value, &stats.heartbeat_latency);
    } else if (name == "login_latency") {
      ok = DecodeHistogram(value, &stats.login_latency);
    } else {
      for (const CounterField& field : kCounterFields) {
        if (name == field.name)
          ok = absl::SimpleAtoi(value, &(stats.*field.member));
      }
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "worker stats, line ", line_number, ": cannot read '", line, "'"));
    }
  }
  return stats;
}

uint64_t LoadStats::errors() const {
  uint64_t sum = 0;
  for (const auto& [kind, count] : errors_by_kind) sum += count;
  return sum;
}

double LoadStats::responses_per_s() const {
  return measured_s > 0 ? static_cast<double>(responses) / measured_s : 0;
}

std::string FormatReport(const RunDescription& run, const LoadStats& stats,
                         const std::optional<LoadStats>& baseline) {
  const LoadOptions& o = *run.options;
  std::string out = absl::StrFormat(
      "peerload: %d peers against %s %s, mix %s, %s, %.1f s measured\n",
      stats.peers, o.raw ? "udp_echo at" : "peerconnectd at", run.server,
      o.mix.ToString(), RateText(o), stats.measured_s);
  if (!o.raw) {
    absl::StrAppend(
        &out,
        absl::StrFormat(
            "login: %d of %d peers in %.2f s (ramp %.0f/s), latency p50 %.0f "
            "us p99 %.0f us; %u logins, %u retried (%u timed out), %u names "
            "published%s\n",
            stats.logged_in, stats.peers, stats.login_s, o.login_rate,
            Micros(stats.login_latency.Quantile(0.5)),
            Micros(stats.login_latency.Quantile(0.99)), stats.logins,
            stats.login_retries, stats.login_timeouts, stats.publications,
            run.processes > 1
                ? absl::StrFormat("; %d peerload processes", run.processes)
                : ""));
  }
  const bool side_by_side = baseline.has_value();
  auto raw = [&](auto field) -> std::optional<std::string> {
    if (!side_by_side) return std::nullopt;
    return field(*baseline);
  };
  Row(out, "", o.raw ? "raw UDP" : "daemon",
      side_by_side ? std::optional<std::string>("raw UDP") : std::nullopt);
  auto both = [&](absl::string_view label, auto field) {
    Row(out, label, field(stats), raw(field));
  };
  both("responses/s",
       [](const LoadStats& s) { return Fixed(s.responses_per_s()); });
  both("latency p50 (us)", [](const LoadStats& s) {
    return Fixed(Micros(s.latency.Quantile(0.5)));
  });
  both("latency p99 (us)", [](const LoadStats& s) {
    return Fixed(Micros(s.latency.Quantile(0.99)));
  });
  both("latency p999 (us)", [](const LoadStats& s) {
    return Fixed(Micros(s.latency.Quantile(0.999)));
  });
  both("requests", [](const LoadStats& s) { return Count(s.requests); });
  both("responses", [](const LoadStats& s) { return Count(s.responses); });
  both("retransmissions",
       [](const LoadStats& s) { return Count(s.retransmissions); });
  both("timeouts", [](const LoadStats& s) { return Count(s.timeouts); });
  both("errors", [](const LoadStats& s) { return Count(s.errors()); });
  both("false expiries",
       [](const LoadStats& s) { return Count(s.false_expiries); });
  both("late expiries",
       [](const LoadStats& s) { return Count(s.late_expiries); });
  both("rate missed", [](const LoadStats& s) { return Count(s.rate_missed); });
  if (side_by_side && baseline->responses_per_s() > 0) {
    absl::StrAppend(&out, absl::StrFormat("  ratio daemon/raw: %.3f\n",
                                          stats.responses_per_s() /
                                              baseline->responses_per_s()));
  }
  std::vector<std::string> kinds;
  for (int i = 0; i < kRequestKinds; ++i) {
    if (stats.mix_responses[i] == 0) continue;
    kinds.push_back(absl::StrCat(RequestKindName(static_cast<RequestKind>(i)),
                                 "=", stats.mix_responses[i]));
  }
  absl::StrAppend(
      &out, "  answered: mandatory heartbeats=", stats.heartbeat_responses,
      kinds.empty() ? "" : ", ", absl::StrJoin(kinds, ", "),
      "; get not found=", stats.not_found, "; re-logins=", stats.relogins,
      "; stray replies=", stats.stray_replies,
      o.raw ? "" : absl::StrCat("; logouts=", stats.logouts), "\n");
  if (!stats.errors_by_kind.empty()) {
    std::vector<std::string> errors;
    for (const auto& [kind, count] : stats.errors_by_kind) {
      errors.push_back(absl::StrCat(kind, "=", count));
    }
    absl::StrAppend(&out, "  errors: ", absl::StrJoin(errors, ", "), "\n");
  }
  return out;
}

std::string FormatJson(const RunDescription& run, const LoadStats& stats,
                       const std::optional<LoadStats>& baseline) {
  const LoadOptions& o = *run.options;
  std::string out = absl::StrFormat(
      "{\"mode\":%s,\"server\":%s,\"responses_per_s\":%.1f,\"p50_us\":%.1f,"
      "\"p99_us\":%.1f,\"p999_us\":%.1f,\"errors\":%u,\"timeouts\":%u,"
      "\"false_expiries\":%u,\"late_expiries\":%u,\"retransmissions\":%u,"
      "\"requests\":%u,\"responses\":%u,\"relogins\":%u,\"rate_missed\":%u,"
      "\"peers\":%d,\"logged_in\":%d,\"duration_s\":%.3f,\"mix\":%s,"
      "\"rate\":%.1f,\"login_s\":%.3f,\"logins\":%u,\"login_p50_us\":%.1f,"
      "\"login_p99_us\":%.1f,\"login_retries\":%u,\"login_timeouts\":%u,"
      "\"not_found\":%u,\"logouts\":%u,\"processes\":%d,"
      "\"errors_by_kind\":%s",
      JsonString(o.raw ? "raw" : "daemon"), JsonString(run.server),
      stats.responses_per_s(), Micros(stats.latency.Quantile(0.5)),
      Micros(stats.latency.Quantile(0.99)),
      Micros(stats.latency.Quantile(0.999)), stats.errors(), stats.timeouts,
      stats.false_expiries, stats.late_expiries, stats.retransmissions,
      stats.requests, stats.responses, stats.relogins, stats.rate_missed,
      stats.peers, stats.logged_in, stats.measured_s,
      JsonString(o.mix.ToString()), o.rate, stats.login_s, stats.logins,
      Micros(stats.login_latency.Quantile(0.5)),
      Micros(stats.login_latency.Quantile(0.99)), stats.login_retries,
      stats.login_timeouts, stats.not_found, stats.logouts, run.processes,
      JsonErrors(stats));
  std::vector<std::string> kinds;
  for (int i = 0; i < kRequestKinds; ++i) {
    kinds.push_back(
        absl::StrCat(JsonString(RequestKindName(static_cast<RequestKind>(i))),
                     ":", stats.mix_responses[i]));
  }
  absl::StrAppend(
      &out,
      absl::StrFormat(",\"heartbeat_p50_us\":%.1f,\"heartbeat_p99_us\":%.1f,"
                      "\"heartbeat_responses\":%u,\"mix_responses\":{%s}",
                      Micros(stats.heartbeat_latency.Quantile(0.5)),
                      Micros(stats.heartbeat_latency.Quantile(0.99)),
                      stats.heartbeat_responses, absl::StrJoin(kinds, ",")));
  if (baseline.has_value()) {
    const double base = baseline->responses_per_s();
    absl::StrAppend(
        &out,
        absl::StrFormat(
            ",\"baseline_responses_per_s\":%.1f,\"baseline_p99_us\":%.1f,"
            "\"baseline_timeouts\":%u,\"ratio\":%.4f",
            base, Micros(baseline->latency.Quantile(0.99)), baseline->timeouts,
            base > 0 ? stats.responses_per_s() / base : 0.0));
  }
  out.push_back('}');
  return out;
}

}  // namespace pcfs::peerload
