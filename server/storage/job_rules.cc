#include "server/storage/job_rules.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/core/validation.h"

namespace jobwire {

absl::Status JobNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
}

absl::Status NotTerminalError(const std::string& id, JobState state) {
  return FailedPreconditionError(
      absl::StrCat("cannot delete job ", id, " in state ", JobStateName(state),
                   "; allowed: SUCCEEDED, FAILED, CANCELLED"),
      PreconditionViolation{"STATE", absl::StrCat("jobs/", id),
                            absl::StrCat("job is ", JobStateName(state))});
}

void FillAttributes(const Job& job, JobEvent* e) {
  e->queue = job.queue;
  e->kind = job.kind;
  e->priority = job.priority;
  e->labels = job.labels;
  e->run_after = job.run_after();
  e->state = job.state;
}

absl::Status SubmitRows(std::vector<NewJob> inputs, std::vector<Job>* rows,
                        int64_t* bytes) {
  absl::Status invalid;
  for (const NewJob& j : inputs) {
    *bytes +=
        static_cast<int64_t>(j.job.payload.size() + j.job.args_json.size());
    if (invalid.ok()) invalid = ValidateNewJob(j.job);
  }
  if (!invalid.ok()) return invalid;
  rows->reserve(inputs.size());
  for (NewJob& in : inputs) {
    Job job;
    // Input fields only: everything else is the store's to set.
    job.queue = in.job.queue.empty() ? std::string(kDefaultQueue)
                                     : std::move(in.job.queue);
    job.kind = std::move(in.job.kind);
    job.args_json = std::move(in.job.args_json);
    job.payload = std::move(in.job.payload);
    job.priority = in.job.priority;
    job.labels = std::move(in.job.labels);
    job.schedule_time = in.job.schedule_time;
    job.max_attempts =
        in.job.max_attempts == 0 ? kDefaultMaxAttempts : in.job.max_attempts;
    job.retry_policy = std::move(in.job.retry_policy);
    job.attempt_timeout = in.job.attempt_timeout;
    job.webhook = std::move(in.job.webhook);
    job.request_id = std::move(in.job.request_id);
    rows->push_back(std::move(job));
  }
  return absl::OkStatus();
}

}  // namespace jobwire
