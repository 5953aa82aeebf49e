// Authentication of the datagrams of a session. After a SCRAM login both
// sides hold a 32-byte session key; every later datagram, both ways, carries
// a 16-byte MAC in its header: HMAC-SHA-256(session key, the whole datagram
// with its MAC field zeroed), truncated. The MAC covers the header (type,
// flags, request id, session id, sequence number) and the body, so nothing
// can be changed, and a reply cannot be reflected as a request (the response
// flag is covered). ReplayWindow then refuses a sequence number seen before.
//
// Pure (libcrypto only). SealDatagram and VerifyDatagram are thread-safe.
// ReplayWindow is not: its owner (a session, under its registry shard lock)
// serialises calls.
#ifndef PCFS_CORE_AUTH_DATAGRAM_AUTH_H_
#define PCFS_CORE_AUTH_DATAGRAM_AUTH_H_

#include <cstdint>
#include <span>

#include "core/auth/replay_window.h"  // ReplayWindow, checked with the MAC
#include "core/auth/scram.h"

namespace pcfs {

// Computes the MAC of `datagram` (a complete encoded datagram, header
// included) and writes it into the header's MAC field (bytes 28..43).
// REQUIRES: datagram.size() >= protocol::kHeaderSize.
void SealDatagram(const SessionKey& key, std::span<uint8_t> datagram);

// True if the MAC field of `datagram` is the MAC of the rest under `key`
// (compared in constant time). False for a datagram shorter than a header.
bool VerifyDatagram(const SessionKey& key, std::span<const uint8_t> datagram);

}  // namespace pcfs

#endif  // PCFS_CORE_AUTH_DATAGRAM_AUTH_H_
