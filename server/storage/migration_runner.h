// The one schema migration runner of both backends. Internal to storage/.
//
// A backend's migrations are a list of SQL scripts in its dialect
// (migrations.cc for SQLite, pg_migrations.cc for PostgreSQL): script N
// (1-based) moves a schema from version N-1 to N. RunMigrationsBlocking
// applies the missing ones through a MigrationDialect, one transaction per
// script, re-reading the version inside each transaction, so that a runner
// that waited for another one (the dialect's lock) finds the work done and
// applies nothing twice.
#ifndef JOBWIRE_SERVER_STORAGE_MIGRATION_RUNNER_H_
#define JOBWIRE_SERVER_STORAGE_MIGRATION_RUNNER_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace jobwire {

// What a backend does for the runner, on one connection. Each method maps
// its database's errors to a status (the backend's one mapping) and throws
// nothing. Not thread-safe; the runner calls it from one thread.
class MigrationDialect {
 public:
  virtual ~MigrationDialect() = default;
  // Starts a transaction that waits for any other writer of the schema (the
  // version read next must stay true until Commit).
  virtual absl::Status Begin() = 0;
  // Inside the transaction: the schema's version, 0 for an empty database.
  virtual absl::StatusOr<int> ReadVersion() = 0;
  // Inside the transaction: runs one migration script and records `version`
  // as the schema's version.
  virtual absl::Status Apply(const char* script, int version) = 0;
  virtual absl::Status Commit() = 0;
  // Ends the transaction, if one is open, without its changes.
  virtual void Rollback() = 0;
};

// For dialects over a driver that throws: runs `f` and returns OK, or the
// status `map` gives for the exception E it threw.
template <typename E, typename F>
absl::Status StatusOfCall(absl::Status (*map)(const E&), F f) {
  try {
    f();
    return absl::OkStatus();
  } catch (const E& e) {
    return map(e);
  }
}

// What a run found and did.
struct MigrationRun {
  int from_version = 0;  // the schema's version before the run
  int to_version = 0;    // and after it
  // The versions this run applied, in order; empty when the schema was
  // already at the target (or another runner brought it there first).
  std::vector<int> applied;
};

// Applies `migrations` from the schema's version up to `target` (at most
// migrations.size()). FAILED_PRECONDITION when the schema is newer than
// the list (written by a newer jobwire); the dialect's status when a step
// fails, after rolling its transaction back (earlier steps stay applied).
absl::StatusOr<MigrationRun> RunMigrationsBlocking(
    MigrationDialect& db, absl::Span<const char* const> migrations, int target);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_MIGRATION_RUNNER_H_
