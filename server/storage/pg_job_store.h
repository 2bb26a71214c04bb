// PgJobStore: the JobStore on PostgreSQL (libpq), for one jobwired node.
//
// Same contract as SqliteJobStore (job_store.h), same tables and meaning
// (pg_migrations.h). One writer thread owns the writing connection and
// commits in groups: it takes every queued write request (up to
// Options::max_batch_jobs jobs or max_batch_bytes of payload), runs them in
// ONE transaction and commits once; the completion thread then gives the
// commit's events to the CommitListeners and answers each `done`, in
// request order, commits in commit order, while the writer runs the next
// batch. A BulkWrite chunk commits in a transaction of its own, after the
// small writes queued behind it. A request that fails before writing fails
// alone; one that fails
// after writing (or whose statement failed, which aborts a PostgreSQL
// transaction) makes the writer roll back and run the batch again with one
// SAVEPOINT per request. A failed COMMIT answers every request of the batch
// with its error. Events of a transaction are written together, in
// multi-row INSERTs, before its COMMIT. Reads run on a small pool of reader
// connections.
//
// Durability is the server's: with synchronous_commit=on (PostgreSQL's
// default) a COMMIT returns once its WAL is flushed, so `done` follows a
// durable commit, as with SQLite's synchronous=FULL.
//
// Event ids grow in commit order, across connections too. Each transaction
// that may write events first locks the one row of table event_ids
// (SELECT ... FOR UPDATE) and, before COMMIT, raises it past the ids it gave
// out; a second transaction, on this node or another, waits on that row
// lock until the first one committed (or rolled back), then reads the raised
// value. So ids are handed out in commit order, and a reader that has seen
// id N committed will never see a smaller id commit later: a cursor
// `after_event_id` never misses an event. Ids of rolled-back writes are
// skipped (gaps), never reused. The row lock serialises the writing
// transactions of all nodes (each node's group commit makes that one
// transaction per node at a time); it is held from the transaction's first
// statement to its COMMIT. (Tested with two stores on one schema committing
// at once: PgJobStoreTest.EventIdsFollowCommitOrderAcrossConnections.)
//
// One node per database schema, for now: Open takes a session advisory
// lock, keyed by the schema, on a connection of its own and holds it until
// Shutdown; a second store on the same schema is refused with
// FAILED_PRECONDITION (see Options::exclusive). Several nodes need more than
// this store: dispatch claims in the database, cross-node wake-ups and
// events (LISTEN/NOTIFY), timers fired once, leases handed back by a dead
// node (README, "PostgreSQL").
//
// Not supported: BackupBlocking (FAILED_PRECONDITION: use pg_dump). The
// job counts are one GROUP BY query per call (not kept in memory).
//
// Thread-safe. Owns its connections and threads; Shutdown() (also run by the
// destructor) drains the queue, answers everything and closes the
// connections. Errors follow job_store.h; PostgreSQL errors map through
// StatusFromPg (pg_connection.h): a lost server is UNAVAILABLE, and the
// connections reconnect on their next use.
#ifndef JOBWIRE_SERVER_STORAGE_PG_JOB_STORE_H_
#define JOBWIRE_SERVER_STORAGE_PG_JOB_STORE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/core/ids.h"
#include "server/storage/job_store.h"

namespace jobwire {

class PgConnection;

class PgJobStore final : public JobStore {
 public:
  struct Retention {
    // As SqliteJobStore::Retention.
    absl::Duration terminal_max_age = absl::ZeroDuration();
    int64_t max_terminal_jobs = 0;
    int batch_size = 500;
  };

  struct Options {
    // A libpq connection string or URI ("postgresql://user@host/db",
    // "host=/run/postgresql dbname=jobs"); empty: everything from the PG*
    // environment variables (PGHOST, PGDATABASE, PGPASSFILE, PGSSLMODE...).
    // Passwords come from the string, PGPASSWORD or the password file; they
    // are never logged.
    std::string conninfo;
    // Not owned; must outlive the store. Null means Clock::Real().
    Clock* clock = nullptr;
    Retention retention;
    int max_batch_jobs = 2000;
    int64_t max_batch_bytes = 8 << 20;
    int reader_connections = 4;
    // As SqliteJobStore::Options.
    std::function<std::string(const Job&, const JobEvent&)> webhook_body;
    std::optional<WebhookSpec> default_webhook;
    // Take the single-node lock (see the class comment). False only in tests
    // of the pieces several nodes will share (event id order): two stores on
    // one schema would both dispatch its jobs.
    bool exclusive = true;
  };

  // Connects, takes the single-node lock, migrates the schema and starts
  // the writer. FAILED_PRECONDITION when another node holds the lock or the
  // schema is newer than this jobwire; UNAVAILABLE when PostgreSQL cannot be
  // reached; PERMISSION_DENIED when it refuses the credentials.
  static absl::StatusOr<std::unique_ptr<PgJobStore>> Open(Options options);

  ~PgJobStore() override;
  PgJobStore(const PgJobStore&) = delete;
  PgJobStore& operator=(const PgJobStore&) = delete;

