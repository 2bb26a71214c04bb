#include "server/storage/pg_job_store.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/core/validation.h"
#include "server/core/webhook_event.h"
#include "server/storage/group_commit.h"
#include "server/storage/job_rules.h"
#include "server/storage/list_query.h"
#include "server/storage/migrations.h"
#include "server/storage/pg_connection.h"
#include "server/storage/pg_migrations.h"
#include "server/storage/sqlite_rows.h"

namespace jobwire {
namespace {

constexpr int kMaxReadLimit = 10000;
// Rows per multi-row INSERT: events x 31 columns, jobs x 42, labels x 3,
// all well under PostgreSQL's 65,535 parameters.
constexpr size_t kEventRowsPerInsert = 256;
constexpr size_t kJobRowsPerInsert = 64;
// The writer's row cache of one transaction (Writer::Remember): rows up to
// this many bytes of payload, args and checkpoint.
constexpr size_t kMaxCachedRowBytes = 4096;
constexpr const char* kMaxPrunedEventIdKey = "retention.max_pruned_event_id";
// The channel every node NOTIFYs after a write and LISTENs on; the payload
// is the writing node's id.
constexpr const char* kChannel = "jobwire";
// Added to the payload by a transaction that wrote settings or queues.
constexpr absl::string_view kGatesSuffix = ":gates";
// The database's clock in microseconds since the epoch: heartbeats and their
// deadline are compared on one clock, whatever the nodes' clocks say.
#define JW_PG_NOW_US "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
// While the LISTEN connection is down, a node polls the log this often.
constexpr absl::Duration kPollInterval = absl::Seconds(1);
// Orphaned leases handed back per pass of the node thread.
constexpr int kOrphansPerPass = 1000;

// A random id for this process's node row: 16 hex digits.
std::string NewNodeId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(absl::GetCurrentTimeNanos()));
  return absl::StrCat(absl::Hex(gen(), absl::kZeroPad16));
}

std::string DefaultNodeName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = 0;
  return absl::StrCat(host[0] != 0 ? host : "node", ":", getpid());
}

absl::Status ShutDownError() {
  return UnavailableError("job store is shut down", absl::Seconds(1));
}

// "INSERT INTO table (a, b) VALUES ($1, $2), ($3, $4)..." for `rows` rows.
std::string InsertSql(const std::string& table,
                      const std::vector<std::string>& names, size_t rows,
                      const char* suffix = "") {
  std::string sql = absl::StrCat("INSERT INTO ", table, " (",
                                 absl::StrJoin(names, ", "), ") VALUES ");
  int n = 0;
  for (size_t r = 0; r < rows; ++r) {
    absl::StrAppend(&sql, r > 0 ? ", (" : "(");
    for (size_t c = 0; c < names.size(); ++c)
      absl::StrAppend(&sql, c > 0 ? ", $" : "$", ++n);
    sql.push_back(')');
  }
  sql.append(suffix);
  return sql;
}

std::vector<std::string> JobColumnNames() {
  std::vector<std::string> names;
  for (const JobColumn& c : JobColumns()) names.push_back(c.name);
  return names;
}

std::vector<std::string> EventColumnNames() {
  std::vector<std::string> names = {"event_id"};
  for (const EventColumn& c : EventColumns()) names.push_back(c.name);
  return names;
}

const std::string& SelectJobSql() {
  static const auto* sql = new std::string(absl::StrCat(
      "SELECT ", JobColumnList(false), " FROM jobs WHERE id = $1"));
  return *sql;
}

// `ids` as a PostgreSQL array literal, bound as text and cast with
// CAST($n::text AS text[]) (text parameters go in binary, arrays would not).
std::string ArrayLiteral(const std::vector<const std::string*>& ids) {
  std::string out = "{";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char ch : *ids[i]) {
      if (ch == '"' || ch == '\\') out.push_back('\\');
      out.push_back(ch);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}
constexpr const char* kIdsIn = "= ANY(CAST($1::text AS text[]))";

#define JW_PG_OUTBOX_COLUMNS(BODY)         \
  "id, job_id, event_id, type, url, " BODY \
  ", state, attempts, "                    \
  "next_attempt_time, last_attempt_time, last_status, last_error, create_time"
constexpr const char* kOutboxColumns = JW_PG_OUTBOX_COLUMNS("body");
constexpr const char* kOutboxColumnsNoBody = JW_PG_OUTBOX_COLUMNS("'' AS body");
constexpr const char* kOutboxColumnsQualified =
    "webhook_outbox.id, job_id, event_id, type, url, body, state, attempts, "
    "next_attempt_time, last_attempt_time, last_status, last_error, "
    "create_time";
// A pending delivery this node ($2) may send: unclaimed, claimed by it, or
// claimed by a node whose claim has expired (a dead node's).
constexpr const char* kOutboxFree =
    "(claimed_by IS NULL OR claimed_by = $2 OR claim_expire < " JW_PG_NOW_US
    ")";
#undef JW_PG_OUTBOX_COLUMNS

absl::Time TimeAt(const PgResult& r, int row, int col) {
  return r.IsNull(row, col) ? absl::InfinitePast()
                            : absl::FromUnixMicros(r.Int64(row, col));
}

WebhookOutboxRow OutboxRowAt(const PgResult& r, int row) {
  WebhookOutboxRow w;
  w.id = r.Int64(row, 0);
  w.job_id = r.String(row, 1);
  w.event_id = r.Int64(row, 2);
  w.type = r.String(row, 3);
  w.url = r.String(row, 4);
  w.body = r.String(row, 5);
  w.state = static_cast<WebhookDeliveryState>(r.Int64(row, 6));
  w.attempts = static_cast<int32_t>(r.Int64(row, 7));
  w.next_attempt_time = TimeAt(r, row, 8);
  w.last_attempt_time = TimeAt(r, row, 9);
  w.last_http_status = static_cast<int32_t>(r.Int64(row, 10));
  w.last_error = r.String(row, 11);
  w.create_time = TimeAt(r, row, 12);
  return w;
}

// The events of `r` in its order, up to and including the one that brings
// their ApproxBytes to `max_bytes` (0: all of them). libpq holds the whole
// result already; the rows are at most the query's LIMIT.
std::vector<JobEvent> EventsOf(const PgResult& r, size_t max_bytes) {
  std::vector<JobEvent> events;
  size_t bytes = 0;
  for (int row = 0; row < r.rows(); ++row) {
    events.push_back(r.ReadEvent(row));
    bytes += ApproxBytes(events.back());
    if (max_bytes > 0 && bytes >= max_bytes) break;
  }
  return events;
}

}  // namespace

// The writer's connection and the transaction in progress, driven by the
// GroupCommit's writer thread (only it touches them).
class PgJobStore::Writer final : public GroupCommit::Transaction {
 public:
  Writer(PgJobStore* store, std::unique_ptr<PgConnection> c, IdGenerator* ids,
         std::string description)
      : store(store),
        conn(std::move(c)),
        ids(ids),
        description_(std::move(description)) {}

  // GroupCommit::Transaction.
  absl::Status Begin(absl::Time batch_time) override;
  absl::Status Apply(GroupCommit::Request& request) override;
  absl::Status Prefetch(
      const std::vector<std::unique_ptr<GroupCommit::Request>>& batch) override;
  Residue Failed() override;
  absl::Status Savepoint() override {
    // What earlier requests left pending goes in before the savepoint, so
    // that undoing this request alone cannot undo theirs.
    try {
      Flush();
    } catch (const PgError& e) {
      return StatusFromPg(e);
    }
    return Exec("SAVEPOINT op");
  }
  absl::Status ReleaseSavepoint() override { return Exec("RELEASE op"); }
  absl::Status RollbackToSavepoint() override {
    return Exec("ROLLBACK TO op; RELEASE op");
  }
  absl::Status Commit() override;
  void Committed(std::vector<JobEvent>* committed) override;
  void Rollback() override;

  // Reads into `remote` the events with ids in (cursor, locked_event_id):
  // those other nodes committed since this node last looked.
  void ReadRemoteEvents();

  // A statement that writes: counted, so that a request that fails after
  // writing is noticed (see Failed).
  PgResult Write(const std::string& sql, const std::vector<SqlValue>& params) {
    ++writes;
    return conn->Exec(sql, params);
  }
  // A write whose result nobody reads: queued to go out with the next
  // statement (PgConnection::Queue), so that a batch's job updates cost no
  // round trip each. Its error surfaces from a later statement: a later
  // request's, which makes the engine rerun the batch with savepoints
  // (there each RELEASE sends the request's queue, so the error lands on
  // its own request), or COMMIT's, which fails the batch.
  void WriteQueued(const std::string& sql,
                   const std::vector<SqlValue>& params) {
    ++writes;
    conn->Queue(sql, params);
  }

