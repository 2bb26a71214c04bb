// ShutdownServedConnections: the last resort of a bounded shutdown.
//
// A peer that stops reading its socket (a stopped process, a dead network,
// a client that never polls) leaves the server's HTTP/2 transport for that
// connection in the middle of a socket write. gRPC 1.51 cannot cancel the
// calls on such a connection until that write completes, so
// grpc::Server::Shutdown(deadline) waits for the peer, for as long as the
// kernel keeps the connection (seen: 4-25 s on a Unix socket, minutes over
// TCP). Once the deadline has passed, App::Stop calls this to shut the
// connections down under gRPC: their writes fail and gRPC closes them.
//
// Only accepted connections of this process whose local address is one of
// the server's own bound addresses are touched: never a listener, a client
// connection the process opened, or stdin/stdout/stderr (which may be a
// socket, e.g. under systemd). The descriptors stay open; gRPC still owns
// and closes them.
//
// Thread-safe (reads /proc/self/fd). Blocking only on the file system.
#ifndef JOBWIRE_SERVER_TRANSPORT_SERVED_CONNECTIONS_H_
#define JOBWIRE_SERVER_TRANSPORT_SERVED_CONNECTIONS_H_

#include <vector>

#include "server/transport/listen_address.h"

namespace jobwire {

// Calls shutdown(fd, SHUT_RDWR) on every connected stream socket of this
// process whose local address is in `bound` (Unix paths absolute, TCP ports
// as bound, not 0), and returns how many it shut down.
int ShutdownServedConnections(const std::vector<ListenAddress>& bound);

// How many connected stream sockets of this process have a local address in
// `bound` (the same test as above); they are left alone. ConnectionAcceptor
// counts the connections gRPC still holds with it.
int CountServedConnections(const std::vector<ListenAddress>& bound);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_SERVED_CONNECTIONS_H_
