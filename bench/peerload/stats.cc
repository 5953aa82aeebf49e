#include "bench/peerload/stats.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

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

}  // namespace

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
            "us p99 %.0f us; %u logins, %u retried, %u names published\n",
            stats.logged_in, stats.peers, stats.login_s, o.login_rate,
            Micros(stats.login_latency.Quantile(0.5)),
            Micros(stats.login_latency.Quantile(0.99)), stats.logins,
            stats.login_retries, stats.publications));
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
      "\"login_p99_us\":%.1f,\"not_found\":%u,\"logouts\":%u,"
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
      Micros(stats.login_latency.Quantile(0.99)), stats.not_found,
      stats.logouts, JsonErrors(stats));
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