  // Inserts the new jobs DeferInsert holds, with their labels, in
  // multi-row INSERTs (kJobRowsPerInsert at a time).
  void FlushJobs() {
    if (pending_jobs.size() > request_pending_jobs_) ++writes;
    request_pending_jobs_ = 0;
    while (!pending_jobs.empty()) {
      const size_t n = std::min(kJobRowsPerInsert, pending_jobs.size());
      std::vector<const Job*> chunk(pending_jobs.begin(),
                                    pending_jobs.begin() + n);
      pending_jobs.erase(pending_jobs.begin(), pending_jobs.begin() + n);
      const int64_t before = writes;
      InsertJobRows(chunk, /*on_conflict=*/false);
      writes = before;  // counted above, when the request's own
    }
  }

  // Everything held for a later statement: new jobs, then events.
  void Flush() {
    FlushJobs();
    FlushEvents();
  }

  // Queues the insert of `job` (no request_id, so it cannot conflict; it
  // must stay put until Flush) for the next FlushJobs: the jobs of many
  // Submits of a batch go in a few statements, not one each.
  void DeferInsert(const Job* job) {
    pending_jobs.push_back(job);
    Remember(*job);
  }

  // The row of job `id` as this transaction sees it: from the row cache
  // when the writer holds it, else read.
  absl::StatusOr<Job> LoadJob(const std::string& id) {
    if (auto it = txn_rows.find(id); it != txn_rows.end()) return it->second;
    FlushJobs();
    // As committed. No row lock (FOR UPDATE) is needed: every write of a
    // job, on any node, runs in a writer transaction that holds the
    // event_ids row lock from BEGIN to COMMIT, so no other node writes the
    // row until this transaction ends, and this read (READ COMMITTED, after
    // that lock) sees every earlier commit: a state check here decides
    // once. A FOR UPDATE would only write a tuple lock per read (measured:
    // BENCHMARKS.md, 2026-12-08 04:45). Keep every write of `jobs` inside
    // the writer's transactions.
    PgResult r = conn->Exec(SelectJobSql(), {SqlValue::TextRef(id)});
    if (r.rows() == 0) return JobNotFound(id);
    Job job = r.ReadJob(0, false);
    Remember(job);
    return job;
  }

  // Rows as the open transaction wrote or read them (a second Mutate of a
  // job in one batch skips its read: no other node writes meanwhile).
  // Nothing outlives the transaction: other nodes write the same rows, so
  // every transaction reads what it mutates, as committed (LoadJob). A
  // failed request forgets every row the transaction touched (read again).
  // Small rows only.
  void Remember(const Job& job) {
    if (job.payload.size() + job.args_json.size() + job.checkpoint.size() >
        kMaxCachedRowBytes) {
      Forget(job.id);
      return;
    }
    txn_rows[job.id] = job;
  }
  void Forget(const std::string& id) { txn_rows.erase(id); }
  void ForgetTransaction() { txn_rows.clear(); }

  std::optional<Job> FindByRequestId(const std::string& request_id) {
    FlushJobs();
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", JobColumnList(false), " FROM jobs WHERE request_id = $1"));
    PgResult r = conn->Exec(*sql, {SqlValue::TextRef(request_id)});
    if (r.rows() == 0) return std::nullopt;
    return r.ReadJob(0, false);
  }

  // Inserts jobs[begin, end) and their labels; with `on_conflict`, a job
  // whose request_id is taken is not inserted: returns the rows inserted.
  int64_t InsertJobRows(const std::vector<const Job*>& jobs, bool on_conflict) {
    const size_t n = jobs.size();
    std::vector<SqlValue> params;
    params.reserve(n * JobColumns().size());
    for (const Job* job : jobs) {
      for (const JobColumn& c : JobColumns()) params.push_back(c.get(*job));
    }
    const std::string sql = InsertSql(
        "jobs", JobColumnNames(), n,
        on_conflict ? " ON CONFLICT (request_id) WHERE request_id IS NOT NULL "
                      "DO NOTHING"
                    : "");
    const int64_t inserted = Write(sql, params).affected();
    if (inserted == 0) return 0;
    std::vector<SqlValue> labels;
    size_t rows = 0;
    for (const Job* job : jobs) {
      for (const auto& [key, value] : job->labels) {
        labels.push_back(SqlValue::TextRef(job->id));
        labels.push_back(SqlValue::TextRef(key));
        labels.push_back(SqlValue::TextRef(value));
        ++rows;
      }
    }
    if (rows > 0)
      Write(InsertSql("job_labels", {"job_id", "key", "value"}, rows), labels);
    return inserted;
  }

  // RESOURCE_EXHAUSTED when `queue` has a concurrency limit and that many
  // of its jobs are RUNNING, on every node: counted in this transaction,
  // which holds the event_ids lock, so no other node's claim can commit
  // between the count and this one's (no advisory lock needed on top).
  absl::Status CheckQueueLimit(const std::string& queue) {
    if (!limits_read) {
      // Once per transaction: the queues with a limit (usually none), so a
      // claim in a queue without one costs no statement.
      PgResult r = conn->Exec(
          "SELECT name, concurrency_limit FROM queues WHERE "
          "concurrency_limit > 0",
          {});
      limits.clear();
      for (int row = 0; row < r.rows(); ++row)
        limits[r.String(row, 0)] = r.Int64(row, 1);
      limits_read = true;
    }
    auto it = limits.find(queue);
    if (it == limits.end()) return absl::OkStatus();
    PgResult n =
        conn->Exec("SELECT COUNT(*) FROM jobs WHERE queue = $1 AND state = $2",
                   {SqlValue::TextRef(queue),
                    SqlValue::Int(static_cast<int>(JobState::kRunning))});
    if (n.Int64(0, 0) < it->second) return absl::OkStatus();
    return absl::ResourceExhaustedError(
        absl::StrCat("queue ", queue, " runs ", n.Int64(0, 0),
                     " jobs across the nodes, its concurrency limit"));
  }

  // Writes the columns that differ between `before` and `after`; a job
  // that starts an attempt gets this node as its lease_owner, one that
  // leaves RUNNING loses it.
  void UpdateJob(const Job& before, const Job& after) {
    FlushJobs();  // the row may be a new job of this transaction
    Remember(after);
    const std::vector<JobColumn>& columns = JobColumns();
    std::vector<std::string> sets;
    std::vector<SqlValue> values;
    if (after.state == JobState::kRunning &&
        (before.state != JobState::kRunning ||
         before.attempt != after.attempt)) {
      values.push_back(SqlValue::TextRef(node_id));
      sets.push_back(absl::StrCat("lease_owner = $", values.size()));
    } else if (before.state == JobState::kRunning &&
               after.state != JobState::kRunning) {
      sets.push_back("lease_owner = NULL");
    }
    bool labels_changed = false;
    for (const JobColumn& c : columns) {
      SqlValue v = c.get(after);
      if (std::string_view(c.name) == "labels") {
        if (before.labels == after.labels) continue;
        labels_changed = true;
      } else if (v == c.get(before)) {
        continue;
      }
      values.push_back(std::move(v));
      sets.push_back(absl::StrCat(c.name, " = $", values.size()));
    }
    if (sets.empty()) return;
    values.push_back(SqlValue::TextRef(after.id));
    WriteQueued(absl::StrCat("UPDATE jobs SET ", absl::StrJoin(sets, ", "),
                             " WHERE id = $", values.size()),
                values);
    if (labels_changed) {
      Write("DELETE FROM job_labels WHERE job_id = $1",
            {SqlValue::TextRef(after.id)});
      std::vector<SqlValue> labels;
      for (const auto& [key, value] : after.labels) {
        labels.push_back(SqlValue::TextRef(after.id));
        labels.push_back(SqlValue::Text(key));
        labels.push_back(SqlValue::Text(value));
      }
      if (!labels.empty()) {
        Write(InsertSql("job_labels", {"job_id", "key", "value"},
                        after.labels.size()),
              labels);
      }
    }
  }

  // Appends `e` to the log of `job` with seq `seq` and the next event id;
  // written by FlushEvents.
  void AppendEvent(const Job& job, JobEvent e, int64_t seq) {
    e.event_id = next_event_id++;
    e.job_id = job.id;
    e.seq = seq;
    e.time = now;
    FillAttributes(job, &e);
    const WebhookSpec* webhook =
        job.webhook.has_value() ? &*job.webhook : default_webhook;
    if (webhook != nullptr && webhook_body != nullptr &&
        WebhookWants(*webhook, e)) {
      QueueWebhook(job, *webhook, e);
    }
    events.push_back(std::move(e));
  }

