// The body of a webhook delivery: the JSON envelope of Standard Webhooks,
//   {"type": "job.succeeded", "timestamp": "2026-12-07T17:30:00.123456Z",
//    "data": {"event": <JobEvent>, "job": <Job>}}
// with the event and the job as canonical proto JSON (lowerCamelCase field
// names, enums by name, int64 as strings), `timestamp` the event's time
// (RFC 3339, UTC) and `type` from core/webhook_event.h.
//
// It is built once, when the event is written: the app hands it to the store
// (SqliteJobStore::Options::webhook_body), which stores it in the outbox row
// in the event's transaction, so every attempt of a delivery sends the same
// bytes (and webhooks/ never sees protobuf). The job is as of that event.
// Pure; thread-safe.
#ifndef JOBWIRE_SERVER_API_WEBHOOK_BODY_H_
#define JOBWIRE_SERVER_API_WEBHOOK_BODY_H_

#include <string>

#include "server/core/job.h"

namespace jobwire {

std::string WebhookEnvelopeJson(const Job& job, const JobEvent& event);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_WEBHOOK_BODY_H_
