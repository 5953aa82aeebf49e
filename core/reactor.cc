// Reactor::Create() picks a backend; the backends live in their own files.
#include "core/reactor.h"

#include <pthread.h>
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "core/reactor_backends.h"

namespace pcfs {

absl::StatusOr<std::unique_ptr<Reactor>> Reactor::Create(
    ReactorBackend backend) {
  switch (backend) {
    case ReactorBackend::kEpoll:
      return internal::NewEpollReactor();
    case ReactorBackend::kUring:
      return internal::NewUringReactor();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown reactor backend ", static_cast<int>(backend)));
}

absl::Status BlockSignals(std::initializer_list<int> signals) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int signo : signals) {
    if (sigaddset(&mask, signo) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("BlockSignals: invalid signal ", signo));
    }
  }
  // pthread_sigmask returns the error instead of setting errno.
  const int err = pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  if (err != 0) return ErrnoStatus("pthread_sigmask", err);
  return absl::OkStatus();
}

}  // namespace pcfs
