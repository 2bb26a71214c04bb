#include "server/storage/migrations.h"

#include <sqlite3.h>

#include <iterator>

#include "SQLiteCpp/Exception.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/storage/sqlite_status.h"

namespace jobwire {
namespace {

// Times are microseconds since the Unix epoch (NULL: unset); durations are
// microseconds; states and event types use the jobwire.v1 enum numbers.
constexpr const char* kMigrations[] = {
    // 1: initial schema.
    R"sql(
CREATE TABLE jobs (
  id TEXT PRIMARY KEY NOT NULL,
  queue TEXT NOT NULL,
  kind TEXT NOT NULL,
  args_json TEXT NOT NULL DEFAULT '',
  payload BLOB,
  priority INTEGER NOT NULL DEFAULT 0,
  labels TEXT NOT NULL DEFAULT '',
  schedule_time INTEGER,
  max_attempts INTEGER NOT NULL,
  retry_initial_us INTEGER,
  retry_max_us INTEGER,
  retry_multiplier REAL,
  retry_jitter REAL,
  attempt_timeout_us INTEGER NOT NULL DEFAULT 0,
  webhook_url TEXT,
  webhook_events TEXT,
  request_id TEXT,
  state INTEGER NOT NULL,
  progress_done INTEGER,
  progress_total INTEGER,
  progress_message TEXT,
  progress_details TEXT,
  result_data TEXT,
  result_payload BLOB,
  error_code INTEGER,
  error_message TEXT,
  error_details TEXT,
  error_retryable INTEGER,
  attempt INTEGER NOT NULL DEFAULT 0,
  checkpoint BLOB,
  backoff_until INTEGER,
  worker_id TEXT NOT NULL DEFAULT '',
  lease_expire_time INTEGER,
  create_time INTEGER NOT NULL,
  start_time INTEGER,
  update_time INTEGER NOT NULL,
  finish_time INTEGER,
  version INTEGER NOT NULL,
  last_seq INTEGER NOT NULL
);
CREATE UNIQUE INDEX jobs_request_id ON jobs (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX jobs_state_finish ON jobs (state, finish_time);
CREATE INDEX jobs_queue_state ON jobs (queue, state);
CREATE INDEX jobs_priority ON jobs (priority DESC, id);

CREATE TABLE job_labels (
  job_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job_id, key)
) WITHOUT ROWID;
CREATE INDEX job_labels_key_value ON job_labels (key, value);

-- AUTOINCREMENT: event ids are never reused, even after retention deleted
-- the highest ones.
CREATE TABLE job_events (
  event_id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time INTEGER NOT NULL,
  type INTEGER NOT NULL,
  from_state INTEGER NOT NULL DEFAULT 0,
  to_state INTEGER NOT NULL DEFAULT 0,
  reason TEXT NOT NULL DEFAULT '',
  attempt INTEGER NOT NULL DEFAULT 0,
  result_data TEXT,
  result_payload BLOB,
  error_code INTEGER,
  error_message TEXT,
  error_details TEXT,
  error_retryable INTEGER,
  progress_done INTEGER NOT NULL DEFAULT 0,
  progress_total INTEGER NOT NULL DEFAULT 0,
  progress_message TEXT NOT NULL DEFAULT '',
  progress_details TEXT NOT NULL DEFAULT '',
  paths TEXT NOT NULL DEFAULT '',
  log_line TEXT NOT NULL DEFAULT '',
  wh_attempt INTEGER NOT NULL DEFAULT 0,
  wh_http_status INTEGER NOT NULL DEFAULT 0,
  wh_delivered INTEGER NOT NULL DEFAULT 0,
  wh_error TEXT NOT NULL DEFAULT '',
  queue TEXT NOT NULL,
  kind TEXT NOT NULL,
  priority INTEGER NOT NULL,
  labels TEXT NOT NULL,
  run_after INTEGER,
  job_state INTEGER NOT NULL,
  UNIQUE (job_id, seq)
);

CREATE TABLE queues (
  name TEXT PRIMARY KEY NOT NULL,
  paused INTEGER NOT NULL DEFAULT 0,
  resume_time INTEGER,
  concurrency_limit INTEGER NOT NULL DEFAULT 0,
  weight INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE settings (
  key TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
);

-- Filled by the webhooks component (later).
CREATE TABLE webhook_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  event_id INTEGER NOT NULL,
  url TEXT NOT NULL,
  body BLOB,
  attempt INTEGER NOT NULL DEFAULT 0,
  next_attempt_time INTEGER,
  create_time INTEGER NOT NULL
);
CREATE INDEX webhook_outbox_next ON webhook_outbox (next_attempt_time);
)sql",
    // 2: a cancel or pause asked of a running job's worker, kept across
    // restarts (core/job.h StopRequest).
    R"sql(
ALTER TABLE jobs ADD COLUMN stop_request INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN stop_reason TEXT NOT NULL DEFAULT '';
)sql",
    // 3: job_events without AUTOINCREMENT (every insert read and rewrote
    // sqlite_sequence). The writer assigns event ids itself, above every id
    // the log ever held: the old table's high-water mark (above MAX(event_id)
    // when retention deleted the newest events) moves to the setting
    // 'events.high_water', which the store reads at open. Rows keep their
    // event_id.
    R"sql(
INSERT OR REPLACE INTO settings (key, value)
SELECT 'events.high_water', CAST(COALESCE(MAX(hw), 0) AS TEXT) FROM (
  SELECT seq AS hw FROM sqlite_sequence WHERE name = 'job_events'
  UNION ALL SELECT MAX(event_id) FROM job_events
  UNION ALL SELECT CAST(value AS INTEGER) FROM settings
    WHERE key = 'events.high_water'
);
ALTER TABLE job_events RENAME TO job_events_autoincrement;
CREATE TABLE job_events (
  event_id INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time INTEGER NOT NULL,
  type INTEGER NOT NULL,
  from_state INTEGER NOT NULL DEFAULT 0,
  to_state INTEGER NOT NULL DEFAULT 0,
  reason TEXT NOT NULL DEFAULT '',
  attempt INTEGER NOT NULL DEFAULT 0,
  result_data TEXT,
  result_payload BLOB,
  error_code INTEGER,
  error_message TEXT,
  error_details TEXT,
  error_retryable INTEGER,
  progress_done INTEGER NOT NULL DEFAULT 0,
  progress_total INTEGER NOT NULL DEFAULT 0,
  progress_message TEXT NOT NULL DEFAULT '',
  progress_details TEXT NOT NULL DEFAULT '',
  paths TEXT NOT NULL DEFAULT '',
  log_line TEXT NOT NULL DEFAULT '',
  wh_attempt INTEGER NOT NULL DEFAULT 0,
  wh_http_status INTEGER NOT NULL DEFAULT 0,
  wh_delivered INTEGER NOT NULL DEFAULT 0,
  wh_error TEXT NOT NULL DEFAULT '',
  queue TEXT NOT NULL,
  kind TEXT NOT NULL,
  priority INTEGER NOT NULL,
  labels TEXT NOT NULL,
  run_after INTEGER,
  job_state INTEGER NOT NULL,
  UNIQUE (job_id, seq)
);
INSERT INTO job_events (
  event_id, job_id, seq, time, type, from_state, to_state, reason, attempt,
  result_data, result_payload, error_code, error_message, error_details,
  error_retryable, progress_done, progress_total, progress_message,
  progress_details, paths, log_line, wh_attempt, wh_http_status, wh_delivered,
  wh_error, queue, kind, priority, labels, run_after, job_state)
SELECT
  event_id, job_id, seq, time, type, from_state, to_state, reason, attempt,
  result_data, result_payload, error_code, error_message, error_details,
  error_retryable, progress_done, progress_total, progress_message,
  progress_details, paths, log_line, wh_attempt, wh_http_status, wh_delivered,
  wh_error, queue, kind, priority, labels, run_after, job_state
FROM job_events_autoincrement ORDER BY event_id;
DROP TABLE job_events_autoincrement;
)sql",
    // 4: indexes that a job's state changes leave alone. finish_time is set
    // exactly when the state is terminal (SUCCEEDED, FAILED, CANCELLED; core/
    // transitions.cc and worker_transitions.cc keep it so), hence
    // "finish_time IS NULL" selects the active jobs. SQLite touches an index
    // on UPDATE only when the statement sets a column of its key or of its
    // WHERE: assigning a job touches none of these three, finishing it moves
    // it from jobs_active to the finished ones, a retry moves it back.
    // jobs_active: recovery, ListJobs of active states (in id order).
    // jobs_finished: retention by age and by count.
    // jobs_finished_state: ListQueues counts (finish_time in the key makes
    // it covering for them); see 6 for ListJobs of a terminal state.
    // The UPDATEs repair rows that an older jobwire wrote against the rule.
    R"sql(
