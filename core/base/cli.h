// Command-line helpers shared by the binaries' mains.
// Thread-safe (they touch only their arguments and absl's flag registry).
#ifndef PCFS_CORE_BASE_CLI_H_
#define PCFS_CORE_BASE_CLI_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pcfs {

// Rewrites "--foo-bar" to "--foo_bar" in every flag name (not in values), so
// that users may spell absl flags with dashes. Stops at "--".
// `args` is argv, argv[0] first.
std::vector<std::string> NormaliseFlagSpelling(std::vector<std::string> args);

// The index of the first argument that names a flag nobody defined
// ("--bogus", "--nobogus"), or nullopt. absl itself would exit with status 1 on
// one; the mains call this first so that a bad command line exits 2 with a
// usage message, as they document.
std::optional<size_t> FindUndefinedFlag(const std::vector<std::string>& args);

// The flags in the text of a flag file `path` (for messages), one a line:
// blank lines and lines starting with '#' are skipped, and the blanks
// around a line are not part of it, as absl reads a --flagfile.
// InvalidArgument "PATH:LINE: ..." for a line that is not a flag. Pure.
absl::StatusOr<std::vector<std::string>> ParseFlagfile(absl::string_view text,
                                                       absl::string_view path);

// `args` (argv[0] first) with every --flagfile=PATH ("--flagfile PATH",
// one dash or two; PATH may list several files, comma-separated, as absl
// allows) before any "--" replaced by the flags PATH holds
// (ParseFlagfile), in place and recursively (at most 8 files deep), and
// every --fromenv=LIST or --tryfromenv=LIST by "--NAME=VALUE" for each
// NAME of LIST whose variable FLAGS_NAME is set, so that these flags get
// the same spelling rules and checks as the command line's.
// InvalidArgument naming the file when one cannot be read or holds a line
// that is not a flag, or the variable when --fromenv names one not set.
absl::StatusOr<std::vector<std::string>> ExpandFlagfiles(
    std::vector<std::string> args);

// Parses the command line with absl, after ExpandFlagfiles,
// NormaliseFlagSpelling, a FindUndefinedFlag check and a check of every
// flag's value. Returns the positional arguments (argv[0] left out), or
// InvalidArgument "unknown flag --x", "invalid value 'v' for --x" or "--x
// needs a value" (with the user's spelling, and "(in FILE)" or "(from
// FLAGS_x)" for a flag that came from a file or the environment): absl's
// parser would exit 1 with its own message on any of these, where the
// mains document a usage error's 2.
absl::StatusOr<std::vector<std::string>> ParseCommandLineStrictly(int argc,
                                                                  char** argv);

// ParseCommandLineStrictly for the tools of bench/: on an error it prints
// "PROGRAM: MESSAGE" and "(PROGRAM --help for usage)" to stderr, PROGRAM
// being argv[0]'s last component, and exits 2.
std::vector<std::string> ParseCommandLineOrExit(int argc, char** argv);

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_CLI_H_
