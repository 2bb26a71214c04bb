// ThreadSanitizer annotations for Debian's (uninstrumented) Abseil
// synchronization library; linked into every executable of the `tsan` preset
// only (CMakeLists.txt, JOBWIRE_TSAN).
//
// Why: Abseil reports its locks to TSan from inside mutex.cc, and only when
// Abseil itself is built with -fsanitize=thread. Debian's libabsl is not, so
// TSan would see no lock at all: every ABSL_GUARDED_BY field read on one
// thread after a write on another would be reported as a race. These
// definitions interpose the library's own (an executable's definition wins
// over a shared library's, for our calls and for gRPC's and Abseil's own),
// tell TSan what each call does to the lock, the way mutex.cc does when it is
// instrumented, and call the library's function (dlsym RTLD_NEXT).
//
// Covered: Mutex (exclusive, shared, try, the ...When and Await forms),
// CondVar waits, Notification and BlockingCounter (their hand-offs), and
// absl::Status's reference count (defined here, see below). The
// inline Notification::HasBeenNotified reads an atomic the library writes:
// a HasBeenNotified() that is true does not order anything for TSan; the
// code here uses it only to avoid a second Notify().
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#define JOBWIRE_STR2(x) #x
#define JOBWIRE_STR(x) JOBWIRE_STR2(x)

namespace {

// The names below are Debian 12's Abseil (inline namespace `debian3`).
static_assert(
    std::string_view(JOBWIRE_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME)) ==
        "debian3",
    "absl_sync_annotations.cc names Debian 12's Abseil symbols; update them");

// The library's definition of the function with the mangled name `name`.
template <typename Fn>
Fn Next(const char* name) {
  void* fn = dlsym(RTLD_NEXT, name);
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found in Abseil\n",
                 name);
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// Abseil's own functions call each other through the same interposed names
// (AwaitWithTimeout calls AwaitWithDeadline; Notification locks its mutex):
// only a thread's outermost call is annotated.
thread_local int depth = 0;
struct Outermost {
  Outermost() : outermost(depth++ == 0) {}
  ~Outermost() { --depth; }
  Outermost(const Outermost&) = delete;
  Outermost& operator=(const Outermost&) = delete;
  const bool outermost;
};

// Declares `next` (the library's function) and `call` (is it outermost).
#define JOBWIRE_NEXT(type, name)             \
  static const auto next = Next<type>(name); \
  const Outermost call

constexpr unsigned kShared = __tsan_mutex_read_lock;

