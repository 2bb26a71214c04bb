// DatabaseLock: one jobwired per database.
//
// Two servers on one SQLite file would both dispatch its jobs, and the
// second one's start-up recovery would hand the first one's running jobs
// back to QUEUED. So before opening the store a server takes an exclusive
// flock(2) on `DB.lock` beside the database and holds it until it exits; a
// second server fails to get it and refuses to start. The lock dies with
// its process, so a crashed server never blocks the next one. The lock file
// is left in place (removing it would race with a server about to lock it).
//
// Usage (server/app/app.cc):
//   JW_ASSIGN_OR_RETURN(db_lock_, DatabaseLock::Acquire(db_path));
//   ... open the store, serve, close the store ...
//   db_lock_.reset();
//
// Thread-compatible. Acquire does blocking file-system calls.
#ifndef JOBWIRE_SERVER_STORAGE_DATABASE_LOCK_H_
#define JOBWIRE_SERVER_STORAGE_DATABASE_LOCK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace jobwire {

class DatabaseLock {
 public:
  // Locks `db_path + ".lock"` (created 0600 if missing), without waiting.
  // Fails: FAILED_PRECONDITION when another process holds it, naming the
  // database; PERMISSION_DENIED or INTERNAL when the file cannot be opened.
  static absl::StatusOr<std::unique_ptr<DatabaseLock>> Acquire(
      const std::string& db_path);

  // Releases the lock.
  ~DatabaseLock();
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

  const std::string& lock_path() const { return lock_path_; }

 private:
  DatabaseLock(std::string lock_path, int fd);

  const std::string lock_path_;
  const int fd_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_DATABASE_LOCK_H_
