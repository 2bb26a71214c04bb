// ConnectionAcceptor: jobwired's own accept loop for its gRPC listeners.
//
// gRPC 1.51's listener gives up for good after one accept4() failure other
// than EAGAIN (EMFILE when the process runs out of descriptors): the port
// stays bound, its queue fills, and the server never serves TCP again. It
// also binds with SO_REUSEPORT, so a second server could share the port.
// So jobwired binds its TCP ports and Unix sockets itself (no SO_REUSEPORT:
// a taken port is an error naming it) and accepts on its own thread, which
// also checks each Unix peer (SO_PEERCRED) when told to, handing each
// connection to gRPC through an ExternalConnectionAcceptor (the connection then
// goes through the same credentials, auth processor and channel arguments as a
// gRPC-accepted one). The loop:
//  - keeps going after EMFILE/ENFILE: it frees a reserved descriptor,
//    accepts and closes the waiting connection (the peer sees the close
//    rather than a full queue), re-reserves, and backs off briefly;
//  - closes at once connections beyond `max_connections` (the connections
//    gRPC still holds are counted from /proc/self/fd, served_connections.h,
//    when the running estimate reaches the cap).
//
// Thread-safety: Listen, Start and Stop from one thread (App); the counters
// are safe from any thread.
#ifndef JOBWIRE_SERVER_TRANSPORT_CONNECTION_ACCEPTOR_H_
#define JOBWIRE_SERVER_TRANSPORT_CONNECTION_ACCEPTOR_H_

#include <grpcpp/server_builder.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/transport/http2_relay.h"
#include "server/transport/listen_address.h"

namespace jobwire {

class ConnectionAcceptor {
 public:
  struct Options {
    // Connections served at once over all of this acceptor's ports; more
    // are closed as soon as they are accepted.
    int max_connections = 10000;
    // Unix sockets: when either list is set, a peer is served only if its
    // uid is this process's or in allow_uids, or its gid is in allow_gids
    // (SO_PEERCRED: the peer process's uid and primary gid at connect).
    std::vector<uid_t> allow_uids;
    std::vector<gid_t> allow_gids;
    // When set (not owned; outlives Stop()), every TCP connection goes
    // through this relay, and gRPC serves its end of it (http2_relay.h).
    Http2Relay* relay = nullptr;
  };

  // Binds and listens on every address of `addresses`: TCP on each resolved
  // host address (port 0 picks one port, shared by a host's addresses);
  // Unix paths (created with the process umask; the caller guards the path,
  // unix_socket_guard.h) and abstract names.
  // Fails UNAVAILABLE naming the address when a port is taken or cannot be
  // bound, INVALID_ARGUMENT for a host that does not resolve.
  static absl::StatusOr<std::unique_ptr<ConnectionAcceptor>> Listen(
      const std::vector<ListenAddress>& addresses, Options options);

  // Stop()s.
  ~ConnectionAcceptor();
  ConnectionAcceptor(const ConnectionAcceptor&) = delete;
  ConnectionAcceptor& operator=(const ConnectionAcceptor&) = delete;

  // The port bound for addresses[i] of Listen (0 for a Unix socket).
  int port(size_t i) const { return ports_[i]; }

  // Starts accepting and handing TCP connections to `tcp` and Unix ones to
  // `unix_sockets` (not owned; each must outlive Stop() and its server must
  // have started; null only when there is no such listener).
  void Start(grpc::experimental::ExternalConnectionAcceptor* tcp,
             grpc::experimental::ExternalConnectionAcceptor* unix_sockets);

  // Closes the listeners and joins the accept thread. Idempotent.
  void Stop();

  // Connections closed at once because max_connections were open.
  int64_t refused_over_limit() const { return refused_over_limit_.load(); }
  // Connections closed at once because the process had no descriptor left.
  int64_t refused_no_descriptor() const {
    return refused_no_descriptor_.load();
  }
  // Unix connections closed because the peer was not allowed.
  int64_t refused_peer() const { return refused_peer_.load(); }

 private:
  explicit ConnectionAcceptor(Options options) : options_(std::move(options)) {}
  void Loop();
  // Accepts everything waiting on `listener`; false after a descriptor
  // shortage (the caller backs off).
  bool AcceptAll(int listener, bool is_unix);
  // Whether the peer of Unix connection `fd` may be served (logs a refusal;
  // at debug, every peer's uid, gid and pid).
  bool PeerAllowed(int fd);
  // Counts a connection closed for want of a descriptor; logs it at most
  // every 10 s.
  void NoteDescriptorShortage(const std::string& error);

  const Options options_;
  std::vector<int> listeners_;
  std::vector<bool> listener_is_unix_;  // per listeners_
  std::vector<int> ports_;              // per Listen address
  std::vector<ListenAddress> bound_;    // ports resolved, for counting
  int wake_read_ = -1;
  int wake_write_ = -1;
  int reserve_fd_ = -1;  // /dev/null, given up to accept under EMFILE
  grpc::experimental::ExternalConnectionAcceptor* tcp_to_ = nullptr;
  grpc::experimental::ExternalConnectionAcceptor* unix_to_ = nullptr;
  std::thread thread_;
  // The connections gRPC holds: counted at the last scan, plus handed since.
  int counted_ = 0;
  int handed_since_count_ = 0;
  absl::Time last_count_ = absl::InfinitePast();
  absl::Time last_shortage_warning_ = absl::InfinitePast();
  absl::Time last_limit_warning_ = absl::InfinitePast();
  absl::Time last_peer_warning_ = absl::InfinitePast();
  std::atomic<int64_t> refused_over_limit_{0};
  std::atomic<int64_t> refused_no_descriptor_{0};
  std::atomic<int64_t> refused_peer_{0};
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_CONNECTION_ACCEPTOR_H_
