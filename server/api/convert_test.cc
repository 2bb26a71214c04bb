#include "server/api/convert.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace jobwire::test {
namespace {

TEST(ConvertTest, TimeRoundTripsToTheMicrosecondAndInfinitePastIsUnset) {
  // The store keeps microseconds; the API says what a read gives back.
  const absl::Time t = absl::FromUnixNanos(1700000000123456789);
  google::protobuf::Timestamp ts;
  TimeToProto(t, &ts);
  EXPECT_EQ(ts.seconds(), 1700000000);
  EXPECT_EQ(ts.nanos(), 123456000);
  EXPECT_EQ(TimeFromProto(ts), absl::FromUnixMicros(1700000000123456));

  TimeToProto(absl::FromUnixMicros(-1), &ts);
  EXPECT_EQ(ts.seconds(), -1);
  EXPECT_EQ(ts.nanos(), 999999000);

  TimeToProto(absl::InfinitePast(), &ts);
  EXPECT_EQ(ts.seconds(), 0);
  EXPECT_EQ(TimeFromProto(ts), absl::InfinitePast());
}

TEST(ConvertTest, DurationRoundTripsAndInvalidOnesAreDetected) {
  google::protobuf::Duration d;
  DurationToProto(absl::Milliseconds(2500), &d);
  EXPECT_EQ(d.seconds(), 2);
  EXPECT_EQ(d.nanos(), 500000000);
  EXPECT_EQ(DurationFromProto(d), absl::Milliseconds(2500));
  EXPECT_TRUE(IsValidDuration(d));
  d.set_nanos(-1);
  EXPECT_FALSE(IsValidDuration(d));
}

TEST(ConvertTest, StructRoundTripsThroughJson) {
  google::protobuf::Struct s;
  (*s.mutable_fields())["n"].set_number_value(1);
  (*s.mutable_fields())["s"].set_string_value("x");
  absl::StatusOr<std::string> json = StructToJson(s, "job.args");
  ASSERT_TRUE(json.ok()) << json.status();
  google::protobuf::Struct back;
  ASSERT_TRUE(JsonToStruct(*json, &back, "job.args").ok());
  EXPECT_EQ(back.fields().at("s").string_value(), "x");
  EXPECT_EQ(back.fields().at("n").number_value(), 1);
  EXPECT_EQ(*StructToJson(google::protobuf::Struct(), "x"), "");
}

TEST(ConvertTest, JsonThatIsNotAnObjectIsInvalidArgumentAtTheField) {
  google::protobuf::Struct s;
  absl::Status status = JsonToStruct("[1,2]", &s, "job.args");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(GetFieldViolations(status).size(), 1u);
  EXPECT_EQ(GetFieldViolations(status)[0].field, "job.args");
}

TEST(ConvertTest, NewJobFromProtoReadsInputFieldsAndDefaults) {
  v1::Job in;
  in.set_kind("resize");
  in.set_priority(5);
  (*in.mutable_labels())["tenant"] = "acme";
  (*in.mutable_args()->mutable_fields())["w"].set_number_value(640);
  in.mutable_schedule_time()->set_seconds(1800000000);
  in.set_state(v1::Job::STATE_SUCCEEDED);  // output only: ignored
  in.mutable_webhook()->set_url("https://example.com/h");
  in.mutable_webhook()->add_events(v1::Webhook::EVENT_FAILED);
  absl::StatusOr<Job> job = NewJobFromProto(in, "req-1", "job");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->queue, "default");
  EXPECT_EQ(job->kind, "resize");
  EXPECT_EQ(job->priority, 5);
  EXPECT_EQ(job->labels.at("tenant"), "acme");
  EXPECT_EQ(job->args_json, "{\"w\":640}");
  EXPECT_EQ(job->schedule_time, absl::FromUnixSeconds(1800000000));
  EXPECT_EQ(job->max_attempts, kDefaultMaxAttempts);
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->request_id, "req-1");
  ASSERT_TRUE(job->webhook.has_value());
  EXPECT_EQ(job->webhook->events, std::vector<int>{2});
}

TEST(ConvertTest, NewJobFromProtoNamesEveryBadFieldWithThePrefix) {
  v1::Job in;
  in.set_kind("k");
  in.mutable_schedule_time()->set_nanos(-5);
  in.mutable_attempt_timeout()->set_seconds(1);
  in.mutable_attempt_timeout()->set_nanos(-1);
  in.mutable_webhook()->add_events(static_cast<v1::Webhook::Event>(42));
  absl::StatusOr<Job> job = NewJobFromProto(in, "", "jobs[2].job");
  ASSERT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<FieldViolation> v = GetFieldViolations(job.status());
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].field, "jobs[2].job.schedule_time");
  EXPECT_EQ(v[1].field, "jobs[2].job.attempt_timeout");
  EXPECT_EQ(v[2].field, "jobs[2].job.webhook.events[0]");
}

TEST(ConvertTest, JobToProtoCarriesOutputFields) {
  Job job;
  job.id = "01J00000000000000000000000";
  job.kind = "k";
  job.args_json = "{\"a\":true}";
  job.state = JobState::kFailed;
  job.error = JobError{13, "boom", "{\"why\":\"disk\"}", true};
  job.progress = Progress{3, 10, "three", ""};
  job.version = 7;
  job.last_seq = 4;
  job.create_time = absl::FromUnixSeconds(100);
  job.retry_policy = RetryPolicy{};
  v1::Job out;
  JobToProto(job, &out);
  EXPECT_EQ(out.state(), v1::Job::STATE_FAILED);
  EXPECT_TRUE(out.args().fields().at("a").bool_value());
  EXPECT_EQ(out.error().details().fields().at("why").string_value(), "disk");
  EXPECT_TRUE(out.error().retryable());
  EXPECT_EQ(out.progress().done(), 3);
  EXPECT_FALSE(out.progress().has_details());
  EXPECT_EQ(out.etag(), "v7");
  EXPECT_EQ(out.last_seq(), 4);
  EXPECT_EQ(out.create_time().seconds(), 100);
  EXPECT_FALSE(out.has_finish_time());
  EXPECT_EQ(out.retry_policy().max_backoff().seconds(), 300);
}

TEST(ConvertTest, EventToProtoFillsTheOneof) {
  JobEvent e;
  e.event_id = 9;
  e.job_id = "j";
  e.seq = 2;
  e.type = EventType::kStateChanged;
  e.from = JobState::kQueued;
  e.to = JobState::kCancelled;
  e.reason = "user";
  v1::JobEvent out;
  EventToProto(e, &out);
  EXPECT_EQ(out.event_id(), 9);
  EXPECT_EQ(out.state_changed().to(), v1::Job::STATE_CANCELLED);

  e.type = EventType::kUpdated;
  out.Clear();
  EventToProto(e, &out);
  EXPECT_EQ(out.type_case(), v1::JobEvent::kUpdated);

  Job job;
  job.id = "j";
  job.last_seq = 5;
  out.Clear();
  SnapshotToProto(job, &out);
  EXPECT_EQ(out.seq(), 5);
  EXPECT_EQ(out.snapshot().id(), "j");
}

}  // namespace
}  // namespace jobwire::test
