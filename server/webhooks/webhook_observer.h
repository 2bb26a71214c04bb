// WebhookObserver: told of every finished webhook delivery attempt, for
// metrics (server/metrics implements it; the app wires it in), so that
// webhooks/ depends on nothing above it.
//
// What became of an attempt, one of:
//   kDelivered        the receiver answered 2xx;
//   kFailedWillRetry  it failed (an error, a timeout, a non-2xx answer) and
//                     the delivery goes again later;
//   kDead             it failed and was the last attempt allowed;
//   kRefused          the AddressPolicy refused every address of the
//                     destination (no connection was made), whether the
//                     delivery goes again or not.
#ifndef JOBWIRE_SERVER_WEBHOOKS_WEBHOOK_OBSERVER_H_
#define JOBWIRE_SERVER_WEBHOOKS_WEBHOOK_OBSERVER_H_

#include <string_view>

#include "absl/time/time.h"

namespace jobwire {

enum class WebhookAttemptResult {
  kDelivered,
  kFailedWillRetry,
  kDead,
  kRefused,
};

inline constexpr WebhookAttemptResult kWebhookAttemptResults[] = {
    WebhookAttemptResult::kDelivered, WebhookAttemptResult::kFailedWillRetry,
    WebhookAttemptResult::kDead, WebhookAttemptResult::kRefused};

// "delivered", "failed_will_retry", "dead", "refused": the metric label.
constexpr std::string_view WebhookAttemptResultName(WebhookAttemptResult r) {
  switch (r) {
    case WebhookAttemptResult::kDelivered:
      return "delivered";
    case WebhookAttemptResult::kFailedWillRetry:
      return "failed_will_retry";
    case WebhookAttemptResult::kDead:
      return "dead";
    case WebhookAttemptResult::kRefused:
      return "refused";
  }
  return "unknown";
}

// Called on the sender's delivery thread, once per attempt, as soon as its
// outcome is known (before it is recorded in the store). Implementations
// must return at once: no I/O, no call into the sender. `duration`: the
// attempt from its start to its answer (or error), as the sender's clock
// reads it.
class WebhookObserver {
 public:
  virtual ~WebhookObserver() = default;
  virtual void OnWebhookAttempt(WebhookAttemptResult result,
                                absl::Duration duration) = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_WEBHOOKS_WEBHOOK_OBSERVER_H_
