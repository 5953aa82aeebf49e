// Download: the requester's side of a transfer. Fetches one file from a
// holder's FileServer (peerctl/file_server.h) over the HTTP subset of
// peerctl/http.h and lands it in a destination folder only when it is whole
// and verified.
//
// The bytes go into an unnamed O_TMPFILE file in the destination folder (on
// a file system without O_TMPFILE: a hidden ".NAME.part.XXXXXX" file),
// spliced from the socket through a pipe, hashed with SHA-256 as they land
// (on a second thread that reads them back from the page cache, see
// peerctl/body_sink.h, which also starts their writeback to disk during the
// transfer), and are checked against Content-Length and, when given, the
// expected size and SHA-256. Only then is the file fsynced and linked under
// its name, never replacing an existing file, and the folder fsynced. On any
// failure nothing is left in the folder.
//
// Thread-safe: Download() keeps no state between calls (each call runs one
// hashing thread of its own for its duration); concurrent calls
// must use different (folder, name) pairs, or all but one fail with
// AlreadyExists.
#ifndef PCFS_PEERCTL_DOWNLOADER_H_
#define PCFS_PEERCTL_DOWNLOADER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/io/net.h"
#include "peerctl/file_hash.h"

namespace pcfs {

struct DownloadRequest {
  SocketAddress holder;  // the holder's file server
  std::string name;      // the file name; must pass ValidateFileName
  std::string ticket;    // sent as "Authorization: Bearer"; empty: none
  std::string destination_dir;
  std::optional<uint64_t> expected_size;
  std::optional<Sha256Digest> expected_sha256;
  // The longest the download waits at any one point: to connect, for the
  // response head, or for the next bytes of the body. A transfer that keeps
  // making progress may take longer in total.
  absl::Duration timeout = absl::Seconds(30);
};

// Downloads `request.name` into `request.destination_dir`. Errors:
//   InvalidArgument     a bad name or ticket, or a malformed response
//   AlreadyExists       the destination name exists (checked before
//                       connecting, and again when linking: never replaced)
//   Unauthenticated, PermissionDenied, NotFound
//                       the holder answered 401, 403, 404 (other codes:
//                       see http::StatusFromHttpCode)
//   DeadlineExceeded    the holder kept silent for `timeout`
//   DataLoss            a short body, or a size or SHA-256 that differs
//                       from the expected one
//   Unavailable         connection refused or reset
// and the errno of the failing call otherwise (the message names it).
absl::Status Download(const DownloadRequest& request);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_DOWNLOADER_H_
