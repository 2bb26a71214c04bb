// PgConnection: one libpq connection to PostgreSQL, with its prepared
// statements, for the PostgreSQL job store. Internal to storage/.
//
// Statements take SqlValue parameters (sqlite_rows.h) written `$1, $2...`
// (NumberPlaceholders turns the `?` of shared SQL into those). Integers and
// reals go as text, text and blobs as binary (no escaping, no copy), NULL as
// NULL; results come back in binary and are read through ColumnValue, so the
// row mapping of sqlite_rows.h reads PostgreSQL rows too. Statements run
// through Exec are prepared once per connection and cached by SQL text (the
// store's fixed set); ExecOnce runs SQL built per call (ListJobs filters)
// unprepared.
//
// Failures throw PgError (SQLSTATE and message) inside storage/ only; every
// store entry point catches it and maps it with StatusFromPg. A lost
// connection is noticed by the next statement: Reconnect() (called by the
// store before a transaction) resets it and forgets its prepared statements.
//
// Not thread-safe: one thread uses a connection at a time.
#ifndef JOBWIRE_SERVER_STORAGE_PG_CONNECTION_H_
#define JOBWIRE_SERVER_STORAGE_PG_CONNECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/storage/sqlite_rows.h"

struct pg_conn;
struct pg_result;

namespace jobwire {

// A failed statement or connection: SQLSTATE (empty when libpq itself
// failed, e.g. the connection is gone) and message.
class PgError : public std::runtime_error {
 public:
  PgError(std::string sqlstate, const std::string& message)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)) {}
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

// The one place that decides codes for PostgreSQL failures:
//   23xxx integrity violations                  -> ALREADY_EXISTS
//   08xxx connection, 57Pxx shutdown, 53300 too
//   many connections, 40001/40P01 retryable,
//   no SQLSTATE (libpq lost the server)         -> UNAVAILABLE with RetryInfo
//   53100 disk full, 53200 out of memory        -> RESOURCE_EXHAUSTED
//   anything else                               -> INTERNAL
absl::Status StatusFromPg(const PgError& e);

// `sql` with each `?` outside quotes replaced by $1, $2, ... in order.
std::string NumberPlaceholders(absl::string_view sql);

// True when `db` (a --db value) names a PostgreSQL database:
// postgres://... or postgresql://... (libpq URIs), or "postgres:" followed
// by a libpq keyword/value string ("postgres:host=/run/postgresql
// dbname=jobs"; "postgres:" alone takes everything from the PG* environment
// variables and libpq's defaults).
bool IsPostgresDb(absl::string_view db);
// The libpq connection string of such a --db value.
std::string PgConnInfo(absl::string_view db);

// One result set (binary format).
class PgResult {
 public:
  explicit PgResult(pg_result* r) : r_(r) {}
  ~PgResult();
  PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  int rows() const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int64_t affected() const;
  bool IsNull(int row, int col) const;
  int64_t Int64(int row, int col) const;  // 0 when NULL
  std::string String(int row, int col) const;
  // Reads column `col` of `row` through the row mapping.
  void Read(int row, int col,
            const std::function<void(const ColumnValue&)>& read) const;
  // The row mapping's readers.
  Job ReadJob(int row, bool light_only) const;
  JobEvent ReadEvent(int row) const;

 private:
  pg_result* r_;
};

class PgConnection {
 public:
  // Connects (blocking). UNAVAILABLE when the server cannot be reached,
  // PERMISSION_DENIED when it refuses the credentials, INVALID_ARGUMENT for
  // a malformed connection string. Messages never carry the password.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Open(
      const std::string& conninfo);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs a prepared statement (prepared on first use). Throws PgError.
  PgResult Exec(const std::string& sql,
                const std::vector<SqlValue>& params = {});
  // Runs `sql` unprepared, with parameters. Throws PgError.
  PgResult ExecOnce(const std::string& sql,
                    const std::vector<SqlValue>& params);
  // Runs one or more statements without parameters (BEGIN, DDL). Throws.
  void ExecScript(const std::string& sql);
  // Queues one statement whose result the caller does not need (BEGIN, an
  // UPDATE whose row count nobody reads) to go to the server together with
  // the next Exec, ExecOnce or single-statement ExecScript, in one round
  // trip (libpq pipeline mode) instead of one each. That call throws the
  // first error among the queued statements and its own (the rest of the
  // pipeline is then skipped by the server, as a failed transaction
  // would). Borrowed (TextRef/BlobRef) parameters are copied. A lost
  // connection (Reconnect) drops the queue.
  void Queue(const std::string& sql, const std::vector<SqlValue>& params = {});

  // Whether the connection is up; when not, tries once to reconnect and
  // forgets the prepared statements. False when that failed.
  bool Reconnect();
  // Inside a transaction that failed: only a ROLLBACK is accepted.
  bool InFailedTransaction() const;
  bool InTransaction() const;

  // For a connection that ran LISTEN: waits up to `timeout` for
  // notifications and returns their payloads (empty when none came).
  // Throws PgError when the connection is lost.
  std::vector<std::string> WaitForNotifications(absl::Duration timeout);

  // "user@host:port/dbname" (never the password), for logs and errors.
  std::string Describe() const;
  // The server's process id of this session.
  int BackendPid() const;

 private:
  explicit PgConnection(pg_conn* conn) : conn_(conn) {}
  [[noreturn]] void Throw(pg_result* r) const;
  PgResult Check(pg_result* r) const;
  // Sends the queued statements, then `send_own` (which sends this call's
  // statements through libpq's PQsend* functions and returns how many it
  // sent), and a sync, in pipeline mode; reads every result and returns the
  // last one (throws the first error).
  PgResult Pipelined(const std::function<int()>& send_own);
  // The name of `sql`'s prepared statement, and whether it is still to be
  // prepared (then under a new name).
  std::pair<std::string, bool> PreparedName(const std::string& sql);

  pg_conn* conn_;
  std::unordered_map<std::string, std::string> prepared_;  // sql -> name
  int64_t prepared_names_ = 0;  // names given out: jw1, jw2, ...
  struct Queued {
    std::string sql;
    std::vector<SqlValue> params;
  };
  std::vector<Queued> queued_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_PG_CONNECTION_H_
