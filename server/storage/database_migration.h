// MigrateDatabaseBlocking: the work of `jobwired migrate` on either backend.
//
// Opens the database a --db value names (a SQLite file, or PostgreSQL as
// IsPostgresDb says), applies its pending schema migrations with the
// backend's runner (migrations.h, pg_migrations.h) and closes it. Safe to run
// beside jobwired servers and other `jobwired migrate` processes on the same
// database: runners take turns (SQLite's write lock, PostgreSQL's migration
// advisory lock) and each migration is applied once.
#ifndef JOBWIRE_SERVER_STORAGE_DATABASE_MIGRATION_H_
#define JOBWIRE_SERVER_STORAGE_DATABASE_MIGRATION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace jobwire {

// What one run did.
struct DatabaseMigration {
  // The database, for people: the SQLite path, or "postgresql://" and
  // PgConnection::Describe() (never the password).
  std::string database;
  int from_version = 0;
  int to_version = 0;
  // The schema version this jobwire writes.
  int latest_version = 0;
  // The migrations this run applied, in order; empty when the database was
  // current (or another runner brought it there first).
  std::vector<int> applied;
};

// `db` is a --db value; a SQLite path must be absolute and its folder must
// exist (the file is created when missing). Blocking. Fails with
// FAILED_PRECONDITION when the database was written by a newer jobwire,
// UNAVAILABLE / PERMISSION_DENIED / INVALID_ARGUMENT when PostgreSQL cannot
// be reached (PgConnection::Open), the backend's mapped error otherwise.
absl::StatusOr<DatabaseMigration> MigrateDatabaseBlocking(
    const std::string& db);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_DATABASE_MIGRATION_H_
