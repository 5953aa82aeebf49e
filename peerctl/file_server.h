// FileServer: the holder's side of a download. A TCP server that answers
// "GET /f/<name>" (see peerctl/http.h) with a file of the share folder, its
// body sent with sendfile(2), one request per connection.
//
// A request is served only if the authorizer approves its (name, ticket)
// and OpenSharedFile() (peerctl/file_hash.h) opens the name below the share
// folder as a regular file; the authorizer is asked first, so a refused
// caller does not learn whether a file exists. Range requests (one range)
// get 206, or 416 past the end. "GET /m/<name>", approved the same way, is
// answered with the file's Merkle leaves from Options::leaf_source (404
// without one), for a downloader that verifies chunk by chunk and resumes.
//
// Limits, so that connections that never send a ticket cannot keep real
// downloads out (docs/SECURITY.md):
// - A connection is "pending" from accept until its head is read and its
//   ticket approved. It must send its whole head within
//   Options::head_timeout of the accept, however it trickles in; a head
//   that cannot become valid (bare LF, control bytes, a bad request line,
//   over 8 KiB) is answered 400 as soon as its bytes show it.
// - Pending connections are capped per source address
//   (Options::max_pending_heads_per_source; IPv6 counted by /64) and in all
//   (Options::max_pending_heads, lowered to fit RLIMIT_NOFILE, see
//   max_pending_heads()). A new connection over a cap closes the oldest
//   pending connection of that address (or the oldest of all), not the new
//   one: refusing new ones would let whoever holds the slots keep them by
//   renewing them, while a real client, which sends its head right after
//   its connect, is done with the pending stage long before it becomes the
//   oldest.
// - Only approved transfers hold one of Options::max_connections download
//   slots; an approved request finding them all taken is answered 503. An
//   approved transfer that makes no progress for Options::idle_timeout is
//   closed.
//
// TLS (Options::tls set; docs/SECURITY.md, "Transfers"): every connection
// speaks TLS 1.3 before its head, and the handshake is part of the pending
// stage: it runs under the head timeout and the pending caps, before any
// slot is taken. The body goes out with SSL_sendfile where kernel TLS took
// over the connection (kernel_tls_available() says whether this kernel can),
// else with SSL_write from buffers pread from the file. Without Options::tls
// the server speaks plain HTTP and sends bodies with sendfile(2).
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

#include <sys/stat.h>

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
#include "peerctl/tls.h"

namespace pcfs {

class FileServer {
 public:
  // Decides whether the holder of `ticket` (empty if the request had none)
  // may download `name`. OK serves it; Unauthenticated answers 401,
  // PermissionDenied 403, NotFound 404; any other error is refused too (with
  // the code http::HttpCodeFromStatus gives).
  using Authorizer = std::function<absl::Status(absl::string_view name,
                                                absl::string_view ticket)>;

  // The Merkle leaves of `name` (core/proto/merkle.h), concatenated in
  // chunk order, or the error to answer with (as for the authorizer). Runs
  // on the server thread: it should answer from a cache (a miss hashes the
  // file while every other transfer waits).
  using LeafSource =
      std::function<absl::StatusOr<std::string>(absl::string_view name)>;

  struct Options {
    std::string share_dir;  // served files live directly in it
    // Where to listen; port 0 lets the kernel pick (see port()). An IPv6
    // wildcard ("::") also accepts IPv4.
    SocketAddress bind;
    Authorizer authorizer;   // required
    LeafSource leaf_source;  // optional
    // Optional: asked, once the file is open, whether its fstat is the
    // version that may go out; an error is answered with its HTTP code.
    std::function<absl::Status(absl::string_view name, const struct stat&)>
        file_check;
    // Download slots: approved transfers at once.
    int max_connections = 64;
    // An approved transfer that makes no progress for this long is closed.
    absl::Duration idle_timeout = absl::Seconds(30);
    // From accept to a whole head; not renewed by the bytes that arrive.
    absl::Duration head_timeout = absl::Seconds(5);
    // Pending (not yet approved) connections from one IPv4 address or one
    // IPv6 /64.
    int max_pending_heads_per_source = 8;
    // Pending connections in all; lowered at Start() to fit the descriptor
    // limit (see max_pending_heads()).
    int max_pending_heads = 1024;
    // TLS 1.3 with this context; null: plain HTTP (--plaintext-transfers).
    std::shared_ptr<const TlsServerContext> tls;
  };

  // Checks that the share folder opens (each request opens the folder its
  // path names then, as `pub` hashes through the path), binds, listens and
  // starts the server thread.
  // InvalidArgument without an authorizer, with a limit below 1 or a
  // timeout that is not positive; otherwise the errno of the call that
  // failed.
  static absl::StatusOr<std::unique_ptr<FileServer>> Start(Options options);

  FileServer(const FileServer&) = delete;
  FileServer& operator=(const FileServer&) = delete;

  // Stops the thread, closing the listener and every connection (downloads
  // in progress see their connection end early).
  ~FileServer();

  // The bound port and address.
  uint16_t port() const { return port_; }
  const SocketAddress& address() const { return address_; }
  // The cap on pending connections in force: Options::max_pending_heads,
  // but at most half the soft RLIMIT_NOFILE at Start() less two descriptors
  // per download slot (a socket and a file), so that the rest of the
  // process keeps descriptors of its own; and at least
  // max_pending_heads_per_source.
  int max_pending_heads() const { return max_pending_heads_; }
  // How bodies go out, for the log line at start: "plain HTTP, sendfile",
  // "TLS 1.3, kernel TLS with SSL_sendfile" or "TLS 1.3, userspace TLS
  // (...)".
  const std::string& transfer_mode() const { return transfer_mode_; }

 private:
  class Loop;

  FileServer(std::unique_ptr<Loop> loop, SocketAddress address, uint16_t port,
             int max_pending_heads, std::string transfer_mode);

  std::unique_ptr<Loop> loop_;
  const std::string transfer_mode_;
  const SocketAddress address_;
  const uint16_t port_;
  const int max_pending_heads_;
  std::thread thread_;
};

}  // namespace pcfs

#endif  // PCFS_PEERCTL_FILE_SERVER_H_
