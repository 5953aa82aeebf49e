// The control protocol between peerctl and peerconnectd: a binary, versioned
// UDP protocol. docs/PROTOCOL.md describes every message byte by byte; this
// header is its code. Pure: no sockets, no clock, no allocation when encoding
// or when decoding a request (decoded strings are views into the datagram, so
// the datagram must outlive them).
//
// Every datagram is a fixed 44-byte header followed by a body:
//
//   offset size field
//   0      2    magic "PC" (0x50 0x43)
//   2      1    version (3)
//   3      1    type (MessageType)
//   4      2    flags (bit 0: response)
//   6      2    reserved, zero
//   8      4    request id (chosen by the client; a reply echoes it)
//   12     8    session id (0 before login)
//   20     8    sequence number (0 in LOGIN and LOGIN_FINISH)
//   28     16   MAC field: the AEAD tag of a sealed datagram (zero in LOGIN,
//                LOGIN_FINISH, PING, their replies and the replies the
//                daemon cannot seal; see core/auth/datagram_auth.h)
//   44     ...  body (encrypted in a sealed datagram)
//
// Integers are big-endian. A string is a u16 byte length then the bytes. A
// datagram is never larger than kMaxDatagramSize. Every reply body starts
// with a ResultCode byte; when it is not kOk, a string with a human-readable
// message follows and nothing else.
//
// All functions here are thread-safe (they touch only their arguments).
#ifndef PCFS_CORE_PROTO_PROTOCOL_H_
#define PCFS_CORE_PROTO_PROTOCOL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/base/big_endian.h"
#include "core/base/digest.h"

namespace pcfs::protocol {

inline constexpr uint8_t kMagic[2] = {0x50, 0x43};  // "PC"
// 3: a GET reply names several holders of the file (2: one holder; 1: HMAC,
// body clear; 2 and later seal session datagrams with AES-128-GCM).
inline constexpr uint8_t kVersion = 3;
inline constexpr size_t kMacSize = 16;
// Where each header field starts (the table above). Code that reads or
// writes one field of an encoded datagram uses these, never a number.
inline constexpr size_t kMagicOffset = 0;
inline constexpr size_t kVersionOffset = 2;
inline constexpr size_t kTypeOffset = 3;
inline constexpr size_t kFlagsOffset = 4;
inline constexpr size_t kReservedOffset = 6;
inline constexpr size_t kRequestIdOffset = 8;
inline constexpr size_t kSessionIdOffset = 12;
inline constexpr size_t kSequenceOffset = 20;
inline constexpr size_t kMacOffset = 28;
inline constexpr size_t kHeaderSize = 44;
static_assert(kMacOffset + kMacSize == kHeaderSize);
inline constexpr size_t kNonceSize = 16;
// No datagram exceeds this, so nothing is ever IP-fragmented (IPv6's minimum
// MTU is 1280 bytes, less 40 for the IPv6 and 8 for the UDP header).
inline constexpr size_t kMaxDatagramSize = 1200;
inline constexpr size_t kMaxBodySize = kMaxDatagramSize - kHeaderSize;

enum class MessageType : uint8_t {
  kLogin = 0x01,  // SCRAM step 1: client-first -> server-first
  kHeartbeat = 0x02,
  kLogout = 0x03,
  kLoginFinish = 0x04,      // SCRAM step 2: client-final -> server-final
  kPing = 0x05,             // unauthenticated health check (peerconnectd ping)
  kListActivePeers = 0x10,  // lap
  kListPublished = 0x11,    // lpf
  kPublish = 0x12,          // pub
  kUnpublish = 0x13,        // unp
  kSearch = 0x14,           // sch
  kGet = 0x15,              // get
  // The caller's own publication of a name: its size and root (peerctl's
  // file server checks a file published in an earlier run against it).
  kStat = 0x16,
};

// Returns the protocol name of a message type ("LOGIN", "LOGIN_FINISH",
// "HEARTBEAT", "LAP", "LPF", "PUB", "UNP", "SCH", "GET", "STAT", "LOGOUT",
// "PING"), or
// "UNKNOWN(0xNN)".
std::string MessageTypeName(uint8_t type);
// True if `type` is one of the MessageType values above.
bool IsKnownMessageType(uint8_t type);

inline constexpr uint16_t kFlagResponse = 0x0001;

enum class ResultCode : uint8_t {
  kOk = 0,
  kMalformed = 1,           // the request could not be decoded
  kUnsupportedVersion = 2,  // header version is not kVersion
  kUnknownSession = 3,      // no such session, or it expired: log in again
  kAuthFailed = 4,          // wrong user or password
  kAlreadyActive = 5,       // the user already holds a live session
  kNotFound = 6,            // no such file, publication or active holder
  kInvalidName = 7,         // a name broke the rules of core/base/names.h
  kCursorExpired = 8,       // a list snapshot is gone: restart at cursor 0
  kRateLimited = 9,         // too many attempts: wait and retry
  kSessionMismatch = 10,    // no longer sent: sessions follow their key
  kUnknownType = 11,        // the message type is not known
  kInternal = 255,
};
// Returns a short English description, e.g. "not found".
absl::string_view ResultCodeName(ResultCode code);

// The message of a kAlreadyActive login refusal is "user NAME" followed by
// one of these: the daemon holds the user's session itself, or (a cluster)
// another daemon does. A client tells them apart by it
// (docs/PROTOCOL.md, LOGIN_FINISH).
inline constexpr absl::string_view kActiveHere = " is already active";
inline constexpr absl::string_view kActiveOnAnotherDaemon =
    " is already active on another daemon";

struct Header {
  uint8_t version = kVersion;
  uint8_t type = 0;  // a MessageType value; kept raw so unknown types decode
  uint16_t flags = 0;
  uint32_t request_id = 0;
  uint64_t session_id = 0;
  uint64_t sequence = 0;
  std::array<uint8_t, kMacSize> mac{};

