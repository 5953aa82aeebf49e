// ZeroedArray<T>: a fixed array of `size` T whose bytes start all zero, in
// pages of its own from an anonymous mmap. The kernel hands out a zeroed
// page only when it is first touched, so a large table of which little is
// used costs neither the time to clear it nor the memory; a value-
// initialised new[] writes every byte up front, and a fresh allocation of
// that size faults in every page as it does (measured: making a
// RequestHandler, whose per-thread tables are 340 KiB, was 43% of the
// handler fuzzer's time, tests/fuzz/handler_fuzz.cc).
//
// For tables made once (per thread, per registry) and used a slot at a
// time. T must be an implicit-lifetime type for which all-zero bytes are a
// valid value (integers, pointers, arrays and aggregates of them), and
// trivially destructible: the mapping creates its objects and the unmapping
// ends them. Not thread-safe (as a plain array); movable, not copyable.
#ifndef PCFS_CORE_BASE_ZEROED_ARRAY_H_
#define PCFS_CORE_BASE_ZEROED_ARRAY_H_

#include <cstddef>
#include <type_traits>
#include <utility>

namespace pcfs {
namespace zeroed_array_internal {

// `bytes` of zeroed, page-aligned memory; throws std::bad_alloc if the
// kernel refuses them.
void* MapZeroed(size_t bytes);
void Unmap(void* address, size_t bytes);

}  // namespace zeroed_array_internal

template <typename T>
class ZeroedArray {
  static_assert(std::is_trivially_destructible_v<T>);
  static_assert(alignof(T) <= 4096, "pages align to 4 KiB");

 public:
  explicit ZeroedArray(size_t size)
      : size_(size),
        data_(static_cast<T*>(zeroed_array_internal::MapZeroed(Bytes()))) {}
  ZeroedArray(ZeroedArray&& other) noexcept
      : size_(std::exchange(other.size_, 0)),
        data_(std::exchange(other.data_, nullptr)) {}
  ZeroedArray& operator=(ZeroedArray&& other) noexcept {
    std::swap(size_, other.size_);
    std::swap(data_, other.data_);
    return *this;
  }
  ZeroedArray(const ZeroedArray&) = delete;
  ZeroedArray& operator=(const ZeroedArray&) = delete;
  ~ZeroedArray() { zeroed_array_internal::Unmap(data_, Bytes()); }

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  // T may be a pointer type: its own size is meant.
  size_t Bytes() const {
    return size_ * sizeof(T);  // NOLINT(bugprone-sizeof-expression)
  }

  size_t size_;
  T* data_;
};

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_ZEROED_ARRAY_H_
