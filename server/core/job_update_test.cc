#include "server/core/job_update.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace jobwire::test {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

Job JobIn(JobState state, int32_t attempt = 0) {
  Job job;
  job.id = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
  job.kind = "k";
  job.state = state;
  job.attempt = attempt;
  job.version = 4;
  job.labels = {{"team", "a"}, {"tier", "1"}};
  return job;
}

JobPatch Patch(const std::vector<std::string>& paths, Job values) {
  absl::StatusOr<std::vector<UpdatePath>> parsed =
      ParseUpdateMask(paths, "update_mask");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return JobPatch{parsed.ok() ? *parsed : std::vector<UpdatePath>{},
                  std::move(values)};
}

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> fields;
  for (const FieldViolation& v : GetFieldViolations(status)) {
    fields.push_back(v.field);
  }
  return fields;
}

TEST(ParseUpdateMaskTest, AcceptsTheUpdatableFieldsAndLabelKeysOnce) {
  absl::StatusOr<std::vector<UpdatePath>> paths =
      ParseUpdateMask({"priority", "queue", "labels.team", "schedule_time",
                       "max_attempts", "retry_policy", "attempt_timeout",
                       "args", "payload", "priority", "labels"},
                      "update_mask");
  ASSERT_TRUE(paths.ok()) << paths.status();
  ASSERT_EQ(paths->size(), 10u);  // "priority" counts once
  EXPECT_EQ((*paths)[2].field, UpdateField::kLabel);
  EXPECT_EQ((*paths)[2].label_key, "team");
  EXPECT_EQ((*paths)[9].field, UpdateField::kLabels);
}

TEST(ParseUpdateMaskTest, NamesEveryBadPathWithItsIndex) {
  absl::StatusOr<std::vector<UpdatePath>> paths =
      ParseUpdateMask({"priority", "state", "colour", "retry_policy.jitter",
                       "labels.Bad Key", "*"},
                      "update_mask");
  ASSERT_EQ(paths.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Fields(paths.status()),
      (std::vector<std::string>{"update_mask.paths[1]", "update_mask.paths[2]",
                                "update_mask.paths[3]", "update_mask.paths[4]",
                                "update_mask.paths[5]"}));
  const std::string message(paths.status().message());
  EXPECT_NE(message.find("'state' is not updatable"), std::string::npos)
      << message;
  EXPECT_NE(message.find("'colour' is not a field"), std::string::npos);
  EXPECT_NE(message.find("write 'retry_policy' whole"), std::string::npos);
}

TEST(ParseUpdateMaskTest, AnEmptyMaskIsRequired) {
  absl::StatusOr<std::vector<UpdatePath>> paths =
      ParseUpdateMask({}, "update_mask");
  ASSERT_EQ(paths.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(paths.status()), std::vector<std::string>{"update_mask"});
}

TEST(ValidatePatchTest, ChecksOnlyTheMaskedFieldsByTheNewJobRules) {
  Job values;
  values.priority = 5000000;     // out of range
  values.queue = "Not A Queue";  // bad, but not masked
  values.max_attempts = 5;
  absl::Status status =
      ValidatePatch(Patch({"priority", "max_attempts"}, values), "job");
  EXPECT_EQ(Fields(status), std::vector<std::string>{"job.priority"});
  EXPECT_EQ(Fields(ValidatePatch(Patch({"queue"}, values), "patch")),
            std::vector<std::string>{"patch.queue"});
  EXPECT_TRUE(ValidatePatch(Patch({"max_attempts"}, values), "job").ok());
}

TEST(UpdateMutationTest, WritesOnlyChangedFieldsInOneUpdatedEvent) {
  Job values;
  values.priority = 7;
  values.labels = {{"team", "b"}};
  absl::StatusOr<JobChange> change =
      UpdateMutation(Patch({"priority", "labels.team", "labels.tier"}, values),
                     "v4")(JobIn(JobState::kQueued), kNow);
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_EQ(change->job.priority, 7);
  // labels.tier is absent from the values: removed.
  EXPECT_EQ(change->job.labels,
            (std::map<std::string, std::string>{{"team", "b"}}));
  EXPECT_EQ(change->job.state, JobState::kQueued);
  ASSERT_EQ(change->events.size(), 1u);
  EXPECT_EQ(change->events[0].type, EventType::kUpdated);
  EXPECT_EQ(
      change->events[0].paths,
      (std::vector<std::string>{"priority", "labels.team", "labels.tier"}));
  EXPECT_EQ(change->events[0].from_queue, "");  // the queue did not move
}

TEST(UpdateMutationTest, AQueueMoveNamesTheQueueLeft) {
  Job job = JobIn(JobState::kQueued);
  job.queue = "emails";
  Job values;
  values.queue = "bulk";
  absl::StatusOr<JobChange> change =
      UpdateMutation(Patch({"queue"}, values), "")(job, kNow);
  ASSERT_TRUE(change.ok()) << change.status();
  ASSERT_EQ(change->events.size(), 1u);
  EXPECT_EQ(change->events[0].from_queue, "emails");
  EXPECT_EQ(change->job.queue, "bulk");
}

TEST(UpdateMutationTest, AnUpdateThatChangesNothingRecordsNothing) {
  Job values = JobIn(JobState::kQueued);
  absl::StatusOr<JobChange> change = UpdateMutation(
      Patch({"priority", "labels", "queue"}, values), "")(values, kNow);
  ASSERT_TRUE(change.ok()) << change.status();
  EXPECT_TRUE(change->events.empty());
  EXPECT_EQ(change->job.version, 4);
}