  bool is_response() const { return (flags & kFlagResponse) != 0; }
  MessageType message_type() const { return static_cast<MessageType>(type); }
};

// A datagram split into its header and body. `body` views the datagram.
struct Message {
  Header header;
  std::span<const uint8_t> body;
};

// Splits a datagram. Errors (InvalidArgument): shorter than the header,
// longer than kMaxDatagramSize, bad magic, non-zero reserved bytes.
// FailedPrecondition: a version other than kVersion (the caller replies
// kUnsupportedVersion). An unknown type is NOT an error here.
absl::StatusOr<Message> ParseDatagram(std::span<const uint8_t> datagram);

// Writes `header` into the first kHeaderSize bytes of `out`.
// REQUIRES: out.size() >= kHeaderSize.
void EncodeHeader(const Header& header, std::span<uint8_t> out);

// ---------------------------------------------------------------------------
// Bounds-checked primitive writer and reader over a caller's buffer.

// Appends big-endian integers and strings to a fixed buffer. Once a write
// does not fit, ok() is false and every later write is ignored.
class Writer {
 public:
  explicit Writer(std::span<uint8_t> buffer) : buffer_(buffer) {}
  // The fixed-width writes are inline: every datagram's header and nonce
  // take several.
  void U8(uint8_t v) { Fixed(v); }
  void U16(uint16_t v) { Fixed(v); }
  void U32(uint32_t v) { Fixed(v); }
  void U64(uint64_t v) { Fixed(v); }
  void Bytes(std::span<const uint8_t> bytes);
  // u16 length, then the bytes. Fails (ok() false) above 65535 bytes.
  void Str(absl::string_view s);
  // Overwrites a u32 written earlier at byte offset `at` (for back-patching).
  void PatchU32(size_t at, uint32_t v);
  void PatchU16(size_t at, uint16_t v);
  void PatchU8(size_t at, uint8_t v);

  bool ok() const { return ok_; }
  size_t size() const { return size_; }
  size_t remaining() const { return buffer_.size() - size_; }

 private:
  bool Reserve(size_t n) {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      return false;
    }
    return true;
  }
  // Writes `v` big-endian.
  template <typename T>
  void Fixed(T v) {
    if (!Reserve(sizeof(v))) return;
    StoreBigEndian(v, buffer_.data() + size_);
    size_ += sizeof(v);
  }
  std::span<uint8_t> buffer_;
  size_t size_ = 0;
  bool ok_ = true;
};

