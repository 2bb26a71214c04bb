// SqliteJobStore: the JobStore on an embedded SQLite database.
//
// A facade over two parts. Writes go through a GroupCommit (group_commit.h:
// the writer and completion threads, the queue, batching into one
// transaction, the savepoint rerun of a request that failed halfway, ordered
// answers, shutdown draining, write stats), whose transaction is this
// store's Writer: the only writing connection, which runs each request's job
// SQL. Reads run on reader connections. So one writer thread commits every
// pending write request (up to Options::max_batch_jobs jobs or
// max_batch_bytes of payload) in ONE transaction; the completion thread gives
// each commit's events to the CommitListeners and only then answers its
// requests' `done`s, commit after commit. One failing request (a mutation's
// precondition, an invalid job) fails alone: requests fail before they
// write, so nothing needs undoing; a request that fails after writing part
// of its rows (a SQLite error halfway through a multi-job Submit) makes the
// writer roll the transaction back and run the batch again with one
// SAVEPOINT per request. A failed COMMIT (or an error that made SQLite roll
// the transaction back, such as a full disk) answers every request of the
// batch with that error: nothing is acknowledged that is not durable.
//
// A BulkWrite (one chunk of a bulk update) is one bulk request of the
// GroupCommit: never committed with other writes, after the small writes
// queued behind it, and with the bulk requests queued right after it while
// no small write waits, up to Options::max_bulk_jobs jobs per commit
// (group_commit.h). Events are written in multi-row INSERTs (up to 64 per
// statement) at the end of each request.
//
// The writer keeps the rows of active jobs it wrote in a bounded cache
// (job_row_cache.h), so that most Mutates rewrite a row without reading it
// first; rows touched by a rolled-back request or transaction are dropped
// from it, so it never differs from what the transaction sees.
//
// The writer also assigns event ids (job_events has no AUTOINCREMENT, whose
// sqlite_sequence read and update cost ~14% of each event insert): at open
// the next id is one above the largest of MAX(event_id), the highest id
// retention ever deleted and the high-water mark the schema migration carried
// over (all durable, retention's in the same transaction as its deletes), and
// it only grows. Ids of rolled-back writes are skipped, never reused: event
// ids increase in commit order but may have gaps; per-job seq stays dense.
//
// Reads run on a small pool of reader connections beside the writer (WAL).
// The database is in WAL mode with synchronous=FULL by default.
//
// Thread-safe. Owns its connections and threads; Shutdown() (also run by the
// destructor) drains the queue, runs every pending completion and closes
// everything. A `done` or listener must not call Shutdown() (it runs on the
// completion thread, which Shutdown joins). Errors follow
// job_store.h; SQLite errors map through sqlite_status.h.
#ifndef JOBWIRE_SERVER_STORAGE_SQLITE_JOB_STORE_H_
#define JOBWIRE_SERVER_STORAGE_SQLITE_JOB_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/core/ids.h"
#include "server/storage/group_commit.h"
#include "server/storage/job_store.h"

struct sqlite3;

namespace jobwire {

class SqliteJobStore final : public JobStore {
 public:
  // How hard each commit waits for the disk.
  //   kFull:   fsync on every commit. A commit that was acknowledged survives
  //            power loss and OS crashes. The default.
  //   kNormal: in WAL mode, fsync only at checkpoints. Survives a crash of
  //            jobwired, but the last acknowledged commits may be LOST on
  //            power loss or an OS crash (the database stays consistent).
  //   kOff:    no fsync at all. An OS crash or power loss may lose recent
  //            commits and may even CORRUPT the database. For tests and
  //            throwaway data only.
  enum class Synchronous { kFull, kNormal, kOff };

  struct Retention {
    // Terminal jobs whose finish_time is older than this are deleted. Zero:
    // no age limit.
    absl::Duration terminal_max_age = absl::ZeroDuration();
    // At most this many terminal jobs are kept (the oldest finished go
    // first). Zero: no count limit.
    int64_t max_terminal_jobs = 0;
    // Jobs deleted per transaction.
    int batch_size = 500;
  };

