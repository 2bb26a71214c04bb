#include "server/api/webhook_body.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "jobwire/v1/job.pb.h"
#include "server/api/convert.h"
#include "server/api/proto_json.h"
#include "server/core/webhook_event.h"

namespace jobwire {

std::string WebhookEnvelopeJson(const Job& job, const JobEvent& event) {
  v1::JobEvent event_proto;
  EventToProto(event, &event_proto);
  v1::Job job_proto;
  JobToProto(job, &job_proto);
  // Written on the store's writer thread, inside the event's transaction:
  // proto_json.h, not protobuf's util converter, which cost several times
  // as much and held up every other write.
  std::string out = absl::StrCat(
      R"({"type":")", WebhookEventType(event), R"(","timestamp":")",
      absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", event.time,
                       absl::UTCTimeZone()),
      R"(","data":{"event":)");
  AppendProtoJson(event_proto, &out);
  out.append(R"(,"job":)");
  AppendProtoJson(job_proto, &out);
  out.append("}}");
  return out;
}

}  // namespace jobwire
