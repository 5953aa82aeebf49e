#include "core/base/cli.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/commandlineflag.h"
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

// A flag argument as absl reads it: "--NAME" or "--NAME=VALUE", one dash
// or two.
struct FlagArgument {
  absl::string_view name;   // as written: "noverbose" for --noverbose
  bool has_value = false;   // "=VALUE" follows the name
  absl::string_view value;  // VALUE
  bool builtin = false;     // one of absl's own (IsBuiltinFlag)
  // The flag it sets (of NAME, or of what follows "no" in a negative form),
  // or null for a flag nobody defined.
  absl::CommandLineFlag* flag = nullptr;
  bool negative = false;  // "--noNAME" of a defined NAME
};

// `arg` read as a flag; nullopt for an argument that is none ("x", "-").
// The caller stops at "--".
std::optional<FlagArgument> ReadFlagArgument(absl::string_view arg) {
  if (arg.size() < 2 || arg[0] != '-' || arg == "-") return std::nullopt;
  arg.remove_prefix(arg[1] == '-' ? 2 : 1);
  FlagArgument flag;
  const size_t equals = arg.find('=');
  flag.name = arg.substr(0, equals);
  flag.has_value = equals != absl::string_view::npos;
  if (flag.has_value) flag.value = arg.substr(equals + 1);
  flag.builtin = IsBuiltinFlag(flag.name);
  if (flag.builtin) return flag;
  flag.flag = absl::FindCommandLineFlag(flag.name);
  if (flag.flag == nullptr && absl::StartsWith(flag.name, "no")) {
    flag.flag = absl::FindCommandLineFlag(flag.name.substr(2));
    flag.negative = flag.flag != nullptr;
  }
  return flag;
}

// How many flag files deep one may name another.
constexpr int kMaxFlagfileDepth = 8;

// The value of an argument of the builtin flag `name` ("flagfile",
// "fromenv", "tryfromenv"): "--NAME=VALUE" or "-NAME=VALUE" (nullopt for
// any other argument); "--NAME"/"-NAME" alone sets *takes_next.
std::optional<std::string> BuiltinValue(absl::string_view arg,
                                        absl::string_view name,
                                        bool* takes_next) {
  *takes_next = false;
  for (absl::string_view dashes : {"--", "-"}) {
    if (!absl::StartsWith(arg, dashes)) continue;
    absl::string_view rest = arg.substr(dashes.size());
    if (!absl::StartsWith(rest, name)) continue;
    rest.remove_prefix(name.size());
    if (rest.empty()) {
      *takes_next = true;
      return std::nullopt;
    }
    if (rest[0] == '=') return std::string(rest.substr(1));
  }
  return std::nullopt;
}

// If args[*i] is the builtin flag `name`, its value: after the "=", or
// the next argument, which *i then passes. InvalidArgument "ARG needs
// WHAT" when there is no next argument.
absl::StatusOr<std::optional<std::string>> TakeBuiltinValue(
    const std::vector<std::string>& args, size_t* i, absl::string_view name,
    absl::string_view what) {
  bool takes_next = false;
  std::optional<std::string> value = BuiltinValue(args[*i], name, &takes_next);
  if (!takes_next) return value;
  if (*i + 1 == args.size()) {
    return absl::InvalidArgumentError(absl::StrCat(args[*i], " needs ", what));
  }
  return args[++*i];
}

// The flags that --fromenv=LIST (`required`) or --tryfromenv=LIST take from
// the environment, as absl reads them: each NAME of the comma-separated
// LIST from the variable FLAGS_NAME ("--NAME=VALUE", dashes in NAME read
// as underscores, as on the command line). InvalidArgument for a variable
// --fromenv names that is not set; --tryfromenv skips those.
struct EnvironmentFlag {
  std::string arg;       // "--NAME=VALUE"
  std::string variable;  // "FLAGS_NAME"
};
absl::StatusOr<std::vector<EnvironmentFlag>> FlagsFromEnvironment(
    absl::string_view list, bool required) {
  std::vector<EnvironmentFlag> flags;
  for (absl::string_view name : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    std::string variable = absl::StrCat("FLAGS_", name);
    std::replace(variable.begin(), variable.end(), '-', '_');
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr) {
      if (!required) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "--fromenv: ", variable, " is not set in the environment"));
    }
    flags.push_back({absl::StrCat("--", name, "=", value), variable});
  }
  return flags;
}

// Arguments, each with where it came from: "in FILE" for a flag file's,
// "from FLAGS_NAME" for the environment's, "" for the command line's.
struct Expanded {
  std::vector<std::string> args;
  std::vector<std::string> origins;
};