  // JobStore.
  void Submit(std::vector<NewJob> jobs, SubmitCallback done) override;
  void Mutate(std::string id, JobMutation mutation, JobCallback done) override;
  void Delete(std::string id, std::function<absl::Status(const Job&)> check,
              JobCallback done) override;
  void BulkWrite(std::vector<std::string> ids,
                 std::shared_ptr<const BulkWriteSpec> spec,
                 BulkWriteCallback done) override;
  absl::StatusOr<Job> GetJobBlocking(const std::string& id) override;
  absl::StatusOr<std::vector<JobEvent>> ReadJobEventsBlocking(
      const std::string& job_id, int64_t after_seq, int limit) override;
  absl::StatusOr<std::vector<JobEvent>> ReadEventsBlocking(
      int64_t after_event_id, int limit) override;
  void AddCommitListener(CommitListener* listener) override;
  absl::StatusOr<ListJobsResult> ListJobsBlocking(
      const ListJobsQuery& query) override;
  absl::StatusOr<std::vector<QueueStateCount>>
  CountJobsByQueueAndStateBlocking() override;
  absl::StatusOr<int64_t> CountPendingWebhooksBlocking() override;
  absl::StatusOr<int64_t> LastEventIdBlocking() override;
  absl::StatusOr<int64_t> OldestEventIdBlocking() override;
  absl::StatusOr<int64_t> MaxPrunedEventIdBlocking() override;
  absl::Status LoadActiveJobsBlocking(
      const std::function<void(const Job&)>& visitor) override;
  absl::StatusOr<std::optional<std::string>> GetSettingBlocking(
      const std::string& key) override;
  void PutSetting(std::string key, std::string value,
                  StatusCallback done) override;
  absl::StatusOr<std::vector<QueueRow>> ListQueueRowsBlocking() override;
  void UpsertQueue(QueueRow row, StatusCallback done) override;
  absl::StatusOr<int64_t> RunRetentionOnceBlocking() override;
  // FAILED_PRECONDITION: a PostgreSQL database is backed up with pg_dump
  // (or the provider's snapshots), not through jobwired.
  absl::StatusOr<int64_t> BackupBlocking(const std::string& dest_path) override;
  absl::StatusOr<std::vector<WebhookOutboxRow>> PendingWebhooksBlocking(
      int limit) override;
  void RecordWebhookAttempt(WebhookAttempt attempt,
                            StatusCallback done) override;
  absl::StatusOr<WebhookDeliveryPage> ListWebhookDeliveriesBlocking(
      const WebhookDeliveryQuery& query) override;
  void RedeliverWebhook(
      int64_t delivery_id,
      std::function<void(absl::StatusOr<WebhookOutboxRow>)> done) override;
  WriteStats write_stats() const override;
  void Shutdown() override;

  // Sets the observer of committed transactions (not owned; must outlive
  // the store; null to remove), as SqliteJobStore::SetCommitObserver.
  void SetCommitObserver(CommitObserver* observer);

  // Bytes of the store's tables and indexes (pg_total_relation_size).
  absl::StatusOr<int64_t> StorageBytesBlocking();

  // Batches run a second time, with savepoints, because a request failed
  // after writing (or its statement failed).
  int64_t rerun_batches() const { return rerun_batches_.load(); }

  // "user@host:port/dbname" of the store's database (never the password).
  const std::string& description() const { return description_; }

 private:
  class Writer;
  struct WriteOp;
  struct Completion;

  static constexpr size_t kMaxPendingCompletions = 2;

  explicit PgJobStore(Options options);
  absl::Status OpenBlocking();
  void Enqueue(std::unique_ptr<WriteOp> op);
  void WriterLoop();
  void RunBatch(Completion& c);
  // Runs the batch's requests in a new transaction; see SqliteJobStore.
  // Returns false (transaction rolled back) when a request failed after
  // writing and there were no savepoints.
  bool ApplyBatch(std::vector<std::unique_ptr<WriteOp>>& batch, bool savepoints,
                  std::vector<absl::Status>& results,
                  absl::Status& batch_status);
  void CompletionLoop();
  void RunCompletion(Completion& c);
  // Runs `read` on a free reader connection (reconnecting it when needed),
  // mapping PgError; UNAVAILABLE after Shutdown().
  absl::Status WithReader(
      const std::function<absl::Status(PgConnection&)>& read);
  absl::StatusOr<int64_t> QueryIntBlocking(const std::string& sql);
  // Runs `apply` through the writer and waits for its answer.
  absl::Status WriteBlocking(std::function<absl::Status(Writer&)> apply,
                             int64_t jobs);

  const Options options_;
  Clock* const clock_;
  IdGenerator ids_;
  std::string description_;

  // Holds the single-node advisory lock (Options::exclusive).
  std::unique_ptr<PgConnection> lock_conn_;
  std::unique_ptr<Writer> writer_;  // used only by the writer thread
  std::thread writer_thread_;

  std::thread completion_thread_;
  absl::Mutex completion_mu_;  // never held together with mu_
  std::deque<std::unique_ptr<Completion>> completions_
      ABSL_GUARDED_BY(completion_mu_);
  bool completion_stop_ ABSL_GUARDED_BY(completion_mu_) = false;

  absl::Mutex mu_;
  absl::CondVar work_cv_;
  std::deque<std::unique_ptr<WriteOp>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<CommitListener*> listeners_ ABSL_GUARDED_BY(mu_);
  CommitObserver* observer_ ABSL_GUARDED_BY(mu_) = nullptr;
  CommitObserver* batch_observer_ = nullptr;  // writer's copy, per batch
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex readers_mu_;
  absl::CondVar readers_cv_;
  std::vector<std::unique_ptr<PgConnection>> readers_
      ABSL_GUARDED_BY(readers_mu_);
  std::vector<PgConnection*> free_readers_ ABSL_GUARDED_BY(readers_mu_);
  bool readers_closed_ ABSL_GUARDED_BY(readers_mu_) = false;

  absl::Mutex shutdown_mu_;  // serialises Shutdown(); taken before mu_
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;

  std::atomic<int64_t> commits_{0};
  std::atomic<int64_t> write_requests_{0};
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> queue_wait_ns_{0};
  std::atomic<int64_t> apply_ns_{0};
  std::atomic<int64_t> commit_ns_{0};
  std::atomic<int64_t> complete_ns_{0};
  std::atomic<int64_t> rerun_batches_{0};
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_PG_JOB_STORE_H_
