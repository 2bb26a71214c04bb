// Row mapping between the core model (Job, JobEvent) and SQL columns, and a
// per-connection cache of prepared SQLite statements. Internal to storage/.
//
// Each Job and JobEvent field maps to one or more columns through a table of
// column descriptors, so INSERT, SELECT and the changed-columns-only UPDATE
// are all generated from one list. Times are microseconds since the Unix
// epoch, NULL when unset (InfinitePast). The descriptors speak SqlValue (to
// bind) and ColumnValue (to read), so the PostgreSQL store (pg_job_store.h)
// maps rows with the same table. Functions may throw SQLite::Exception;
// callers in storage/ map it with StatusFromSqlite.
#ifndef JOBWIRE_SERVER_STORAGE_SQLITE_ROWS_H_
#define JOBWIRE_SERVER_STORAGE_SQLITE_ROWS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "SQLiteCpp/Column.h"
#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Statement.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/job.h"

namespace jobwire {

// One bindable SQLite value. Text and blobs are either owned or borrowed
// (`...Ref`: a view of storage that must outlive the statement's execution,
// so that large payloads are never copied on the way to SQLite).
struct SqlValue {
  enum class Type { kNull, kInt, kReal, kText, kBlob };
  Type type = Type::kNull;
  int64_t i = 0;
  double d = 0;

  static SqlValue Null() { return {}; }
  static SqlValue Int(int64_t v) { return {Type::kInt, v, 0, {}, nullptr}; }
  static SqlValue Real(double v) { return {Type::kReal, 0, v, {}, nullptr}; }
  static SqlValue Text(std::string v) {
    return {Type::kText, 0, 0, std::move(v), nullptr};
  }
  static SqlValue TextRef(const std::string& v) {
    return {Type::kText, 0, 0, {}, &v};
  }
  static SqlValue BlobRef(const std::string& v) {
    return {Type::kBlob, 0, 0, {}, &v};
  }

  const std::string& str() const { return ref != nullptr ? *ref : owned; }
  bool operator==(const SqlValue& o) const {
    return type == o.type && i == o.i && d == o.d && str() == o.str();
  }
  bool operator!=(const SqlValue& o) const { return !(*this == o); }

  std::string owned;
  const std::string* ref = nullptr;  // borrowed text or blob
};

// Binds borrowed values without copying; owned ones are copied by SQLite.
void BindValue(SQLite::Statement& stmt, int index, const SqlValue& value);

// One column of the current result row, as the row mapping reads it, from
// either backend. Named like SQLite::Column's getters, so that the mapping
// reads the same as plain SQLiteCpp code. Valid while the row is.
class ColumnValue {
 public:
  virtual ~ColumnValue() = default;
  virtual bool isNull() const = 0;
  virtual int getInt() const = 0;
  virtual int64_t getInt64() const = 0;
  virtual double getDouble() const = 0;
  virtual std::string getString() const = 0;  // text or blob bytes
  virtual const void* getBlob() const = 0;
  virtual int getBytes() const = 0;
};

SqlValue TimeValue(absl::Time t);
absl::Time TimeFromColumn(const SQLite::Column& c);
absl::Time TimeFromColumn(const ColumnValue& c);

// Labels as one text column: "<len>:<key><len>:<value>..." (binary-safe).
std::string EncodeLabels(const std::map<std::string, std::string>& labels);
std::map<std::string, std::string> DecodeLabels(absl::string_view text);

// One column of a Job or JobEvent row: how to get its value from the model
// and how to set the model from it.
template <typename Row>
struct RowColumn {
  const char* name;
  SqlValue (*get)(const Row&);
  void (*set)(const ColumnValue&, Row*);
  bool heavy = false;  // left out of LoadActiveJobs (args, payload...)
};

using JobColumn = RowColumn<Job>;
// Index 0 is "id"; the order is that of SELECT lists, not of the schema.
const std::vector<JobColumn>& JobColumns();
// "id, queue, ..." for every column, or only the light ones.
const std::string& JobColumnList(bool light_only);
// True when every column of `a` equals that of `b`.
bool JobColumnsEqual(const Job& a, const Job& b);
// Reads the columns of JobColumnList(light_only) from the current row.
Job ReadJob(SQLite::Statement& stmt, bool light_only);

using EventColumn = RowColumn<JobEvent>;
// Insertable event columns (event_id excluded: it is the rowid).
const std::vector<EventColumn>& EventColumns();
// "event_id, job_id, ..." for SELECT.
const std::string& EventSelectList();
JobEvent ReadEvent(SQLite::Statement& stmt);

// What one reused prepared statement has bound to its parameters, so that
// binding the next row skips the NULL, integer, real and empty-text
// parameters whose value is the one bound already (SQLite keeps bindings
// across reset()). A multi-row INSERT of new jobs or events binds mostly such
// columns, the same in every row (NULLs, zeros, '', the transaction's time),
// and each bind is a call into SQLite. Other text and blobs are always bound
// again: they are bound without a copy and point into the row of the last
// use. Use one per
// statement, and bind that statement only through it. Not thread-safe.
class BoundParams {
 public:
  // BindValue(stmt, index, value), unless `value` is NULL, an integer, a
  // real or empty text equal to what this bound at `index` last. Throws as
  // BindValue does (then the parameter counts as unknown).
  void Bind(SQLite::Statement& stmt, int index, const SqlValue& value);

 private:
  struct Slot {
    bool known = false;  // holds what the statement has bound
    SqlValue::Type type = SqlValue::Type::kNull;
    int64_t i = 0;
    double d = 0;
  };
  std::vector<Slot> slots_;  // by parameter index - 1
};

// Prepared statements of one connection, keyed by SQL text. Only for the
// store's fixed set of statements (SQL built from user filters is prepared
// per call, so the cache stays bounded). Not thread-safe: a connection is
// used by one thread at a time.
class StatementCache {
 public:
  // A statement borrowed from the cache; resets it (ending any read it holds)
  // when it goes out of scope.
  class Lease {
   public:
    explicit Lease(SQLite::Statement* stmt) : stmt_(stmt) {}
    Lease(Lease&& o) noexcept : stmt_(o.stmt_) { o.stmt_ = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    SQLite::Statement& operator*() const { return *stmt_; }
    SQLite::Statement* operator->() const { return stmt_; }

   private:
    SQLite::Statement* stmt_;
  };

  explicit StatementCache(SQLite::Database* db) : db_(db) {}
  Lease Get(const std::string& sql);

 private:
  SQLite::Database* const db_;
  std::unordered_map<std::string, std::unique_ptr<SQLite::Statement>> stmts_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_SQLITE_ROWS_H_
