// Command-line helpers shared by the binaries' mains.
// Thread-safe (they touch only their arguments and absl's flag registry).
#ifndef PCFS_CORE_BASE_CLI_H_
#define PCFS_CORE_BASE_CLI_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pcfs {

// Rewrites "--foo-bar" to "--foo_bar" in every flag name (not in values), so
// that users may spell absl flags with dashes. Stops at "--".
std::vector<std::string> NormaliseFlagSpelling(int argc, char** argv);

// The index of the first argument that names a flag nobody defined
// ("--bogus", "--nobogus"), or nullopt. absl itself would exit with status 1 on
// one; the mains call this first so that a bad command line exits 2 with a
// usage message, as they document.
std::optional<size_t> FindUndefinedFlag(const std::vector<std::string>& args);

// Parses the command line with absl, after NormaliseFlagSpelling and a
// FindUndefinedFlag check. Returns the positional arguments (argv[0] left
// out), or InvalidArgument "unknown flag --x" (with the user's spelling).
absl::StatusOr<std::vector<std::string>> ParseCommandLineStrictly(int argc,
                                                                  char** argv);

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_CLI_H_
