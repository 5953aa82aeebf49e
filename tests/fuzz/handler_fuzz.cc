// libFuzzer target for daemon/handlers.h: the daemon's request handler fed
// whole datagrams. It must never crash, and every reply it writes must fit a
// datagram and parse as one.
//
// Each input is a short conversation with a fresh daemon state (registry,
// handler, limiters), so that any crash reproduces from its input alone:
//   record := u16 big-endian word, u8 clock step, datagram bytes
// The word's low 15 bits are the datagram's length; when its top bit is set
// the fuzzer first makes the datagram part of a real session: before the
// records run, the user "fuzz" logs in (SCRAM, a 1-iteration verifier so it
// is cheap), and a marked datagram gets that session's id, the next sequence
// number and a valid MAC. Without that, random bytes would never get past the
// MAC check and the session handlers (PUB, LPF, SCH, GET, ...) would go
// unfuzzed. The clock step advances time by that many 10 ms before the
// datagram, and expires sessions through Tick().
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/auth/credentials.h"
#include "core/auth/datagram_auth.h"
#include "core/auth/rate_limiter.h"
#include "core/auth/scram.h"
#include "core/base/big_endian.h"
#include "core/client/client_session.h"
#include "core/index/registry.h"
#include "core/proto/protocol.h"
#include "daemon/handlers.h"
#include "daemon/session_table.h"

