// Schema migrations, numbered by PRAGMA user_version. Internal to storage/.
//
// Migration N (1-based) moves a database from user_version N-1 to N, inside
// one transaction. Migrations are append-only: a released migration never
// changes; a schema change is a new migration.
#ifndef JOBWIRE_SERVER_STORAGE_MIGRATIONS_H_
#define JOBWIRE_SERVER_STORAGE_MIGRATIONS_H_

#include "SQLiteCpp/Database.h"
#include "absl/status/status.h"

namespace jobwire {

// The user_version a fully migrated database has.
int LatestSchemaVersion();

// Applies every missing migration. FAILED_PRECONDITION when the database was
// written by a newer jobwire (user_version above LatestSchemaVersion()); the
// SQLite error mapping otherwise. Run on the writer connection before any
// other use.
absl::Status MigrateBlocking(SQLite::Database& db);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_MIGRATIONS_H_
