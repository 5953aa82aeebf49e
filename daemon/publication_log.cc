#include "daemon/publication_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/base/clock.h"
#include "core/base/file_util.h"
#include "core/base/mutex_lock.h"
#include "core/base/names.h"

namespace pcfs {
namespace {

constexpr char kSnapshotName[] = "publications.snapshot";
constexpr char kJournalName[] = "publications.journal";

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(absl::StrCat("write ", what), errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", dir), errno);
  if (::fsync(fd.get()) != 0) {
    return ErrnoStatus(absl::StrCat("fsync ", dir), errno);
  }
  return absl::OkStatus();
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
  bool ok() const { return !overflowed_; }
  absl::string_view view() const { return absl::string_view(chars_, size_); }

 private:
  // "P <user> <size> <hex> <name>\n" with the longest fields fits.
  char chars_[2 + kMaxUserNameChars + 1 + 20 + 1 + 64 + 1 + kMaxFileNameBytes +
              1];
  size_t size_ = 0;
  bool overflowed_ = false;
};

void BuildPublishRecord(absl::string_view user, absl::string_view name,
                        const FileMeta& meta, JournalRecord& record) {
  record.Text("P ").Text(user).Text(" ").Number(meta.size).Text(" ");
  record.Hex(meta.sha256).Text(" ").Text(name).Text("\n");
}

std::string PublishRecord(absl::string_view user, absl::string_view name,
                          const FileMeta& meta) {
  JournalRecord record;
  BuildPublishRecord(user, name, meta, record);
  return std::string(record.view());
}

absl::Status WriteSnapshot(const std::string& dir, const Registry& registry) {
  const std::string text = FormatPublicationSnapshot(registry);
  std::string path = absl::StrCat(dir, "/", kSnapshotName);
  std::string temporary = absl::StrCat(path, ".tmp");
  UniqueFd fd(::open(temporary.c_str(),
                     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", temporary), errno);
  if (absl::Status s = WriteAll(fd.get(), text, temporary); !s.ok()) return s;
  if (::fsync(fd.get()) != 0) {
    return ErrnoStatus(absl::StrCat("fsync ", temporary), errno);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(absl::StrCat("rename ", temporary), errno);
  }
  return SyncDirectory(dir);
}

}  // namespace

absl::Status ReplayPublicationRecords(absl::string_view text,
                                      absl::string_view what,
                                      bool allow_torn_tail,
                                      Registry& registry) {
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    size_t end = text.find('\n');
    if (end == absl::string_view::npos) {
      if (allow_torn_tail) return absl::OkStatus();
      return absl::DataLossError(
          absl::StrCat(what, ": line ", line_number, " has no newline"));
    }
    absl::Status status = ApplyPublicationRecord(text.substr(0, end), registry);
    if (!status.ok()) {
      return absl::DataLossError(
          absl::StrCat(what, ": line ", line_number, ": ", status.message()));
    }
    text.remove_prefix(end + 1);
  }
  return absl::OkStatus();
}

std::string FormatPublicationSnapshot(const Registry& registry) {
  std::string text;
  registry.ForEachPublication([&](absl::string_view user,
                                  absl::string_view name,
                                  const FileMeta& meta) {
    absl::StrAppend(&text, PublishRecord(user, name, meta));
  });
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
    if (!absl::SimpleAtoi(parts[1], &meta.size)) {
      return absl::InvalidArgumentError("bad size in P record");
    }
    if (parts[2].size() != 2 * meta.sha256.size()) {
      return absl::InvalidArgumentError("bad digest in P record");
    }
    for (char c : parts[2]) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError("bad digest in P record");
      }
    }
    std::string digest = absl::HexStringToBytes(parts[2]);
    std::memcpy(meta.sha256.data(), digest.data(), meta.sha256.size());
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

namespace {

// Loads the snapshot and replays the journal in `state_dir` into
// `registry`; changes nothing on disk.
absl::Status LoadState(const std::string& state_dir, Registry& registry) {
  const std::string snapshot = absl::StrCat(state_dir, "/", kSnapshotName);
  const std::string journal = absl::StrCat(state_dir, "/", kJournalName);
  // A missing file is an empty one: a fresh state folder.
  absl::StatusOr<std::string> text = ReadFileToString(snapshot);
  if (absl::IsNotFound(text.status())) text = std::string();
  if (!text.ok()) return text.status();
  if (absl::Status s =
          ReplayPublicationRecords(*text, snapshot, false, registry);
      !s.ok()) {
    return s;
  }
  text = ReadFileToString(journal);
  if (absl::IsNotFound(text.status())) text = std::string();
  if (!text.ok()) return text.status();
  return ReplayPublicationRecords(*text, journal, true, registry);
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
  if (absl::Status s = LoadState(state_dir, scratch); !s.ok()) return s;
  return scratch.publication_count();
}

absl::StatusOr<std::unique_ptr<PublicationLog>> PublicationLog::Open(
    const std::string& state_dir, Registry& registry) {
  if (::mkdir(state_dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return ErrnoStatus(absl::StrCat("mkdir ", state_dir), errno);
  }
  const std::string journal = absl::StrCat(state_dir, "/", kJournalName);
  if (absl::Status s = LoadState(state_dir, registry); !s.ok()) return s;
  // Compact: the new snapshot holds everything; only then is the journal
  // emptied. A crash in between replays the journal over the new snapshot,
  // which yields the same state.
  if (absl::Status s = WriteSnapshot(state_dir, registry); !s.ok()) return s;
  UniqueFd fd(::open(journal.c_str(),
                     O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
                     0640));
  if (!fd) return ErrnoStatus(absl::StrCat("open ", journal), errno);
  if (absl::Status s = SyncDirectory(state_dir); !s.ok()) return s;
  return std::unique_ptr<PublicationLog>(
      new PublicationLog(std::move(fd), registry.publication_count()));
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
  record.Text("U ").Text(user).Text(" ").Text(name).Text("\n");
  if (!record.ok()) return absl::InvalidArgumentError("record too long");
  return Append(record.view());
}

absl::Status PublicationLog::Append(absl::string_view record) {
  MutexLock lock(&mu_);
  return AppendLocked(record);
}

absl::Status PublicationLog::AppendBatch(
    std::span<const PublicationChange> batch) {
  std::string records;
  for (const PublicationChange& change : batch) {
    JournalRecord record;
    if (change.kind == PublicationChange::Kind::kPublish) {
      BuildPublishRecord(change.user, change.name, change.meta, record);
    } else {
      record.Text("U ")
          .Text(change.user)
          .Text(" ")
          .Text(change.name)
          .Text("\n");
    }
    if (!record.ok()) return absl::InvalidArgumentError("record too long");
    absl::StrAppend(&records, record.view());
  }
  if (records.empty()) return absl::OkStatus();
  MutexLock lock(&mu_);
  return AppendLocked(records);
}

absl::Status PublicationLog::AppendLocked(absl::string_view records) {
  const absl::Time start = MonotonicNow();
  if (absl::Status s = WriteAll(journal_.get(), records, kJournalName);
      !s.ok()) {
    // Cut off a partial record so that the next one starts on a line of its
    // own; otherwise the journal would hold a malformed line mid-file.
    if (::ftruncate(journal_.get(), journal_size_) != 0) {
      return ErrnoStatus("ftruncate publications.journal", errno);
    }
    return s;
  }
  journal_size_ += static_cast<off_t>(records.size());
  if (::fdatasync(journal_.get()) != 0) {
    return ErrnoStatus("fdatasync publications.journal", errno);
  }
  if (flush_latency_ != nullptr) {
    flush_latency_->Observe(static_cast<uint64_t>(
        absl::ToInt64Nanoseconds(MonotonicNow() - start)));
  }
  return absl::OkStatus();
}

}  // namespace pcfs
