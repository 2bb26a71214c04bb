#include "server/core/validation.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace jobwire::test {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;

Job ValidJob() {
  Job job;
  job.queue = "emails.high";
  job.kind = "send-email";
  job.labels = {{"tenant", "acme"}};
  return job;
}

std::vector<std::string> Fields(const absl::Status& status) {
  std::vector<std::string> out;
  for (const FieldViolation& v : GetFieldViolations(status))
    out.push_back(v.field);
  return out;
}

TEST(ValidateNewJobTest, AcceptsAValidJob) {
  EXPECT_TRUE(ValidateNewJob(ValidJob()).ok());
}

TEST(ValidateNewJobTest, EmptyQueueAndZeroMaxAttemptsMeanDefaults) {
  Job job = ValidJob();
  job.queue = "";
  job.max_attempts = 0;
  EXPECT_TRUE(ValidateNewJob(job).ok());
}

TEST(ValidateNewJobTest, ReportsOneViolationPerProblem) {
  Job job;
  job.queue = "Bad Queue";
  job.labels = {{"Bad", "x"}, {"ok", std::string(257, 'v')}};
  job.request_id = std::string(129, 'r');
  job.max_attempts = 1001;
  job.priority = 1000001;
  job.attempt_timeout = -absl::Seconds(1);
  absl::Status status = ValidateNewJob(job);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Fields(status),
              ElementsAre("job.queue", "job.kind", "job.labels[Bad]",
                          "job.labels[ok]", "request_id", "job.max_attempts",
                          "job.priority", "job.attempt_timeout"));
}

TEST(ValidateNewJobTest, RejectsOversizedPayloadAndArgs) {
  Job job = ValidJob();
  job.payload = std::string(kMaxPayloadBytes + 1, 'x');
  job.args_json = std::string(kMaxArgsJsonBytes + 1, 'x');
  EXPECT_THAT(Fields(ValidateNewJob(job)),
              ElementsAre("job.payload", "job.args"));
}

TEST(ValidateNewJobTest, RejectsTooManyLabels) {
  Job job = ValidJob();
  for (int i = 0; i < 65; ++i) job.labels["k" + std::to_string(i)] = "v";
  EXPECT_THAT(Fields(ValidateNewJob(job)), ElementsAre("job.labels"));
}

TEST(ValidateNewJobTest, RejectsInsaneRetryPolicy) {
  Job job = ValidJob();
  job.retry_policy =
      RetryPolicy{absl::ZeroDuration(), absl::Seconds(1), 0.5, 1.5};
  EXPECT_THAT(
      Fields(ValidateNewJob(job)),
      ElementsAre("job.retry_policy.initial_backoff",
                  "job.retry_policy.multiplier", "job.retry_policy.jitter"));
}

TEST(NameRulesTest, FollowTheDocumentedPatterns) {
  EXPECT_TRUE(IsValidQueueName("a"));
  EXPECT_TRUE(IsValidQueueName(std::string(128, 'a')));
  EXPECT_FALSE(IsValidQueueName(std::string(129, 'a')));
  EXPECT_FALSE(IsValidQueueName("-a"));
  EXPECT_FALSE(IsValidQueueName(""));
  EXPECT_TRUE(IsValidKind("Images/resize:v2"));
  EXPECT_FALSE(IsValidKind("/resize"));
  EXPECT_TRUE(IsValidLabelKey("team/owner"));
  EXPECT_FALSE(IsValidLabelKey(std::string(64, 'a')));
  EXPECT_FALSE(IsValidLabelKey("Tenant"));
}

}  // namespace
}  // namespace jobwire::test
