#include "server/api/webhook_body.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "jobwire/v1/job.pb.h"
#include "server/api/convert.h"
#include "server/core/webhook_event.h"

namespace jobwire {

std::string WebhookEnvelopeJson(const Job& job, const JobEvent& event) {
  v1::JobEvent event_proto;
  EventToProto(event, &event_proto);
  v1::Job job_proto;
  JobToProto(job, &job_proto);
  std::string event_json;
  std::string job_json;
  // Both messages are built here from valid values: serialising cannot fail
  // (an empty object would still be valid JSON).
  google::protobuf::util::JsonPrintOptions options;
  (void)google::protobuf::util::MessageToJsonString(event_proto, &event_json,
                                                    options);
  (void)google::protobuf::util::MessageToJsonString(job_proto, &job_json,
                                                    options);
  if (event_json.empty()) event_json = "{}";
  if (job_json.empty()) job_json = "{}";
  return absl::StrCat(
      R"({"type":")", WebhookEventType(event), R"(","timestamp":")",
      absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", event.time,
                       absl::UTCTimeZone()),
      R"(","data":{"event":)", event_json, R"(,"job":)", job_json, "}}");
}

}  // namespace jobwire