  struct Options {
    // Database file. ":memory:" makes a private database in a fresh temporary
    // file that Shutdown() removes (several connections must share it).
    std::string path = ":memory:";
    Synchronous synchronous = Synchronous::kFull;
    // Not owned; must outlive the store. Null means Clock::Real().
    Clock* clock = nullptr;
    Retention retention;
    // Group commit caps, per transaction. A single request above the caps
    // still goes in, alone.
    int max_batch_jobs = 2000;
    int64_t max_batch_bytes = 8 << 20;
    // Jobs of the BulkWrites one commit may take while no other write waits
    // (GroupCommit::Options::max_bulk_jobs); 0: each BulkWrite commits alone.
    int64_t max_bulk_jobs = 4000;
    // How long a connection waits for a lock held by another process.
    absl::Duration busy_timeout = absl::Seconds(5);
    int reader_connections = 4;
    // WAL checkpoints: each time the WAL has grown by this many pages, one
    // runs on its own thread and connection and copies them into the
    // database file (and fsyncs it) beside the writer's commits. It cannot
    // finish the WAL while the writer keeps appending, so the writer then
    // copies the few pages committed meanwhile itself, between two batches;
    // after that its next commit starts the WAL over from its beginning
    // (overwriting, which syncs faster than appending) instead of growing it.
    // 0: SQLite's automatic checkpoints on the writer instead.
    int checkpoint_pages = 1000;
    // Cap on the database size in pages (PRAGMA max_page_count); 0: none.
    // Writes beyond it fail like a full disk (RESOURCE_EXHAUSTED, DISK_FULL).
    int64_t max_db_pages = 0;
    // The writer keeps a copy of the rows of up to this many active jobs
    // (small ones, within 64 MiB, see job_row_cache.h), so a Mutate of a
    // recently written job does not read its row back from SQLite. 0
    // disables it.
    int64_t row_cache_jobs = 500'000;
    // When a commit is done and no other write is queued and the completion
    // thread is idle, the writer runs the commit's listeners and `done`s
    // itself, saving a thread wake-up on the answer's path (what a single
    // caller waits for). A slow `done` then holds up the writer until it
    // returns (`done`s must not block anyway). False: always the completion
    // thread.
    bool complete_on_idle_writer = true;
    // With complete_on_idle_writer, a small commit of Submits only, of at
    // most this many requests plus events, is completed by the writer even
    // when more writes are queued (the completion thread being idle): many
    // concurrent single-job callers then cost no thread wake-up per commit.
    // Other commits (a large SubmitJobs batch, worker reports, whose
    // listeners dispatch and stream) still go to the completion thread,
    // whose work overlaps the writer's next transaction. 0: only an idle
    // writer completes.
    int inline_completion_items = 128;
    // With synchronous kFull, the writer's connection gathers each commit's
    // WAL writes into one pwrite before the commit's sync
    // (wal_write_buffer.h): about 20 system calls fewer for a one-job
    // commit. Ignored with kNormal and kOff, whose commits do not sync.
    bool gather_wal_writes = true;
    // Builds the body of a webhook delivery (the JSON envelope) from an
    // event a job's webhook wants (core/webhook_event.h) and the job as of
    // that event. When set, the writer calls it inside the event's
    // transaction and writes a webhook_outbox row with the body, so a
    // committed event never lacks its delivery; it must be pure and fast
    // (it runs on the writer thread). Null: no outbox rows are written.
    std::function<std::string(const Job&, const JobEvent&)> webhook_body;
    // The webhook of jobs that have none of their own (server-wide, e.g.
    // --webhook-url); used only with webhook_body. nullopt: none.
    std::optional<WebhookSpec> default_webhook;
  };

  // Counters for tests and benchmarks.
  struct Stats {
    int64_t commits = 0;         // transactions committed
    int64_t write_requests = 0;  // requests answered after a successful commit
    int64_t checkpoints = 0;     // background WAL checkpoints run
    // Checkpoints the writer ran to finish a background one (copying the
    // pages committed while it ran).
    int64_t writer_checkpoints = 0;
    // Batches run a second time, with savepoints, because a request failed
    // after writing part of its rows.
    int64_t rerun_batches = 0;
    // Mutates that found their job's row in the writer's row cache, and
    // those that read it from SQLite.
    int64_t row_cache_hits = 0;
    int64_t row_cache_misses = 0;
  };

