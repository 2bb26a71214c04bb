#include "server/storage/migration_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace jobwire {

absl::StatusOr<MigrationRun> RunMigrationsBlocking(
    MigrationDialect& db, absl::Span<const char* const> migrations,
    int target) {
  const int latest = static_cast<int>(migrations.size());
  target = std::min(target, latest);
  MigrationRun run;
  // Stops with its transaction rolled back.
  auto fail = [&db](absl::Status s) {
    db.Rollback();
    return s;
  };
  for (bool first = true;; first = false) {
    if (absl::Status s = db.Begin(); !s.ok()) return fail(s);
    absl::StatusOr<int> version = db.ReadVersion();
    if (!version.ok()) return fail(version.status());
    if (first) run.from_version = *version;
    run.to_version = *version;
    if (*version > latest) {
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "database schema version ", *version, " is newer than this jobwire (",
          latest, "); upgrade jobwire")));
    }
    if (*version >= target) {
      db.Rollback();  // nothing written
      return run;
    }
    if (absl::Status s = db.Apply(migrations[*version], *version + 1);
        !s.ok()) {
      return fail(s);
    }
    if (absl::Status s = db.Commit(); !s.ok()) return fail(s);
    run.applied.push_back(*version + 1);
  }
}

}  // namespace jobwire
