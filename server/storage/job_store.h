// JobStore: durable storage of jobs and their event log.
//
// The interface is drawn so that a PostgreSQL backend can sit beside the
// SQLite one without touching api/ or scheduling/.
//
// Writes are asynchronous: they are queued to the store's writer, committed
// together with other pending writes (group commit), and answered through
// `done` only after the commit is durable (or failed; a failed write is never
// answered OK). Mutations (JobMutation) run on the writer thread; listeners
// and `done` callbacks run on the store's completion thread (a store may run
// them on its writer thread when it has nothing else to do), one commit after
// the other in commit order, while the writer already applies later writes.
// Before any `done` of a commit runs, the commit's events are handed to the
// CommitListeners, so an event is never announced before it is durable and a
// caller that reads after `done` sees its write. Within a commit, `done`s run
// in the order the writes were queued. `done` callbacks must not block (they
// hold up every later commit's answers) and must not call Shutdown(); they
// typically finish a gRPC reactor or schedule work, and may queue new writes.
//
// Reads (`...Blocking`) run on the calling thread on a reader connection and
// may block on disk: never call them from a gRPC callback thread.
//
// Thread-safe. Errors: INVALID_ARGUMENT for bad input, NOT_FOUND for unknown
// ids, RESOURCE_EXHAUSTED when the disk is full, UNAVAILABLE when the database
// is busy or the store is shut down, INTERNAL for anything else.
#ifndef JOBWIRE_SERVER_STORAGE_JOB_STORE_H_
#define JOBWIRE_SERVER_STORAGE_JOB_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/job.h"
#include "server/core/job_change.h"

namespace jobwire {

struct NewJob {
  // Input fields of the job; id, state and times are set by the store.
  Job job;
};

struct SubmitOutcome {
  Job job;
  // False when job.request_id matched an existing job, which is returned.
  bool created = true;
};

// Totals of a store's writes since it opened, for operators and benchmarks:
// the difference of two readings gives rates and mean times, and shows where
// a write's wait goes (the queue, running the requests, the commit's fsync,
// answering). Times are read from the store's clock.
struct WriteStats {
  int64_t commits = 0;         // transactions committed
  int64_t requests = 0;        // write requests the writer took
  int64_t write_requests = 0;  // requests answered OK after their commit
  // Summed over requests: from being queued to their transaction starting.
  absl::Duration queue_wait;
  // Summed over transactions: running the requests (BEGIN up to COMMIT);
  // the COMMIT (WAL write and fsync); answering (listeners and `done`s).
  absl::Duration apply;
  absl::Duration commit;
  absl::Duration complete;
};

// One committed transaction of the group commit, for an observer that keeps
// distributions (server/metrics) rather than WriteStats' totals.
struct CommitSample {
  int64_t requests = 0;  // write requests in the transaction
  int64_t events = 0;    // events it committed
  // BEGIN up to COMMIT (running the requests), and the COMMIT itself (WAL
  // write and, with synchronous=FULL, the fsync). Their sum is the
  // transaction's time on the writer.
  absl::Duration apply;
  absl::Duration commit;
  // The longest wait of its requests in the write queue, from being queued
  // to the transaction's BEGIN: what the oldest caller waited before its
  // write started (the rest of its wait is apply + commit + answering).
  absl::Duration queue_wait;
};

// Told of every committed transaction, on the store's writer thread right
// after the COMMIT, before its events reach the CommitListeners. It holds up
// the writer (the store's bottleneck): implementations must return within
// microseconds, never block on I/O or on a lock held across I/O, and must
// not call the store.
class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  virtual void OnCommitSample(const CommitSample& sample) = 0;
};

// A webhook delivery waiting in, or done with, the durable outbox. The store
// writes one in the same transaction as the event that causes it (see
// SqliteJobStore::Options::webhook_body); webhooks/ sends it and records each
// attempt with RecordWebhookAttempt.
enum class WebhookDeliveryState : int {
  kPending = 0,    // to be sent at next_attempt_time
  kDelivered = 1,  // the receiver answered 2xx
  kDead = 2,       // out of attempts
};

struct WebhookOutboxRow {
  int64_t id = 0;  // the delivery id (operators' handle)
  std::string job_id;
  int64_t event_id = 0;  // the event that caused it; webhook-id is msg_<id>
  std::string type;      // "job.succeeded", ...
  std::string url;
  std::string body;  // the JSON envelope, as signed and sent
  WebhookDeliveryState state = WebhookDeliveryState::kPending;
  int32_t attempts = 0;  // attempts made so far
  absl::Time next_attempt_time = absl::InfinitePast();
  absl::Time last_attempt_time = absl::InfinitePast();  // none yet: past
  int32_t last_http_status = 0;                         // 0: no response
  std::string last_error;
  absl::Time create_time = absl::InfinitePast();
};

