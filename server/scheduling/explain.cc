#include "server/scheduling/explain.h"

#include "absl/strings/str_cat.h"

namespace jobwire {
namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

}  // namespace

std::vector<ExplainGate> ExplainJob(const Job& job, const ExplainFacts& facts) {
  std::vector<ExplainGate> gates;
  const absl::Time now = facts.now;
  if (IsTerminal(job.state)) {
    gates.push_back(
        {"TERMINAL", absl::StrCat("job is ", JobStateName(job.state),
                                  " and will not run again")});
    return gates;
  }
  if (job.state == JobState::kRunning) {
    gates.push_back(
        {"LEASED", absl::StrCat("lease held by worker ", facts.lease_worker,
                                " until ", Rfc3339(facts.lease_until))});
    return gates;
  }
  if (job.state == JobState::kPaused) {
    gates.push_back({"JOB_PAUSED", "job is paused; ResumeJob releases it"});
  }
  if (job.schedule_time > now) {
    gates.push_back(
        {"SCHEDULE_TIME",
         absl::StrCat("scheduled for ", Rfc3339(job.schedule_time))});
  }
  if (job.backoff_until > now) {
    gates.push_back({"BACKOFF", absl::StrCat("attempt ", job.attempt,
                                             " failed; retry backoff until ",
                                             Rfc3339(job.backoff_until))});
  }
  if (facts.dispatch_paused) {
    gates.push_back(
        {"DISPATCH_PAUSED",
         absl::StrCat(
             "dispatch is paused server-wide",
             facts.dispatch_pause_reason.empty()
                 ? std::string()
                 : absl::StrCat(" (", facts.dispatch_pause_reason, ")"),
             "; ResumeDispatch lifts it")});
  }
  const QueueRow& queue = facts.queue;
  if (facts.queue_paused) {
    gates.push_back(
        {"QUEUE_PAUSED",
         absl::StrCat(
             "queue ", job.queue, " is paused",
             queue.resume_time == absl::InfinitePast()
                 ? std::string("; ResumeQueue lifts it")
                 : absl::StrCat(" until ", Rfc3339(queue.resume_time)))});
  }
  if (facts.draining) {
    gates.push_back(
        {"DRAINING", "server is shutting down; nothing new starts"});
  }
  if (queue.concurrency_limit > 0 &&
      facts.queue_running >= queue.concurrency_limit) {
    gates.push_back(
        {"CONCURRENCY_LIMIT",
         absl::StrCat("queue ", job.queue, " runs ", facts.queue_running,
                      " jobs, its limit is ", queue.concurrency_limit)});
  }
  if (facts.serving == 0) {
    gates.push_back(
        {"NO_WORKER", absl::StrCat("no connected worker serves queue ",
                                   job.queue, " and kind ", job.kind)});
  } else if (facts.free_slots == 0 && job.state == JobState::kQueued) {
    gates.push_back(
        {"NO_WORKER",
         absl::StrCat("all ", facts.serving, " workers for queue ", job.queue,
                      " and kind ", job.kind, " are busy",
                      facts.ahead > 0
                          ? absl::StrCat("; ", facts.ahead, " jobs ahead")
                          : std::string())});
  }
  return gates;
}

}  // namespace jobwire
