// PeerName: how access log lines name a connection's peer, the same for gRPC
// and HTTP: "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", or, for a Unix socket,
// the peer process's credentials at connect time (SO_PEERCRED):
// "unix:uid=1000,gid=1000,pid=4242".
//
// gRPC names a call's peer (ServerContext::peer()) from getpeername() on the
// connection, which for a Unix socket says nothing: a client socket has no
// name, so every Unix call read "unix:". ScopedUnixPeerName fixes that for
// the connections jobwired accepts itself (connection_acceptor.h): while one
// is alive on a thread, getpeername() of its fd on that thread answers a Unix
// address whose path is "uid=U,gid=G,pid=P". ConnectionAcceptor holds one
// around ExternalConnectionAcceptor::HandleNewConnection, where gRPC 1.51
// reads the peer's address once, synchronously, on the calling thread; so
// gRPC's peer string of every call on that connection carries the peer's
// credentials. This file defines getpeername() (it makes the system call);
// it changes the answer only for that one fd on that one thread, and only
// when the peer socket has no name. ScopedRelayedPeerName does the same for
// TCP connections relayed through a socketpair (http2_relay.h).
//
// Thread-safe: the override's state is per thread.
#ifndef JOBWIRE_SERVER_TRANSPORT_PEER_NAME_H_
#define JOBWIRE_SERVER_TRANSPORT_PEER_NAME_H_

#include <sys/socket.h>

#include <string>

namespace jobwire {

// The peer of connected socket `fd` as above; "unknown" when it cannot be
// read.
std::string PeerNameOf(int fd);

// "uid=U,gid=G,pid=P" of the peer of Unix socket `fd` (SO_PEERCRED); empty
// when it cannot be read.
std::string UnixPeerCredentialsOf(int fd);

class ScopedUnixPeerName {
 public:
  // Names `fd`'s peer by its credentials (when `fd` is a Unix socket whose
  // credentials can be read) until destroyed. One per thread at a time.
  explicit ScopedUnixPeerName(int fd);
  ~ScopedUnixPeerName();
  ScopedUnixPeerName(const ScopedUnixPeerName&) = delete;
  ScopedUnixPeerName& operator=(const ScopedUnixPeerName&) = delete;
};

// The same for a connection that Http2Relay relays: while alive on this
// thread, getpeername() of `fd` (gRPC's end of the relay's socketpair)
// answers `peer` (`len` bytes: the TCP client's address, as accept4() gave
// it), so a relayed call's peer reads "ipv4:127.0.0.1:5000" as if gRPC had
// accepted the connection itself.
class ScopedRelayedPeerName {
 public:
  ScopedRelayedPeerName(int fd, const sockaddr_storage& peer, socklen_t len);
  ~ScopedRelayedPeerName();
  ScopedRelayedPeerName(const ScopedRelayedPeerName&) = delete;
  ScopedRelayedPeerName& operator=(const ScopedRelayedPeerName&) = delete;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_PEER_NAME_H_
