#include "server/api/convert.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/api/struct_json.h"
#include "server/common/errors.h"
#include "server/common/status_macros.h"
#include "server/core/validation.h"

namespace jobwire {
namespace {

// google.protobuf.Timestamp range: 0001-01-01T00:00:00Z ..
// 9999-12-31T23:59:59Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;
// google.protobuf.Duration range: +-10,000 years.
constexpr int64_t kMaxDurationSeconds = 315576000000;
constexpr int32_t kNanosPerSecond = 1000000000;

std::string Path(absl::string_view prefix, absl::string_view field) {
  if (prefix.empty()) return std::string(field);
  return absl::StrCat(prefix, ".", field);
}

// Best effort: output conversions only see JSON that the server produced.
void JsonToStructOrEmpty(const std::string& json,
                         google::protobuf::Struct* out) {
  if (json.empty()) return;
  absl::Status status = JsonToStruct(json, out, "");
  if (!status.ok()) out->Clear();
}

}  // namespace

void TimeToProto(absl::Time time, google::protobuf::Timestamp* out) {
  if (time == absl::InfinitePast() || time == absl::InfiniteFuture()) {
    out->Clear();
    return;
  }
  // Microseconds, what the store keeps: a job or event read back from the
  // log reads the same as the one announced live.
  const int64_t micros = absl::ToUnixMicros(time);
  const int64_t seconds =
      micros >= 0 ? micros / 1000000 : -((-micros + 999999) / 1000000);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>((micros - seconds * 1000000) * 1000));
}