  void AppendEvents(const Job& job, std::vector<JobEvent> new_events,
                    int64_t first_seq) {
    for (JobEvent& e : new_events) AppendEvent(job, std::move(e), first_seq++);
  }

  // Writes the events appended and not written yet.
  // Writes of what earlier requests left pending are theirs, not the
  // current request's (they count in `writes` only when the current
  // request's own rows are among them): a request that fails after flushing
  // them has nothing of its own to undo.
  void FlushEvents() {
    if (flushed < events.size() && events.size() > request_events_) ++writes;
    while (flushed < events.size()) {
      const size_t n = std::min(kEventRowsPerInsert, events.size() - flushed);
      std::vector<SqlValue> params;
      params.reserve(n * (EventColumns().size() + 1));
      for (size_t i = flushed; i < flushed + n; ++i) {
        params.push_back(SqlValue::Int(events[i].event_id));
        for (const EventColumn& c : EventColumns())
          params.push_back(c.get(events[i]));
      }
      conn->Exec(InsertSql("job_events", EventColumnNames(), n), params);
      flushed += n;
    }
  }

  void QueueWebhook(const Job& job, const WebhookSpec& webhook, JobEvent& e) {
    const std::string body = (*webhook_body)(job, e);
    const int64_t now_us = absl::ToUnixMicros(now);
    Write(
        "INSERT INTO webhook_outbox (job_id, event_id, type, url, body, "
        "next_attempt_time, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        {SqlValue::TextRef(job.id), SqlValue::Int(e.event_id),
         SqlValue::Text(std::string(WebhookEventType(e))),
         SqlValue::TextRef(webhook.url), SqlValue::TextRef(body),
         SqlValue::Int(now_us), SqlValue::Int(now_us)});
    e.webhook_queued = true;
  }

  void PutSetting(const std::string& key, const std::string& value) {
    gates_written = true;
    Write(
        "INSERT INTO settings (key, value) VALUES ($1, $2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        {SqlValue::TextRef(key), SqlValue::TextRef(value)});
  }

  // Sets integer setting `key` to `value` unless it holds a larger one.
  void RaiseSetting(const std::string& key, int64_t value) {
    Write(
        "INSERT INTO settings (key, value) VALUES ($1, $2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
        "WHERE CAST(settings.value AS BIGINT) < CAST(excluded.value AS "
        "BIGINT)",
        {SqlValue::TextRef(key), SqlValue::Text(absl::StrCat(value))});
  }

  // Deletes the rows, labels and events of the jobs `ids`; returns the
  // largest event_id deleted (0 when they had none). Pending webhook
  // deliveries stay (they carry their body).
  int64_t DeleteJobs(const std::vector<const std::string*>& ids) {
    // Jobs and events held for later go first, so that none is written
    // after its job is gone.
    Flush();
    for (const std::string* id : ids) Forget(*id);
    const std::vector<SqlValue> arg = {SqlValue::Text(ArrayLiteral(ids))};
    PgResult max = conn->Exec(
        absl::StrCat("SELECT MAX(event_id) FROM job_events WHERE job_id ",
                     kIdsIn),
        arg);
    const int64_t max_event_id = max.rows() > 0 ? max.Int64(0, 0) : 0;
    Write(absl::StrCat("DELETE FROM job_events WHERE job_id ", kIdsIn), arg);
    Write(absl::StrCat("DELETE FROM webhook_outbox WHERE job_id ", kIdsIn,
                       " AND state != 0"),
          arg);
    Write(absl::StrCat("DELETE FROM job_labels WHERE job_id ", kIdsIn), arg);
    Write(absl::StrCat("DELETE FROM jobs WHERE id ", kIdsIn), arg);
    return max_event_id;
  }

  PgJobStore* const store;
  std::unique_ptr<PgConnection> conn;
  IdGenerator* const ids;
  // New jobs of this transaction not inserted yet (DeferInsert), in order.
  std::vector<const Job*> pending_jobs;
  // See Remember.
  absl::flat_hash_map<std::string, Job> txn_rows;
  // This transaction wrote settings or queues (the NOTIFY says so).
  bool gates_written = false;
  // Queues with a concurrency limit, read by this transaction's first
  // CheckQueueLimit.
  bool limits_read = false;
  absl::flat_hash_map<std::string, int64_t> limits;
  // This node's id (lease_owner, the NOTIFY payload).
  std::string node_id;
  // Every event up to this id has been handed to the listeners (ours, and
  // other nodes' read by Begin).
  int64_t cursor = 0;
  // Other nodes' events committed since `cursor`, read by Begin, handed
  // to the listeners before this transaction's own.
  std::vector<JobEvent> remote;
  absl::Time now = absl::InfinitePast();
  // Write statements run in this transaction so far.
  int64_t writes = 0;
  // Events appended by this transaction, in event_id order; the first
  // `flushed` are written.
  std::vector<JobEvent> events;
  size_t flushed = 0;
  // The next event id to give out (locked from event_ids at BEGIN).
  int64_t next_event_id = 1;
  int64_t locked_event_id = 1;
  const WebhookSpec* default_webhook = nullptr;
  const std::function<std::string(const Job&, const JobEvent&)>* webhook_body =
      nullptr;

 private:
  // Runs `sql` (no parameters), mapping PgError.
  absl::Status Exec(const char* sql) {
    try {
      conn->ExecScript(sql);
    } catch (const PgError& e) {
      return StatusFromPg(e);
    }
    return absl::OkStatus();
  }

  const std::string description_;
  // Where the request being applied started: events and write statements.
  size_t request_events_ = 0;
  size_t request_pending_jobs_ = 0;
  int64_t request_writes_ = 0;
};

// One queued write: `apply` runs on the writer inside the batch's
// transaction (and may run a second time, on a rerun, so it must not depend
// on state its first run consumed); `finish` answers the caller.
struct PgJobStore::WriteOp final : GroupCommit::Request {
  void Finish(absl::Status status) override { finish(std::move(status)); }

  std::function<absl::Status(Writer&)> apply;
  std::function<void(absl::Status)> finish;
  // The job `apply` reads first (Writer::LoadJob), if any: the batch's are
  // read in one statement (Writer::Prefetch).
  std::string reads;
};

absl::Status PgJobStore::Writer::Begin(absl::Time batch_time) {
  now = batch_time;
  gates_written = false;
  limits_read = false;
  events.clear();
  remote.clear();
  pending_jobs.clear();
  flushed = 0;
  writes = 0;
  if (!conn->Reconnect()) {
    return UnavailableError(
        absl::StrCat("postgresql: cannot reach ", description_),
        absl::Seconds(1));
  }
  try {
    // BEGIN goes out with the next statement, in one round trip.
    conn->Queue("BEGIN");
    // Ids in commit order: see the header. Never below an id this writer
    // gave out before (ids of rolled-back writes are skipped).
    PgResult next = conn->Exec("SELECT next_id FROM event_ids FOR UPDATE", {});
    locked_event_id = next.Int64(0, 0);
    next_event_id = std::max(next_event_id, locked_event_id);
    // Every id below locked_event_id is committed (or rolled back for
    // good): the other nodes' events since our cursor are all there.
    ReadRemoteEvents();
  } catch (const PgError& e) {
    return StatusFromPg(e);
  }
  return absl::OkStatus();
}

void PgJobStore::Writer::ReadRemoteEvents() {
  static const auto* sql = new std::string(
      absl::StrCat("SELECT ", EventSelectList(),
                   " FROM job_events WHERE event_id > $1 AND event_id < $2 "
                   "ORDER BY event_id LIMIT $3"));
  int64_t after = cursor;
  while (after < locked_event_id - 1) {
    PgResult r =
        conn->Exec(*sql, {SqlValue::Int(after), SqlValue::Int(locked_event_id),
                          SqlValue::Int(kMaxReadLimit)});
    for (int row = 0; row < r.rows(); ++row) {
      remote.push_back(r.ReadEvent(row));
      remote.back().remote = true;
    }
    if (r.rows() < kMaxReadLimit) break;
    after = remote.back().event_id;
  }
}

absl::Status PgJobStore::Writer::Prefetch(
    const std::vector<std::unique_ptr<GroupCommit::Request>>& batch) {
  // One job alone is read by its LoadJob, in the same one statement.
  std::vector<const std::string*> ids;
  absl::flat_hash_set<absl::string_view> seen;
  for (const auto& request : batch) {
    const std::string& id = static_cast<const WriteOp&>(*request).reads;
    if (!id.empty() && seen.insert(id).second) ids.push_back(&id);
  }
  if (ids.size() < 2) return absl::OkStatus();
  // A join with the ids, not `id = ANY($1)`: a generic plan of the latter
  // compared every row with every id (seconds for a batch of thousands).
  static const auto* sql = new std::string(
      absl::StrCat("SELECT ", JobColumnList(false),
                   " FROM unnest(CAST($1::text AS text[])) AS wanted(wid) "
                   "JOIN jobs ON jobs.id = wanted.wid"));
  try {
    // As LoadJob's read (see there): after Begin's event_ids lock, so every
    // earlier commit of any node is seen, and no other node writes these
    // rows until this transaction ends.
    PgResult r = conn->Exec(*sql, {SqlValue::Text(ArrayLiteral(ids))});
    for (int row = 0; row < r.rows(); ++row) Remember(r.ReadJob(row, false));
  } catch (const PgError& e) {
    return StatusFromPg(e);
  }
  return absl::OkStatus();
}

