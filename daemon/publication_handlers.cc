#include <optional>

#include "absl/strings/str_cat.h"
#include "core/auth/ticket.h"
#include "core/base/log.h"
#include "core/base/names.h"
#include "daemon/handler_util.h"
#include "daemon/handlers.h"

// PUB, UNP and GET: publications (recorded durably before they are
// acknowledged) and the lookup of a holder, with its download ticket.

namespace pcfs {
namespace {

using handler_internal::Bump;
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
  meta.sha256 = request->sha256;
  if (registry_->Publish(caller.name(), request->name, meta) &&
      shared_.log != nullptr) {
    absl::Status s =
        shared_.log->RecordPublish(caller.name(), request->name, meta);
    if (!s.ok()) {
      // Not durable, so not acknowledged: take it back.
      registry_->Unpublish(caller.name(), request->name).IgnoreError();
      Bump(counters_->state_errors);
      LogError("cannot record a publication: ", s.ToString());
      return Error(h, ResultCode::kInternal,
                   "the daemon could not record the publication", reply);
    }
  }
  RememberReply(caller, h, ResultCode::kOk);
  return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
}

size_t RequestHandler::HandleUnpublish(const Message& m, const Caller& caller,
                                       absl::Time /*now*/,
                                       std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::NameRequest> request =
      protocol::DecodeNameRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  if (!registry_->Unpublish(caller.name(), request->name).ok()) {
    RememberReply(caller, h, ResultCode::kNotFound);
    return Error(h, ResultCode::kNotFound,
                 absl::StrCat("you do not publish ", request->name), reply);
  }
  if (shared_.log != nullptr) {
    absl::Status s = shared_.log->RecordUnpublish(caller.name(), request->name);
    if (!s.ok()) {
      Bump(counters_->state_errors);
      LogError("cannot record an unpublication: ", s.ToString());
      return Error(h, ResultCode::kInternal,
                   "the daemon could not record the unpublication", reply);
    }
  }
  RememberReply(caller, h, ResultCode::kOk);
  return protocol::EncodeStatusReply(h, ResultCode::kOk, "", reply);
}

size_t RequestHandler::HandleGet(const Message& m, const Caller& caller,
                                 absl::Time now, std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::NameRequest> request =
      protocol::DecodeNameRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  if (absl::Status s = ValidateFileName(request->name); !s.ok()) {
    return Error(h, ResultCode::kInvalidName, s.message(), reply);
  }
  std::optional<Holder> holder =
      registry_->Locate(request->name, caller.name(), now);
  // The holder's key, to MAC the ticket with: gone if the holder's session
  // ended since Locate found it, which makes it no holder.
  std::optional<SessionKey> holder_key =
      holder.has_value() ? sessions_->KeyOf(holder->session_id) : std::nullopt;
  if (!holder_key.has_value()) {
    return Error(h, ResultCode::kNotFound, "File not found", reply);
  }
  protocol::GetReply get;
  get.holder = holder->user.view();
  get.address.family = holder->file_server.family;
  get.address.ip = holder->file_server.ip;
  get.address.port = holder->file_server.port;
  get.size = holder->meta.size;
  get.sha256 = holder->meta.sha256;
  // On the stack: a GET allocates nothing (tests/unit/
  // request_allocation_test.cc).
  char ticket[kMaxTicketChars];
  const size_t ticket_size = WriteTicket(
      *holder_key, holder->user.view(), caller.name(), request->name,
      shared_.wall_clock() + options_.ticket_lifetime, ticket);
  get.ticket = absl::string_view(ticket, ticket_size);
  return protocol::EncodeGetReply(h, get, reply);
}

}  // namespace pcfs
