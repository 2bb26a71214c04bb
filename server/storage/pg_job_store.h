// PgJobStore: the JobStore on PostgreSQL (libpq), for one jobwired node.
//
// Same contract as SqliteJobStore (job_store.h), same tables and meaning
// (pg_migrations.h). Writes go through the same GroupCommit engine
// (group_commit.h): one writer thread, many requests per transaction,
// answers in order on the completion thread, bulk chunks alone, a rerun
// with savepoints when a request failed after writing. Here a request whose
// statement failed counts as having written (PostgreSQL aborts the whole
// transaction), and a lost connection loses the batch (UNAVAILABLE); the
// next batch reconnects. A failed COMMIT answers every request of the batch
// with its error. A batch's new jobs (without a request_id) and its events
// are written together, in multi-row INSERTs, before the next statement
// that needs them or the COMMIT: each statement is a round trip to the
// server. The writer keeps the rows of jobs it wrote or read (small ones,
// bounded), so a Mutate of such a job skips its read; sound because one
// node writes the schema (below), and forgotten for whatever a failed
// request or a rolled-back transaction touched. Reads run on a small pool of
// reader connections.
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
// Several nodes (jobwired processes) serve one schema. Each has a random
// id and a row in `nodes` with a heartbeat (a thread of the store, on its
// own connection, every Options::heartbeat_interval, on the database's
// clock). Every write transaction holds the event_ids row lock, so the
// nodes' transactions run one at a time, and each sees every commit before
// it: the writer reads every job it mutates as committed (that lock keeps
// every other node's writes out until this transaction ends, so no row lock
// is taken on top; every write of `jobs` must stay in a writer
// transaction) and keeps no rows between transactions, so a state check
// decides once across nodes (an Assign racing on two nodes
// applies on one; the other fails as a stale claim does). The jobs a
// batch's requests will load are read in one statement right after that
// lock (Writer::Prefetch). A job that starts
// an attempt gets lease_owner = this node's id; leaving RUNNING clears it.
//
// Webhook deliveries: PendingWebhooksBlocking claims the due rows for this
// node (claimed_by, claim_expire = the database's now + node_ttl; UPDATE
// of a FOR UPDATE SKIP LOCKED pick) and leaves out the rows another node
// holds; RecordWebhookAttempt releases this node's claim. A dead node's
// claims expire and the next read of another node takes them.
//
// Events across nodes: inside each write transaction (which holds the
// event_ids lock, so every earlier commit is visible), Begin reads the
// events other nodes committed since this node's cursor, and the commit
// hands them to the CommitListeners before the transaction's own, marked
// JobEvent::remote: every node's listeners see the whole log in event_id
// order, without gaps or repeats. Each transaction that wrote NOTIFYs
// channel "jobwire" with its node id; the node thread LISTENs on its own
// connection and, on another node's notification, queues an empty write
// (a catch-up) so an idle node hears of new events too. While that
// connection is lost, the node thread polls (a catch-up per second) and
// reconnects.
//
// A node whose heartbeat is older than Options::node_ttl is dead: any node
// deletes its row, and the RUNNING jobs whose lease_owner has no row are
// handed to the OrphanHandler (the Dispatcher ends their leases with a
// Mutate that checks the attempt, so they are handed back once).
// LoadActiveJobsBlocking leaves out the RUNNING jobs whose lease_owner is
// another node that still has a row (its own, or an orphan to come).
//
// Settings and queues (dispatch and queue pauses, limits, weights) are rows
// too: a transaction that wrote them NOTIFYs "<node id>:gates", and the
// other nodes call their GatesHandler, which re-reads them. Timers need no
// coordination: each node keeps its own for every job it hears of, and a
// timer fires a Mutate whose state check (in a writer transaction) applies
// once.
//
// Not supported: BackupBlocking (FAILED_PRECONDITION: use pg_dump). Job
// counts are a GROUP BY (every node's writes move them).
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
#include <map>
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
#include "server/storage/group_commit.h"
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
    // This node's name in GetServerInfo; empty: "host:pid".
    std::string node_name;
    // A node whose heartbeat is older than this is dead (its leases are
    // handed back).
    absl::Duration node_ttl = absl::Seconds(30);
    absl::Duration heartbeat_interval = absl::Seconds(1);
  };

  // Connects, migrates the schema, registers the node and starts the writer
  // and the node thread. FAILED_PRECONDITION when the schema is newer than
  // this jobwire; UNAVAILABLE when PostgreSQL cannot be reached;
  // PERMISSION_DENIED when it refuses the credentials.
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
      const std::string& job_id, int64_t after_seq, int limit,
      size_t max_bytes = 0) override;
  absl::StatusOr<std::vector<JobEvent>> ReadEventsBlocking(
      int64_t after_event_id, int limit, size_t max_bytes = 0) override;
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
  absl::StatusOr<std::vector<NodeInfo>> ListNodesBlocking() override;
  void Shutdown() override;

  // Called on the node thread with (job id, attempt) of each RUNNING job
  // whose node is dead, on every pass until it is no longer one; must not
  // block. Set by the composition root (the Dispatcher hands them back).
  using OrphanHandler = std::function<void(const std::string&, int32_t)>;
  void SetOrphanHandler(OrphanHandler handler);

  // Called on the node thread when another node wrote settings or queues
  // (dispatch and queue pauses, limits, weights), and after a lost LISTEN
  // connection (each poll): the handler re-reads them. May block briefly
  // (reads). Set by the composition root (the Dispatcher's gates).
  void SetGatesHandler(std::function<void()> handler);

  const std::string& node_id() const { return node_id_; }

  // Sets the observer of committed transactions (not owned; must outlive
  // the store; null to remove), as SqliteJobStore::SetCommitObserver.
  void SetCommitObserver(CommitObserver* observer);

  // Bytes of the store's tables and indexes (pg_total_relation_size).
  absl::StatusOr<int64_t> StorageBytesBlocking();

  // Batches run a second time, with savepoints, because a request failed
  // after writing (or its statement failed).
  int64_t rerun_batches() const;

  // "user@host:port/dbname" of the store's database (never the password).
  const std::string& description() const { return description_; }

 private:
  class Writer;
  struct WriteOp;

  explicit PgJobStore(Options options);
  absl::Status OpenBlocking();
  // Hands `op` to the GroupCommit.
  void Enqueue(std::unique_ptr<WriteOp> op);
  // Runs `read` on a free reader connection (reconnecting it when needed),
  // mapping PgError; UNAVAILABLE after Shutdown().
  absl::Status WithReader(
      const std::function<absl::Status(PgConnection&)>& read);
  absl::StatusOr<int64_t> QueryIntBlocking(const std::string& sql);
  // Runs `apply` through the writer and waits for its answer.
  absl::Status WriteBlocking(std::function<absl::Status(Writer&)> apply,
                             int64_t jobs);
  // The node thread: heartbeat, dead nodes' leases, LISTEN (or polling).
  void NodeLoop();
  void Heartbeat(PgConnection& conn);
  void HandBackOrphans(PgConnection& conn);
  // Queues an empty write, so the writer reads and hands out other nodes'
  // events; at most one queued at a time.
  void CatchUp();
  void GatesChanged();

  const Options options_;
  Clock* const clock_;
  IdGenerator ids_;
  std::string description_;

  // The writing connection, used by engine_'s writer thread only.
  std::unique_ptr<Writer> writer_;
  // Queue, group commit, ordered answers (group_commit.h).
  std::unique_ptr<GroupCommit> engine_;

  absl::Mutex readers_mu_;
  absl::CondVar readers_cv_;
  std::vector<std::unique_ptr<PgConnection>> readers_
      ABSL_GUARDED_BY(readers_mu_);
  std::vector<PgConnection*> free_readers_ ABSL_GUARDED_BY(readers_mu_);
  bool readers_closed_ ABSL_GUARDED_BY(readers_mu_) = false;

  std::string node_id_;
  std::string node_name_;
  std::atomic<bool> catch_up_pending_{false};
  std::thread node_thread_;
  absl::Mutex node_mu_;
  bool node_stop_ ABSL_GUARDED_BY(node_mu_) = false;
  OrphanHandler orphan_handler_ ABSL_GUARDED_BY(node_mu_);
  std::function<void()> gates_handler_ ABSL_GUARDED_BY(node_mu_);

  absl::Mutex shutdown_mu_;  // serialises Shutdown()
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_PG_JOB_STORE_H_
