#include "server/transport/connection_acceptor.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/logging.h"
#include "server/transport/peer_name.h"
#include "server/transport/served_connections.h"

namespace jobwire {
namespace {

// How long the loop waits after running out of descriptors before it
// accepts again (the connections it closed meanwhile give some back).
constexpr int kBackoffMs = 50;
// The least time between two counts of the open connections at the cap.
constexpr absl::Duration kRecountEvery = absl::Milliseconds(100);
// Shortage and over-limit warnings are logged at most this often.
constexpr absl::Duration kWarnEvery = absl::Seconds(10);

bool IsDescriptorShortage(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

// Binds one socket on `ai` with `port` (0: any); its fd or an error.
absl::StatusOr<int> BindOne(const addrinfo& ai, int port, bool v6only,
                            const std::string& name) {
  const int fd =
      ::socket(ai.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve on ", name, ": socket: ", std::strerror(errno)));
  }
  const int one = 1;
  // SO_REUSEADDR only lets a restart bind over TIME_WAIT; never
  // SO_REUSEPORT, which would let a second server share the port.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ai.ai_family == AF_INET6 && v6only) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, ai.ai_addr, ai.ai_addrlen);
  if (ai.ai_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(port);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), ai.ai_addrlen) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot serve on ", name, ": ",
                     err == EADDRINUSE ? "the port is taken by another process"
                                       : std::strerror(err)));
  }
  return fd;
}

// A listening Unix socket at `address` (a path, or an abstract name). The
// file of a path is created with the process umask.
absl::StatusOr<int> BindUnix(const ListenAddress& address,
                             const std::string& name) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socklen_t len = 0;
  if (address.kind == ListenAddress::Kind::kUnixAbstract) {
    if (address.path.size() + 1 > sizeof(addr.sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot serve on ", name, ": name too long"));
    }
    std::memcpy(addr.sun_path + 1, address.path.data(), address.path.size());
    len = offsetof(sockaddr_un, sun_path) + 1 + address.path.size();
  } else {
    if (address.path.size() + 1 > sizeof(addr.sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot serve on ", name, ": path too long"));
    }
    std::memcpy(addr.sun_path, address.path.data(), address.path.size());
    len = sizeof(addr);
  }
  const int fd =
      ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(absl::StrCat(
        "cannot serve on ", name, ": ",
        err == EADDRINUSE ? "the address is taken by another process"
                          : std::strerror(err)));
  }
  return fd;
}