// While a thread waits inside Await or CondVar::Wait, Abseil lets go of the
// lock and takes it back; the conditions it evaluates meanwhile are read
// between pre_lock and post_lock, where TSan ignores accesses, as mutex.cc's
// own annotations do.
void ReleaseForWait(void* mu, unsigned flags) {
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  JOBWIRE_NEXT(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  if (!call.outermost) return next(this);
  __tsan_mutex_pre_lock(this, 0);
  next(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::Unlock() {
  JOBWIRE_NEXT(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  if (!call.outermost) return next(this);
  __tsan_mutex_pre_unlock(this, 0);
  next(this);
  __tsan_mutex_post_unlock(this, 0);
}

bool Mutex::TryLock() {
  JOBWIRE_NEXT(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  if (!call.outermost) return next(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = next(this);
  __tsan_mutex_post_lock(
      this,
      locked ? __tsan_mutex_try_lock
             : __tsan_mutex_try_lock_failed | __tsan_mutex_try_lock,
      0);
  return locked;
}

void Mutex::ReaderLock() {
  JOBWIRE_NEXT(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  if (!call.outermost) return next(this);
  __tsan_mutex_pre_lock(this, kShared);
  next(this);
  __tsan_mutex_post_lock(this, kShared, 0);
}

void Mutex::ReaderUnlock() {
  JOBWIRE_NEXT(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  if (!call.outermost) return next(this);
  __tsan_mutex_pre_unlock(this, kShared);
  next(this);
  __tsan_mutex_post_unlock(this, kShared);
}

bool Mutex::ReaderTryLock() {
  JOBWIRE_NEXT(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  if (!call.outermost) return next(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool locked = next(this);
  __tsan_mutex_post_lock(
      this,
      locked ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed,
      0);
  return locked;
}

void Mutex::LockWhen(const Condition& cond) {
  JOBWIRE_NEXT(void (*)(Mutex*, const Condition&),
               "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  if (!call.outermost) return next(this, cond);
  __tsan_mutex_pre_lock(this, 0);
  next(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  JOBWIRE_NEXT(void (*)(Mutex*, const Condition&),
               "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  if (!call.outermost) return next(this, cond);
  __tsan_mutex_pre_lock(this, kShared);
  next(this, cond);
  __tsan_mutex_post_lock(this, kShared, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  JOBWIRE_NEXT(bool (*)(Mutex*, const Condition&, absl::Duration),
               "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_"
               "9ConditionENS0_8DurationE");
  if (!call.outermost) return next(this, cond, timeout);
  __tsan_mutex_pre_lock(this, 0);
  const bool met = next(this, cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  JOBWIRE_NEXT(bool (*)(Mutex*, const Condition&, absl::Time),
               "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_"
               "9ConditionENS0_4TimeE");
  if (!call.outermost) return next(this, cond, deadline);
  __tsan_mutex_pre_lock(this, 0);
  const bool met = next(this, cond, deadline);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond,
                                      absl::Duration timeout) {
  JOBWIRE_NEXT(bool (*)(Mutex*, const Condition&, absl::Duration),
               "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_"
               "9ConditionENS0_8DurationE");
  if (!call.outermost) return next(this, cond, timeout);
  __tsan_mutex_pre_lock(this, kShared);
  const bool met = next(this, cond, timeout);
  __tsan_mutex_post_lock(this, kShared, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond,
                                       absl::Time deadline) {
  JOBWIRE_NEXT(bool (*)(Mutex*, const Condition&, absl::Time),
               "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_"
               "9ConditionENS0_4TimeE");
  if (!call.outermost) return next(this, cond, deadline);
  __tsan_mutex_pre_lock(this, kShared);
  const bool met = next(this, cond, deadline);
  __tsan_mutex_post_lock(this, kShared, 0);
  return met;
}

// Await and CondVar::Wait: the caller holds the lock exclusively (shared
// holders are not used with them in this code base).
void Mutex::Await(const Condition& cond) {
  JOBWIRE_NEXT(void (*)(Mutex*, const Condition&),
               "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  if (!call.outermost) return next(this, cond);
  ReleaseForWait(this, 0);
  next(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  JOBWIRE_NEXT(bool (*)(Mutex*, const Condition&, absl::Duration),
               "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_"
               "8DurationE");
  if (!call.outermost) return next(this, cond, timeout);
  ReleaseForWait(this, 0);
  const bool met = next(this, cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  JOBWIRE_NEXT(
      bool (*)(Mutex*, const Condition&, absl::Time),
      "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  if (!call.outermost) return next(this, cond, deadline);
  ReleaseForWait(this, 0);
  const bool met = next(this, cond, deadline);
  __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  JOBWIRE_NEXT(void (*)(CondVar*, Mutex*),
               "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  if (!call.outermost) return next(this, mu);
  ReleaseForWait(mu, 0);
  next(this, mu);
  __tsan_mutex_post_lock(mu, 0, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  JOBWIRE_NEXT(
      bool (*)(CondVar*, Mutex*, absl::Duration),
      "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  if (!call.outermost) return next(this, mu, timeout);
  ReleaseForWait(mu, 0);
  const bool timed_out = next(this, mu, timeout);
  __tsan_mutex_post_lock(mu, 0, 0);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  JOBWIRE_NEXT(
      bool (*)(CondVar*, Mutex*, absl::Time),
      "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  if (!call.outermost) return next(this, mu, deadline);
  ReleaseForWait(mu, 0);
  const bool timed_out = next(this, mu, deadline);
  __tsan_mutex_post_lock(mu, 0, 0);
  return timed_out;
}

// Notify happens before every wait that sees it.
void Notification::Notify() {
  JOBWIRE_NEXT(void (*)(Notification*),
               "_ZN4absl7debian312Notification6NotifyEv");
  if (!call.outermost) return next(this);
  __tsan_release(this);
  next(this);
}

void Notification::WaitForNotification() const {
  JOBWIRE_NEXT(void (*)(const Notification*),
               "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  if (!call.outermost) return next(this);
  next(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(
    absl::Duration timeout) const {
  JOBWIRE_NEXT(bool (*)(const Notification*, absl::Duration),
               "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeout"
               "ENS0_8DurationE");
  if (!call.outermost) return next(this, timeout);
  const bool notified = next(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  JOBWIRE_NEXT(bool (*)(const Notification*, absl::Time),
               "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlin"
               "eENS0_4TimeE");
  if (!call.outermost) return next(this, deadline);
  const bool notified = next(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

// Every DecrementCount happens before Wait returns.
bool BlockingCounter::DecrementCount() {
  JOBWIRE_NEXT(bool (*)(BlockingCounter*),
               "_ZN4absl7debian315BlockingCounter14DecrementCountEv");
  if (!call.outermost) return next(this);
  __tsan_release(this);
  return next(this);
}

void BlockingCounter::Wait() {
  JOBWIRE_NEXT(void (*)(BlockingCounter*),
               "_ZN4absl7debian315BlockingCounter4WaitEv");
  if (!call.outermost) return next(this);
  next(this);
  __tsan_acquire(this);
}

// absl::Status shares its message and payloads between copies through a
// reference count: Ref is inline (instrumented), but the decrement and the
// delete are in status.cc, uninstrumented, and a tail call there makes the
// delete look like ours. A status copied on one thread and dropped last on
// another (every store callback's) then showed as its Ref racing the delete.
// This is the library's own definition (Abseil 20220623, status.cc),
// compiled here with TSan so that it sees the acquire and release; it
// replaces the library's rather than wrapping it, since no annotation
// outside the decrement can order the delete inside it.
void Status::UnrefNonInlined(uintptr_t rep) {
  status_internal::StatusRep* r = RepToPointer(rep);
  // Fast path: if ref==1, no other thread holds a reference.
  if (r->ref.load(std::memory_order_acquire) == 1 ||
      r->ref.fetch_sub(1, std::memory_order_acq_rel) - 1 == 0) {
    delete r;
  }
}

ABSL_NAMESPACE_END
}  // namespace absl
