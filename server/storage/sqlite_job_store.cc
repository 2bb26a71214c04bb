#include "server/storage/sqlite_job_store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Exception.h"
#include "SQLiteCpp/Statement.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/core/validation.h"
#include "server/core/webhook_event.h"
#include "server/storage/job_row_cache.h"
#include "server/storage/job_rules.h"
#include "server/storage/list_query.h"
#include "server/storage/migrations.h"
#include "server/storage/sqlite_malloc.h"
#include "server/storage/sqlite_rows.h"
#include "server/storage/sqlite_status.h"
#include "server/storage/wal_write_buffer.h"

namespace jobwire {
namespace {

constexpr int kMaxReadLimit = 10000;

constexpr size_t kMaxUpdateStatements = 256;
// Events per multi-row INSERT (x 28 columns: well under SQLite's 32,766
// bound parameters).
constexpr size_t kEventRowsPerInsert = 64;
// New jobs (x 42 columns) and label rows per multi-row INSERT of a Submit.
constexpr size_t kJobRowsPerInsert = 32;
constexpr size_t kLabelRowsPerInsert = 64;
// Distinct changes of one BulkWrite chunk written as one UPDATE each; jobs
// beyond them are written row by row.
constexpr size_t kMaxBulkGroups = 16;
// A JSON array of ids, bound to json_each(?): one statement for many rows.
constexpr const char* kIdsIn = "IN (SELECT value FROM json_each(?))";
constexpr const char* kMaxPrunedEventIdKey = "retention.max_pruned_event_id";
// Every event id at or below it was given out once (written by the migration
// that dropped AUTOINCREMENT from job_events; see migrations.cc).
constexpr const char* kEventsHighWaterKey = "events.high_water";

absl::Status ShutDownError() {
  return UnavailableError("job store is shut down", absl::Seconds(1));
}

const char* SynchronousPragma(SqliteJobStore::Synchronous s) {
  switch (s) {
    case SqliteJobStore::Synchronous::kFull:
      return "PRAGMA synchronous = FULL";
    case SqliteJobStore::Synchronous::kNormal:
      return "PRAGMA synchronous = NORMAL";
    case SqliteJobStore::Synchronous::kOff:
      return "PRAGMA synchronous = OFF";
  }
  return "PRAGMA synchronous = FULL";
}

// A job whose request_id is taken already is not inserted (no error, no
// change): the unique index answers the idempotency check that a SELECT
// before each insert would repeat. Every other constraint still fails.
const std::string& PlainInsertJobSql() {
  static const auto* sql = [] {
    std::vector<std::string> marks(JobColumns().size(), "?");
    return new std::string(absl::StrCat("INSERT INTO jobs (",
                                        JobColumnList(false), ") VALUES (",
                                        absl::StrJoin(marks, ", "), ")"));
  }();
  return *sql;
}

const std::string& InsertJobSql() {
  static const auto* sql = new std::string(absl::StrCat(
      PlainInsertJobSql(),
      " ON CONFLICT (request_id) WHERE request_id IS NOT NULL DO NOTHING"));
  return *sql;
}

constexpr const char* kInsertLabelSql =
    "INSERT INTO job_labels (job_id, key, value) VALUES (?, ?, ?)";

const std::string& InsertEventSql() {
  static const auto* sql = [] {
    // The writer assigns event_id (Writer::next_event_id).
    std::vector<std::string> names = {"event_id"}, marks = {"?"};
    for (const EventColumn& c : EventColumns()) {
      names.push_back(c.name);
      marks.push_back("?");
    }
    return new std::string(
        absl::StrCat("INSERT INTO job_events (", absl::StrJoin(names, ", "),
                     ") VALUES (", absl::StrJoin(marks, ", "), ")"));
  }();
  return *sql;
}

// `one`, an INSERT of one row ending with its VALUES (...), made an INSERT
// of `rows` rows at once.
std::string MultiRowInsertSql(const std::string& one, size_t rows) {
  const size_t values = one.find(" VALUES ");
  const std::string row = one.substr(values + 8);
  std::string sql = one.substr(0, values + 8);
  for (size_t i = 0; i < rows; ++i) absl::StrAppend(&sql, i ? ", " : "", row);
  return sql;
}

// `ids` as a JSON array of strings, for json_each(?).
std::string JsonArray(const std::vector<const std::string*>& ids) {
  std::string out = "[";
  out.reserve(ids.size() * 30 + 2);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char ch : *ids[i]) {
      if (ch == '"' || ch == '\\') {
        out.push_back('\\');
        out.push_back(ch);
      } else if (static_cast<unsigned char>(ch) < 0x20) {
        absl::StrAppend(&out, "\\u00",
                        absl::Hex(static_cast<int>(ch), absl::kZeroPad2));
      } else {
        out.push_back(ch);
      }
    }
    out.push_back('"');
  }
  out.push_back(']');
  return out;
}

const std::string& SelectJobSql() {
  static const auto* sql = new std::string(
      absl::StrCat("SELECT ", JobColumnList(false), " FROM jobs WHERE id = ?"));
  return *sql;
}

// Names the calling thread for top, perf and gdb (at most 15 characters).
void NameThisThread(const char* name) {
  pthread_setname_np(pthread_self(), name);
}

void BindAll(SQLite::Statement& stmt, const std::vector<SqlValue>& values) {
  for (size_t i = 0; i < values.size(); ++i)
    BindValue(stmt, static_cast<int>(i) + 1, values[i]);
}

}  // namespace

// A connection and its prepared statements. Used by one thread at a time.
class SqliteJobStore::Connection {
 public:
  // `vfs`: a registered SQLite VFS's name; empty for the default one.
  Connection(const std::string& path, absl::Duration busy_timeout,
             const std::string& vfs = "")
      : db(path,
           SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX,
           static_cast<int>(absl::ToInt64Milliseconds(busy_timeout)), vfs),
        stmts(&db) {}

  SQLite::Database db;
  StatementCache stmts;
};

// State of the writer thread: the writing connection and the transaction in
// progress, driven by the GroupCommit. Only the writer thread touches it.
class SqliteJobStore::Writer final : public GroupCommit::Transaction {
 public:
  Writer(SqliteJobStore* store, const std::string& path,
         absl::Duration busy_timeout, const std::string& vfs,
         JobRowCache::Limits cache_limits)
      : conn(path, busy_timeout, vfs),
        store(store),
        ids(&store->ids_),
        rows(cache_limits) {}

  // GroupCommit::Transaction. SQLite's exceptions are caught and mapped.
  absl::Status Begin(absl::Time batch_time) override;
  absl::Status Apply(GroupCommit::Request& request) override;
  Residue Failed() override;
  absl::Status Savepoint() override { return ExecStatus("SAVEPOINT op"); }
  absl::Status ReleaseSavepoint() override { return ExecStatus("RELEASE op"); }
  absl::Status RollbackToSavepoint() override;
  absl::Status Commit() override { return ExecStatus("COMMIT"); }
  void Committed(std::vector<JobEvent>* committed) override;
  void Rollback() override;
  void BetweenBatches() override { store->FinishCheckpoint(); }

  // Copies the row cache's counters to the store's stats().
  void PublishCacheStats() {
    store->row_cache_hits_.store(rows.hits(), std::memory_order_relaxed);
    store->row_cache_misses_.store(rows.misses(), std::memory_order_relaxed);
  }

  void Exec(const std::string& sql) { conn.stmts.Get(sql)->exec(); }

