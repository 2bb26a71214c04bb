#include "server/api/webhook_body.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(WebhookBodyTest, EnvelopeCarriesTypeTimeEventAndJobAsProtoJson) {
  Job job;
  job.id = "01JABCDEFGHJKMNPQRSTVWXYZ0";
  job.kind = "resize";
  job.state = JobState::kSucceeded;
  job.result = JobResult{R"({"ok":true})", ""};
  JobEvent e;
  e.event_id = 42;
  e.job_id = job.id;
  e.seq = 3;
  e.time = absl::FromUnixMillis(1765128600123);
  e.type = EventType::kStateChanged;
  e.from = JobState::kRunning;
  e.to = JobState::kSucceeded;
  const std::string body = WebhookEnvelopeJson(job, e);

  // A JSON object that parses, with the promised members.
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &parsed).ok())
      << body;
  const auto& f = parsed.fields();
  EXPECT_EQ(f.at("type").string_value(), "job.succeeded");
  EXPECT_EQ(f.at("timestamp").string_value(), "2025-12-07T17:30:00.123Z");
  const auto& data = f.at("data").struct_value().fields();
  const auto& event = data.at("event").struct_value().fields();
  EXPECT_EQ(event.at("eventId").string_value(), "42");
  EXPECT_EQ(
      event.at("stateChanged").struct_value().fields().at("to").string_value(),
      "STATE_SUCCEEDED");
  const auto& j = data.at("job").struct_value().fields();
  EXPECT_EQ(j.at("id").string_value(), job.id);
  EXPECT_EQ(j.at("state").string_value(), "STATE_SUCCEEDED");
}

}  // namespace
}  // namespace jobwire::test
