// DownloadResumable: the chunk-verified, resumable way Download()
// (peerctl/downloader.h) fetches a file whose size and Merkle root
// (core/proto/merkle.h) it knows.
//
//  1. "GET /m/NAME" fetches the file's leaves; they must add up to the
//     expected root (else DataLoss: the holder serves another file). With
//     other_holders, every holder is asked at once and the first answer
//     that adds up is taken (the other requests are stopped), so that
//     holders that do not answer cost one connect timeout in all.
//  2. The bytes go into ".NAME.pcfs-partial" in the download folder (hidden,
//     and named so that it never passes for the file), at their offsets; the
//     file has the full size from the start. flock(2) keeps a second get of
//     the same name out (AlreadyExists), and the lock counts only on the
//     file the partial's name still leads to. A get that finds the file's
//     own name taken once it holds that lock (another get of it finished
//     since this one began) is done if it is the published file (its
//     partial goes), and refused if not.
//  3. A partial file already there (an earlier get interrupted by Ctrl-C,
//     kill -9, a holder gone, a network down) is re-verified: every chunk is
//     hashed (on all cores) and kept only if it matches its leaf. A partial
//     of another size is started over. The partial is never trusted beyond
//     what verifies, so one left by another version of the file keeps
//     exactly the chunks the two versions share, which are right by
//     definition.
//  4. The missing chunks are fetched in runs with Range requests, one
//     connection a run, from every holder at once: a worker thread per
//     holder takes runs from a ChunkScheduler (peerctl/chunk_scheduler.h),
//     each chunk verified on arrival against its leaf on a pool of threads
//     (peerctl/chunk_hasher.h). A holder that fails (no answer within the
//     connect timeout, silent for the stall timeout, a chunk that does not
//     match: DataLoss "chunk N (bytes A-B) does not match its published
//     hash: the holder sent corrupt data", an error status, a close; or,
//     while the others wait with nothing left to take, a run going for 2 s
//     at under a quarter of the fastest holder's rate) is dropped and its
//     chunks go to the others. When every holder is
//     dropped the get fails: with the holder's error when there was one,
//     else "no holder could send NAME: " and each holder with its error.
//  5. Only when every chunk is verified is the partial fsynced and renamed
//     to NAME (never replacing a file), and the folder fsynced. A file that
//     took the name during the download ends it as in 2, the partial kept
//     if that file is another.
// On any failure the partial stays with what it holds, for the next get;
// NAME never appears.
//
// Thread-safety: as Download().
#ifndef PCFS_PEERCTL_RESUMABLE_DOWNLOAD_H_
#define PCFS_PEERCTL_RESUMABLE_DOWNLOAD_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "peerctl/download_internal.h"
#include "peerctl/downloader.h"

namespace pcfs {

// The suffix of a partial file: ".NAME" + this.
inline constexpr absl::string_view kPartialSuffix = ".pcfs-partial";

// ".NAME.pcfs-partial", or "" when that would not fit in a file name.
std::string PartialFileName(absl::string_view name);

// Downloads `request` (whose name passed ValidateFileName and does not
// exist in the folder `dir_fd`) as above. Returns false, having done
// nothing, when it does not apply: no expected size or root, an empty
// file, a name too long for its partial name, or a holder that answers 404
// to /m/ (one without leaves: the caller then downloads the whole file).
// Errors as Download(), and AlreadyExists while another get of the name runs.
absl::StatusOr<bool> DownloadResumable(const DownloadRequest& request,
                                       int dir_fd,
                                       const download_internal::Bounds& bounds);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_RESUMABLE_DOWNLOAD_H_
