#include "server/webhooks/delivery_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/core/retry.h"

namespace jobwire {

bool IsDelivered(const WebhookAttemptOutcome& outcome) {
  return outcome.http_status >= 200 && outcome.http_status < 300;
}

WebhookAttempt PlanNextAttempt(const WebhookOutboxRow& row,
                               const WebhookAttemptOutcome& outcome,
                               const WebhookRetrySchedule& schedule,
                               absl::Time attempt_time, absl::Time now,
                               double unit_random) {
  WebhookAttempt a;
  a.delivery_id = row.id;
  a.job_id = row.job_id;
  a.attempt = row.attempts + 1;
  a.http_status = outcome.http_status;
  a.attempt_time = attempt_time;
  a.delivered = IsDelivered(outcome);
  if (a.delivered) {
    a.next_state = WebhookDeliveryState::kDelivered;
    return a;
  }
  a.error = outcome.error.empty() ? absl::StrCat("HTTP ", outcome.http_status)
                                  : outcome.error;
  if (a.attempt >= schedule.max_attempts) {
    a.next_state = WebhookDeliveryState::kDead;
    return a;
  }
  a.next_state = WebhookDeliveryState::kPending;
  const bool throttled =
      outcome.http_status == 429 || outcome.http_status == 503;
  if (throttled && outcome.retry_after > absl::ZeroDuration()) {
    a.next_attempt_time =
        now + std::min(outcome.retry_after, schedule.max_retry_after);
  } else {
    a.next_attempt_time =
        now + BackoffDelay(schedule.backoff, a.attempt, unit_random);
  }
  return a;
}

}  // namespace jobwire
