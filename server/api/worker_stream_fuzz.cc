// libFuzzer target: the worker stream's message handling, without a
// network. Each input is one job, one worker session and a sequence of
// steps: a ConnectRequest from the worker (bytes parsed as the proto, as
// gRPC would), or something the server does meanwhile (assign, a cancel or
// pause request, a lease end, a schedule promotion, time passing).
//
// A worker message goes the way WorkerSessionReactor::Handle
// (worker_service.cc) sends it: hello first (a second one ends the
// stream), the Struct fields converted by convert.h (refused with
// INVALID_ARGUMENT before anything else), fail's code defaulted to UNKNOWN
// and its retryable flag taken from the message, then the step of
// core/worker_transitions.h the Dispatcher runs for it (an ack picks
// AckCancel or AckPause from the stop the job holds).
//
// Oracle, after every step:
//  - a refused step leaves the job as it was (the store writes only a
//    change), with ABORTED, FAILED_PRECONDITION or INVALID_ARGUMENT;
//  - a worker report changes the job only when it names the job's current
//    attempt of a RUNNING job (fencing: a job completes exactly once), and
//    nothing changes a finished job;
//  - a state change is recorded by one state_changed event from the old
//    state to the new one; a step without a state change records none;
//  - finish_time is set exactly on terminal jobs (list_query.cc's partial
//    indexes rely on it), a lease (worker_id, stop request) exists only
//    while RUNNING, a SUCCEEDED job has a result, and the attempt never
//    goes down.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "jobwire/v1/worker_service.pb.h"
#include "server/api/convert.h"
#include "server/core/worker_transitions.h"
#include "tests/fuzz/fuzz_util.h"

