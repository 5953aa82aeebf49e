// What the daemons of one cluster (peerconnectd --redis) tell each other
// through the Redis stream of changes, and what a daemon knows of a session
// another daemon holds. Pure: no I/O. docs/SCALING.md draws the design.
//
// Stream entries (pcfs:changes) are flat field/value pairs; the first field
// is "op" with one of "login", "logout", "pub", "unp". Every value is text
// (decimal numbers, hex digests, "ADDRESS PORT" endpoints) so that
// redis-cli shows the stream readably.
#ifndef PCFS_DAEMON_CLUSTER_EVENT_H_
#define PCFS_DAEMON_CLUSTER_EVENT_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/endpoint.h"
#include "core/index/registry.h"
#include "daemon/publication_log.h"  // PublicationChange

namespace pcfs {

// A session as the whole cluster knows it: enough to list its user (lap),
// to send a downloader to it (get: its file server, its TLS key's pin and
// the key that MACs its tickets) and to free it (its daemon and id).
struct ClusterSession {
  std::string user;
  std::string daemon_id;  // the daemon that holds it (16 hex digits)
  uint64_t session_id = 0;
  Endpoint file_server;                  // control address's IP, file port
  std::array<uint8_t, 32> key_pin{};     // zero: it serves plain HTTP
  std::array<uint8_t, 32> ticket_key{};  // TicketKeyFor(its session key)

  friend bool operator==(const ClusterSession&,
                         const ClusterSession&) = default;
};

struct ClusterEvent {
  enum class Kind { kLogin, kLogout, kPublish, kUnpublish };
  Kind kind = Kind::kLogin;
  // kLogin: all of it. kLogout: user, daemon_id and session_id.
  // kPublish, kUnpublish: user only.
  ClusterSession session;
  std::string name;  // kPublish, kUnpublish
  FileMeta meta;     // kPublish

  friend bool operator==(const ClusterEvent&, const ClusterEvent&) = default;
};

// Everything the store holds, to (re)build a replica from: every claimed
// session and every publication (kind kPublish).
struct ClusterSnapshot {
  std::vector<ClusterSession> sessions;
  std::vector<PublicationChange> publications;
};

using FieldValues = std::vector<std::pair<std::string, std::string>>;

// A stream entry's field/value pairs for `event`, and back. Decode fails
// (InvalidArgument, naming the field) on anything Encode would not write.
FieldValues EncodeClusterEvent(const ClusterEvent& event);
absl::StatusOr<ClusterEvent> DecodeClusterEvent(
    std::span<const std::pair<std::string, std::string>> fields);

// The same for a session as stored in its own hash (pcfs:session:USER).
FieldValues EncodeClusterSession(const ClusterSession& session);
absl::StatusOr<ClusterSession> DecodeClusterSession(
    std::span<const std::pair<std::string, std::string>> fields);

// A publication's value in its user's hash (pcfs:pub:USER, field NAME):
// "SIZE ROOTHEX" (decimal size, the Merkle root in 64 lowercase hex
// digits), and back (InvalidArgument on anything else).
std::string EncodePublicationValue(const FileMeta& meta);
absl::StatusOr<FileMeta> DecodePublicationValue(absl::string_view value);

}  // namespace pcfs

#endif  // PCFS_DAEMON_CLUSTER_EVENT_H_
