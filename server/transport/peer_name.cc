#include "server/transport/peer_name.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace jobwire {
namespace {

// The fd named by the live ScopedUnixPeerName of this thread, and its name.
thread_local int named_fd = -1;
thread_local char named_path[sizeof(sockaddr_un::sun_path)];

// The system call that the C library's getpeername wraps (it is no
// cancellation point and has no other work), so that the override below
// needs no dlsym.
int SystemGetPeerName(int fd, sockaddr* addr, socklen_t* len) {
  return static_cast<int>(::syscall(SYS_getpeername, fd, addr, len));
}

}  // namespace

std::string UnixPeerCredentialsOf(int fd) {
  ucred peer{};
  socklen_t len = sizeof(peer);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) return "";
  return absl::StrCat("uid=", peer.uid, ",gid=", peer.gid, ",pid=", peer.pid);
}

std::string PeerNameOf(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (SystemGetPeerName(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return "unknown";
  }
  char text[INET6_ADDRSTRLEN] = {};
  switch (addr.ss_family) {
    case AF_INET: {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      return absl::StrCat("ipv4:", text, ":", ntohs(in->sin_port));
    }
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
      return absl::StrCat("ipv6:[", text, "]:", ntohs(in6->sin6_port));
    }
    case AF_UNIX: {
      const std::string credentials = UnixPeerCredentialsOf(fd);
      return credentials.empty() ? "unix:" : absl::StrCat("unix:", credentials);
    }
    default:
      return "unknown";
  }
}

ScopedUnixPeerName::ScopedUnixPeerName(int fd) {
  const std::string credentials = UnixPeerCredentialsOf(fd);
  if (credentials.empty() || credentials.size() >= sizeof(named_path)) return;
  std::memset(named_path, 0, sizeof(named_path));
  std::memcpy(named_path, credentials.data(), credentials.size());
  named_fd = fd;
}

ScopedUnixPeerName::~ScopedUnixPeerName() { named_fd = -1; }

}  // namespace jobwire

// Interposes on the C library's getpeername (see peer_name.h): the symbol of
// the executable wins over libc's for every library of the process.
extern "C" int getpeername(int fd, sockaddr* addr, socklen_t* len) {
  const socklen_t capacity = len != nullptr ? *len : 0;
  const int rc = jobwire::SystemGetPeerName(fd, addr, len);
  if (rc != 0 || fd != jobwire::named_fd || addr->sa_family != AF_UNIX) {
    return rc;
  }
  // Only a peer without a name (the length of the family alone, or of an
  // empty path) is named by its credentials.
  if (*len > offsetof(sockaddr_un, sun_path) + 1) return rc;
  sockaddr_un named{};
  named.sun_family = AF_UNIX;
  std::memcpy(named.sun_path, jobwire::named_path, sizeof(named.sun_path));
  const socklen_t named_len = static_cast<socklen_t>(
      offsetof(sockaddr_un, sun_path) + std::strlen(named.sun_path) + 1);
  std::memcpy(addr, &named, std::min(capacity, named_len));
  *len = named_len;
  return rc;
}
