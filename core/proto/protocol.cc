// The control-protocol codec. docs/PROTOCOL.md is the byte-by-byte layout of
// every message; the functions below are the only code that knows it.
#include "core/proto/protocol.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pcfs::protocol {
namespace {

// Encoders never write more than one datagram, whatever `out` offers.
std::span<uint8_t> Limit(std::span<uint8_t> out) {
  return out.first(std::min(out.size(), kMaxDatagramSize));
}

void WriteHeader(const Header& header, Writer& w) {
  w.Bytes(kMagic);
  w.U8(header.version);
  w.U8(header.type);
  w.U16(header.flags);
  w.U16(0);  // reserved
  w.U32(header.request_id);
  w.U64(header.session_id);
  w.U64(header.sequence);
  w.Bytes(header.mac);
}

// The header of the reply to `request`.
Header ReplyHeader(const Header& request) {
  Header reply;
  reply.type = request.type;
  reply.flags = kFlagResponse;
  reply.request_id = request.request_id;
  reply.session_id = request.session_id;
  return reply;
}

size_t SizeIfOk(const Writer& w) { return w.ok() ? w.size() : 0; }

// OK if the reader consumed exactly its whole input.
absl::Status CheckConsumed(const Reader& r, absl::string_view what) {
  if (!r.ok())
    return absl::InvalidArgumentError(absl::StrCat(what, " is truncated"));
  if (!r.at_end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", r.remaining(), " trailing bytes"));
  }
  return absl::OkStatus();
}

// The longest prefix of `s` of at most `max` bytes that does not end inside
// a UTF-8 sequence (so a truncated message is still valid text).
absl::string_view TruncateUtf8(absl::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

// ---------------------------------------------------------------------------
// Names.

std::string MessageTypeName(uint8_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kLogin:
      return "LOGIN";
    case MessageType::kLoginFinish:
      return "LOGIN_FINISH";
    case MessageType::kHeartbeat:
      return "HEARTBEAT";
    case MessageType::kLogout:
      return "LOGOUT";
    case MessageType::kPing:
      return "PING";
    case MessageType::kListActivePeers:
      return "LAP";
    case MessageType::kListPublished:
      return "LPF";
    case MessageType::kPublish:
      return "PUB";
    case MessageType::kUnpublish:
      return "UNP";
    case MessageType::kSearch:
      return "SCH";
    case MessageType::kGet:
      return "GET";
    case MessageType::kStat:
      return "STAT";
  }
  return absl::StrFormat("UNKNOWN(0x%02x)", type);
}

bool IsKnownMessageType(uint8_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kLogin:
    case MessageType::kLoginFinish:
    case MessageType::kHeartbeat:
    case MessageType::kLogout:
    case MessageType::kPing:
    case MessageType::kListActivePeers:
    case MessageType::kListPublished:
    case MessageType::kPublish:
    case MessageType::kUnpublish:
    case MessageType::kSearch:
    case MessageType::kGet:
    case MessageType::kStat:
      return true;
  }
  return false;
}

absl::string_view ResultCodeName(ResultCode code) {
  switch (code) {
    case ResultCode::kOk:
      return "ok";
    case ResultCode::kMalformed:
      return "malformed request";
    case ResultCode::kUnsupportedVersion:
      return "unsupported protocol version";
    case ResultCode::kUnknownSession:
      return "unknown session";
    case ResultCode::kAuthFailed:
      return "authentication failed";
    case ResultCode::kAlreadyActive:
      return "user already active";
    case ResultCode::kNotFound:
      return "not found";
    case ResultCode::kInvalidName:
      return "invalid name";
    case ResultCode::kCursorExpired:
      return "list snapshot expired";
    case ResultCode::kRateLimited:
      return "rate limited";
    case ResultCode::kSessionMismatch:
      return "session mismatch";
    case ResultCode::kUnknownType:
      return "unknown message type";
    case ResultCode::kInternal:
      return "internal error";
  }
  return "unknown result code";
}

// ---------------------------------------------------------------------------
// Header.

