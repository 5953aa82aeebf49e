#include "daemon/publication_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/base/clock.h"
#include "core/base/crc32c.h"
#include "core/base/file_util.h"
#include "core/base/log.h"
#include "core/base/mutex_lock.h"
#include "core/base/names.h"
#include "core/base/thread_name.h"

namespace pcfs {
namespace {

constexpr char kSnapshotName[] = "publications.snapshot";
constexpr char kTemporarySnapshotName[] = "publications.snapshot.tmp";
constexpr char kJournalName[] = "publications.journal";
constexpr char kOldJournalName[] = "publications.journal.old";
constexpr char kNewJournalName[] = "publications.journal.new";
constexpr char kLockName[] = "lock";

constexpr char kSnapshotMagic[] = "PCFS-SNAPSHOT ";
constexpr char kJournalMagic[] = "PCFS-JOURNAL ";
constexpr char kFormatVersion[] = "3";
// Format 2 and 0.1.0's files record whole-file SHA-256 digests where format
// 3 records Merkle roots (core/proto/merkle.h). Both are 32 bytes, so an old
// digest would load as a root that no download can ever match: such state is
// refused with this advice instead.
constexpr char kSha256StateAdvice[] =
    " records whole-file SHA-256 digests, not the Merkle roots this "
    "peerconnectd records (format 3), so it is not loaded: move the "
    "publications.* files of the state folder aside and start again "
    "(publishers then `pub` their files again), or keep running the version "
    "that wrote them";
constexpr char kEndPrefix[] = "END ";
// " " and 8 hex digits after every line's body.
constexpr size_t kChecksumChars = 9;

constexpr char kAdvice[] =
    ". The state is damaged, so the daemon does not start: start it once "
    "with --recover to keep every record that verifies (what is dropped is "
    "logged, damaged files are renamed aside, nothing is deleted)";

std::string PathIn(const std::string& dir, const char* name) {
  return absl::StrCat(dir, "/", name);
}

absl::Status SyncDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", dir), errno);
  if (::fsync(fd.get()) != 0) {
    return ErrnoStatus(absl::StrCat("fsync ", dir), errno);
  }
  return absl::OkStatus();
}

// Removes `path`; a missing file is fine.
absl::Status RemoveIfPresent(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(absl::StrCat("unlink ", path), errno);
  }
  return absl::OkStatus();
}

void AppendHex32(uint32_t value, char out[8]) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 7; i >= 0; --i) {
    out[i] = kDigits[value & 0xf];
    value >>= 4;
  }
}

// `body` + " <crc>\n".
std::string ChecksummedLine(absl::string_view body) {
  char crc[8];
  AppendHex32(Crc32c(body), crc);
  return absl::StrCat(body, " ", absl::string_view(crc, 8), "\n");
}

// Splits a format-2 line into its body and checks the body's checksum.
// Returns an empty string, or what is wrong.
std::string VerifyLine(absl::string_view line, absl::string_view* body) {
  if (line.size() < kChecksumChars + 1 ||
      line[line.size() - kChecksumChars] != ' ') {
    return "no checksum at the end of the line";
  }
  uint32_t stored = 0;
  for (char c : line.substr(line.size() - 8)) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return "no checksum at the end of the line";
    }
    stored = stored << 4 | static_cast<uint32_t>(digit);
  }
  *body = line.substr(0, line.size() - kChecksumChars);
  if (Crc32c(*body) != stored) return "checksum does not match";
  return "";
}

// One journal record built in fixed storage, so that appending it (on the
// request path of every pub and unp) allocates nothing. Fields that would
// overflow it (longer than the protocol allows) make it invalid.
class JournalRecord {
 public:
  JournalRecord& Text(absl::string_view text) {
    if (text.size() > sizeof(chars_) - size_) {
      overflowed_ = true;
      return *this;
    }
    std::memcpy(chars_ + size_, text.data(), text.size());
    size_ += text.size();
    return *this;
  }
  JournalRecord& Number(uint64_t value) {
    char digits[20];
    auto [end, error] = std::to_chars(digits, digits + sizeof(digits), value);
    return Text(absl::string_view(digits, static_cast<size_t>(end - digits)));
  }
  JournalRecord& Hex(std::span<const uint8_t> bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    for (uint8_t byte : bytes) {
      const char pair[2] = {kDigits[byte >> 4], kDigits[byte & 0xf]};
      Text(absl::string_view(pair, 2));
    }
    return *this;
  }
  // Ends the record: " <crc of everything so far>\n".
  JournalRecord& Seal() {
    if (overflowed_) return *this;
    char line_end[kChecksumChars + 1];
    line_end[0] = ' ';
    AppendHex32(Crc32c(absl::string_view(chars_, size_)), line_end + 1);
    line_end[kChecksumChars] = '\n';
    return Text(absl::string_view(line_end, sizeof(line_end)));
  }
  bool ok() const { return !overflowed_; }
  absl::string_view view() const { return absl::string_view(chars_, size_); }

