#include "server/core/retry.h"

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

RetryPolicy Policy() {
  RetryPolicy p;
  p.initial_backoff = absl::Seconds(1);
  p.max_backoff = absl::Seconds(10);
  p.multiplier = 2.0;
  p.jitter = 0.2;
  return p;
}

TEST(RetryTest, DelayGrowsExponentiallyAtTheCentreOfTheJitterBand) {
  EXPECT_EQ(BackoffDelay(Policy(), 1, 0.5), absl::Seconds(1));
  EXPECT_EQ(BackoffDelay(Policy(), 2, 0.5), absl::Seconds(2));
  EXPECT_EQ(BackoffDelay(Policy(), 3, 0.5), absl::Seconds(4));
}

TEST(RetryTest, DelayIsCappedByMaxBackoff) {
  EXPECT_EQ(BackoffDelay(Policy(), 5, 0.5), absl::Seconds(10));
  EXPECT_EQ(BackoffDelay(Policy(), 1000, 0.5), absl::Seconds(10));
}

TEST(RetryTest, JitterSpreadsTheDelayBothWays) {
  EXPECT_EQ(BackoffDelay(Policy(), 2, 0.0), absl::Seconds(1.6));
  EXPECT_EQ(BackoffDelay(Policy(), 2, 1.0), absl::Seconds(2.4));
}

TEST(RetryTest, RandomSourceFeedsTheJitter) {
  FixedRandomSource random(0.0);
  EXPECT_EQ(BackoffDelay(Policy(), 1, random.Uniform()), absl::Seconds(0.8));
  SystemRandomSource system;
  for (int i = 0; i < 100; ++i) {
    absl::Duration d = BackoffDelay(Policy(), 1, system.Uniform());
    EXPECT_GE(d, absl::Seconds(0.8));
    EXPECT_LE(d, absl::Seconds(1.2));
  }
}

TEST(RetryTest, JobWithoutPolicyUsesTheDefault) {
  Job job;
  EXPECT_EQ(EffectivePolicy(job).initial_backoff, absl::Seconds(1));
  job.retry_policy = Policy();
  EXPECT_EQ(EffectivePolicy(job).max_backoff, absl::Seconds(10));
}

TEST(RetryTest, AttemptsLeftUntilMaxAttempts) {
  Job job;
  job.max_attempts = 2;
  job.attempt = 1;
  EXPECT_TRUE(HasAttemptsLeft(job));
  job.attempt = 2;
  EXPECT_FALSE(HasAttemptsLeft(job));
  job.max_attempts = 0;  // server default, 3
  EXPECT_TRUE(HasAttemptsLeft(job));
}

}  // namespace
}  // namespace jobwire::test
