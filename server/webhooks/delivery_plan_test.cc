#include "server/webhooks/delivery_plan.h"

#include "gtest/gtest.h"
#include "server/common/clock.h"

namespace jobwire::test {
namespace {

WebhookOutboxRow RowAfter(int attempts) {
  WebhookOutboxRow row;
  row.id = 7;
  row.job_id = "job";
  row.attempts = attempts;
  return row;
}

WebhookAttemptOutcome Status(int code) {
  WebhookAttemptOutcome o;
  o.http_status = code;
  return o;
}

TEST(DeliveryPlanTest, TwoHundredsAreDelivered) {
  FakeClock clock;
  WebhookAttempt a = PlanNextAttempt(RowAfter(2), Status(204), {}, clock.Now(),
                                     clock.Now(), 0.5);
  EXPECT_TRUE(a.delivered);
  EXPECT_EQ(a.attempt, 3);
  EXPECT_EQ(a.next_state, WebhookDeliveryState::kDelivered);
  EXPECT_TRUE(a.error.empty());
}

TEST(DeliveryPlanTest, FailuresBackOffExponentiallyWithJitter) {
  FakeClock clock;
  WebhookRetrySchedule s;
  s.backoff = RetryPolicy{absl::Seconds(1), absl::Seconds(30), 2.0, 0.2};
  s.max_attempts = 10;
  const absl::Time now = clock.Now();
  // The centre of the jitter band: 1s, 2s, 4s, 8s, 16s, then the cap.
  absl::Duration expected = absl::Seconds(1);
  for (int done = 0; done < 6; ++done) {
    WebhookAttempt a =
        PlanNextAttempt(RowAfter(done), Status(500), s, now, now, 0.5);
    EXPECT_EQ(a.next_state, WebhookDeliveryState::kPending);
    EXPECT_EQ(a.error, "HTTP 500");
    EXPECT_EQ(a.next_attempt_time - now, std::min(expected, absl::Seconds(30)))
        << "after attempt " << done + 1;
    expected *= 2;
  }
  // The edges of the band: ±20%.
  EXPECT_EQ(PlanNextAttempt(RowAfter(2), Status(500), s, now, now, 0.0)
                    .next_attempt_time -
                now,
            absl::Seconds(4) * 0.8);
  const absl::Duration high =
      PlanNextAttempt(RowAfter(2), Status(500), s, now, now, 0.999999)
          .next_attempt_time -
      now;
  EXPECT_GT(high, absl::Seconds(4) * 1.19);
  EXPECT_LE(high, absl::Seconds(4) * 1.2);
}

TEST(DeliveryPlanTest, LastAttemptMakesItDead) {
  FakeClock clock;
  WebhookRetrySchedule s;
  s.max_attempts = 3;
  WebhookAttemptOutcome refused;
  refused.error = "refused: 127.0.0.1 is loopback";
  WebhookAttempt a =
      PlanNextAttempt(RowAfter(2), refused, s, clock.Now(), clock.Now(), 0.5);
  EXPECT_EQ(a.attempt, 3);
  EXPECT_EQ(a.next_state, WebhookDeliveryState::kDead);
  EXPECT_EQ(a.error, refused.error);
  EXPECT_EQ(a.http_status, 0);
}

TEST(DeliveryPlanTest, RetryAfterIsHonouredOn429And503Only) {
  FakeClock clock;
  WebhookRetrySchedule s;
  s.backoff = RetryPolicy{absl::Seconds(1), absl::Seconds(30), 2.0, 0.0};
  s.max_retry_after = absl::Minutes(10);
  const absl::Time now = clock.Now();
  WebhookAttemptOutcome o = Status(429);
  o.retry_after = absl::Seconds(120);
  EXPECT_EQ(PlanNextAttempt(RowAfter(0), o, s, now, now, 0.5).next_attempt_time,
            now + absl::Seconds(120));
  o.http_status = 503;
  o.retry_after = absl::Hours(5);  // capped
  EXPECT_EQ(PlanNextAttempt(RowAfter(0), o, s, now, now, 0.5).next_attempt_time,
            now + absl::Minutes(10));
  o.http_status = 500;  // not a throttle: backoff
  EXPECT_EQ(PlanNextAttempt(RowAfter(0), o, s, now, now, 0.5).next_attempt_time,
            now + absl::Seconds(1));
}

}  // namespace
}  // namespace jobwire::test