absl::StatusOr<Message> ParseDatagram(std::span<const uint8_t> datagram) {
  if (datagram.size() < kHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "datagram of ", datagram.size(), " bytes is shorter than the ",
        kHeaderSize, "-byte header"));
  }
  if (datagram.size() > kMaxDatagramSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("datagram of ", datagram.size(), " bytes exceeds ",
                     kMaxDatagramSize, " bytes"));
  }
  if (datagram[kMagicOffset] != kMagic[0] ||
      datagram[kMagicOffset + 1] != kMagic[1]) {
    return absl::InvalidArgumentError("datagram lacks the magic \"PC\"");
  }
  // The version is checked before the rest of the header, whose layout a
  // later version may change.
  if (datagram[kVersionOffset] != kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "protocol version ", datagram[kVersionOffset],
        " is not supported (this side speaks version ", kVersion, ")"));
  }
  if (datagram[kReservedOffset] != 0 || datagram[kReservedOffset + 1] != 0) {
    return absl::InvalidArgumentError(
        "datagram header has non-zero reserved bytes");
  }
  Message message;
  Header& h = message.header;
  h.version = datagram[kVersionOffset];
  h.type = datagram[kTypeOffset];
  h.flags = LoadBigEndian<uint16_t>(&datagram[kFlagsOffset]);
  h.request_id = LoadBigEndian<uint32_t>(&datagram[kRequestIdOffset]);
  h.session_id = LoadBigEndian<uint64_t>(&datagram[kSessionIdOffset]);
  h.sequence = LoadBigEndian<uint64_t>(&datagram[kSequenceOffset]);
  std::memcpy(h.mac.data(), &datagram[kMacOffset], kMacSize);
  message.body = datagram.subspan(kHeaderSize);
  return message;
}

void EncodeHeader(const Header& header, std::span<uint8_t> out) {
  Writer w(out.first(std::min(out.size(), kHeaderSize)));
  WriteHeader(header, w);
}

// ---------------------------------------------------------------------------
// Writer.

void Writer::Bytes(std::span<const uint8_t> bytes) {
  if (!Reserve(bytes.size())) return;
  if (!bytes.empty()) std::memcpy(&buffer_[size_], bytes.data(), bytes.size());
  size_ += bytes.size();
}

