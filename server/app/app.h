// App: the composition root of jobwired.
//
// App::Start builds every component in dependency order and owns each with a
// unique_ptr; every other component gets non-owning pointers. Stop() tears
// them down in reverse (the order is written out in app.cc). This is the one
// place where the server is wired together, so this is where new parts plug
// in: the job store (server/storage: SqliteJobStore, or PgJobStore for
// --db postgres://...), the EventBus (server/events), the
// Dispatcher (server/scheduling), ServerMetrics (server/metrics),
// JobServiceImpl (server/api/job_service.h) and WorkerServiceImpl
// (server/api/worker_service.h).
//
// Thread-safety: Start and Stop are called from one thread (main);
// SkipGrace and draining() are safe from any thread.
#ifndef JOBWIRE_SERVER_APP_APP_H_
#define JOBWIRE_SERVER_APP_APP_H_

#include <grpcpp/server.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "server/api/admin_service.h"
#include "server/api/health_service.h"
#include "server/api/job_service.h"
#include "server/api/unary_methods.h"
#include "server/api/worker_service.h"
#include "server/app/server_options.h"
#include "server/common/clock.h"
#include "server/common/executor.h"
#include "server/core/retry.h"
#include "server/events/event_bus.h"
#include "server/http/http_server.h"
#include "server/metrics/server_metrics.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/database_lock.h"
#include "server/storage/database_migration.h"
#include "server/storage/pg_job_store.h"
#include "server/storage/sqlite_job_store.h"
#include "server/transport/connection_acceptor.h"
#include "server/transport/listen_address.h"
#include "server/transport/tls_credentials.h"
#include "server/transport/token_file.h"
#include "server/transport/unix_socket_guard.h"
#include "server/webhooks/http_webhook_sender.h"

namespace jobwire {

// The jobwired version, from the CMake project version.
const char* JobwireVersion();

// `jobwired migrate`: applies the pending schema migrations of
// options.db_path and says what it did. A relative SQLite path is the
// current folder's, and its missing folders are created owner-only, as at
// start. Blocking; fails as MigrateDatabaseBlocking does.
absl::StatusOr<DatabaseMigration> MigrateDatabase(const ServerOptions& options);

class App {
 public:
  // A service's part in a graceful stop, called once on the stopping thread
  // before grpc::Server::Shutdown. The service tells its open streams that
  // the server drains and until when (`deadline`), takes no new work, and
  // finishes its streams by the deadline at the latest. It must return
  // promptly, not wait for the deadline: Stop() then waits in
  // grpc::Server::Shutdown(deadline), which returns as soon as every call is
  // done and cancels what is still open at the deadline.
  using ShutdownHook = std::function<void(absl::Time deadline)>;

  // Builds and starts everything; serves on every listener when it returns.
  // Fails: INVALID_ARGUMENT for a bad address or a non-loopback TCP listener
  // without an auth token; FAILED_PRECONDITION when another server holds a
  // Unix socket path; UNAVAILABLE when an address cannot be bound. On failure
  // everything already built is torn down (sockets and locks removed).
  static absl::StatusOr<std::unique_ptr<App>> Start(
      const ServerOptions& options);

  // Runs Stop() if it has not run.
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // The graceful stop: drain, shut down, release everything. Blocks for at
  // most about `shutdown_grace`. Idempotent.
  void Stop();

  // Cuts the grace period short: open calls are cancelled now (the second
  // stop signal). Safe from any thread, before or during Stop().
  void SkipGrace();

  // True from the start of Stop().
  bool draining() const { return draining_.load(); }

  // The addresses served, ports resolved ("unix:/abs/jobwire.sock",
  // "127.0.0.1:43211"), in --listen order.
  const std::vector<std::string>& addresses() const { return addresses_; }

  // The Prometheus metrics (GET /metrics renders them with RenderBlocking()
  // on the executor). Owned by the App; valid from Start() until Stop()
  // returns.
  ServerMetrics* metrics() const { return metrics_.get(); }