  // Opens (creating if needed) and migrates the database and starts the
  // writer. FAILED_PRECONDITION for a database from a newer jobwire; the
  // SQLite error mapping otherwise.
  static absl::StatusOr<std::unique_ptr<SqliteJobStore>> Open(Options options);

  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  // JobStore.
  void Submit(std::vector<NewJob> jobs, SubmitCallback done) override;
  void Mutate(std::string id, JobMutation mutation, JobCallback done) override;
  void Delete(std::string id, std::function<absl::Status(const Job&)> check,
              JobCallback done) override;
  // Loads the rows the row cache lacks in one SELECT, runs the mutation (or
  // the delete's checks) job by job, then writes the chunk with few
  // statements: one UPDATE per distinct change (same columns, same values:
  // a patch or an action usually makes one or a few), version and last_seq
  // bumped in SQL, the events in multi-row INSERTs, deletes as one DELETE
  // per table. A change of labels goes row by row.
  void BulkWrite(std::vector<std::string> ids,
                 std::shared_ptr<const BulkWriteSpec> spec,
                 BulkWriteCallback done) override;
  absl::StatusOr<Job> GetJobBlocking(const std::string& id) override;
  // The same default as JobStore's (a default is bound by the static type).
  absl::StatusOr<std::vector<JobEvent>> ReadJobEventsBlocking(
      const std::string& job_id, int64_t after_seq, int limit,
      size_t max_bytes = 0) override;
  absl::StatusOr<std::vector<JobEvent>> ReadEventsBlocking(
      int64_t after_event_id, int limit, size_t max_bytes = 0) override;
  void AddCommitListener(CommitListener* listener) override;
  absl::StatusOr<ListJobsResult> ListJobsBlocking(
      const ListJobsQuery& query) override;
  // Reads each job's id, priority and update_time only.
  absl::StatusOr<ListJobsResult> ListJobKeysBlocking(
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
  // SQLite's online backup API from a fresh read-only connection, in one
  // step: one read transaction, so the copy is one commit's state; in WAL
  // mode it holds up no writer (a checkpoint cannot pass it meanwhile).
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
  void Shutdown() override;

  // Sets the observer of committed transactions (not owned; must outlive the
  // store; null to remove). Takes effect from the next batch the writer
  // takes. Thread-safe.
  void SetCommitObserver(CommitObserver* observer);

  Stats stats() const;
  WriteStats write_stats() const override;
  // The database file (a temporary one for ":memory:").
  const std::string& path() const { return path_; }

 private:
  class Connection;
  class Writer;
  struct WriteOp;
  struct MutateOp;
  struct SubmitOp;
  struct BulkOp;

  SqliteJobStore(Options options, std::string path, std::string temp_dir);
  // ListJobsBlocking, or with `keys_only` ListJobKeysBlocking.
  absl::StatusOr<ListJobsResult> ListPageBlocking(const ListJobsQuery& query,
                                                  bool keys_only);
  absl::Status OpenBlocking();
  // Raises max_pruned_event_id_ to `event_id` unless it is higher already.
  void RaiseMaxPrunedEventId(int64_t event_id);
  // Hands `op` to the GroupCommit.
  void Enqueue(std::unique_ptr<WriteOp> op);
  // Writer, between batches: after a background checkpoint, copies the WAL
  // pages committed while it ran, so that the next commit restarts the WAL.
  void FinishCheckpoint();
  void CheckpointLoop();
  static int OnWalCommit(void* store, sqlite3* db, const char* name, int pages);
  // The first column of the first row of `sql` (0 when none or NULL).
  absl::StatusOr<int64_t> QueryIntBlocking(const std::string& sql);
  // Runs `read` on a reader connection, mapping SQLite exceptions;
  // UNAVAILABLE after Shutdown().
  absl::Status WithReader(const std::function<absl::Status(Connection&)>& read);
  // UNAVAILABLE after Shutdown() closed the readers.
  absl::Status ReadersOpen();

  const Options options_;
  Clock* const clock_;
  const std::string path_;
  const std::string temp_dir_;  // non-empty for ":memory:"
  IdGenerator ids_;

  // Used only by the writer thread (the engine's), and by Open before it.
  std::unique_ptr<Writer> writer_;
  // The write path, over writer_; made once writer_ is open. Shut down
  // before writer_ closes.
  std::unique_ptr<GroupCommit> engine_;

  // Background WAL checkpoints (see Options::checkpoint_pages).
  std::unique_ptr<Connection> checkpointer_;
  std::thread checkpoint_thread_;
  absl::Mutex checkpoint_mu_;
  absl::CondVar checkpoint_cv_;
  bool checkpoint_wanted_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  bool checkpoint_stop_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  std::atomic<int64_t> checkpoints_{0};
  std::atomic<int64_t> writer_checkpoints_{0};
  // Set by the checkpoint thread when it is done, taken by the writer, which
  // then checkpoints what was committed meanwhile (FinishCheckpoint).
  std::atomic<bool> finish_checkpoint_{false};
  // Writer thread only (the WAL hook runs on it): the WAL size in pages at
  // which the next background checkpoint is asked for, and the size after
  // the last commit (a smaller one means the WAL started over).
  int checkpoint_at_pages_ = 0;
  int wal_pages_ = 0;

  absl::Mutex readers_mu_;
  absl::CondVar readers_cv_;
  std::vector<std::unique_ptr<Connection>> readers_
      ABSL_GUARDED_BY(readers_mu_);
  std::vector<Connection*> free_readers_ ABSL_GUARDED_BY(readers_mu_);
  bool readers_closed_ ABSL_GUARDED_BY(readers_mu_) = false;

  absl::Mutex shutdown_mu_;  // serialises Shutdown()
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;

  std::atomic<int64_t> row_cache_hits_{0};
  std::atomic<int64_t> row_cache_misses_{0};
  std::atomic<int64_t> max_pruned_event_id_{0};
  // The highest event_id committed (or, at open, ever given out): raised by
  // the writer after each commit. See LastEventIdBlocking.
  std::atomic<int64_t> last_event_id_{0};
  // Jobs per (queue, state), only counts above zero, as of the last commit:
  // counted once at open (one GROUP BY), then moved by the writer right
  // after each COMMIT by the changes its transaction recorded (inserts,
  // deletes, queue and state changes; see Writer::CountJob). Taken after
  // nothing else; held for a map walk.
  absl::Mutex counts_mu_;
  std::map<std::pair<std::string, JobState>, int64_t> job_counts_
      ABSL_GUARDED_BY(counts_mu_);
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_SQLITE_JOB_STORE_H_
