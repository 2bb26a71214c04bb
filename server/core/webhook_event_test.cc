#include "server/core/webhook_event.h"

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

JobEvent StateChange(JobState to) {
  JobEvent e;
  e.type = EventType::kStateChanged;
  e.to = to;
  return e;
}

TEST(WebhookEventTest, EmptyListDeliversTheThreeTerminalStatesOnly) {
  WebhookSpec spec{"https://example.com/h", {}};
  EXPECT_TRUE(WebhookWants(spec, StateChange(JobState::kSucceeded)));
  EXPECT_TRUE(WebhookWants(spec, StateChange(JobState::kFailed)));
  EXPECT_TRUE(WebhookWants(spec, StateChange(JobState::kCancelled)));
  EXPECT_FALSE(WebhookWants(spec, StateChange(JobState::kRunning)));
  JobEvent progress;
  progress.type = EventType::kProgress;
  EXPECT_FALSE(WebhookWants(spec, progress));
  JobEvent delivery;
  delivery.type = EventType::kWebhookDelivery;
  EXPECT_FALSE(WebhookWants(spec, delivery));
}

TEST(WebhookEventTest, ChosenEventsOnly) {
  WebhookSpec spec{"https://example.com/h", {kWebhookFailed}};
  EXPECT_FALSE(WebhookWants(spec, StateChange(JobState::kSucceeded)));
  EXPECT_TRUE(WebhookWants(spec, StateChange(JobState::kFailed)));
}

TEST(WebhookEventTest, StateChangedAndProgressWhenAsked) {
  WebhookSpec spec{"https://example.com/h",
                   {kWebhookStateChanged, kWebhookProgress}};
  EXPECT_TRUE(WebhookWants(spec, StateChange(JobState::kRunning)));
  EXPECT_TRUE(WebhookWants(spec, StateChange(JobState::kSucceeded)));
  JobEvent progress;
  progress.type = EventType::kProgress;
  EXPECT_TRUE(WebhookWants(spec, progress));
  EXPECT_EQ(WebhookEventType(progress), "job.progress");
  EXPECT_EQ(WebhookEventType(StateChange(JobState::kRunning)),
            "job.state_changed");
  EXPECT_EQ(WebhookEventType(StateChange(JobState::kCancelled)),
            "job.cancelled");
}

}  // namespace
}  // namespace jobwire::test