namespace pcfs {
namespace {

using protocol::kHeaderSize;
using protocol::kMaxDatagramSize;
using protocol::kSessionIdOffset;
using protocol::kVersionOffset;

[[noreturn]] void Fail() { __builtin_trap(); }

// The credential table every input runs with: "fuzz" with a cheap verifier
// and "hans" with a plain password (its verifier is derived once, on the
// first LOGIN that names it, and then kept by the store).
const CredentialStore& Credentials() {
  static const CredentialStore* store = [] {
    const uint8_t salt[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    absl::StatusOr<ScramVerifier> verifier =
        MakeVerifier("fuzzpass", salt, /*iterations=*/1);
    if (!verifier.ok()) Fail();
    absl::StatusOr<CredentialTable> table = CredentialTable::Parse(
        "fuzz " + FormatVerifier(*verifier) + "\nhans hanspass\n");
    if (!table.ok()) Fail();
    auto created = CredentialStore::Create(*std::move(table));
    if (!created.ok()) Fail();
    return created->release();
  }();
  return *store;
}

// One daemon state, fresh per input.
class Conversation {
 public:
  Conversation()
      : address_limiter_(RateLimiter::Options{1000, absl::Milliseconds(1)}),
        failure_limiter_(RateLimiter::Options{1000, absl::Milliseconds(1)}),
        handler_(MakeShared(), RequestHandler::Options{}, now_) {
    from_.family = 4;
    from_.ip = {127, 0, 0, 1};
    from_.port = 40000;
  }

  // Logs "fuzz" in through the handler itself, with core/client's
  // ClientSession (the client peerctl uses). False if it fails (a bug: the
  // same exchange passes in tests/unit/handlers_test.cc).
  bool LogIn() {
    client::ClientSession session(/*first_request_id=*/1);
    if (!session.StartLogin("fuzz", "fuzzpass", /*file_port=*/7000).ok()) {
      return false;
    }
    std::array<uint8_t, kMaxDatagramSize> datagram{};
    while (session.in_flight()) {
      const size_t size = session.EncodeTry(now_, datagram);
      if (size == 0) return false;
      std::optional<client::Reply> reply =
          session.Receive(Handle(std::span(datagram.data(), size)));
      if (!reply.has_value() || reply->code != protocol::ResultCode::kOk ||
          !session.ContinueLogin(*reply).ok()) {
        return false;
      }
    }
    if (!session.logged_in()) return false;
    session_id_ = session.session_id();
    keys_ = session.datagram_keys();
    return true;
  }

  // Runs one record: advances the clock, seals if asked, and checks the
  // reply.
  void Run(std::span<const uint8_t> bytes, bool seal, uint8_t clock_step) {
    now_ += absl::Milliseconds(10) * clock_step;
    if (clock_step != 0) handler_.Tick(now_);
    std::vector<uint8_t> datagram(bytes.begin(), bytes.end());
    if (seal && datagram.size() >= kHeaderSize) {
      StoreBigEndian(session_id_, datagram.data() + kSessionIdOffset);
      // The body the fuzzer chose is what the handler decrypts and decodes.
      SealDatagram(keys_, Direction::kToDaemon, ++sequence_, datagram);
    }
    (void)Handle(datagram);
  }

 private:
  RequestHandler::Shared MakeShared() {
    RequestHandler::Shared shared;
    shared.registry = &registry_;
    shared.sessions = &sessions_;
    shared.credentials = &Credentials();
    shared.counters = &counters_;
    shared.address_limiter = &address_limiter_;
    shared.failure_limiter = &failure_limiter_;
    shared.used_nonces = &used_nonces_;
    shared.login_secret.fill(7);
    shared.wall_clock = [this] { return now_; };
    return shared;
  }

  // Handles `datagram`; traps unless the reply (if any) is a datagram.
  std::span<const uint8_t> Handle(std::span<const uint8_t> datagram) {
    const size_t n = handler_.Handle(datagram, from_, now_, reply_);
    if (n > kMaxDatagramSize) Fail();
    if (n == 0) return {};
    std::span<const uint8_t> reply(reply_.data(), n);
    // A reply to another version carries that version (so that its client
    // reads it): it must parse once given ours, and be that refusal.
    if (n > kVersionOffset && datagram.size() > kVersionOffset &&
        reply_[kVersionOffset] != protocol::kVersion) {
      if (reply_[kVersionOffset] != datagram[kVersionOffset]) Fail();
      reply_[kVersionOffset] = protocol::kVersion;
      absl::StatusOr<protocol::Message> other = protocol::ParseDatagram(reply);
      if (!other.ok() || other->body.empty() ||
          other->body[0] !=
              static_cast<uint8_t>(protocol::ResultCode::kUnsupportedVersion)) {
        Fail();
      }
      return reply;
    }
    if (!protocol::ParseDatagram(reply).ok()) Fail();
    return reply;
  }

  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  // Few shards: a registry is made per input, and one conversation needs
  // no more.
  Registry registry_{Registry::Options{.shard_count = 2}};
  SessionTable sessions_;
  DaemonCounters counters_;
  RateLimiter address_limiter_;
  RateLimiter failure_limiter_;
  UsedLoginNonces used_nonces_;
  RequestHandler handler_;
  Endpoint from_;
  uint64_t session_id_ = 0;
  uint64_t sequence_ = 0;
  DatagramKeys keys_;
  std::array<uint8_t, kMaxDatagramSize> reply_{};
};

}  // namespace
}  // namespace pcfs

// libFuzzer scans for leaks (LeakSanitizer, the whole heap) after any input
// that allocated more than it freed. The thread's cipher cache
// (core/auth/datagram_auth.cc) makes an entry's ciphers on the entry's
// first use, and each input's login brings new keys, so until all its
// 4,096 entries were in use nearly every input was scanned: 92 inputs/s
// over 20 s from the seeds, against 398 with -detect_leaks=0, and the
// suite's 10 s ran some 800 inputs. Sealing under 64 Ki distinct keys
// first (128 a set of the cache) puts every entry to use; the entries are
// keyed again for new keys from then on, which allocates nothing.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  pcfs::DatagramKeys keys;
  std::array<uint8_t, pcfs::protocol::kHeaderSize> datagram{};
  for (uint32_t i = 0; i < (1u << 16); ++i) {
    pcfs::StoreBigEndian(i, keys.to_daemon.data());
    pcfs::SealDatagram(keys, pcfs::Direction::kToDaemon, 1, datagram);
    pcfs::SealDatagram(keys, pcfs::Direction::kToClient, 1, datagram);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  pcfs::Conversation conversation;
  if (!conversation.LogIn()) pcfs::Fail();
  // At most 16 records an input: enough for a login, a few publications and
  // their lists, short enough to keep executions fast.
  for (int record = 0; record < 16 && input.size() >= 3; ++record) {
    const uint16_t word = static_cast<uint16_t>(input[0] << 8 | input[1]);
    const uint8_t clock_step = input[2];
    input = input.subspan(3);
    const size_t length = std::min<size_t>(word & 0x7fff, input.size());
    conversation.Run(input.first(length), (word & 0x8000) != 0, clock_step);
    input = input.subspan(length);
  }
  return 0;
}