 private:
  explicit App(ServerOptions options);
  absl::Status Build();
  // Parses --listen, locks the Unix socket paths and binds the TCP ports
  // (acceptor_), before anything else is built.
  absl::Status ClaimListeners(const std::string& cwd);
  absl::Status StartServer();
  // Serves the HTTP face on ServerOptions::http_listen (none: nothing).
  absl::Status StartHttp(const std::string& cwd);
  void AddShutdownHook(std::string name, ShutdownHook hook);
  // Deletes finished jobs as ServerOptions::retention allows, every
  // retention_interval, on its own thread, until Stop().
  void RetentionLoop();
  // From the finisher thread of Stop(): if grpc::Server::Shutdown has not
  // returned kStalledWriteGrace after `deadline` (or after SkipGrace), shuts
  // down the connections still open on bound_ (served_connections.h).
  void ShutDownStalledConnections(absl::Time deadline);

  const ServerOptions options_;
  std::atomic<bool> draining_{false};

  // Owned components, in construction order; destroyed in reverse by Stop().
  std::unique_ptr<Clock> clock_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<DatabaseLock> db_lock_;  // held while store_ is open
  std::unique_ptr<EventBus> events_;       // listens to store_; outlives it
  std::unique_ptr<SystemRandomSource> random_;
  // Null without --webhook-secret-file. Listens to store_; outlives it.
  std::unique_ptr<HttpWebhookSender> webhooks_;
  std::unique_ptr<JobStore> store_;
  // store_ as its backend's type: exactly one is set while store_ is.
  SqliteJobStore* sqlite_store_ = nullptr;
  PgJobStore* pg_store_ = nullptr;
  std::unique_ptr<Dispatcher> dispatcher_;  // listens to store_; outlives it
  // Listens to store_ and dispatcher_; outlives both.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<HealthServiceImpl> health_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  // The unary methods of job_service_ and admin_service_, which http_ calls
  // for its JSON routes; outlives http_.
  std::unique_ptr<UnaryMethods> unary_methods_;
  std::vector<std::unique_ptr<UnixSocketGuard>> socket_guards_;
  // Binds and accepts every listener of server_ (connection_acceptor.h),
  // handing connections to gRPC through tcp_handoff_ (TLS when configured)
  // and unix_handoff_. Stopped before server_ shuts down, destroyed after it.
  // Plaintext TCP connections pass through it (http2_relay.h); null with
  // TLS or --max-stream-resets 0. Stopped after the gRPC server.
  std::unique_ptr<Http2Relay> relay_;
  std::unique_ptr<ConnectionAcceptor> acceptor_;
  // --tls-*: the certificates of the TCP listeners; null without TLS.
  // Shared with the credentials gRPC holds.
  std::shared_ptr<TlsCertificates> tls_;
  // --auth-token-file; null without it. Shared with the credentials.
  std::shared_ptr<TokenTable> tokens_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> tcp_handoff_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> unix_handoff_;
  std::unique_ptr<grpc::Server> server_;
  // Calls unary_methods_, and streaming methods over an in-process channel
  // of server_: stopped and destroyed before both.
  std::unique_ptr<HttpServer> http_;
  // http_, for the metric hooks on the executor: set (release) once
  // StartHttp has stored http_, which the HTTP face's own GET /metrics can
  // run before. http_ is reset only after the executor has stopped.
  std::atomic<const HttpServer*> http_serving_{nullptr};

  std::vector<std::pair<std::string, ShutdownHook>> shutdown_hooks_;
  std::vector<std::string> addresses_;
  std::vector<ListenAddress> bound_;             // addresses_, parsed
  std::vector<ListenAddress> listen_addresses_;  // --listen, parsed
  // Calls in progress on server_ (call_counter.h).
  const std::shared_ptr<std::atomic<int>> open_calls_ =
      std::make_shared<std::atomic<int>>(0);
  bool stopped_ = false;

  absl::Mutex mu_;
  bool skip_grace_ ABSL_GUARDED_BY(mu_) = false;
  bool server_stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool server_shut_down_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_retention_ ABSL_GUARDED_BY(mu_) = false;
  std::thread retention_thread_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_APP_APP_H_
