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

// The fd named by the live ScopedUnixPeerName or ScopedRelayedPeerName of
// this thread, and the address its getpeername() answers.
thread_local int named_fd = -1;
thread_local sockaddr_storage named_addr;
thread_local socklen_t named_len = 0;

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
  sockaddr_un named{};
  if (credentials.empty() || credentials.size() >= sizeof(named.sun_path)) {
    return;
  }
  named.sun_family = AF_UNIX;
  std::memcpy(named.sun_path, credentials.data(), credentials.size());
  std::memset(&named_addr, 0, sizeof(named_addr));
  std::memcpy(&named_addr, &named, sizeof(named));
  named_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                     credentials.size() + 1);
  named_fd = fd;
}

ScopedUnixPeerName::~ScopedUnixPeerName() { named_fd = -1; }

ScopedRelayedPeerName::ScopedRelayedPeerName(int fd,
                                             const sockaddr_storage& peer,
                                             socklen_t len) {
  if (len == 0 || len > sizeof(named_addr)) return;
  std::memcpy(&named_addr, &peer, len);
  named_len = len;
  named_fd = fd;
}

ScopedRelayedPeerName::~ScopedRelayedPeerName() { named_fd = -1; }

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
  // empty path) is named.
  if (*len > offsetof(sockaddr_un, sun_path) + 1) return rc;
  std::memcpy(addr, &jobwire::named_addr,
              std::min(capacity, jobwire::named_len));
  *len = jobwire::named_len;
  return rc;
}
