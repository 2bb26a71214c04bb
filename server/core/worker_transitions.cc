#include "server/core/worker_transitions.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/core/retry.h"

namespace jobwire::worker_transitions {
namespace {

// google.rpc.Code values used in errors the server writes itself.
constexpr int32_t kCodeCancelled = 1;
constexpr int32_t kCodeDeadlineExceeded = 4;
constexpr int32_t kCodeUnavailable = 14;

absl::Status CheckLease(const Job& job, int32_t attempt) {
  if (job.state == JobState::kRunning && job.attempt == attempt) {
    return absl::OkStatus();
  }
  return absl::AbortedError(
      absl::StrCat("attempt ", attempt, " of job ", job.id,
                   " does not hold a lease (job is ", JobStateName(job.state),
                   " at attempt ", job.attempt, ")"));
}

absl::Status WrongState(const Job& job, absl::string_view wanted) {
  return FailedPreconditionError(
      absl::StrCat("job ", job.id, " is ", JobStateName(job.state), ", not ",
                   wanted),
      {"STATE", job.id, absl::StrCat("job must be ", wanted)});
}

JobEvent StateEvent(JobState from, const Job& after, std::string reason) {
  JobEvent e;
  e.job_id = after.id;
  e.type = EventType::kStateChanged;
  e.from = from;
  e.to = after.state;
  e.reason = std::move(reason);
  e.attempt = after.attempt;
  return e;
}

// Clears the fields of a lease on a job leaving RUNNING.
void DropLease(Job* job) {
  job->worker_id.clear();
  job->lease_expire_time = absl::InfinitePast();
  job->stop_request = StopRequest::kNone;
  job->stop_reason.clear();
}

JobChange Finish(const Job& job, absl::Time now, JobState to,
                 std::string reason) {
  JobChange c{job, {}};
  c.job.state = to;
  c.job.finish_time = now;
  DropLease(&c.job);
  c.events.push_back(StateEvent(job.state, c.job, std::move(reason)));
  return c;
}

// A failed attempt: retry (with `backoff` from now) or end FAILED.
JobChange FailedAttempt(const Job& job, absl::Time now, const JobError& error,
                        absl::Duration backoff, absl::string_view what) {
  JobChange c{job, {}};
  c.job.error = error;
  DropLease(&c.job);
  if (error.retryable && HasAttemptsLeft(job)) {
    if (backoff > absl::ZeroDuration()) {
      c.job.state = JobState::kScheduled;
      c.job.backoff_until = now + backoff;
    } else {
      c.job.state = JobState::kQueued;
    }
    c.events.push_back(StateEvent(
        job.state, c.job,
        backoff > absl::ZeroDuration()
            // Whole milliseconds: "retry in 1.118s", not "1.11802076225s".
            ? absl::StrCat(what, "; retry in ",
                           absl::FormatDuration(
                               absl::Trunc(backoff, absl::Milliseconds(1))))
            : std::string(what)));
  } else {
    c.job.state = JobState::kFailed;
    c.job.finish_time = now;
    c.events.push_back(
        StateEvent(job.state, c.job,
                   absl::StrCat(what, error.retryable ? "; no attempts left"
                                                      : "; not retryable")));
  }
  c.events.back().error = error;
  return c;
}

}  // namespace

absl::StatusOr<JobChange> Assign(const Job& job, absl::Time now,
                                 absl::string_view worker_id,
                                 absl::Duration lease_ttl) {
  if (job.state != JobState::kQueued) return WrongState(job, "QUEUED");
  if (job.run_after() > now) {
    return FailedPreconditionError(
        absl::StrCat("job ", job.id, " is not due before ",
                     absl::FormatTime(job.run_after())),
        {"SCHEDULE", job.id, "job is not due"});
  }
  JobChange c{job, {}};
  c.job.state = JobState::kRunning;
  c.job.attempt = job.attempt + 1;
  c.job.worker_id = std::string(worker_id);
  c.job.lease_expire_time = now + lease_ttl;
  c.job.start_time = now;
  c.job.progress.reset();
  c.job.stop_request = StopRequest::kNone;
  c.job.stop_reason.clear();
  c.events.push_back(StateEvent(
      job.state, c.job, absl::StrCat("assigned to worker ", worker_id)));
  return c;
}

absl::StatusOr<JobChange> ReportProgress(const Job& job, absl::Time now,
                                         int32_t attempt,
                                         const Progress& progress,
                                         absl::string_view log_line) {
  if (absl::Status s = CheckLease(job, attempt); !s.ok()) return s;
  JobChange c{job, {}};
  // A log line that comes with the progress the job already has (none:
  // all zero) is only a log line.
  const Progress& before =
      job.progress.has_value() ? *job.progress : Progress{};
  const bool same = progress.done == before.done &&
                    progress.total == before.total &&
                    progress.message == before.message &&
                    progress.details_json == before.details_json;
  if (log_line.empty() || !same) {
    c.job.progress = progress;
    JobEvent e;
    e.job_id = job.id;
    e.type = EventType::kProgress;
    e.progress = progress;
    c.events.push_back(std::move(e));
  }
  if (!log_line.empty()) {
    JobEvent log;
    log.job_id = job.id;
    log.type = EventType::kLog;
    log.log_line = std::string(log_line);
    c.events.push_back(std::move(log));
  }
  return c;
}

absl::StatusOr<JobChange> Complete(const Job& job, absl::Time now,
                                   int32_t attempt, const JobResult& result) {
  if (absl::Status s = CheckLease(job, attempt); !s.ok()) return s;
  JobChange c = Finish(job, now, JobState::kSucceeded,
                       absl::StrCat("attempt ", attempt, " succeeded"));
  c.job.result = result;
  c.job.error.reset();
  c.events.back().result = result;
  return c;
}

absl::StatusOr<JobChange> Fail(const Job& job, absl::Time now, int32_t attempt,
                               const JobError& error, double unit_random) {
  if (absl::Status s = CheckLease(job, attempt); !s.ok()) return s;
  absl::Duration backoff =
      BackoffDelay(EffectivePolicy(job), attempt, unit_random);
  return FailedAttempt(
      job, now, error, backoff,
      absl::StrCat("attempt ", attempt, " failed: ", error.message));
}

absl::StatusOr<JobChange> Checkpoint(const Job& job, absl::Time now,
                                     int32_t attempt, const std::string& data,
                                     bool release) {
  if (absl::Status s = CheckLease(job, attempt); !s.ok()) return s;
  JobChange c{job, {}};
  c.job.checkpoint = data;
  if (release) {
    c.job.state = JobState::kPaused;
    DropLease(&c.job);
    c.events.push_back(
        StateEvent(job.state, c.job, "paused by worker with a checkpoint"));
  }
  return c;
}

absl::StatusOr<JobChange> AckCancel(const Job& job, absl::Time now,
                                    int32_t attempt, absl::string_view reason) {
  if (absl::Status s = CheckLease(job, attempt); !s.ok()) return s;
  JobChange c = Finish(job, now, JobState::kCancelled,
                       absl::StrCat(reason, " (worker stopped)"));
  JobError error;
  error.code = kCodeCancelled;
  error.message = std::string(reason);
  c.job.error = error;
  c.events.back().error = error;
  return c;
}

absl::StatusOr<JobChange> AckPause(const Job& job, absl::Time now,
                                   int32_t attempt) {
  if (absl::Status s = CheckLease(job, attempt); !s.ok()) return s;
  JobChange c{job, {}};
  c.job.state = JobState::kPaused;
  DropLease(&c.job);
  c.events.push_back(StateEvent(job.state, c.job, "paused (worker stopped)"));
  return c;
}

absl::string_view LeaseEndReason(LeaseEndCause cause) {
  switch (cause) {
    case LeaseEndCause::kDisconnected:
      return "worker disconnected";
    case LeaseEndCause::kExpired:
      return "lease expired";
    case LeaseEndCause::kAttemptTimeout:
      return "attempt timeout";
    case LeaseEndCause::kShutdown:
      return "server shutting down";
    case LeaseEndCause::kRestarted:
      return "server restarted";
    case LeaseEndCause::kNodeLost:
      return "its node was lost";
  }
  return "lease ended";
}

absl::StatusOr<JobChange> EndLease(const Job& job, absl::Time now,
                                   int32_t attempt, const LeaseEnd& end) {
  if (absl::Status s = CheckLease(job, attempt); !s.ok()) return s;
  const absl::string_view why = LeaseEndReason(end.cause);
  if (end.cancel_requested || job.stop_request == StopRequest::kCancel) {
    // The durable request names the reason; the in-memory one repeats it.
    const std::string reason =
        job.stop_request == StopRequest::kCancel && !job.stop_reason.empty()
            ? job.stop_reason
            : end.cancel_reason;
    JobChange c = Finish(job, now, JobState::kCancelled,
                         absl::StrCat(reason, " (", why, ")"));
    JobError error;
    error.code = kCodeCancelled;
    error.message = reason;
    c.job.error = error;
    c.events.back().error = error;
    return c;
  }
  if (job.stop_request == StopRequest::kPause) {
    JobChange c{job, {}};
    c.job.state = JobState::kPaused;
    DropLease(&c.job);
    c.events.push_back(
        StateEvent(job.state, c.job, absl::StrCat("paused (", why, ")")));
    return c;
  }
  if (end.cause == LeaseEndCause::kShutdown ||
      end.cause == LeaseEndCause::kRestarted ||
      end.cause == LeaseEndCause::kNodeLost) {
    JobChange c{job, {}};
    c.job.state = JobState::kQueued;
    DropLease(&c.job);
    c.events.push_back(StateEvent(job.state, c.job, std::string(why)));
    return c;
  }
  JobError error;
  error.retryable = true;
  error.message = std::string(why);
  absl::Duration backoff = absl::ZeroDuration();
  if (end.cause == LeaseEndCause::kAttemptTimeout) {
    error.code = kCodeDeadlineExceeded;
    backoff = BackoffDelay(EffectivePolicy(job), attempt, end.unit_random);
  } else {
    error.code = kCodeUnavailable;
  }
  return FailedAttempt(job, now, error, backoff, why);
}

namespace {

LeaseEnd EndFor(LeaseEndCause cause, bool cancel_requested,
                double unit_random) {
  LeaseEnd end;
  end.cause = cause;
  end.cancel_requested = cancel_requested;
  end.unit_random = unit_random;
  return end;
}

}  // namespace

absl::StatusOr<JobChange> ReleaseLease(const Job& job, absl::Time now,
                                       int32_t attempt, bool cancel_requested) {
  return EndLease(job, now, attempt,
                  EndFor(LeaseEndCause::kDisconnected, cancel_requested, 0.5));
}

absl::StatusOr<JobChange> ExpireLease(const Job& job, absl::Time now,
                                      int32_t attempt, bool cancel_requested) {
  return EndLease(job, now, attempt,
                  EndFor(LeaseEndCause::kExpired, cancel_requested, 0.5));
}

absl::StatusOr<JobChange> AttemptTimeout(const Job& job, absl::Time now,
                                         int32_t attempt, double unit_random) {
  return EndLease(job, now, attempt,
                  EndFor(LeaseEndCause::kAttemptTimeout, false, unit_random));
}

absl::StatusOr<JobChange> PromoteScheduled(const Job& job, absl::Time now) {
  if (job.state != JobState::kScheduled) return WrongState(job, "SCHEDULED");
  if (job.run_after() > now) {
    return FailedPreconditionError(
        absl::StrCat("job ", job.id, " is not due before ",
                     absl::FormatTime(job.run_after())),
        {"SCHEDULE", job.id, "job is not due"});
  }
  const bool backoff = job.backoff_until > job.schedule_time;
  JobChange c{job, {}};
  c.job.state = JobState::kQueued;
  c.job.backoff_until = absl::InfinitePast();
  c.events.push_back(StateEvent(
      job.state, c.job, backoff ? "backoff ended" : "schedule time reached"));
  return c;
}

absl::StatusOr<JobChange> RequestStop(const Job& job, absl::Time /*now*/,
                                      StopRequest request,
                                      absl::string_view reason) {
  if (request == StopRequest::kNone) {
    return InvalidArgumentError("stop_request", "must be a cancel or a pause");
  }
  if (job.state != JobState::kRunning) return WrongState(job, "RUNNING");
  JobChange c{job, {}};
  if (job.stop_request == StopRequest::kCancel || job.stop_request == request) {
    return c;  // already asked; a cancel is never downgraded to a pause
  }
  c.job.stop_request = request;
  c.job.stop_reason =
      request == StopRequest::kCancel ? std::string(reason) : std::string();
  JobEvent e;
  e.job_id = job.id;
  e.type = EventType::kUpdated;
  e.paths.push_back(request == StopRequest::kCancel ? "cancel_requested"
                                                    : "pause_requested");
  c.events.push_back(std::move(e));
  return c;
}

}  // namespace jobwire::worker_transitions
