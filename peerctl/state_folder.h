// peerctl's state folder: $XDG_STATE_HOME/peerconnect, or
// ~/.local/state/peerconnect without XDG_STATE_HOME. It holds the TLS
// identity (peerctl/tls.h), the hash store (peerctl/hash_store.h) and the
// shell's history (peerctl/line_editor.h).
#ifndef PCFS_PEERCTL_STATE_FOLDER_H_
#define PCFS_PEERCTL_STATE_FOLDER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pcfs {

// The path of `file` in the state folder; empty if neither XDG_STATE_HOME
// nor HOME is an absolute path.
std::string StateFilePath(absl::string_view file);

// mkdir -p, with mode 0700 for each folder it makes. The mkdir errno,
// naming the folder, on failure.
absl::Status MakePrivateFolders(const std::string& path);

// The folder that holds the file at `path` ("." for a bare name), and
// MakePrivateFolders of it.
std::string FolderOf(const std::string& path);
absl::Status MakePrivateFolderOf(const std::string& path);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_STATE_FOLDER_H_