// The outcome of one delivery attempt, and what comes next.
struct WebhookAttempt {
  int64_t delivery_id = 0;
  std::string job_id;
  int32_t attempt = 0;  // 1-based
  int32_t http_status = 0;
  bool delivered = false;
  std::string error;
  absl::Time attempt_time = absl::InfinitePast();
  // kPending (with next_attempt_time), kDelivered or kDead.
  WebhookDeliveryState next_state = WebhookDeliveryState::kPending;
  absl::Time next_attempt_time = absl::InfinitePast();
};

struct WebhookDeliveryQuery {
  std::string job_id;        // empty: every job
  bool failed_only = false;  // dead ones, and pending ones that failed once
  int32_t page_size = 0;     // 0 means 100; above 1,000 reads 1,000
  std::string page_token;    // next_page_token of the previous page
};

struct WebhookDeliveryPage {
  std::vector<WebhookOutboxRow> deliveries;  // newest first
  std::string next_page_token;               // empty on the last page
};

// One job's outcome in a BulkWrite.
struct BulkItemResult {
  // OK, or the job's own error: NOT_FOUND, the mutation's or the check's
  // error, FAILED_PRECONDITION for a delete of a job that is not terminal.
  absl::Status status;
  // The job got an event (a mutation), or was deleted.
  bool changed = false;
};

// What a BulkWrite does to each job of its chunk: runs `mutation` against the
// job as committed (as Mutate does), or with `del`, deletes the job as
// Delete does, after `check` (may be null).
struct BulkWriteSpec {
  JobMutation mutation;
  bool del = false;
  std::function<absl::Status(const Job&)> check;
};

// One result per id, in the order of the ids; or the error that failed the
// whole chunk (nothing of it written).
using BulkWriteCallback =
    std::function<void(absl::StatusOr<std::vector<BulkItemResult>>)>;

using SubmitCallback =
    std::function<void(absl::StatusOr<std::vector<SubmitOutcome>>)>;
using JobCallback = std::function<void(absl::StatusOr<Job>)>;
using StatusCallback = std::function<void(absl::Status)>;

// A page request of ListJobsBlocking.
struct ListJobsQuery {
  // AIP-160 subset, see core/filter.h. Empty: every job.
  std::string filter;
  // "create_time" (default, same as empty; "create_time asc" too),
  // "create_time desc", "priority desc" (then oldest first), "update_time
  // desc".
  std::string order_by;
  // 0 means 100; values above 1,000 are treated as 1,000.
  int32_t page_size = 0;
  // next_page_token of the previous page, or empty for the first page. Only
  // valid with the same filter and order_by.
  std::string page_token;
  // Byte budget of the page; 0: none. The page ends early, with a
  // next_page_token, before the first job that would take its bytes above
  // max_bytes, so that neither the reader nor the response holds more; it
  // always holds at least one job. A job's bytes are job_bytes(job) (called
  // in order for each job of the page, then for the one that did not fit, if
  // any), or ApproxBytes(job) without job_bytes.
  size_t max_bytes = 0;
  std::function<size_t(const Job&)> job_bytes;
};

struct ListJobsResult {
  std::vector<Job> jobs;
  // Empty on the last page.
  std::string next_page_token;
};

struct QueueStateCount {
  std::string queue;
  JobState state = JobState::kUnspecified;
  int64_t count = 0;
};

// Durable per-queue settings (AdminService). Queues without a row use the
// defaults below.
struct QueueRow {
  std::string name;
  bool paused = false;
  // When a pause ends by itself; InfinitePast when it does not.
  absl::Time resume_time = absl::InfinitePast();
  int32_t concurrency_limit = 0;  // 0: no limit
  int32_t weight = 1;
};

// A jobwired serving the database (several share a PostgreSQL database).
struct NodeInfo {
  std::string id;    // random per process
  std::string name;  // --node-name, or host:pid
  absl::Time start_time = absl::InfinitePast();
  absl::Time heartbeat_time = absl::InfinitePast();
  bool self = false;  // the node that answered
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Creates jobs, all in one transaction: QUEUED, or SCHEDULED when
  // schedule_time is in the future; each gets a "submitted" state_changed
  // event. A job whose request_id exists already is not created again; the
  // existing job is returned with created=false.
  virtual void Submit(std::vector<NewJob> jobs, SubmitCallback done) = 0;

  // Runs `mutation` against job `id` inside a write transaction and writes its
  // result. `done` gets the job as committed, NOT_FOUND, or the mutation's
  // own error (nothing written).
  virtual void Mutate(std::string id, JobMutation mutation,
                      JobCallback done) = 0;

