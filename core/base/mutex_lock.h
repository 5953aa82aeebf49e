// MutexLock: the project's scoped lock for absl::Mutex. It is
// absl::MutexLock plus, in ThreadSanitizer builds, the annotations an
// instrumented abseil would make itself: Debian's abseil is built without
// TSan, so without them TSan cannot see that absl::Mutex orders the accesses
// it guards and reports each one as a race. Use it instead of
// absl::MutexLock everywhere. Thread-safe as absl::MutexLock is.
#ifndef PCFS_CORE_BASE_MUTEX_LOCK_H_
#define PCFS_CORE_BASE_MUTEX_LOCK_H_

#include "absl/base/config.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#ifdef ABSL_HAVE_THREAD_SANITIZER
#include <sanitizer/tsan_interface.h>
#endif

namespace pcfs {

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(absl::Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
#ifdef ABSL_HAVE_THREAD_SANITIZER
    __tsan_mutex_pre_lock(mu_, 0);
#endif
    mu_->Lock();
#ifdef ABSL_HAVE_THREAD_SANITIZER
    __tsan_mutex_post_lock(mu_, 0, 0);
#endif
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() {
#ifdef ABSL_HAVE_THREAD_SANITIZER
    __tsan_mutex_pre_unlock(mu_, 0);
#endif
    mu_->Unlock();
#ifdef ABSL_HAVE_THREAD_SANITIZER
    __tsan_mutex_post_unlock(mu_, 0);
#endif
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  absl::Mutex* const mu_;
};

}  // namespace pcfs

#endif  // PCFS_CORE_BASE_MUTEX_LOCK_H_
