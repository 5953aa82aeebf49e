#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/base/names.h"
#include "daemon/handler_util.h"
#include "daemon/handlers.h"

// LAP, LPF and SCH: paged lists. LAP and LPF page through a snapshot kept
// in the session table; SCH pages straight from the registry's index.

namespace pcfs {
namespace {

using handler_internal::Bump;
using protocol::Header;
using protocol::Message;
using protocol::MessageType;
using protocol::ResultCode;

// ---- SCH pages ----
// An SCH page is read straight from the registry's index (no snapshot), and
// the request's two list fields say where: `snapshot` holds the registry's
// search epoch in its high 16 bits and the name shard in its low 16 (there
// are at most 4096 shards); `cursor` holds the index id + 1, so that it is 0
// only on the first request and, in a reply, on the last page.

uint32_t SearchSnapshotField(uint16_t epoch, uint32_t shard) {
  return (static_cast<uint32_t>(epoch) << 16) | shard;
}

// The position an SCH request asks for, or nullopt if its cursor comes from
// another registry (a daemon run before a restart, whose ids mean other
// names).
std::optional<Registry::SearchCursor> SearchCursorOf(
    const protocol::ListRequest& request, uint16_t epoch) {
  if (request.cursor == 0) return Registry::SearchCursor{};
  if ((request.snapshot >> 16) != epoch) return std::nullopt;
  return Registry::SearchCursor{request.snapshot & 0xFFFF, request.cursor - 1};
}

// Answers an SCH page request whose pattern is valid: one page as the
// registry's SearchPage fills it, and the cursor of the next. A repeat of
// the request (a retransmission) is answered from the registry as it is
// then, which the client cannot tell from the first answer.
size_t SearchPageReply(const Registry& registry, const Header& h,
                       const protocol::ListRequest& request,
                       absl::string_view caller, absl::Time now,
                       std::span<uint8_t> reply) {
  const uint16_t epoch = registry.search_epoch();
  std::optional<Registry::SearchCursor> from = SearchCursorOf(request, epoch);
  absl::StatusOr<std::optional<Registry::SearchCursor>> next;
  protocol::ListReplyWriter writer(h, SearchSnapshotField(epoch, 0),
                                   protocol::kUnknownTotal, reply);
  if (from.has_value()) {
    next = registry.SearchPage(
        request.pattern, caller, now, *from, Registry::kSearchPageBudget,
        [&](absl::string_view name) { return writer.Add(name); });
  }
  if (!from.has_value() || !next.ok()) {
    return protocol::EncodeStatusReply(
        h, ResultCode::kCursorExpired,
        "the search cursor is not this daemon's: start again", reply);
  }
  if (!next->has_value()) return writer.Finish(0);
  writer.SetSnapshot(SearchSnapshotField(epoch, (*next)->shard));
  return writer.Finish((*next)->id + 1);
}

}  // namespace

size_t RequestHandler::HandleList(const Message& m, const Caller& caller,
                                  absl::Time now, std::span<uint8_t> reply) {
  const Header& h = m.header;
  absl::StatusOr<protocol::ListRequest> request =
      protocol::DecodeListRequest(m.body);
  if (!request.ok()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, request.status().message(), reply);
  }
  const bool is_search = h.message_type() == MessageType::kSearch;
  if (!is_search && !request->pattern.empty()) {
    Bump(counters_->rejected_malformed);
    return Error(h, ResultCode::kMalformed, "only SCH takes a pattern", reply);
  }
  if (is_search) {
    if (absl::Status s = ValidateSearchPattern(request->pattern); !s.ok()) {
      return Error(h, ResultCode::kInvalidName, s.message(), reply);
    }
    return SearchPageReply(*registry_, h, *request, caller.name(), now, reply);
  }

  std::shared_ptr<const ListSnapshot> snapshot;
  if (request->cursor == 0) {
    auto fresh = std::make_shared<ListSnapshot>();
    fresh->id = next_snapshot_id_++;
    if (fresh->id == 0) fresh->id = next_snapshot_id_++;
    switch (h.message_type()) {
      case MessageType::kListActivePeers:
        fresh->names = registry_->ActiveUsers(caller.name(), now);
        break;
      default:
        fresh->names = registry_->PublishedBy(caller.name());
        break;
    }
    snapshot = std::move(fresh);
    sessions_->SetSnapshot(caller.session_id, snapshot);
  } else {
    snapshot = sessions_->Snapshot(caller.session_id);
    if (snapshot == nullptr || snapshot->id != request->snapshot ||
        request->cursor > snapshot->names.size()) {
      return Error(h, ResultCode::kCursorExpired,
                   "the list changed while it was read: start again", reply);
    }
  }

  const std::vector<std::string>& names = snapshot->names;
  protocol::ListReplyWriter writer(h, snapshot->id,
                                   static_cast<uint32_t>(names.size()), reply);
  size_t next = request->cursor;
  while (next < names.size() && writer.Add(names[next])) ++next;
  return writer.Finish(next < names.size() ? static_cast<uint32_t>(next) : 0);
}

}  // namespace pcfs