  // Exec, with SQLite's exception mapped.
  absl::Status ExecStatus(const std::string& sql) {
    try {
      Exec(sql);
    } catch (const SQLite::Exception& e) {
      return StatusFromSqlite(e);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Job> LoadJob(const std::string& id) {
    auto stmt = conn.stmts.Get(SelectJobSql());
    stmt->bind(1, id);
    if (!stmt->executeStep()) return JobNotFound(id);
    return ReadJob(*stmt, false);
  }

  std::optional<Job> FindByRequestId(const std::string& request_id) {
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", JobColumnList(false), " FROM jobs WHERE request_id = ?"));
    auto stmt = conn.stmts.Get(*sql);
    stmt->bind(1, request_id);
    if (!stmt->executeStep()) return std::nullopt;
    return ReadJob(*stmt, false);
  }

  // Inserts `job` and its labels. False, with nothing written, when another
  // job has its request_id.
  bool InsertJob(const Job& job) {
    auto stmt = conn.stmts.Get(InsertJobSql());
    int index = 0;
    // Borrowed values point into `job`, which outlives exec().
    for (const JobColumn& c : JobColumns())
      BindValue(*stmt, ++index, c.get(job));
    if (stmt->exec() == 0) return false;
    InsertLabels(job);
    CountJob(job.queue, job.state, 1);
    return true;
  }

  // Records a change of the number of jobs in (queue, state) by the
  // transaction in progress. Runs of the same key within one request (a
  // batch of submits to one queue) fold into one entry.
  void CountJob(const std::string& queue, JobState state, int64_t n) {
    if (count_deltas.size() > count_fold_floor &&
        count_deltas.back().state == state &&
        count_deltas.back().queue == queue) {
      count_deltas.back().n += n;
      return;
    }
    count_deltas.push_back(CountDelta{queue, state, n});
  }

  // The columns that differ between `before` and `after`: their indexes, one
  // char each, in `key`, and their values (borrowed from `after`) in
  // `values`. With `skip_counters`, version and last_seq are left out (the
  // caller bumps them in SQL). Returns whether the labels differ.
  bool DiffColumns(const Job& before, const Job& after, bool skip_counters,
                   std::string* key, std::vector<SqlValue>* values) const {
    const std::vector<JobColumn>& columns = JobColumns();
    key->clear();
    values->clear();
    bool labels_changed = false;
    for (size_t i = 0; i < columns.size(); ++i) {
      if (skip_counters && (i == version_column_ || i == last_seq_column_))
        continue;
      SqlValue v;
      if (i == labels_column_) {
        // Compare the maps, not their encodings.
        if (before.labels == after.labels) continue;
        labels_changed = true;
        v = columns[i].get(after);
      } else {
        v = columns[i].get(after);
        if (v == columns[i].get(before)) continue;
      }
      key->push_back(static_cast<char>(i));
      values->push_back(std::move(v));
    }
    return labels_changed;
  }

  // Records the move of a job from `before`'s (queue, state) to `after`'s,
  // if it moved.
  void CountMove(const Job& before, const Job& after) {
    if (before.queue != after.queue || before.state != after.state) {
      CountJob(before.queue, before.state, -1);
      CountJob(after.queue, after.state, 1);
    }
  }

  // Writes the columns that differ between `before` and `after`.
  void UpdateJob(const Job& before, const Job& after) {
    CountMove(before, after);
    // The indexes of the changed columns: the key of the cached UPDATE for
    // this set of columns.
    const bool labels_changed =
        DiffColumns(before, after, false, &update_key_, &update_values_);
    if (update_key_.empty()) return;
    SQLite::Statement* stmt =
        UpdateStatement(update_stmts_, update_key_, {}, "= ?");
    BindAll(*stmt, update_values_);
    stmt->bindNoCopy(static_cast<int>(update_values_.size()) + 1, after.id);
    // Reset even when exec() throws, so the statement holds no lock.
    StatementCache::Lease reset_after(stmt);
    stmt->exec();
    if (labels_changed) {
      auto del = conn.stmts.Get("DELETE FROM job_labels WHERE job_id = ?");
      del->bind(1, after.id);
      del->exec();
      InsertLabels(after);
    }
  }

  // The cached UPDATE of jobs that sets the columns of `key` (indexes, one
  // char each) and then `extra`, in the rows whose id matches `match`.
  // `cache` is bounded by kMaxUpdateStatements: mutations change only a few
  // distinct sets of columns (assign, complete, progress...), and a bound
  // is there for the unexpected.
  SQLite::Statement* UpdateStatement(
      std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>>&
          cache,
      const std::string& key, const std::vector<std::string>& extra,
      const char* match) {
    if (cache.size() >= kMaxUpdateStatements && cache.count(key) == 0)
      cache.clear();
    std::unique_ptr<SQLite::Statement>& stmt = cache[key];
    if (stmt == nullptr) {
      const std::vector<JobColumn>& columns = JobColumns();
      std::vector<std::string> sets;
      for (char i : key)
        sets.push_back(
            absl::StrCat(columns[static_cast<size_t>(i)].name, " = ?"));
      sets.insert(sets.end(), extra.begin(), extra.end());
      stmt = std::make_unique<SQLite::Statement>(
          conn.db, absl::StrCat("UPDATE jobs SET ", absl::StrJoin(sets, ", "),
                                " WHERE id ", match));
    }
    return stmt.get();
  }

  // Sets the columns of `key` to `values` (DiffColumns with skip_counters),
  // adds 1 to version and `events` to last_seq, in every job `ids_json` (a
  // JSON array) lists: one statement. Returns the number of rows changed.
  int UpdateJobsAlike(const std::string& key,
                      const std::vector<SqlValue>& values, int64_t events,
                      const std::string& ids_json) {
    SQLite::Statement* stmt = UpdateStatement(
        bulk_update_stmts_, key,
        {"version = version + 1", "last_seq = last_seq + ?"}, kIdsIn);
    BindAll(*stmt, values);
    stmt->bind(static_cast<int>(values.size()) + 1, events);
    stmt->bindNoCopy(static_cast<int>(values.size()) + 2, ids_json);
    StatementCache::Lease reset_after(stmt);
    return stmt->exec();
  }

  // Reads the rows of the jobs `ids_json` (a JSON array) lists, in no
  // particular order, into `out`.
  void LoadJobs(const std::string& ids_json, std::vector<Job>* out) {
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", JobColumnList(false), " FROM jobs WHERE id ", kIdsIn));
    auto stmt = conn.stmts.Get(*sql);
    stmt->bindNoCopy(1, ids_json);
    while (stmt->executeStep()) out->push_back(ReadJob(*stmt, false));
  }

  // Inserts jobs[begin, end), none with a request_id (so none conflicts),
  // and their labels, in multi-row INSERTs.
  void InsertNewJobs(const std::vector<Job>& jobs, size_t begin, size_t end) {
    std::unique_ptr<SQLite::Statement>& stmt = job_inserts_[end - begin];
    BoundParams& bound = job_bound_[end - begin];
    if (stmt == nullptr) {
      stmt = std::make_unique<SQLite::Statement>(
          conn.db, MultiRowInsertSql(PlainInsertJobSql(), end - begin));
    }
    {
      // Reset even when exec() throws, so the statement holds no lock.
      StatementCache::Lease reset_after(stmt.get());
      int index = 0;
      // Borrowed values point into `jobs`, which outlives exec().
      for (size_t k = begin; k < end; ++k) {
        for (const JobColumn& c : JobColumns())
          bound.Bind(*stmt, ++index, c.get(jobs[k]));
      }
      stmt->exec();
    }
    // The label rows, kLabelRowsPerInsert at a time.
    size_t rows = 0;
    auto flush = [&] {
      if (rows == 0) return;
      std::unique_ptr<SQLite::Statement>& labels = label_inserts_[rows];
      if (labels == nullptr) {
        labels = std::make_unique<SQLite::Statement>(
            conn.db, MultiRowInsertSql(kInsertLabelSql, rows));
      }
      StatementCache::Lease reset_after(labels.get());
      for (size_t i = 0; i < rows; ++i) {
        const auto& [id, key, value] = label_rows_[i];
        labels->bindNoCopy(static_cast<int>(3 * i + 1), *id);
        labels->bindNoCopy(static_cast<int>(3 * i + 2), *key);
        labels->bindNoCopy(static_cast<int>(3 * i + 3), *value);
      }
      labels->exec();
      rows = 0;
    };
    for (size_t k = begin; k < end; ++k) {
      CountJob(jobs[k].queue, jobs[k].state, 1);
      for (const auto& [key, value] : jobs[k].labels) {
        label_rows_[rows++] = {&jobs[k].id, &key, &value};
        if (rows == kLabelRowsPerInsert) flush();
      }
    }
    flush();
  }

  void InsertLabels(const Job& job) {
    if (job.labels.empty()) return;
    auto stmt = conn.stmts.Get(kInsertLabelSql);
    for (const auto& [key, value] : job.labels) {
      stmt->tryReset();
      stmt->bindNoCopy(1, job.id);
      stmt->bindNoCopy(2, key);
      stmt->bindNoCopy(3, value);
      stmt->exec();
    }
  }

  // Appends `events` to the log of `job` with seq first_seq, first_seq+1...
  // and the next event ids. The rows wait in pending_events_ and go to
  // SQLite kEventRowsPerInsert at a time; FlushEvents writes the rest
  // (ApplyBatch calls it after each request).
  void AppendEvents(const Job& job, std::vector<JobEvent> new_events,
                    int64_t first_seq) {
    for (JobEvent& e : new_events) AppendEvent(job, std::move(e), first_seq++);
  }

  // Appends `e` to the log of `job` with seq `seq`: see AppendEvents.
  void AppendEvent(const Job& job, JobEvent e, int64_t seq) {
    {
      // Taken before the insert and never given back: an id of a failed
      // insert or a rolled-back transaction is skipped, not reused.
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
      pending_events_.push_back(std::move(e));
      if (pending_events_.size() == kEventRowsPerInsert) FlushEvents();
    }
  }

  // Writes the events AppendEvents holds, in one INSERT, and moves them to
  // `events`.
  void FlushEvents() {
    const size_t n = pending_events_.size();
    if (n == 0) return;
    std::unique_ptr<SQLite::Statement>& stmt = event_inserts_[n];
    BoundParams& bound = event_bound_[n];
    if (stmt == nullptr)
      stmt = std::make_unique<SQLite::Statement>(
          conn.db, MultiRowInsertSql(InsertEventSql(), n));
    // Reset even when exec() throws, so the statement holds no lock.
    StatementCache::Lease reset_after(stmt.get());
    int index = 0;
    // Borrowed values point into pending_events_, which outlives exec().
    for (const JobEvent& e : pending_events_) {
      bound.Bind(*stmt, ++index, SqlValue::Int(e.event_id));
      for (const EventColumn& c : EventColumns())
        bound.Bind(*stmt, ++index, c.get(e));
    }
    stmt->exec();
    for (JobEvent& e : pending_events_) events.push_back(std::move(e));
    pending_events_.clear();
  }

  // A request failed: its events held for FlushEvents are not written.
  void DropPendingEvents() { pending_events_.clear(); }

  // Writes the outbox row of `e`, due now, with its body built from `job`
  // as of `e` (see Options::webhook_body).
  void QueueWebhook(const Job& job, const WebhookSpec& webhook, JobEvent& e) {
    auto stmt = conn.stmts.Get(
        "INSERT INTO webhook_outbox (job_id, event_id, type, url, body, "
        "next_attempt_time, create_time) VALUES (?, ?, ?, ?, ?, ?, ?)");
    const std::string body = (*webhook_body)(job, e);
    const int64_t now_us = absl::ToUnixMicros(now);
    stmt->bindNoCopy(1, job.id);
    stmt->bind(2, static_cast<int64_t>(e.event_id));
    stmt->bind(3, std::string(WebhookEventType(e)));
    stmt->bindNoCopy(4, webhook.url);
    stmt->bindNoCopy(5, body);
    stmt->bind(6, now_us);
    stmt->bind(7, now_us);
    stmt->exec();
    e.webhook_queued = true;
  }

  void PutSetting(const std::string& key, const std::string& value) {
    auto stmt = conn.stmts.Get(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    stmt->bind(1, key);
    stmt->bind(2, value);
    stmt->exec();
  }

  // Deletes the rows, labels and events of the jobs whose id matches `match`
  // ("= ?" with one id, or kIdsIn with a JSON array of ids in `arg`);
  // returns the largest event_id deleted (0 when they had none). The caller
  // Forgets their cached rows.
  int64_t DeleteJobsWhere(const char* match, const std::string& arg) {
    int64_t max_event_id = 0;
    {
      auto stmt = conn.stmts.Get(absl::StrCat(
          "SELECT MAX(event_id) FROM job_events WHERE job_id ", match));
      stmt->bindNoCopy(1, arg);
      if (stmt->executeStep()) max_event_id = stmt->getColumn(0).getInt64();
    }
    // Pending deliveries stay: a job deleted right after it ended still
    // gets its webhook (the row carries its body).
    for (const std::string& sql :
         {absl::StrCat("DELETE FROM job_events WHERE job_id ", match),
          absl::StrCat("DELETE FROM webhook_outbox WHERE job_id ", match,
                       " AND state != 0"),
          absl::StrCat("DELETE FROM job_labels WHERE job_id ", match)}) {
      auto stmt = conn.stmts.Get(sql);
      stmt->bindNoCopy(1, arg);
      stmt->exec();
    }
    // SQLite deletes every row in the first step (RETURNING rows come
    // after); each deleted row moves the counts, and the lease resets it.
    auto stmt = conn.stmts.Get(absl::StrCat("DELETE FROM jobs WHERE id ", match,
                                            " RETURNING queue, state"));
    stmt->bindNoCopy(1, arg);
    while (stmt->executeStep()) {
      CountJob(stmt->getColumn(0).getString(),
               static_cast<JobState>(stmt->getColumn(1).getInt()), -1);
    }
    return max_event_id;
  }

  // Deletes one job; see DeleteJobsWhere.
  int64_t DeleteJob(const std::string& id) {
    rows.Forget(id);
    return DeleteJobsWhere("= ?", id);
  }

  // Sets integer setting `key` to `value` unless it holds a larger one.
  void RaiseSetting(const std::string& key, int64_t value) {
    auto stmt = conn.stmts.Get(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
        "WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)");
    stmt->bind(1, key);
    stmt->bind(2, absl::StrCat(value));
    stmt->exec();
  }

  Connection conn;
  SqliteJobStore* const store;
  IdGenerator* const ids;
  // Rows of active jobs as the open transaction sees them. Every statement
  // that writes a jobs row must keep it right: Put the new row or Forget the
  // id (Submit and Mutate Put, retention Forgets). Failed requests and
  // rolled-back transactions are handled by Failed and Rollback.
  JobRowCache rows;
  static size_t ColumnIndex(std::string_view name) {
    const std::vector<JobColumn>& columns = JobColumns();
    for (size_t i = 0; i < columns.size(); ++i) {
      if (std::string_view(columns[i].name) == name) return i;
    }
    return columns.size();
  }
  const size_t labels_column_ = ColumnIndex("labels");
  const size_t version_column_ = ColumnIndex("version");
  const size_t last_seq_column_ = ColumnIndex("last_seq");
  // UpdateJob's statements by changed-column key, and its scratch space.
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>>
      update_stmts_;
  std::string update_key_;
  std::vector<SqlValue> update_values_;
  // UpdateJobsAlike's statements by changed-column key.
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>>
      bulk_update_stmts_;
  // Events appended and not yet written (FlushEvents), and the multi-row
  // INSERTs by row count.
  std::vector<JobEvent> pending_events_;
  std::unique_ptr<SQLite::Statement> event_inserts_[kEventRowsPerInsert + 1];
  // What each of those statements has bound (the rows of a batch share most
  // of their NULL and integer values).
  BoundParams event_bound_[kEventRowsPerInsert + 1];
  // InsertNewJobs' multi-row INSERTs by row count, and its label rows.
  std::unique_ptr<SQLite::Statement> job_inserts_[kJobRowsPerInsert + 1];
  BoundParams job_bound_[kJobRowsPerInsert + 1];
  std::unique_ptr<SQLite::Statement> label_inserts_[kLabelRowsPerInsert + 1];
  std::tuple<const std::string*, const std::string*, const std::string*>
      label_rows_[kLabelRowsPerInsert];
  // Time of the transaction in progress.
  absl::Time now = absl::InfinitePast();
  // Events written by the transaction in progress, in event_id order.
  std::vector<JobEvent> events;
  // Job count changes by the transaction in progress (CountJob), applied to
  // the store's counts once it commits. Every statement that inserts,
  // deletes, or changes the queue or state of a jobs row records one.
  struct CountDelta {
    std::string queue;
    JobState state = JobState::kUnspecified;
    int64_t n = 0;
  };
  std::vector<CountDelta> count_deltas;
  // Entries below it belong to earlier requests and are not folded into, so
  // that a failed request's entries are the ones at or above its mark.
  size_t count_fold_floor = 0;
  // Options::default_webhook when set, else null.
  const WebhookSpec* default_webhook = nullptr;
  // Options::webhook_body when set, else null.
  const std::function<std::string(const Job&, const JobEvent&)>* webhook_body =
      nullptr;
  // The id of the next event: above every id ever committed (set at open
  // from the log and the stored high-water marks) and only ever increasing,
  // so event ids are never reused; ids of rolled-back writes are skipped.
  int64_t next_event_id = 1;

 private:
  // Where the request in progress started (taken by Apply, used by Failed):
  // the sizes of events and count_deltas, the row cache's mark, and
  // SQLite's count of changed rows.
  size_t request_events_ = 0;
  size_t request_counts_ = 0;
  size_t request_rows_ = 0;
  int64_t request_changes_ = 0;
};

// One queued write of the GroupCommit: Apply runs on the writer inside the
// batch's transaction (Writer::Apply calls it); Finish gets Apply's status,
// or the batch's error when the commit failed. Apply may run a second time
// (in a fresh transaction, after the first one was rolled back, see
// group_commit.h), so it must not depend on state that its first run
// consumed; and it should fail, when it fails, before its first write. The
// base class runs `apply` and `finish`; the hot Mutate has its own subclass,
// which keeps its result inline and saves the closures' allocations.
struct SqliteJobStore::WriteOp : GroupCommit::Request {
  virtual absl::Status Apply(Writer& w) { return apply(w); }
  void Finish(absl::Status status) override { finish(std::move(status)); }

  std::function<absl::Status(Writer&)> apply;
  std::function<void(absl::Status)> finish;
};

// Mutate's write: runs the mutation against the job's row and answers with
// the job as written.
struct SqliteJobStore::MutateOp final : WriteOp {
  MutateOp(std::string id, JobMutation mutation, JobCallback done)
      : id(std::move(id)),
        mutation(std::move(mutation)),
        done(std::move(done)) {}
  absl::Status Apply(Writer& w) override;
  void Finish(absl::Status status) override {
    if (status.ok()) {
      done(std::move(result));
    } else {
      done(std::move(status));
    }
  }

  const std::string id;
  const JobMutation mutation;
  const JobCallback done;
  Job result;  // set by Apply
};

// Submit's write: inserts the jobs (or finds them by request_id) and answers
// with the outcomes.
struct SqliteJobStore::SubmitOp final : WriteOp {
  SubmitOp(std::vector<NewJob> jobs, SubmitCallback done);
  absl::Status Apply(Writer& w) override;
  void Finish(absl::Status status) override;

  const SubmitCallback done;
  // The first invalid input's error; OK when every input is valid.
  absl::Status invalid;
  // The inputs as rows to insert (empty when `invalid`).
  std::vector<Job> rows;
  // Per input: the existing job (created=false), or a created one whose job
  // is taken from rows[i] when the commit succeeded.
  std::vector<SubmitOutcome> outcomes;
};

// BulkWrite's write: one chunk of a bulk update (see BulkWrite).
struct SqliteJobStore::BulkOp final : WriteOp {
  BulkOp(SqliteJobStore* store, std::vector<std::string> ids,
         std::shared_ptr<const BulkWriteSpec> spec, BulkWriteCallback done)
      : store(store),
        ids(std::move(ids)),
        spec(std::move(spec)),
        done(std::move(done)) {
    bulk = true;
    jobs = static_cast<int64_t>(this->ids.size());
  }
  absl::Status Apply(Writer& w) override;
  void Finish(absl::Status status) override;
  // The two halves of Apply; `current` gives a job's row or null.
  void ApplyMutation(
      Writer& w, const std::function<const Job*(const std::string&)>& current);
  void ApplyDelete(
      Writer& w, const std::function<const Job*(const std::string&)>& current);

  SqliteJobStore* const store;
  const std::vector<std::string> ids;
  const std::shared_ptr<const BulkWriteSpec> spec;
  const BulkWriteCallback done;
  std::vector<BulkItemResult> results;  // set by Apply
  int64_t max_event_id = 0;             // of the jobs deleted
};

absl::StatusOr<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(
    Options options) {
  // Before the store's first connection (see sqlite_malloc.h).
  InstallSqliteMalloc();
  std::string path = options.path;
  std::string temp_dir;
  if (path == ":memory:") {
    const char* tmp = getenv("TMPDIR");
    std::string tmpl = absl::StrCat(
        tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/jobwire-store-XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError(
          absl::StrCat("storage: cannot create a temporary directory ", tmpl));
    }
    temp_dir = tmpl;
    path = absl::StrCat(temp_dir, "/jobwire.db");
  }
  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(
      std::move(options), std::move(path), std::move(temp_dir)));
  JW_RETURN_IF_ERROR(store->OpenBlocking());
  return store;
}

SqliteJobStore::SqliteJobStore(Options options, std::string path,
                               std::string temp_dir)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      path_(std::move(path)),
      temp_dir_(std::move(temp_dir)),
      ids_(clock_) {}

SqliteJobStore::~SqliteJobStore() { Shutdown(); }

absl::Status SqliteJobStore::OpenBlocking() {
  try {
    JobRowCache::Limits cache_limits;
    cache_limits.max_jobs =
        static_cast<size_t>(std::max<int64_t>(0, options_.row_cache_jobs));
    // Sound only when every commit syncs the WAL (see wal_write_buffer.h).
    const bool gather = options_.gather_wal_writes &&
                        options_.synchronous == Synchronous::kFull &&
                        RegisterWalWriteBufferVfs();
    writer_ = std::make_unique<Writer>(this, path_, options_.busy_timeout,
                                       gather ? kWalWriteBufferVfs : "",
                                       cache_limits);
    if (options_.webhook_body) writer_->webhook_body = &options_.webhook_body;
    if (options_.default_webhook.has_value())
      writer_->default_webhook = &*options_.default_webhook;
    SQLite::Database& db = writer_->conn.db;
    std::string mode = db.execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal") {
      return absl::InternalError(absl::StrCat(
          "storage: cannot enable WAL mode on ", path_, " (got ", mode, ")"));
    }
    db.exec(SynchronousPragma(options_.synchronous));
    if (gather && db.execAndGet("PRAGMA synchronous").getInt() < 2) {
      return absl::InternalError(
          "storage: the writer's commits would not sync the WAL");
    }
    db.exec("PRAGMA foreign_keys = OFF");
    db.exec("PRAGMA temp_store = MEMORY");
    // 64 MiB of page cache keeps the hot index pages of a busy writer in
    // memory.
    db.exec("PRAGMA cache_size = -65536");
    if (options_.max_db_pages > 0) {
      db.execAndGet(
          absl::StrCat("PRAGMA max_page_count = ", options_.max_db_pages));
    }
    JW_RETURN_IF_ERROR(MigrateBlocking(db));
    if (options_.checkpoint_pages > 0) {
      db.exec("PRAGMA wal_autocheckpoint = 0");
      sqlite3_wal_hook(db.getHandle(), &SqliteJobStore::OnWalCommit, this);
      checkpointer_ =
          std::make_unique<Connection>(path_, options_.busy_timeout);
    }
    // Ids keep growing across restarts even if the clock stepped back.
    SQLite::Statement max_id(db, "SELECT MAX(id) FROM jobs");
    if (max_id.executeStep()) ids_.AdvancePast(max_id.getColumn(0).getString());
    SQLite::Statement pruned(db, "SELECT value FROM settings WHERE key = ?");
    pruned.bind(1, kMaxPrunedEventIdKey);
    if (pruned.executeStep())
      max_pruned_event_id_ = pruned.getColumn(0).getInt64();
    // Event ids continue above every id ever given out: the log's newest,
    // and the newest that retention (or, before the migration that dropped
    // AUTOINCREMENT, sqlite_sequence) saw deleted.
    SQLite::Statement high(
        db,
        "SELECT MAX(COALESCE((SELECT MAX(event_id) FROM job_events), 0), "
        "COALESCE((SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?), "
        "0))");
    high.bind(1, kEventsHighWaterKey);
    int64_t last_event_id = max_pruned_event_id_.load();
    if (high.executeStep())
      last_event_id = std::max(last_event_id, high.getColumn(0).getInt64());
    writer_->next_event_id = last_event_id + 1;
    last_event_id_ = last_event_id;
    // The one count of every row; the writer keeps the counts from here on.
    {
      SQLite::Statement count(db, kCountJobsByQueueAndStateSql);
      absl::MutexLock lock(&counts_mu_);
      job_counts_.clear();
      while (count.executeStep()) {
        job_counts_[{count.getColumn(0).getString(),
                     static_cast<JobState>(count.getColumn(1).getInt())}] +=
            count.getColumn(2).getInt64();
      }
    }

    absl::MutexLock lock(&readers_mu_);
    for (int i = 0; i < std::max(1, options_.reader_connections); ++i) {
      auto conn = std::make_unique<Connection>(path_, options_.busy_timeout);
      conn->db.exec("PRAGMA query_only = ON");
      free_readers_.push_back(conn.get());
      readers_.push_back(std::move(conn));
    }
  } catch (const SQLite::Exception& e) {
    return StatusFromSqlite(e);
  }
  GroupCommit::Options engine_options;
  engine_options.clock = clock_;
  engine_options.max_batch_jobs = options_.max_batch_jobs;
  engine_options.max_batch_bytes = options_.max_batch_bytes;
  engine_options.complete_on_idle_writer = options_.complete_on_idle_writer;
  engine_options.inline_completion_items = options_.inline_completion_items;
  engine_ = std::make_unique<GroupCommit>(engine_options, writer_.get());
  engine_->Start();
  if (checkpointer_ != nullptr)
    checkpoint_thread_ = std::thread([this] { CheckpointLoop(); });
  return absl::OkStatus();
}

int SqliteJobStore::OnWalCommit(void* store, sqlite3*, const char*, int pages) {
  auto* self = static_cast<SqliteJobStore*>(store);
  const int step = self->options_.checkpoint_pages;
  // Asked once per `step` pages of growth, not after every commit above the
  // size: a WAL that cannot start over yet (a reader still reads its old
  // pages) would otherwise have the checkpointer fsync after every commit.
  if (pages < self->wal_pages_ || self->checkpoint_at_pages_ == 0)
    self->checkpoint_at_pages_ = step;  // the WAL started over
  self->wal_pages_ = pages;
  if (pages >= self->checkpoint_at_pages_) {
    self->checkpoint_at_pages_ = pages + step;
    absl::MutexLock lock(&self->checkpoint_mu_);
    self->checkpoint_wanted_ = true;
    self->checkpoint_cv_.Signal();
  }
  return SQLITE_OK;
}

void SqliteJobStore::FinishCheckpoint() {
  if (!finish_checkpoint_.load(std::memory_order_acquire)) return;
  finish_checkpoint_.store(false, std::memory_order_relaxed);
  // PASSIVE on the writer's own connection: no commit can land meanwhile,
  // so unless a reader still reads old pages it copies the whole WAL, and
  // the next write transaction starts it over (SQLite restarts a WAL whose
  // every page is in the database file).
  int wal_pages = 0;
  int copied = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(writer_->conn.db.getHandle(), nullptr,
                                SQLITE_CHECKPOINT_PASSIVE, &wal_pages, &copied);
  if (rc == SQLITE_OK) {
    writer_checkpoints_.fetch_add(1, std::memory_order_relaxed);
  } else if (rc != SQLITE_BUSY) {
    JW_LOG(WARNING) << "storage: writer checkpoint failed: "
                    << sqlite3_errstr(rc);
  }
}

void SqliteJobStore::CheckpointLoop() {
  NameThisThread("jw-checkpoint");
  while (true) {
    {
      absl::MutexLock lock(&checkpoint_mu_);
      while (!checkpoint_wanted_ && !checkpoint_stop_)
        checkpoint_cv_.Wait(&checkpoint_mu_);
      if (checkpoint_stop_) return;
      checkpoint_wanted_ = false;
    }
    // PASSIVE: copies what it can without blocking the writer or readers.
    try {
      checkpointer_->db.execAndGet("PRAGMA wal_checkpoint(PASSIVE)");
      checkpoints_.fetch_add(1, std::memory_order_relaxed);
      finish_checkpoint_.store(true, std::memory_order_release);
    } catch (const SQLite::Exception& e) {
      JW_LOG(WARNING) << "storage: checkpoint failed: " << StatusFromSqlite(e);
    }
  }
}

void SqliteJobStore::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  // Commits what is queued and answers everything; writes that a `done`
  // makes meanwhile are answered at once.
  if (engine_ != nullptr) engine_->Shutdown();
  {
    absl::MutexLock lock(&checkpoint_mu_);
    checkpoint_stop_ = true;
    checkpoint_cv_.Signal();
  }
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  checkpointer_.reset();
  {
    absl::MutexLock lock(&readers_mu_);
    readers_closed_ = true;
    readers_cv_.SignalAll();
    while (free_readers_.size() < readers_.size())
      readers_cv_.Wait(&readers_mu_);
    free_readers_.clear();
    readers_.clear();
  }
  // The writer's connection closes last, so SQLite checkpoints and removes
  // the WAL file.
  writer_.reset();
  if (!temp_dir_.empty()) {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::remove(absl::StrCat(path_, suffix).c_str());
    }
    rmdir(temp_dir_.c_str());
  }
}

