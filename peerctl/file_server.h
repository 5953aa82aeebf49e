// FileServer: the holder's side of a download. A TCP server that answers
// "GET /f/<name>" (see peerctl/http.h) with a file of the share folder, its
// body sent with sendfile(2), one request per connection.
//
// A request is served only if the authorizer approves its (name, ticket)
// and OpenSharedFile() (peerctl/file_hash.h) opens the name below the share
// folder as a regular file; the authorizer is asked first, so a refused
// caller does not learn whether a file exists. Range requests (one range)
// get 206, or 416 past the end. A connection that makes no progress for
// Options::idle_timeout is closed; connections beyond
// Options::max_connections are answered 503.
//
// One thread runs an epoll loop over non-blocking sockets; it is started by
// Start() and stopped and joined by the destructor, which closes every
// socket. The thread blocks SIGPIPE for itself, so a client that goes away
// costs an EPIPE, never the process.
//
// Thread-safety: port() and address() may be called from any thread. The
// authorizer runs on the server thread, concurrently with the caller's
// threads, and must not block for long: every download waits for it.
#ifndef PCFS_PEERCTL_FILE_SERVER_H_
#define PCFS_PEERCTL_FILE_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"

namespace pcfs {

class FileServer {
 public:
  // Decides whether the holder of `ticket` (empty if the request had none)
  // may download `name`. OK serves it; Unauthenticated answers 401,
  // PermissionDenied 403, NotFound 404; any other error is refused too (with
  // the code http::HttpCodeFromStatus gives).
  using Authorizer = std::function<absl::Status(absl::string_view name,
                                                absl::string_view ticket)>;

  struct Options {
    std::string share_dir;  // served files live directly in it
    // Where to listen; port 0 lets the kernel pick (see port()). An IPv6
    // wildcard ("::") also accepts IPv4.
    SocketAddress bind;
    Authorizer authorizer;  // required
    int max_connections = 64;
    absl::Duration idle_timeout = absl::Seconds(30);
  };

  // Opens the share folder, binds, listens and starts the server thread.
  // InvalidArgument without an authorizer or with max_connections < 1;
  // otherwise the errno of the call that failed.
  static absl::StatusOr<std::unique_ptr<FileServer>> Start(Options options);

  FileServer(const FileServer&) = delete;
  FileServer& operator=(const FileServer&) = delete;

  // Stops the thread, closing the listener and every connection (downloads
  // in progress see their connection end early).
  ~FileServer();

  // The bound port and address.
  uint16_t port() const { return port_; }
  const SocketAddress& address() const { return address_; }

 private:
  class Loop;

  FileServer(std::unique_ptr<Loop> loop, SocketAddress address, uint16_t port);

  std::unique_ptr<Loop> loop_;
  const SocketAddress address_;
  const uint16_t port_;
  std::thread thread_;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_FILE_SERVER_H_
