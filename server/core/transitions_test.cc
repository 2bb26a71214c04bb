#include "server/core/transitions.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace jobwire::test {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

Job JobIn(JobState state) {
  Job job;
  job.id = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
  job.kind = "k";
  job.state = state;
  job.attempt = 1;
  return job;
}

TEST(CancelMutationTest, CancelsQueuedScheduledAndPausedJobsAtOnce) {
  for (JobState state :
       {JobState::kQueued, JobState::kScheduled, JobState::kPaused}) {
    absl::StatusOr<JobChange> change =
        CancelMutation("user asked")(JobIn(state), kNow);
    ASSERT_TRUE(change.ok()) << change.status();
    EXPECT_EQ(change->job.state, JobState::kCancelled);
    EXPECT_EQ(change->job.finish_time, kNow);
    ASSERT_TRUE(change->job.error.has_value());
    EXPECT_EQ(change->job.error->code, 1);
    EXPECT_EQ(change->job.error->message, "user asked");
    ASSERT_EQ(change->events.size(), 1u);
    EXPECT_EQ(change->events[0].type, EventType::kStateChanged);
    EXPECT_EQ(change->events[0].from, state);
    EXPECT_EQ(change->events[0].to, JobState::kCancelled);
  }
}

TEST(CancelMutationTest, RefusesTerminalAndRunningJobsWithPreconditionFailure) {
  for (JobState state : {JobState::kSucceeded, JobState::kFailed,
                         JobState::kCancelled, JobState::kRunning}) {
    absl::StatusOr<JobChange> change = CancelMutation("")(JobIn(state), kNow);
    ASSERT_EQ(change.status().code(), absl::StatusCode::kFailedPrecondition);
    std::vector<PreconditionViolation> v =
        GetPreconditionViolations(change.status());
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(RefusedBecauseRunning(change.status()),
              state == JobState::kRunning);
    EXPECT_TRUE(RefusedForState(change.status()));
    if (state != JobState::kRunning) {  // the service cancels those too
      EXPECT_NE(change.status().message().find(
                    "allowed: QUEUED, SCHEDULED, PAUSED, RUNNING"),
                absl::string_view::npos)
          << change.status();
    }
  }
}

TEST(RefusedForStateTest, OnlyStateRefusalsCount) {
  EXPECT_TRUE(RefusedForState(
      ResumeMutation()(JobIn(JobState::kQueued), kNow).status()));
  EXPECT_TRUE(RefusedForState(
      RetryMutation(1)(JobIn(JobState::kRunning), kNow).status()));
  EXPECT_FALSE(RefusedForState(absl::OkStatus()));
  EXPECT_FALSE(RefusedForState(absl::FailedPreconditionError("no details")));
  EXPECT_FALSE(RefusedForState(FailedPreconditionError(
      "started", PreconditionViolation{"STARTED", "jobs/x", "started"})));
}

TEST(PauseResumeMutationTest, PausedJobResumesToQueuedOrScheduled) {
  absl::StatusOr<JobChange> paused =
      PauseMutation()(JobIn(JobState::kQueued), kNow);
  ASSERT_TRUE(paused.ok());
  EXPECT_EQ(paused->job.state, JobState::kPaused);

  absl::StatusOr<JobChange> resumed = ResumeMutation()(paused->job, kNow);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->job.state, JobState::kQueued);

  Job later = paused->job;
  later.schedule_time = kNow + absl::Minutes(1);
  resumed = ResumeMutation()(later, kNow);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->job.state, JobState::kScheduled);
  EXPECT_EQ(resumed->events[0].from, JobState::kPaused);
}

TEST(PauseResumeMutationTest, RefusesWrongStates) {
  EXPECT_EQ(PauseMutation()(JobIn(JobState::kRunning), kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const absl::Status paused =
      PauseMutation()(JobIn(JobState::kPaused), kNow).status();
  EXPECT_EQ(paused.code(), absl::StatusCode::kFailedPrecondition);
  // The service pauses RUNNING jobs too (through the dispatcher).
  EXPECT_NE(paused.message().find("allowed: QUEUED, SCHEDULED, RUNNING"),
            absl::string_view::npos)
      << paused;
  EXPECT_EQ(ResumeMutation()(JobIn(JobState::kQueued), kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RetryMutationTest, RequeuesFailedJobAndExtendsAttempts) {
  Job failed = JobIn(JobState::kFailed);
  failed.attempt = 3;
  failed.max_attempts = 3;
  failed.error = JobError{13, "boom", "", false};
  failed.finish_time = kNow;
  absl::StatusOr<JobChange> change = RetryMutation(2)(failed, kNow);
  ASSERT_TRUE(change.ok());
  EXPECT_EQ(change->job.state, JobState::kQueued);
  EXPECT_EQ(change->job.max_attempts, 5);
  EXPECT_FALSE(change->job.error.has_value());
  EXPECT_EQ(change->job.finish_time, absl::InfinitePast());
}

TEST(RetryMutationTest, NeverShrinksTheBudgetAndRefusesLiveJobs) {
  Job cancelled = JobIn(JobState::kCancelled);
  cancelled.attempt = 0;
  cancelled.max_attempts = 3;
  EXPECT_EQ(RetryMutation(0)(cancelled, kNow)->job.max_attempts, 3);
  EXPECT_EQ(RetryMutation(1)(JobIn(JobState::kQueued), kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The store's indexes rely on it (storage/migrations.cc, migration 3).
TEST(TransitionsTest, FinishTimeIsSetExactlyOnTerminalStates) {
  for (JobState state :
       {JobState::kQueued, JobState::kScheduled, JobState::kRunning,
        JobState::kPaused, JobState::kSucceeded, JobState::kFailed,
        JobState::kCancelled}) {
    Job job = JobIn(state);
    if (IsTerminal(state)) job.finish_time = kNow - absl::Hours(1);
    job.schedule_time = kNow + absl::Hours(1);
    for (const JobMutation& m : {CancelMutation("x"), PauseMutation(),
                                 ResumeMutation(), RetryMutation(1)}) {
      absl::StatusOr<JobChange> change = m(job, kNow);
      if (!change.ok()) continue;
      SCOPED_TRACE(JobStateName(state));
      EXPECT_EQ(IsTerminal(change->job.state),
                change->job.finish_time != absl::InfinitePast())
          << JobStateName(change->job.state);
    }
  }
}

}  // namespace
}  // namespace jobwire::test