UPDATE jobs SET finish_time = update_time
  WHERE finish_time IS NULL AND state IN (5, 6, 7);
UPDATE jobs SET finish_time = NULL
  WHERE finish_time IS NOT NULL AND state NOT IN (5, 6, 7);
DROP INDEX IF EXISTS jobs_state_finish;
DROP INDEX IF EXISTS jobs_queue_state;
CREATE INDEX IF NOT EXISTS jobs_active ON jobs (id) WHERE finish_time IS NULL;
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finish_time, id)
  WHERE finish_time IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_finished_state
  ON jobs (state, queue, finish_time) WHERE finish_time IS NOT NULL;
)sql",
    // 5: job_labels_key_value was written by every submit with labels and
    // read by nothing: a label filter is a subquery correlated on the job
    // (list_query.cc), which SQLite answers from the primary key
    // (job_id, key). One B-tree less per labelled submit.
    R"sql(
DROP INDEX IF EXISTS job_labels_key_value;
)sql",
    // 6: pages of one terminal state in id order (ListJobs, and the filter
    // of a BulkUpdateJobs retry or delete, "state = FAILED"): jobs_finished_
    // state has the state but not the id, so every page sorted every job of
    // that state (a bulk delete of 500k cancelled jobs: 10k jobs/s, most of
    // it sorting). Here a page is one index range. Written only when a job
    // finishes, is retried or is deleted.
    R"sql(
