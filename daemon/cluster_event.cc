#include "daemon/cluster_event.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/base/names.h"

namespace pcfs {
namespace {

// The field names, as redis-cli shows them. The Lua scripts of
// daemon/cluster_store.cc write logout entries themselves, with these same
// names ("op", "user", "daemon", "session").
constexpr char kOp[] = "op";
constexpr char kUser[] = "user";
constexpr char kDaemon[] = "daemon";
constexpr char kSession[] = "session";
constexpr char kFile[] = "file";
constexpr char kPin[] = "pin";
constexpr char kTicketKey[] = "ticket_key";
constexpr char kName[] = "name";
constexpr char kSize[] = "size";
constexpr char kRoot[] = "root";

constexpr size_t kDaemonIdDigits = 16;

// A value quoted for an error message: escaped, and cut after 80 bytes.
std::string Quoted(absl::string_view value) {
  std::string quoted = absl::StrCat("\"", absl::CHexEscape(value.substr(0, 80)),
                                    value.size() > 80 ? "...\"" : "\"");
  return quoted;
}

absl::Status BadField(absl::string_view field, absl::string_view value,
                      absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("field \"", field, "\" ", why, ": ", Quoted(value)));
}

bool IsLowerHex(absl::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string LowerHex(std::span<const uint8_t> bytes) {
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// A decimal number as Encode writes it: digits only, no sign, no leading
// zero (but "0" itself), within uint64_t.
std::optional<uint64_t> ParseDecimal(absl::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) return std::nullopt;
  return value;
}

absl::StatusOr<uint64_t> DecimalField(absl::string_view field,
                                      absl::string_view value) {
  std::optional<uint64_t> parsed = ParseDecimal(value);
  if (!parsed.has_value()) {
    return BadField(field, value, "is not a decimal number");
  }
  return *parsed;
}

absl::StatusOr<std::array<uint8_t, 32>> DigestField(absl::string_view field,
                                                    absl::string_view value) {
  if (value.size() != 64 || !IsLowerHex(value)) {
    return BadField(field, value, "is not 64 lowercase hex digits");
  }
  std::array<uint8_t, 32> digest{};
  const std::string bytes = absl::HexStringToBytes(value);
  std::memcpy(digest.data(), bytes.data(), digest.size());
  return digest;
}

absl::Status CheckDaemonId(absl::string_view value) {
  if (value.size() != kDaemonIdDigits || !IsLowerHex(value)) {
    return BadField(kDaemon, value, "is not 16 lowercase hex digits");
  }
  return absl::OkStatus();
}

absl::Status CheckUser(absl::string_view value) {
  absl::Status valid = ValidateUserName(value);
  if (!valid.ok()) {
    return BadField(kUser, value,
                    absl::StrCat("is no user name (", valid.message(), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckName(absl::string_view value) {
  absl::Status valid = ValidateFileName(value);
  if (!valid.ok()) {
    return BadField(kName, value,
                    absl::StrCat("is no file name (", valid.message(), ")"));
  }
  return absl::OkStatus();
}

// "ADDRESS PORT": the address as inet_ntop writes it (IPv4 dotted quad,
// IPv6 in its shortest form, no brackets).
std::string EncodeEndpoint(const Endpoint& endpoint) {
  char text[INET6_ADDRSTRLEN] = "";
  if (endpoint.family == 6) {
    ::inet_ntop(AF_INET6, endpoint.ip.data(), text, sizeof(text));
  } else {
    ::inet_ntop(AF_INET, endpoint.ip.data(), text, sizeof(text));
  }
  return absl::StrCat(text, " ", endpoint.port);
}

absl::StatusOr<Endpoint> DecodeEndpoint(absl::string_view field,
                                        absl::string_view value) {
  const size_t space = value.find(' ');
  if (space == absl::string_view::npos) {
    return BadField(field, value, "is not \"ADDRESS PORT\"");
  }
  const std::string address(value.substr(0, space));
  std::optional<uint64_t> port = ParseDecimal(value.substr(space + 1));
  if (!port.has_value() || *port > 65535) {
    return BadField(field, value, "has no port (0 to 65535)");
  }
  Endpoint endpoint;
  endpoint.port = static_cast<uint16_t>(*port);
  const bool v6 = address.find(':') != std::string::npos;
  endpoint.family = v6 ? 6 : 4;
  const int family = v6 ? AF_INET6 : AF_INET;
  char canonical[INET6_ADDRSTRLEN] = "";
  if (::inet_pton(family, address.c_str(), endpoint.ip.data()) != 1 ||
      ::inet_ntop(family, endpoint.ip.data(), canonical, sizeof(canonical)) ==
          nullptr ||
      address != canonical) {
    return BadField(field, value,
                    v6 ? "has no IPv6 address in its shortest form"
                       : "has no IPv4 address (dotted quad)");
  }
  return endpoint;
}

// The fields of one entry by name: each known name at most once, no other.
class FieldMap {
 public:
  static absl::StatusOr<FieldMap> Make(
      std::span<const std::pair<std::string, std::string>> fields,
      std::span<const char* const> known) {
    FieldMap map;
    for (const auto& [field, value] : fields) {
      bool is_known = false;
      for (const char* name : known) is_known = is_known || field == name;
      if (!is_known) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown field ", Quoted(field)));
      }
      for (const auto& [seen, unused] : map.fields_) {
        if (seen == field) {
          return absl::InvalidArgumentError(
              absl::StrCat("field \"", field, "\" appears twice"));
        }
      }
      map.fields_.emplace_back(field, value);
    }
    return map;
  }

  // The value of `field`; InvalidArgument if it is missing.
  absl::StatusOr<absl::string_view> Get(const char* field) const {
    for (const auto& [name, value] : fields_) {
      if (name == field) return value;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("field \"", field, "\" is missing"));
  }
  size_t size() const { return fields_.size(); }

 private:
  std::vector<std::pair<absl::string_view, absl::string_view>> fields_;
};

// Fills the fields of `session` that `map` must hold: user, daemon and
// session always, and with `full` its file server, pin and ticket key.
absl::Status DecodeSessionFields(const FieldMap& map, bool full,
                                 ClusterSession& session) {
  absl::StatusOr<absl::string_view> user = map.Get(kUser);
  if (!user.ok()) return user.status();
  if (absl::Status s = CheckUser(*user); !s.ok()) return s;
  session.user = std::string(*user);

  absl::StatusOr<absl::string_view> daemon = map.Get(kDaemon);
  if (!daemon.ok()) return daemon.status();
  if (absl::Status s = CheckDaemonId(*daemon); !s.ok()) return s;
  session.daemon_id = std::string(*daemon);

  absl::StatusOr<absl::string_view> id = map.Get(kSession);
  if (!id.ok()) return id.status();
  absl::StatusOr<uint64_t> session_id = DecimalField(kSession, *id);
  if (!session_id.ok()) return session_id.status();
  session.session_id = *session_id;
  if (!full) return absl::OkStatus();

  absl::StatusOr<absl::string_view> file = map.Get(kFile);
  if (!file.ok()) return file.status();
  absl::StatusOr<Endpoint> endpoint = DecodeEndpoint(kFile, *file);
  if (!endpoint.ok()) return endpoint.status();
  session.file_server = *endpoint;

  absl::StatusOr<absl::string_view> pin = map.Get(kPin);
  if (!pin.ok()) return pin.status();
  absl::StatusOr<std::array<uint8_t, 32>> pin_bytes = DigestField(kPin, *pin);
  if (!pin_bytes.ok()) return pin_bytes.status();
  session.key_pin = *pin_bytes;

  absl::StatusOr<absl::string_view> key = map.Get(kTicketKey);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::array<uint8_t, 32>> key_bytes =
      DigestField(kTicketKey, *key);
  if (!key_bytes.ok()) return key_bytes.status();
  session.ticket_key = *key_bytes;
  return absl::OkStatus();
}

void AppendSessionFields(const ClusterSession& session, bool full,
                         FieldValues& out) {
  out.emplace_back(kUser, session.user);
  out.emplace_back(kDaemon, session.daemon_id);
  out.emplace_back(kSession, absl::StrCat(session.session_id));
  if (!full) return;
  out.emplace_back(kFile, EncodeEndpoint(session.file_server));
  out.emplace_back(kPin, LowerHex(session.key_pin));
  out.emplace_back(kTicketKey, LowerHex(session.ticket_key));
}

absl::Status Prefixed(absl::string_view what, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", status.message()));
}

}  // namespace

FieldValues EncodeClusterEvent(const ClusterEvent& event) {
  FieldValues out;
  switch (event.kind) {
    case ClusterEvent::Kind::kLogin:
      out.emplace_back(kOp, "login");
      AppendSessionFields(event.session, /*full=*/true, out);
      break;
    case ClusterEvent::Kind::kLogout:
      out.emplace_back(kOp, "logout");
      AppendSessionFields(event.session, /*full=*/false, out);
      break;
    case ClusterEvent::Kind::kPublish:
      out.emplace_back(kOp, "pub");
      out.emplace_back(kUser, event.session.user);
      out.emplace_back(kName, event.name);
      out.emplace_back(kSize, absl::StrCat(event.meta.size));
      out.emplace_back(kRoot, LowerHex(event.meta.root));
      break;
    case ClusterEvent::Kind::kUnpublish:
      out.emplace_back(kOp, "unp");
      out.emplace_back(kUser, event.session.user);
      out.emplace_back(kName, event.name);
      break;
  }
  return out;
}

absl::StatusOr<ClusterEvent> DecodeClusterEvent(
    std::span<const std::pair<std::string, std::string>> fields) {
  if (fields.empty() || fields[0].first != kOp) {
    return absl::InvalidArgumentError(
        "cluster event: field \"op\" is missing (it must come first)");
  }
  const std::string& op = fields[0].second;
  ClusterEvent event;
  static constexpr const char* kLoginFields[] = {
      kOp, kUser, kDaemon, kSession, kFile, kPin, kTicketKey};
  static constexpr const char* kLogoutFields[] = {kOp, kUser, kDaemon,
                                                  kSession};
  static constexpr const char* kPubFields[] = {kOp, kUser, kName, kSize, kRoot};
  static constexpr const char* kUnpFields[] = {kOp, kUser, kName};
  std::span<const char* const> known;
  if (op == "login") {
    event.kind = ClusterEvent::Kind::kLogin;
    known = kLoginFields;
  } else if (op == "logout") {
    event.kind = ClusterEvent::Kind::kLogout;
    known = kLogoutFields;
  } else if (op == "pub") {
    event.kind = ClusterEvent::Kind::kPublish;
    known = kPubFields;
  } else if (op == "unp") {
    event.kind = ClusterEvent::Kind::kUnpublish;
    known = kUnpFields;
  } else {
    return Prefixed("cluster event",
                    BadField(kOp, op, "is not login, logout, pub or unp"));
  }
  const std::string what = absl::StrCat("cluster event \"", op, "\"");
  absl::StatusOr<FieldMap> map = FieldMap::Make(fields, known);
  if (!map.ok()) return Prefixed(what, map.status());

  absl::Status decoded;
  switch (event.kind) {
    case ClusterEvent::Kind::kLogin:
    case ClusterEvent::Kind::kLogout:
      decoded = DecodeSessionFields(
          *map, event.kind == ClusterEvent::Kind::kLogin, event.session);
      break;
    case ClusterEvent::Kind::kPublish:
    case ClusterEvent::Kind::kUnpublish: {
      absl::StatusOr<absl::string_view> user = map->Get(kUser);
      if (!user.ok()) return Prefixed(what, user.status());
      if (absl::Status s = CheckUser(*user); !s.ok()) return Prefixed(what, s);
      event.session.user = std::string(*user);
      absl::StatusOr<absl::string_view> name = map->Get(kName);
      if (!name.ok()) return Prefixed(what, name.status());
      if (absl::Status s = CheckName(*name); !s.ok()) return Prefixed(what, s);
      event.name = std::string(*name);
      if (event.kind == ClusterEvent::Kind::kUnpublish) break;
      absl::StatusOr<absl::string_view> size = map->Get(kSize);
      if (!size.ok()) return Prefixed(what, size.status());
      absl::StatusOr<uint64_t> size_value = DecimalField(kSize, *size);
      if (!size_value.ok()) return Prefixed(what, size_value.status());
      event.meta.size = *size_value;
      absl::StatusOr<absl::string_view> root = map->Get(kRoot);
      if (!root.ok()) return Prefixed(what, root.status());
      absl::StatusOr<std::array<uint8_t, 32>> root_value =
          DigestField(kRoot, *root);
      if (!root_value.ok()) return Prefixed(what, root_value.status());
      event.meta.root = *root_value;
      break;
    }
  }
  if (!decoded.ok()) return Prefixed(what, decoded);
  return event;
}

FieldValues EncodeClusterSession(const ClusterSession& session) {
  FieldValues out;
  AppendSessionFields(session, /*full=*/true, out);
  return out;
}

absl::StatusOr<ClusterSession> DecodeClusterSession(
    std::span<const std::pair<std::string, std::string>> fields) {
  // A hash's fields come back in any order (HGETALL of a hash that Redis
  // keeps as a hash table): only names count.
  static constexpr const char* kSessionFields[] = {kUser, kDaemon, kSession,
                                                   kFile, kPin,    kTicketKey};
  absl::StatusOr<FieldMap> map = FieldMap::Make(fields, kSessionFields);
  if (!map.ok()) return Prefixed("cluster session", map.status());
  ClusterSession session;
  absl::Status decoded = DecodeSessionFields(*map, /*full=*/true, session);
  if (!decoded.ok()) return Prefixed("cluster session", decoded);
  return session;
}

std::string EncodePublicationValue(const FileMeta& meta) {
  return absl::StrCat(meta.size, " ", LowerHex(meta.root));
}

absl::StatusOr<FileMeta> DecodePublicationValue(absl::string_view value) {
  const size_t space = value.find(' ');
  std::optional<uint64_t> size;
  if (space != absl::string_view::npos) {
    size = ParseDecimal(value.substr(0, space));
  }
  const absl::string_view root =
      space == absl::string_view::npos ? "" : value.substr(space + 1);
  if (!size.has_value() || root.size() != 64 || !IsLowerHex(root)) {
    return absl::InvalidArgumentError(
        absl::StrCat("publication value ", Quoted(value),
                     " is not \"SIZE ROOTHEX\" (a decimal size and 64 "
                     "lowercase hex digits)"));
  }
  FileMeta meta;
  meta.size = *size;
  const std::string bytes = absl::HexStringToBytes(root);
  std::memcpy(meta.root.data(), bytes.data(), meta.root.size());
  return meta;
}

}  // namespace pcfs