void SqliteJobStore::AddCommitListener(CommitListener* listener) {
  engine_->AddCommitListener(listener);
}

SqliteJobStore::Stats SqliteJobStore::stats() const {
  const WriteStats w = engine_->write_stats();
  return Stats{w.commits,
               w.write_requests,
               checkpoints_.load(),
               writer_checkpoints_.load(),
               engine_->rerun_batches(),
               row_cache_hits_.load(),
               row_cache_misses_.load()};
}

WriteStats SqliteJobStore::write_stats() const {
  return engine_->write_stats();
}

void SqliteJobStore::SetCommitObserver(CommitObserver* observer) {
  engine_->SetCommitObserver(observer);
}

void SqliteJobStore::Enqueue(std::unique_ptr<WriteOp> op) {
  engine_->Enqueue(std::move(op));
}

absl::Status SqliteJobStore::Writer::Begin(absl::Time batch_time) {
  now = batch_time;
  events.clear();
  count_deltas.clear();
  count_fold_floor = 0;
  return ExecStatus("BEGIN IMMEDIATE");
}

absl::Status SqliteJobStore::Writer::Apply(GroupCommit::Request& request) {
  request_events_ = events.size();
  request_counts_ = count_deltas.size();
  count_fold_floor = request_counts_;
  request_rows_ = rows.mark();
  request_changes_ = sqlite3_total_changes64(conn.db.getHandle());
  try {
    // Every request of this engine is one of the store's WriteOps.
    JW_RETURN_IF_ERROR(static_cast<WriteOp&>(request).Apply(*this));
    FlushEvents();
  } catch (const SQLite::Exception& e) {
    return StatusFromSqlite(e);
  }
  return absl::OkStatus();
}

