// Schema migrations of the PostgreSQL job store, numbered by the row of
// table jobwire_schema. Internal to storage/.
//
// The tables and their meaning are those of the SQLite schema
// (migrations.h) as of its latest version: times are BIGINT microseconds
// since the Unix epoch (NULL: unset), durations BIGINT microseconds, states
// and event types the jobwire.v1 enum numbers, so that one row mapping
// (sqlite_rows.h) serves both backends. Ids, queues and job ids of the other
// tables use COLLATE "C": ListJobs pages and their tokens compare ids
// bytewise, as SQLite does, whatever the database's locale. Event ids are
// handed out from the one-row table event_ids (see pg_job_store.h).
//
// Migration N moves the schema from version N-1 to N inside one
// transaction (the runner of migration_runner.h, shared with SQLite). The
// whole run holds a session advisory lock of the schema, so that two
// jobwired nodes (or `jobwired migrate` processes) starting together
// migrate once: the second one waits, then finds nothing to do. Migrations
// are append-only.
#ifndef JOBWIRE_SERVER_STORAGE_PG_MIGRATIONS_H_
#define JOBWIRE_SERVER_STORAGE_PG_MIGRATIONS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/storage/migration_runner.h"
#include "server/storage/pg_connection.h"

namespace jobwire {

// The version a fully migrated schema has.
int LatestPgSchemaVersion();

// Applies every missing migration in the connection's current schema (the
// first of its search_path). FAILED_PRECONDITION when the schema was written
// by a newer jobwire; StatusFromPg otherwise.
absl::Status MigratePgBlocking(PgConnection& conn);
// Applies the missing migrations up to `version` only (LatestPgSchemaVersion()
// for all of them) and says which it applied. Fails as above. The migration
// lock waits for another runner up to the connection's lock_timeout.
absl::StatusOr<MigrationRun> MigratePgBlocking(PgConnection& conn, int version);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_PG_MIGRATIONS_H_