namespace jobwire {
namespace {

namespace v1 = ::jobwire::v1;
namespace wt = ::jobwire::worker_transitions;

struct Session {
  Job job;
  absl::Time now = absl::FromUnixSeconds(1767225600);
  bool hello = false;
  bool ended = false;
  // The attempt a report names: whatever the message says.
  int32_t report_attempt = 0;
};

Job InitialJob(fuzz::FuzzInput& in) {
  Job job;
  job.id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  job.kind = "send";
  job.create_time = absl::FromUnixSeconds(1767225000);
  job.max_attempts = 1 + in.Byte() % 4;
  job.state = JobState::kQueued;
  if (in.Bool()) {
    // Found RUNNING (the server restarted, or a lease from before).
    job.state = JobState::kRunning;
    job.attempt = 1 + in.Byte() % 3;
    job.worker_id = "w0";
    job.lease_expire_time = job.create_time + absl::Seconds(30);
    job.start_time = job.create_time;
  }
  return job;
}

bool IsReport(const v1::ConnectRequest& req) {
  switch (req.kind_case()) {
    case v1::ConnectRequest::kProgress:
    case v1::ConnectRequest::kComplete:
    case v1::ConnectRequest::kFail:
    case v1::ConnectRequest::kCheckpoint:
    case v1::ConnectRequest::kAck:
      return true;
    default:
      return false;
  }
}

// The step a worker message asks for, as Handle and the Dispatcher run it;
// OK with no change for messages that do not touch the job.
absl::StatusOr<JobChange> WorkerStep(Session& s, const v1::ConnectRequest& req,
                                     double unit_random) {
  const Job& job = s.job;
  switch (req.kind_case()) {
    case v1::ConnectRequest::kProgress: {
      const v1::ReportProgress& p = req.progress();
      s.report_attempt = p.attempt();
      absl::StatusOr<Progress> progress =
          ProgressFromProto(p.progress(), "progress.progress");
      if (!progress.ok()) return progress.status();
      return wt::ReportProgress(job, s.now, p.attempt(), *progress, p.log());
    }
    case v1::ConnectRequest::kComplete: {
      const v1::Complete& c = req.complete();
      s.report_attempt = c.attempt();
      absl::StatusOr<JobResult> result =
          ResultFromProto(c.result(), "complete.result");
      if (!result.ok()) return result.status();
      return wt::Complete(job, s.now, c.attempt(), *result);
    }
    case v1::ConnectRequest::kFail: {
      const v1::Fail& f = req.fail();
      s.report_attempt = f.attempt();
      absl::StatusOr<JobError> error = ErrorFromProto(f.error(), "fail.error");
      if (!error.ok()) return error.status();
      if (error->code == 0) error->code = 2;
      error->retryable = f.retryable();
      return wt::Fail(job, s.now, f.attempt(), *error, unit_random);
    }
    case v1::ConnectRequest::kCheckpoint: {
      const v1::Checkpoint& c = req.checkpoint();
      s.report_attempt = c.attempt();
      return wt::Checkpoint(job, s.now, c.attempt(), c.data(), c.release());
    }
    case v1::ConnectRequest::kAck: {
      const v1::Ack& a = req.ack();
      s.report_attempt = a.attempt();
      if (job.stop_request == StopRequest::kNone) {
        return absl::FailedPreconditionError("nothing to acknowledge");
      }
      if (!a.stopped()) return absl::FailedPreconditionError("not stopped");
      if (job.stop_request == StopRequest::kCancel) {
        return wt::AckCancel(job, s.now, a.attempt(), job.stop_reason);
      }
      return wt::AckPause(job, s.now, a.attempt());
    }
    default:
      return JobChange{job, {}};
  }
}

// Something the server does to the job between the worker's messages.
absl::StatusOr<JobChange> ServerStep(Session& s, uint8_t what, uint8_t arg) {
  const Job& job = s.job;
  switch (what % 6) {
    case 0:
      return wt::Assign(job, s.now, "w1", absl::Seconds(1 + arg % 60));
    case 1:
      return wt::RequestStop(
          job, s.now, arg % 3 == 0 ? StopRequest::kPause : StopRequest::kCancel,
          arg % 2 == 0 ? "cancelled" : "by operator");
    case 2: {
      wt::LeaseEnd end;
      end.cause = static_cast<wt::LeaseEndCause>(arg % 5);
      end.cancel_requested = (arg & 0x80) != 0;
      end.unit_random = (arg % 16) / 16.0;
      // The dispatcher ends the lease of the attempt it assigned; a stale
      // one (arg's bit 6) must be fenced off like a stale report.
      return wt::EndLease(
          job, s.now, (arg & 0x40) != 0 ? job.attempt - 1 : job.attempt, end);
    }
    case 3:
      return wt::PromoteScheduled(job, s.now);
    case 4:
      return wt::AttemptTimeout(job, s.now, job.attempt, (arg % 16) / 16.0);
    default:
      s.now += absl::Seconds(arg);
      return JobChange{job, {}};
  }
}

void CheckJob(const Job& j) {
  FUZZ_CHECK(IsTerminal(j.state) == (j.finish_time != absl::InfinitePast()),
             absl::StrCat("finish_time vs state ", JobStateName(j.state)));
  if (j.state != JobState::kRunning) {
    FUZZ_CHECK(
        j.worker_id.empty() && j.stop_request == StopRequest::kNone,
        absl::StrCat("a lease outside RUNNING: ", JobStateName(j.state)));
  }
  if (j.state == JobState::kSucceeded) {
    FUZZ_CHECK(j.result.has_value(), "SUCCEEDED without a result");
  }
}

// Applies `step` to the session's job and checks the oracle.
void Apply(Session& s, const absl::StatusOr<JobChange>& step, bool report) {
  const Job before = s.job;
  if (!step.ok()) {
    const absl::StatusCode code = step.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kAborted ||
                   code == absl::StatusCode::kFailedPrecondition ||
                   code == absl::StatusCode::kInvalidArgument,
               step.status().ToString());
    FUZZ_CHECK(fuzz::IsValidUtf8(step.status().message()),
               step.status().ToString());
    return;  // nothing is written
  }
  const JobChange& c = *step;
  const bool changed = c.job.state != before.state || !c.events.empty();
  if (report && changed) {
    FUZZ_CHECK(before.state == JobState::kRunning &&
                   s.report_attempt == before.attempt,
               absl::StrCat("a report of attempt ", s.report_attempt,
                            " changed a ", JobStateName(before.state),
                            " job at attempt ", before.attempt));
  }
  if (IsTerminal(before.state)) {
    FUZZ_CHECK(!changed, "a finished job changed");
  }
  int state_events = 0;
  for (const JobEvent& e : c.events) {
    if (e.type != EventType::kStateChanged) continue;
    ++state_events;
    FUZZ_CHECK(e.from == before.state && e.to == c.job.state,
               "state event does not match the change");
  }
  FUZZ_CHECK(state_events == (c.job.state != before.state ? 1 : 0),
             absl::StrCat("state changed with ", state_events, " events"));
  FUZZ_CHECK(c.job.attempt >= before.attempt, "attempt went down");
  CheckJob(c.job);
  s.job = c.job;
}

}  // namespace
}  // namespace jobwire

// LLVMFuzzerInitialize: tests/fuzz/quiet_protobuf.cc.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace jobwire;
  fuzz::FuzzInput in(data, size);
  Session s;
  s.job = InitialJob(in);
  CheckJob(s.job);
  for (int steps = 0; steps < 64 && !in.empty() && !s.ended; ++steps) {
    const uint8_t what = in.Byte();
    if (what < 0x80) {
      Apply(s, ServerStep(s, what, in.Byte()), false);
      continue;
    }
    v1::ConnectRequest req;
    if (!req.ParseFromString(in.String(200))) continue;  // gRPC drops it
    if (req.kind_case() == v1::ConnectRequest::kHello) {
      // A second hello ends the stream; the first opens the session.
      if (s.hello) s.ended = true;
      s.hello = true;
      continue;
    }
    if (!s.hello) {
      s.ended = true;  // "the first message must be hello"
      continue;
    }
    Apply(s, WorkerStep(s, req, (what % 16) / 16.0), IsReport(req));
  }
  return 0;
}
