#include "server/api/proto_json.h"

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "jobwire/v1/job.pb.h"
#include "jobwire/v1/job_service.pb.h"

namespace jobwire::test {
namespace {

using google::protobuf::Message;
using google::protobuf::util::JsonStringToMessage;
using google::protobuf::util::MessageDifferencer;
using google::protobuf::util::MessageToJsonString;

// Every field of Job set, with values that need care in JSON: escapes,
// unicode, bytes, 64-bit integers, fractions, nested Structs, a map.
constexpr char kFullJob[] = R"pb(
  id: "01JABCDEFGHJKMNPQRSTVWXYZ0"
  queue: "emails"
  kind: "send \"quoted\"\n\ttab \001 ctrl é ✓"
  args {
    fields {
      key: "n"
      value { number_value: 640 }
    }
    fields {
      key: "f"
      value { number_value: 0.1 }
    }
    fields {
      key: "neg"
      value { number_value: -3.5e-7 }
    }
    fields {
      key: "big"
      value { number_value: 1e300 }
    }
    fields {
      key: "ok"
      value { bool_value: true }
    }
    fields {
      key: "none"
      value { null_value: NULL_VALUE }
    }
    fields {
      key: "list"
      value {
        list_value {
          values { string_value: "a" }
          values {
            struct_value {
              fields {
                key: "x"
                value { number_value: 1 }
              }
            }
          }
        }
      }
    }
  }
  payload: "\000\377binary"
  priority: -5
  labels { key: "tenant" value: "acme" }
  labels { key: "a" value: "1" }
  schedule_time { seconds: 1765128600 nanos: 123000000 }
  max_attempts: 3
  retry_policy {
    initial_backoff { seconds: 1 nanos: 500000000 }
    max_backoff { seconds: 300 }
    multiplier: 2.5
    jitter: 0.2
  }
  attempt_timeout { nanos: 1000 }
  state: STATE_SUCCEEDED
  progress {
    done: 3
    total: 10
    message: "step"
    details {
      fields {
        key: "k"
        value { string_value: "v" }
      }
    }
  }
  result {
    data {
      fields {
        key: "out"
        value { string_value: "s3://x" }
      }
    }
    payload: "r"
  }
  error { code: 7 message: "boom" retryable: true }
  attempt: 2
  create_time { seconds: 1765128600 }
  start_time { seconds: 1765128601 nanos: 1 }
  update_time { seconds: 1765128602 nanos: 120000 }
  finish_time { seconds: 1765128603 nanos: 999999999 }
  etag: "W/\"3\""
  webhook {
    url: "https://example.com/hook"
    events: EVENT_SUCCEEDED
    events: EVENT_STATE_CHANGED
  }
  last_seq: 1152921504606846976
  checkpoint: "cp"
  worker_id: "w1"
  lease_expire_time { seconds: 1765128700 }
)pb";

template <typename M>
M Parse(const std::string& text) {
  M m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

// Our JSON of `m` reads back (with protobuf's parser) into `m`, and says what
// protobuf's own JSON of `m` says (both read into a Struct: member order and
// number spelling aside, the same document).
void ExpectSameAsProtobuf(const Message& m) {
  std::string ours;
  AppendProtoJson(m, &ours);
  std::unique_ptr<Message> back(m.New());
  ASSERT_TRUE(JsonStringToMessage(ours, back.get()).ok()) << ours;
  EXPECT_TRUE(MessageDifferencer::Equals(m, *back)) << ours;

  std::string theirs;
  ASSERT_TRUE(MessageToJsonString(m, &theirs).ok());
  google::protobuf::Struct a, b;
  ASSERT_TRUE(JsonStringToMessage(ours, &a).ok()) << ours;
  ASSERT_TRUE(JsonStringToMessage(theirs, &b).ok()) << theirs;
  EXPECT_TRUE(MessageDifferencer::Equals(a, b))
      << "ours:   " << ours << "\ntheirs: " << theirs;
}

TEST(ProtoJsonTest, AFullJobReadsBackAndMatchesProtobufsJson) {
  ExpectSameAsProtobuf(Parse<v1::Job>(kFullJob));
}

TEST(ProtoJsonTest, DefaultsAreLeftOutAndAnEmptyMessageIsAnEmptyObject) {
  std::string out;
  AppendProtoJson(v1::Job(), &out);
  EXPECT_EQ(out, "{}");
  out.clear();
  AppendProtoJson(Parse<v1::Job>(R"pb(queue: "q"
                                      priority: 0
                                      labels {})pb"),
                  &out);
  EXPECT_EQ(out, R"({"queue":"q","labels":{"":""}})");
  ExpectSameAsProtobuf(Parse<v1::Job>(R"pb(retry_policy {})pb"));
}

TEST(ProtoJsonTest, EveryKindOfEventMatchesProtobufsJson) {
  const std::string kinds[] = {
      "snapshot { id: \"j\" state: STATE_RUNNING }",
      "state_changed { from: STATE_RUNNING to: STATE_FAILED reason: \"r\" "
      "attempt: 1 error { code: 2 message: \"m\" } }",
      "state_changed { from: STATE_UNSPECIFIED to: STATE_QUEUED }",
      "progress { done: 0 total: 0 }",
      "updated { paths: \"priority\" paths: \"labels\" }",
      "log { line: \"hello\\nworld\" }",
      "webhook_delivery { attempt: 2 http_status: 500 delivered: false "
      "error: \"HTTP 500\" }",
  };
  for (const std::string& kind : kinds) {
    SCOPED_TRACE(kind);
    ExpectSameAsProtobuf(
        Parse<v1::JobEvent>("event_id: 9007199254740993 job_id: \"j\" seq: 4 "
                            "time { seconds: 1765128600 nanos: 5000000 } " +
                            kind));
  }
}

TEST(ProtoJsonTest, TimesAndDurationsAreWrittenAsProtobufWritesThem) {
  auto text = [](const Message& m) {
    std::string out;
    AppendProtoJson(m, &out);
    return out;
  };
  google::protobuf::Timestamp t;
  t.set_seconds(1765128600);
  EXPECT_EQ(text(t), R"("2025-12-07T17:30:00Z")");
  t.set_nanos(120000000);
  EXPECT_EQ(text(t), R"("2025-12-07T17:30:00.120Z")");
  t.set_nanos(120001000);
  EXPECT_EQ(text(t), R"("2025-12-07T17:30:00.120001Z")");
  t.set_nanos(1);
  EXPECT_EQ(text(t), R"("2025-12-07T17:30:00.000000001Z")");
  google::protobuf::Duration d;
  d.set_seconds(-1);
  d.set_nanos(-500000000);
  EXPECT_EQ(text(d), R"("-1.500s")");
  d.set_seconds(0);
  d.set_nanos(0);
  EXPECT_EQ(text(d), R"("0s")");
  for (const Message* m :
       {static_cast<const Message*>(&t), static_cast<const Message*>(&d)}) {
    std::string theirs;
    ASSERT_TRUE(MessageToJsonString(*m, &theirs).ok());
    EXPECT_EQ(text(*m), theirs);
  }
}

// --- Reading ---

// Protobuf's reading of `json` into a fresh `T`: its status, and the
// message when OK.
template <typename T>
std::pair<absl::Status, T> ReadByProtobuf(const std::string& json) {
  T m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = JsonStringToMessage(json, &m, options);
  return {absl::Status(static_cast<absl::StatusCode>(status.code()),
                       std::string(status.message())),
          m};
}

TEST(ParseProtoJsonTest, ReadsRequestBodiesDirectlyAsProtobufDoes) {
  const std::string bodies[] = {
      // http_bench's body.
      R"({"job":{"queue":"bench","kind":"resize-image","args":{"width":640,)"
      R"("height":480,"src":"s3://bucket/key.png"},"labels":{"tenant":)"
      R"("acme"}},"requestId":"j-1"})",
      "{}",
      " { \"job\" : { } } ",
      // Proto names as well as json names; enums by name and number;
      // integers as quoted digits and as integral doubles.
      R"({"request_id":"r","job":{"max_attempts":"5","priority":-3,)"
      R"("state":"STATE_RUNNING","attempt":2.0}})",
      R"({"job":{"state":3,"lastSeq":"9007199254740993",)"
      R"("retryPolicy":{"multiplier":1.5,"jitter":0}}})",
      // Nested Structs, lists, escapes and unicode in args.
      R"({"job":{"args":{"a":[1,"x",true,null,{"b":[]}],"s":"\"\\\u00e9\n"},)"
      R"("result":{"data":{"k":{}}},"error":{"retryable":true,"message":"m"}}})",
  };
  for (const std::string& body : bodies) {
    SCOPED_TRACE(body);
    auto [status, want] = ReadByProtobuf<v1::SubmitJobRequest>(body);
    ASSERT_TRUE(status.ok()) << status;
    v1::SubmitJobRequest got;
    ASSERT_TRUE(ParseProtoJsonDirect(body, &got));
    EXPECT_TRUE(MessageDifferencer::Equals(got, want))
        << got.DebugString() << "\nvs\n"
        << want.DebugString();
  }
}

