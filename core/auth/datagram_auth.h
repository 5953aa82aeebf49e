// Authentication of the datagrams of a session. After a SCRAM login both
// sides hold a 32-byte session key; every later datagram, both ways, carries
// a sequence number and a 16-byte MAC in its header: HMAC-SHA-256(session
// key, the whole datagram with its MAC field zeroed), truncated. The MAC
// covers the header (type, flags, request id, session id, sequence number)
// and the body, so nothing can be changed, and a reply cannot be reflected
// as a request (the response flag is covered). ReplayWindow then refuses a
// sequence number seen before.
//
// SealDatagram and OpenDatagram are the one pair every sender and receiver
// uses (the daemon, core/client's ClientSession, the tests): no caller
// writes the sequence or MAC field by hand.
//
// Pure (libcrypto only). SealDatagram and OpenDatagram are thread-safe.
// ReplayWindow is not: its owner (a session, under its registry shard lock)
// serialises calls.
#ifndef PCFS_CORE_AUTH_DATAGRAM_AUTH_H_
#define PCFS_CORE_AUTH_DATAGRAM_AUTH_H_

#include <cstdint>
#include <optional>
#include <span>

#include "core/auth/replay_window.h"  // ReplayWindow, checked with the MAC
#include "core/auth/scram.h"

namespace pcfs {

// Writes `sequence` into the header's sequence field of `datagram` (a
// complete encoded datagram, header included), then the MAC of the whole
// into its MAC field. Does not allocate.
// REQUIRES: datagram.size() >= protocol::kHeaderSize.
void SealDatagram(const SessionKey& key, uint64_t sequence,
                  std::span<uint8_t> datagram);

// If the MAC field of `datagram` is the MAC of the rest under `key`
// (compared in constant time), returns the datagram's sequence number, which
// the receiver checks against its replay window or its request in flight.
// nullopt for a wrong MAC or a datagram shorter than a header.
std::optional<uint64_t> OpenDatagram(const SessionKey& key,
                                     std::span<const uint8_t> datagram);

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_DATAGRAM_AUTH_H_
