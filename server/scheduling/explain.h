// ExplainJob: every reason a job is not running now, in words, for the
// ExplainJob RPC and the dashboard.
//
// How it is used: the Dispatcher gathers ExplainFacts under its lock (a few
// lookups) and calls ExplainJob after releasing it, so the formatting costs
// the dispatch loop nothing. A pure function: thread-safe, no I/O, no
// failure.
#ifndef JOBWIRE_SERVER_SCHEDULING_EXPLAIN_H_
#define JOBWIRE_SERVER_SCHEDULING_EXPLAIN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/core/job.h"
#include "server/storage/job_store.h"

namespace jobwire {

// One reason a job is not running.
struct ExplainGate {
  // SCHEDULE_TIME, BACKOFF, JOB_PAUSED, QUEUE_PAUSED, DISPATCH_PAUSED,
  // CONCURRENCY_LIMIT, NO_WORKER, LEASED, TERMINAL, DRAINING.
  std::string type;
  std::string description;
};

// What the dispatcher knew of one job's surroundings at `now`.
struct ExplainFacts {
  absl::Time now;
  // A RUNNING job: the worker holding its lease and when the lease ends.
  std::string lease_worker;
  absl::Time lease_until;
  bool dispatch_paused = false;
  std::string dispatch_pause_reason;
  QueueRow queue;             // settings of the job's queue
  bool queue_paused = false;  // a pause of it holds at `now`
  bool draining = false;
  int32_t queue_running = 0;  // leases of the job's queue
  int32_t serving = 0;        // sessions serving the job's queue and kind
  int32_t free_slots = 0;     // their slots not holding a lease
  int64_t ahead = 0;          // ready jobs of the queue before it
};

// The gates holding `job` (as just read from the store); empty when it is
// about to run. A terminal or running job has exactly one (TERMINAL,
// LEASED).
std::vector<ExplainGate> ExplainJob(const Job& job, const ExplainFacts& facts);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_SCHEDULING_EXPLAIN_H_
