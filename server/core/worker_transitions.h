// Worker transitions: the state-machine steps a worker session, its lease and
// the scheduler's timers apply to one job.
//
// Each function is pure: (job as committed, now, parameters) -> JobChange. The
// scheduler wraps them into JobMutations (server/core/job_change.h) so the
// store runs them on its writer thread against the current row; racing steps
// (a completion and a lease expiry) are serialised and the loser fails
// without writing. Random values (backoff jitter) are drawn by the caller and
// passed in, so the functions stay deterministic.
//
// Fencing: every step that a worker report or a lease causes names the
// attempt it is for. When the job is not RUNNING under that attempt, the step
// fails with ABORTED and changes nothing, so a job completes exactly once.
// Steps that need a state (Assign needs QUEUED and due, PromoteScheduled
// needs SCHEDULED and due) fail with FAILED_PRECONDITION otherwise.
#ifndef JOBWIRE_SERVER_CORE_WORKER_TRANSITIONS_H_
#define JOBWIRE_SERVER_CORE_WORKER_TRANSITIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/job.h"
#include "server/core/job_change.h"

namespace jobwire::worker_transitions {

// QUEUED (and due) -> RUNNING under the next attempt, leased to `worker_id`
// until now + lease_ttl. Progress of an earlier attempt is cleared; the
// checkpoint is kept for the worker.
absl::StatusOr<JobChange> Assign(const Job& job, absl::Time now,
                                 absl::string_view worker_id,
                                 absl::Duration lease_ttl);

// Records progress (and an optional log line as a log event). No state change.
// With a log line and the progress the job already has (all zero when it has
// none), only the log event is recorded.
absl::StatusOr<JobChange> ReportProgress(const Job& job, absl::Time now,
                                         int32_t attempt,
                                         const Progress& progress,
                                         absl::string_view log_line);

// RUNNING -> SUCCEEDED with `result`; the error of earlier attempts is cleared.
absl::StatusOr<JobChange> Complete(const Job& job, absl::Time now,
                                   int32_t attempt, const JobResult& result);

// The attempt failed with `error`. When error.retryable and attempts remain:
// RUNNING -> SCHEDULED until now + backoff (QUEUED when the backoff is zero),
// with the error kept on the job. Otherwise RUNNING -> FAILED with the error.
// `unit_random` in [0, 1) picks the jitter (see core/retry.h).
absl::StatusOr<JobChange> Fail(const Job& job, absl::Time now, int32_t attempt,
                               const JobError& error, double unit_random);

// Saves `data` as the job's checkpoint. With `release`, RUNNING -> PAUSED
// (the worker's answer to a pause); the next attempt gets the checkpoint.
absl::StatusOr<JobChange> Checkpoint(const Job& job, absl::Time now,
                                     int32_t attempt, const std::string& data,
                                     bool release);

// The worker stopped the job after a cancel: RUNNING -> CANCELLED.
absl::StatusOr<JobChange> AckCancel(const Job& job, absl::Time now,
                                    int32_t attempt, absl::string_view reason);

// The worker stopped the job after a pause: RUNNING -> PAUSED.
absl::StatusOr<JobChange> AckPause(const Job& job, absl::Time now,
                                   int32_t attempt);

// Why a lease ended without a report from the worker.
enum class LeaseEndCause {
  kDisconnected,    // the worker's stream closed
  kExpired,         // no message from the worker within the lease ttl
  kAttemptTimeout,  // the job's attempt_timeout passed
  kShutdown,        // the server released it while shutting down
  kRestarted,       // found RUNNING when the server started (it crashed)
  kNodeLost,        // its node (several on one database) stopped heartbeating
};

struct LeaseEnd {
  LeaseEndCause cause = LeaseEndCause::kDisconnected;
  // A cancel was requested for this attempt: the job ends CANCELLED.
  bool cancel_requested = false;
  std::string cancel_reason = "cancelled";
  // Jitter for a backoff after an attempt timeout.
  double unit_random = 0.5;
};

// Ends the lease of `attempt`. A requested cancel wins: CANCELLED (a cancel
// is requested when `end.cancel_requested` or job.stop_request is kCancel).
// Then a pending pause (job.stop_request kPause): PAUSED, whatever the cause,
// and the attempt is not held against the job. Shutdown
// and restart: back to QUEUED (the attempt is not held against the job).
// Disconnect and expiry count as a failed, retryable attempt: back to QUEUED at
// once while attempts remain, else FAILED. An attempt timeout is a retryable
// failure with the usual backoff. The reason of the event names the cause
// ("worker disconnected", "lease expired", "attempt timeout",
// "server shutting down", "server restarted").
absl::StatusOr<JobChange> EndLease(const Job& job, absl::Time now,
                                   int32_t attempt, const LeaseEnd& end);

// Shorthands of EndLease for the three causes the issue names.
absl::StatusOr<JobChange> ReleaseLease(const Job& job, absl::Time now,
                                       int32_t attempt, bool cancel_requested);
absl::StatusOr<JobChange> ExpireLease(const Job& job, absl::Time now,
                                      int32_t attempt, bool cancel_requested);
absl::StatusOr<JobChange> AttemptTimeout(const Job& job, absl::Time now,
                                         int32_t attempt, double unit_random);

// SCHEDULED and due -> QUEUED ("schedule time reached" or "backoff ended").
absl::StatusOr<JobChange> PromoteScheduled(const Job& job, absl::Time now);

// Records that a cancel (`request` kCancel, with `reason`) or a pause
// (kPause) was asked of a RUNNING job's worker: job.stop_request is set, with
// an `updated` event naming "cancel_requested" or "pause_requested", so the
// request survives a server restart (the scheduler then tells the worker). A
// cancel overrides a pending pause; nothing overrides a pending cancel, and a
// repeated request changes nothing (no event). FAILED_PRECONDITION for any
// other state: jobs that are not running are cancelled and paused by
// core/transitions. INVALID_ARGUMENT for kNone.
absl::StatusOr<JobChange> RequestStop(const Job& job, absl::Time now,
                                      StopRequest request,
                                      absl::string_view reason);

// The reason text of a lease end, as recorded in the event.
absl::string_view LeaseEndReason(LeaseEndCause cause);

}  // namespace jobwire::worker_transitions

#endif  // JOBWIRE_SERVER_CORE_WORKER_TRANSITIONS_H_
