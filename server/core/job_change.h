// JobMutation: a state-machine step applied to one job inside a store
// transaction.
//
// Every write to an existing job (cancel, assign, complete, fail, progress,
// pause, lease expiry...) is a pure function from the job as committed to the
// job as it should be plus the events that record the change. The store runs
// it on its writer thread against the current row, so two racing operations
// (a cancel and a completion) are serialised and each sees the other's
// result. The function must be pure and fast: no I/O, no locks, no blocking.
#ifndef JOBWIRE_SERVER_CORE_JOB_CHANGE_H_
#define JOBWIRE_SERVER_CORE_JOB_CHANGE_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/job.h"

namespace jobwire {

struct JobChange {
  // The job after the change. The store sets version, update_time and last_seq.
  Job job;
  // Events to append, in order; the store assigns event_id, seq, time and the
  // job attributes. Empty means the change is not recorded (and, if `job`
  // equals the current row, nothing is written).
  std::vector<JobEvent> events;
};

// Returns the change, or an error that aborts this job's write only (other
// writes in the same group commit are unaffected): FAILED_PRECONDITION for a
// state that does not allow it, ABORTED for a stale attempt or etag.
using JobMutation = std::function<absl::StatusOr<JobChange>(const Job& current,
                                                            absl::Time now)>;

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_JOB_CHANGE_H_
