#include "core/base/cli.h"

#include <algorithm>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

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

}  // namespace

std::vector<std::string> NormaliseFlagSpelling(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
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
  std::vector<std::string> normalised = NormaliseFlagSpelling(argc, argv);
  if (std::optional<size_t> bad = FindUndefinedFlag(normalised)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag ", argv[*bad]));
  }
  std::vector<char*> raw;
  raw.reserve(normalised.size());
  for (std::string& arg : normalised) raw.push_back(arg.data());
  std::vector<char*> args =
      absl::ParseCommandLine(static_cast<int>(raw.size()), raw.data());
  return std::vector<std::string>(args.begin() + 1, args.end());
}

}  // namespace pcfs
