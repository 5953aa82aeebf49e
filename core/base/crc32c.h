// CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78): the
// checksum of every record the daemon keeps on disk. It detects every burst
// error of up to 32 bits and every odd number of flipped bits, which covers
// a changed digit, a lost byte and a cut line; it is not a defence against
// someone who means to forge a record.
//
// Thread-safety: pure functions, callable from any thread.
#ifndef PCFS_CORE_BASE_CRC32C_H_
#define PCFS_CORE_BASE_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace pcfs {

// Extends `crc` (the CRC32C of the bytes before `data`, 0 for none) over
// `data`: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, absl::string_view data);

// The CRC32C of `data` (standard check value: Crc32c("123456789") ==
// 0xE3069283).
inline uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data); }

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_CRC32C_H_