absl::Status PgJobStore::Writer::Apply(GroupCommit::Request& request) {
  request_events_ = events.size();
  request_writes_ = writes;
  request_pending_jobs_ = pending_jobs.size();
  try {
    // Every request of this engine is one of the store's WriteOps.
    return static_cast<WriteOp&>(request).apply(*this);
  } catch (const PgError& e) {
    return StatusFromPg(e);
  }
}

GroupCommit::Transaction::Residue PgJobStore::Writer::Failed() {
  ForgetTransaction();
  events.resize(request_events_);
  if (pending_jobs.size() > request_pending_jobs_)
    pending_jobs.resize(request_pending_jobs_);
  if (flushed > request_events_) flushed = request_events_;
  // A lost connection took the transaction with it (the next Begin
  // reconnects).
  if (!conn->InTransaction()) return Residue::kLost;
  // A failed statement aborts a PostgreSQL transaction: only a rollback (to
  // a savepoint) goes on.
  if (conn->InFailedTransaction() || writes != request_writes_)
    return Residue::kPartial;
  return Residue::kNone;
}

absl::Status PgJobStore::Writer::Commit() {
  try {
    Flush();
    if (next_event_id != locked_event_id) {
      // Sent with the COMMIT, in one round trip.
      conn->Queue("UPDATE event_ids SET next_id = $1",
                  {SqlValue::Int(next_event_id)});
    }
    // Wakes the other nodes (delivered only if the COMMIT is); a write of
    // settings or queues says so, for them to re-read those.
    if (writes > 0 || !events.empty()) {
      conn->Queue(
          absl::StrCat("SELECT pg_notify('", kChannel, "', $1)"),
          {SqlValue::Text(gates_written ? absl::StrCat(node_id, kGatesSuffix)
                                        : node_id)});
    }
    conn->ExecScript("COMMIT");
  } catch (const PgError& e) {
    return StatusFromPg(e);
  }
  return absl::OkStatus();
}

void PgJobStore::Writer::Committed(std::vector<JobEvent>* committed) {
  txn_rows.clear();
  // Everything below next_event_id is committed and now handed out.
  cursor = std::max(cursor, next_event_id - 1);
  if (!remote.empty()) {
    remote.insert(remote.end(), std::make_move_iterator(events.begin()),
                  std::make_move_iterator(events.end()));
    committed->swap(remote);
    remote.clear();
  } else {
    committed->swap(events);
  }
  events.clear();
}

void PgJobStore::Writer::Rollback() {
  ForgetTransaction();
  events.clear();
  remote.clear();
  pending_jobs.clear();
  flushed = 0;
  if (!conn->InTransaction()) return;
  try {
    conn->ExecScript("ROLLBACK");
  } catch (const PgError& e) {
    JW_LOG(WARNING) << "storage: rollback failed: " << e.what();
  }
}

absl::StatusOr<std::unique_ptr<PgJobStore>> PgJobStore::Open(Options options) {
  std::unique_ptr<PgJobStore> store(new PgJobStore(std::move(options)));
  JW_RETURN_IF_ERROR(store->OpenBlocking());
  return store;
}

PgJobStore::PgJobStore(Options options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      ids_(clock_) {}

PgJobStore::~PgJobStore() { Shutdown(); }

absl::Status PgJobStore::OpenBlocking() {
  JW_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn,
                      PgConnection::Open(options_.conninfo));
  description_ = conn->Describe();
  node_id_ = NewNodeId();
  node_name_ =
      options_.node_name.empty() ? DefaultNodeName() : options_.node_name;
  int64_t cursor = 0;
  try {
    JW_RETURN_IF_ERROR(MigratePgBlocking(*conn));
    // Ids keep growing across restarts even if the clock stepped back.
    PgResult max_id = conn->ExecOnce("SELECT MAX(id) FROM jobs", {});
    if (!max_id.IsNull(0, 0)) ids_.AdvancePast(max_id.String(0, 0));
    // This node's row, before its first lease can name it.
    Heartbeat(*conn);
    // The listeners hear of what commits from here on.
    cursor =
        conn->ExecOnce("SELECT next_id - 1 FROM event_ids", {}).Int64(0, 0);
  } catch (const PgError& e) {
    return StatusFromPg(e);
  }
  writer_ =
      std::make_unique<Writer>(this, std::move(conn), &ids_, description_);
  writer_->node_id = node_id_;
  writer_->cursor = cursor;
  if (options_.webhook_body) writer_->webhook_body = &options_.webhook_body;
  if (options_.default_webhook.has_value())
    writer_->default_webhook = &*options_.default_webhook;
  {
    absl::MutexLock lock(&readers_mu_);
    for (int i = 0; i < std::max(1, options_.reader_connections); ++i) {
      JW_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> reader,
                          PgConnection::Open(options_.conninfo));
      free_readers_.push_back(reader.get());
      readers_.push_back(std::move(reader));
    }
  }
  GroupCommit::Options engine_options;
  engine_options.clock = clock_;
  engine_options.max_batch_jobs = options_.max_batch_jobs;
  engine_options.max_batch_bytes = options_.max_batch_bytes;
  engine_ = std::make_unique<GroupCommit>(engine_options, writer_.get());
  engine_->Start();
  node_thread_ = std::thread([this] { NodeLoop(); });
  return absl::OkStatus();
}

void PgJobStore::Heartbeat(PgConnection& conn) {
  conn.Exec(
      "INSERT INTO nodes (id, name, start_time, heartbeat_time) VALUES ($1, "
      "$2, " JW_PG_NOW_US ", " JW_PG_NOW_US
      ") ON CONFLICT (id) DO UPDATE SET heartbeat_time = "
      "excluded.heartbeat_time",
      {SqlValue::TextRef(node_id_), SqlValue::TextRef(node_name_)});
}

void PgJobStore::HandBackOrphans(PgConnection& conn) {
  // Any node may remove a dead one's row (one DELETE wins); the RUNNING
  // jobs whose lease_owner has no row are orphans, handed back by
  // Mutates that check the attempt in the writer's transaction: once, whichever
  // nodes try.
  conn.Exec("DELETE FROM nodes WHERE heartbeat_time < " JW_PG_NOW_US " - $1",
            {SqlValue::Int(absl::ToInt64Microseconds(options_.node_ttl))});
  OrphanHandler handler;
  {
    absl::MutexLock lock(&node_mu_);
    handler = orphan_handler_;
  }
  if (!handler) return;
  PgResult r = conn.Exec(
      "SELECT id, attempt FROM jobs WHERE state = $1 AND lease_owner IS NOT "
      "NULL AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = "
      "jobs.lease_owner) LIMIT $2",
      {SqlValue::Int(static_cast<int>(JobState::kRunning)),
       SqlValue::Int(kOrphansPerPass)});
  for (int row = 0; row < r.rows(); ++row) {
    handler(r.String(row, 0), static_cast<int32_t>(r.Int64(row, 1)));
  }
}

void PgJobStore::CatchUp() {
  if (catch_up_pending_.exchange(true)) return;
  auto op = std::make_unique<WriteOp>();
  op->light_finish = true;
  // Begin read the other nodes' events; the commit hands them out. A
  // notification after this point asks for another catch-up (the
  // transaction holds the event_ids lock, so what commits elsewhere
  // meanwhile commits after it).
  op->apply = [this](Writer&) {
    catch_up_pending_.store(false);
    return absl::OkStatus();
  };
  op->finish = [this](const absl::Status& s) {
    if (!s.ok()) catch_up_pending_.store(false);
  };
  Enqueue(std::move(op));
}

