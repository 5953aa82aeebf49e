// NameThisThread: names the calling thread as `top -H`, `ps -L`, gdb and
// /proc/PID/task/TID/comm show it, so that an operator can tell a daemon's
// reactors from its journal writer. Linux keeps 15 bytes of a name: a
// longer one is cut there (at a byte, so keep names ASCII).
//
// Never call it on a process's main thread: the main thread's name is the
// process's (`ps`, `pgrep`, `pidof` and systemd read it).
#ifndef PCFS_CORE_BASE_THREAD_NAME_H_
#define PCFS_CORE_BASE_THREAD_NAME_H_

#include <string>

#include "absl/strings/string_view.h"

namespace pcfs {

// How many bytes of a name Linux keeps (TASK_COMM_LEN less its NUL).
inline constexpr size_t kMaxThreadNameBytes = 15;

// Best effort: a thread that cannot be named keeps its name.
void NameThisThread(absl::string_view name);

// The calling thread's name, as the kernel keeps it.
std::string ThisThreadName();

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_THREAD_NAME_H_
