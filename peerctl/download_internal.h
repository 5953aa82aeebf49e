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
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/base/unique_fd.h"
#include "core/io/net.h"
#include "peerctl/body_sink.h"
#include "peerctl/http.h"

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

absl::Status SendAll(int fd, absl::string_view data, const Bounds& bounds);

// Receives up to `size` bytes; 0 means the holder closed the connection.
absl::StatusOr<size_t> Receive(int fd, char* data, size_t size,
                               const Bounds& bounds, absl::string_view what);

// The response head, read into `buffer` (http::kMaxHeadBytes long);
// `*body_start..*filled` of the buffer holds the first body bytes that came
// with it.
absl::StatusOr<http::Response> ReadResponseHead(int fd,
                                                std::vector<char>& buffer,
                                                size_t* body_start,
                                                size_t* filled,
                                                const Bounds& bounds);

// Reserves `size` bytes for `fd` where the file system can.
absl::Status Preallocate(int fd, uint64_t size);

// Receives `length` body bytes into `sink`, the first `prefix` of them
// already in hand, spliced through a pipe.
absl::Status ReceiveBody(
    int socket_fd, BodySink& sink, absl::string_view prefix, uint64_t length,
    const Bounds& bounds,
    const std::function<void(uint64_t, uint64_t)>& progress);

}  // namespace pcfs::download_internal

#endif  // PCFS_PEERCTL_DOWNLOAD_INTERNAL_H_
