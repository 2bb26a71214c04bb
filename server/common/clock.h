// Clock: the one source of time for jobwire, injected everywhere.
//
// Leases, backoff, schedule times, heartbeats and retention read time from a
// Clock, so tests drive them with FakeClock and never sleep. Both
// implementations are thread-safe.
//
// Two timelines: Now() is wall-clock time (what is stored, shown and
// compared with a client's schedule times); it can step when the system
// clock is set. Monotonic() never steps: leases, heartbeats and attempt
// timeouts are measured on it, so setting the system clock neither expires
// nor extends them. Its values mean nothing on their own; only differences
// between two of them do, and only within one process. Components take a
// `Clock* const` they do not own; the composition root owns the clock.
#ifndef JOBWIRE_SERVER_COMMON_CLOCK_H_
#define JOBWIRE_SERVER_COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace jobwire {

class Clock {
 public:
  virtual ~Clock() = default;
  // The current wall-clock time.
  virtual absl::Time Now() const = 0;
  // The current time on a clock that never steps (CLOCK_MONOTONIC). Compare
  // only with other Monotonic() values of the same process.
  virtual absl::Time Monotonic() const = 0;
  // The process-wide real-time clock. Never null; never deleted.
  static Clock* Real();
};

// Wall-clock time from absl::Now(); Monotonic() from CLOCK_MONOTONIC.
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override;
  absl::Time Monotonic() const override;
};

// A clock that moves only when told. Starts at a fixed, arbitrary time.
class FakeClock final : public Clock {
 public:
  FakeClock();
  explicit FakeClock(absl::Time start);
  absl::Time Now() const override;
  absl::Time Monotonic() const override;
  // Moves time forward by `d` (>= 0) on both timelines.
  void Advance(absl::Duration d);
  // Steps the wall clock to `t` (either way), as setting the system clock
  // does; Monotonic() does not move.
  void Set(absl::Time t);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  absl::Time monotonic_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_COMMON_CLOCK_H_
