#include "core/base/zeroed_array.h"

#include <sys/mman.h>

#include <new>

namespace pcfs::zeroed_array_internal {

void* MapZeroed(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* address = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (address == MAP_FAILED) throw std::bad_alloc();
  return address;
}

void Unmap(void* address, size_t bytes) {
  if (address != nullptr) ::munmap(address, bytes);
}

}  // namespace pcfs::zeroed_array_internal
