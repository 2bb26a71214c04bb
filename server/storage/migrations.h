// Schema migrations, numbered by PRAGMA user_version. Internal to storage/.
//
// Migration N (1-based) moves a database from user_version N-1 to N, inside
// one transaction (BEGIN IMMEDIATE: two processes migrating one file at once
// take turns, and the second finds the work done). The runner is shared
// with PostgreSQL (migration_runner.h). Migrations are append-only: a
// released migration never changes; a schema change is a new migration.
#ifndef JOBWIRE_SERVER_STORAGE_MIGRATIONS_H_
#define JOBWIRE_SERVER_STORAGE_MIGRATIONS_H_

#include "SQLiteCpp/Database.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/storage/migration_runner.h"

namespace jobwire {

// The user_version a fully migrated database has.
int LatestSchemaVersion();

// Applies every missing migration. FAILED_PRECONDITION when the database was
// written by a newer jobwire (user_version above LatestSchemaVersion()); the
// SQLite error mapping otherwise. Run on the writer connection before any
// other use.
absl::Status MigrateBlocking(SQLite::Database& db);
// Applies the missing migrations up to `version` only (tests build the
// database of an older jobwire with it; `jobwired migrate` passes
// LatestSchemaVersion()) and says which it applied. Fails as above.
absl::StatusOr<MigrationRun> MigrateBlocking(SQLite::Database& db, int version);

// The store's queries that the partial indexes of the schema serve (tests
// check their query plans). finish_time is set exactly on terminal jobs; the
// state terms only guard against rows that would break that rule ("+state":
// the guard must not make SQLite pick jobs_finished_state and sort every
// finished job).
//
// Terminal jobs that finished before ?1, oldest first, at most ?2.
inline constexpr const char* kOldFinishedJobsSql =
    "SELECT id FROM jobs WHERE finish_time IS NOT NULL AND finish_time < ? "
    "AND +state IN (5, 6, 7) ORDER BY finish_time, id LIMIT ?";
// A covering scan of jobs_finished.
inline constexpr const char* kCountFinishedJobsSql =
    "SELECT COUNT(*) FROM jobs WHERE finish_time IS NOT NULL";
// The ?1 terminal jobs that finished first.
inline constexpr const char* kFirstFinishedJobsSql =
    "SELECT id FROM jobs WHERE finish_time IS NOT NULL AND +state IN (5, 6, "
    "7) ORDER BY finish_time, id LIMIT ?";
// Appended to "SELECT <columns> FROM jobs WHERE ".
inline constexpr const char* kActiveJobsCondition =
    "finish_time IS NULL AND state IN (1, 2, 3, 4)";
// (queue, state, count) rows ordered by queue and state; active and finished
// jobs apart so that each half reads one index.
inline constexpr const char* kCountJobsByQueueAndStateSql =
    "SELECT queue, state, COUNT(*) FROM jobs WHERE finish_time IS NULL "
    "GROUP BY queue, state UNION ALL "
    "SELECT queue, state, COUNT(*) FROM jobs WHERE finish_time IS NOT NULL "
    "GROUP BY queue, state ORDER BY 1, 2";

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_MIGRATIONS_H_
