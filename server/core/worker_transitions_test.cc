#include "server/core/worker_transitions.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

namespace wt = worker_transitions;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

Job Queued() {
  Job job;
  job.id = "01JOB";
  job.kind = "k";
  job.state = JobState::kQueued;
  job.max_attempts = 3;
  return job;
}

Job Running(int32_t attempt = 1) {
  Job job = Queued();
  job.state = JobState::kRunning;
  job.attempt = attempt;
  job.worker_id = "w1";
  job.lease_expire_time = kNow + absl::Seconds(30);
  return job;
}

TEST(WorkerTransitionsTest, AssignStartsTheNextAttemptUnderALease) {
  auto c = wt::Assign(Queued(), kNow, "w1", absl::Seconds(30));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->job.state, JobState::kRunning);
  EXPECT_EQ(c->job.attempt, 1);
  EXPECT_EQ(c->job.worker_id, "w1");
  EXPECT_EQ(c->job.lease_expire_time, kNow + absl::Seconds(30));
  ASSERT_EQ(c->events.size(), 1u);
  EXPECT_EQ(c->events[0].from, JobState::kQueued);
  EXPECT_EQ(c->events[0].to, JobState::kRunning);
  EXPECT_EQ(c->events[0].attempt, 1);
}

TEST(WorkerTransitionsTest, AssignRefusesACancelledOrNotYetDueJob) {
  Job cancelled = Queued();
  cancelled.state = JobState::kCancelled;
  EXPECT_EQ(
      wt::Assign(cancelled, kNow, "w1", absl::Seconds(30)).status().code(),
      absl::StatusCode::kFailedPrecondition);
  Job later = Queued();
  later.schedule_time = kNow + absl::Seconds(1);
  EXPECT_EQ(wt::Assign(later, kNow, "w1", absl::Seconds(30)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerTransitionsTest, CompleteOfTheLeasedAttemptSucceeds) {
  JobResult result;
  result.data_json = R"({"ok":true})";
  auto c = wt::Complete(Running(2), kNow, 2, result);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kSucceeded);
  EXPECT_EQ(c->job.result->data_json, result.data_json);
  EXPECT_EQ(c->job.finish_time, kNow);
  EXPECT_TRUE(c->job.worker_id.empty());
  ASSERT_EQ(c->events.size(), 1u);
  ASSERT_TRUE(c->events[0].result.has_value());
}

TEST(WorkerTransitionsTest, StaleAttemptIsAbortedAndChangesNothing) {
  EXPECT_EQ(wt::Complete(Running(2), kNow, 1, {}).status().code(),
            absl::StatusCode::kAborted);
  Job done = Running(1);
  done.state = JobState::kSucceeded;
  EXPECT_EQ(wt::Complete(done, kNow, 1, {}).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(wt::ReportProgress(done, kNow, 1, {}, "").status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(wt::ExpireLease(done, kNow, 1, false).status().code(),
            absl::StatusCode::kAborted);
}

TEST(WorkerTransitionsTest, RetryableFailureWaitsForBackoff) {
  JobError error;
  error.message = "boom";
  error.retryable = true;
  auto c = wt::Fail(Running(1), kNow, 1, error, 0.5);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kScheduled);
  EXPECT_EQ(c->job.backoff_until, kNow + absl::Seconds(1));
  EXPECT_EQ(c->job.error->message, "boom");
  ASSERT_TRUE(c->events[0].error.has_value());
}

TEST(WorkerTransitionsTest, RetryReasonGivesTheBackoffInWholeMilliseconds) {
  JobError error;
  error.retryable = true;
  auto c = wt::Fail(Running(1), kNow, 1, error, 0.7317);
  ASSERT_TRUE(c.ok());
  const absl::Duration backoff = c->job.backoff_until - kNow;
  ASSERT_NE(backoff, absl::Trunc(backoff, absl::Milliseconds(1)));  // jittered
  EXPECT_THAT(c->events[0].reason,
              ::testing::EndsWith(absl::StrCat(
                  "; retry in ", absl::FormatDuration(absl::Trunc(
                                     backoff, absl::Milliseconds(1))))));
}

TEST(WorkerTransitionsTest, LastAttemptFailureEndsFailedWithTheError) {
  JobError error;
  error.message = "third time";
  error.retryable = true;
  auto c = wt::Fail(Running(3), kNow, 3, error, 0.5);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kFailed);
  EXPECT_EQ(c->job.error->message, "third time");
  EXPECT_EQ(c->job.finish_time, kNow);
}

TEST(WorkerTransitionsTest, UnretryableFailureEndsFailedAtOnce) {
  JobError error;
  error.message = "bad input";
  auto c = wt::Fail(Running(1), kNow, 1, error, 0.5);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kFailed);
}

