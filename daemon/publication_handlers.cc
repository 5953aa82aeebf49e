#include <array>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/auth/ticket.h"
#include "core/base/log.h"
#include "core/base/names.h"
#include "daemon/handler_util.h"
#include "daemon/handlers.h"

// PUB, UNP and GET: publications (recorded durably before they are
// acknowledged, and applied to memory only once durable) and the lookup of
// a holder, with its download ticket.

namespace pcfs {
namespace {

using handler_internal::Bump;
using handler_internal::SealReply;
using protocol::Header;
using protocol::Message;
using protocol::MessageType;
using protocol::ResultCode;

}  // namespace

size_t RequestHandler::HandlePublish(const Message& m, const Caller& caller,
                                     absl::Time /*now*/,
                                     std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::PublishRequest> request =
      protocol::DecodePublishRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  FileMeta meta;
  meta.size = request->size;
  meta.root = request->root;
  // Published as asked already: nothing to record. (A change of this name
  // still queued for the journal is concurrent with this request, and
  // either order is a true answer.)
  if (registry_->PublicationOf(caller.name(), request->name) == meta) {
    RememberReply(caller, h, ResultCode::kOk);
    return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
  }
  return CommitChange(h, caller, PublicationChange::Kind::kPublish,
                      request->name, meta, reply);
}

// The name of a UNP, GET or STAT request, decoded and checked; or nullopt,
// with the error reply (kMalformed, kInvalidName) written into `reply` and
// its size in `*error_size`.
std::optional<absl::string_view> RequestHandler::RequestedName(
    const Message& m, std::span<uint8_t> reply, size_t* error_size) {
  absl::StatusOr<protocol::NameRequest> request =
      protocol::DecodeNameRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    *error_size = Error(m.header, ResultCode::kMalformed,
                        request.status().message(), reply);
    return std::nullopt;
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    *error_size = Error(m.header, ResultCode::kInvalidName, s.message(), reply);
    return std::nullopt;
  }
  return request->name;
}

size_t RequestHandler::HandleUnpublish(const Message& m, const Caller& caller,
                                       absl::Time /*now*/,
                                       std::span<uint8_t> reply) {
  const Header& h = m.header;
  size_t error_size = 0;
  const std::optional<absl::string_view> name =
      RequestedName(m, reply, &error_size);
  if (!name.has_value()) return error_size;
  if (!registry_->PublicationOf(caller.name(), *name).has_value()) {
    RememberReply(caller, h, ResultCode::kNotFound);
    return Error(h, ResultCode::kNotFound,
                 absl::StrCat("you do not publish ", *name), reply);
  }
  return CommitChange(h, caller, PublicationChange::Kind::kUnpublish, *name,
                      FileMeta{}, reply);
}

size_t RequestHandler::HandleStat(const Message& m, const Caller& caller,
                                  std::span<uint8_t> reply) {
  const Header& h = m.header;
  size_t error_size = 0;
  const std::optional<absl::string_view> name =
      RequestedName(m, reply, &error_size);
  if (!name.has_value()) return error_size;
  std::optional<FileMeta> meta = registry_->PublicationOf(caller.name(), *name);
  if (!meta.has_value()) {
    return Error(h, ResultCode::kNotFound,
                 absl::StrCat("you do not publish ", *name), reply);
  }
  return protocol::EncodeStatReply(h, {meta->size, meta->root}, reply);
}

size_t RequestHandler::CommitChange(const Header& h, const Caller& caller,
                                    PublicationChange::Kind kind,
                                    absl::string_view name,
                                    const FileMeta& meta,
                                    std::span<uint8_t> reply) {
  const bool publish = kind == PublicationChange::Kind::kPublish;
  if (shared_.journal != nullptr && completions_ != nullptr) {
    PublicationChange change;
    change.kind = kind;
    change.user = std::string(caller.name());
    change.name = std::string(name);
    change.meta = meta;
    DeferredRequest deferred{h, caller};
    absl::Status s =
        shared_.journal->Submit(std::move(change), completions_,
                                [this, deferred](const absl::Status& outcome) {
                                  CompleteDeferred(deferred, outcome);
                                });
    if (!s.ok()) {
      // Queue full (or shutting down): refused now rather than waiting.
      // Not cached, so the client's retry runs it again.
      return Error(h, ResultCode::kRateLimited,
                   absl::StrCat("the daemon is busy recording publications (",
                                s.message(), ")"),
                   reply);
    }
    // Completion runs later on this thread, so the mark is there first.
    sessions_->MarkPending(caller.session_id, h.request_id, h.type);
    deferred_ = true;
    return 0;
  }
  // Synchronous (tests): durable first, then memory, as the writer does.
  // Allocates nothing (tests/unit/request_allocation_test.cc).
  if (shared_.log != nullptr) {
    absl::Status s = publish
                         ? shared_.log->RecordPublish(caller.name(), name, meta)
                         : shared_.log->RecordUnpublish(caller.name(), name);
    if (!s.ok()) return RecordFailed(h, s, reply);
  }
  if (publish) {
    registry_->Publish(caller.name(), name, meta);
  } else {
    registry_->Unpublish(caller.name(), name).IgnoreError();
  }
  RememberReply(caller, h, ResultCode::kOk);
  return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
}

