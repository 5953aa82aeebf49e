// The interactive shell of peerctl: the classic session, word for word.
//
//   Username: hans
//   Password: hanspass
//   > pub BitTrickle.mp4
//   File published successfully
//   > xit
//   Goodbye!
//
// The shell reads lines from `in` and writes to `out`; the password is read
// without echo when `in` is a terminal. Not thread-safe: one shell per
// process.
#ifndef PCFS_PEERCTL_SHELL_H_
#define PCFS_PEERCTL_SHELL_H_

#include <cstdio>
#include <string>

#include "peerctl/peer.h"

namespace pcfs {

// Runs the login prompts and then the command loop until `xit` or end of
// input. Returns the process exit code (see peerctl/exit_codes.h). When a
// `peerctl serve` agent answers at `agent_socket`, the shell attaches to it
// instead: no prompts, the commands run in the agent's session, and `xit`
// leaves the agent running.
int RunShell(const PeerOptions& options, const std::string& agent_socket,
             std::FILE* in, std::FILE* out, std::FILE* err);

// The line printed for an unknown command or a missing argument.
inline constexpr char kCommandList[] =
    "Available commands are: get, lap, lpf, pub, sch, unp, xit";

}  // namespace pcfs

#endif  // PCFS_PEERCTL_SHELL_H_
