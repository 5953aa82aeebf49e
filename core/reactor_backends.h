// The backend factories behind Reactor::Create(). Internal to core/: nothing
// above the reactor line includes this; use Reactor::Create().
#ifndef PCFS_CORE_REACTOR_BACKENDS_H_
#define PCFS_CORE_REACTOR_BACKENDS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/reactor.h"

namespace pcfs::internal {

// reactor_epoll.cc: one epoll fd, eventfd/timerfd/signalfd, recvmmsg and
// sendmmsg for datagrams.
absl::StatusOr<std::unique_ptr<Reactor>> NewEpollReactor();

}  // namespace pcfs::internal

#endif  // PCFS_CORE_REACTOR_BACKENDS_H_
