#include "server/transport/served_connections.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <string>

#include "absl/base/dynamic_annotations.h"

namespace jobwire {
namespace {

// Whether `fd` is a connected (not listening) stream socket whose local
// address is one of `bound`.
bool IsServedConnection(int fd, const std::vector<ListenAddress>& bound) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int type = 0;
  int listening = 0;
  socklen_t len = sizeof(type);
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_STREAM) {
    return false;
  }
  len = sizeof(listening);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
      listening != 0) {
    return false;
  }
  sockaddr_storage local{};
  len = sizeof(local);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    return false;
  }
  for (const ListenAddress& a : bound) {
    switch (a.kind) {
      case ListenAddress::Kind::kTcp: {
        int port = -1;
        if (local.ss_family == AF_INET) {
          port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
        } else if (local.ss_family == AF_INET6) {
          port =
              ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
        }
        if (a.port != 0 && port == a.port) return true;
        break;
      }
      case ListenAddress::Kind::kUnixPath:
      case ListenAddress::Kind::kUnixAbstract: {
        if (local.ss_family != AF_UNIX) break;
        if (len <= offsetof(sockaddr_un, sun_path)) break;  // unnamed
        const auto* un = reinterpret_cast<const sockaddr_un*>(&local);
        std::string name(un->sun_path, len - offsetof(sockaddr_un, sun_path));
        if (a.kind == ListenAddress::Kind::kUnixAbstract) {
          if (name[0] == '\0' && name.substr(1) == a.path) return true;
        } else {
          name = name.c_str();  // a path ends at its NUL
          if (name == a.path) return true;
        }
        break;
      }
    }
  }
  return false;
}

}  // namespace

namespace {

// The descriptors of this process but stdin/stdout/stderr.
std::vector<int> OpenDescriptors() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int dir_fd = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;  // "." and ".."
    if (fd <= STDERR_FILENO || fd == dir_fd) continue;
    fds.push_back(static_cast<int>(fd));
  }
  ::closedir(dir);
  return fds;
}

// IsServedConnection on a descriptor that another thread owns. The scan
// runs while any thread may create or close descriptors (gRPC's connections,
// the signal watcher's signalfd, SQLite's files): the kernel answers each
// call on its own, and every answer is handled (a descriptor closed or
// replaced since the listing is simply not a served connection), so nothing
// here needs ordering with its owner. ThreadSanitizer, which tracks each
// descriptor as memory, would report these reads against the owner's
// creation of it; they are intended, so they are not checked.
bool ProbeServedConnection(int fd, const std::vector<ListenAddress>& bound) {
  ABSL_ANNOTATE_IGNORE_READS_BEGIN();
  const bool served = IsServedConnection(fd, bound);
  ABSL_ANNOTATE_IGNORE_READS_END();
  return served;
}

}  // namespace

int ShutdownServedConnections(const std::vector<ListenAddress>& bound) {
  int count = 0;
  for (int fd : OpenDescriptors()) {
    if (ProbeServedConnection(fd, bound) && ::shutdown(fd, SHUT_RDWR) == 0) {
      ++count;
    }
  }
  return count;
}

int CountServedConnections(const std::vector<ListenAddress>& bound) {
  int count = 0;
  for (int fd : OpenDescriptors()) {
    if (ProbeServedConnection(fd, bound)) ++count;
  }
  return count;
}

}  // namespace jobwire