// If args[*i] is --fromenv=LIST or --tryfromenv=LIST (its list maybe the
// next argument, which *i then passes), appends the flags it names
// (FlagsFromEnvironment) to `out` in its place and returns true.
absl::StatusOr<bool> ExpandFromEnvironment(const std::vector<std::string>& args,
                                           size_t* i, Expanded& out) {
  for (const bool required : {true, false}) {
    absl::StatusOr<std::optional<std::string>> list = TakeBuiltinValue(
        args, i, required ? "fromenv" : "tryfromenv", "a list of flag names");
    if (!list.ok()) return list.status();
    if (!list->has_value()) continue;
    absl::StatusOr<std::vector<EnvironmentFlag>> flags =
        FlagsFromEnvironment(**list, required);
    if (!flags.ok()) return flags.status();
    for (EnvironmentFlag& flag : *flags) {
      out.args.push_back(std::move(flag.arg));
      out.origins.push_back(absl::StrCat("from ", flag.variable));
    }
    return true;
  }
  return false;
}

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
    absl::StatusOr<bool> from_environment =
        ExpandFromEnvironment(args, &i, out);
    if (!from_environment.ok()) return from_environment.status();
    if (*from_environment) continue;
    absl::StatusOr<std::optional<std::string>> path =
        TakeBuiltinValue(args, &i, "flagfile", "a file");
    if (!path.ok()) return path.status();
    if (!path->has_value()) {
      out.args.push_back(std::move(args[i]));
      out.origins.push_back(origin);
      continue;
    }
    // As absl: several files, comma-separated, read in turn.
    for (absl::string_view one : absl::StrSplit(**path, ',')) {
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
      if (absl::Status s = ExpandInto(
              *std::move(flags), 0, absl::StrCat("in ", file), depth + 1, out);
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

// What a value absl cannot parse is wrong with, if its parser said more
// than that it is illegal.
std::string ParseErrorDetail(absl::string_view error) {
  const size_t detail = error.find("; ");
  if (detail == absl::string_view::npos) return "";
  return absl::StrCat(": ", error.substr(detail + 2));
}

// Sets every flag of `args` (NormaliseFlagSpelling of `expanded.args`, each
// flag defined: FindUndefinedFlag) to its value, as absl's parser reads it
// ("--NAME=VALUE", "--NAME VALUE", a yes-or-no flag's "--NAME" and
// "--noNAME"), so that a value that does not parse, or is missing, is an
// InvalidArgument naming the flag as the user spelt it and where it came
// from. absl's parser, which sets them again after this, would print its
// own message and exit with status 1 instead of a usage error's 2.
absl::Status SetFlagValues(const std::vector<std::string>& args,
                           const Expanded& expanded) {
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--") break;
    const std::optional<FlagArgument> arg = ReadFlagArgument(args[i]);
    // Builtins are absl's; an undefined flag is FindUndefinedFlag's.
    if (!arg.has_value() || arg->builtin || arg->flag == nullptr) continue;
    absl::string_view shown = expanded.args[i];
    shown = shown.substr(0, shown.find('='));
    const std::string& origin = expanded.origins[i];
    const std::string where =
        origin.empty() ? "" : absl::StrCat(" (", origin, ")");
    std::string value(arg->value);
    if (arg->flag->IsOfType<bool>()) {
      if (arg->negative && arg->has_value) {
        return absl::InvalidArgumentError(
            absl::StrCat(shown, " takes no value", where));
      }
      if (!arg->has_value) value.assign(1, arg->negative ? '0' : '1');
    } else if (arg->negative) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag ", shown, " (--", arg->flag->Name(),
                       " is not a yes-or-no flag)", where));
    } else if (!arg->has_value) {
      if (i + 1 == args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat(shown, " needs a value", where));
      }
      value = args[++i];
    }
    std::string error;
    if (!arg->flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value '", value, "' for ", shown,
                       ParseErrorDetail(error), where));
    }
  }
  return absl::OkStatus();
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
    if (args[i] == "--") break;
    const std::optional<FlagArgument> arg = ReadFlagArgument(args[i]);
    if (arg.has_value() && !arg->builtin && arg->flag == nullptr) return i;
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
                     origin.empty() ? "" : absl::StrCat(" (", origin, ")")));
  }
  if (absl::Status s = SetFlagValues(normalised, *expanded); !s.ok()) {
    return s;
  }
  std::vector<char*> raw;
  raw.reserve(normalised.size());
  for (std::string& arg : normalised) raw.push_back(arg.data());
  std::vector<char*> args =
      absl::ParseCommandLine(static_cast<int>(raw.size()), raw.data());
  return std::vector<std::string>(args.begin() + 1, args.end());
}

std::vector<std::string> ParseCommandLineOrExit(int argc, char** argv) {
  absl::StatusOr<std::vector<std::string>> args =
      ParseCommandLineStrictly(argc, argv);
  if (args.ok()) return *std::move(args);
  std::string program = argc > 0 ? argv[0] : "";
  program.erase(0, program.rfind('/') + 1);  // npos + 1: the whole name
  std::fprintf(stderr, "%s: %s\n(%s --help for usage)\n", program.c_str(),
               std::string(args.status().message()).c_str(), program.c_str());
  std::exit(2);
}

}  // namespace pcfs
