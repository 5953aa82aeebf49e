#include "bench/peerload/options.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pcfs::peerload {
namespace {

constexpr uint32_t kMaxWeight = 1'000'000;
constexpr std::array<absl::string_view, kRequestKinds> kKindNames = {
    "heartbeat", "get", "sch", "lap", "lpf", "pub", "unp"};

}  // namespace

absl::string_view RequestKindName(RequestKind kind) {
  return kKindNames[static_cast<size_t>(kind)];
}

uint32_t Mix::total() const {
  uint32_t sum = 0;
  for (uint32_t w : weights) sum += w;
  return sum;
}

std::string Mix::ToString() const {
  std::vector<std::string> parts;
  for (int i = 0; i < kRequestKinds; ++i) {
    if (weights[i] != 0)
      parts.push_back(absl::StrCat(kKindNames[i], "=", weights[i]));
  }
  if (parts.empty()) return "none";
  return absl::StrJoin(parts, ",");
}

absl::StatusOr<Mix> ParseMix(absl::string_view text) {
  Mix mix;
  text = absl::StripAsciiWhitespace(text);
  if (text == "none") return mix;
  if (text.empty()) {
    return absl::InvalidArgumentError(
        "--mix is empty (say \"none\" for mandatory heartbeats only)");
  }
  std::array<bool, kRequestKinds> seen{};
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    int kind = -1;
    for (int i = 0; i < kRequestKinds; ++i) {
      if (kv.first == kKindNames[i]) kind = i;
    }
    if (kind < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mix: unknown request kind '", kv.first,
                       "' (known: heartbeat, get, sch, lap, lpf)"));
    }
    if (seen[kind]) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mix: '", kv.first, "' is given twice"));
    }
    seen[kind] = true;
    uint32_t weight = 0;
    if (!absl::SimpleAtoi(kv.second, &weight) || weight > kMaxWeight) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--mix: the weight of '", kv.first, "' must be an integer 0..",
          kMaxWeight, ", not '", kv.second, "'"));
    }
    mix.weights[kind] = weight;
  }
  return mix;
}

}  // namespace pcfs::peerload
