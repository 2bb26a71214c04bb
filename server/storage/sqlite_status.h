// Maps SQLite failures to absl::Status: the one place storage/ decides codes.
//
//   SQLITE_CONSTRAINT     -> ALREADY_EXISTS
//   SQLITE_BUSY, _LOCKED  -> UNAVAILABLE with RetryInfo
//   SQLITE_FULL           -> RESOURCE_EXHAUSTED, reason DISK_FULL
//   anything else         -> INTERNAL
// SQLite::Exception never leaves storage/: every entry point catches it and
// returns StatusFromSqlite(e).
#ifndef JOBWIRE_SERVER_STORAGE_SQLITE_STATUS_H_
#define JOBWIRE_SERVER_STORAGE_SQLITE_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace SQLite {
class Exception;
}  // namespace SQLite

namespace jobwire {

// `code` is a primary or extended SQLite result code.
absl::Status StatusFromSqliteCode(int code, absl::string_view message);
absl::Status StatusFromSqlite(const SQLite::Exception& e);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_SQLITE_STATUS_H_
