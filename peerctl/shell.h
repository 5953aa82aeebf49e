// The interactive shell of peerctl: the classic session, word for word.
//
//   Username: hans
//   Password: hanspass
//   > pub BitTrickle.mp4
//   > lpf
//   BitTrickle.mp4
//   > xit
//
// A command that worked and has nothing to list (pub, unp, xit) prints
// nothing; a failure prints one line saying why. The shell reads lines from
// `in` and writes to `out`; the password is read without echo when `in` is a
// terminal. On a terminal, command lines are
// edited with libedit (peerctl/line_editor.h): history, Tab completion of
// commands, of the share folder's files after `pub`, of this user's
// publications after `unp` and of the last `sch`'s names after `get`;
// Ctrl-C clears the line at the prompt and cancels a running `get`, whose
// progress shows on `err` when that is a terminal. Not thread-safe: one
// shell per process.
#ifndef PCFS_PEERCTL_SHELL_H_
#define PCFS_PEERCTL_SHELL_H_

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "peerctl/peer.h"

namespace pcfs {

// Runs the login prompts and then the command loop until `xit` or end of
// input. Returns the process exit code (see peerctl/exit_codes.h). When a
// `peerctl serve` agent answers at `agent_socket`, the shell attaches to it
// instead: no prompts, the commands run in the agent's session, and `xit`
// leaves the agent running.
int RunShell(const PeerOptions& options, const std::string& agent_socket,
             std::FILE* in, std::FILE* out, std::FILE* err);

// What Tab may complete at the end of `before_cursor`: a command name, or,
// after a command, what `arguments(command)` gives. Sets `*word_start` to
// where the word being completed starts. (Candidates are not filtered by
// that word: the line editor does it.)
std::vector<std::string> ShellCompletions(
    absl::string_view before_cursor, size_t* word_start,
    const std::function<std::vector<std::string>(absl::string_view command)>&
        arguments);

// The line printed for an unknown command or a missing argument.
inline constexpr char kCommandList[] =
    "Available commands are: get, lap, lpf, pub, sch, unp, xit";

}  // namespace pcfs

#endif  // PCFS_PEERCTL_SHELL_H_
