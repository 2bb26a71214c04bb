// UnixSocketGuard: owns a Unix socket path for one jobwired process.
//
// Before a server binds `PATH`, Acquire() takes an exclusive flock(2) on
// `PATH.lock`. Holding that lock is what makes a socket file "live": a second
// server on the same path fails to get it and leaves the socket alone, while
// a socket file left behind by a crashed server (whose lock died with it) is
// removed so the new server can bind. After the bind, SetMode() applies the
// requested permissions. The destructor removes the socket and then the lock
// file, and releases the lock.
//
// Usage (see server/app/app.cc):
//   JW_ASSIGN_OR_RETURN(auto guard, UnixSocketGuard::Acquire("/run/j.sock"));
//   ... bind the socket with gRPC ...
//   JW_RETURN_IF_ERROR(guard->SetMode(0600));
//
// Thread-compatible. Does blocking file-system calls; use at start and stop.
#ifndef JOBWIRE_SERVER_TRANSPORT_UNIX_SOCKET_GUARD_H_
#define JOBWIRE_SERVER_TRANSPORT_UNIX_SOCKET_GUARD_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace jobwire {

class UnixSocketGuard {
 public:
  // Creates the parent directory if missing, takes the lock on
  // `socket_path + ".lock"` and removes a stale socket file at `socket_path`.
  // `socket_path` should be absolute.
  // Fails: FAILED_PRECONDITION when another process holds the lock (a live
  // server); FAILED_PRECONDITION when `socket_path` exists and is not a
  // socket (it is never removed then); PERMISSION_DENIED or INTERNAL for
  // file-system errors. On failure nothing on disk was changed except a
  // created parent directory or lock file.
  static absl::StatusOr<std::unique_ptr<UnixSocketGuard>> Acquire(
      const std::string& socket_path);

  // Removes the socket and lock files and releases the lock.
  ~UnixSocketGuard();
  UnixSocketGuard(const UnixSocketGuard&) = delete;
  UnixSocketGuard& operator=(const UnixSocketGuard&) = delete;

  // chmod(2)s the bound socket to `mode` (e.g. 0600, 0660) and, when
  // `group` is not -1, chown(2)s it to that group first.
  // Fails: INTERNAL (PERMISSION_DENIED for a group the process may not
  // give) when the socket is missing or chmod/chown fails.
  absl::Status SetMode(mode_t mode, gid_t group = static_cast<gid_t>(-1)) const;

  const std::string& socket_path() const { return socket_path_; }
  std::string lock_path() const { return socket_path_ + ".lock"; }

 private:
  UnixSocketGuard(std::string socket_path, int lock_fd);

  const std::string socket_path_;
  const int lock_fd_;
};

// mkdir -p of the directory that holds `file_path`; the directories it
// creates are owner-only (0700). Existing ones are left as they are. Fails:
// PERMISSION_DENIED or INTERNAL naming the directory.
absl::Status CreateParentDirectories(const std::string& file_path);

// The default socket of a user without XDG_RUNTIME_DIR lives in the shared
// /tmp (clients/cpp/default_address.h): for a path under /tmp/jobwire-EUID/
// this creates that folder with mode 0700 and fails (FAILED_PRECONDITION)
// unless it is a folder of this user that no one else can write, so no one
// else can put a socket there. Other paths: OK, untouched. Acquire calls it.
absl::Status CheckSharedTmpFolder(const std::string& socket_path);

// Sets the process umask for the life of the object (gRPC creates socket
// files with the umask applied, so a tight umask closes the window between
// bind and SetMode). The umask is process-wide: hold it only while binding.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask);
  ~ScopedUmask();
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_UNIX_SOCKET_GUARD_H_