CREATE INDEX IF NOT EXISTS jobs_finished_state_id ON jobs (state, id)
  WHERE finish_time IS NOT NULL;
)sql",
    // 7: the webhook outbox, now written (in the transaction of the event
    // that causes a delivery) and sent by server/webhooks. The table of 1
    // was never written, so it is replaced. state: 0 pending, 1 delivered,
    // 2 dead (WebhookDeliveryState). webhook_outbox_due serves the sender
    // (pending rows by time), webhook_outbox_job the operators' listing.
    R"sql(
DROP TABLE IF EXISTS webhook_outbox;
CREATE TABLE webhook_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  event_id INTEGER NOT NULL,
  type TEXT NOT NULL,
  url TEXT NOT NULL,
  body TEXT NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_time INTEGER NOT NULL,
  last_attempt_time INTEGER,
  last_status INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  create_time INTEGER NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_time)
  WHERE state = 0;
CREATE INDEX webhook_outbox_job ON webhook_outbox (job_id, id);
)sql",
};

// SQLite's side of the runner: the version is PRAGMA user_version, and
// BEGIN IMMEDIATE takes the write lock before the version is read (a
// deferred transaction could read it, then fail to upgrade to a writer).
class SqliteMigrationDialect : public MigrationDialect {
 public:
  explicit SqliteMigrationDialect(SQLite::Database& db) : db_(db) {}

  absl::Status Begin() override {
    return Run([&] { db_.exec("BEGIN IMMEDIATE"); });
  }
  absl::StatusOr<int> ReadVersion() override {
    int version = 0;
    JW_RETURN_IF_ERROR(
        Run([&] { version = db_.execAndGet("PRAGMA user_version").getInt(); }));
    return version;
  }
  absl::Status Apply(const char* script, int version) override {
    return Run([&] {
      db_.exec(script);
      db_.exec(absl::StrCat("PRAGMA user_version = ", version));
    });
  }
  absl::Status Commit() override {
    return Run([&] { db_.exec("COMMIT"); });
  }
  void Rollback() override {
    if (sqlite3_get_autocommit(db_.getHandle()) != 0) return;
    (void)Run([&] { db_.exec("ROLLBACK"); });
  }

 private:
  template <typename F>
  static absl::Status Run(F f) {
    return StatusOfCall<SQLite::Exception>(&StatusFromSqlite, f);
  }

  SQLite::Database& db_;
};

}  // namespace

int LatestSchemaVersion() { return static_cast<int>(std::size(kMigrations)); }

absl::Status MigrateBlocking(SQLite::Database& db) {
  return MigrateBlocking(db, LatestSchemaVersion()).status();
}

absl::StatusOr<MigrationRun> MigrateBlocking(SQLite::Database& db, int target) {
  SqliteMigrationDialect dialect(db);
  return RunMigrationsBlocking(dialect, kMigrations, target);
}

}  // namespace jobwire