  // Deletes job `id` with its events and labels, if it is terminal and
  // `check` (run on the writer against the job as committed; may be null)
  // allows it. `done` gets the job as it was before deletion, NOT_FOUND,
  // FAILED_PRECONDITION (PreconditionFailure type "STATE") for a job that is
  // not terminal, or `check`'s error (nothing deleted). No event records a
  // deletion: like retention, it raises MaxPrunedEventIdBlocking() to the
  // job's last event_id, so a WatchJobs cursor that may have missed its
  // events gets a `reset`.
  virtual void Delete(std::string id,
                      std::function<absl::Status(const Job&)> check,
                      JobCallback done) = 0;

  // Applies `spec` to each job of `ids` (distinct) as one write request:
  // one transaction, and set-based where the store can (one UPDATE for the
  // jobs a mutation changes alike, one INSERT for many events, one DELETE
  // per table for a chunk of deletes). Each job is read and checked as
  // committed; a job's error fails that job alone. The row of a job and its
  // events are written exactly as Mutate or Delete would, so listeners see
  // one commit with every event of the chunk. Other writes queued behind a
  // BulkWrite may be committed before it (a bounded number: see
  // SqliteJobStore); a BulkWrite never commits with other writes, but may
  // share a commit with the BulkWrites queued right after it (a bounded
  // number of jobs) while no other write waits.
  virtual void BulkWrite(std::vector<std::string> ids,
                         std::shared_ptr<const BulkWriteSpec> spec,
                         BulkWriteCallback done) = 0;

  // NOT_FOUND for an unknown id.
  virtual absl::StatusOr<Job> GetJobBlocking(const std::string& id) = 0;

  // Events of one job with seq > after_seq, in seq order, at most `limit`.
  // `limit` above 10,000 reads 10,000; INVALID_ARGUMENT when limit <= 0. An
  // unknown job has no events (empty result, not NOT_FOUND). With
  // `max_bytes` > 0 the read also stops after the event that brings the
  // events' ApproxBytes to `max_bytes` (so it returns at least one).
  virtual absl::StatusOr<std::vector<JobEvent>> ReadJobEventsBlocking(
      const std::string& job_id, int64_t after_seq, int limit,
      size_t max_bytes = 0) = 0;

  // Events of all jobs with event_id > after_event_id, in order, at most
  // `limit`. Same limits as above. Events carry their job attributes as
  // committed.
  virtual absl::StatusOr<std::vector<JobEvent>> ReadEventsBlocking(
      int64_t after_event_id, int limit, size_t max_bytes = 0) = 0;

  // Registers a listener (not owned; must outlive the store). Call before the
  // first write. Listeners are called in registration order on the
  // completion thread after each durable commit, with that commit's events
  // in event_id order, before any `done` of that commit runs and after every
  // `done` of earlier commits.
  virtual void AddCommitListener(CommitListener* listener) = 0;

  // One page of jobs matching query.filter in query.order_by order. Pages are
  // keyset-based: jobs added meanwhile never shift later pages (with the
  // create_time orders, new jobs only appear at the end of an ascending
  // listing). INVALID_ARGUMENT with field "filter", "order_by", "page_size"
  // (negative) or "page_token" (garbage, or from another filter/order_by).
  virtual absl::StatusOr<ListJobsResult> ListJobsBlocking(
      const ListJobsQuery& query) = 0;

  // ListJobsBlocking for a caller that needs each job's id only (a bulk
  // update's selection): the same jobs, pages and tokens, but each job may
  // hold its id and the fields of its sort key alone (others default), and
  // query.max_bytes counts those. This default reads whole jobs; a store
  // may read less.
  virtual absl::StatusOr<ListJobsResult> ListJobKeysBlocking(
      const ListJobsQuery& query) {
    return ListJobsBlocking(query);
  }

  // Number of jobs per (queue, state), for rows with count > 0, ordered by
  // queue then state, exact as of a commit. Cheap whatever the number of
  // jobs (the SQLite store keeps the counts in memory): callers may poll it.
  virtual absl::StatusOr<std::vector<QueueStateCount>>
  CountJobsByQueueAndStateBlocking() = 0;

  // Event ids grow in commit order and are never reused, not even after
  // retention deleted the newest events and the server restarted; they may
  // have gaps (ids of writes that failed), unlike the per-job seq.
  //
  // The highest event_id committed so far (still the same after retention
  // deleted it); 0 when none ever was.
  virtual absl::StatusOr<int64_t> LastEventIdBlocking() = 0;
  // The smallest event_id still stored; 0 when the log is empty.
  virtual absl::StatusOr<int64_t> OldestEventIdBlocking() = 0;
  // The highest event_id ever deleted by retention (0 when none). Retention
  // deletes whole terminal jobs, so deleted and kept ids interleave: a
  // WatchJobs cursor `after_event_id` may have missed events exactly when
  // after_event_id < MaxPrunedEventIdBlocking(); such a watcher needs a
  // `reset`. Events of jobs that still exist are never deleted, so a WatchJob
  // cursor (job_id, after_seq) of an existing job is always replayable.
  virtual absl::StatusOr<int64_t> MaxPrunedEventIdBlocking() = 0;

