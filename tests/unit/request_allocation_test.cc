// The daemon's request path allocates nothing in the steady state (see
// docs/ARCHITECTURE.md, "The path of a datagram"): heartbeat, get (locate
// and ticket), pub of a name already published, and pub/unp cycles of the
// same names. Real sealed datagrams go through RequestHandler::Handle after
// a warm-up; every heap allocation in the process is counted meanwhile:
// global operator new (every variant, replaced in this binary) and
// libcrypto's own (CRYPTO_set_mem_functions, installed before libcrypto's
// first allocation).
//
// Under AddressSanitizer the replacement operator new still runs (a
// definition in the executable takes precedence over the runtime's), so the
// test runs there too.
#include <openssl/crypto.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "core/auth/datagram_auth.h"
#include "core/auth/ticket.h"
#include "core/proto/protocol.h"
#include "daemon/handlers.h"
#include "daemon/publication_log.h"
#include "gtest/gtest.h"

namespace {

// Relaxed: only the thread under test allocates while counting, and a
// stray allocation from another thread would be a finding anyway.
std::atomic<uint64_t> heap_allocations{0};
std::atomic<uint64_t> crypto_allocations{0};

#ifndef ABSL_HAVE_THREAD_SANITIZER  // see the replacements below
void* CountedMalloc(size_t size) {
  heap_allocations.fetch_add(1, std::memory_order_relaxed);
  // malloc(0) may return null; operator new must not.
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* CountedAlignedMalloc(size_t size, std::align_val_t alignment) {
  heap_allocations.fetch_add(1, std::memory_order_relaxed);
  const size_t align = static_cast<size_t>(alignment);
  // aligned_alloc wants a size that is a multiple of the alignment.
  const size_t rounded = ((size == 0 ? 1 : size) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

#endif  // ABSL_HAVE_THREAD_SANITIZER

void* CryptoMalloc(size_t size, const char*, int) {
  crypto_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size);
}
void* CryptoRealloc(void* p, size_t size, const char*, int) {
  crypto_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::realloc(p, size);
}
void CryptoFree(void* p, const char*, int) { std::free(p); }

// Runs before main, hence before any libcrypto use in the tests; libcrypto
// refuses new functions once it has allocated, which the tests check.
const bool crypto_counting_installed =
    CRYPTO_set_mem_functions(CryptoMalloc, CryptoRealloc, CryptoFree) == 1;

}  // namespace

// Not in ThreadSanitizer builds: clang links TSan's own operator new and
// delete into every binary, so a replacement would be defined twice. The
// tests skip there (the TSan stage runs only the threaded tests).
#ifndef ABSL_HAVE_THREAD_SANITIZER
#define PCFS_COUNTS_ALLOCATIONS
void* operator new(size_t size) { return CountedMalloc(size); }
void* operator new[](size_t size) { return CountedMalloc(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  try {
    return CountedMalloc(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  try {
    return CountedMalloc(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new(size_t size, std::align_val_t alignment) {
  return CountedAlignedMalloc(size, alignment);
}
void* operator new[](size_t size, std::align_val_t alignment) {
  return CountedAlignedMalloc(size, alignment);
}
void* operator new(size_t size, std::align_val_t alignment,
                   const std::nothrow_t&) noexcept {
  try {
    return CountedAlignedMalloc(size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](size_t size, std::align_val_t alignment,
                     const std::nothrow_t&) noexcept {
  try {
    return CountedAlignedMalloc(size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t,
                     const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t,
                       const std::nothrow_t&) noexcept {
  std::free(p);
}
#endif  // ABSL_HAVE_THREAD_SANITIZER

namespace pcfs {
namespace {

using protocol::Header;
using protocol::MessageType;
using protocol::ResultCode;

constexpr int kWarmUpRounds = 100;
constexpr int kCountedRounds = 1000;

// Every heap allocation made so far, by operator new or by libcrypto.
struct AllocationCount {
  uint64_t heap = heap_allocations.load(std::memory_order_relaxed);
  uint64_t crypto = crypto_allocations.load(std::memory_order_relaxed);
};

// Names longer than any small-string buffer (15 bytes in libstdc++), so
// that a std::string copy on the path would have to allocate.
constexpr char kPublisher[] = "publisher-with-a-long-user-name";
constexpr char kRequester[] = "requester-with-a-long-user-name";
constexpr char kSharedFile[] = "a-shared-file-with-a-long-name.tar.gz";

std::string CycledName(int i) {
  return absl::StrCat("cycled-file-with-a-long-name-", i, ".bin");
}

// A request datagram kept encoded, re-stamped and re-sealed before each
// send as a client would: a fresh request id (so that it is new work, not
// a retransmission answered from the reply cache) and sequence number.
struct SealedRequest {
  std::vector<uint8_t> plain;  // as encoded, the body in the clear
  std::vector<uint8_t> bytes;  // as last sent, sealed
  DatagramKeys keys;
};

// A fresh state folder for the publication journal, removed afterwards; in
// /dev/shm where there is one, as the journal syncs every record.
class StateDir {
 public:
  StateDir() {
    std::string pattern = access("/dev/shm", W_OK) == 0
                              ? "/dev/shm/pcfs-alloc-XXXXXX"
                              : "/tmp/pcfs-alloc-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~StateDir() {
    if (path_.empty()) return;
    for (const char* file :
         {"publications.snapshot", "publications.journal", "lock"}) {
      unlink(absl::StrCat(path_, "/", file).c_str());
    }
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class RequestAllocationTest : public ::testing::Test {
 protected:
  RequestAllocationTest()
      : log_(*PublicationLog::Open(state_dir_.path(), registry_)),
        credentials_(*CredentialStore::Create(*CredentialTable::Parse(
            absl::StrCat(kPublisher, " secret\n", kRequester, " secret\n")))),
        handler_(MakeShared(), RequestHandler::Options{}, now_) {
    publisher_ = LogIn(kPublisher, PublisherEndpoint(), 1);
    requester_ = LogIn(kRequester, RequesterEndpoint(), 2);
    meta_.size = 4096;
    meta_.root.fill(0xab);
    registry_.Publish(kPublisher, kSharedFile, meta_);
  }

  void SetUp() override {
#ifndef PCFS_COUNTS_ALLOCATIONS
    GTEST_SKIP() << "allocations are not counted under TSan";
#endif
    ASSERT_TRUE(crypto_counting_installed)
        << "libcrypto allocated before the counting functions were set";
  }

  struct LoggedIn {
    uint64_t session = 0;
    SessionKey key{};
    DatagramKeys keys;
  };

  static Endpoint PublisherEndpoint() {
    Endpoint e;
    e.ip = {10, 0, 0, 1};
    e.port = 40001;
    return e;
  }
  static Endpoint RequesterEndpoint() {
    Endpoint e;
    e.ip = {10, 0, 0, 2};
    e.port = 40002;
    return e;
  }

  RequestHandler::Shared MakeShared() {
    RequestHandler::Shared shared;
    shared.registry = &registry_;
    shared.sessions = &sessions_;
    shared.credentials = credentials_.get();
    shared.counters = &counters_;
    shared.log = log_.get();  // every pub and unp is journalled, as live
    return shared;
  }

  // A session as a SCRAM login would leave it (login is not on the path
  // under test, so the registry and the session table are told directly).
  LoggedIn LogIn(absl::string_view user, const Endpoint& from, uint8_t seed) {
    SessionKey key;
    key.fill(seed);
    return LogIn(user, from, key);
  }
  LoggedIn LogIn(absl::string_view user, const Endpoint& from,
                 const SessionKey& key) {
    Registry::LoginParams params;
    params.user = user;
    params.control = from;
    params.file_port = 7000;
    LoggedIn logged_in;
    logged_in.session = *registry_.Login(params, now_);
    logged_in.key = key;
    logged_in.keys = *DeriveDatagramKeys(logged_in.key);
    sessions_.Insert(logged_in.session, logged_in.key);
    return logged_in;
  }

  SealedRequest Request(const LoggedIn& who, auto encode) {
    SealedRequest request;
    request.keys = who.keys;
    request.plain.resize(protocol::kMaxDatagramSize);
    Header h;
    h.session_id = who.session;
    request.plain.resize(encode(h, std::span<uint8_t>(request.plain)));
    request.bytes = request.plain;
    return request;
  }

  SealedRequest Heartbeat(const LoggedIn& who) {
    return Request(who, [](Header& h, std::span<uint8_t> out) {
      h.type = static_cast<uint8_t>(MessageType::kHeartbeat);
      return protocol::EncodeEmptyRequest(h, out);
    });
  }
  SealedRequest Get(const LoggedIn& who, absl::string_view name) {
    return Request(who, [&](Header& h, std::span<uint8_t> out) {
      h.type = static_cast<uint8_t>(MessageType::kGet);
      return protocol::EncodeNameRequest(h, {name}, out);
    });
  }
  SealedRequest Unpublish(const LoggedIn& who, absl::string_view name) {
    return Request(who, [&](Header& h, std::span<uint8_t> out) {
      h.type = static_cast<uint8_t>(MessageType::kUnpublish);
      return protocol::EncodeNameRequest(h, {name}, out);
    });
  }
  SealedRequest Publish(const LoggedIn& who, absl::string_view name) {
    return Request(who, [&](Header& h, std::span<uint8_t> out) {
      h.type = static_cast<uint8_t>(MessageType::kPublish);
      protocol::PublishRequest request;
      request.name = name;
      request.size = meta_.size;
      request.root = meta_.root;
      return protocol::EncodePublishRequest(h, request, out);
    });
  }

  // Stamps, seals and sends `request` from `from`; true if the reply is a
  // sealed kOk. Allocates nothing itself, so that all it counts is the
  // handler's.
  bool Send(SealedRequest& request, const Endpoint& from) {
    const uint32_t request_id = ++request_id_;
    const uint64_t sequence = ++sequence_;
    std::copy(request.plain.begin(), request.plain.end(),
              request.bytes.begin());
    std::span<uint8_t> bytes(request.bytes);
    protocol::Writer(bytes.subspan(protocol::kRequestIdOffset, 4))
        .U32(request_id);
    SealDatagram(request.keys, Direction::kToDaemon, sequence, bytes);
    reply_size_ = handler_.Handle(bytes, from, now_, reply_);
    if (reply_size_ < protocol::kHeaderSize) return false;
    // Opened in place: reply_ then holds the reply in the clear.
    const std::span<const uint8_t> reply(reply_, reply_size_);
    if (OpenDatagram(request.keys, Direction::kToClient, reply,
                     std::span<uint8_t>(reply_, reply_size_)
                         .subspan(protocol::kHeaderSize)) != sequence) {
      return false;
    }
    absl::StatusOr<protocol::Message> message = protocol::ParseDatagram(reply);
    if (!message.ok() || message->header.request_id != request_id) {
      return false;
    }
    absl::StatusOr<protocol::ReplyStatus> status =
        protocol::DecodeReplyStatus(message->body);
    return status.ok() && status->code == ResultCode::kOk;
  }

  // Runs `round` kWarmUpRounds times, then kCountedRounds times counting
  // allocations; every round must succeed. Returns the allocations made
  // during the counted rounds.
  template <typename Round>
  AllocationCount CountSteadyState(Round round) {
    for (int i = 0; i < kWarmUpRounds; ++i) {
      EXPECT_TRUE(round(i)) << "warm-up round " << i << " failed";
    }
    int failed = 0;
    const AllocationCount before;
    for (int i = 0; i < kCountedRounds; ++i) failed += round(i) ? 0 : 1;
    const AllocationCount after;
    EXPECT_EQ(failed, 0) << "rounds that did not get an OK reply";
    EXPECT_EQ(counters_.retransmissions.load(), 0u)
        << "a request was answered from the reply cache, not carried out";
    return {after.heap - before.heap, after.crypto - before.crypto};
  }

  absl::Time now_ = absl::UnixEpoch() + absl::Hours(1);
  StateDir state_dir_;
  Registry registry_;
  SessionTable sessions_;
  std::unique_ptr<PublicationLog> log_;
  std::unique_ptr<CredentialStore> credentials_;
  DaemonCounters counters_;
  RequestHandler handler_;
  LoggedIn publisher_;
  LoggedIn requester_;
  FileMeta meta_;
  uint32_t request_id_ = 0;
  uint64_t sequence_ = 0;
  uint8_t reply_[protocol::kMaxDatagramSize] = {};
  size_t reply_size_ = 0;  // of the last reply
};

// The counters are live: without this a broken counter would pass all.
TEST(AllocationCounterTest, CountsOperatorNewAndLibcrypto) {
#ifndef PCFS_COUNTS_ALLOCATIONS
  GTEST_SKIP() << "allocations are not counted under TSan";
#endif
  ASSERT_TRUE(crypto_counting_installed);
  const AllocationCount before;
  auto* volatile boxed = new std::string(100, 'x');
  delete boxed;
  void* crypto = OPENSSL_malloc(64);
  OPENSSL_free(crypto);
  const AllocationCount after;
  EXPECT_GE(after.heap - before.heap, 1u);
  EXPECT_EQ(after.crypto - before.crypto, 1u);
}

TEST_F(RequestAllocationTest, HeartbeatAllocatesNothing) {
  SealedRequest heartbeat = Heartbeat(requester_);
  const AllocationCount made = CountSteadyState(
      [&](int) { return Send(heartbeat, RequesterEndpoint()); });
  EXPECT_EQ(made.heap, 0u);
  EXPECT_EQ(made.crypto, 0u);
}

// The daemon keeps only session keys; a reactor thread's cache of keyed
// cipher contexts derives the datagram keys when it misses. Sessions whose
// keys share the bytes that choose a cache set, more of them than a set
// has ways, take turns: each heartbeat misses, derives and keys contexts
// again, and must still allocate nothing.
TEST_F(RequestAllocationTest, HeartbeatsThatMissTheCipherCacheAllocateNothing) {
  constexpr int kSessions = 10;  // more than a cache set's ways (8)
  std::vector<SealedRequest> heartbeats;
  std::vector<Endpoint> endpoints;
  for (int i = 0; i < kSessions; ++i) {
    SessionKey key;
    key.fill(0x77);  // the first bytes, which choose the set, all alike
    key[31] = static_cast<uint8_t>(i);
    Endpoint from = RequesterEndpoint();
    from.port = static_cast<uint16_t>(41000 + i);
    endpoints.push_back(from);
    heartbeats.push_back(Heartbeat(LogIn(
        absl::StrCat("cache-missing-user-with-a-long-name-", i), from, key)));
  }
  const AllocationCount made = CountSteadyState([&](int i) {
    return Send(heartbeats[i % kSessions], endpoints[i % kSessions]);
  });
  EXPECT_EQ(made.heap, 0u);
  EXPECT_EQ(made.crypto, 0u);
}

TEST_F(RequestAllocationTest, GetWithItsTicketAllocatesNothing) {
  SealedRequest get = Get(requester_, kSharedFile);
  // The reply is a real one: a holder and a ticket that verifies.
  ASSERT_TRUE(Send(get, RequesterEndpoint()));
  absl::StatusOr<protocol::Message> message =
      protocol::ParseDatagram(std::span<const uint8_t>(reply_, reply_size_));
  ASSERT_TRUE(message.ok());
  absl::StatusOr<protocol::ReplyStatus> status =
      protocol::DecodeReplyStatus(message->body);
  ASSERT_TRUE(status.ok());
  absl::StatusOr<protocol::GetReply> reply =
      protocol::DecodeGetReply(status->payload);
  ASSERT_TRUE(reply.ok());
  ASSERT_EQ(reply->holder_count, 1u);
  EXPECT_EQ(reply->holders[0].user, kPublisher);
  EXPECT_TRUE(VerifyTicket(TicketKeyFor(publisher_.key), kPublisher,
                           reply->holders[0].ticket, kSharedFile, absl::Now())
                  .ok());

  const AllocationCount made =
      CountSteadyState([&](int) { return Send(get, RequesterEndpoint()); });
  EXPECT_EQ(made.heap, 0u);
  EXPECT_EQ(made.crypto, 0u);
}

// Three holders of the same file: the reply names them all, each with a
// ticket under its own key, and still nothing is allocated.
TEST_F(RequestAllocationTest, GetNamingSeveralHoldersAllocatesNothing) {
  Endpoint second_endpoint = PublisherEndpoint();
  second_endpoint.port = 40003;
  Endpoint third_endpoint = PublisherEndpoint();
  third_endpoint.port = 40004;
  const LoggedIn second = LogIn("second-publisher", second_endpoint, 3);
  const LoggedIn third = LogIn("third-publisher", third_endpoint, 4);
  registry_.Publish("second-publisher", kSharedFile, meta_);
  registry_.Publish("third-publisher", kSharedFile, meta_);
  SealedRequest get = Get(requester_, kSharedFile);
  ASSERT_TRUE(Send(get, RequesterEndpoint()));
  absl::StatusOr<protocol::Message> message =
      protocol::ParseDatagram(std::span<const uint8_t>(reply_, reply_size_));
  ASSERT_TRUE(message.ok());
  absl::StatusOr<protocol::ReplyStatus> status =
      protocol::DecodeReplyStatus(message->body);
  ASSERT_TRUE(status.ok());
  absl::StatusOr<protocol::GetReply> reply =
      protocol::DecodeGetReply(status->payload);
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_EQ(reply->holder_count, 3u);
  for (const protocol::GetHolder& holder : reply->active_holders()) {
    const SessionKey& key = holder.user == kPublisher           ? publisher_.key
                            : holder.user == "second-publisher" ? second.key
                                                                : third.key;
    EXPECT_TRUE(VerifyTicket(TicketKeyFor(key), std::string(holder.user),
                             holder.ticket, kSharedFile, absl::Now())
                    .ok())
        << holder.user;
  }

  const AllocationCount made =
      CountSteadyState([&](int) { return Send(get, RequesterEndpoint()); });
  EXPECT_EQ(made.heap, 0u);
  EXPECT_EQ(made.crypto, 0u);
}

TEST_F(RequestAllocationTest, PubOfAPublishedNameAllocatesNothing) {
  SealedRequest pub = Publish(publisher_, kSharedFile);
  const AllocationCount made =
      CountSteadyState([&](int) { return Send(pub, PublisherEndpoint()); });
  EXPECT_EQ(made.heap, 0u);
  EXPECT_EQ(made.crypto, 0u);
}

TEST_F(RequestAllocationTest, PubUnpCyclesOfTheSameNamesAllocateNothing) {
  constexpr int kNames = 16;
  std::vector<SealedRequest> pubs;
  std::vector<SealedRequest> unps;
  for (int i = 0; i < kNames; ++i) {
    pubs.push_back(Publish(publisher_, CycledName(i)));
    unps.push_back(Unpublish(publisher_, CycledName(i)));
  }
  const size_t published_before = registry_.publication_count();
  const AllocationCount made = CountSteadyState([&](int i) {
    const bool published = Send(pubs[i % kNames], PublisherEndpoint());
    const bool unpublished = Send(unps[i % kNames], PublisherEndpoint());
    return published && unpublished;
  });
  EXPECT_EQ(made.heap, 0u);
  EXPECT_EQ(made.crypto, 0u);
  // Each cycle really published and unpublished.
  EXPECT_EQ(registry_.publication_count(), published_before);
  size_t listed = 0;
  ASSERT_TRUE(registry_
                  .SearchPage("cycled-file", kRequester, now_, {},
                              Registry::kSearchPageBudget,
                              [&](absl::string_view) { return ++listed > 0; })
                  .ok());
  EXPECT_EQ(listed, 0u);
}

}  // namespace
}  // namespace pcfs
