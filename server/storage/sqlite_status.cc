#include "server/storage/sqlite_status.h"

#include <sqlite3.h>

#include "SQLiteCpp/Exception.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace jobwire {

absl::Status StatusFromSqliteCode(int code, absl::string_view message) {
  std::string text = absl::StrCat("storage: ", message);
  switch (code & 0xff) {
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(text);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UnavailableError(text, absl::Milliseconds(100));
    case SQLITE_FULL:
      return ResourceExhaustedError(text, "DISK_FULL");
    default:
      return absl::InternalError(text);
  }
}

absl::Status StatusFromSqlite(const SQLite::Exception& e) {
  int code = e.getExtendedErrorCode();
  if (code < 0) code = e.getErrorCode();
  return StatusFromSqliteCode(code, e.what());
}

}  // namespace jobwire
