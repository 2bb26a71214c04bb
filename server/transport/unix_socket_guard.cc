#include "server/transport/unix_socket_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace jobwire {
namespace {

absl::Status ErrnoError(int err, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(err));
  if (err == EACCES || err == EPERM || err == EROFS) {
    return absl::PermissionDeniedError(message);
  }
  return absl::InternalError(message);
}

}  // namespace

absl::Status CreateParentDirectories(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return absl::OkStatus();
  std::string dir = path.substr(0, slash);
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    std::string part = dir.substr(0, i);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError(errno, absl::StrCat("cannot create directory ", part));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSharedTmpFolder(const std::string& socket_path) {
  const std::string own = absl::StrCat("/tmp/jobwire-", ::geteuid());
  if (!absl::StartsWith(socket_path, own + "/")) return absl::OkStatus();
  if (::mkdir(own.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError(errno, absl::StrCat("cannot create directory ", own));
  }
  struct stat st;
  if (::lstat(own.c_str(), &st) != 0) {
    return ErrnoError(errno, absl::StrCat("cannot stat ", own));
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & 022) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        own,
        " is not a folder of this user that only it can write; remove "
        "it or choose another --listen path"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<UnixSocketGuard>> UnixSocketGuard::Acquire(
    const std::string& socket_path) {
  if (absl::Status s = CheckSharedTmpFolder(socket_path); !s.ok()) return s;
  if (absl::Status s = CreateParentDirectories(socket_path); !s.ok()) return s;
  const std::string lock_path = socket_path + ".lock";
  // The lock file can be unlinked by the previous owner between our open and
  // our flock; then we would hold a lock on a dead inode. Retry until the
  // locked file is the one at lock_path.
  for (int attempt = 0; attempt < 10; ++attempt) {
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return ErrnoError(errno,
                        absl::StrCat("cannot open lock file ", lock_path));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat(
            "another jobwired is serving ", socket_path, " (lock ", lock_path,
            " is held); stop it or choose another --listen path"));
      }
      return ErrnoError(err, absl::StrCat("cannot lock ", lock_path));
    }
    struct stat locked;
    struct stat current;
    if (::fstat(fd, &locked) != 0 || ::stat(lock_path.c_str(), &current) != 0 ||
        locked.st_ino != current.st_ino || locked.st_dev != current.st_dev) {
      ::close(fd);
      continue;
    }
    // We own the path now. A socket file here is stale: its server is gone.
    struct stat existing;
    if (::lstat(socket_path.c_str(), &existing) == 0) {
      if (!S_ISSOCK(existing.st_mode)) {
        ::unlink(lock_path.c_str());
        ::close(fd);
        return absl::FailedPreconditionError(absl::StrCat(
            socket_path,
            " exists and is not a socket; refusing to replace it"));
      }
      if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT) {
        int err = errno;
        ::unlink(lock_path.c_str());
        ::close(fd);
        return ErrnoError(
            err, absl::StrCat("cannot remove stale socket ", socket_path));
      }
    }
    return std::unique_ptr<UnixSocketGuard>(
        new UnixSocketGuard(socket_path, fd));
  }
  return absl::UnavailableError(
      absl::StrCat("lock file ", lock_path, " keeps changing; try again"));
}

UnixSocketGuard::UnixSocketGuard(std::string socket_path, int lock_fd)
    : socket_path_(std::move(socket_path)), lock_fd_(lock_fd) {}

UnixSocketGuard::~UnixSocketGuard() {
  // Socket first, lock last: while the lock file exists and is locked, nobody
  // else touches the socket path.
  ::unlink(socket_path_.c_str());
  ::unlink(lock_path().c_str());
  ::close(lock_fd_);
}

absl::Status UnixSocketGuard::SetMode(mode_t mode, gid_t group) const {
  if (group != static_cast<gid_t>(-1) &&
      ::chown(socket_path_.c_str(), static_cast<uid_t>(-1), group) != 0) {
    return ErrnoError(
        errno, absl::StrCat("cannot give ", socket_path_, " to group ", group));
  }
  if (::chmod(socket_path_.c_str(), mode) != 0) {
    return ErrnoError(errno, absl::StrCat("cannot chmod ", socket_path_));
  }
  return absl::OkStatus();
}

ScopedUmask::ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
ScopedUmask::~ScopedUmask() { ::umask(old_); }

}  // namespace jobwire
