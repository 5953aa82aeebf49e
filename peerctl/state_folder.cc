#include "peerctl/state_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "core/base/unique_fd.h"

namespace pcfs {

std::string StateFilePath(absl::string_view file) {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') {
    return absl::StrCat(state, "/peerconnect/", file);
  }
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') {
    return absl::StrCat(home, "/.local/state/peerconnect/", file);
  }
  return "";
}

absl::Status MakePrivateFolders(const std::string& path) {
  for (size_t at = 1; at <= path.size(); ++at) {
    if (at != path.size() && path[at] != '/') continue;
    const std::string prefix = path.substr(0, at);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(absl::StrCat("mkdir ", prefix), errno);
    }
  }
  return absl::OkStatus();
}

std::string FolderOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos
             ? "."
             : path.substr(0, std::max<size_t>(slash, 1));
}

absl::Status MakePrivateFolderOf(const std::string& path) {
  return MakePrivateFolders(FolderOf(path));
}

}  // namespace pcfs
