// Pure state-machine steps for the custom methods that act on jobs that are
// not running: CancelJob, PauseJob, ResumeJob and RetryJob.
//
// Each function returns a JobMutation (server/core/job_change.h) that the
// store runs on its writer thread against the job as committed, so a cancel
// racing a dispatch sees the dispatcher's result. A RUNNING job is refused
// with FAILED_PRECONDITION: cancel and pause reach running jobs through the
// dispatcher and the worker's stream (scheduling/), not through these.
// Pure functions; thread-safe.
#ifndef JOBWIRE_SERVER_CORE_TRANSITIONS_H_
#define JOBWIRE_SERVER_CORE_TRANSITIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "server/core/job_change.h"

namespace jobwire {

// QUEUED, SCHEDULED or PAUSED -> CANCELLED at once, with error
// {code CANCELLED, message reason} and finish_time now. Fails with
// FAILED_PRECONDITION (PreconditionFailure type "STATE") for a RUNNING or a
// terminal job. `reason` may be empty ("cancelled").
JobMutation CancelMutation(std::string reason);

// QUEUED or SCHEDULED -> PAUSED. Fails with FAILED_PRECONDITION for any other
// state (RUNNING jobs are paused through their worker).
JobMutation PauseMutation();

// PAUSED -> QUEUED, or SCHEDULED when run_after() is still in the future.
// Fails with FAILED_PRECONDITION when the job is not PAUSED.
JobMutation ResumeMutation();

// FAILED or CANCELLED -> QUEUED, clearing result, error, backoff and
// finish_time. The attempt budget grows: max_attempts becomes
// max(max_attempts, attempt + additional_attempts). `additional_attempts`
// <= 0 means 1. Fails with FAILED_PRECONDITION for any other state.
JobMutation RetryMutation(int32_t additional_attempts);

// True when `status` is the refusal of CancelMutation or PauseMutation for a
// RUNNING job: the caller hands such a job to the dispatcher instead.
bool RefusedBecauseRunning(const absl::Status& status);

// True when `status` refuses a change because of the job's state (any of the
// refusals above, RUNNING included, and UpdateMutation's of a terminal job):
// PreconditionFailure type "STATE" or "STATE_RUNNING".
bool RefusedForState(const absl::Status& status);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_TRANSITIONS_H_