 private:
  // "P <user> <size> <hex> <name> <crc>\n" with the longest fields fits.
  char chars_[2 + kMaxUserNameChars + 1 + 20 + 1 + 64 + 1 + kMaxFileNameBytes +
              kChecksumChars + 1];
  size_t size_ = 0;
  bool overflowed_ = false;
};

void BuildPublishRecord(absl::string_view user, absl::string_view name,
                        const FileMeta& meta, JournalRecord& record) {
  record.Text("P ").Text(user).Text(" ").Number(meta.size).Text(" ");
  record.Hex(meta.root).Text(" ").Text(name).Seal();
}

void BuildUnpublishRecord(absl::string_view user, absl::string_view name,
                          JournalRecord& record) {
  record.Text("U ").Text(user).Text(" ").Text(name).Seal();
}

const std::string& JournalHeader() {
  static const std::string* const header = new std::string(
      ChecksummedLine(absl::StrCat(kJournalMagic, kFormatVersion)));
  return *header;
}

// Writes `text` to the temporary snapshot and syncs it.
absl::Status WriteTemporarySnapshot(const std::string& dir,
                                    absl::string_view text) {
  const std::string temporary = PathIn(dir, kTemporarySnapshotName);
  UniqueFd fd(::open(temporary.c_str(),
                     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", temporary), errno);
  if (absl::Status s = WriteAll(fd.get(), text, temporary); !s.ok()) return s;
  if (::fsync(fd.get()) != 0) {
    return ErrnoStatus(absl::StrCat("fsync ", temporary), errno);
  }
  return absl::OkStatus();
}

// Renames the temporary snapshot over the snapshot and syncs the folder.
absl::Status InstallSnapshot(const std::string& dir) {
  const std::string temporary = PathIn(dir, kTemporarySnapshotName);
  if (::rename(temporary.c_str(), PathIn(dir, kSnapshotName).c_str()) != 0) {
    return ErrnoStatus(absl::StrCat("rename ", temporary), errno);
  }
  return SyncDirectory(dir);
}

// Writes the snapshot of `registry` atomically: temporary file, fsync,
// rename, fsync of the folder. On failure the temporary file is removed.
absl::Status WriteSnapshot(const std::string& dir, const Registry& registry) {
  absl::Status s =
      WriteTemporarySnapshot(dir, FormatPublicationSnapshot(registry));
  if (s.ok()) s = InstallSnapshot(dir);
  if (!s.ok())
    RemoveIfPresent(PathIn(dir, kTemporarySnapshotName)).IgnoreError();
  return s;
}

// Takes the state folder's lock (an exclusive flock on "<dir>/lock") and
// writes our pid into it.
absl::StatusOr<UniqueFd> LockStateFolder(const std::string& dir) {
  const std::string path = PathIn(dir, kLockName);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", path), errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      return ErrnoStatus(absl::StrCat("flock ", path), errno);
    }
    absl::StatusOr<std::string> holder = ReadFileToString(path);
    std::string pid =
        holder.ok()
            ? std::string(absl::StripAsciiWhitespace(holder->substr(0, 32)))
            : "";
    return absl::FailedPreconditionError(absl::StrCat(
        "state folder ", dir, " is in use by ",
        pid.empty() ? "another process" : absl::StrCat("pid ", pid), " (", path,
        ")"));
  }
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) !=
          static_cast<ssize_t>(pid.size())) {
    // The lock holds without the pid; only the message to a second daemon
    // is the poorer for it.
    LogWarning("cannot write the pid into ", path, ": ", std::strerror(errno));
  }
  return fd;
}

}  // namespace

