#include "server/core/webhook_event.h"

#include <algorithm>

namespace jobwire {
namespace {

bool Has(const WebhookSpec& spec, int kind) {
  return std::find(spec.events.begin(), spec.events.end(), kind) !=
         spec.events.end();
}

// The terminal kind of a state, or 0.
int TerminalKind(JobState state) {
  switch (state) {
    case JobState::kSucceeded:
      return kWebhookSucceeded;
    case JobState::kFailed:
      return kWebhookFailed;
    case JobState::kCancelled:
      return kWebhookCancelled;
    default:
      return 0;
  }
}

}  // namespace

bool WebhookWants(const WebhookSpec& spec, const JobEvent& event) {
  switch (event.type) {
    case EventType::kStateChanged: {
      const int terminal = TerminalKind(event.to);
      if (terminal != 0) {
        // Empty: every terminal event.
        if (spec.events.empty() || Has(spec, terminal)) return true;
      }
      return Has(spec, kWebhookStateChanged);
    }
    case EventType::kProgress:
      return Has(spec, kWebhookProgress);
    default:
      return false;
  }
}

absl::string_view WebhookEventType(const JobEvent& event) {
  if (event.type == EventType::kProgress) return "job.progress";
  switch (TerminalKind(event.to)) {
    case kWebhookSucceeded:
      return "job.succeeded";
    case kWebhookFailed:
      return "job.failed";
    case kWebhookCancelled:
      return "job.cancelled";
    default:
      return "job.state_changed";
  }
}

}  // namespace jobwire
