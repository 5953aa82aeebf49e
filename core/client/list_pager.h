// ListPager: reads a whole LAP, LPF or SCH list page by page. The first
// request asks for cursor 0; each reply's snapshot and next cursor make the
// next request, until a page says it is the last. A snapshot the daemon no
// longer holds (kCursorExpired) restarts the list from the top, a few times
// at most. SCH pages come straight from the daemon's index: in its order,
// with no total, possibly empty mid-list, and a name may come twice (it was
// unpublished and published again while the client read), so an SCH list
// is sorted and made unique at the end.
//
// Sans I/O: the caller sends each request with its ClientSession and feeds
// the reply back. Thread-safety: not thread-safe; one caller owns it.
#ifndef PCFS_CORE_CLIENT_LIST_PAGER_H_
#define PCFS_CORE_CLIENT_LIST_PAGER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/client/client_session.h"
#include "core/proto/protocol.h"

namespace pcfs::client {

class ListPager {
 public:
  // How often a list restarts after kCursorExpired before the error stands.
  static constexpr int kMaxRestarts = 3;
  // The most names reserved up front from a first page's total.
  static constexpr uint32_t kMaxReserve = 1 << 16;

  // `type` is kListActivePeers, kListPublished or kSearch; `pattern` (SCH
  // only) must outlive the pager.
  ListPager(protocol::MessageType type, absl::string_view pattern);

  protocol::MessageType type() const { return type_; }
  // The body of the next page's request.
  const RequestBody& body() const { return body_; }

  // Takes the reply to body()'s request. Returns true when the list is
  // complete (take it with names()), false when another page is due.
  // Errors: the daemon's refusal (StatusFromResult), Internal (a malformed
  // reply, an empty page mid-list, a cursor that did not move), and those
  // of the page decoder.
  absl::StatusOr<bool> Add(const Reply& reply);

  // The names collected; the whole list once Add() returned true.
  std::vector<std::string>& names() { return names_; }

 private:
  bool is_search() const { return type_ == protocol::MessageType::kSearch; }

  const protocol::MessageType type_;
  RequestBody body_;
  std::vector<std::string> names_;
  int restarts_ = 0;
};

}  // namespace pcfs::client

#endif  // PCFS_CORE_CLIENT_LIST_PAGER_H_