// ---- Format

std::string FormatJournalHeader() { return JournalHeader(); }

std::string FormatJournalRecord(const PublicationChange& change) {
  JournalRecord record;
  if (change.kind == PublicationChange::Kind::kPublish) {
    BuildPublishRecord(change.user, change.name, change.meta, record);
  } else {
    BuildUnpublishRecord(change.user, change.name, record);
  }
  return std::string(record.view());
}

std::string FormatPublicationSnapshot(const Registry& registry) {
  std::string text =
      ChecksummedLine(absl::StrCat(kSnapshotMagic, kFormatVersion));
  uint64_t count = 0;
  registry.ForEachPublication([&](absl::string_view user,
                                  absl::string_view name,
                                  const FileMeta& meta) {
    JournalRecord record;
    BuildPublishRecord(user, name, meta, record);
    absl::StrAppend(&text, record.view());
    ++count;
  });
  absl::StrAppend(&text, ChecksummedLine(absl::StrCat(kEndPrefix, count)));
  return text;
}

absl::Status ApplyPublicationRecord(absl::string_view line,
                                    Registry& registry) {
  if (line.size() < 2 || line[1] != ' ') {
    return absl::InvalidArgumentError("not a publication record");
  }
  const char kind = line[0];
  line.remove_prefix(2);
  if (kind == 'P') {
    // P <user> <size> <hex> <name>: the name is the rest of the line.
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::MaxSplits(' ', 3));
    if (parts.size() != 4) return absl::InvalidArgumentError("short P record");
    FileMeta meta;
    if (parts[1].empty() || !absl::ascii_isdigit(parts[1][0]) ||
        !absl::SimpleAtoi(parts[1], &meta.size)) {
      return absl::InvalidArgumentError("bad size in P record");
    }
    if (parts[2].size() != 2 * meta.root.size()) {
      return absl::InvalidArgumentError("bad digest in P record");
    }
    for (char c : parts[2]) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError("bad digest in P record");
      }
    }
    std::string digest = absl::HexStringToBytes(parts[2]);
    std::memcpy(meta.root.data(), digest.data(), meta.root.size());
    if (!ValidateUserName(parts[0]).ok() || !ValidateFileName(parts[3]).ok()) {
      return absl::InvalidArgumentError("bad user or file name in P record");
    }
    registry.Publish(parts[0], parts[3], meta);
    return absl::OkStatus();
  }
  if (kind == 'U') {
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (parts.size() != 2) return absl::InvalidArgumentError("short U record");
    if (!ValidateUserName(parts[0]).ok() || !ValidateFileName(parts[1]).ok()) {
      return absl::InvalidArgumentError("bad user or file name in U record");
    }
    // Replaying an unpublication of something already gone is harmless: the
    // journal may repeat what the snapshot already reflects.
    registry.Unpublish(parts[0], parts[1]).IgnoreError();
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown record kind");
}