void PgJobStore::NodeLoop() {
  std::unique_ptr<PgConnection> listen;
  bool listening = false;
  bool first_listen = true;
  absl::Time next_beat = absl::InfinitePast();
  absl::Time next_poll = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&node_mu_);
      if (node_stop_) return;
    }
    const absl::Time now = absl::Now();
    try {
      if (listen == nullptr) {
        absl::StatusOr<std::unique_ptr<PgConnection>> c =
            PgConnection::Open(options_.conninfo);
        if (c.ok()) listen = *std::move(c);
      }
      if (listen != nullptr && !listening && listen->Reconnect()) {
        listen->ExecScript(absl::StrCat("LISTEN ", kChannel));
        listening = true;
        // What committed while nobody listened. Not at start: the cursor
        // was taken at Open, and the listeners are added after it (the
        // node's next write, or the next notification, reads the rest).
        if (!first_listen) {
          CatchUp();
          GatesChanged();
        }
        first_listen = false;
      }
      if (listen != nullptr && listening && now >= next_beat) {
        Heartbeat(*listen);
        HandBackOrphans(*listen);
        next_beat = now + options_.heartbeat_interval;
      }
    } catch (const PgError& e) {
      JW_LOG(WARNING) << "storage: node connection to " << description_ << ": "
                      << e.what();
      listening = false;
    }
    if (!listening) {
      // Lost: poll the log until LISTEN is back.
      if (now >= next_poll) {
        CatchUp();
        GatesChanged();
        next_poll = now + kPollInterval;
      }
      absl::MutexLock lock(&node_mu_);
      node_mu_.AwaitWithTimeout(absl::Condition(&node_stop_),
                                absl::Milliseconds(250));
      continue;
    }
    try {
      const absl::Duration wait =
          std::clamp(next_beat - absl::Now(), absl::Milliseconds(1),
                     absl::Milliseconds(250));
      bool others = false;
      bool gates = false;
      for (const std::string& payload : listen->WaitForNotifications(wait)) {
        absl::string_view from = payload;
        const bool g = absl::ConsumeSuffix(&from, kGatesSuffix);
        if (from == node_id_) continue;
        others = true;
        gates = gates || g;
      }
      if (others) CatchUp();
      if (gates) GatesChanged();
    } catch (const PgError& e) {
      JW_LOG(WARNING) << "storage: LISTEN connection to " << description_
                      << " lost (" << e.what() << "); polling until it is back";
      listening = false;
    }
  }
}

void PgJobStore::SetOrphanHandler(OrphanHandler handler) {
  absl::MutexLock lock(&node_mu_);
  orphan_handler_ = std::move(handler);
}

void PgJobStore::SetGatesHandler(std::function<void()> handler) {
  absl::MutexLock lock(&node_mu_);
  gates_handler_ = std::move(handler);
}

void PgJobStore::GatesChanged() {
  std::function<void()> handler;
  {
    absl::MutexLock lock(&node_mu_);
    handler = gates_handler_;
  }
  if (handler) handler();
}

absl::StatusOr<std::vector<NodeInfo>> PgJobStore::ListNodesBlocking() {
  std::vector<NodeInfo> nodes;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    PgResult r = c.Exec(
        "SELECT id, name, start_time, heartbeat_time FROM nodes WHERE "
        "heartbeat_time >= " JW_PG_NOW_US " - $1 ORDER BY start_time, id",
        {SqlValue::Int(absl::ToInt64Microseconds(options_.node_ttl))});
    for (int row = 0; row < r.rows(); ++row) {
      NodeInfo n;
      n.id = r.String(row, 0);
      n.name = r.String(row, 1);
      n.start_time = absl::FromUnixMicros(r.Int64(row, 2));
      n.heartbeat_time = absl::FromUnixMicros(r.Int64(row, 3));
      n.self = n.id == node_id_;
      nodes.push_back(std::move(n));
    }
    return absl::OkStatus();
  }));
  std::stable_partition(nodes.begin(), nodes.end(),
                        [](const NodeInfo& n) { return n.self; });
  return nodes;
}

void PgJobStore::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&node_mu_);
    node_stop_ = true;
  }
  if (node_thread_.joinable()) node_thread_.join();
  // Everything accepted is committed (or failed) and answered first.
  if (engine_ != nullptr) engine_->Shutdown();
  {
    absl::MutexLock lock(&readers_mu_);
    readers_closed_ = true;
    readers_cv_.SignalAll();
    while (free_readers_.size() < readers_.size())
      readers_cv_.Wait(&readers_mu_);
    free_readers_.clear();
    readers_.clear();
  }
  // engine_ stays (to the destructor): writes made after Shutdown are
  // answered UNAVAILABLE by it, and it no longer uses writer_.
  if (writer_ != nullptr) {
    // The node leaves the registry; a lease it still held (none after a
    // clean drain) is an orphan for the other nodes right away.
    try {
      writer_->conn->ExecOnce("DELETE FROM nodes WHERE id = $1",
                              {SqlValue::TextRef(node_id_)});
    } catch (const PgError& e) {
      JW_LOG(WARNING) << "storage: leaving the node registry: " << e.what();
    }
  }
  writer_.reset();
}

void PgJobStore::AddCommitListener(CommitListener* listener) {
  engine_->AddCommitListener(listener);
}

WriteStats PgJobStore::write_stats() const { return engine_->write_stats(); }

int64_t PgJobStore::rerun_batches() const { return engine_->rerun_batches(); }

void PgJobStore::SetCommitObserver(CommitObserver* observer) {
  engine_->SetCommitObserver(observer);
}

absl::StatusOr<int64_t> PgJobStore::StorageBytesBlocking() {
  return QueryIntBlocking(
      "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM "
      "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
      "n.nspname = current_schema() AND c.relkind = 'r'");
}

void PgJobStore::Enqueue(std::unique_ptr<WriteOp> op) {
  engine_->Enqueue(std::move(op));
}

// ---- Writes ----

void PgJobStore::Submit(std::vector<NewJob> inputs, SubmitCallback done) {
  struct State {
    absl::Status invalid;
    std::vector<Job> rows;
    std::vector<SubmitOutcome> outcomes;
  };
  auto state = std::make_shared<State>();
  auto op = std::make_unique<WriteOp>();
  op->light_finish = true;
  op->jobs = static_cast<int64_t>(inputs.size());
  state->invalid = SubmitRows(std::move(inputs), &state->rows, &op->bytes);
  op->apply = [state](Writer& w) -> absl::Status {
    JW_RETURN_IF_ERROR(state->invalid);
    std::vector<Job>& rows = state->rows;
    state->outcomes.clear();
    for (Job& job : rows) {
      job.id = w.ids->Next();
      job.state =
          job.schedule_time > w.now ? JobState::kScheduled : JobState::kQueued;
      job.create_time = w.now;
      job.update_time = w.now;
      job.version = 1;
      job.last_seq = 1;
    }
    auto created = [&](const Job& job) {
      JobEvent submitted;
      submitted.type = EventType::kStateChanged;
      submitted.from = JobState::kUnspecified;
      submitted.to = job.state;
      submitted.reason = "submitted";
      w.AppendEvent(job, std::move(submitted), 1);
      state->outcomes.push_back(SubmitOutcome{Job{}, true});
    };
    for (size_t i = 0; i < rows.size();) {
      size_t end = i;
      while (end < rows.size() && end - i < kJobRowsPerInsert &&
             rows[end].request_id.empty()) {
        ++end;
      }
      if (end > i) {
        // `rows` stays put until the answer: the writer may hold them.
        for (; i < end; ++i) {
          w.DeferInsert(&rows[i]);
          created(rows[i]);
        }
        continue;
      }
      Job& job = rows[i++];
      w.FlushJobs();  // jobs keep their order
      const bool inserted = w.InsertJobRows({&job}, /*on_conflict=*/true) > 0;
      if (inserted) w.Remember(job);
      if (!inserted) {
        std::optional<Job> existing = w.FindByRequestId(job.request_id);
        if (!existing.has_value()) {
          return absl::InternalError(absl::StrCat("job with request_id ",
                                                  job.request_id, " vanished"));
        }
        state->outcomes.push_back(SubmitOutcome{*std::move(existing), false});
        continue;
      }
      created(job);
    }
    return absl::OkStatus();
  };
  op->finish = [state, done = std::move(done)](absl::Status status) {
    if (!status.ok()) {
      done(std::move(status));
      return;
    }
    for (size_t i = 0; i < state->outcomes.size(); ++i) {
      if (state->outcomes[i].created)
        state->outcomes[i].job = std::move(state->rows[i]);
    }
    done(std::move(state->outcomes));
  };
  Enqueue(std::move(op));
}

