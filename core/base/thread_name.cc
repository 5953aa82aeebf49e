#include "core/base/thread_name.h"

#include <pthread.h>

#include <algorithm>
#include <array>

namespace pcfs {

void NameThisThread(absl::string_view name) {
  std::array<char, kMaxThreadNameBytes + 1> text{};
  const size_t n = std::min(name.size(), kMaxThreadNameBytes);
  std::copy_n(name.data(), n, text.data());
  pthread_setname_np(pthread_self(), text.data());
}

std::string ThisThreadName() {
  std::array<char, kMaxThreadNameBytes + 1> text{};
  if (pthread_getname_np(pthread_self(), text.data(), text.size()) != 0) {
    return "";
  }
  return text.data();
}

}  // namespace pcfs
