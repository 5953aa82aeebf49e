// Reactor::Create() picks a backend; the backends live in their own files.
#include "core/io/reactor.h"

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "core/io/reactor_backends.h"

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

namespace internal {

absl::StatusOr<ReadableSource> MakeTimerSource(absl::Duration period,
                                               absl::AnyInvocable<void()> fn) {
  if (period < absl::Nanoseconds(1) || period == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("AddTimer: period ", absl::FormatDuration(period),
                     " is not a positive finite duration"));
  }
  UniqueFd timer(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer) return ErrnoStatus("timerfd_create", errno);
  itimerspec spec{};
  spec.it_interval = absl::ToTimespec(period);
  spec.it_value = spec.it_interval;
  if (timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) {
    return ErrnoStatus("timerfd_settime", errno);
  }
  const int fd = timer.get();
  return ReadableSource{
      std::move(timer), [fd, fn = std::move(fn)]() mutable {
        uint64_t expirations;  // merged: one call however many passed
        if (read(fd, &expirations, sizeof(expirations)) ==
            sizeof(expirations)) {
          fn();
        }
      }};
}

absl::StatusOr<ReadableSource> MakeSignalSource(
    std::initializer_list<int> signals, absl::AnyInvocable<void(int)> fn) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int signo : signals) {
    if (sigaddset(&mask, signo) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("AddSignals: invalid signal ", signo));
    }
  }
  UniqueFd signal_fd(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd) return ErrnoStatus("signalfd", errno);
  const int fd = signal_fd.get();
  return ReadableSource{
      std::move(signal_fd), [fd, fn = std::move(fn)]() mutable {
        std::array<signalfd_siginfo, 8> infos;
        const ssize_t bytes = read(fd, infos.data(), sizeof(infos));
        if (bytes <= 0) return;
        const size_t count = static_cast<size_t>(bytes) / sizeof(infos[0]);
        for (size_t i = 0; i < count; ++i) {
          fn(static_cast<int>(infos[i].ssi_signo));
        }
      }};
}

absl::Status CheckDatagramSocket(int fd) {
  int type = 0;
  socklen_t length = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
    return ErrnoStatus("getsockopt(SO_TYPE)", errno);
  }
  if (type != SOCK_DGRAM) {
    return absl::InvalidArgumentError(
        "AddDatagramSocket: the socket is not a datagram socket");
  }
  return absl::OkStatus();
}

}  // namespace internal

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