TEST(UpdateMutationTest, AStaleEtagIsAborted) {
  Job values;
  values.priority = 1;
  absl::StatusOr<JobChange> change = UpdateMutation(
      Patch({"priority"}, values), "v3")(JobIn(JobState::kQueued), kNow);
  EXPECT_EQ(change.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(change.status().message().find("has etag v4, not v3"),
            absl::string_view::npos)
      << change.status();
}

TEST(UpdateMutationTest, TerminalJobsAreFailedPrecondition) {
  Job values;
  values.priority = 1;
  for (JobState state :
       {JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    absl::StatusOr<JobChange> change =
        UpdateMutation(Patch({"priority"}, values), "")(JobIn(state), kNow);
    ASSERT_EQ(change.status().code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_EQ(GetPreconditionViolations(change.status()).size(), 1u);
    EXPECT_EQ(GetPreconditionViolations(change.status())[0].type, "STATE");
  }
}

TEST(UpdateMutationTest, ArgsAndPayloadAreFixedOnceStarted) {
  Job values;
  values.args_json = R"({"n":2})";
  values.payload = "p";
  JobMutation m = UpdateMutation(Patch({"args", "payload"}, values), "");
  ASSERT_TRUE(m(JobIn(JobState::kQueued), kNow).ok());
  ASSERT_TRUE(m(JobIn(JobState::kPaused), kNow).ok());
  for (const Job& started :
       {JobIn(JobState::kRunning, 1), JobIn(JobState::kQueued, 1)}) {
    absl::StatusOr<JobChange> change = m(started, kNow);
    ASSERT_EQ(change.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(GetPreconditionViolations(change.status())[0].type, "STARTED");
  }
  // Other fields of a running job may change.
  Job priority;
  priority.priority = 3;
  EXPECT_TRUE(UpdateMutation(Patch({"priority"}, priority), "")(
                  JobIn(JobState::kRunning, 1), kNow)
                  .ok());
}

TEST(UpdateMutationTest, MaxAttemptsMustLeaveRoomForTheAttemptUnderWay) {
  Job values;
  values.max_attempts = 2;
  JobMutation m = UpdateMutation(Patch({"max_attempts"}, values), "");
  EXPECT_TRUE(m(JobIn(JobState::kRunning, 2), kNow).ok());
  EXPECT_TRUE(m(JobIn(JobState::kQueued, 1), kNow).ok());
  absl::StatusOr<JobChange> change = m(JobIn(JobState::kQueued, 2), kNow);
  ASSERT_EQ(change.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(GetPreconditionViolations(change.status())[0].type, "ATTEMPTS");
}

TEST(UpdateMutationTest, MovingScheduleTimeAcrossNowChangesState) {
  Job later;
  later.schedule_time = kNow + absl::Minutes(5);
  absl::StatusOr<JobChange> scheduled = UpdateMutation(
      Patch({"schedule_time"}, later), "")(JobIn(JobState::kQueued), kNow);
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  EXPECT_EQ(scheduled->job.state, JobState::kScheduled);
  ASSERT_EQ(scheduled->events.size(), 2u);
  EXPECT_EQ(scheduled->events[0].type, EventType::kUpdated);
  EXPECT_EQ(scheduled->events[1].from, JobState::kQueued);
  EXPECT_EQ(scheduled->events[1].to, JobState::kScheduled);
  EXPECT_EQ(scheduled->events[1].reason, "rescheduled");

  // Cleared: due now.
  Job now;
  absl::StatusOr<JobChange> queued =
      UpdateMutation(Patch({"schedule_time"}, now), "")(scheduled->job, kNow);
  ASSERT_TRUE(queued.ok()) << queued.status();
  EXPECT_EQ(queued->job.state, JobState::kQueued);
  EXPECT_EQ(queued->events.back().to, JobState::kQueued);

  // A paused job stays paused; ResumeJob looks at its schedule.
  absl::StatusOr<JobChange> paused = UpdateMutation(
      Patch({"schedule_time"}, later), "")(JobIn(JobState::kPaused), kNow);
  ASSERT_TRUE(paused.ok());
  EXPECT_EQ(paused->job.state, JobState::kPaused);
  EXPECT_EQ(paused->events.size(), 1u);
}

TEST(UpdateMutationTest, UnsetValuesClearToTheDefaults) {
  Job job = JobIn(JobState::kQueued);
  job.queue = "emails";
  job.max_attempts = 9;
  job.attempt_timeout = absl::Seconds(30);
  job.retry_policy = RetryPolicy();
  absl::StatusOr<JobChange> change =
      UpdateMutation(Patch({"queue", "max_attempts", "attempt_timeout",
                            "retry_policy", "labels"},
                           Job{}),
                     "")(job, kNow);
  ASSERT_TRUE(change.ok()) << change.status();
  // Job{} holds the defaults already; an empty queue means "default" too.
  EXPECT_EQ(change->job.queue, "default");
  EXPECT_EQ(change->job.max_attempts, kDefaultMaxAttempts);
  EXPECT_EQ(change->job.attempt_timeout, absl::ZeroDuration());
  EXPECT_FALSE(change->job.retry_policy.has_value());
  EXPECT_TRUE(change->job.labels.empty());
}

TEST(UpdateMutationTest, LabelKeysMayNotGrowPastTheLimit) {
  Job job = JobIn(JobState::kQueued);
  job.labels.clear();
  for (int i = 0; i < 64; ++i) job.labels[absl::StrCat("k", i)] = "v";
  Job values;
  values.labels = {{"one-more", "v"}};
  absl::StatusOr<JobChange> change =
      UpdateMutation(Patch({"labels.one-more"}, values), "")(job, kNow);
  ASSERT_EQ(change.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Fields(change.status()), std::vector<std::string>{"job.labels"});
}

}  // namespace
}  // namespace jobwire::test