namespace {

// Runs `mutation` against `current` as MutateOp does in the SQLite store:
// the fields that are not the mutation's to change are kept; returns
// whether anything changed (then `next` has its version, update_time and
// last_seq advanced and `events` holds the new events).
absl::StatusOr<bool> RunMutation(const JobMutation& mutation,
                                 const Job& current, absl::Time now, Job* next,
                                 std::vector<JobEvent>* events) {
  JW_ASSIGN_OR_RETURN(JobChange change, mutation(current, now));
  *next = std::move(change.job);
  if (next->id != current.id) {
    return absl::InternalError(
        absl::StrCat("mutation of job ", current.id, " changed its id"));
  }
  next->create_time = current.create_time;
  next->request_id = current.request_id;
  next->version = current.version;
  next->update_time = current.update_time;
  next->last_seq = current.last_seq;
  if (change.events.empty() && JobColumnsEqual(current, *next)) {
    *next = current;
    return false;
  }
  next->version = current.version + 1;
  next->update_time = now;
  next->last_seq =
      current.last_seq + static_cast<int64_t>(change.events.size());
  *events = std::move(change.events);
  return true;
}

}  // namespace

void PgJobStore::Mutate(std::string id, JobMutation mutation,
                        JobCallback done) {
  auto result = std::make_shared<Job>();
  auto op = std::make_unique<WriteOp>();
  op->reads = id;
  op->apply = [id = std::move(id), mutation = std::move(mutation),
               result](Writer& w) -> absl::Status {
    JW_ASSIGN_OR_RETURN(Job current, w.LoadJob(id));
    std::vector<JobEvent> events;
    JW_ASSIGN_OR_RETURN(bool changed, RunMutation(mutation, current, w.now,
                                                  result.get(), &events));
    if (!changed) return absl::OkStatus();
    if (result->state == JobState::kRunning &&
        current.state != JobState::kRunning) {
      JW_RETURN_IF_ERROR(w.CheckQueueLimit(result->queue));
    }
    w.UpdateJob(current, *result);
    w.AppendEvents(*result, std::move(events), current.last_seq + 1);
    return absl::OkStatus();
  };
  op->finish = [result, done = std::move(done)](absl::Status status) {
    if (!status.ok()) {
      done(std::move(status));
      return;
    }
    done(std::move(*result));
  };
  Enqueue(std::move(op));
}

void PgJobStore::Delete(std::string id,
                        std::function<absl::Status(const Job&)> check,
                        JobCallback done) {
  auto deleted = std::make_shared<Job>();
  auto op = std::make_unique<WriteOp>();
  op->reads = id;
  op->apply = [id = std::move(id), check = std::move(check),
               deleted](Writer& w) -> absl::Status {
    JW_ASSIGN_OR_RETURN(*deleted, w.LoadJob(id));
    if (!IsTerminal(deleted->state))
      return NotTerminalError(id, deleted->state);
    if (check) JW_RETURN_IF_ERROR(check(*deleted));
    const int64_t max_event_id = w.DeleteJobs({&id});
    if (max_event_id > 0) w.RaiseSetting(kMaxPrunedEventIdKey, max_event_id);
    return absl::OkStatus();
  };
  op->finish = [deleted, done = std::move(done)](absl::Status status) {
    if (!status.ok()) {
      done(std::move(status));
      return;
    }
    done(std::move(*deleted));
  };
  Enqueue(std::move(op));
}

void PgJobStore::BulkWrite(std::vector<std::string> ids,
                           std::shared_ptr<const BulkWriteSpec> spec,
                           BulkWriteCallback done) {
  auto results = std::make_shared<std::vector<BulkItemResult>>();
  auto op = std::make_unique<WriteOp>();
  op->jobs = static_cast<int64_t>(ids.size());
  op->bulk = true;
  op->apply = [ids = std::move(ids), spec, results](Writer& w) -> absl::Status {
    results->assign(ids.size(), BulkItemResult{});
    std::vector<const std::string*> all;
    all.reserve(ids.size());
    for (const std::string& id : ids) all.push_back(&id);
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", JobColumnList(false), " FROM jobs WHERE id ", kIdsIn));
    w.FlushJobs();
    PgResult r = w.conn->Exec(*sql, {SqlValue::Text(ArrayLiteral(all))});
    std::vector<Job> loaded;
    loaded.reserve(static_cast<size_t>(r.rows()));
    absl::flat_hash_map<std::string, size_t> at;
    for (int row = 0; row < r.rows(); ++row) {
      loaded.push_back(r.ReadJob(row, false));
      at.emplace(loaded.back().id, loaded.size() - 1);
    }
    std::vector<const std::string*> doomed;
    for (size_t i = 0; i < ids.size(); ++i) {
      BulkItemResult& result = (*results)[i];
      auto it = at.find(ids[i]);
      if (it == at.end()) {
        result.status = JobNotFound(ids[i]);
        continue;
      }
      const Job& current = loaded[it->second];
      if (spec->del) {
        if (!IsTerminal(current.state)) {
          result.status = NotTerminalError(ids[i], current.state);
          continue;
        }
        if (spec->check) {
          result.status = spec->check(current);
          if (!result.status.ok()) continue;
        }
        result.changed = true;
        doomed.push_back(&ids[i]);
        continue;
      }
      Job next;
      std::vector<JobEvent> events;
      absl::StatusOr<bool> changed =
          RunMutation(spec->mutation, current, w.now, &next, &events);
      if (!changed.ok()) {
        result.status = changed.status();
        continue;
      }
      if (!*changed) continue;
      result.changed = !events.empty();
      w.UpdateJob(current, next);
      w.AppendEvents(next, std::move(events), current.last_seq + 1);
    }
    if (!doomed.empty()) {
      const int64_t max_event_id = w.DeleteJobs(doomed);
      if (max_event_id > 0) w.RaiseSetting(kMaxPrunedEventIdKey, max_event_id);
    }
    return absl::OkStatus();
  };
  op->finish = [results, done = std::move(done)](absl::Status status) {
    if (!status.ok()) {
      done(std::move(status));
      return;
    }
    done(std::move(*results));
  };
  Enqueue(std::move(op));
}

void PgJobStore::PutSetting(std::string key, std::string value,
                            StatusCallback done) {
  auto op = std::make_unique<WriteOp>();
  op->apply = [key = std::move(key), value = std::move(value)](Writer& w) {
    w.PutSetting(key, value);
    return absl::OkStatus();
  };
  op->finish = std::move(done);
  Enqueue(std::move(op));
}

void PgJobStore::UpsertQueue(QueueRow row, StatusCallback done) {
  auto op = std::make_unique<WriteOp>();
  op->apply = [row = std::move(row)](Writer& w) -> absl::Status {
    if (!IsValidQueueName(row.name)) {
      return InvalidArgumentError("queue.name",
                                  "must match [a-z0-9][a-z0-9._-]{0,127}");
    }
    w.Write(
        "INSERT INTO queues (name, paused, resume_time, concurrency_limit, "
        "weight) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET "
        "paused = excluded.paused, resume_time = excluded.resume_time, "
        "concurrency_limit = excluded.concurrency_limit, "
        "weight = excluded.weight",
        {SqlValue::TextRef(row.name), SqlValue::Int(row.paused ? 1 : 0),
         TimeValue(row.resume_time), SqlValue::Int(row.concurrency_limit),
         SqlValue::Int(row.weight)});
    w.gates_written = true;
    w.limits_read = false;  // read again, with this row
    return absl::OkStatus();
  };
  op->finish = std::move(done);
  Enqueue(std::move(op));
}

absl::Status PgJobStore::WriteBlocking(
    std::function<absl::Status(Writer&)> apply, int64_t jobs) {
  absl::Status status;
  absl::Notification answered;
  auto op = std::make_unique<WriteOp>();
  op->jobs = jobs;
  op->apply = std::move(apply);
  op->finish = [&status, &answered](absl::Status s) {
    status = std::move(s);
    answered.Notify();
  };
  Enqueue(std::move(op));
  answered.WaitForNotification();
  return status;
}

absl::StatusOr<int64_t> PgJobStore::RunRetentionOnceBlocking() {
  const Retention& r = options_.retention;
  if (r.terminal_max_age <= absl::ZeroDuration() && r.max_terminal_jobs <= 0)
    return 0;
  const int batch_size = std::max(1, r.batch_size);
  int64_t total = 0;
  while (true) {
    int64_t deleted = 0;
    JW_RETURN_IF_ERROR(WriteBlocking(
        [&r, batch_size, &deleted](Writer& w) -> absl::Status {
          w.FlushJobs();
          std::vector<std::string> ids;
          auto collect = [&ids](const PgResult& res) {
            for (int row = 0; row < res.rows(); ++row)
              ids.push_back(res.String(row, 0));
          };
          if (r.terminal_max_age > absl::ZeroDuration()) {
            collect(w.conn->Exec(
                NumberPlaceholders(kOldFinishedJobsSql),
                {SqlValue::Int(absl::ToUnixMicros(w.now - r.terminal_max_age)),
                 SqlValue::Int(batch_size)}));
          }
          if (ids.empty() && r.max_terminal_jobs > 0) {
            PgResult count = w.conn->Exec(kCountFinishedJobsSql, {});
            const int64_t excess = count.Int64(0, 0) - r.max_terminal_jobs;
            if (excess > 0) {
              collect(w.conn->Exec(
                  NumberPlaceholders(kFirstFinishedJobsSql),
                  {SqlValue::Int(std::min<int64_t>(excess, batch_size))}));
            }
          }
          deleted = static_cast<int64_t>(ids.size());
          if (ids.empty()) return absl::OkStatus();
          std::vector<const std::string*> doomed;
          for (const std::string& id : ids) doomed.push_back(&id);
          const int64_t max_pruned = w.DeleteJobs(doomed);
          if (max_pruned > 0) w.RaiseSetting(kMaxPrunedEventIdKey, max_pruned);
          return absl::OkStatus();
        },
        batch_size));
    total += deleted;
    if (deleted < batch_size) return total;
  }
}

