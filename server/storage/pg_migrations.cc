#include "server/storage/pg_migrations.h"

#include <iterator>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace jobwire {
namespace {

// See migrations.cc for the meaning of each column and index; this is its
// schema 7 in PostgreSQL's dialect.
constexpr const char* kPgMigrations[] = {
    // 1: initial schema.
    R"sql(
CREATE TABLE jobs (
  id TEXT COLLATE "C" PRIMARY KEY,
  queue TEXT COLLATE "C" NOT NULL,
  kind TEXT NOT NULL,
  args_json TEXT NOT NULL DEFAULT '',
  payload BYTEA,
  priority INTEGER NOT NULL DEFAULT 0,
  labels TEXT NOT NULL DEFAULT '',
  schedule_time BIGINT,
  max_attempts INTEGER NOT NULL,
  retry_initial_us BIGINT,
  retry_max_us BIGINT,
  retry_multiplier DOUBLE PRECISION,
  retry_jitter DOUBLE PRECISION,
  attempt_timeout_us BIGINT NOT NULL DEFAULT 0,
  webhook_url TEXT,
  webhook_events TEXT,
  request_id TEXT,
  state INTEGER NOT NULL,
  progress_done BIGINT,
  progress_total BIGINT,
  progress_message TEXT,
  progress_details TEXT,
  result_data TEXT,
  result_payload BYTEA,
  error_code INTEGER,
  error_message TEXT,
  error_details TEXT,
  error_retryable INTEGER,
  attempt INTEGER NOT NULL DEFAULT 0,
  checkpoint BYTEA,
  backoff_until BIGINT,
  worker_id TEXT NOT NULL DEFAULT '',
  lease_expire_time BIGINT,
  stop_request INTEGER NOT NULL DEFAULT 0,
  stop_reason TEXT NOT NULL DEFAULT '',
  create_time BIGINT NOT NULL,
  start_time BIGINT,
  update_time BIGINT NOT NULL,
  finish_time BIGINT,
  version BIGINT NOT NULL,
  last_seq BIGINT NOT NULL
);
CREATE UNIQUE INDEX jobs_request_id ON jobs (request_id)
  WHERE request_id IS NOT NULL;
CREATE INDEX jobs_priority ON jobs (priority DESC, id);
CREATE INDEX jobs_active ON jobs (id) WHERE finish_time IS NULL;
CREATE INDEX jobs_finished ON jobs (finish_time, id)
  WHERE finish_time IS NOT NULL;
CREATE INDEX jobs_finished_state ON jobs (state, queue, finish_time)
  WHERE finish_time IS NOT NULL;
CREATE INDEX jobs_finished_state_id ON jobs (state, id)
  WHERE finish_time IS NOT NULL;

CREATE TABLE job_labels (
  job_id TEXT COLLATE "C" NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job_id, key)
);

CREATE TABLE job_events (
  event_id BIGINT PRIMARY KEY,
  job_id TEXT COLLATE "C" NOT NULL,
  seq BIGINT NOT NULL,
  time BIGINT NOT NULL,
  type INTEGER NOT NULL,
  from_state INTEGER NOT NULL DEFAULT 0,
  to_state INTEGER NOT NULL DEFAULT 0,
  reason TEXT NOT NULL DEFAULT '',
  attempt INTEGER NOT NULL DEFAULT 0,
  result_data TEXT,
  result_payload BYTEA,
  error_code INTEGER,
  error_message TEXT,
  error_details TEXT,
  error_retryable INTEGER,
  progress_done BIGINT NOT NULL DEFAULT 0,
  progress_total BIGINT NOT NULL DEFAULT 0,
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
  run_after BIGINT,
  job_state INTEGER NOT NULL,
  UNIQUE (job_id, seq)
);

-- The next event id, one row. Every transaction that writes events locks
-- it first and raises it before COMMIT, so ids are handed out in commit
-- order across connections (pg_job_store.h).
CREATE TABLE event_ids (
  one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
  next_id BIGINT NOT NULL
);
INSERT INTO event_ids (next_id) VALUES (1);

CREATE TABLE queues (
  name TEXT COLLATE "C" PRIMARY KEY,
  paused INTEGER NOT NULL DEFAULT 0,
  resume_time BIGINT,
  concurrency_limit INTEGER NOT NULL DEFAULT 0,
  weight INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE settings (
  key TEXT COLLATE "C" PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE webhook_outbox (
  id BIGSERIAL PRIMARY KEY,
  job_id TEXT COLLATE "C" NOT NULL,
  event_id BIGINT NOT NULL,
  type TEXT NOT NULL,
  url TEXT NOT NULL,
  body TEXT NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_time BIGINT NOT NULL,
  last_attempt_time BIGINT,
  last_status INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  create_time BIGINT NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_time)
  WHERE state = 0;
CREATE INDEX webhook_outbox_job ON webhook_outbox (job_id, id);
)sql",
    // 2: several nodes. A row per live node with its heartbeat (microseconds
    // since the epoch); the node that holds a RUNNING job's lease.
    R"sql(
CREATE TABLE nodes (
  id TEXT COLLATE "C" PRIMARY KEY,
  name TEXT NOT NULL,
  start_time BIGINT NOT NULL,
  heartbeat_time BIGINT NOT NULL
);
ALTER TABLE jobs ADD COLUMN lease_owner TEXT COLLATE "C";
CREATE INDEX jobs_lease_owner ON jobs (lease_owner)
  WHERE lease_owner IS NOT NULL;
)sql",
    // 3: webhook deliveries claimed by one node at a time. The node sending a
    // pending delivery, and until when (microseconds since the epoch, the
    // server's clock) its claim holds; both NULL when unclaimed.
    R"sql(
ALTER TABLE webhook_outbox ADD COLUMN claimed_by TEXT COLLATE "C";
ALTER TABLE webhook_outbox ADD COLUMN claim_expire BIGINT;
)sql",
};

