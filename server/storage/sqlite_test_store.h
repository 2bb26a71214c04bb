// A SqliteJobStore for the tests of the layers above storage (the
// dispatcher's, the metrics'): on a file in a TempDbDir, with the test's
// clock, without fsync (synchronous OFF: these tests do not crash the
// machine). Test-only.
#ifndef JOBWIRE_SERVER_STORAGE_SQLITE_TEST_STORE_H_
#define JOBWIRE_SERVER_STORAGE_SQLITE_TEST_STORE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "server/common/clock.h"
#include "server/storage/sqlite_job_store.h"
#include "server/storage/temp_db_dir.h"

namespace jobwire::test {

// Opens the store on dir.db(); the clock is not owned and must outlive it.
// Fails as SqliteJobStore::Open.
inline absl::StatusOr<std::unique_ptr<SqliteJobStore>> OpenTestSqliteStore(
    const TempDbDir& dir, Clock* clock) {
  SqliteJobStore::Options options;
  options.path = dir.db();
  options.clock = clock;
  options.synchronous = SqliteJobStore::Synchronous::kOff;
  return SqliteJobStore::Open(options);
}

}  // namespace jobwire::test

#endif  // JOBWIRE_SERVER_STORAGE_SQLITE_TEST_STORE_H_