void Writer::Str(absl::string_view s) {
  if (s.size() > 0xFFFF || !Reserve(2 + s.size())) {
    ok_ = false;
    return;
  }
  U16(static_cast<uint16_t>(s.size()));
  Bytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

void Writer::PatchU32(size_t at, uint32_t v) {
  if (!ok_) return;
  if (at > size_ || size_ - at < 4) {
    ok_ = false;
    return;
  }
  StoreBigEndian(v, &buffer_[at]);
}

void Writer::PatchU8(size_t at, uint8_t v) {
  if (!ok_) return;
  if (at >= size_) {
    ok_ = false;
    return;
  }
  buffer_[at] = v;
}

void Writer::PatchU16(size_t at, uint16_t v) {
  if (!ok_) return;
  if (at > size_ || size_ - at < 2) {
    ok_ = false;
    return;
  }
  StoreBigEndian(v, &buffer_[at]);
}

// ---------------------------------------------------------------------------
// Reader.

bool Reader::Bytes(std::span<uint8_t> out) {
  const uint8_t* p;
  if (!Take(out.size(), &p)) return false;
  if (!out.empty()) std::memcpy(out.data(), p, out.size());
  return true;
}

bool Reader::Str(absl::string_view* s) {
  uint16_t length;
  const uint8_t* p;
  if (!U16(&length) || !Take(length, &p)) return false;
  *s = absl::string_view(reinterpret_cast<const char*>(p), length);
  return true;
}

// ---------------------------------------------------------------------------
// Requests.

size_t EncodeLoginRequest(const Header& header, const LoginRequest& request,
                          std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(header, w);
  w.Str(request.client_first);
  for (size_t i = 0; i < request.padding && w.ok(); ++i) w.U8(0);
  return SizeIfOk(w);
}

size_t LoginPaddingFor(absl::string_view client_first) {
  const size_t unpadded = kHeaderSize + 2 + client_first.size();
  return unpadded >= kLoginRequestMinSize ? 0 : kLoginRequestMinSize - unpadded;
}

size_t EncodeLoginFinishRequest(const Header& header,
                                const LoginFinishRequest& request,
                                std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(header, w);
  w.Str(request.client_first);
  w.Str(request.client_final);
  w.U16(request.tcp_port);
  w.Bytes(request.key_pin);
  return SizeIfOk(w);
}

size_t EncodeEmptyRequest(const Header& header, std::span<uint8_t> out,
                          size_t padding) {
  Writer w(Limit(out));
  WriteHeader(header, w);
  for (size_t i = 0; i < padding && w.ok(); ++i) w.U8(0);
  return SizeIfOk(w);
}

size_t EncodePingRequest(const Header& header, const PingRequest& request,
                         std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(header, w);
  w.U64(request.token);
  for (size_t i = 0; i < kPingPaddingBytes; ++i) w.U8(0);
  return SizeIfOk(w);
}

size_t EncodeListRequest(const Header& header, const ListRequest& request,
                         std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(header, w);
  w.U32(request.snapshot);
  w.U32(request.cursor);
  w.Str(request.pattern);
  return SizeIfOk(w);
}

size_t EncodePublishRequest(const Header& header, const PublishRequest& request,
                            std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(header, w);
  w.Str(request.name);
  w.U64(request.size);
  w.Bytes(request.root);
  return SizeIfOk(w);
}

size_t EncodeNameRequest(const Header& header, const NameRequest& request,
                         std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(header, w);
  w.Str(request.name);
  return SizeIfOk(w);
}

absl::StatusOr<LoginRequest> DecodeLoginRequest(std::span<const uint8_t> body) {
  Reader r(body);
  LoginRequest request;
  r.Str(&request.client_first);
  // The padding: zero bytes to the end.
  for (uint8_t byte = 0; r.ok() && !r.at_end() && r.U8(&byte);) {
    if (byte != 0) {
      return absl::InvalidArgumentError(
          "LOGIN request: padding must be zero bytes");
    }
    ++request.padding;
  }
  if (absl::Status s = CheckConsumed(r, "LOGIN request"); !s.ok()) return s;
  return request;
}

absl::StatusOr<LoginFinishRequest> DecodeLoginFinishRequest(
    std::span<const uint8_t> body) {
  Reader r(body);
  LoginFinishRequest request;
  r.Str(&request.client_first);
  r.Str(&request.client_final);
  r.U16(&request.tcp_port);
  if (r.ok() && r.at_end()) {
    return absl::FailedPreconditionError(
        "LOGIN_FINISH carries no TLS key pin: this peerctl is older than the "
        "daemon; upgrade peerctl");
  }
  r.Bytes(request.key_pin);
  if (absl::Status s = CheckConsumed(r, "LOGIN_FINISH request"); !s.ok()) {
    return s;
  }
  return request;
}

absl::Status DecodeEmptyRequest(std::span<const uint8_t> body) {
  for (uint8_t byte : body) {
    if (byte != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("request body must be empty (or zero padding) but has ",
                       body.size(), " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PingRequest> DecodePingRequest(std::span<const uint8_t> body) {
  Reader r(body);
  PingRequest request;
  r.U64(&request.token);
  for (size_t i = 0; i < kPingPaddingBytes; ++i) {
    uint8_t pad = 0;
    if (r.U8(&pad) && pad != 0) {
      return absl::InvalidArgumentError("PING padding must be zero");
    }
  }
  if (absl::Status s = CheckConsumed(r, "PING request"); !s.ok()) return s;
  return request;
}

absl::StatusOr<ListRequest> DecodeListRequest(std::span<const uint8_t> body) {
  Reader r(body);
  ListRequest request;
  r.U32(&request.snapshot);
  r.U32(&request.cursor);
  r.Str(&request.pattern);
  if (absl::Status s = CheckConsumed(r, "list request"); !s.ok()) return s;
  return request;
}

absl::StatusOr<PublishRequest> DecodePublishRequest(
    std::span<const uint8_t> body) {
  Reader r(body);
  PublishRequest request;
  r.Str(&request.name);
  r.U64(&request.size);
  r.Bytes(request.root);
  if (absl::Status s = CheckConsumed(r, "PUB request"); !s.ok()) return s;
  return request;
}

absl::StatusOr<NameRequest> DecodeNameRequest(std::span<const uint8_t> body) {
  Reader r(body);
  NameRequest request;
  r.Str(&request.name);
  if (absl::Status s = CheckConsumed(r, "name request"); !s.ok()) return s;
  return request;
}

// ---------------------------------------------------------------------------
// Replies.

size_t EncodeStatusReply(const Header& request, ResultCode code,
                         absl::string_view message, std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(ReplyHeader(request), w);
  w.U8(static_cast<uint8_t>(code));
  if (code != ResultCode::kOk) {
    // Room for the message once its u16 length is written (0 if none).
    size_t room = w.remaining() >= 2 ? w.remaining() - 2 : 0;
    w.Str(TruncateUtf8(message, room));
  }
  return SizeIfOk(w);
}

size_t EncodePingReply(const Header& request, uint64_t token,
                       std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(ReplyHeader(request), w);
  w.U8(static_cast<uint8_t>(ResultCode::kOk));
  w.U64(token);
  return SizeIfOk(w);
}

size_t EncodeStatReply(const Header& request, const StatReply& reply,
                       std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(ReplyHeader(request), w);
  w.U8(static_cast<uint8_t>(ResultCode::kOk));
  w.U64(reply.size);
  w.Bytes(reply.root);
  return SizeIfOk(w);
}

size_t EncodeLoginReply(const Header& request, const LoginReply& reply,
                        std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(ReplyHeader(request), w);
  w.U8(static_cast<uint8_t>(ResultCode::kOk));
  w.Str(reply.server_first);
  return SizeIfOk(w);
}

size_t EncodeLoginFinishReply(const Header& request,
                              const LoginFinishReply& reply,
                              std::span<uint8_t> out) {
  Writer w(Limit(out));
  WriteHeader(ReplyHeader(request), w);
  w.U8(static_cast<uint8_t>(ResultCode::kOk));
  w.Str(reply.server_final);
  w.U64(reply.session_id);
  w.U32(reply.heartbeat_interval_ms);
  w.U32(reply.session_timeout_ms);
  return SizeIfOk(w);
}

namespace {

// The bytes of an address's IP field: 4 or 16, 0 for an unknown family.
size_t IpSize(uint8_t family) { return family == 4 ? 4 : family == 6 ? 16 : 0; }

// A holder's encoded size: user, family, IP, port, ticket, key pin.
size_t GetHolderSize(const GetHolder& holder) {
  return 2 + holder.user.size() + 1 + IpSize(holder.address.family) + 2 + 2 +
         holder.ticket.size() + kSha256Size;
}

}  // namespace

size_t EncodeGetReply(const Header& request, const GetReply& reply,
                      std::span<uint8_t> out) {
  const std::span<const GetHolder> holders = reply.active_holders();
  if (holders.empty()) return 0;
  for (const GetHolder& holder : holders) {
    if (IpSize(holder.address.family) == 0) return 0;
  }
  Writer w(Limit(out));
  WriteHeader(ReplyHeader(request), w);
  w.U8(static_cast<uint8_t>(ResultCode::kOk));
  w.U64(reply.size);
  w.Bytes(reply.root);
  const size_t count_at = w.size();
  w.U8(0);  // the holder count, patched below
  uint8_t count = 0;
  for (const GetHolder& holder : holders) {
    // Strings longer than a u16 make the writer fail, as they should.
    if (w.ok() && GetHolderSize(holder) > w.remaining()) break;
    w.Str(holder.user);
    w.U8(holder.address.family);
    w.Bytes(std::span<const uint8_t>(holder.address.ip)
                .first(IpSize(holder.address.family)));
    w.U16(holder.address.port);
    w.Str(holder.ticket);
    w.Bytes(holder.key_pin);
    ++count;
  }
  if (count == 0) return 0;
  w.PatchU8(count_at, count);
  return SizeIfOk(w);
}

ListReplyWriter::ListReplyWriter(const Header& request, uint32_t snapshot,
                                 uint32_t total, std::span<uint8_t> out)
    : writer_(Limit(out)) {
  WriteHeader(ReplyHeader(request), writer_);
  writer_.U8(static_cast<uint8_t>(ResultCode::kOk));
  snapshot_at_ = writer_.size();
  writer_.U32(snapshot);
  next_cursor_at_ = writer_.size();
  writer_.U32(0);  // next_cursor, patched by Finish()
  writer_.U32(total);
  count_at_ = writer_.size();
  writer_.U16(0);  // count, patched by Finish()
}

bool ListReplyWriter::Add(absl::string_view name) {
  if (!writer_.ok() || count_ == 0xFFFF || name.size() > 0xFFFF ||
      writer_.remaining() < 2 + name.size()) {
    return false;
  }
  writer_.Str(name);
  ++count_;
  return true;
}

void ListReplyWriter::SetSnapshot(uint32_t snapshot) {
  writer_.PatchU32(snapshot_at_, snapshot);
}

size_t ListReplyWriter::Finish(uint32_t next_cursor) {
  writer_.PatchU32(next_cursor_at_, next_cursor);
  writer_.PatchU16(count_at_, count_);
  return SizeIfOk(writer_);
}

// ---------------------------------------------------------------------------
// Client-side reply decoding.

absl::StatusOr<ReplyStatus> DecodeReplyStatus(std::span<const uint8_t> body) {
  Reader r(body);
  uint8_t code;
  if (!r.U8(&code)) return absl::InvalidArgumentError("reply body is empty");
  ReplyStatus status;
  status.code = static_cast<ResultCode>(code);
  if (status.code == ResultCode::kOk) {
    status.payload = body.subspan(1);
    return status;
  }
  // Any other code, known or not, is an error with a message; a client shows
  // the message of a code newer than itself.
  r.Str(&status.message);
  if (absl::Status s = CheckConsumed(r, "error reply"); !s.ok()) return s;
  return status;
}

absl::StatusOr<uint64_t> DecodePingReply(std::span<const uint8_t> payload) {
  Reader r(payload);
  uint64_t token = 0;
  r.U64(&token);
  if (absl::Status s = CheckConsumed(r, "PING reply"); !s.ok()) return s;
  return token;
}

absl::StatusOr<StatReply> DecodeStatReply(std::span<const uint8_t> payload) {
  Reader r(payload);
  StatReply reply;
  r.U64(&reply.size);
  r.Bytes(reply.root);
  if (absl::Status s = CheckConsumed(r, "STAT reply"); !s.ok()) return s;
  return reply;
}

absl::StatusOr<LoginReply> DecodeLoginReply(std::span<const uint8_t> payload) {
  Reader r(payload);
  LoginReply reply;
  r.Str(&reply.server_first);
  if (absl::Status s = CheckConsumed(r, "LOGIN reply"); !s.ok()) return s;
  return reply;
}

absl::StatusOr<LoginFinishReply> DecodeLoginFinishReply(
    std::span<const uint8_t> payload) {
  Reader r(payload);
  LoginFinishReply reply;
  r.Str(&reply.server_final);
  r.U64(&reply.session_id);
  r.U32(&reply.heartbeat_interval_ms);
  r.U32(&reply.session_timeout_ms);
  if (absl::Status s = CheckConsumed(r, "LOGIN_FINISH reply"); !s.ok()) {
    return s;
  }
  if (reply.session_id == 0) {
    return absl::InvalidArgumentError(
        "LOGIN_FINISH reply carries session id 0");
  }
  return reply;
}

absl::StatusOr<GetReply> DecodeGetReply(std::span<const uint8_t> payload) {
  Reader r(payload);
  GetReply reply;
  uint8_t count = 0;
  r.U64(&reply.size);
  r.Bytes(reply.root);
  if (!r.U8(&count)) return CheckConsumed(r, "GET reply");
  if (count == 0 || count > kMaxGetHolders) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GET reply names ", count, " holders; expected 1 to ", kMaxGetHolders));
  }
  for (uint8_t i = 0; i < count; ++i) {
    GetHolder& holder = reply.holders[i];
    r.Str(&holder.user);
    if (!r.U8(&holder.address.family)) return CheckConsumed(r, "GET reply");
    const size_t ip_size = IpSize(holder.address.family);
    if (ip_size == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GET reply has address family ", holder.address.family,
                       "; expected 4 or 6"));
    }
    r.Bytes(std::span<uint8_t>(holder.address.ip).first(ip_size));
    r.U16(&holder.address.port);
    r.Str(&holder.ticket);
    r.Bytes(holder.key_pin);
    if (!r.ok()) return CheckConsumed(r, "GET reply");
  }
  reply.holder_count = count;
  if (absl::Status s = CheckConsumed(r, "GET reply"); !s.ok()) return s;
  return reply;
}

absl::StatusOr<ListReply> DecodeListReply(std::span<const uint8_t> payload) {
  Reader r(payload);
  ListReply reply;
  uint16_t count = 0;
  r.U32(&reply.snapshot);
  r.U32(&reply.next_cursor);
  r.U32(&reply.total);
  r.U16(&count);
  if (!r.ok()) return CheckConsumed(r, "list reply");
  if (count > reply.total) {
    return absl::InvalidArgumentError(absl::StrCat(
        "list reply holds ", count, " names of a list of ", reply.total));
  }
  // Each name takes at least its 2-byte length: a count the payload cannot
  // hold is refused before reserving room for it.
  if (count > r.remaining() / 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("list reply is truncated: ", count,
                     " names cannot fit in ", r.remaining(), " bytes"));
  }
  reply.names.reserve(count);
  for (uint16_t i = 0; i < count; ++i) {
    absl::string_view name;
    if (!r.Str(&name)) break;
    reply.names.push_back(name);
  }
  if (absl::Status s = CheckConsumed(r, "list reply"); !s.ok()) return s;
  return reply;
}

}  // namespace pcfs::protocol