// The session advisory lock that serialises migrations of one schema
// (classid "jw"+1, beside the node lock's 27255; objid the schema's hash).
// Held around the whole run, so that a node that waited for it finds every
// migration done (the runner re-reads the version in each transaction too).
constexpr const char* kMigrationLock =
    "SELECT pg_advisory_lock(27256, hashtext(current_schema()))";
constexpr const char* kMigrationUnlock =
    "SELECT pg_advisory_unlock(27256, hashtext(current_schema()))";

// PostgreSQL's side of the runner: the version is the one row of table
// jobwire_schema (created on first use, under the migration lock).
class PgMigrationDialect : public MigrationDialect {
 public:
  explicit PgMigrationDialect(PgConnection& conn) : conn_(conn) {}

  absl::Status Begin() override {
    return Run([&] { conn_.ExecScript("BEGIN"); });
  }
  absl::StatusOr<int> ReadVersion() override {
    int version = 0;
    JW_RETURN_IF_ERROR(Run([&] {
      conn_.ExecScript(
          "CREATE TABLE IF NOT EXISTS jobwire_schema (version INTEGER NOT "
          "NULL)");
      PgResult r = conn_.ExecOnce("SELECT version FROM jobwire_schema", {});
      version = r.rows() > 0 ? static_cast<int>(r.Int64(0, 0)) : 0;
    }));
    return version;
  }
  absl::Status Apply(const char* script, int version) override {
    return Run([&] {
      conn_.ExecScript(script);
      conn_.ExecScript(
          absl::StrCat("DELETE FROM jobwire_schema; INSERT INTO jobwire_schema "
                       "(version) VALUES (",
                       version, ")"));
    });
  }
  absl::Status Commit() override {
    return Run([&] { conn_.ExecScript("COMMIT"); });
  }
  void Rollback() override {
    if (!conn_.InTransaction()) return;
    (void)Run([&] { conn_.ExecScript("ROLLBACK"); });
  }

 private:
  template <typename F>
  static absl::Status Run(F f) {
    return StatusOfCall<PgError>(&StatusFromPg, f);
  }

  PgConnection& conn_;
};

}  // namespace

int LatestPgSchemaVersion() {
  return static_cast<int>(std::size(kPgMigrations));
}

absl::Status MigratePgBlocking(PgConnection& conn) {
  return MigratePgBlocking(conn, LatestPgSchemaVersion()).status();
}

absl::StatusOr<MigrationRun> MigratePgBlocking(PgConnection& conn, int target) {
  try {
    conn.ExecScript(kMigrationLock);
  } catch (const PgError& e) {
    return StatusFromPg(e);
  }
  PgMigrationDialect dialect(conn);
  absl::StatusOr<MigrationRun> run =
      RunMigrationsBlocking(dialect, kPgMigrations, target);
  try {
    conn.ExecScript(kMigrationUnlock);
  } catch (const PgError&) {
    // The connection is gone, and the session's lock with it.
  }
  return run;
}

}  // namespace jobwire