TEST(WorkerTransitionsTest, DisconnectRequeuesAtOnceWhileAttemptsRemain) {
  auto c = wt::ReleaseLease(Running(1), kNow, 1, false);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kQueued);
  EXPECT_EQ(c->events[0].reason, "worker disconnected");
  EXPECT_TRUE(c->job.worker_id.empty());
  auto last = wt::ExpireLease(Running(3), kNow, 3, false);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->job.state, JobState::kFailed);
  EXPECT_EQ(last->job.error->message, "lease expired");
}

TEST(WorkerTransitionsTest, LeaseEndAfterCancelRequestCancels) {
  auto c = wt::ExpireLease(Running(1), kNow, 1, true);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kCancelled);
}

TEST(WorkerTransitionsTest, ShutdownReleaseRequeuesEvenOnTheLastAttempt) {
  wt::LeaseEnd end;
  end.cause = wt::LeaseEndCause::kShutdown;
  auto c = wt::EndLease(Running(3), kNow, 3, end);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kQueued);
  EXPECT_EQ(c->events[0].reason, "server shutting down");
}

TEST(WorkerTransitionsTest, RestartRequeuesARunningJob) {
  wt::LeaseEnd end;
  end.cause = wt::LeaseEndCause::kRestarted;
  auto c = wt::EndLease(Running(2), kNow, 2, end);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kQueued);
  EXPECT_EQ(c->events[0].reason, "server restarted");
}

TEST(WorkerTransitionsTest, AttemptTimeoutRetriesWithBackoff) {
  auto c = wt::AttemptTimeout(Running(1), kNow, 1, 0.5);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kScheduled);
  EXPECT_EQ(c->job.error->code, 4);
}

TEST(WorkerTransitionsTest, AcksStopTheJob) {
  auto cancel = wt::AckCancel(Running(1), kNow, 1, "cancelled by user");
  ASSERT_TRUE(cancel.ok());
  EXPECT_EQ(cancel->job.state, JobState::kCancelled);
  auto pause = wt::AckPause(Running(1), kNow, 1);
  ASSERT_TRUE(pause.ok());
  EXPECT_EQ(pause->job.state, JobState::kPaused);
}

TEST(WorkerTransitionsTest, CheckpointWithReleasePausesAndKeepsTheData) {
  auto keep = wt::Checkpoint(Running(1), kNow, 1, "state-1", false);
  ASSERT_TRUE(keep.ok());
  EXPECT_EQ(keep->job.state, JobState::kRunning);
  EXPECT_TRUE(keep->events.empty());
  auto release = wt::Checkpoint(Running(1), kNow, 1, "state-2", true);
  ASSERT_TRUE(release.ok());
  EXPECT_EQ(release->job.state, JobState::kPaused);
  EXPECT_EQ(release->job.checkpoint, "state-2");
}

TEST(WorkerTransitionsTest, ProgressIsRecordedWithAnOptionalLogLine) {
  Progress p;
  p.done = 3;
  p.total = 10;
  auto c = wt::ReportProgress(Running(1), kNow, 1, p, "resizing");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.progress->done, 3);
  ASSERT_EQ(c->events.size(), 2u);
  EXPECT_EQ(c->events[0].type, EventType::kProgress);
  EXPECT_EQ(c->events[1].type, EventType::kLog);
}

TEST(WorkerTransitionsTest, ALogLineWithUnchangedProgressIsOnlyALogEvent) {
  Job job = Running(1);
  auto first = wt::ReportProgress(job, kNow, 1, Progress{}, "starting");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->events.size(), 1u);
  EXPECT_EQ(first->events[0].type, EventType::kLog);
  EXPECT_FALSE(first->job.progress.has_value());
  Progress p;
  p.done = 3;
  p.total = 10;
  job.progress = p;
  auto again = wt::ReportProgress(job, kNow, 1, p, "still at 3");
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->events.size(), 1u);
  EXPECT_EQ(again->events[0].type, EventType::kLog);
}

TEST(WorkerTransitionsTest, PromoteScheduledWhenDue) {
  Job job = Queued();
  job.state = JobState::kScheduled;
  job.backoff_until = kNow + absl::Seconds(5);
  EXPECT_FALSE(wt::PromoteScheduled(job, kNow).ok());
  auto c = wt::PromoteScheduled(job, kNow + absl::Seconds(5));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.state, JobState::kQueued);
  EXPECT_EQ(c->events[0].reason, "backoff ended");
}