size_t RequestHandler::RecordFailed(const Header& h, const absl::Status& s,
                                    std::span<uint8_t> reply) {
  const bool publish = h.message_type() == MessageType::kPublish;
  Bump(counters_->state_errors);
  // While the store is down every pub and unp fails alike: one line per
  // 10 s, then how many more failed meanwhile (the metrics count them all).
  const absl::Time wall = absl::Now();
  if (wall - record_failed_window_ >= absl::Seconds(10)) {
    if (record_failed_suppressed_ > 0) {
      LogError(record_failed_suppressed_,
               " more publication changes could not be recorded in the "
               "last 10 s");
    }
    record_failed_window_ = wall;
    record_failed_suppressed_ = 0;
    LogError(publish ? "cannot record a publication: "
                     : "cannot record an unpublication: ",
             s.ToString());
  } else {
    ++record_failed_suppressed_;
  }
  // Not durable, so not acknowledged; memory was not changed.
  if (absl::IsUnavailable(s)) {
    // Cluster mode: the store is cut off; the client may try again.
    return Error(h, ResultCode::kInternal,
                 publish ? "the index store is unreachable; the publication "
                           "was not recorded: try again"
                         : "the index store is unreachable; the "
                           "unpublication was not recorded: try again",
                 reply);
  }
  return Error(h, ResultCode::kInternal,
               publish ? "the daemon could not record the publication"
                       : "the daemon could not record the unpublication",
               reply);
}

void RequestHandler::CompleteDeferred(const DeferredRequest& request,
                                      const absl::Status& outcome) {
  const Header& h = request.header;
  const Caller& caller = request.caller;
  std::span<uint8_t> reply(deferred_reply_);
  size_t size;
  if (outcome.ok()) {
    RememberReply(caller, h, ResultCode::kOk);
    size = protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
  } else if (absl::IsNotFound(outcome)) {
    // An UNP whose name an earlier change of the same batch took away.
    RememberReply(caller, h, ResultCode::kNotFound);
    size = Error(h, ResultCode::kNotFound, outcome.message(), reply);
  } else {
    sessions_->ForgetPending(caller.session_id, h.request_id, h.type);
    size = RecordFailed(h, outcome, reply);
  }
  // Read before sealing: the sealed bytes no longer show it.
  const uint8_t code =
      size > protocol::kHeaderSize ? reply[protocol::kHeaderSize] : 0;
  size = SealReply(caller.key, caller.sequence, reply, size);
  metrics_.Record(h.type, size > 0, code);
  if (size == 0) return;
  Bump(counters_->replies);
  if (options_.verbose) {
    LogReply(caller.from, caller.name(),
             code == static_cast<uint8_t>(ResultCode::kOk));
  }
  send_(reply.first(size), caller.from);
}

std::optional<HmacSha256Key> RequestHandler::HolderTicketKey(
    uint64_t session_id) {
  // A local holder: derived from its session key (two HMACs on the stack),
  // kept in this thread's cache rather than in the session table, where it
  // would add to every session.
  if (std::optional<SessionKey> key = sessions_->KeyOf(session_id)) {
    return ticket_keys_.MacKeyOf(session_id, *key);
  }
  // A holder another daemon of the cluster serves: the ticket key it
  // published with its session.
  if (shared_.replica != nullptr) {
    if (std::optional<TicketKey> key =
            shared_.replica->TicketKeyOf(session_id)) {
      return TicketMacKey(*key);
    }
  }
  return std::nullopt;
}

size_t RequestHandler::HandleGet(const Message& m, const Caller& caller,
                                 absl::Time now, std::span<uint8_t> reply) {
  const Header& h = m.header;
  size_t error_size = 0;
  const std::optional<absl::string_view> name =
      RequestedName(m, reply, &error_size);
  if (!name.has_value()) return error_size;
  // On the stack: a GET allocates nothing (tests/unit/
  // request_allocation_test.cc).
  std::array<Holder, protocol::kMaxGetHolders> holders;
  const size_t found =
      registry_->LocateHolders(*name, caller.name(), now, holders);
  std::array<std::array<char, kMaxTicketChars>, protocol::kMaxGetHolders>
      tickets;
  const absl::Time expiry = shared_.wall_clock() + options_.ticket_lifetime;
  protocol::GetReply get;
  for (size_t i = 0; i < found; ++i) {
    const Holder& holder = holders[i];
    // The holder's ticket key: gone if the holder's session ended since
    // LocateHolders found it, which makes it no holder.
    std::optional<HmacSha256Key> holder_key =
        HolderTicketKey(holder.session_id);
    if (!holder_key.has_value()) continue;
    protocol::GetHolder& entry = get.holders[get.holder_count];
    entry.user = holder.user.view();
    entry.address.family = holder.file_server.family;
    entry.address.ip = holder.file_server.ip;
    entry.address.port = holder.file_server.port;
    entry.key_pin = holder.key_pin;
    const size_t ticket_size =
        WriteTicket(*holder_key, holder.user.view(), caller.name(), *name,
                    expiry, tickets[get.holder_count]);
    entry.ticket =
        absl::string_view(tickets[get.holder_count].data(), ticket_size);
    // Every holder found shares the first one's content.
    get.size = holder.meta.size;
    get.root = holder.meta.root;
    ++get.holder_count;
  }
  if (get.holder_count == 0) {
    return Error(h, ResultCode::kNotFound, "File not found", reply);
  }
  return protocol::EncodeGetReply(h, get, reply);
}

}  // namespace pcfs
