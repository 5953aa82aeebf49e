#include "core/client/list_pager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pcfs::client {

using protocol::ResultCode;

ListPager::ListPager(protocol::MessageType type, absl::string_view pattern)
    : type_(type) {
  body_.list.pattern = pattern;
}

absl::StatusOr<bool> ListPager::Add(const Reply& reply) {
  if (!reply.malformed.ok()) {
    return absl::InternalError(absl::StrCat("malformed reply from the daemon: ",
                                            reply.malformed.message()));
  }
  protocol::ListRequest& request = body_.list;
  if (reply.code == ResultCode::kCursorExpired && ++restarts_ <= kMaxRestarts) {
    names_.clear();
    request.snapshot = 0;
    request.cursor = 0;
    return false;
  }
  if (absl::Status s = StatusFromResult(reply.code, reply.message); !s.ok()) {
    return s;
  }
  absl::StatusOr<protocol::ListReply> page =
      protocol::DecodeListReply(reply.payload);
  if (!page.ok()) return page.status();
  // The total is only a hint for the first allocation, bounded so that a
  // strange one cannot ask for gigabytes.
  if (request.cursor == 0 && !is_search()) {
    names_.reserve(std::min<uint32_t>(page->total, kMaxReserve));
  }
  for (absl::string_view name : page->names) names_.emplace_back(name);
  if (page->next_cursor == 0) {
    if (is_search()) {
      std::sort(names_.begin(), names_.end());
      names_.erase(std::unique(names_.begin(), names_.end()), names_.end());
    }
    return true;
  }
  if (page->names.empty() && !is_search()) {
    return absl::InternalError("the daemon sent an empty page mid-list");
  }
  if (page->snapshot == request.snapshot &&
      page->next_cursor == request.cursor) {
    return absl::InternalError("the daemon's list cursor did not move");
  }
  request.snapshot = page->snapshot;
  request.cursor = page->next_cursor;
  return false;
}

}  // namespace pcfs::client