absl::StatusOr<int64_t> PgJobStore::BackupBlocking(const std::string&) {
  return FailedPreconditionError(
      "Backup is not served on the PostgreSQL backend: back the database up "
      "with pg_dump (or your PostgreSQL provider's snapshots and "
      "point-in-time recovery)",
      PreconditionViolation{"BACKEND", "backup",
                            "the job store is PostgreSQL; use pg_dump"});
}

// ---- Reads ----

absl::Status PgJobStore::WithReader(
    const std::function<absl::Status(PgConnection&)>& read) {
  PgConnection* conn = nullptr;
  {
    absl::MutexLock lock(&readers_mu_);
    while (free_readers_.empty() && !readers_closed_)
      readers_cv_.Wait(&readers_mu_);
    if (readers_closed_) return ShutDownError();
    conn = free_readers_.back();
    free_readers_.pop_back();
  }
  absl::Status status;
  if (!conn->Reconnect()) {
    status = UnavailableError(
        absl::StrCat("postgresql: cannot reach ", description_),
        absl::Seconds(1));
  } else {
    try {
      status = read(*conn);
    } catch (const PgError& e) {
      status = StatusFromPg(e);
    }
  }
  absl::MutexLock lock(&readers_mu_);
  free_readers_.push_back(conn);
  readers_cv_.SignalAll();
  return status;
}

absl::StatusOr<int64_t> PgJobStore::QueryIntBlocking(const std::string& sql) {
  int64_t value = 0;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    PgResult r = c.Exec(sql, {});
    if (r.rows() > 0) value = r.Int64(0, 0);
    return absl::OkStatus();
  }));
  return value;
}

absl::StatusOr<Job> PgJobStore::GetJobBlocking(const std::string& id) {
  Job job;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    PgResult r = c.Exec(SelectJobSql(), {SqlValue::TextRef(id)});
    if (r.rows() == 0) return JobNotFound(id);
    job = r.ReadJob(0, false);
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<std::vector<JobEvent>> PgJobStore::ReadJobEventsBlocking(
    const std::string& job_id, int64_t after_seq, int limit, size_t max_bytes) {
  if (limit <= 0) return InvalidArgumentError("limit", "must be positive");
  std::vector<JobEvent> events;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    static const auto* sql = new std::string(
        absl::StrCat("SELECT ", EventSelectList(),
                     " FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY "
                     "seq LIMIT $3"));
    PgResult r =
        c.Exec(*sql, {SqlValue::TextRef(job_id), SqlValue::Int(after_seq),
                      SqlValue::Int(std::min(limit, kMaxReadLimit))});
    events = EventsOf(r, max_bytes);
    return absl::OkStatus();
  }));
  return events;
}

absl::StatusOr<std::vector<JobEvent>> PgJobStore::ReadEventsBlocking(
    int64_t after_event_id, int limit, size_t max_bytes) {
  if (limit <= 0) return InvalidArgumentError("limit", "must be positive");
  std::vector<JobEvent> events;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", EventSelectList(),
        " FROM job_events WHERE event_id > $1 ORDER BY event_id LIMIT $2"));
    PgResult r = c.Exec(*sql, {SqlValue::Int(after_event_id),
                               SqlValue::Int(std::min(limit, kMaxReadLimit))});
    events = EventsOf(r, max_bytes);
    return absl::OkStatus();
  }));
  return events;
}

absl::StatusOr<ListJobsResult> PgJobStore::ListJobsBlocking(
    const ListJobsQuery& query) {
  JW_ASSIGN_OR_RETURN(ListPlan plan,
                      PlanListJobs(query, SqlDialect::kPostgres));
  const std::string sql = NumberPlaceholders(plan.sql);
  ListJobsResult result;
  bool more = false;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    PgResult r = c.ExecOnce(sql, plan.params);
    size_t bytes = 0;
    for (int row = 0; row < r.rows(); ++row) {
      if (result.jobs.size() == static_cast<size_t>(plan.page_size)) {
        more = true;
        break;
      }
      Job job = r.ReadJob(row, false);
      if (query.max_bytes > 0) {
        const size_t size =
            query.job_bytes ? query.job_bytes(job) : ApproxBytes(job);
        if (!result.jobs.empty() && bytes + size > query.max_bytes) {
          more = true;
          break;
        }
        bytes += size;
      }
      result.jobs.push_back(std::move(job));
    }
    return absl::OkStatus();
  }));
  if (more) result.next_page_token = MakePageToken(plan, result.jobs.back());
  return result;
}

absl::StatusOr<std::vector<QueueStateCount>>
PgJobStore::CountJobsByQueueAndStateBlocking() {
  {
    // Like every read, refused once the store is shut down.
    absl::MutexLock lock(&readers_mu_);
    if (readers_closed_) return ShutDownError();
  }
  // Counted by the database: every node's writes move them.
  std::vector<QueueStateCount> counts;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    PgResult r = c.Exec(
        "SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state "
        "ORDER BY queue, state",
        {});
    for (int row = 0; row < r.rows(); ++row) {
      counts.push_back(QueueStateCount{r.String(row, 0),
                                       static_cast<JobState>(r.Int64(row, 1)),
                                       r.Int64(row, 2)});
    }
    return absl::OkStatus();
  }));
  return counts;
}

absl::StatusOr<int64_t> PgJobStore::CountPendingWebhooksBlocking() {
  return QueryIntBlocking(
      "SELECT COUNT(*) FROM webhook_outbox WHERE state = 0");
}

absl::StatusOr<int64_t> PgJobStore::LastEventIdBlocking() {
  // The committed counter: it stays put when retention deletes the newest
  // events, and it is the same on every connection.
  return QueryIntBlocking("SELECT next_id - 1 FROM event_ids");
}

absl::StatusOr<int64_t> PgJobStore::OldestEventIdBlocking() {
  return QueryIntBlocking("SELECT MIN(event_id) FROM job_events");
}

absl::StatusOr<int64_t> PgJobStore::MaxPrunedEventIdBlocking() {
  JW_ASSIGN_OR_RETURN(std::optional<std::string> value,
                      GetSettingBlocking(kMaxPrunedEventIdKey));
  int64_t id = 0;
  if (value.has_value() && !absl::SimpleAtoi(*value, &id)) id = 0;
  return id;
}

absl::Status PgJobStore::LoadActiveJobsBlocking(
    const std::function<void(const Job&)>& visitor) {
  return WithReader([&](PgConnection& c) {
    static const auto* sql = new std::string(
        absl::StrCat("SELECT ", JobColumnList(true), " FROM jobs WHERE ",
                     kActiveJobsCondition,
                     " AND NOT (state = $1 AND EXISTS (SELECT 1 FROM nodes n "
                     "WHERE n.id = jobs.lease_owner AND n.id <> $2))"));
    // A RUNNING job whose lease another registered node holds is that
    // node's (or, once its heartbeat is too old, an orphan handed back by
    // SetOrphanHandler's handler); the rest are this node's to recover.
    PgResult r =
        c.Exec(*sql, {SqlValue::Int(static_cast<int>(JobState::kRunning)),
                      SqlValue::TextRef(node_id_)});
    for (int row = 0; row < r.rows(); ++row) visitor(r.ReadJob(row, true));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<std::string>> PgJobStore::GetSettingBlocking(
    const std::string& key) {
  std::optional<std::string> value;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    PgResult r = c.Exec("SELECT value FROM settings WHERE key = $1",
                        {SqlValue::TextRef(key)});
    if (r.rows() > 0) value = r.String(0, 0);
    return absl::OkStatus();
  }));
  return value;
}