GroupCommit::Transaction::Residue SqliteJobStore::Writer::Failed() {
  DropPendingEvents();
  events.resize(request_events_);
  count_deltas.resize(request_counts_);
  // Whatever the request wrote is undone by the engine (or the batch fails).
  rows.RollbackTo(request_rows_);
  sqlite3* handle = conn.db.getHandle();
  // SQLite rolled the whole transaction back (SQLITE_FULL, an I/O error...).
  if (sqlite3_get_autocommit(handle) != 0) return Residue::kLost;
  return sqlite3_total_changes64(handle) != request_changes_ ? Residue::kPartial
                                                             : Residue::kNone;
}

absl::Status SqliteJobStore::Writer::RollbackToSavepoint() {
  JW_RETURN_IF_ERROR(ExecStatus("ROLLBACK TO op"));
  return ExecStatus("RELEASE op");
}

void SqliteJobStore::Writer::Committed(std::vector<JobEvent>* committed) {
  rows.Commit();
  if (!events.empty()) {
    store->last_event_id_.store(events.back().event_id,
                                std::memory_order_release);
  }
  if (!count_deltas.empty()) {
    absl::MutexLock lock(&store->counts_mu_);
    for (const CountDelta& d : count_deltas) {
      if (d.n == 0) continue;
      auto it = store->job_counts_.try_emplace({d.queue, d.state}, 0).first;
      it->second += d.n;
      if (it->second <= 0) {
        if (it->second < 0) {
          JW_LOG(ERROR) << "storage: job count of queue " << d.queue
                        << " in state " << JobStateName(d.state)
                        << " went below zero";
        }
        store->job_counts_.erase(it);
      }
    }
  }
  // The writer keeps the engine's emptied vector (and its capacity) for the
  // next transaction.
  committed->swap(events);
  events.clear();
  count_deltas.clear();
  PublishCacheStats();
}

