// Download: the requester's side of a transfer. Fetches one file from a
// holder's FileServer (peerctl/file_server.h) over the HTTP subset of
// peerctl/http.h and lands it in a destination folder only when it is whole
// and verified.
//
// With an expected size and Merkle root (what `get` has), the download is
// chunk-verified and resumable: see peerctl/resumable_download.h (the
// partial ".NAME.pcfs-partial" stays after a failure, for the next call).
// Otherwise, and from a holder that offers no leaves (404 to /m/):
// the bytes go into an unnamed O_TMPFILE file in the destination folder (on
// a file system without O_TMPFILE: a hidden ".NAME.part.XXXXXX" file),
// spliced from the socket through a pipe, hashed chunk by chunk as they land
// (core/proto/merkle.h; on a pool of threads, one a core, that read them
// back from the page cache, see peerctl/body_sink.h and
// peerctl/chunk_hasher.h; the sink also starts their writeback to disk
// during the transfer), and are checked against Content-Length and, when
// given, the expected size and Merkle root. Only then is the file fsynced and
// linked under its name, never replacing an existing file, and the folder
// fsynced. On any failure nothing is left in the folder.
//
// Thread-safe: Download() keeps no state between calls (each call runs a
// pool of hashing threads of its own for its duration); concurrent calls
// must use different (folder, name) pairs, or all but one fail with
// AlreadyExists.
#ifndef PCFS_PEERCTL_DOWNLOADER_H_
#define PCFS_PEERCTL_DOWNLOADER_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/io/net.h"
#include "peerctl/exit_codes.h"
#include "peerctl/file_hash.h"
#include "peerctl/tls.h"

namespace pcfs {

// Another holder of the same file (size and root) as a DownloadRequest's
// own: GET names several, and a chunk-verified download draws on them all.
struct DownloadSource {
  SocketAddress address;  // its file server
  std::string ticket;     // MAC'd with its key
  KeyPin pin{};           // its TLS key; all zero: plain HTTP
  std::string name;       // its user name, for messages
};

struct DownloadRequest {
  SocketAddress holder;  // the holder's file server
  std::string name;      // the file name; must pass ValidateFileName
  std::string ticket;    // sent as "Authorization: Bearer"; empty: none
  // The holder's TLS key pin from the GET reply: only a certificate with
  // this key is accepted (no CA, no trust on first use). All zero: the
  // holder serves plain HTTP, and the download speaks it.
  KeyPin holder_pin{};
  std::string holder_name;  // for messages: "holder hans at ..."
  std::string destination_dir;
  std::optional<uint64_t> expected_size;
  std::optional<Sha256Digest> expected_root;
  // The longest the TCP connect may take. A holder that does not answer at
  // all (its host gone, a firewall dropping SYNs) fails after it with
  // DeadlineExceeded "holder 10.0.0.2:40123 did not answer within 3 s":
  // a live holder on any usable path completes the handshake in well under
  // a second, even after one lost SYN (retransmitted after 1 s).
  absl::Duration connect_timeout = absl::Seconds(3);
  // Once connected, the longest the download waits at any one point: for
  // the response head, or for the next bytes of the body. A transfer that
  // keeps making progress may take longer in total.
  absl::Duration timeout = absl::Seconds(30);
  // The other holders of the file (GET's others). With any, a download
  // whose size and root are known fetches chunk ranges from every holder
  // at once (peerctl/resumable_download.h); the leaves come from the first
  // that answers.
  std::vector<DownloadSource> other_holders;
  // With other holders: a holder that sends nothing for this long (less
  // than `timeout`) is dropped and its chunks are fetched from the others:
  // what catches a holder stopped mid-transfer. A download from one holder
  // waits `timeout`, having nowhere else to go.
  absl::Duration stall_timeout = absl::Milliseconds(2500);
  // When the whole download must be over (a one-shot command's --timeout):
  // DeadlineExceeded after it.
  absl::Time deadline = absl::InfiniteFuture();
  // When set and it becomes true (a Ctrl-C), the download stops within
  // about 100 ms with Cancelled, leaving at most the hidden partial file
  // (see peerctl/resumable_download.h).
  const std::atomic<bool>* cancel = nullptr;
  // Called with (bytes received, bytes in all) as the body arrives, on the
  // calling thread: after every chunk (up to 1 MiB) of a whole-file
  // download, every 50 ms or so of a chunk-verified one (whose holders'
  // threads receive). Rate-limit the output.
  std::function<void(uint64_t, uint64_t)> progress;
};

// One progress line for a download on a terminal: "12.5 MiB / 500.0 MiB
// (2%)  48.1 MiB/s  0:10 left", rewritten in place ("\r") at most four times
// a second, and erased by Finish(). Prints nothing when `out` is not a
// terminal. Not thread-safe: one download's thread uses it.
class ProgressLine {
 public:
  explicit ProgressLine(std::FILE* out);
  ~ProgressLine() { Finish(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // The bytes received so far of `total`.
  void Update(uint64_t received, uint64_t total);
  // Erases the line, if one was printed.
  void Finish();

  // The line for `received` of `total` bytes after `elapsed` (pure, for
  // tests).
  static std::string Format(uint64_t received, uint64_t total,
                            absl::Duration elapsed);

 private:
  std::FILE* const out_;
  const bool enabled_;
  const absl::Time start_;
  absl::Time last_ = absl::InfinitePast();
  bool shown_ = false;
};

// Downloads `request.name` into `request.destination_dir`. Errors:
//   InvalidArgument     a bad name or ticket, or a malformed response
//   AlreadyExists       the destination name exists (checked before
//                       connecting, and again when linking: never replaced)
//   Unauthenticated, PermissionDenied, NotFound
//                       the holder answered 401, 403, 404 (other codes:
//                       see http::StatusFromHttpCode)
//   DeadlineExceeded    the holder did not answer the connect or the TLS
//                       handshake within `connect_timeout`, or kept silent
//                       for `timeout`
//   DataLoss            a short body, or a size or Merkle root that differs
//                       from the expected one, leaves that do not add up
//                       to it, or a chunk that does not match its leaf
//   Unavailable         connection refused or reset
//   Cancelled           `cancel` was set
//   PermissionDenied    the holder presented another key than
//                       `holder_pin` (IsKeyMismatch() is true): "holder
//                       hans at 127.0.0.1:40123 presented a different key
//                       than the daemon registered for it; refusing the
//                       download"; nothing was sent to it
//   DeadlineExceeded    also: `deadline` passed
// and the errno of the failing call otherwise (the message names it).
// With other holders, a failing holder is dropped and the others go on; only
// when every holder is dropped does the download fail: with the holder's
// own error when it was the only one, else "no holder could send NAME:
// hans at A:P: <why>; yoda at B:Q: <why>" with the code the holders' errors
// share (Unavailable when they differ).
absl::Status Download(const DownloadRequest& request);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_DOWNLOADER_H_