absl::StatusOr<std::vector<QueueRow>> PgJobStore::ListQueueRowsBlocking() {
  std::vector<QueueRow> rows;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    PgResult r = c.Exec(
        "SELECT name, paused, resume_time, concurrency_limit, weight FROM "
        "queues ORDER BY name",
        {});
    for (int row = 0; row < r.rows(); ++row) {
      QueueRow q;
      q.name = r.String(row, 0);
      q.paused = r.Int64(row, 1) != 0;
      q.resume_time = TimeAt(r, row, 2);
      q.concurrency_limit = static_cast<int32_t>(r.Int64(row, 3));
      q.weight = static_cast<int32_t>(r.Int64(row, 4));
      rows.push_back(std::move(q));
    }
    return absl::OkStatus();
  }));
  return rows;
}

// ---- Webhook outbox ----

absl::StatusOr<std::vector<WebhookOutboxRow>>
PgJobStore::PendingWebhooksBlocking(int limit) {
  if (limit <= 0) return InvalidArgumentError("limit", "must be positive");
  limit = std::min(limit, kMaxReadLimit);
  const int64_t now = absl::ToUnixMicros(clock_->Now());
  std::vector<WebhookOutboxRow> rows;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    // The due rows nobody else holds are claimed for this node in one
    // statement (SKIP LOCKED: a row another node is claiming right now is
    // left to it); a claim of ours is renewed.
    static const auto* claim = new std::string(absl::StrCat(
        "WITH due AS (SELECT id FROM webhook_outbox WHERE state = 0 AND "
        "next_attempt_time <= $1 AND ",
        kOutboxFree,
        " ORDER BY next_attempt_time, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
        "UPDATE webhook_outbox SET claimed_by = $2, claim_expire "
        "= " JW_PG_NOW_US
        " + $4 FROM due WHERE webhook_outbox.id = due.id RETURNING ",
        kOutboxColumnsQualified));
    PgResult r = c.Exec(
        *claim,
        {SqlValue::Int(now), SqlValue::TextRef(node_id_), SqlValue::Int(limit),
         SqlValue::Int(absl::ToInt64Microseconds(options_.node_ttl))});
    for (int row = 0; row < r.rows(); ++row)
      rows.push_back(OutboxRowAt(r, row));
    std::sort(rows.begin(), rows.end(),
              [](const WebhookOutboxRow& a, const WebhookOutboxRow& b) {
                return std::tie(a.next_attempt_time, a.id) <
                       std::tie(b.next_attempt_time, b.id);
              });
    if (static_cast<int>(rows.size()) == limit) return absl::OkStatus();
    // Then those not due yet (unclaimed), so the sender knows when to look.
    static const auto* later = new std::string(absl::StrCat(
        "SELECT ", kOutboxColumns,
        " FROM webhook_outbox WHERE state = 0 AND next_attempt_time > $1 AND ",
        kOutboxFree, " ORDER BY next_attempt_time, id LIMIT $3"));
    PgResult more =
        c.Exec(*later, {SqlValue::Int(now), SqlValue::TextRef(node_id_),
                        SqlValue::Int(limit - static_cast<int>(rows.size()))});
    for (int row = 0; row < more.rows(); ++row)
      rows.push_back(OutboxRowAt(more, row));
    return absl::OkStatus();
  }));
  return rows;
}

void PgJobStore::RecordWebhookAttempt(WebhookAttempt attempt,
                                      StatusCallback done) {
  auto op = std::make_unique<WriteOp>();
  op->reads = attempt.job_id;
  op->apply = [attempt = std::move(attempt),
               &node = node_id_](Writer& w) -> absl::Status {
    const int64_t next_time =
        absl::ToUnixMicros(attempt.next_state == WebhookDeliveryState::kPending
                               ? attempt.next_attempt_time
                               : attempt.attempt_time);
    PgResult r = w.conn->Exec(
        "UPDATE webhook_outbox SET attempts = $1, state = $2, "
        "next_attempt_time = $3, last_attempt_time = $4, last_status = $5, "
        "last_error = $6, claimed_by = CASE WHEN claimed_by = $8 THEN NULL "
        "ELSE claimed_by END, claim_expire = CASE WHEN claimed_by = $8 THEN "
        "NULL ELSE claim_expire END WHERE id = $7 AND state = 0",
        {SqlValue::Int(attempt.attempt),
         SqlValue::Int(static_cast<int>(attempt.next_state)),
         SqlValue::Int(next_time),
         SqlValue::Int(absl::ToUnixMicros(attempt.attempt_time)),
         SqlValue::Int(attempt.http_status), SqlValue::TextRef(attempt.error),
         SqlValue::Int(attempt.delivery_id), SqlValue::TextRef(node)});
    if (r.affected() == 0) {
      return absl::NotFoundError(absl::StrCat("webhook delivery ",
                                              attempt.delivery_id,
                                              " not found or not pending"));
    }
    ++w.writes;
    // The outcome as an event of the job, in the same transaction.
    absl::StatusOr<Job> current = w.LoadJob(attempt.job_id);
    if (absl::IsNotFound(current.status())) return absl::OkStatus();
    JW_RETURN_IF_ERROR(current.status());
    Job next = *current;
    next.version = current->version + 1;
    next.update_time = w.now;
    next.last_seq = current->last_seq + 1;
    w.UpdateJob(*current, next);
    JobEvent e;
    e.type = EventType::kWebhookDelivery;
    e.attempt = current->attempt;
    e.webhook_delivery = WebhookDeliveryInfo{
        attempt.attempt, attempt.http_status, attempt.delivered, attempt.error};
    w.AppendEvent(next, std::move(e), next.last_seq);
    return absl::OkStatus();
  };
  op->finish = std::move(done);
  Enqueue(std::move(op));
}

absl::StatusOr<WebhookDeliveryPage> PgJobStore::ListWebhookDeliveriesBlocking(
    const WebhookDeliveryQuery& query) {
  if (query.page_size < 0)
    return InvalidArgumentError("page_size", "must not be negative");
  int64_t before = INT64_MAX;
  if (!query.page_token.empty() &&
      (!absl::SimpleAtoi(query.page_token, &before) || before <= 0)) {
    return InvalidArgumentError("page_token", "not a token of this listing");
  }
  const int size =
      query.page_size == 0 ? 100 : std::min<int32_t>(query.page_size, 1000);
  WebhookDeliveryPage page;
  JW_RETURN_IF_ERROR(WithReader([&](PgConnection& c) {
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", kOutboxColumnsNoBody,
        " FROM webhook_outbox WHERE id < $1 AND ($2::text = '' OR job_id = "
        "$2::text) AND ($3::int = 0 OR state = 2 OR (state = 0 AND attempts > "
        "0)) ORDER BY id DESC LIMIT $4"));
    PgResult r =
        c.Exec(*sql, {SqlValue::Int(before), SqlValue::TextRef(query.job_id),
                      SqlValue::Int(query.failed_only ? 1 : 0),
                      SqlValue::Int(size + 1)});
    for (int row = 0; row < r.rows(); ++row)
      page.deliveries.push_back(OutboxRowAt(r, row));
    return absl::OkStatus();
  }));
  if (static_cast<int>(page.deliveries.size()) > size) {
    page.deliveries.resize(static_cast<size_t>(size));
    page.next_page_token = absl::StrCat(page.deliveries.back().id);
  }
  return page;
}

void PgJobStore::RedeliverWebhook(
    int64_t delivery_id,
    std::function<void(absl::StatusOr<WebhookOutboxRow>)> done) {
  auto row = std::make_shared<WebhookOutboxRow>();
  auto op = std::make_unique<WriteOp>();
  op->apply = [delivery_id, row](Writer& w) -> absl::Status {
    static const auto* select = new std::string(absl::StrCat(
        "SELECT ", kOutboxColumns, " FROM webhook_outbox WHERE id = $1"));
    PgResult r = w.conn->Exec(*select, {SqlValue::Int(delivery_id)});
    if (r.rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("webhook delivery ", delivery_id, " not found"));
    }
    *row = OutboxRowAt(r, 0);
    if (row->state == WebhookDeliveryState::kPending) {
      return FailedPreconditionError(
          absl::StrCat("webhook delivery ", delivery_id,
                       " is pending already (attempt ", row->attempts + 1,
                       " is due)"),
          PreconditionViolation{
              "STATE", absl::StrCat("webhook_deliveries/", delivery_id),
              "delivery is pending"});
    }
    w.Write(
        "UPDATE webhook_outbox SET state = 0, attempts = 0, "
        "next_attempt_time = $1 WHERE id = $2",
        {SqlValue::Int(absl::ToUnixMicros(w.now)), SqlValue::Int(delivery_id)});
    row->state = WebhookDeliveryState::kPending;
    row->attempts = 0;
    row->next_attempt_time = w.now;
    return absl::OkStatus();
  };
  op->finish = [row, done = std::move(done)](absl::Status status) {
    if (!status.ok()) {
      done(std::move(status));
      return;
    }
    done(std::move(*row));
  };
  Enqueue(std::move(op));
}

}  // namespace jobwire
