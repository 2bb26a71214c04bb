#include "server/core/job.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace jobwire {

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

absl::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kUnspecified:
      return "UNSPECIFIED";
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kScheduled:
      return "SCHEDULED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kPaused:
      return "PAUSED";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNSPECIFIED";
}

bool ParseJobState(absl::string_view text, JobState* state) {
  // QUEUED, queued and STATE_QUEUED all name one state.
  const std::string upper = absl::AsciiStrToUpper(text);
  absl::string_view name = upper;
  absl::ConsumePrefix(&name, "STATE_");
  for (int v = 1; v <= 7; ++v) {
    JobState s = static_cast<JobState>(v);
    if (name == JobStateName(s)) {
      *state = s;
      return true;
    }
  }
  return false;
}

std::string Job::etag() const { return absl::StrCat("v", version); }

absl::Time Job::run_after() const {
  return std::max(schedule_time, backoff_until);
}

namespace {

size_t LabelBytes(const std::map<std::string, std::string>& labels) {
  size_t n = 0;
  // A map node holds the pair and about four pointers of tree links.
  for (const auto& [k, v] : labels)
    n += k.size() + v.size() + 4 * sizeof(void*);
  return n;
}

size_t ResultBytes(const std::optional<JobResult>& r) {
  return r ? r->data_json.size() + r->payload.size() : 0;
}

size_t ErrorBytes(const std::optional<JobError>& e) {
  return e ? e->message.size() + e->details_json.size() : 0;
}

}  // namespace

size_t ApproxBytes(const Job& job) {
  size_t n =
      sizeof(Job) + job.id.size() + job.queue.size() + job.kind.size() +
      job.args_json.size() + job.payload.size() + LabelBytes(job.labels) +
      job.request_id.size() + ResultBytes(job.result) + ErrorBytes(job.error) +
      job.checkpoint.size() + job.worker_id.size() + job.stop_reason.size();
  if (job.progress) {
    n += job.progress->message.size() + job.progress->details_json.size();
  }
  if (job.webhook) {
    n += job.webhook->url.size() + job.webhook->events.size() * sizeof(int);
  }
  return n;
}

size_t ApproxBytes(const JobEvent& event) {
  size_t n = sizeof(JobEvent) + event.job_id.size() + event.reason.size() +
             ResultBytes(event.result) + ErrorBytes(event.error) +
             event.progress.message.size() +
             event.progress.details_json.size() + event.from_queue.size() +
             event.log_line.size() + event.webhook_delivery.error.size() +
             event.queue.size() + event.kind.size() + LabelBytes(event.labels);
  for (const std::string& p : event.paths) n += sizeof(std::string) + p.size();
  return n;
}

}  // namespace jobwire