absl::Time TimeFromProto(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

void DurationToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

absl::Duration DurationFromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

bool IsValidTimestamp(const google::protobuf::Timestamp& ts) {
  return ts.seconds() >= kMinTimestampSeconds &&
         ts.seconds() <= kMaxTimestampSeconds && ts.nanos() >= 0 &&
         ts.nanos() < kNanosPerSecond;
}

bool IsValidDuration(const google::protobuf::Duration& d) {
  if (d.seconds() > kMaxDurationSeconds || d.seconds() < -kMaxDurationSeconds) {
    return false;
  }
  if (d.nanos() <= -kNanosPerSecond || d.nanos() >= kNanosPerSecond)
    return false;
  return !((d.seconds() > 0 && d.nanos() < 0) ||
           (d.seconds() < 0 && d.nanos() > 0));
}

absl::StatusOr<std::string> StructToJson(const google::protobuf::Struct& s,
                                         absl::string_view field) {
  std::string out;
  if (s.fields().empty()) return out;
  JW_RETURN_IF_ERROR(AppendStructJson(s, field, &out));
  return out;
}

absl::Status JsonToStruct(absl::string_view json, google::protobuf::Struct* out,
                          absl::string_view field) {
  if (json.empty()) {
    out->Clear();
    return absl::OkStatus();
  }
  return ParseStructJson(json, field, out);
}

v1::Job::State StateToProto(JobState state) {
  return static_cast<v1::Job::State>(static_cast<int>(state));
}

JobState StateFromProto(v1::Job::State state) {
  return static_cast<JobState>(static_cast<int>(state));
}

void ProgressToProto(const Progress& p, v1::Progress* out) {
  out->set_done(p.done);
  out->set_total(p.total);
  out->set_message(p.message);
  JsonToStructOrEmpty(p.details_json, out->mutable_details());
  if (p.details_json.empty()) out->clear_details();
}

void ResultToProto(const JobResult& r, v1::JobResult* out) {
  if (!r.data_json.empty())
    JsonToStructOrEmpty(r.data_json, out->mutable_data());
  out->set_payload(r.payload);
}

void ErrorToProto(const JobError& e, v1::JobError* out) {
  out->set_code(e.code);
  out->set_message(e.message);
  if (!e.details_json.empty()) {
    JsonToStructOrEmpty(e.details_json, out->mutable_details());
  }
  out->set_retryable(e.retryable);
}

void RetryPolicyToProto(const RetryPolicy& r, v1::RetryPolicy* out) {
  DurationToProto(r.initial_backoff, out->mutable_initial_backoff());
  DurationToProto(r.max_backoff, out->mutable_max_backoff());
  out->set_multiplier(r.multiplier);
  out->set_jitter(r.jitter);
}

void WebhookToProto(const WebhookSpec& w, v1::Webhook* out) {
  out->set_url(w.url);
  for (int e : w.events) out->add_events(static_cast<v1::Webhook::Event>(e));
}

absl::Status CheckWireBytes(const google::protobuf::Message& m, size_t limit,
                            absl::string_view field) {
  const size_t bytes = m.ByteSizeLong();
  if (bytes <= limit) return absl::OkStatus();
  return InvalidArgumentError(
      field, absl::StrCat("is ", bytes, " bytes as protobuf; at most ", limit,
                          " (so that any client can read the job back)"));
}

absl::StatusOr<Progress> ProgressFromProto(const v1::Progress& p,
                                           absl::string_view field) {
  JW_RETURN_IF_ERROR(CheckWireBytes(p, kMaxProgressWireBytes, field));
  Progress out;
  out.done = p.done();
  out.total = p.total();
  out.message = p.message();
  JW_ASSIGN_OR_RETURN(out.details_json,
                      StructToJson(p.details(), Path(field, "details")));
  return out;
}

absl::StatusOr<JobResult> ResultFromProto(const v1::JobResult& r,
                                          absl::string_view field) {
  JW_RETURN_IF_ERROR(CheckWireBytes(r, kMaxResultWireBytes, field));
  JobResult out;
  JW_ASSIGN_OR_RETURN(out.data_json,
                      StructToJson(r.data(), Path(field, "data")));
  out.payload = r.payload();
  return out;
}

absl::StatusOr<JobError> ErrorFromProto(const v1::JobError& e,
                                        absl::string_view field) {
  JW_RETURN_IF_ERROR(CheckWireBytes(e, kMaxErrorWireBytes, field));
  JobError out;
  out.code = e.code();
  out.message = e.message();
  JW_ASSIGN_OR_RETURN(out.details_json,
                      StructToJson(e.details(), Path(field, "details")));
  out.retryable = e.retryable();
  return out;
}

void JobToProto(const Job& job, v1::Job* out) {
  JobSubmittedToProto(job, out);
  JobStoredToProto(job, out);
}

// Empty strings are left unset (the same on the wire): setting one still
// allocates a string, and an assign is built per dispatched job.
void JobSubmittedToProto(const Job& job, v1::Job* out) {
  out->set_kind(job.kind);
  if (!job.args_json.empty())
    JsonToStructOrEmpty(job.args_json, out->mutable_args());
  if (!job.payload.empty()) out->set_payload(job.payload);
  out->set_priority(job.priority);
  for (const auto& [key, value] : job.labels)
    (*out->mutable_labels())[key] = value;
  if (job.schedule_time != absl::InfinitePast()) {
    TimeToProto(job.schedule_time, out->mutable_schedule_time());
  }
  if (job.retry_policy.has_value()) {
    RetryPolicyToProto(*job.retry_policy, out->mutable_retry_policy());
  }
  if (job.attempt_timeout > absl::ZeroDuration()) {
    DurationToProto(job.attempt_timeout, out->mutable_attempt_timeout());
  }
  if (job.webhook.has_value())
    WebhookToProto(*job.webhook, out->mutable_webhook());
}

void JobStoredToProto(const Job& job, v1::Job* out) {
  out->set_id(job.id);
  out->set_queue(job.queue);
  out->set_max_attempts(job.max_attempts);
  out->set_state(StateToProto(job.state));
  if (job.progress.has_value())
    ProgressToProto(*job.progress, out->mutable_progress());
  if (job.result.has_value()) ResultToProto(*job.result, out->mutable_result());
  if (job.error.has_value()) ErrorToProto(*job.error, out->mutable_error());
  out->set_attempt(job.attempt);
  struct {
    absl::Time time;
    google::protobuf::Timestamp* (v1::Job::*field)();
  } const times[] = {
      {job.create_time, &v1::Job::mutable_create_time},
      {job.start_time, &v1::Job::mutable_start_time},
      {job.update_time, &v1::Job::mutable_update_time},
      {job.finish_time, &v1::Job::mutable_finish_time},
      {job.lease_expire_time, &v1::Job::mutable_lease_expire_time},
  };
  for (const auto& t : times) {
    if (t.time != absl::InfinitePast()) TimeToProto(t.time, (out->*t.field)());
  }
  out->set_etag(job.etag());
  out->set_last_seq(job.last_seq);
  if (!job.checkpoint.empty()) out->set_checkpoint(job.checkpoint);
  if (!job.worker_id.empty()) out->set_worker_id(job.worker_id);
}

absl::StatusOr<Job> NewJobFromProto(const v1::Job& in,
                                    absl::string_view request_id,
                                    absl::string_view field) {
  std::vector<FieldViolation> violations;
  Job job;
  job.queue = in.queue().empty() ? std::string(kDefaultQueue) : in.queue();
  job.kind = in.kind();
  absl::StatusOr<std::string> args =
      StructToJson(in.args(), Path(field, "args"));
  if (args.ok()) {
    job.args_json = *std::move(args);
  } else {
    for (FieldViolation& v : GetFieldViolations(args.status())) {
      violations.push_back(std::move(v));
    }
  }
  if (absl::Status s =
          CheckWireBytes(in.args(), kMaxArgsWireBytes, Path(field, "args"));
      !s.ok()) {
    for (FieldViolation& v : GetFieldViolations(s)) {
      violations.push_back(std::move(v));
    }
  }
  job.payload = in.payload();
  job.priority = in.priority();
  job.labels.insert(in.labels().begin(), in.labels().end());
  if (in.has_schedule_time()) {
    if (IsValidTimestamp(in.schedule_time())) {
      job.schedule_time = TimeFromProto(in.schedule_time());
    } else {
      violations.push_back(
          {Path(field, "schedule_time"), "not a valid timestamp"});
    }
  }
  job.max_attempts =
      in.max_attempts() == 0 ? kDefaultMaxAttempts : in.max_attempts();
  if (in.has_retry_policy()) {
    const v1::RetryPolicy& rp = in.retry_policy();
    RetryPolicy policy;
    if (rp.has_initial_backoff()) {
      if (IsValidDuration(rp.initial_backoff())) {
        policy.initial_backoff = DurationFromProto(rp.initial_backoff());
      } else {
        violations.push_back({Path(field, "retry_policy.initial_backoff"),
                              "not a valid duration"});
      }
    }
    if (rp.has_max_backoff()) {
      if (IsValidDuration(rp.max_backoff())) {
        policy.max_backoff = DurationFromProto(rp.max_backoff());
      } else {
        violations.push_back(
            {Path(field, "retry_policy.max_backoff"), "not a valid duration"});
      }
    }
    if (rp.multiplier() != 0) policy.multiplier = rp.multiplier();
    if (rp.jitter() != 0) policy.jitter = rp.jitter();
    job.retry_policy = policy;
  }
  if (in.has_attempt_timeout()) {
    if (IsValidDuration(in.attempt_timeout())) {
      job.attempt_timeout = DurationFromProto(in.attempt_timeout());
    } else {
      violations.push_back(
          {Path(field, "attempt_timeout"), "not a valid duration"});
    }
  }
  if (in.has_webhook()) {
    WebhookSpec webhook;
    webhook.url = in.webhook().url();
    for (int i = 0; i < in.webhook().events_size(); ++i) {
      const int e = in.webhook().events(i);
      if (!v1::Webhook::Event_IsValid(e) ||
          e == v1::Webhook::EVENT_UNSPECIFIED) {
        violations.push_back(
            {Path(field, absl::StrCat("webhook.events[", i, "]")),
             "unknown webhook event"});
      }
      webhook.events.push_back(e);
    }
    job.webhook = std::move(webhook);
  }
  job.request_id = std::string(request_id);
  if (!violations.empty()) return InvalidArgumentError(std::move(violations));
  return job;
}

absl::StatusOr<JobPatch> PatchFromProto(const v1::Job& in,
                                        const google::protobuf::FieldMask& mask,
                                        absl::string_view job_field,
                                        absl::string_view mask_field) {
  JW_ASSIGN_OR_RETURN(
      std::vector<UpdatePath> paths,
      ParseUpdateMask(
          std::vector<std::string>(mask.paths().begin(), mask.paths().end()),
          mask_field));
  // Only the masked fields go through conversion, so that a bad value
  // outside the mask is not reported.
  v1::Job masked;
  for (const UpdatePath& p : paths) {
    switch (p.field) {
      case UpdateField::kPriority:
        masked.set_priority(in.priority());
        break;
      case UpdateField::kQueue:
        masked.set_queue(in.queue());
        break;
      case UpdateField::kLabels:
        *masked.mutable_labels() = in.labels();
        break;
      case UpdateField::kLabel: {
        auto it = in.labels().find(p.label_key);
        if (it != in.labels().end()) {
          (*masked.mutable_labels())[p.label_key] = it->second;
        }
        break;
      }
      case UpdateField::kScheduleTime:
        if (in.has_schedule_time()) {
          *masked.mutable_schedule_time() = in.schedule_time();
        }
        break;
      case UpdateField::kMaxAttempts:
        masked.set_max_attempts(in.max_attempts());
        break;
      case UpdateField::kRetryPolicy:
        if (in.has_retry_policy()) {
          *masked.mutable_retry_policy() = in.retry_policy();
        }
        break;
      case UpdateField::kAttemptTimeout:
        if (in.has_attempt_timeout()) {
          *masked.mutable_attempt_timeout() = in.attempt_timeout();
        }
        break;
      case UpdateField::kArgs:
        if (in.has_args()) *masked.mutable_args() = in.args();
        break;
      case UpdateField::kPayload:
        masked.set_payload(in.payload());
        break;
    }
  }
  JW_ASSIGN_OR_RETURN(Job values, NewJobFromProto(masked, "", job_field));
  JobPatch patch{std::move(paths), std::move(values)};
  JW_RETURN_IF_ERROR(ValidatePatch(patch, job_field));
  return patch;
}

void EventToProto(const JobEvent& event, v1::JobEvent* out) {
  out->set_event_id(event.event_id);
  out->set_job_id(event.job_id);
  out->set_seq(event.seq);
  TimeToProto(event.time, out->mutable_time());
  switch (event.type) {
    case EventType::kStateChanged: {
      v1::StateChanged* sc = out->mutable_state_changed();
      sc->set_from(StateToProto(event.from));
      sc->set_to(StateToProto(event.to));
      sc->set_reason(event.reason);
      sc->set_attempt(event.attempt);
      if (event.result.has_value())
        ResultToProto(*event.result, sc->mutable_result());
      if (event.error.has_value())
        ErrorToProto(*event.error, sc->mutable_error());
      break;
    }
    case EventType::kProgress:
      ProgressToProto(event.progress, out->mutable_progress());
      break;
    case EventType::kUpdated: {
      v1::Updated* updated = out->mutable_updated();
      for (const std::string& p : event.paths) updated->add_paths(p);
      break;
    }
    case EventType::kLog:
      out->mutable_log()->set_line(event.log_line);
      break;
    case EventType::kWebhookDelivery: {
      v1::WebhookDelivery* wd = out->mutable_webhook_delivery();
      wd->set_attempt(event.webhook_delivery.attempt);
      wd->set_http_status(event.webhook_delivery.http_status);
      wd->set_delivered(event.webhook_delivery.delivered);
      wd->set_error(event.webhook_delivery.error);
      break;
    }
  }
}

void SnapshotToProto(const Job& job, v1::JobEvent* out) {
  out->set_event_id(0);
  out->set_job_id(job.id);
  out->set_seq(job.last_seq);
  TimeToProto(job.update_time, out->mutable_time());
  JobToProto(job, out->mutable_snapshot());
}

}  // namespace jobwire