int LocalPort(int fd) {
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    return 0;
  }
  if (local.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConnectionAcceptor>> ConnectionAcceptor::Listen(
    const std::vector<ListenAddress>& addresses, Options options) {
  std::unique_ptr<ConnectionAcceptor> acceptor(new ConnectionAcceptor(options));
  for (const ListenAddress& address : addresses) {
    const std::string name = address.ToUri();
    if (address.is_unix()) {
      absl::StatusOr<int> fd = BindUnix(address, name);
      if (!fd.ok()) return fd.status();
      acceptor->listeners_.push_back(*fd);
      acceptor->listener_is_unix_.push_back(true);
      acceptor->ports_.push_back(0);
      acceptor->bound_.push_back(address);
      continue;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const int rc =
        ::getaddrinfo(address.host.empty() ? nullptr : address.host.c_str(),
                      "0", &hints, &found);
    if (rc != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot serve on ", name, ": ", ::gai_strerror(rc)));
    }
    int count = 0;
    for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) ++count;
    }
    int port = address.port;
    absl::Status status;
    for (const addrinfo* ai = found; ai != nullptr && status.ok();
         ai = ai->ai_next) {
      if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
      absl::StatusOr<int> fd = BindOne(*ai, port, count > 1, name);
      if (!fd.ok()) {
        status = fd.status();
        break;
      }
      acceptor->listeners_.push_back(*fd);
      acceptor->listener_is_unix_.push_back(false);
      if (port == 0) port = LocalPort(*fd);
    }
    ::freeaddrinfo(found);
    if (!status.ok()) return status;
    if (port == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve on ", name, ": no address"));
    }
    acceptor->ports_.push_back(port);
    ListenAddress bound = address;
    bound.port = port;
    acceptor->bound_.push_back(std::move(bound));
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  acceptor->wake_read_ = pipe_fds[0];
  acceptor->wake_write_ = pipe_fds[1];
  acceptor->reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return acceptor;
}

ConnectionAcceptor::~ConnectionAcceptor() {
  Stop();
  for (int fd : {wake_read_, wake_write_, reserve_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

void ConnectionAcceptor::Start(
    grpc::experimental::ExternalConnectionAcceptor* tcp,
    grpc::experimental::ExternalConnectionAcceptor* unix_sockets) {
  tcp_to_ = tcp;
  unix_to_ = unix_sockets;
  thread_ = std::thread([this] { Loop(); });
}

void ConnectionAcceptor::Stop() {
  if (thread_.joinable()) {
    const char byte = 0;
    (void)!::write(wake_write_, &byte, 1);
    thread_.join();
  }
  for (int fd : listeners_) ::close(fd);
  listeners_.clear();
}

void ConnectionAcceptor::Loop() {
  std::vector<pollfd> fds;
  fds.push_back({wake_read_, POLLIN, 0});
  for (int fd : listeners_) fds.push_back({fd, POLLIN, 0});
  bool backoff = false;
  while (true) {
    const int n =
        ::poll(fds.data(), backoff ? 1 : fds.size(), backoff ? kBackoffMs : -1);
    if (n < 0 && errno != EINTR) {
      JW_LOG(ERROR) << "accept loop: poll: " << std::strerror(errno);
      backoff = true;
      continue;
    }
    if (fds[0].revents != 0) return;  // Stop()
    backoff = false;
    if (n <= 0) continue;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      if (!AcceptAll(fds[i].fd, listener_is_unix_[i - 1])) backoff = true;
    }
  }
}

bool ConnectionAcceptor::PeerAllowed(int fd) {
  const bool check =
      !options_.allow_uids.empty() || !options_.allow_gids.empty();
  if (!check && !LogLevelEnabled(LogLevel::kDebug)) return true;
  ucred peer{};
  socklen_t len = sizeof(peer);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
    return !check;
  }
  JW_LOG(DEBUG) << "Unix socket connection from uid " << peer.uid << " gid "
                << peer.gid << " pid " << peer.pid;
  if (!check || peer.uid == ::geteuid()) return true;
  for (uid_t uid : options_.allow_uids) {
    if (peer.uid == uid) return true;
  }
  for (gid_t gid : options_.allow_gids) {
    if (peer.gid == gid) return true;
  }
  const int64_t total = ++refused_peer_;
  const absl::Time now = absl::Now();
  if (now - last_peer_warning_ >= kWarnEvery) {
    last_peer_warning_ = now;
    JW_LOG(WARNING) << "refused a Unix socket connection from uid " << peer.uid
                    << " gid " << peer.gid << " pid " << peer.pid
                    << " (not in --socket-allow-uid or --socket-allow-gid; "
                    << total << " refused so far)";
  }
  return false;
}

void ConnectionAcceptor::NoteDescriptorShortage(const std::string& error) {
  const int64_t total = ++refused_no_descriptor_;
  const absl::Time now = absl::Now();
  if (now - last_shortage_warning_ >= kWarnEvery) {
    last_shortage_warning_ = now;
    JW_LOG(WARNING) << "accept: " << error
                    << "; closing new connections until descriptors are "
                       "free again ("
                    << total
                    << " closed so far); raise the open-file "
                       "limit or lower --max-connections";
  }
}

bool ConnectionAcceptor::AcceptAll(int listener, bool is_unix) {
  while (true) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof(peer);
    int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return true;
      if (!IsDescriptorShortage(err)) {
        JW_LOG(ERROR) << "accept: " << std::strerror(err);
        return false;
      }
      // Out of descriptors: close the waiting connection with the one held
      // in reserve, so its peer learns at once and the queue drains.
      if (reserve_fd_ >= 0) {
        ::close(reserve_fd_);
        reserve_fd_ = -1;
      }
      const int dropped =
          ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (dropped >= 0) ::close(dropped);
      reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      NoteDescriptorShortage(std::strerror(err));
      return false;
    }
    if (counted_ + handed_since_count_ >= options_.max_connections &&
        absl::Now() - last_count_ >= kRecountEvery) {
      last_count_ = absl::Now();
      counted_ = CountServedConnections(bound_) - 1;  // less this one
      handed_since_count_ = 0;
    }
    if (counted_ + handed_since_count_ >= options_.max_connections) {
      ::close(fd);
      const int64_t total = ++refused_over_limit_;
      const absl::Time now = absl::Now();
      if (now - last_limit_warning_ >= kWarnEvery) {
        last_limit_warning_ = now;
        JW_LOG(WARNING) << options_.max_connections
                        << " connections open (--max-connections); closing "
                           "new ones ("
                        << total << " closed so far)";
      }
      continue;
    }
    if (is_unix && !PeerAllowed(fd)) {
      ::close(fd);
      continue;
    }
    ++handed_since_count_;
    if (!is_unix) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
    p.listener_fd = listener;
    p.fd = fd;
    if (is_unix) {
      // gRPC reads the peer's address in this call: name it by the peer's
      // credentials, for the access log (peer_name.h).
      ScopedUnixPeerName name(fd);
      unix_to_->HandleNewConnection(&p);
    } else if (options_.relay != nullptr) {
      // gRPC serves the relay's socketpair end (http2_relay.h), and names
      // the peer by the TCP client's address.
      absl::StatusOr<int> relayed = options_.relay->Adopt(fd);
      if (!relayed.ok()) {
        --handed_since_count_;
        if (absl::IsResourceExhausted(relayed.status())) {
          NoteDescriptorShortage(std::string(relayed.status().message()));
          return false;
        }
        JW_LOG(ERROR) << relayed.status().message();
        continue;
      }
      p.fd = *relayed;
      ScopedRelayedPeerName name(p.fd, peer, peer_len);
      tcp_to_->HandleNewConnection(&p);
    } else {
      tcp_to_->HandleNewConnection(&p);
    }
  }
}

}  // namespace jobwire
