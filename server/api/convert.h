// Conversions between jobwire.v1 protos and the core job model.
//
// The only place where api/ maps protobuf to core types and back. Structured
// values (args, result data, error and progress details) are
// google.protobuf.Struct on the wire and JSON object text in core
// (server/api/struct_json.h says which JSON). Unset times are
// absl::InfinitePast() in core and unset Timestamps on the wire.
//
// Output conversions (core -> proto) cannot fail: core values were produced
// by the input conversions or by the server. Input conversions fail with
// INVALID_ARGUMENT and one google.rpc.BadRequest field violation per problem,
// each path prefixed with the caller's `field` ("job", "jobs[3].job").
// Pure functions; thread-safe.
#ifndef JOBWIRE_SERVER_API_CONVERT_H_
#define JOBWIRE_SERVER_API_CONVERT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/field_mask.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "jobwire/v1/job.pb.h"
#include "server/core/job.h"
#include "server/core/job_update.h"

namespace jobwire {

// Times and durations. InfinitePast <-> unset (the Timestamp is cleared).
// Whole microseconds (the store's precision), rounded down.
void TimeToProto(absl::Time time, google::protobuf::Timestamp* out);
absl::Time TimeFromProto(const google::protobuf::Timestamp& ts);
void DurationToProto(absl::Duration d, google::protobuf::Duration* out);
absl::Duration DurationFromProto(const google::protobuf::Duration& d);
// True when `ts` holds a valid Timestamp (seconds in years 1..9999, nanos in
// range).
bool IsValidTimestamp(const google::protobuf::Timestamp& ts);
// True when `d` is valid: nanos in range and of the same sign as seconds.
bool IsValidDuration(const google::protobuf::Duration& d);

// Struct <-> JSON object text. Empty text <-> empty Struct.
// StructToJson fails (INVALID_ARGUMENT at `field`) for values JSON cannot
// hold, such as NaN numbers; see server/api/struct_json.h for the exact text
// written and accepted.
absl::StatusOr<std::string> StructToJson(const google::protobuf::Struct& s,
                                         absl::string_view field);
// Parses JSON object text; INVALID_ARGUMENT at `field` when it is not one.
absl::Status JsonToStruct(absl::string_view json, google::protobuf::Struct* out,
                          absl::string_view field);

// Job.State <-> JobState (same numeric values).
v1::Job::State StateToProto(JobState state);
JobState StateFromProto(v1::Job::State state);

void ProgressToProto(const Progress& p, v1::Progress* out);
void ResultToProto(const JobResult& r, v1::JobResult* out);
void ErrorToProto(const JobError& e, v1::JobError* out);
void RetryPolicyToProto(const RetryPolicy& r, v1::RetryPolicy* out);
void WebhookToProto(const WebhookSpec& w, v1::Webhook* out);

// INVALID_ARGUMENT on `field` ("is N bytes as protobuf; at most M") when
// `m` is larger than `limit` as protobuf (validation.h's wire limits).
absl::Status CheckWireBytes(const google::protobuf::Message& m, size_t limit,
                            absl::string_view field);

absl::StatusOr<Progress> ProgressFromProto(const v1::Progress& p,
                                           absl::string_view field);
absl::StatusOr<JobResult> ResultFromProto(const v1::JobResult& r,
                                          absl::string_view field);
absl::StatusOr<JobError> ErrorFromProto(const v1::JobError& e,
                                        absl::string_view field);

// The full job, every field including output-only ones: JobSubmittedToProto
// then JobStoredToProto.
void JobToProto(const Job& job, v1::Job* out);

// The two halves of JobToProto. JobSubmittedToProto sets what a submitter
// gives and the store keeps as given: kind, args, payload, priority, labels,
// schedule_time, retry_policy, attempt_timeout and webhook. JobStoredToProto
// sets the rest, which the store sets or defaults: id, queue, max_attempts,
// state, progress, result, error, attempt, the times, etag, last_seq,
// checkpoint and worker_id. SubmitJob builds the first half from the
// validated input before the write, so the store's writer thread (its
// bottleneck) builds only the second.
void JobSubmittedToProto(const Job& job, v1::Job* out);
void JobStoredToProto(const Job& job, v1::Job* out);

// The input fields of a job to create (queue, kind, args, payload, priority,
// labels, schedule_time, max_attempts, retry_policy, attempt_timeout,
// webhook) plus `request_id`; output-only fields are ignored. Checks only
// what the proto can hold that core cannot (Struct values, Timestamp and
// Duration ranges, enum values); core/validation.h checks the rest.
absl::StatusOr<Job> NewJobFromProto(const v1::Job& job,
                                    absl::string_view request_id,
                                    absl::string_view field);

// The patch of an UpdateJob (or of a BulkUpdateJobs request): the paths of
// `mask` (ParseUpdateMask, violations on "<mask_field>.paths[i]") and the
// values of those fields only from `in`, checked as for a new job
// (ValidatePatch, violations on "<job_field>.X"). Values of fields outside
// the mask are ignored, even when invalid. OK or INVALID_ARGUMENT.
absl::StatusOr<JobPatch> PatchFromProto(const v1::Job& in,
                                        const google::protobuf::FieldMask& mask,
                                        absl::string_view job_field,
                                        absl::string_view mask_field);

// A durable event. The job attributes used for filtering are not sent.
void EventToProto(const JobEvent& event, v1::JobEvent* out);

// A snapshot event: the job as of its last_seq (event_id 0, time = the job's
// update_time).
void SnapshotToProto(const Job& job, v1::JobEvent* out);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_CONVERT_H_
