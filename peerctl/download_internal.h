// The pieces of peerctl/downloader.cc that peerctl/resumable_download.cc
// uses too: the bounds of a download, connecting, sending, receiving a
// response head and a body. Not an interface for anything else.
//
// Thread-safety: plain functions over the caller's own descriptors.
#ifndef PCFS_PEERCTL_DOWNLOAD_INTERNAL_H_
#define PCFS_PEERCTL_DOWNLOAD_INTERNAL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"
#include "peerctl/body_sink.h"
#include "peerctl/downloader.h"
#include "peerctl/http.h"
#include "peerctl/tls.h"

namespace pcfs::download_internal {

// What bounds a download: its stall timeout, its overall deadline and the
// caller's cancel flag.
struct Bounds {
  absl::Duration timeout;
  absl::Time deadline;
  const std::atomic<bool>* cancel;

  bool cancelled() const {
    return cancel != nullptr && cancel->load(std::memory_order_relaxed);
  }
};

// A TCP connection to `holder` within `connect_timeout` (DeadlineExceeded
// "holder ... did not answer within 3 s").
absl::StatusOr<UniqueFd> Connect(const SocketAddress& holder,
                                 absl::Duration connect_timeout,
                                 const Bounds& bounds);

// A connection to the holder as the functions below use it: TCP, with TLS
// on it unless `ssl` is null (a holder serving plain HTTP). Borrowed from a
// HolderConnection.
struct HolderLink {
  int fd = -1;
  ssl_st* ssl = nullptr;
};

// An open connection to a holder, its TLS handshake done. Members in this
// order so that TLS is torn down before the socket closes.
struct HolderConnection {
  UniqueFd socket;
  std::optional<TlsClientConnection> tls;

  HolderLink link() const { return {socket.get(), tls ? tls->ssl() : nullptr}; }
};

// Connect(), then the TLS handshake that accepts only `request.holder_pin`
// (none for a zero pin); each within `request.connect_timeout`
// (DeadlineExceeded "holder A:P did not answer the TLS handshake within
// 3 s": a stopped holder's kernel still accepts the TCP connection).
// PermissionDenied with IsKeyMismatch() for another key: "holder hans at A:P
// presented a different key than the daemon registered for it; refusing the
// download".
absl::StatusOr<HolderConnection> ConnectToHolder(const DownloadRequest& request,
                                                 const Bounds& bounds);

absl::Status SendAll(const HolderLink& link, absl::string_view data,
                     const Bounds& bounds);

// Receives up to `size` bytes; 0 means the holder closed the connection.
absl::StatusOr<size_t> Receive(const HolderLink& link, char* data, size_t size,
                               const Bounds& bounds, absl::string_view what);

// The response head, read into `buffer` (http::kMaxHeadBytes long);
// `*body_start..*filled` of the buffer holds the first body bytes that came
// with it.
absl::StatusOr<http::Response> ReadResponseHead(const HolderLink& link,
                                                std::vector<char>& buffer,
                                                size_t* body_start,
                                                size_t* filled,
                                                const Bounds& bounds);

// What the file's own name leads to in the download folder, which held
// nothing there when the get began.
enum class AtName {
  kNothing,
  kTheFile,  // the file being downloaded: another get of it finished first
  kOther,    // something else, which is left alone
};
// Looks: the file is a regular file of `size` bytes whose Merkle root is
// `root`.
absl::StatusOr<AtName> LookAtName(int dir_fd, const std::string& name,
                                  uint64_t size, const Sha256Digest& root);

// Reserves `size` bytes for `fd` where the file system can.
absl::Status Preallocate(int fd, uint64_t size);

// Receives `length` body bytes into `sink`, the first `prefix` of them
// already in hand: spliced through a pipe from a plain connection,
// decrypted and appended from a TLS one.
absl::Status ReceiveBody(
    const HolderLink& link, BodySink& sink, absl::string_view prefix,
    uint64_t length, const Bounds& bounds,
    const std::function<void(uint64_t, uint64_t)>& progress);

}  // namespace pcfs::download_internal

#endif  // PCFS_PEERCTL_DOWNLOAD_INTERNAL_H_
