#include "server/storage/database_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace jobwire {

absl::StatusOr<std::unique_ptr<DatabaseLock>> DatabaseLock::Acquire(
    const std::string& db_path) {
  std::string lock_path = absl::StrCat(db_path, ".lock");
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    std::string message =
        absl::StrCat("cannot open ", lock_path, ": ", std::strerror(err));
    if (err == EACCES || err == EPERM || err == EROFS)
      return absl::PermissionDeniedError(message);
    return absl::InternalError(message);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "another jobwired is using the database ", db_path, " (lock ",
          lock_path, " is held); stop it or choose another --db"));
    }
    return absl::InternalError(
        absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(err)));
  }
  return std::unique_ptr<DatabaseLock>(
      new DatabaseLock(std::move(lock_path), fd));
}

DatabaseLock::DatabaseLock(std::string lock_path, int fd)
    : lock_path_(std::move(lock_path)), fd_(fd) {}

DatabaseLock::~DatabaseLock() { ::close(fd_); }

}  // namespace jobwire
