// Sealing of the datagrams of a session. After a SCRAM login both sides hold
// a 32-byte session key, and from it (HKDF-SHA-256, RFC 5869) one AES-128
// key per direction. Every later datagram, both ways, is sealed with
// AES-128-GCM: the body is encrypted in place, the 16-byte tag goes into the
// header's MAC field, and the 44-byte header (with that field zeroed) is the
// associated data, so the header (type, flags, request id, session id,
// sequence number) is authenticated though not hidden, and a reply cannot be
// reflected as a request (its own key, and the response flag). The 96-bit
// nonce is the direction (4 bytes) and the header's sequence number
// (8 bytes): a sender never seals two datagrams with one sequence number
// under one key (docs/PROTOCOL.md, "Sealed datagrams"). ReplayWindow then
// refuses a sequence number seen before.
//
// SealDatagram and OpenDatagram are the one pair every sender and receiver
// uses (the daemon, core/client's ClientSession, the tests): no caller
// writes the sequence or MAC field by hand.
//
// Why AES-128-GCM, and ciphers per thread (bench/aead_bench.cc): on this
// AES-NI machine OpenSSL's EVP seals a 64-byte body in about 200 ns and a
// 1 KB one in about 390 ns (CPU time) with a context keyed once, against
// about 500 and 630 ns for ChaCha20-Poly1305, and stays ahead with the key
// set for every datagram (about 380 and 560 ns, against 530 and 650). The
// ciphers are core/auth/aes_gcm.h's: AES-NI with libcrypto's GCM functions,
// which skip EVP's per-call parameter lookups (BM_SealAndOpenDatagram,
// opening a 64-byte request and sealing its reply over 1,000 sessions:
// 224 ns, against 600 ns through EVP), or EVP on a CPU without AES-NI.
// Keying costs as much as sealing, so each thread keeps a cache of keyed
// ciphers (set-associative, 4096 sessions, each with one cipher per
// direction, made as needed); a session's datagrams stay on one reactor
// thread, so in the steady state a datagram only sets its nonce. Ciphers
// per session would be simpler but cost over 1 KB and allocations a
// session in the daemon (whose target is 256 B a session), and the daemon
// seals some replies after their session is gone (LOGOUT).
//
// Two ways to name a session's keys. A client derives its DatagramKeys once
// at login and passes them. The daemon keeps only the 32-byte session key a
// session (daemon/session_table.h) and passes that: the thread's cache
// derives the two keys (HKDF, on the stack) when it misses: about 0.6 µs
// more than the 0.35 µs of keying the two ciphers a miss cost anyway, and
// nothing on a hit. Both give the same bytes. Neither a hit nor a miss
// allocates once the slot's ciphers exist
// (tests/unit/request_allocation_test.cc); a slot's ciphers are made on its
// first use.
//
// Pure (libcrypto only; no I/O). All functions are thread-safe: each thread
// uses its own ciphers. ReplayWindow is not: its owner (a session,
// under its registry shard lock) serialises calls.
#ifndef PCFS_CORE_AUTH_DATAGRAM_AUTH_H_
#define PCFS_CORE_AUTH_DATAGRAM_AUTH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/statusor.h"
#include "core/auth/replay_window.h"  // ReplayWindow, checked with the tag
#include "core/auth/scram.h"

namespace pcfs {

// Which way a datagram goes. Each direction has its own key, and its value
// is the first four bytes of the nonce (big-endian).
enum class Direction : uint32_t {
  kToDaemon = 1,  // requests, from a client
  kToClient = 2,  // replies, from the daemon
};

inline constexpr size_t kDatagramKeySize = 16;  // AES-128
using DatagramKey = std::array<uint8_t, kDatagramKeySize>;

// The two keys of a session, derived from its session key.
struct DatagramKeys {
  DatagramKey to_daemon{};
  DatagramKey to_client{};

  const DatagramKey& For(Direction direction) const {
    return direction == Direction::kToDaemon ? to_daemon : to_client;
  }
};

// The HKDF-SHA-256 labels (info) of the two keys; the salt is empty and the
// input key material is the session key (docs/PROTOCOL.md).
inline constexpr char kToDaemonKeyLabel[] = "PeerConnect v2 client to daemon";
inline constexpr char kToClientKeyLabel[] = "PeerConnect v2 daemon to client";

// Derives the two keys of a session from its session key (OpenSSL's EVP_KDF
// "HKDF"). Allocates: call it once a login, not per datagram (the
// SessionKey overloads below derive the same keys without allocating). Fails
// (Internal) only if libcrypto does.
absl::StatusOr<DatagramKeys> DeriveDatagramKeys(const SessionKey& session_key);

// Writes `sequence` into the header's sequence field of `datagram` (a
// complete encoded datagram, header included), encrypts its body in place
// under the key of `direction`, and writes the tag into its MAC field. Does
// not allocate (after the calling thread's first datagram). Should libcrypto
// fail, the body and the MAC field are zeroed: nothing leaks, and the
// receiver refuses the datagram.
// REQUIRES: kHeaderSize <= datagram.size() <= protocol::kMaxDatagramSize.
void SealDatagram(const DatagramKeys& keys, Direction direction,
                  uint64_t sequence, std::span<uint8_t> datagram);
// The same, under the keys DeriveDatagramKeys(session_key) would give:
// derived by the thread's cache of keyed ciphers when it misses, not
// allocating either way (after the cache slot's first use).
void SealDatagram(const SessionKey& session_key, Direction direction,
                  uint64_t sequence, std::span<uint8_t> datagram);

// If the MAC field of `datagram` is the tag of its header and body under
// the key of `direction`, decrypts its body into `body_out` and returns the
// datagram's sequence number, which the receiver checks against its replay
// window or its request in flight. nullopt for a datagram shorter than a
// header or longer than the largest datagram, or one that does not open; the
// first datagram.size() - kHeaderSize bytes of `body_out` are then zeroed
// (never left holding unauthenticated plaintext). `body_out` may be the
// datagram's own body (decryption in place) or memory apart from it, never
// overlapping it otherwise.
// REQUIRES: body_out.size() >= datagram.size() - kHeaderSize (when the
// datagram is at least a header long).
std::optional<uint64_t> OpenDatagram(const DatagramKeys& keys,
                                     Direction direction,
                                     std::span<const uint8_t> datagram,
                                     std::span<uint8_t> body_out);
// The same, under the keys derived from `session_key` (see SealDatagram).
std::optional<uint64_t> OpenDatagram(const SessionKey& session_key,
                                     Direction direction,
                                     std::span<const uint8_t> datagram,
                                     std::span<uint8_t> body_out);

// True if the MAC field of `datagram` is all zero: the daemon could not seal
// it (a reply to a session it does not know, or in a version it does not
// speak; docs/PROTOCOL.md). A sealed datagram has an all-zero tag with
// probability 2^-128. REQUIRES: datagram.size() >= kHeaderSize.
bool IsUnsealed(std::span<const uint8_t> datagram);

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_DATAGRAM_AUTH_H_