void SqliteJobStore::Writer::Rollback() {
  // The rows of the rolled-back transaction.
  rows.RollbackTo(0);
  DropPendingEvents();
  events.clear();
  count_deltas.clear();
  if (sqlite3_get_autocommit(conn.db.getHandle()) == 0) {
    try {
      conn.db.exec("ROLLBACK");
    } catch (const SQLite::Exception& e) {
      JW_LOG(ERROR) << "storage: rollback failed: " << e.what();
    }
  }
  PublishCacheStats();
}

void SqliteJobStore::Submit(std::vector<NewJob> jobs, SubmitCallback done) {
  Enqueue(std::make_unique<SubmitOp>(std::move(jobs), std::move(done)));
}

SqliteJobStore::SubmitOp::SubmitOp(std::vector<NewJob> inputs,
                                   SubmitCallback done)
    : done(std::move(done)) {
  light_finish = true;
  // Validated and turned into rows here, on the caller's thread, so the
  // writer (the store's bottleneck) only writes them. An invalid input fails
  // the whole request in Apply, before it writes anything.
  jobs = static_cast<int64_t>(inputs.size());
  invalid = SubmitRows(std::move(inputs), &rows, &bytes);
}

absl::Status SqliteJobStore::SubmitOp::Apply(Writer& w) {
  JW_RETURN_IF_ERROR(invalid);
  // A second run (see WriteOp) writes the same rows again, with new ids.
  outcomes.clear();
  outcomes.reserve(rows.size());
  for (Job& job : rows) {
    job.id = w.ids->Next();
    job.state =
        job.schedule_time > w.now ? JobState::kScheduled : JobState::kQueued;
    job.create_time = w.now;
    job.update_time = w.now;
    job.version = 1;
    job.last_seq = 1;
  }
  // The job's `submitted` event, and its row for the row cache.
  auto created = [&](const Job& job) {
    JobEvent submitted;
    submitted.type = EventType::kStateChanged;
    submitted.from = JobState::kUnspecified;
    submitted.to = job.state;
    submitted.reason = "submitted";
    w.AppendEvent(job, std::move(submitted), 1);
    w.rows.Put(job);
    outcomes.push_back(SubmitOutcome{Job{}, true});
  };
  for (size_t i = 0; i < rows.size();) {
    // Jobs without a request_id cannot conflict: many rows per INSERT.
    size_t end = i;
    while (end < rows.size() && end - i < kJobRowsPerInsert &&
           rows[end].request_id.empty()) {
      ++end;
    }
    if (end > i) {
      w.InsertNewJobs(rows, i, end);
      for (; i < end; ++i) created(rows[i]);
      continue;
    }
    Job& job = rows[i++];
    if (!w.InsertJob(job)) {
      // The request_id is taken (by an earlier job, or one of this batch):
      // answer with that job.
      std::optional<Job> existing = w.FindByRequestId(job.request_id);
      if (!existing.has_value()) {
        return absl::InternalError(
            absl::StrCat("job with request_id ", job.request_id, " vanished"));
      }
      outcomes.push_back(SubmitOutcome{*std::move(existing), false});
      continue;
    }
    created(job);
  }
  return absl::OkStatus();
}

void SqliteJobStore::SubmitOp::Finish(absl::Status status) {
  if (!status.ok()) {
    done(std::move(status));
    return;
  }
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (outcomes[i].created) outcomes[i].job = std::move(rows[i]);
  }
  done(std::move(outcomes));
}

void SqliteJobStore::Mutate(std::string id, JobMutation mutation,
                            JobCallback done) {
  Enqueue(std::make_unique<MutateOp>(std::move(id), std::move(mutation),
                                     std::move(done)));
}

absl::Status SqliteJobStore::MutateOp::Apply(Writer& w) {
  // The cached row when the writer holds it; otherwise read it.
  Job loaded;
  const Job* cached = w.rows.Find(id);
  if (cached == nullptr) {
    JW_ASSIGN_OR_RETURN(loaded, w.LoadJob(id));
    cached = &loaded;
  }
  const Job& current = *cached;
  JW_ASSIGN_OR_RETURN(JobChange change, mutation(current, w.now));
  Job& next = result;
  next = std::move(change.job);
  if (next.id != current.id) {
    return absl::InternalError(
        absl::StrCat("mutation of job ", id, " changed its id"));
  }
  // Not the mutation's to change.
  next.create_time = current.create_time;
  next.request_id = current.request_id;
  next.version = current.version;
  next.update_time = current.update_time;
  next.last_seq = current.last_seq;
  if (change.events.empty() && JobColumnsEqual(current, next)) {
    // Nothing to write.
    if (cached == &loaded) {
      next = std::move(loaded);
    } else {
      next = current;
    }
    return absl::OkStatus();
  }
  next.version = current.version + 1;
  next.update_time = w.now;
  next.last_seq = current.last_seq + static_cast<int64_t>(change.events.size());
  w.UpdateJob(current, next);
  w.AppendEvents(next, std::move(change.events), current.last_seq + 1);
  // `current` may be the cached row: Put overwrites it, so it comes last.
  w.rows.Put(next);
  return absl::OkStatus();
}