  // Calls `visitor` for every job in QUEUED, SCHEDULED, RUNNING or PAUSED, in
  // no particular order, with args_json, payload, checkpoint and result
  // payload left empty (for the dispatcher's start-up rebuild). The visitor
  // runs on the calling thread and must not call the store.
  virtual absl::Status LoadActiveJobsBlocking(
      const std::function<void(const Job&)>& visitor) = 0;

  // Server-wide settings (e.g. the dispatch pause). nullopt when unset.
  virtual absl::StatusOr<std::optional<std::string>> GetSettingBlocking(
      const std::string& key) = 0;
  // Writes a setting through the writer; `done` after the commit.
  virtual void PutSetting(std::string key, std::string value,
                          StatusCallback done) = 0;

  // Every stored queue row, ordered by name.
  virtual absl::StatusOr<std::vector<QueueRow>> ListQueueRowsBlocking() = 0;
  // Creates or replaces the row of queue `row.name` through the writer.
  virtual void UpsertQueue(QueueRow row, StatusCallback done) = 0;

  // Deletes terminal jobs (and their events and labels) that retention
  // allows to go, in small transactions through the writer so that other
  // writes keep flowing between them. Returns the number of jobs deleted.
  // The app calls it periodically.
  virtual absl::StatusOr<int64_t> RunRetentionOnceBlocking() = 0;

  // Writes a consistent snapshot of the whole database (as of one commit) to
  // the file `dest_path`, replacing its content, without stopping writes;
  // returns the snapshot's size in bytes. Blocking.
  virtual absl::StatusOr<int64_t> BackupBlocking(
      const std::string& dest_path) = 0;

  // Webhook outbox (see WebhookOutboxRow).
  //
  // Up to `limit` pending deliveries, earliest next_attempt_time first
  // (those not due yet too, so the sender knows when to look again); the
  // rows carry their body. INVALID_ARGUMENT when limit <= 0.
  // A store shared by several nodes (PgJobStore) claims the due rows it
  // returns for this node, so that one node sends each attempt: it leaves
  // out the rows another live node holds, a claim lasts its node_ttl (a
  // dead node's rows go to another node after that) and is renewed by the
  // next call, and RecordWebhookAttempt releases it. A store of one process
  // returns every pending row.
  virtual absl::StatusOr<std::vector<WebhookOutboxRow>> PendingWebhooksBlocking(
      int limit) = 0;
  // Writes an attempt's outcome: updates the outbox row (attempts, state,
  // next_attempt_time, last status and error) and, in the same transaction,
  // appends a webhook_delivery event to the job (none when the job was
  // deleted meanwhile), and releases this node's claim on the row.
  // NOT_FOUND for an unknown delivery id.
  virtual void RecordWebhookAttempt(WebhookAttempt attempt,
                                    StatusCallback done) = 0;
  // Pending deliveries (neither delivered nor dead): the outbox's depth.
  // Reads the pending rows' index, so it costs what is pending.
  virtual absl::StatusOr<int64_t> CountPendingWebhooksBlocking() = 0;
  // Deliveries by query, newest first, without their body (left empty: a
  // page stays small however large the bodies). INVALID_ARGUMENT on
  // "page_size" (negative) or "page_token".
  virtual absl::StatusOr<WebhookDeliveryPage> ListWebhookDeliveriesBlocking(
      const WebhookDeliveryQuery& query) = 0;
  // Puts a delivered or dead delivery back to pending, due now, with its
  // attempts reset; `done` gets the row as committed. NOT_FOUND for an
  // unknown id; FAILED_PRECONDITION for one that is pending already.
  virtual void RedeliverWebhook(
      int64_t delivery_id,
      std::function<void(absl::StatusOr<WebhookOutboxRow>)> done) = 0;

  // Totals so far; cheap (atomic reads), callable from any thread.
  virtual WriteStats write_stats() const = 0;

  // The nodes serving this database whose heartbeat is recent, this one
  // first. Empty for a store that only one process can open (SQLite).
  virtual absl::StatusOr<std::vector<NodeInfo>> ListNodesBlocking() {
    return std::vector<NodeInfo>{};
  }

  // Stops taking writes, commits what is queued, answers every caller
  // exactly once (no listener or `done` runs after it returns), and closes
  // the database cleanly. Idempotent. Writes after Shutdown started
  // (including those a `done` makes while it drains) are answered at once,
  // on the caller's thread, with UNAVAILABLE; reads fail with UNAVAILABLE.
  virtual void Shutdown() = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_JOB_STORE_H_