// Reads what Writer wrote. Each read returns false (and leaves the output
// untouched) when the input is too short; after that, ok() is false.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> input) : input_(input) {}
  // Inline, as Writer's.
  bool U8(uint8_t* v) { return Fixed(v); }
  bool U16(uint16_t* v) { return Fixed(v); }
  bool U32(uint32_t* v) { return Fixed(v); }
  bool U64(uint64_t* v) { return Fixed(v); }
  bool Bytes(std::span<uint8_t> out);
  // The view points into the input.
  bool Str(absl::string_view* s);

  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == input_.size(); }
  size_t remaining() const { return input_.size() - pos_; }

 private:
  bool Take(size_t n, const uint8_t** p) {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      return false;
    }
    *p = input_.data() + pos_;
    pos_ += n;
    return true;
  }
  // Reads sizeof(*v) bytes, big-endian, into `v`.
  template <typename T>
  bool Fixed(T* v) {
    const uint8_t* p;
    if (!Take(sizeof(*v), &p)) return false;
    *v = LoadBigEndian<T>(p);
    return true;
  }
  std::span<const uint8_t> input_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// ---------------------------------------------------------------------------
// Message bodies. Each request type has a struct, an Encode...() that writes
// a whole datagram (header included) into `out` and returns its size, and a
// Decode...() that parses a body and fails (InvalidArgument) on truncation,
// trailing bytes, or a field outside its documented range. Name rules
// (core/base/names.h) are NOT checked by the codec: that is the handler's job,
// so that it can answer kInvalidName with a precise message.

using Nonce = std::array<uint8_t, kNonceSize>;

// Login is SCRAM-SHA-256 (RFC 5802, RFC 7677) in two exchanges, and the
// daemon keeps no state between them: its server nonce carries a timestamp
// and a MAC under a daemon secret, and LOGIN_FINISH repeats client-first.
//
// LOGIN request: the SCRAM client-first-message ("n,,n=USER,r=CNONCE"),
// then `padding` zero bytes. The daemon answers a LOGIN with a challenge
// larger than an unpadded request, and never sends more bytes than it got
// from an address that has not logged in (a spoofed sender would make it
// a reflector), so a client pads its LOGIN to kLoginRequestMinSize (like
// QUIC's padded Initial); the daemon refuses a shorter LOGIN.
struct LoginRequest {
  absl::string_view client_first;
  size_t padding = 0;
};
inline constexpr size_t kLoginRequestMinSize = kMaxDatagramSize;
// The padding that makes a LOGIN carrying `client_first` kLoginRequestMinSize
// bytes long (0 if it is that long already).
size_t LoginPaddingFor(absl::string_view client_first);

// LOGIN reply payload (after kOk): the SCRAM server-first-message
// ("r=CNONCE+SNONCE,s=SALT,i=ITERATIONS").
struct LoginReply {
  absl::string_view server_first;
};

// LOGIN_FINISH request: client-first again, the SCRAM client-final-message
// ("c=biws,r=NONCE,p=PROOF"), where the peer's file server listens (on
// the address the datagram came from; 0: it serves nothing), and the pin of
// its TLS key (SHA-256 of its DER SubjectPublicKeyInfo; all zero: it serves
// plain HTTP). A retransmitted LOGIN_FINISH is answered with the same
// session.
struct LoginFinishRequest {
  absl::string_view client_first;
  absl::string_view client_final;
  uint16_t tcp_port = 0;
  Sha256Digest key_pin{};
};

// LOGIN_FINISH reply payload (after kOk): the SCRAM server-final-message
// ("v=SIGNATURE"), which proves the daemon knows the verifier, and the
// session. From here on every datagram of the session, both ways, carries a
// sequence number and is sealed under a key derived from the session key
// (core/auth/datagram_auth.h).
struct LoginFinishReply {
  absl::string_view server_final;
  uint64_t session_id = 0;
  uint32_t heartbeat_interval_ms = 0;
  uint32_t session_timeout_ms = 0;
};

// LAP, LPF and SCH requests. A list is read in pages: the first request has
// snapshot 0 and cursor 0; each further request sends back the last reply's
// snapshot and next_cursor. For LAP and LPF the daemon takes a snapshot of
// the whole list on cursor 0 and `snapshot` is its id; SCH keeps none, and
// the two fields together are its position in the index (docs/PROTOCOL.md,
// "Paging"). `pattern` is used by SCH only (empty for LAP and LPF, and it
// is an error for them to carry one).
struct ListRequest {
  uint32_t snapshot = 0;
  uint32_t cursor = 0;
  absl::string_view pattern;
};