void SqliteJobStore::Delete(std::string id,
                            std::function<absl::Status(const Job&)> check,
                            JobCallback done) {
  struct Deleted {
    Job job;
    int64_t max_event_id = 0;
  };
  auto deleted = std::make_shared<Deleted>();
  auto op = std::make_unique<WriteOp>();
  op->apply = [this, id = std::move(id), check = std::move(check),
               deleted](Writer& w) -> absl::Status {
    JW_ASSIGN_OR_RETURN(deleted->job, w.LoadJob(id));
    const Job& job = deleted->job;
    if (!IsTerminal(job.state)) return NotTerminalError(id, job.state);
    if (check) JW_RETURN_IF_ERROR(check(job));
    deleted->max_event_id = w.DeleteJob(id);
    // As retention does: the mark commits with the delete.
    if (deleted->max_event_id > max_pruned_event_id_.load())
      w.RaiseSetting(kMaxPrunedEventIdKey, deleted->max_event_id);
    return absl::OkStatus();
  };
  op->finish = [this, deleted, done = std::move(done)](absl::Status status) {
    if (!status.ok()) {
      done(std::move(status));
      return;
    }
    RaiseMaxPrunedEventId(deleted->max_event_id);
    done(std::move(deleted->job));
  };
  Enqueue(std::move(op));
}

void SqliteJobStore::RaiseMaxPrunedEventId(int64_t event_id) {
  int64_t previous = max_pruned_event_id_.load();
  while (event_id > previous &&
         !max_pruned_event_id_.compare_exchange_weak(previous, event_id)) {
  }
}

void SqliteJobStore::BulkWrite(std::vector<std::string> ids,
                               std::shared_ptr<const BulkWriteSpec> spec,
                               BulkWriteCallback done) {
  Enqueue(std::make_unique<BulkOp>(this, std::move(ids), std::move(spec),
                                   std::move(done)));
}

absl::Status SqliteJobStore::BulkOp::Apply(Writer& w) {
  // A second run (see WriteOp) starts over.
  results.assign(ids.size(), BulkItemResult{});
  max_event_id = 0;
  // The rows the row cache lacks (every row, for a delete: the cache holds
  // no terminal job), read in one statement.
  std::vector<const std::string*> missing;
  for (const std::string& id : ids) {
    if (spec->del || !w.rows.Holds(id)) missing.push_back(&id);
  }
  std::vector<Job> loaded;
  absl::flat_hash_map<absl::string_view, size_t> loaded_at;
  if (!missing.empty()) {
    loaded.reserve(missing.size());
    w.LoadJobs(JsonArray(missing), &loaded);
    loaded_at.reserve(loaded.size());
    for (size_t i = 0; i < loaded.size(); ++i)
      loaded_at.emplace(loaded[i].id, i);
  }
  // Valid until the next call (a cached row is unpacked into one Job).
  auto current = [&](const std::string& id) -> const Job* {
    auto it = loaded_at.find(id);
    if (it != loaded_at.end()) return &loaded[it->second];
    return spec->del ? nullptr : w.rows.Find(id);
  };
  if (spec->del) {
    ApplyDelete(w, current);
  } else {
    ApplyMutation(w, current);
  }
  return absl::OkStatus();
}

void SqliteJobStore::BulkOp::ApplyMutation(
    Writer& w, const std::function<const Job*(const std::string&)>& current) {
  // The jobs changed, in the order of `ids`; reserved, so that the values
  // that groups borrow from them stay put.
  struct Changed {
    Job job;
    std::vector<JobEvent> events;
    int64_t first_seq = 0;
  };
  std::vector<Changed> changed;
  changed.reserve(ids.size());
  // Jobs whose rows change alike: the same columns to the same values, and
  // the same number of events.
  struct Group {
    std::string key;
    std::vector<SqlValue> values;
    int64_t events = 0;
    std::vector<const std::string*> ids;
  };
  std::vector<Group> groups;
  std::string key;
  std::vector<SqlValue> values;
  for (size_t i = 0; i < ids.size(); ++i) {
    const Job* cur = current(ids[i]);
    if (cur == nullptr) {
      results[i].status = JobNotFound(ids[i]);
      continue;
    }
    absl::StatusOr<JobChange> change = spec->mutation(*cur, w.now);
    if (!change.ok()) {
      results[i].status = change.status();
      continue;
    }
    Job& next = change->job;
    if (next.id != cur->id) {
      results[i].status = absl::InternalError(
          absl::StrCat("mutation of job ", ids[i], " changed its id"));
      continue;
    }
    // Not the mutation's to change (as in MutateOp::Apply).
    next.create_time = cur->create_time;
    next.request_id = cur->request_id;
    next.version = cur->version;
    next.update_time = cur->update_time;
    next.last_seq = cur->last_seq;
    if (change->events.empty() && JobColumnsEqual(*cur, next)) continue;
    const auto events = static_cast<int64_t>(change->events.size());
    results[i].changed = events > 0;
    next.version = cur->version + 1;
    next.update_time = w.now;
    next.last_seq = cur->last_seq + events;
    changed.push_back(
        Changed{std::move(next), std::move(change->events), cur->last_seq + 1});
    const Job& row = changed.back().job;
    if (w.DiffColumns(*cur, row, /*skip_counters=*/true, &key, &values)) {
      // A change of labels rewrites the job's label rows: row by row.
      w.UpdateJob(*cur, row);
      continue;
    }
    auto group =
        std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
          return g.events == events && g.key == key && g.values == values;
        });
    if (group == groups.end()) {
      if (groups.size() == kMaxBulkGroups) {
        w.UpdateJob(*cur, row);
        continue;
      }
      groups.push_back(Group{key, values, events, {}});
      group = groups.end() - 1;
    }
    w.CountMove(*cur, row);
    group->ids.push_back(&ids[i]);
  }
  for (const Group& g : groups) {
    const int rows =
        w.UpdateJobsAlike(g.key, g.values, g.events, JsonArray(g.ids));
    if (rows != static_cast<int>(g.ids.size())) {
      // The rows were read in this transaction: cannot happen.
      throw SQLite::Exception(absl::StrCat("bulk update of ", g.ids.size(),
                                           " jobs changed ", rows, " rows"));
    }
  }
  for (Changed& c : changed) {
    w.AppendEvents(c.job, std::move(c.events), c.first_seq);
    w.rows.Put(c.job);
  }
}

void SqliteJobStore::BulkOp::ApplyDelete(
    Writer& w, const std::function<const Job*(const std::string&)>& current) {
  std::vector<const std::string*> doomed;
  for (size_t i = 0; i < ids.size(); ++i) {
    const Job* job = current(ids[i]);
    if (job == nullptr) {
      results[i].status = JobNotFound(ids[i]);
      continue;
    }
    if (!IsTerminal(job->state)) {
      results[i].status = NotTerminalError(ids[i], job->state);
      continue;
    }
    if (spec->check) {
      results[i].status = spec->check(*job);
      if (!results[i].status.ok()) continue;
    }
    results[i].changed = true;
    doomed.push_back(&ids[i]);
  }
  if (doomed.empty()) return;
  for (const std::string* id : doomed) w.rows.Forget(*id);
  max_event_id = w.DeleteJobsWhere(kIdsIn, JsonArray(doomed));
  // As retention does: the mark commits with the deletes.
  if (max_event_id > store->max_pruned_event_id_.load())
    w.RaiseSetting(kMaxPrunedEventIdKey, max_event_id);
}

void SqliteJobStore::BulkOp::Finish(absl::Status status) {
  if (!status.ok()) {
    done(std::move(status));
    return;
  }
  store->RaiseMaxPrunedEventId(max_event_id);
  done(std::move(results));
}

void SqliteJobStore::PutSetting(std::string key, std::string value,
                                StatusCallback done) {
  auto op = std::make_unique<WriteOp>();
  op->apply = [key = std::move(key), value = std::move(value)](Writer& w) {
    w.PutSetting(key, value);
    return absl::OkStatus();
  };
  op->finish = std::move(done);
  Enqueue(std::move(op));
}

void SqliteJobStore::UpsertQueue(QueueRow row, StatusCallback done) {
  auto op = std::make_unique<WriteOp>();
  op->apply = [row = std::move(row)](Writer& w) -> absl::Status {
    if (!IsValidQueueName(row.name)) {
      return InvalidArgumentError("queue.name",
                                  "must match [a-z0-9][a-z0-9._-]{0,127}");
    }
    auto stmt = w.conn.stmts.Get(
        "INSERT INTO queues (name, paused, resume_time, concurrency_limit, "
        "weight) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET paused = "
        "excluded.paused, "
        "resume_time = excluded.resume_time, concurrency_limit = "
        "excluded.concurrency_limit, "
        "weight = excluded.weight");
    SqlValue resume = TimeValue(row.resume_time);
    stmt->bind(1, row.name);
    stmt->bind(2, row.paused ? 1 : 0);
    BindValue(*stmt, 3, resume);
    stmt->bind(4, row.concurrency_limit);
    stmt->bind(5, row.weight);
    stmt->exec();
    return absl::OkStatus();
  };
  op->finish = std::move(done);
  Enqueue(std::move(op));
}