// Equal messages, NaN equal to NaN.
bool SameMessage(const Message& a, const Message& b) {
  google::protobuf::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  return differencer.Compare(a, b);
}

TEST(ParseProtoJsonTest, LeavesToProtobufWhatItDoesNotReadExactly) {
  const std::string bodies[] = {
      // Not JSON, or not an object.
      "{not json",
      "[]",
      "5",
      R"({"job":)",
      "",
      // Unknown fields, nulls, wrong types.
      R"({"colour":"red"})",
      R"({"job":{"colour":1}})",
      R"({"job":null})",
      R"({"job":{"kind":5}})",
      R"({"job":{"priority":"high"}})",
      R"({"job":{"priority":1.5}})",
      R"({"job":{"priority":3000000000}})",
      R"({"job":{"priority":"007"}})",
      R"({"job":{"priority":" 7"}})",
      R"({"job":{"lastSeq":9007199254740993}})",
      R"({"job":{"labels":[]}})",
      R"({"job":{"labels":{"a":1}}})",
      R"({"job":{"args":[1]}})",
      R"({"job":{"state":"STATE_BOGUS"}})",
      R"({"job":{"state":99}})",
      R"({"job":{"retryPolicy":{"multiplier":"NaN"}}})",
      // The same field twice, by one name or by both.
      R"({"requestId":"a","request_id":"b"})",
      R"({"job":{"args":{"a":1}},"job":{"kind":"k"}})",
      R"({"job":{"labels":{"a":"1","a":"2"}}})",
      // Types with JSON forms of their own.
      R"({"job":{"payload":"aGk="}})",
      R"({"job":{"scheduleTime":"2026-01-02T03:04:05Z"}})",
      R"({"job":{"scheduleTime":"yesterday"}})",
      R"({"job":{"attemptTimeout":"1.5s"}})",
  };
  for (const std::string& body : bodies) {
    SCOPED_TRACE(body);
    v1::SubmitJobRequest direct;
    EXPECT_FALSE(ParseProtoJsonDirect(body, &direct));
    auto [want_status, want] = ReadByProtobuf<v1::SubmitJobRequest>(body);
    v1::SubmitJobRequest got;
    const absl::Status status = ParseProtoJson(body, &got);
    EXPECT_EQ(status, want_status);
    if (status.ok()) {
      EXPECT_TRUE(SameMessage(got, want));
    }
  }
}

}  // namespace
}  // namespace jobwire::test
