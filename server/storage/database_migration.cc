#include "server/storage/database_migration.h"

#include <memory>
#include <utility>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Exception.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/storage/migrations.h"
#include "server/storage/pg_connection.h"
#include "server/storage/pg_migrations.h"
#include "server/storage/sqlite_status.h"

namespace jobwire {
namespace {

// How long a SQLite migration waits for another writer (a running jobwired
// commits in milliseconds; another migration may take longer).
constexpr int kSqliteBusyTimeoutMs = 60'000;

DatabaseMigration Report(std::string database, const MigrationRun& run,
                         int latest) {
  DatabaseMigration m;
  m.database = std::move(database);
  m.from_version = run.from_version;
  m.to_version = run.to_version;
  m.latest_version = latest;
  m.applied = run.applied;
  return m;
}

}  // namespace

absl::StatusOr<DatabaseMigration> MigrateDatabaseBlocking(
    const std::string& db) {
  if (IsPostgresDb(db)) {
    JW_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn,
                        PgConnection::Open(PgConnInfo(db)));
    JW_ASSIGN_OR_RETURN(MigrationRun run,
                        MigratePgBlocking(*conn, LatestPgSchemaVersion()));
    return Report(absl::StrCat("postgresql://", conn->Describe()), run,
                  LatestPgSchemaVersion());
  }
  if (db.empty() || db[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("database path \"", db, "\" is not absolute"));
  }
  try {
    SQLite::Database sqlite(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE,
                            kSqliteBusyTimeoutMs);
    JW_ASSIGN_OR_RETURN(MigrationRun run,
                        MigrateBlocking(sqlite, LatestSchemaVersion()));
    return Report(db, run, LatestSchemaVersion());
  } catch (const SQLite::Exception& e) {
    return StatusFromSqlite(e);
  }
}

}  // namespace jobwire
