#include "core/base/cli.h"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/base/file_util.h"

namespace pcfs {
namespace {

// Flags absl's parser handles itself.
bool IsBuiltinFlag(absl::string_view name) {
  for (absl::string_view builtin :
       {"help", "helpfull", "helpshort", "helppackage", "helpon", "helpmatch",
        "version", "only_check_args", "flagfile", "fromenv", "tryfromenv",
        "undefok"}) {
    if (name == builtin) return true;
  }
  return false;
}

// How many flag files deep one may name another.
constexpr int kMaxFlagfileDepth = 8;

// The path of a flagfile argument: "--flagfile=PATH" or "-flagfile=PATH"
// (nullopt otherwise); "--flagfile"/"-flagfile" alone sets *takes_next.
std::optional<std::string> FlagfilePath(absl::string_view arg,
                                        bool* takes_next) {
  *takes_next = false;
  for (absl::string_view prefix : {"--flagfile", "-flagfile"}) {
    if (!absl::StartsWith(arg, prefix)) continue;
    absl::string_view rest = arg.substr(prefix.size());
    if (rest.empty()) {
      *takes_next = true;
      return std::nullopt;
    }
    if (rest[0] == '=') return std::string(rest.substr(1));
  }
  return std::nullopt;
}

// Arguments, each with the flag file it came from ("" for the command
// line).
struct Expanded {
  std::vector<std::string> args;
  std::vector<std::string> origins;
};

absl::Status ExpandInto(std::vector<std::string> args, size_t first,
                        const std::string& origin, int depth, Expanded& out) {
  for (size_t i = first; i < args.size(); ++i) {
    if (args[i] == "--") {
      for (; i < args.size(); ++i) {
        out.args.push_back(std::move(args[i]));
        out.origins.push_back(origin);
      }
      return absl::OkStatus();
    }
    bool takes_next = false;
    std::optional<std::string> path = FlagfilePath(args[i], &takes_next);
    if (takes_next) {
      if (i + 1 == args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat(args[i], " needs a file"));
      }
      path = args[++i];
    }
    if (!path.has_value()) {
      out.args.push_back(std::move(args[i]));
      out.origins.push_back(origin);
      continue;
    }
    // As absl: several files, comma-separated, read in turn.
    for (absl::string_view one : absl::StrSplit(*path, ',')) {
      const std::string file(one);
      if (depth == kMaxFlagfileDepth) {
        return absl::InvalidArgumentError(
            absl::StrCat("--flagfile: ", file, " is named more than ",
                         kMaxFlagfileDepth, " flag files deep (a loop?)"));
      }
      absl::StatusOr<std::string> text = ReadFileToString(file);
      if (!text.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--flagfile: ", text.status().message()));
      }
      absl::StatusOr<std::vector<std::string>> flags =
          ParseFlagfile(*text, file);
      if (!flags.ok()) return flags.status();
      if (absl::Status s =
              ExpandInto(*std::move(flags), 0, file, depth + 1, out);
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> NormaliseFlagSpelling(std::vector<std::string> args) {
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& arg = args[i];
    if (arg == "--") break;
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) continue;
    const size_t end = std::min(arg.find('='), arg.size());
    for (size_t j = 2; j < end; ++j) {
      if (arg[j] == '-') arg[j] = '_';
    }
  }
  return args;
}

absl::StatusOr<std::vector<std::string>> ParseFlagfile(absl::string_view text,
                                                       absl::string_view path) {
  std::vector<std::string> flags;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] != '-' || line == "-" || line == "--") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", number, ": '", line,
                       "' is not a flag (one --flag=value a line)"));
    }
    flags.emplace_back(line);
  }
  return flags;
}

namespace {

absl::StatusOr<Expanded> Expand(std::vector<std::string> args) {
  Expanded out;
  if (args.empty()) return out;
  out.args.push_back(args[0]);
  out.origins.emplace_back();
  if (absl::Status s = ExpandInto(std::move(args), 1, "", 0, out); !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandFlagfiles(
    std::vector<std::string> args) {
  absl::StatusOr<Expanded> expanded = Expand(std::move(args));
  if (!expanded.ok()) return expanded.status();
  return std::move(expanded->args);
}

std::optional<size_t> FindUndefinedFlag(const std::vector<std::string>& args) {
  for (size_t i = 1; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-' || arg == "-") continue;
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    absl::string_view name = arg.substr(0, arg.find('='));
    if (IsBuiltinFlag(name) || absl::FindCommandLineFlag(name) != nullptr) {
      continue;
    }
    if (absl::StartsWith(name, "no") &&
        absl::FindCommandLineFlag(name.substr(2)) != nullptr) {
      continue;
    }
    return i;
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<std::string>> ParseCommandLineStrictly(int argc,
                                                                  char** argv) {
  absl::StatusOr<Expanded> expanded =
      Expand(std::vector<std::string>(argv, argv + argc));
  if (!expanded.ok()) return expanded.status();
  std::vector<std::string> normalised = NormaliseFlagSpelling(expanded->args);
  if (std::optional<size_t> bad = FindUndefinedFlag(normalised)) {
    const std::string& origin = expanded->origins[*bad];
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag ", expanded->args[*bad],
                     origin.empty() ? "" : absl::StrCat(" (in ", origin, ")")));
  }
  std::vector<char*> raw;
  raw.reserve(normalised.size());
  for (std::string& arg : normalised) raw.push_back(arg.data());
  std::vector<char*> args =
      absl::ParseCommandLine(static_cast<int>(raw.size()), raw.data());
  return std::vector<std::string>(args.begin() + 1, args.end());
}

}  // namespace pcfs