absl::StatusOr<int64_t> SqliteJobStore::RunRetentionOnceBlocking() {
  const Retention& r = options_.retention;
  if (r.terminal_max_age <= absl::ZeroDuration() && r.max_terminal_jobs <= 0)
    return 0;
  const int batch_size = std::max(1, r.batch_size);
  int64_t total = 0;
  while (true) {
    int64_t deleted = 0;
    int64_t max_pruned = 0;
    absl::Status status;
    absl::Notification answered;
    auto op = std::make_unique<WriteOp>();
    op->jobs = batch_size;
    op->apply = [this, &r, batch_size, &deleted,
                 &max_pruned](Writer& w) -> absl::Status {
      max_pruned = 0;  // apply may run twice (see WriteOp)
      std::vector<std::string> ids;
      auto collect = [&ids](SQLite::Statement& stmt) {
        while (stmt.executeStep()) ids.push_back(stmt.getColumn(0).getString());
      };
      if (r.terminal_max_age > absl::ZeroDuration()) {
        auto stmt = w.conn.stmts.Get(kOldFinishedJobsSql);
        stmt->bind(1, static_cast<int64_t>(
                          absl::ToUnixMicros(w.now - r.terminal_max_age)));
        stmt->bind(2, batch_size);
        collect(*stmt);
      }
      if (ids.empty() && r.max_terminal_jobs > 0) {
        int64_t count = 0;
        {
          auto stmt = w.conn.stmts.Get(kCountFinishedJobsSql);
          if (stmt->executeStep()) count = stmt->getColumn(0).getInt64();
        }
        const int64_t excess = count - r.max_terminal_jobs;
        if (excess > 0) {
          auto stmt = w.conn.stmts.Get(kFirstFinishedJobsSql);
          stmt->bind(1, std::min<int64_t>(excess, batch_size));
          collect(*stmt);
        }
      }
      for (const std::string& id : ids)
        max_pruned = std::max(max_pruned, w.DeleteJob(id));
      deleted = static_cast<int64_t>(ids.size());
      // The high-water mark commits in the same transaction as the deletes
      // (the writer's next event id after a restart stays above it). Raised
      // only: another retention run may have committed a higher one.
      if (max_pruned > max_pruned_event_id_.load())
        w.RaiseSetting(kMaxPrunedEventIdKey, max_pruned);
      return absl::OkStatus();
    };
    op->finish = [&status, &answered](absl::Status s) {
      status = std::move(s);
      answered.Notify();
    };
    Enqueue(std::move(op));
    answered.WaitForNotification();
    if (!status.ok()) return status;
    int64_t previous = max_pruned_event_id_.load();
    while (max_pruned > previous &&
           !max_pruned_event_id_.compare_exchange_weak(previous, max_pruned)) {
    }
    total += deleted;
    if (deleted < batch_size) return total;
  }
}

absl::StatusOr<int64_t> SqliteJobStore::BackupBlocking(
    const std::string& dest_path) {
  JW_RETURN_IF_ERROR(ReadersOpen());
  try {
    SQLite::Database source(path_, SQLite::OPEN_READONLY);
    source.setBusyTimeout(5000);
    SQLite::Database dest(dest_path,
                          SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    sqlite3_backup* backup = sqlite3_backup_init(dest.getHandle(), "main",
                                                 source.getHandle(), "main");
    if (backup == nullptr) {
      return StatusFromSqliteCode(sqlite3_errcode(dest.getHandle()),
                                  sqlite3_errmsg(dest.getHandle()));
    }
    const int step = sqlite3_backup_step(backup, -1);
    const int pages = sqlite3_backup_pagecount(backup);
    const int finish = sqlite3_backup_finish(backup);
    if (step != SQLITE_DONE) {
      return StatusFromSqliteCode(step, "backup: copying the database");
    }
    if (finish != SQLITE_OK) {
      return StatusFromSqliteCode(finish, sqlite3_errmsg(dest.getHandle()));
    }
    // The copy inherits WAL mode from page 1; as a rollback-journal file it
    // is one self-contained file (jobwired turns WAL back on when it opens
    // it).
    dest.exec("PRAGMA journal_mode=DELETE");
    return static_cast<int64_t>(pages) *
           source.execAndGet("PRAGMA page_size").getInt64();
  } catch (const SQLite::Exception& e) {
    return StatusFromSqlite(e);
  }
}

absl::Status SqliteJobStore::WithReader(
    const std::function<absl::Status(Connection&)>& read) {
  Connection* conn = nullptr;
  {
    absl::MutexLock lock(&readers_mu_);
    while (free_readers_.empty() && !readers_closed_)
      readers_cv_.Wait(&readers_mu_);
    if (readers_closed_) return ShutDownError();
    conn = free_readers_.back();
    free_readers_.pop_back();
  }
  absl::Status status;
  try {
    status = read(*conn);
  } catch (const SQLite::Exception& e) {
    status = StatusFromSqlite(e);
  }
  absl::MutexLock lock(&readers_mu_);
  free_readers_.push_back(conn);
  readers_cv_.SignalAll();
  return status;
}

absl::StatusOr<Job> SqliteJobStore::GetJobBlocking(const std::string& id) {
  Job job;
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    auto stmt = c.stmts.Get(SelectJobSql());
    stmt->bind(1, id);
    if (!stmt->executeStep())
      return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
    job = ReadJob(*stmt, false);
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<std::vector<JobEvent>> SqliteJobStore::ReadJobEventsBlocking(
    const std::string& job_id, int64_t after_seq, int limit, size_t max_bytes) {
  if (limit <= 0) return InvalidArgumentError("limit", "must be positive");
  std::vector<JobEvent> events;
  size_t bytes = 0;
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", EventSelectList(),
        " FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?"));
    auto stmt = c.stmts.Get(*sql);
    stmt->bind(1, job_id);
    stmt->bind(2, static_cast<int64_t>(after_seq));
    stmt->bind(3, std::min(limit, kMaxReadLimit));
    while (stmt->executeStep()) {
      events.push_back(ReadEvent(*stmt));
      bytes += ApproxBytes(events.back());
      if (max_bytes > 0 && bytes >= max_bytes) break;
    }
    return absl::OkStatus();
  }));
  return events;
}

absl::StatusOr<std::vector<JobEvent>> SqliteJobStore::ReadEventsBlocking(
    int64_t after_event_id, int limit, size_t max_bytes) {
  if (limit <= 0) return InvalidArgumentError("limit", "must be positive");
  std::vector<JobEvent> events;
  size_t bytes = 0;
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", EventSelectList(),
        " FROM job_events WHERE event_id > ? ORDER BY event_id LIMIT ?"));
    auto stmt = c.stmts.Get(*sql);
    stmt->bind(1, static_cast<int64_t>(after_event_id));
    stmt->bind(2, std::min(limit, kMaxReadLimit));
    while (stmt->executeStep()) {
      events.push_back(ReadEvent(*stmt));
      bytes += ApproxBytes(events.back());
      if (max_bytes > 0 && bytes >= max_bytes) break;
    }
    return absl::OkStatus();
  }));
  return events;
}

absl::StatusOr<ListJobsResult> SqliteJobStore::ListJobsBlocking(
    const ListJobsQuery& query) {
  JW_ASSIGN_OR_RETURN(ListPlan plan, PlanListJobs(query));
  ListJobsResult result;
  bool more = false;
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    // Filter-shaped SQL is prepared per call (not cached: unbounded shapes).
    SQLite::Statement stmt(c.db, plan.sql);
    BindAll(stmt, plan.params);
    size_t bytes = 0;
    while (stmt.executeStep()) {
      // The plan fetches one row past the page to learn whether more follow.
      if (result.jobs.size() == static_cast<size_t>(plan.page_size)) {
        more = true;
        break;
      }
      Job job = ReadJob(stmt, false);
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
SqliteJobStore::CountJobsByQueueAndStateBlocking() {
  // Like every read, refused once the store is shut down.
  JW_RETURN_IF_ERROR(ReadersOpen());
  std::vector<QueueStateCount> counts;
  absl::MutexLock lock(&counts_mu_);
  counts.reserve(job_counts_.size());
  for (const auto& [key, n] : job_counts_)
    counts.push_back(QueueStateCount{key.first, key.second, n});
  return counts;
}

absl::StatusOr<int64_t> SqliteJobStore::QueryIntBlocking(
    const std::string& sql) {
  int64_t value = 0;
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    auto stmt = c.stmts.Get(sql);
    if (stmt->executeStep()) value = stmt->getColumn(0).getInt64();
    return absl::OkStatus();
  }));
  return value;
}

absl::StatusOr<int64_t> SqliteJobStore::CountPendingWebhooksBlocking() {
  // webhook_outbox_due holds exactly the pending rows.
  return QueryIntBlocking(
      "SELECT COUNT(*) FROM webhook_outbox INDEXED BY webhook_outbox_due "
      "WHERE state = 0");
}

absl::StatusOr<int64_t> SqliteJobStore::LastEventIdBlocking() {
  // Kept by the writer (set at open, raised after each commit), so it stays
  // put when retention deletes the newest events.
  JW_RETURN_IF_ERROR(ReadersOpen());
  return last_event_id_.load(std::memory_order_acquire);
}

absl::StatusOr<int64_t> SqliteJobStore::OldestEventIdBlocking() {
  return QueryIntBlocking("SELECT MIN(event_id) FROM job_events");
}

