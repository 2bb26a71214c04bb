// TimerHeap: a min-heap of deadlines for the scheduler's timers (scheduled
// jobs, backoffs, leases, attempt timeouts), driven by the injected Clock.
//
// Timers are not cancelled: whoever pops one checks that it still applies
// (the lease was renewed, the job changed) and ignores or re-arms it.
// Not thread-safe: the Dispatcher guards it with its mutex.
#ifndef JOBWIRE_SERVER_SCHEDULING_TIMER_HEAP_H_
#define JOBWIRE_SERVER_SCHEDULING_TIMER_HEAP_H_

#include <cstdint>
#include <queue>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace jobwire {

enum class TimerKind {
  kRunAfter,        // a SCHEDULED job becomes due
  kLease,           // a lease may have expired
  kAttemptTimeout,  // an attempt's deadline
  kQueueResume,     // a timed queue pause ends (job_id holds the queue name)
};

struct Timer {
  absl::Time when;
  TimerKind kind = TimerKind::kRunAfter;
  std::string job_id;
  int32_t attempt = 0;
};

class TimerHeap {
 public:
  void Push(Timer timer);
  // Pops every timer due at or before `now`, earliest first.
  std::vector<Timer> PopDue(absl::Time now);
  // The earliest deadline; InfiniteFuture when empty.
  absl::Time NextDeadline() const;
  size_t size() const { return heap_.size(); }

 private:
  struct Entry {
    Timer timer;
    uint64_t seq;  // FIFO among equal deadlines
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      if (a.timer.when != b.timer.when) return a.timer.when > b.timer.when;
      return a.seq > b.seq;
    }
  };
  std::priority_queue<Entry, std::vector<Entry>, Later> heap_;
  uint64_t next_seq_ = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_SCHEDULING_TIMER_HEAP_H_