// PUB request.
struct PublishRequest {
  absl::string_view name;
  uint64_t size = 0;
  Sha256Digest root{};
};

// UNP, GET and STAT requests.
struct NameRequest {
  absl::string_view name;
};

// Where a holder's file server listens.
struct PeerAddress {
  uint8_t family = 4;            // 4 or 6
  std::array<uint8_t, 16> ip{};  // first 4 bytes used for IPv4
  uint16_t port = 0;
};

// One holder in a GET reply: who serves the file, where, the ticket that
// holder accepts (MAC'd with the ticket key derived from its session key,
// core/auth/ticket.h) and its TLS key pin.
struct GetHolder {
  absl::string_view user;
  PeerAddress address;
  absl::string_view ticket;  // for "Authorization: Bearer" (core/auth/ticket.h)
  // The pin the holder registered at login (LoginFinishRequest::key_pin);
  // all zero: it serves plain HTTP.
  Sha256Digest key_pin{};
};

// The most holders a GET reply names; fewer when they do not fit in one
// datagram (3 always fit, whatever their names and tickets).
inline constexpr size_t kMaxGetHolders = 8;

// GET reply payload (after kOk): the file's size and root, then 1 to
// kMaxGetHolders holders of that content, the first the daemon's choice.
struct GetReply {
  uint64_t size = 0;
  Sha256Digest root{};
  std::array<GetHolder, kMaxGetHolders> holders{};
  size_t holder_count = 0;

  std::span<const GetHolder> active_holders() const {
    return std::span(holders).first(holder_count);
  }
};

// STAT reply payload (after kOk): the size and root the caller published
// the name with.
struct StatReply {
  uint64_t size = 0;
  Sha256Digest root{};
};

// A decoded list reply page (client side; owns nothing, views the datagram).
struct ListReply {
  uint32_t snapshot = 0;
  uint32_t next_cursor = 0;  // 0: this was the last page
  uint32_t total = 0;        // names in the whole snapshot; SCH: kUnknownTotal
  std::vector<absl::string_view> names;
};

// A list page's total when the list is not counted: SCH pages are read
// straight from the index, with no snapshot, so no one knows the total.
inline constexpr uint32_t kUnknownTotal = 0xFFFFFFFF;

// Requests. Each returns the datagram size, or 0 if it does not fit in
// kMaxDatagramSize or `out` (the caller treats that as a bug or as input too
// long, which names.h limits make impossible).
size_t EncodeLoginRequest(const Header& header, const LoginRequest& request,
                          std::span<uint8_t> out);
size_t EncodeLoginFinishRequest(const Header& header,
                                const LoginFinishRequest& request,
                                std::span<uint8_t> out);
// HEARTBEAT and LOGOUT: no fields, then `padding` zero bytes. A client pads
// with kEmptyRequestPaddingBytes: the daemon's answer to a session it does
// not know (an unsealed error, 47 bytes at least) must not be larger than
// the request, and an unpadded one (44 bytes) gets no answer then.
inline constexpr size_t kEmptyRequestPaddingBytes = 4;
size_t EncodeEmptyRequest(const Header& header, std::span<uint8_t> out,
                          size_t padding = 0);
size_t EncodeListRequest(const Header& header, const ListRequest& request,
                         std::span<uint8_t> out);
size_t EncodePublishRequest(const Header& header, const PublishRequest& request,
                            std::span<uint8_t> out);
size_t EncodeNameRequest(const Header& header, const NameRequest& request,
                         std::span<uint8_t> out);

absl::StatusOr<LoginRequest> DecodeLoginRequest(std::span<const uint8_t> body);
// A LOGIN_FINISH that ends after tcp_port (from a peerctl older than key
// pins) is FailedPrecondition, which the daemon answers kUnsupportedVersion.
absl::StatusOr<LoginFinishRequest> DecodeLoginFinishRequest(
    std::span<const uint8_t> body);
// HEARTBEAT and LOGOUT: the body must be empty but for zero padding.
absl::Status DecodeEmptyRequest(std::span<const uint8_t> body);