absl::StatusOr<int64_t> SqliteJobStore::MaxPrunedEventIdBlocking() {
  JW_RETURN_IF_ERROR(ReadersOpen());
  return max_pruned_event_id_.load();
}

absl::Status SqliteJobStore::ReadersOpen() {
  absl::MutexLock lock(&readers_mu_);
  return readers_closed_ ? ShutDownError() : absl::OkStatus();
}

absl::Status SqliteJobStore::LoadActiveJobsBlocking(
    const std::function<void(const Job&)>& visitor) {
  return WithReader([&](Connection& c) {
    static const auto* sql = new std::string(
        absl::StrCat("SELECT ", JobColumnList(true), " FROM jobs WHERE ",
                     kActiveJobsCondition));
    auto stmt = c.stmts.Get(*sql);
    while (stmt->executeStep()) visitor(ReadJob(*stmt, true));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<std::string>> SqliteJobStore::GetSettingBlocking(
    const std::string& key) {
  std::optional<std::string> value;
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    auto stmt = c.stmts.Get("SELECT value FROM settings WHERE key = ?");
    stmt->bind(1, key);
    if (stmt->executeStep()) value = stmt->getColumn(0).getString();
    return absl::OkStatus();
  }));
  return value;
}

absl::StatusOr<std::vector<QueueRow>> SqliteJobStore::ListQueueRowsBlocking() {
  std::vector<QueueRow> rows;
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    auto stmt = c.stmts.Get(
        "SELECT name, paused, resume_time, concurrency_limit, weight FROM "
        "queues ORDER BY name");
    while (stmt->executeStep()) {
      QueueRow row;
      row.name = stmt->getColumn(0).getString();
      row.paused = stmt->getColumn(1).getInt() != 0;
      row.resume_time = TimeFromColumn(stmt->getColumn(2));
      row.concurrency_limit = stmt->getColumn(3).getInt();
      row.weight = stmt->getColumn(4).getInt();
      rows.push_back(std::move(row));
    }
    return absl::OkStatus();
  }));
  return rows;
}

// ---- Webhook outbox ----

namespace {

#define JW_OUTBOX_COLUMNS(BODY)            \
  "id, job_id, event_id, type, url, " BODY \
  ", state, attempts, "                    \
  "next_attempt_time, last_attempt_time, last_status, last_error, create_time"
constexpr const char* kOutboxColumns = JW_OUTBOX_COLUMNS("body");
// Listings answer without the body (it may hold a large job result): a page
// of 1,000 rows stays small.
constexpr const char* kOutboxColumnsNoBody = JW_OUTBOX_COLUMNS("'' AS body");
#undef JW_OUTBOX_COLUMNS

WebhookOutboxRow ReadOutboxRow(SQLite::Statement& stmt) {
  WebhookOutboxRow r;
  r.id = stmt.getColumn(0).getInt64();
  r.job_id = stmt.getColumn(1).getString();
  r.event_id = stmt.getColumn(2).getInt64();
  r.type = stmt.getColumn(3).getString();
  r.url = stmt.getColumn(4).getString();
  r.body = stmt.getColumn(5).getString();
  r.state = static_cast<WebhookDeliveryState>(stmt.getColumn(6).getInt());
  r.attempts = stmt.getColumn(7).getInt();
  r.next_attempt_time = TimeFromColumn(stmt.getColumn(8));
  r.last_attempt_time = TimeFromColumn(stmt.getColumn(9));
  r.last_http_status = stmt.getColumn(10).getInt();
  r.last_error = stmt.getColumn(11).getString();
  r.create_time = TimeFromColumn(stmt.getColumn(12));
  return r;
}

}  // namespace

absl::StatusOr<std::vector<WebhookOutboxRow>>
SqliteJobStore::PendingWebhooksBlocking(int limit) {
  if (limit <= 0) return InvalidArgumentError("limit", "must be positive");
  std::vector<WebhookOutboxRow> rows;
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    static const auto* sql =
        new std::string(absl::StrCat("SELECT ", kOutboxColumns,
                                     " FROM webhook_outbox WHERE state = 0 "
                                     "ORDER BY next_attempt_time, id LIMIT ?"));
    auto stmt = c.stmts.Get(*sql);
    stmt->bind(1, std::min(limit, kMaxReadLimit));
    while (stmt->executeStep()) rows.push_back(ReadOutboxRow(*stmt));
    return absl::OkStatus();
  }));
  return rows;
}

void SqliteJobStore::RecordWebhookAttempt(WebhookAttempt attempt,
                                          StatusCallback done) {
  auto op = std::make_unique<WriteOp>();
  op->apply = [attempt = std::move(attempt)](Writer& w) -> absl::Status {
    auto stmt = w.conn.stmts.Get(
        "UPDATE webhook_outbox SET attempts = ?, state = ?, "
        "next_attempt_time = ?, last_attempt_time = ?, last_status = ?, "
        "last_error = ? WHERE id = ? AND state = 0");
    stmt->bind(1, attempt.attempt);
    stmt->bind(2, static_cast<int>(attempt.next_state));
    stmt->bind(3, static_cast<int64_t>(absl::ToUnixMicros(
                      attempt.next_state == WebhookDeliveryState::kPending
                          ? attempt.next_attempt_time
                          : attempt.attempt_time)));
    stmt->bind(4,
               static_cast<int64_t>(absl::ToUnixMicros(attempt.attempt_time)));
    stmt->bind(5, attempt.http_status);
    stmt->bindNoCopy(6, attempt.error);
    stmt->bind(7, static_cast<int64_t>(attempt.delivery_id));
    if (stmt->exec() == 0) {
      return absl::NotFoundError(absl::StrCat("webhook delivery ",
                                              attempt.delivery_id,
                                              " not found or not pending"));
    }
    // The outcome as an event of the job, in the same transaction.
    MutateOp append(
        attempt.job_id,
        [&attempt](const Job& current,
                   absl::Time) -> absl::StatusOr<JobChange> {
          JobChange change;
          change.job = current;
          JobEvent e;
          e.type = EventType::kWebhookDelivery;
          e.attempt = current.attempt;
          e.webhook_delivery =
              WebhookDeliveryInfo{attempt.attempt, attempt.http_status,
                                  attempt.delivered, attempt.error};
          change.events.push_back(std::move(e));
          return change;
        },
        [](absl::StatusOr<Job>) {});
    absl::Status s = append.Apply(w);
    // A job deleted meanwhile has no log to append to.
    if (absl::IsNotFound(s)) return absl::OkStatus();
    return s;
  };
  op->finish = std::move(done);
  Enqueue(std::move(op));
}

absl::StatusOr<WebhookDeliveryPage>
SqliteJobStore::ListWebhookDeliveriesBlocking(
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
  JW_RETURN_IF_ERROR(WithReader([&](Connection& c) {
    static const auto* sql = new std::string(absl::StrCat(
        "SELECT ", kOutboxColumnsNoBody,
        " FROM webhook_outbox WHERE id < ?1 AND (?2 = '' OR job_id = ?2) "
        "AND (?3 = 0 OR state = 2 OR (state = 0 AND attempts > 0)) "
        "ORDER BY id DESC LIMIT ?4"));
    auto stmt = c.stmts.Get(*sql);
    stmt->bind(1, static_cast<int64_t>(before));
    stmt->bind(2, query.job_id);
    stmt->bind(3, query.failed_only ? 1 : 0);
    stmt->bind(4, size + 1);
    while (stmt->executeStep()) page.deliveries.push_back(ReadOutboxRow(*stmt));
    return absl::OkStatus();
  }));
  if (static_cast<int>(page.deliveries.size()) > size) {
    page.deliveries.resize(static_cast<size_t>(size));
    page.next_page_token = absl::StrCat(page.deliveries.back().id);
  }
  return page;
}

void SqliteJobStore::RedeliverWebhook(
    int64_t delivery_id,
    std::function<void(absl::StatusOr<WebhookOutboxRow>)> done) {
  auto row = std::make_shared<WebhookOutboxRow>();
  auto op = std::make_unique<WriteOp>();
  op->apply = [delivery_id, row](Writer& w) -> absl::Status {
    static const auto* select = new std::string(absl::StrCat(
        "SELECT ", kOutboxColumns, " FROM webhook_outbox WHERE id = ?"));
    {
      auto stmt = w.conn.stmts.Get(*select);
      stmt->bind(1, static_cast<int64_t>(delivery_id));
      if (!stmt->executeStep()) {
        return absl::NotFoundError(
            absl::StrCat("webhook delivery ", delivery_id, " not found"));
      }
      *row = ReadOutboxRow(*stmt);
    }
    if (row->state == WebhookDeliveryState::kPending) {
      return FailedPreconditionError(
          absl::StrCat("webhook delivery ", delivery_id,
                       " is pending already (attempt ", row->attempts + 1,
                       " is due)"),
          PreconditionViolation{
              "STATE", absl::StrCat("webhook_deliveries/", delivery_id),
              "delivery is pending"});
    }
    auto stmt = w.conn.stmts.Get(
        "UPDATE webhook_outbox SET state = 0, attempts = 0, "
        "next_attempt_time = ? WHERE id = ?");
    stmt->bind(1, static_cast<int64_t>(absl::ToUnixMicros(w.now)));
    stmt->bind(2, static_cast<int64_t>(delivery_id));
    stmt->exec();
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
