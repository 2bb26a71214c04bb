// Clock: the one source of time for jobwire, injected everywhere.
//
// Leases, backoff, schedule times, heartbeats and retention read time from a
// Clock, so tests drive them with FakeClock and never sleep. Both
// implementations are thread-safe. Components take a `Clock* const` they do
// not own; the composition root owns the clock.
#ifndef JOBWIRE_SERVER_COMMON_CLOCK_H_
#define JOBWIRE_SERVER_COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace jobwire {

class Clock {
 public:
  virtual ~Clock() = default;
  // The current time.
  virtual absl::Time Now() const = 0;
  // The process-wide real-time clock. Never null; never deleted.
  static Clock* Real();
};

// Wall-clock time from absl::Now().
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override;
};

// A clock that moves only when told. Starts at a fixed, arbitrary time.
class FakeClock final : public Clock {
 public:
  FakeClock();
  explicit FakeClock(absl::Time start);
  absl::Time Now() const override;
  // Moves time forward by `d` (>= 0).
  void Advance(absl::Duration d);
  void Set(absl::Time t);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_COMMON_CLOCK_H_