absl::Status ReplayStateFile(absl::string_view text, absl::string_view what,
                             StateFileKind kind, bool recover,
                             Registry& registry, StateFileReport* report) {
  StateFileReport local;
  StateFileReport& r = report != nullptr ? *report : local;
  r = StateFileReport();
  r.end_of_records = text.size();
  if (text.empty()) return absl::OkStatus();
  const bool snapshot = kind == StateFileKind::kSnapshot;
  // 0.1.0's files begin with a record; they are not read (see
  // kSha256StateAdvice). Anything else is read as the current format, whose
  // header check reports a damaged first line.
  if (absl::StartsWith(text, "P ") || absl::StartsWith(text, "U ")) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " is in the format of 0.1.0, which", kSha256StateAdvice));
  }
  r.format = 3;

  // Stops at the damage, or notes it and goes on.
  auto damage = [&](uint64_t offset, uint64_t line, absl::string_view problem,
                    absl::string_view line_text) -> absl::Status {
    if (!recover) {
      return absl::DataLossError(absl::StrCat(what, ": byte ", offset,
                                              " (line ", line, "): ", problem));
    }
    r.damage.push_back({offset, line, std::string(problem),
                        absl::CHexEscape(line_text.substr(0, 80))});
    return absl::OkStatus();
  };

  uint64_t offset = 0;
  uint64_t line_number = 0;
  uint64_t record_lines = 0;  // snapshot records seen, verified or not
  bool end_seen = false;
  while (offset < text.size()) {
    ++line_number;
    const size_t newline = text.find('\n', offset);
    if (newline == absl::string_view::npos) {
      // The last line has no newline: an append cut short by a crash (its
      // bytes, or NULs the file system left) in a journal; in a snapshot,
      // which is renamed into place only when whole, damage.
      r.end_of_records = offset;
      if (!snapshot) {
        r.torn_tail = true;
        break;
      }
      if (absl::Status s = damage(offset, line_number,
                                  "the last line has no newline: the file "
                                  "was cut short",
                                  text.substr(offset));
          !s.ok()) {
        return s;
      }
      break;
    }
    const absl::string_view line = text.substr(offset, newline - offset);
    const uint64_t line_offset = offset;
    offset = newline + 1;
    auto bad = [&](absl::string_view problem) {
      return damage(line_offset, line_number, problem, line);
    };

    absl::string_view body;
    const std::string problem = VerifyLine(line, &body);
    if (line_number == 1) {
      // The header: "PCFS-SNAPSHOT 2" or "PCFS-JOURNAL 2".
      const absl::string_view magic = snapshot ? kSnapshotMagic : kJournalMagic;
      if (!problem.empty()) {
        if (absl::Status d = bad(absl::StrCat(problem, " (the header)"));
            !d.ok()) {
          return d;
        }
      } else if (!absl::StartsWith(body, magic)) {
        if (absl::Status d = bad(absl::StrCat(
                "not a ", snapshot ? "snapshot" : "journal", " header"));
            !d.ok()) {
          return d;
        }
      } else if (body.substr(magic.size()) == "2") {
        return absl::FailedPreconditionError(
            absl::StrCat(what, " is in format 2, which", kSha256StateAdvice));
      } else if (body.substr(magic.size()) != kFormatVersion) {
        return absl::FailedPreconditionError(absl::StrCat(
            what, " is in format ", body.substr(magic.size()),
            ", which this peerconnectd does not read (it reads format ",
            kFormatVersion,
            " and 0.1.0's): was it written by a newer "
            "version?"));
      }
      continue;
    }
    if (!problem.empty()) {
      if (snapshot && !end_seen) ++record_lines;
      if (absl::Status d = bad(problem); !d.ok()) return d;
      continue;
    }
    if (end_seen) {
      if (absl::Status d = bad("a line after the END line"); !d.ok()) return d;
      continue;
    }
    if (snapshot && absl::StartsWith(body, kEndPrefix)) {
      end_seen = true;
      uint64_t count = 0;
      if (!absl::SimpleAtoi(body.substr(std::strlen(kEndPrefix)), &count)) {
        if (absl::Status d = bad("bad END line"); !d.ok()) return d;
      } else if (count != record_lines) {
        if (absl::Status d = bad(absl::StrCat(
                "END says ", count, " records but the snapshot holds ",
                record_lines, ": records were lost"));
            !d.ok()) {
          return d;
        }
      }
      continue;
    }
    if (snapshot) {
      ++record_lines;
      if (!absl::StartsWith(body, "P ")) {
        if (absl::Status d = bad("not a P record (a snapshot holds only P)");
            !d.ok()) {
          return d;
        }
        continue;
      }
    }
    if (absl::Status s = ApplyPublicationRecord(body, registry); !s.ok()) {
      if (absl::Status d = bad(s.message()); !d.ok()) return d;
      continue;
    }
    ++r.records;
  }
  if (snapshot && !end_seen) {
    return damage(r.end_of_records, line_number + 1,
                  absl::StrCat("no END line: the snapshot was cut short after ",
                               record_lines, " records"),
                  "");
  }
  return absl::OkStatus();
}

namespace {

// One state file as loaded.
struct LoadedFile {
  std::string path;
  bool exists = false;
  StateFileReport report;
};

// The state folder as loaded: the snapshot, then the journal a compaction
// had set aside, then the journal.
struct LoadedState {
  LoadedFile snapshot;
  LoadedFile old_journal;
  LoadedFile journal;

