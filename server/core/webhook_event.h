// Which job events a job's webhook delivers, and under which type name.
//
// core/ decides what is sent (storage/ asks it while it writes an event, to
// queue the outbox row in the same transaction); api/ builds the body and
// webhooks/ sends it. Pure functions, thread-safe.
#ifndef JOBWIRE_SERVER_CORE_WEBHOOK_EVENT_H_
#define JOBWIRE_SERVER_CORE_WEBHOOK_EVENT_H_

#include "absl/strings/string_view.h"
#include "server/core/job.h"

namespace jobwire {

// Values of jobwire.v1.Webhook.Event.
enum WebhookEventKind : int {
  kWebhookSucceeded = 1,
  kWebhookFailed = 2,
  kWebhookCancelled = 3,
  kWebhookStateChanged = 4,
  kWebhookProgress = 5,
};

// True when `event` (of a job whose webhook is `spec`) is to be delivered:
// a state change into SUCCEEDED, FAILED or CANCELLED chosen in spec.events
// (all three when spec.events is empty), any state change with
// kWebhookStateChanged, a progress report with kWebhookProgress. Never for
// other events (webhook_delivery outcomes, updates, logs).
bool WebhookWants(const WebhookSpec& spec, const JobEvent& event);

// The envelope's "type" of an event WebhookWants: "job.succeeded",
// "job.failed", "job.cancelled", "job.state_changed" (any other state
// change), "job.progress".
absl::string_view WebhookEventType(const JobEvent& event);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_WEBHOOK_EVENT_H_
