// The job model: jobwire's own C++ view of a Job and of a JobEvent.
//
// core/ knows nothing of protobuf or SQL: api/ converts these to and from
// jobwire.v1 messages, storage/ maps them to rows. Structured values that the
// API carries as google.protobuf.Struct (args, result data, error details,
// progress details) are held here as JSON text; api/ converts them.
// Values are plain data: copy freely, not thread-safe to mutate concurrently.
#ifndef JOBWIRE_SERVER_CORE_JOB_H_
#define JOBWIRE_SERVER_CORE_JOB_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jobwire {

// Numeric values equal jobwire.v1.Job.State.
enum class JobState : int {
  kUnspecified = 0,
  kQueued = 1,
  kScheduled = 2,
  kRunning = 3,
  kPaused = 4,
  kSucceeded = 5,
  kFailed = 6,
  kCancelled = 7,
};

// True for SUCCEEDED, FAILED and CANCELLED.
bool IsTerminal(JobState state);
// "QUEUED", "RUNNING", ...; "UNSPECIFIED" for kUnspecified.
absl::string_view JobStateName(JobState state);
// Accepts "QUEUED", "queued" or "STATE_QUEUED" (any case). False for
// anything else.
bool ParseJobState(absl::string_view text, JobState* state);

inline constexpr absl::string_view kDefaultQueue = "default";
inline constexpr int32_t kDefaultMaxAttempts = 3;

struct RetryPolicy {
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(5);
  double multiplier = 2.0;
  double jitter = 0.2;
};

struct Progress {
  int64_t done = 0;
  int64_t total = 0;
  std::string message;
  std::string details_json;  // JSON object text; empty when none
};

struct JobResult {
  std::string data_json;  // JSON object text; empty when none
  std::string payload;    // bytes
};

struct JobError {
  int32_t code = 2;  // google.rpc.Code; UNKNOWN by default
  std::string message;
  std::string details_json;  // JSON object text; empty when none
  bool retryable = false;
};

// A stop asked of a RUNNING job's worker and not yet answered (see
// worker_transitions::RequestStop). Stored with the job so that it survives a
// server restart. Numeric values are stored; never renumber.
enum class StopRequest : int {
  kNone = 0,
  kCancel = 1,
  kPause = 2,
};

struct WebhookSpec {
  std::string url;
  std::vector<int> events;  // jobwire.v1.Webhook.Event values; empty = all
};

// A job as stored. Times that are unset hold absl::InfinitePast().
struct Job {
  std::string id;  // ULID text
  std::string queue{kDefaultQueue};
  std::string kind;
  std::string args_json;  // JSON object text; empty when none
  std::string payload;    // bytes
  int32_t priority = 0;
  std::map<std::string, std::string> labels;
  absl::Time schedule_time = absl::InfinitePast();
  int32_t max_attempts = kDefaultMaxAttempts;
  std::optional<RetryPolicy> retry_policy;
  absl::Duration attempt_timeout = absl::ZeroDuration();  // zero: none
  std::optional<WebhookSpec> webhook;
  std::string request_id;  // idempotency key; empty when none

  JobState state = JobState::kQueued;
  std::optional<Progress> progress;
  std::optional<JobResult> result;
  std::optional<JobError> error;
  int32_t attempt = 0;
  std::string checkpoint;  // bytes from the last checkpoint

  // Earliest start of the next attempt after a failure (backoff); InfinitePast
  // when none.
  absl::Time backoff_until = absl::InfinitePast();
  // Lease of the current attempt while RUNNING.
  std::string worker_id;
  absl::Time lease_expire_time = absl::InfinitePast();
  // A cancel or pause asked of the current attempt's worker, pending until
  // the job leaves RUNNING; stop_reason is the cancel's reason.
  StopRequest stop_request = StopRequest::kNone;
  std::string stop_reason;

  absl::Time create_time = absl::InfinitePast();
  absl::Time start_time = absl::InfinitePast();
  absl::Time update_time = absl::InfinitePast();
  absl::Time finish_time = absl::InfinitePast();

  // Incremented by the store on every write; the etag is its text form.
  int64_t version = 0;
  // seq of the job's latest event.
  int64_t last_seq = 0;

  std::string etag() const;
  // When the job may next start: the later of schedule_time and backoff_until.
  absl::Time run_after() const;
};

enum class EventType : int {
  kStateChanged = 11,
  kProgress = 12,
  kUpdated = 13,
  kLog = 14,
  kWebhookDelivery = 15,
};

struct WebhookDeliveryInfo {
  int32_t attempt = 0;
  int32_t http_status = 0;
  bool delivered = false;
  std::string error;
};

// One entry of the durable event log. event_id and seq are assigned by the
// store at commit; producers leave them 0.
struct JobEvent {
  int64_t event_id = 0;
  std::string job_id;
  int64_t seq = 0;
  absl::Time time = absl::InfinitePast();
  EventType type = EventType::kStateChanged;

  // kStateChanged
  JobState from = JobState::kUnspecified;
  JobState to = JobState::kUnspecified;
  std::string reason;
  int32_t attempt = 0;
  std::optional<JobResult> result;
  std::optional<JobError> error;
  // kProgress
  Progress progress;
  // kUpdated
  std::vector<std::string> paths;
  // kUpdated that moved the job to another queue: the queue it left (the
  // event's `queue` is the new one). Live only: not stored, so empty on
  // replay. For listeners that count jobs per queue (server/metrics).
  std::string from_queue;
  // kLog
  std::string log_line;
  // kWebhookDelivery
  WebhookDeliveryInfo webhook_delivery;

  // Attributes of the job at commit time, for filtering watches and feeding
  // the dispatcher. Filled by the store on commit and on replay.
  std::string queue;
  std::string kind;
  int32_t priority = 0;
  std::map<std::string, std::string> labels;
  absl::Time run_after = absl::InfinitePast();
  // The job's state right after this event.
  JobState state = JobState::kUnspecified;
  // Set by the store on commit (not stored, false on replay) when the event
  // queued a webhook delivery (a webhook_outbox row) in its transaction.
  bool webhook_queued = false;
  // Set by the store on commit (not stored, false on replay) when another
  // node committed the event (several nodes on one PostgreSQL database): this
  // node learns it from the log, after the fact.
  bool remote = false;
};

// Approximate bytes a job or an event holds: the sizes of its variable-size
// fields (strings, labels, paths) plus sizeof the struct. For memory and page
// budgets (ListJobs pages, the event bus ring), not an exact allocation count.
size_t ApproxBytes(const Job& job);
size_t ApproxBytes(const JobEvent& event);

// Receives every batch of committed events, in event_id order, right after the
// commit is durable and before any writer is answered. Implementations must
// not block (they run on the store's completion thread, before the commit's
// `done` callbacks) and must not call back into the store's write path.
class CommitListener {
 public:
  virtual ~CommitListener() = default;
  virtual void OnCommit(const std::vector<JobEvent>& events) = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_JOB_H_