  bool damaged() const {
    return !snapshot.report.damage.empty() ||
           !old_journal.report.damage.empty() || !journal.report.damage.empty();
  }
};

absl::Status LoadFile(const std::string& path, StateFileKind kind, bool recover,
                      Registry& registry, LoadedFile& file) {
  file.path = path;
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return absl::OkStatus();
  if (!text.ok()) return text.status();
  file.exists = true;
  return ReplayStateFile(*text, path, kind, recover, registry, &file.report);
}

// Loads the state in `dir` into `registry`; changes nothing on disk. With
// `recover`, damage is noted in `state` instead of failing.
absl::Status LoadState(const std::string& dir, bool recover, Registry& registry,
                       LoadedState& state) {
  if (absl::Status s =
          LoadFile(PathIn(dir, kSnapshotName), StateFileKind::kSnapshot,
                   recover, registry, state.snapshot);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          LoadFile(PathIn(dir, kOldJournalName), StateFileKind::kJournal,
                   recover, registry, state.old_journal);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          LoadFile(PathIn(dir, kJournalName), StateFileKind::kJournal, recover,
                   registry, state.journal);
      !s.ok()) {
    return s;
  }
  // A format-2 journal is only ever written after a format-2 snapshot: a
  // snapshot that is missing, empty or older beside one was lost or
  // emptied.
  const LoadedFile& newer =
      state.journal.report.format == 3 ? state.journal : state.old_journal;
  if (newer.report.format == 3 && state.snapshot.report.format != 3) {
    const std::string problem =
        absl::StrCat(!state.snapshot.exists              ? "missing"
                     : state.snapshot.report.format == 0 ? "empty"
                                                         : "in an older format",
                     " but ", newer.path,
                     " is in format 3: the snapshot was lost or emptied");
    if (!recover) {
      return absl::DataLossError(
          absl::StrCat(state.snapshot.path, ": byte 0 (line 1): ", problem));
    }
    state.snapshot.report.damage.push_back({0, 1, problem, ""});
  }
  return absl::OkStatus();
}

// Says what loading dropped or ignored.
void LogLoad(const LoadedState& state, bool recover) {
  size_t dropped = 0;
  for (const LoadedFile* file :
       {&state.snapshot, &state.old_journal, &state.journal}) {
    if (file->report.torn_tail) {
      LogWarning("ignored the torn last line of ", file->path, " at byte ",
                 file->report.end_of_records,
                 " (an append cut short by a crash; it was never "
                 "acknowledged)");
    }
    for (const StateDamage& d : file->report.damage) {
      LogWarning("recover: dropped ", file->path, " byte ", d.offset, " (line ",
                 d.line, "): ", d.what,
                 d.text.empty() ? "" : absl::StrCat(": \"", d.text, "\""));
    }
    if (!file->report.damage.empty()) {
      LogWarning("recover: ", file->path, ": ", file->report.damage.size(),
                 " damaged lines or parts dropped, ", file->report.records,
                 " records kept");
    }
    dropped += file->report.damage.size();
  }
  if (recover && dropped == 0)
    Log("recover: the state verifies, nothing to drop");
}

// Renames every damaged file of `state` aside, to
// "<file>.damaged-<UTC time>" (never over an existing file).
absl::Status MoveDamagedAside(const LoadedState& state) {
  const std::string stamp =
      absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone());
  for (const LoadedFile* file :
       {&state.snapshot, &state.old_journal, &state.journal}) {
    if (!file->exists || file->report.damage.empty()) continue;
    std::string aside = absl::StrCat(file->path, ".damaged-", stamp);
    struct stat st {};
    for (int n = 2; ::lstat(aside.c_str(), &st) == 0 && n < 100; ++n) {
      aside = absl::StrCat(file->path, ".damaged-", stamp, "-", n);
    }
    if (::rename(file->path.c_str(), aside.c_str()) != 0) {
      return ErrnoStatus(absl::StrCat("rename ", file->path), errno);
    }
    LogWarning("recover: moved the damaged ", file->path, " aside to ", aside);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<size_t> PublicationLog::Check(const std::string& state_dir) {
  struct stat st {};
  if (::stat(state_dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return ErrnoStatus(absl::StrCat("stat ", state_dir), errno);
    }
    // Open() will create it: its parent must let us.
    const size_t slash = state_dir.find_last_of('/');
    const std::string parent =
        slash == std::string::npos
            ? std::string(".")
            : std::string(state_dir.data(), slash == 0 ? 1 : slash);
    if (::access(parent.c_str(), W_OK | X_OK) != 0) {
      return ErrnoStatus(
          absl::StrCat("state folder ", state_dir,
                       " is missing and cannot be created in ", parent),
          errno);
    }
    return 0;
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("state folder ", state_dir, " is not a folder"));
  }
  if (::access(state_dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return ErrnoStatus(absl::StrCat("state folder ", state_dir), errno);
  }
  Registry scratch;
  LoadedState state;
  if (absl::Status s = LoadState(state_dir, false, scratch, state); !s.ok()) {
    if (absl::IsDataLoss(s)) {
      return absl::DataLossError(absl::StrCat(s.message(), kAdvice));
    }
    return s;
  }
  return scratch.publication_count();
}

PublicationLog::PublicationLog(std::string state_dir, Registry& registry,
                               Options options, UniqueFd lock, size_t loaded)
    : dir_(std::move(state_dir)),
      registry_(registry),
      options_(options),
      lock_(std::move(lock)),
      loaded_(loaded) {}

PublicationLog::~PublicationLog() {
  std::thread compactor;
  {
    MutexLock lock(&mu_);
    compactor = std::move(compactor_);
  }
  if (compactor.joinable()) compactor.join();
}

absl::StatusOr<std::unique_ptr<PublicationLog>> PublicationLog::Open(
    const std::string& state_dir, Registry& registry) {
  return Open(state_dir, registry, Options());
}

absl::StatusOr<std::unique_ptr<PublicationLog>> PublicationLog::Open(
    const std::string& state_dir, Registry& registry, Options options) {
  if (::mkdir(state_dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return ErrnoStatus(absl::StrCat("mkdir ", state_dir), errno);
  }
  absl::StatusOr<UniqueFd> lock = LockStateFolder(state_dir);
  if (!lock.ok()) return lock.status();
  // Leftovers of a compaction a crash interrupted: never part of the state.
  for (const char* name : {kTemporarySnapshotName, kNewJournalName}) {
    if (absl::Status s = RemoveIfPresent(PathIn(state_dir, name)); !s.ok()) {
      return s;
    }
  }
  LoadedState state;
  if (absl::Status s = LoadState(state_dir, options.recover, registry, state);
      !s.ok()) {
    if (absl::IsDataLoss(s)) {
      return absl::DataLossError(absl::StrCat(s.message(), kAdvice));
    }
    return s;
  }
  LogLoad(state, options.recover);
  std::unique_ptr<PublicationLog> log(
      new PublicationLog(state_dir, registry, options, *std::move(lock),
                         registry.publication_count()));
  MutexLock hold(&log->mu_);
  log->compact_at_ = options.compact_journal_bytes;
  const std::string journal = PathIn(state_dir, kJournalName);

  // Compact: the new snapshot holds everything. Only then go the .old
  // journal (first: replayed over the new snapshot without the journal
  // after it, it could bring back what the journal undid) and the journal's
  // contents.
  absl::Status s =
      WriteTemporarySnapshot(state_dir, FormatPublicationSnapshot(registry));
  if (s.ok() && state.damaged()) s = MoveDamagedAside(state);
  if (s.ok()) s = InstallSnapshot(state_dir);
  if (!s.ok()) {
    RemoveIfPresent(PathIn(state_dir, kTemporarySnapshotName)).IgnoreError();
    if (state.damaged()) {
      return absl::Status(s.code(),
                          absl::StrCat("cannot write the recovered state in ",
                                       state_dir, ": ", s.message()));
    }
    if (!absl::IsResourceExhausted(s)) return s;
    // A full disk: go on with the files as they are, so the daemon serves
    // what it has. Appending needs files in format 3 (and the snapshot
    // already in place, which the journal's header vouches for).
    LogWarning("cannot compact the state in ", state_dir, " (", s.message(),
               "): going on with the files as they are");
    log->old_journal_present_ = state.old_journal.exists;
    const bool journal_current = !state.journal.exists ||
                                 state.journal.report.format == 0 ||
                                 state.journal.report.format == 3;
    if (state.snapshot.report.format != 3 || !journal_current) {
      log->refuse_appends_ = absl::StrCat(
          "the state in ", state_dir,
          " could not be rewritten in format 3 for want of space: pub and "
          "unp are refused until the daemon restarts with space to write");
      LogWarning(log->refuse_appends_);
      return log;
    }
    UniqueFd fd(::open(journal.c_str(),
                       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) {
      log->refuse_appends_ =
          ErrnoStatus(absl::StrCat("open ", journal), errno).ToString();
      LogWarning("pub and unp are refused: ", log->refuse_appends_);
      return log;
    }
    // Cut a torn tail off, so that the next record starts a line.
    if (::ftruncate(fd.get(), static_cast<off_t>(
                                  state.journal.report.end_of_records)) != 0) {
      return ErrnoStatus(absl::StrCat("ftruncate ", journal), errno);
    }
    log->journal_ = std::move(fd);
    log->journal_size_ = state.journal.report.end_of_records;
    log->compact_at_ = log->journal_size_ + options.compact_journal_bytes;
    return log;
  }
  if (absl::Status r = RemoveIfPresent(PathIn(state_dir, kOldJournalName));
      !r.ok()) {
    return r;
  }
  UniqueFd fd(::open(journal.c_str(),
                     O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
                     0640));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", journal), errno);
  // The header is written now, or (no space for it: the journal was just
  // emptied, so this is rare) with the first record.
  if (WriteAll(fd.get(), JournalHeader(), journal).ok() &&
      ::fdatasync(fd.get()) == 0) {
    log->journal_size_ = JournalHeader().size();
  } else if (::ftruncate(fd.get(), 0) != 0) {
    return ErrnoStatus(absl::StrCat("ftruncate ", journal), errno);
  }
  log->journal_ = std::move(fd);
  if (absl::Status r = SyncDirectory(state_dir); !r.ok()) return r;
  return log;
}

absl::Status PublicationLog::RecordPublish(absl::string_view user,
                                           absl::string_view name,
                                           const FileMeta& meta) {
  JournalRecord record;
  BuildPublishRecord(user, name, meta, record);
  if (!record.ok()) return absl::InvalidArgumentError("record too long");
  return Append(record.view());
}

absl::Status PublicationLog::RecordUnpublish(absl::string_view user,
                                             absl::string_view name) {
  JournalRecord record;
  BuildUnpublishRecord(user, name, record);
  if (!record.ok()) return absl::InvalidArgumentError("record too long");
  return Append(record.view());
}

absl::Status PublicationLog::Append(absl::string_view records) {
  MutexLock lock(&mu_);
  return AppendLocked(records);
}

absl::Status PublicationLog::AppendBatch(
    std::span<const PublicationChange> batch) {
  std::string records;
  for (const PublicationChange& change : batch) {
    JournalRecord record;
    if (change.kind == PublicationChange::Kind::kPublish) {
      BuildPublishRecord(change.user, change.name, change.meta, record);
    } else {
      BuildUnpublishRecord(change.user, change.name, record);
    }
    if (!record.ok()) return absl::InvalidArgumentError("record too long");
    absl::StrAppend(&records, record.view());
  }
  if (records.empty()) return absl::OkStatus();
  MutexLock lock(&mu_);
  return AppendLocked(records);
}

absl::Status PublicationLog::AppendLocked(absl::string_view records) {
  if (!refuse_appends_.empty()) {
    return absl::FailedPreconditionError(refuse_appends_);
  }
  MaybeCompactLocked();
  const absl::Time start = MonotonicNow();
  absl::Status s = absl::OkStatus();
  if (journal_size_ == 0) {
    // A journal without its header (no space for it when it was started).
    s = WriteAll(journal_.get(), JournalHeader(), kJournalName);
  }
  if (s.ok()) s = WriteAll(journal_.get(), records, kJournalName);
  if (!s.ok()) {
    // Cut off a partial record so that the next one starts on a line of its
    // own; otherwise the journal would hold a malformed line mid-file.
    if (::ftruncate(journal_.get(), static_cast<off_t>(journal_size_)) != 0) {
      return ErrnoStatus("ftruncate publications.journal", errno);
    }
    return s;
  }
  if (journal_size_ == 0) journal_size_ = JournalHeader().size();
  journal_size_ += records.size();
  if (::fdatasync(journal_.get()) != 0) {
    return ErrnoStatus("fdatasync publications.journal", errno);
  }
  if (flush_latency_ != nullptr) {
    flush_latency_->Observe(static_cast<uint64_t>(
        absl::ToInt64Nanoseconds(MonotonicNow() - start)));
  }
  return absl::OkStatus();
}

void PublicationLog::MaybeCompactLocked() {
  if (journal_size_ < compact_at_ || compaction_running_) return;
  // A finished compaction's thread has let go of mu_ for good.
  if (compactor_.joinable()) compactor_.join();
  if (!old_journal_present_) {
    // Rotate: a new journal (its header durable) takes the name, the full
    // one becomes the .old journal the background snapshot will replace.
    const std::string journal = PathIn(dir_, kJournalName);
    const std::string old_journal = PathIn(dir_, kOldJournalName);
    const std::string new_journal = PathIn(dir_, kNewJournalName);
    UniqueFd fd(::open(new_journal.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
                       0640));
    absl::Status s =
        fd ? absl::OkStatus()
           : ErrnoStatus(absl::StrCat("open ", new_journal), errno);
    if (s.ok()) s = WriteAll(fd.get(), JournalHeader(), new_journal);
    if (s.ok() && ::fdatasync(fd.get()) != 0) {
      s = ErrnoStatus(absl::StrCat("fdatasync ", new_journal), errno);
    }
    if (s.ok() && ::rename(journal.c_str(), old_journal.c_str()) != 0) {
      s = ErrnoStatus(absl::StrCat("rename ", journal), errno);
    }
    if (s.ok() && ::rename(new_journal.c_str(), journal.c_str()) != 0) {
      s = ErrnoStatus(absl::StrCat("rename ", new_journal), errno);
      // Put the full journal back: appends go on there.
      if (::rename(old_journal.c_str(), journal.c_str()) != 0) {
        LogError("cannot rename ", old_journal, " back to ", journal, ": ",
                 std::strerror(errno));
      }
    }
    // The renames must be durable before a record goes to the new journal:
    // a crash that undid them would leave it under a name no start reads.
    if (s.ok()) s = SyncDirectory(dir_);
    if (!s.ok()) {
      RemoveIfPresent(new_journal).IgnoreError();
      compact_at_ = journal_size_ + options_.compact_journal_bytes;
      LogWarning("cannot start a compaction of ", dir_, ": ", s.message(),
                 "; appending to the journal as it is");
      return;
    }
    journal_ = std::move(fd);
    journal_size_ = JournalHeader().size();
    old_journal_present_ = true;
  }
  compact_at_ = journal_size_ + options_.compact_journal_bytes;
  compaction_running_ = true;
  compactor_ = std::thread([this] {
    NameThisThread("compactor");
    RunCompaction();
  });
}

void PublicationLog::RunCompaction() {
  // The registry holds every change recorded before the rotation (the
  // caller contract), and maybe some after: replaying the new journal over
  // it gives the same state either way.
  absl::Status s = WriteSnapshot(dir_, registry_);
  if (s.ok()) s = RemoveIfPresent(PathIn(dir_, kOldJournalName));
  if (s.ok()) s = SyncDirectory(dir_);
  if (!s.ok()) {
    LogWarning("background compaction of ", dir_, " failed: ", s.message(),
               "; the .old journal stays and the next compaction tries again");
  }
  MutexLock lock(&mu_);
  compaction_running_ = false;
  if (s.ok()) {
    old_journal_present_ = false;
    ++compactions_;
  }
}

void PublicationLog::WaitForCompaction() {
  // Joined rather than waited for on a condition variable: Debian's abseil
  // is built without TSan, which then cannot see CondVar::Wait let go of
  // the mutex (core/base/mutex_lock.h).
  std::thread compactor;
  {
    MutexLock lock(&mu_);
    compactor = std::move(compactor_);
  }
  if (compactor.joinable()) compactor.join();
}

uint64_t PublicationLog::compactions() const {
  MutexLock lock(&mu_);
  return compactions_;
}

}  // namespace pcfs
