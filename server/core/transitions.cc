#include "server/core/transitions.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace jobwire {
namespace {

constexpr int32_t kCodeCancelled = 1;  // google.rpc.Code CANCELLED
constexpr absl::string_view kRunningType = "STATE_RUNNING";

absl::Status WrongState(const Job& job, absl::string_view action,
                        absl::string_view allowed) {
  return FailedPreconditionError(
      absl::StrCat("cannot ", action, " job ", job.id, " in state ",
                   JobStateName(job.state), "; allowed: ", allowed),
      PreconditionViolation{job.state == JobState::kRunning
                                ? std::string(kRunningType)
                                : std::string("STATE"),
                            absl::StrCat("jobs/", job.id),
                            absl::StrCat("job is ", JobStateName(job.state))});
}

JobEvent StateEvent(JobState from, JobState to, std::string reason,
                    int32_t attempt) {
  JobEvent event;
  event.type = EventType::kStateChanged;
  event.from = from;
  event.to = to;
  event.reason = std::move(reason);
  event.attempt = attempt;
  return event;
}

}  // namespace

bool RefusedBecauseRunning(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kFailedPrecondition) return false;
  for (const PreconditionViolation& v : GetPreconditionViolations(status)) {
    if (v.type == kRunningType) return true;
  }
  return false;
}

bool RefusedForState(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kFailedPrecondition) return false;
  for (const PreconditionViolation& v : GetPreconditionViolations(status)) {
    if (v.type == "STATE" || v.type == kRunningType) return true;
  }
  return false;
}

JobMutation CancelMutation(std::string reason) {
  if (reason.empty()) reason = "cancelled";
  return [reason = std::move(reason)](
             const Job& current, absl::Time now) -> absl::StatusOr<JobChange> {
    if (current.state == JobState::kRunning) {
      return WrongState(current, "cancel",
                        "QUEUED, SCHEDULED, PAUSED (running jobs are "
                        "cancelled by the dispatcher)");
    }
    if (IsTerminal(current.state) || current.state == JobState::kUnspecified) {
      // RUNNING is named too: the service hands those to the dispatcher.
      return WrongState(current, "cancel",
                        "QUEUED, SCHEDULED, PAUSED, RUNNING (a job that has "
                        "not ended)");
    }
    JobChange change;
    change.job = current;
    change.job.state = JobState::kCancelled;
    change.job.finish_time = now;
    change.job.error = JobError{kCodeCancelled, reason, "", false};
    JobEvent event = StateEvent(current.state, JobState::kCancelled, reason,
                                current.attempt);
    event.error = change.job.error;
    change.events.push_back(std::move(event));
    return change;
  };
}

JobMutation PauseMutation() {
  return [](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
    if (current.state != JobState::kQueued &&
        current.state != JobState::kScheduled) {
      // RUNNING is named too: the service hands those to the dispatcher.
      return WrongState(current, "pause", "QUEUED, SCHEDULED, RUNNING");
    }
    JobChange change;
    change.job = current;
    change.job.state = JobState::kPaused;
    change.events.push_back(StateEvent(current.state, JobState::kPaused,
                                       "paused", current.attempt));
    return change;
  };
}

JobMutation ResumeMutation() {
  return [](const Job& current, absl::Time now) -> absl::StatusOr<JobChange> {
    if (current.state != JobState::kPaused) {
      return WrongState(current, "resume", "PAUSED");
    }
    JobChange change;
    change.job = current;
    change.job.state =
        current.run_after() > now ? JobState::kScheduled : JobState::kQueued;
    change.events.push_back(StateEvent(current.state, change.job.state,
                                       "resumed", current.attempt));
    return change;
  };
}

JobMutation RetryMutation(int32_t additional_attempts) {
  if (additional_attempts <= 0) additional_attempts = 1;
  return [additional_attempts](const Job& current,
                               absl::Time) -> absl::StatusOr<JobChange> {
    if (current.state != JobState::kFailed &&
        current.state != JobState::kCancelled) {
      return WrongState(current, "retry", "FAILED, CANCELLED");
    }
    JobChange change;
    change.job = current;
    change.job.state = JobState::kQueued;
    change.job.max_attempts =
        std::max(current.max_attempts, current.attempt + additional_attempts);
    change.job.result.reset();
    change.job.error.reset();
    change.job.backoff_until = absl::InfinitePast();
    change.job.finish_time = absl::InfinitePast();
    change.job.worker_id.clear();
    change.job.lease_expire_time = absl::InfinitePast();
    change.events.push_back(StateEvent(
        current.state, JobState::kQueued,
        absl::StrCat("retried; max_attempts ", change.job.max_attempts),
        current.attempt));
    return change;
  };
}

}  // namespace jobwire