// PING: a u64 token the reply echoes, then kPingPaddingBytes zero bytes, so
// that a PING (60 bytes) is always larger than its reply (53 bytes) and the
// daemon cannot amplify a spoofed sender's traffic. Session id, sequence and
// MAC are zero: no login is needed.
inline constexpr size_t kPingPaddingBytes = 8;
struct PingRequest {
  uint64_t token = 0;
};
size_t EncodePingRequest(const Header& header, const PingRequest& request,
                         std::span<uint8_t> out);
// Errors (InvalidArgument): a body other than the token and zero padding.
absl::StatusOr<PingRequest> DecodePingRequest(std::span<const uint8_t> body);
absl::StatusOr<ListRequest> DecodeListRequest(std::span<const uint8_t> body);
absl::StatusOr<PublishRequest> DecodePublishRequest(
    std::span<const uint8_t> body);
absl::StatusOr<NameRequest> DecodeNameRequest(std::span<const uint8_t> body);

// Replies. `request` is the header of the request being answered: the reply
// copies its type, request id and session id and sets kFlagResponse.
// Each returns the datagram size (0 if `out` is too small).

// A reply whose body is only a result code (kOk for HEARTBEAT, LOGOUT, PUB,
// UNP), or an error: a result code other than kOk and a message (truncated
// to fit if it must be; messages are short English sentences).
size_t EncodeStatusReply(const Header& request, ResultCode code,
                         absl::string_view message, std::span<uint8_t> out);
size_t EncodeLoginReply(const Header& request, const LoginReply& reply,
                        std::span<uint8_t> out);
// PING reply: kOk, then the request's token.
size_t EncodePingReply(const Header& request, uint64_t token,
                       std::span<uint8_t> out);
size_t EncodeLoginFinishReply(const Header& request,
                              const LoginFinishReply& reply,
                              std::span<uint8_t> out);
// GET reply: the size, the root and as many of the reply's holders, in
// order, as fit in one datagram. 0 if there is none, if the first does not
// fit, or if a holder's address family is neither 4 nor 6.
size_t EncodeGetReply(const Header& request, const GetReply& reply,
                      std::span<uint8_t> out);
// STAT reply: kOk, the size, the root.
size_t EncodeStatReply(const Header& request, const StatReply& reply,
                       std::span<uint8_t> out);

// Builds a list reply page in place: construct, Add() names until one does
// not fit (Add returns false and writes nothing), then Finish().
class ListReplyWriter {
 public:
  // REQUIRES: out.size() >= kMaxDatagramSize.
  ListReplyWriter(const Header& request, uint32_t snapshot, uint32_t total,
                  std::span<uint8_t> out);
  // Appends a name if it fits in the datagram; false (nothing written) if not.
  bool Add(absl::string_view name);
  uint16_t count() const { return count_; }
  // Rewrites the snapshot field: an SCH page's snapshot field is part of
  // its next cursor, known only once the page is full.
  void SetSnapshot(uint32_t snapshot);
  // Writes next_cursor (0 when this is the last page) and returns the size.
  size_t Finish(uint32_t next_cursor);

 private:
  Writer writer_;
  size_t snapshot_at_ = 0;
  size_t next_cursor_at_ = 0;
  size_t count_at_ = 0;
  uint16_t count_ = 0;
};

// Client side: the result code of any reply body, and the error message when
// it is not kOk. Fails on an empty body or a malformed message.
struct ReplyStatus {
  ResultCode code = ResultCode::kOk;
  absl::string_view message;
  std::span<const uint8_t> payload;  // the bytes after the code, when kOk
};
absl::StatusOr<ReplyStatus> DecodeReplyStatus(std::span<const uint8_t> body);
// The token of a PING reply's payload (after kOk).
absl::StatusOr<uint64_t> DecodePingReply(std::span<const uint8_t> payload);
absl::StatusOr<LoginReply> DecodeLoginReply(std::span<const uint8_t> payload);
absl::StatusOr<LoginFinishReply> DecodeLoginFinishReply(
    std::span<const uint8_t> payload);
// Refuses (InvalidArgument) a holder count of 0 or above kMaxGetHolders.
absl::StatusOr<GetReply> DecodeGetReply(std::span<const uint8_t> payload);
absl::StatusOr<StatReply> DecodeStatReply(std::span<const uint8_t> payload);
absl::StatusOr<ListReply> DecodeListReply(std::span<const uint8_t> payload);

}  // namespace pcfs::protocol

#endif  // PCFS_CORE_PROTO_PROTOCOL_H_
