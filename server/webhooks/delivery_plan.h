// What follows one webhook delivery attempt: delivered, retried later
// (exponential backoff with jitter, or the receiver's Retry-After), or dead.
//
// Pure functions over the injected time and random value, so the schedule is
// tested without sleeping. Thread-safe.
#ifndef JOBWIRE_SERVER_WEBHOOKS_DELIVERY_PLAN_H_
#define JOBWIRE_SERVER_WEBHOOKS_DELIVERY_PLAN_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "server/core/job.h"
#include "server/storage/job_store.h"

namespace jobwire {

struct WebhookRetrySchedule {
  // Attempts per delivery (first one included); then it is dead.
  int32_t max_attempts = 8;
  // delay(n) = min(initial * multiplier^(n-1), max) * (1 ± jitter), n the
  // attempt that just failed (core/retry.h BackoffDelay): 5s, 15s, 45s ...
  RetryPolicy backoff{absl::Seconds(5), absl::Hours(1), 3.0, 0.2};
  // Longest Retry-After honoured; a longer one waits this long.
  absl::Duration max_retry_after = absl::Hours(1);
};

// What one attempt got back.
struct WebhookAttemptOutcome {
  int32_t http_status = 0;  // 0: no response
  // Why it failed without a response (or, with one, a short excerpt);
  // empty when there is nothing to add to the status.
  std::string error;
  // The receiver's Retry-After on 429 or 503; zero when none.
  absl::Duration retry_after = absl::ZeroDuration();
};

// True for 2xx.
bool IsDelivered(const WebhookAttemptOutcome& outcome);

// The record of attempt row.attempts + 1 of `row`, made at `attempt_time`,
// answered at `now`: kDelivered on 2xx; kDead once max_attempts are used;
// else kPending at `now` + the Retry-After of a 429 or 503 (capped), or +
// the backoff delay (`unit_random` in [0, 1) picks the point in its jitter
// band). `error` is set for every failure ("HTTP 500" when the outcome
// has none).
WebhookAttempt PlanNextAttempt(const WebhookOutboxRow& row,
                               const WebhookAttemptOutcome& outcome,
                               const WebhookRetrySchedule& schedule,
                               absl::Time attempt_time, absl::Time now,
                               double unit_random);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_WEBHOOKS_DELIVERY_PLAN_H_