TEST(WorkerTransitionsTest, RequestStopNeedsARunningJob) {
  EXPECT_TRUE(
      wt::RequestStop(Running(1), kNow, StopRequest::kCancel, "stop").ok());
  EXPECT_EQ(wt::RequestStop(Queued(), kNow, StopRequest::kCancel, "stop")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(WorkerTransitionsTest, RequestStopRecordsTheRequestWithAnUpdatedEvent) {
  auto c = wt::RequestStop(Running(1), kNow, StopRequest::kCancel, "user");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->job.state, JobState::kRunning);
  EXPECT_EQ(c->job.stop_request, StopRequest::kCancel);
  EXPECT_EQ(c->job.stop_reason, "user");
  ASSERT_EQ(c->events.size(), 1u);
  EXPECT_EQ(c->events[0].type, EventType::kUpdated);
  ASSERT_EQ(c->events[0].paths.size(), 1u);
  EXPECT_EQ(c->events[0].paths[0], "cancel_requested");
}

TEST(WorkerTransitionsTest, CancelOverridesAPendingPauseButNotTheReverse) {
  Job paused = Running(1);
  paused.stop_request = StopRequest::kPause;
  auto c = wt::RequestStop(paused, kNow, StopRequest::kCancel, "user");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->job.stop_request, StopRequest::kCancel);

  Job cancelled = Running(1);
  cancelled.stop_request = StopRequest::kCancel;
  auto p = wt::RequestStop(cancelled, kNow, StopRequest::kPause, "");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->job.stop_request, StopRequest::kCancel);
  EXPECT_TRUE(p->events.empty());
}

TEST(WorkerTransitionsTest, RestartWithAStoredCancelEndsCancelled) {
  Job job = Running(1);
  job.stop_request = StopRequest::kCancel;
  job.stop_reason = "user";
  wt::LeaseEnd end;
  end.cause = wt::LeaseEndCause::kRestarted;
  auto c = wt::EndLease(job, kNow, 1, end);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->job.state, JobState::kCancelled);
  EXPECT_EQ(c->job.stop_request, StopRequest::kNone);
  ASSERT_TRUE(c->job.error.has_value());
  EXPECT_EQ(c->job.error->message, "user");
  EXPECT_EQ(c->events[0].reason, "user (server restarted)");
}

TEST(WorkerTransitionsTest, RestartWithAStoredPauseEndsPaused) {
  Job job = Running(1);
  job.stop_request = StopRequest::kPause;
  wt::LeaseEnd end;
  end.cause = wt::LeaseEndCause::kRestarted;
  auto c = wt::EndLease(job, kNow, 1, end);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->job.state, JobState::kPaused);
  EXPECT_EQ(c->job.stop_request, StopRequest::kNone);
  EXPECT_TRUE(c->job.worker_id.empty());
  EXPECT_EQ(c->events[0].reason, "paused (server restarted)");
}

// The store's indexes rely on it (storage/migrations.cc, migration 3).
TEST(WorkerTransitionsTest, FinishTimeIsSetExactlyOnTerminalStates) {
  Job last = Running(3);
  Job stop_cancel = Running();
  stop_cancel.stop_request = StopRequest::kCancel;
  Job stop_pause = Running();
  stop_pause.stop_request = StopRequest::kPause;
  Job scheduled = Queued();
  scheduled.state = JobState::kScheduled;
  const JobError retryable{14, "x", "", true};
  const JobError fatal{13, "x", "", false};
  std::vector<absl::StatusOr<JobChange>> changes = {
      wt::Assign(Queued(), kNow, "w1", absl::Seconds(30)),
      wt::ReportProgress(Running(), kNow, 1, Progress{}, "line"),
      wt::Complete(Running(), kNow, 1, JobResult{}),
      wt::Fail(Running(), kNow, 1, retryable, 0.5),
      wt::Fail(last, kNow, 3, retryable, 0.5),
      wt::Fail(Running(), kNow, 1, fatal, 0.5),
      wt::Checkpoint(Running(), kNow, 1, "data", false),
      wt::Checkpoint(Running(), kNow, 1, "data", true),
      wt::AckCancel(Running(), kNow, 1, "x"),
      wt::AckPause(Running(), kNow, 1),
      wt::ReleaseLease(Running(), kNow, 1, false),
      wt::ReleaseLease(Running(), kNow, 1, true),
      wt::ReleaseLease(stop_cancel, kNow, 1, false),
      wt::ReleaseLease(stop_pause, kNow, 1, false),
      wt::ExpireLease(last, kNow, 3, false),
      wt::AttemptTimeout(Running(), kNow, 1, 0.5),
      wt::AttemptTimeout(last, kNow, 3, 0.5),
      wt::EndLease(Running(), kNow, 1,
                   wt::LeaseEnd{wt::LeaseEndCause::kShutdown}),
      wt::EndLease(Running(), kNow, 1,
                   wt::LeaseEnd{wt::LeaseEndCause::kRestarted}),
      wt::PromoteScheduled(scheduled, kNow),
      wt::RequestStop(Running(), kNow, StopRequest::kCancel, "x"),
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(changes[i].ok()) << changes[i].status();
    EXPECT_EQ(IsTerminal(changes[i]->job.state),
              changes[i]->job.finish_time != absl::InfinitePast())
        << JobStateName(changes[i]->job.state);
  }
}

}  // namespace
}  // namespace jobwire::test
