#include "server/app/app.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/server_builder.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api/unary_methods.h"
#include "server/api/webhook_body.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/storage/pg_connection.h"
#include "server/transport/access_log.h"
#include "server/transport/call_counter.h"
#include "server/transport/connection_acceptor.h"
#include "server/transport/listen_address.h"
#include "server/transport/served_connections.h"
#include "server/transport/token_auth.h"

#ifndef JOBWIRE_VERSION
#define JOBWIRE_VERSION "0.0.0-dev"
#endif

namespace jobwire {
namespace {

// How long after the shutdown deadline (when gRPC has cancelled every call)
// the calls may take to end before their connections are shut down.
constexpr absl::Duration kStalledWriteGrace = absl::Milliseconds(250);

// The least time a stop waits for open calls (see App::Stop).
constexpr absl::Duration kSettle = absl::Milliseconds(50);

// A connection must send its HTTP/2 preface and settings within this (or
// within --idle-timeout when shorter), else it is closed.
constexpr absl::Duration kMaxHandshake = absl::Seconds(10);

// Services reported by health (besides "" for the whole server) and expected
// in reflection.
const std::vector<std::string>& ServiceNames() {
  static const auto* names = new std::vector<std::string>{
      "jobwire.v1.JobService", "jobwire.v1.WorkerService",
      "jobwire.v1.AdminService"};
  return *names;
}

// Server reflection describes services from the generated descriptors, which
// register themselves only when their object file is linked. A service whose
// messages no code uses yet (the generated base classes) would be listed but
// not describable; naming one message of each file links them all.
void LinkServiceDescriptors() {
  (void)jobwire::v1::SubmitJobRequest::descriptor();
  (void)jobwire::v1::ConnectRequest::descriptor();
  (void)jobwire::v1::GetServerInfoRequest::descriptor();
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
}

// Descriptors kept free of TCP connections for the database, the Unix and
// HTTP listeners, gRPC's own and the webhooks'.
constexpr int kReservedDescriptors = 256;

// Raises the soft open-file limit to the hard one (systemd starts services
// with 1024) and returns the soft limit now in force.
rlim_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    const rlim_t before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
      JW_LOG(INFO) << "open-file limit raised from " << before << " to "
                   << limit.rlim_cur;
    } else {
      limit.rlim_cur = before;
    }
  }
  return limit.rlim_cur;
}

// The database and its -wal and -shm files made owner-only (0600) when an
// earlier version or another umask left them readable by others.
void TightenStateFileModes(const std::string& db_path) {
  for (const std::string& path :
       {db_path, db_path + "-wal", db_path + "-shm"}) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 077) == 0) continue;
    if (::chmod(path.c_str(), st.st_mode & 0700) == 0) {
      char was[8];
      std::snprintf(was, sizeof(was), "%04o",
                    static_cast<unsigned>(st.st_mode & 0777));
      JW_LOG(INFO) << "made " << path << " owner-only (was " << was << ")";
    } else {
      JW_LOG(WARNING) << "cannot make " << path
                      << " owner-only: " << std::strerror(errno);
    }
  }
}

absl::StatusOr<std::string> CurrentDir() {
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof(buf)) == nullptr) {
    return absl::InternalError(absl::StrCat("getcwd: ", std::strerror(errno)));
  }
  return std::string(buf);
}

}  // namespace

const char* JobwireVersion() { return JOBWIRE_VERSION; }

absl::StatusOr<DatabaseMigration> MigrateDatabase(
    const ServerOptions& options) {
  if (options.db_path.empty()) {
    return absl::InvalidArgumentError("--db: no database path given");
  }
  std::string db = options.db_path;
  if (!IsPostgresDb(db)) {
    if (db[0] != '/') {
      JW_ASSIGN_OR_RETURN(std::string cwd, CurrentDir());
      db = absl::StrCat(cwd, "/", db);
    }
    JW_RETURN_IF_ERROR(CreateParentDirectories(db));
  }
  return MigrateDatabaseBlocking(db);
}

absl::StatusOr<std::unique_ptr<App>> App::Start(const ServerOptions& options) {
  std::unique_ptr<App> app(new App(options));
  absl::Status status = app->Build();
  if (!status.ok()) {
    app->Stop();  // tears down whatever was built
    return status;
  }
  return app;
}

App::App(ServerOptions options) : options_(std::move(options)) {}

App::~App() { Stop(); }

// Composition, in dependency order: each component is owned here and hands
// non-owning pointers to the next.
absl::Status App::Build() {
  if (options_.db_path.empty()) {
    return absl::InvalidArgumentError("--db: no database path given");
  }
  clock_ = std::make_unique<SystemClock>();
  executor_ = std::make_unique<Executor>(options_.executor_threads);

  JW_ASSIGN_OR_RETURN(std::string cwd, CurrentDir());
  // Listeners first: a server refused its socket or port leaves no
  // database file behind.
  JW_RETURN_IF_ERROR(ClaimListeners(cwd));
  // --db postgres://... (or postgresql://, postgres:KEYWORDS) selects the
  // PostgreSQL store; anything else is a SQLite file.
  const bool postgres = IsPostgresDb(options_.db_path);
  std::string db_path = options_.db_path;
  if (postgres) {
    // Durability is the server's (synchronous_commit); PgJobStore holds
    // the one-node-per-database lock itself.
    if (options_.synchronous != SqliteJobStore::Synchronous::kFull) {
      return absl::InvalidArgumentError(
          "--synchronous applies to SQLite only; on PostgreSQL, durability "
          "is the server's synchronous_commit setting");
    }
  } else {
    if (db_path.empty() || db_path[0] != '/')
      db_path = absl::StrCat(cwd, "/", db_path);
    JW_RETURN_IF_ERROR(CreateParentDirectories(db_path));
    // One server per database; under the lock, what a crash left is ours.
    JW_ASSIGN_OR_RETURN(db_lock_, DatabaseLock::Acquire(db_path));
    if (const int stale = RemoveStaleBackupsBlocking(db_path); stale > 0) {
      JW_LOG(INFO) << "removed " << stale
                   << " unfinished backup files left beside " << db_path;
    }
  }
  // The bus is built first: it listens to the store from its first commit.
  EventBus::Options bus_options;
  bus_options.ring_capacity = options_.event_ring;
  events_ = std::make_unique<EventBus>(bus_options);
  SqliteJobStore::Options store_options;
  store_options.path = db_path;
  store_options.clock = clock_.get();
  store_options.synchronous = options_.synchronous;
  store_options.retention = options_.retention;
  random_ = std::make_unique<SystemRandomSource>();
  // Webhooks: only signed ones are sent, so without secrets none are (and
  // no outbox rows are written; SubmitJob refuses webhooks). The body is
  // built in the event's transaction (api/webhook_body.h) and stored in the
  // outbox, so webhooks/ sees neither protobuf nor SQL.
  std::optional<WebhookSigner> signer;
  if (!options_.webhook_secret_file.empty()) {
    absl::StatusOr<WebhookSigner> loaded =
        WebhookSigner::LoadBlocking(options_.webhook_secret_file);
    if (!loaded.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--webhook-secret-file: ", loaded.status().message()));
    }
    signer = *std::move(loaded);
    store_options.webhook_body = &WebhookEnvelopeJson;
  }
  absl::StatusOr<AddressPolicy> policy =
      AddressPolicy::Create(options_.webhook_allow_cidrs);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--webhook-allow-cidr: ", policy.status().message()));
  }
  if (!options_.webhook_url.empty()) {
    if (!signer.has_value()) {
      return absl::InvalidArgumentError(
          "--webhook-url needs --webhook-secret-file (webhooks are signed)");
    }
    if (absl::Status s = policy->CheckUrl(options_.webhook_url, "url");
        !s.ok()) {
      std::vector<FieldViolation> v = GetFieldViolations(s);
      return absl::InvalidArgumentError(
          absl::StrCat("--webhook-url: ", v.empty() ? std::string(s.message())
                                                    : v[0].description));
    }
    store_options.default_webhook = WebhookSpec{options_.webhook_url, {}};
  }
  if (postgres) {
    PgJobStore::Options pg_options;
    pg_options.conninfo = PgConnInfo(options_.db_path);
    pg_options.clock = clock_.get();
    pg_options.retention.terminal_max_age = options_.retention.terminal_max_age;
    pg_options.retention.max_terminal_jobs =
        options_.retention.max_terminal_jobs;
    pg_options.retention.batch_size = options_.retention.batch_size;
    pg_options.webhook_body = store_options.webhook_body;
    pg_options.default_webhook = store_options.default_webhook;
    pg_options.node_name = options_.node_name;
    // A node silent for a lease's time is dead: its leases go back.
    pg_options.node_ttl = options_.lease_ttl;
    JW_ASSIGN_OR_RETURN(std::unique_ptr<PgJobStore> pg,
                        PgJobStore::Open(std::move(pg_options)));
    // The address without its password: for the log and GetServerInfo.
    db_path = absl::StrCat("postgresql://", pg->description());
    JW_LOG(INFO) << "storage: PostgreSQL " << pg->description();
    pg_store_ = pg.get();
    store_ = std::move(pg);
  } else {
    JW_ASSIGN_OR_RETURN(std::unique_ptr<SqliteJobStore> sqlite,
                        SqliteJobStore::Open(store_options));
    TightenStateFileModes(db_path);
    sqlite_store_ = sqlite.get();
    store_ = std::move(sqlite);
  }
  store_->AddCommitListener(events_.get());
  if (options_.retention.terminal_max_age > absl::ZeroDuration() ||
      options_.retention.max_terminal_jobs > 0) {
    retention_thread_ = std::thread([this] { RetentionLoop(); });
  } else {
    JW_LOG(WARNING) << "no retention set: finished jobs are kept forever and "
                       "the database only grows (see --retention-max-age, "
                       "--retention-max-jobs)";
  }
  // The dispatcher learns every commit from the store, like the bus. It is
  // registered before recovery so no commit falls between the two; recovery
  // releases jobs left RUNNING by the previous process back to QUEUED.
  DispatcherOptions dispatcher_options;
  dispatcher_options.lease_ttl = options_.lease_ttl;
  dispatcher_ = std::make_unique<Dispatcher>(store_.get(), clock_.get(),
                                             random_.get(), dispatcher_options);
  store_->AddCommitListener(dispatcher_.get());
  if (pg_store_ != nullptr) {
    // Leases of dead nodes come back through this node's dispatcher.
    pg_store_->SetOrphanHandler(
        [d = dispatcher_.get()](const std::string& id, int32_t attempt) {
          d->HandBackOrphan(id, attempt);
        });
    pg_store_->SetGatesHandler([d = dispatcher_.get()] {
      if (absl::Status s = d->ReloadGatesBlocking(); !s.ok()) {
        JW_LOG(WARNING) << "re-reading dispatch and queue settings: " << s;
      }
    });
  }
  // Metrics listen to the store's commits and its writer, and to the
  // dispatcher's assignments. Their job counts start from the store before
  // the first write (recovery's). The hooks read services built below; they
  // run only at a scrape (GET /metrics), which the HTTP face can serve
  // before StartHttp returns (see http_serving_).
  ServerMetrics::Sources metric_sources;
  metric_sources.dispatcher = dispatcher_.get();
  metric_sources.store = store_.get();
  // The service's streams include the HTTP face's SSE streams (watches of
  // the same service, jobwire_sse_streams): the gRPC gauge leaves them out.
  // The HTTP face serves GET /metrics as soon as it listens, before
  // StartHttp has stored http_: the hooks read http_serving_ instead, and
  // count nothing of the HTTP face until it is set.
  metric_sources.watch_streams = [this] {
    const HttpServer* http = http_serving_.load(std::memory_order_acquire);
    const int64_t sse = http != nullptr ? http->open_event_streams() : 0;
    return std::max<int64_t>(
        0, static_cast<int64_t>(job_service_->open_streams()) - sse);
  };
  if (!options_.http_listen.empty()) {
    metric_sources.sse_streams = [this] {
      const HttpServer* http = http_serving_.load(std::memory_order_acquire);
      return static_cast<int64_t>(http != nullptr ? http->open_event_streams()
                                                  : 0);
    };
    metric_sources.http_connections = [this] {
      const HttpServer* http = http_serving_.load(std::memory_order_acquire);
      return static_cast<int64_t>(http != nullptr ? http->open_connections()
                                                  : 0);
    };
  }
  if (signer.has_value()) {
    metric_sources.webhook_outbox_pending = [store = store_.get()] {
      return store->CountPendingWebhooksBlocking();
    };
  }
  metrics_ = std::make_unique<ServerMetrics>(std::move(metric_sources));
  store_->AddCommitListener(metrics_.get());
  if (sqlite_store_ != nullptr)
    sqlite_store_->SetCommitObserver(metrics_.get());
  if (pg_store_ != nullptr) pg_store_->SetCommitObserver(metrics_.get());
  dispatcher_->SetAssignObserver(metrics_.get());
  JW_RETURN_IF_ERROR(metrics_->LoadBlocking());
  // After the metrics (its observer), before recovery's first write.
  if (signer.has_value()) {
    HttpWebhookSender::Options webhook_options;
    webhook_options.schedule.max_attempts = options_.webhook_max_attempts;
    webhook_options.schedule.backoff.initial_backoff =
        options_.webhook_initial_backoff;
    webhook_options.schedule.backoff.max_backoff = options_.webhook_max_backoff;
    webhook_options.schedule.max_retry_after = options_.webhook_max_backoff;
    webhook_options.connect_timeout = options_.webhook_connect_timeout;
    webhook_options.total_timeout = options_.webhook_timeout;
    webhook_options.max_in_flight = options_.webhook_max_in_flight;
    webhook_options.observer = metrics_.get();
    webhooks_ = std::make_unique<HttpWebhookSender>(
        store_.get(), clock_.get(), random_.get(), *std::move(signer), *policy,
        webhook_options);
    store_->AddCommitListener(webhooks_.get());
    // Pending deliveries of an earlier run go first.
    webhooks_->Start();
    JW_LOG(INFO) << "webhooks: signed with " << options_.webhook_secret_file
                 << ", at most " << options_.webhook_max_attempts
                 << " attempts each";
  }
  JW_RETURN_IF_ERROR(dispatcher_->RecoverBlocking());
  dispatcher_->Start();

  health_service_ = std::make_unique<HealthServiceImpl>(
      ServiceNames(), options_.max_receive_message_bytes);
  AdminServiceImpl::Options admin_options;
  admin_options.version = JobwireVersion();
  admin_options.max_request_bytes = options_.max_receive_message_bytes;
  admin_options.storage_path = db_path;
  if (pg_store_ != nullptr) {
    admin_options.storage_bytes = [pg = pg_store_] {
      return pg->StorageBytesBlocking().value_or(0);
    };
    admin_options.backup_refusal = pg_store_->BackupBlocking("").status();
  }
  admin_options.draining = [this] { return draining(); };
  admin_options.store = store_.get();
  admin_options.dispatcher = dispatcher_.get();
  admin_options.webhooks_enabled = webhooks_ != nullptr;
  if (webhooks_ != nullptr)
    admin_options.webhooks_wake = [w = webhooks_.get()] { w->Wake(); };
  // The services are built below; GetServerInfo runs only once they serve.
  admin_options.workers = [this] { return worker_service_->SessionCount(); };
  admin_options.watchers = [this] {
    return static_cast<int>(job_service_->open_streams());
  };
  admin_service_ = std::make_unique<AdminServiceImpl>(
      std::move(admin_options), clock_.get(), executor_.get());
  JobServiceImpl::Options job_options;
  job_options.watch.heartbeat_interval = options_.heartbeat_interval;
  job_options.bulk_chunk_jobs = options_.bulk_chunk_jobs;
  job_options.max_request_bytes = options_.max_receive_message_bytes;
  job_options.watch.buffer = options_.watch_buffer;
  // Cancel of a RUNNING job goes to its worker; the job ends CANCELLED on the
  // worker's ack or when its lease ends. Pause likewise ends PAUSED.
  Dispatcher* dispatcher = dispatcher_.get();
  job_options.cancel_running = [dispatcher](const std::string& id,
                                            const std::string& reason,
                                            JobCallback done) {
    dispatcher->RequestCancel(id, reason, std::move(done));
  };
  job_options.pause_running = [dispatcher](const std::string& id,
                                           const std::string& /*reason*/,
                                           JobCallback done) {
    dispatcher->RequestPause(id, std::move(done));
  };
  job_options.dispatcher = dispatcher;
  if (webhooks_ != nullptr) {
    job_options.check_webhook = [policy = *policy](const WebhookSpec& w) {
      return policy.CheckUrl(w.url);
    };
  }
  job_service_ = std::make_unique<JobServiceImpl>(
      store_.get(), events_.get(), executor_.get(), clock_.get(), job_options);
  worker_service_ = std::make_unique<WorkerServiceImpl>(
      dispatcher, options_.max_receive_message_bytes);

  // Shutdown hooks run in this order at Stop(). Each returns at once.
  AddShutdownHook(
      "health", [h = health_service_.get()](absl::Time d) { h->Shutdown(d); });
  // HTTP takes no new connections and closes idle ones; its event streams
  // are watches, told `draining` by the jobs hook like any other.
  AddShutdownHook("http", [this](absl::Time) {
    if (http_ != nullptr) http_->StartShutdown();
  });
  // Watches get `draining` now and UNAVAILABLE at the deadline (or when the
  // server shuts down, whichever is first); submissions get UNAVAILABLE.
  AddShutdownHook(
      "jobs", [s = job_service_.get()](absl::Time d) { s->StartShutdown(d); });
  // Workers get `drain`: no new assignments; sessions without jobs end now,
  // the others when their jobs end or at the deadline.
  AddShutdownHook(
      "workers", [s = worker_service_.get()](absl::Time d) { s->Shutdown(d); });
  // Backups in progress end with UNAVAILABLE (they have no `draining`);
  // new ones are refused.
  AddShutdownHook("admin",
                  [s = admin_service_.get()](absl::Time) { s->Shutdown(); });

  return StartServer();
}

absl::Status App::ClaimListeners(const std::string& cwd) {
  std::vector<ListenAddress>& addresses = listen_addresses_;
  for (const std::string& text : options_.listen) {
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen: ", parsed.status().message()));
    }
    ListenAddress address = MakeAbsolute(*std::move(parsed), cwd);
    if (!address.IsLoopback() && options_.auth_token.empty() &&
        options_.auth_token_file.empty() && options_.tls_client_ca.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--listen ", text,
          " is not a loopback address; refusing to serve it without "
          "--auth-token (or JOBWIRE_AUTH_TOKEN) or --tls-client-ca"));
    }
    addresses.push_back(std::move(address));
  }
  if (addresses.empty())
    return absl::InvalidArgumentError("--listen: no address");
  if (!options_.auth_token_file.empty()) {
    if (!options_.auth_token.empty()) {
      return absl::InvalidArgumentError(
          "--auth-token-file: give it or --auth-token, not both");
    }
    JW_ASSIGN_OR_RETURN(tokens_, TokenTable::Load(options_.auth_token_file));
  }
  // Off loopback, plaintext only when asked for by name.
  std::vector<std::string> plaintext;
  for (const ListenAddress& a : addresses) {
    if (!a.IsLoopback() && a.kind == ListenAddress::Kind::kTcp &&
        options_.tls_cert.empty()) {
      plaintext.push_back(a.ToUri());
    }
  }
  for (const std::string& text : options_.http_listen) {
    absl::StatusOr<ListenAddress> http = ParseListenAddress(text);
    if (http.ok() && !http->IsLoopback() &&
        (http->kind != ListenAddress::Kind::kTcp ||
         options_.tls_cert.empty())) {
      plaintext.push_back(absl::StrCat("http://", http->ToUri()));
    }
  }
  for (const std::string& address : plaintext) {
    if (!options_.insecure_allow_plaintext) {
      return absl::InvalidArgumentError(absl::StrCat(
          address,
          " is not a loopback address; refusing to serve it in plaintext: "
          "give --tls-cert and --tls-key, or "
          "--insecure-allow-plaintext"));
    }
    JW_LOG(WARNING) << "serving " << address
                    << " in plaintext (--insecure-allow-plaintext): tokens "
                       "and job data cross the network unencrypted";
  }
  if (!options_.tls_cert.empty() || !options_.tls_key.empty() ||
      !options_.tls_client_ca.empty()) {
    JW_ASSIGN_OR_RETURN(
        tls_, TlsCertificates::Load({options_.tls_cert, options_.tls_key,
                                     options_.tls_client_ca}));
  }

  for (const ListenAddress& a : addresses) {
    if (a.kind != ListenAddress::Kind::kUnixPath) continue;
    JW_ASSIGN_OR_RETURN(auto guard, UnixSocketGuard::Acquire(a.path));
    socket_guards_.push_back(std::move(guard));
  }
  // Every listener is bound and accepted here (connection_acceptor.h), each
  // connection handed to gRPC with the credentials of its kind.
  ConnectionAcceptor::Options acceptor_options;
  const rlim_t open_files = RaiseOpenFileLimit();
  const rlim_t cap = open_files > 2 * kReservedDescriptors
                         ? open_files - kReservedDescriptors
                         : open_files / 2;
  acceptor_options.max_connections =
      static_cast<int>(std::min<rlim_t>(options_.max_connections, cap));
  if (acceptor_options.max_connections < options_.max_connections) {
    JW_LOG(WARNING) << "--max-connections " << options_.max_connections
                    << " is more than the open-file limit (" << open_files
                    << ") allows; serving at most "
                    << acceptor_options.max_connections << " connections";
  }
  acceptor_options.allow_uids = options_.socket_allow_uids;
  acceptor_options.allow_gids = options_.socket_allow_gids;
  // HTTP/2 rapid reset (CVE-2023-44487): gRPC 1.51 does not bound it, so
  // plaintext TCP goes through a relay that counts each client's stream
  // resets. TLS connections reach gRPC directly: the relay would see only
  // ciphertext (README "Security" says what that leaves open).
  const bool any_tcp = std::any_of(addresses.begin(), addresses.end(),
                                   [](const ListenAddress& a) {
                                     return a.kind == ListenAddress::Kind::kTcp;
                                   });
  if (any_tcp && tls_ == nullptr && options_.max_stream_resets > 0) {
    Http2Relay::Options relay_options;
    relay_options.limits.max_resets = options_.max_stream_resets;
    relay_options.limits.window = absl::Seconds(10);
    JW_ASSIGN_OR_RETURN(relay_, Http2Relay::Start(relay_options));
    acceptor_options.relay = relay_.get();
  } else if (any_tcp && options_.max_stream_resets > 0) {
    JW_LOG(INFO) << "TCP serves TLS: HTTP/2 stream resets are not counted "
                    "(--max-stream-resets applies to plaintext TCP only)";
  }
  {
    // Socket files are born owner-only; SetMode sets the final mode once
    // the server serves.
    ScopedUmask umask(0177);
    JW_ASSIGN_OR_RETURN(acceptor_, ConnectionAcceptor::Listen(
                                       addresses, std::move(acceptor_options)));
  }
  return absl::OkStatus();
}

absl::Status App::StartServer() {
  JW_ASSIGN_OR_RETURN(std::string cwd, CurrentDir());
  const std::vector<ListenAddress>& addresses = listen_addresses_;
  LinkServiceDescriptors();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds =
      TokenServerCredentials(options_.auth_token, nullptr, tokens_);
  // TCP gets TLS when configured; Unix sockets stay plaintext (local,
  // guarded by their file mode and peer checks).
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> tcp_handoff;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> unix_handoff;
  std::vector<int> ports(addresses.size(), 0);
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (addresses[i].kind == ListenAddress::Kind::kTcp) {
      ports[i] = acceptor_->port(i);
      if (tcp_handoff != nullptr) continue;
      tcp_handoff = builder.experimental().AddExternalConnectionAcceptor(
          grpc::ServerBuilder::experimental_type::ExternalConnectionType::
              FROM_FD,
          tls_ != nullptr
              ? TokenServerCredentials(options_.auth_token, tls_, tokens_)
              : creds);
    } else if (unix_handoff == nullptr) {
      unix_handoff = builder.experimental().AddExternalConnectionAcceptor(
          grpc::ServerBuilder::experimental_type::ExternalConnectionType::
              FROM_FD,
          creds);
    }
  }
  // Limits on every connection (README "Security").
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // gRPC receives up to twice --max-receive-message-bytes, so that a
  // message somewhat over it reaches the services' own check and gets
  // RESOURCE_EXHAUSTED with reason REQUEST_TOO_LARGE, naming the limit and
  // the flag (unary_methods.h), rather than gRPC's bare message.
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(
      std::numeric_limits<int>::max(),
      int64_t{kGrpcReceiveSlack} * options_.max_receive_message_bytes)));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options_.max_concurrent_streams);
  builder.AddChannelArgument(
      GRPC_ARG_MAX_CONNECTION_IDLE_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options_.idle_timeout)));
  builder.AddChannelArgument(
      GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(
          std::min(options_.idle_timeout, kMaxHandshake))));
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options_.min_ping_interval)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                             options_.max_ping_strikes);
  {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        creators;
    creators.push_back(std::make_unique<CallCounter>(open_calls_));
    creators.push_back(
        std::make_unique<AccessLog>(options_.auth_token, tokens_));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  builder.RegisterService(health_service_.get());
  builder.RegisterService(admin_service_.get());
  builder.RegisterService(job_service_.get());
  builder.RegisterService(worker_service_.get());
  server_ = builder.BuildAndStart();
  if (server_ != nullptr) {
    tcp_handoff_ = std::move(tcp_handoff);
    unix_handoff_ = std::move(unix_handoff);
    acceptor_->Start(tcp_handoff_.get(), unix_handoff_.get());
  }
  if (server_ == nullptr) {
    std::string all;
    for (const ListenAddress& a : addresses)
      absl::StrAppend(&all, " ", a.ToUri());
    return absl::UnavailableError(absl::StrCat(
        "cannot serve on", all, " (address in use or not bindable)"));
  }
  for (size_t i = 0; i < addresses.size(); ++i) {
    ListenAddress bound = addresses[i];
    if (bound.kind == ListenAddress::Kind::kTcp && ports[i] == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot bind ", bound.ToUri()));
    }
    if (bound.kind == ListenAddress::Kind::kTcp) bound.port = ports[i];
    addresses_.push_back(bound.ToUri());
    bound_.push_back(std::move(bound));
  }
  for (const auto& guard : socket_guards_) {
    JW_RETURN_IF_ERROR(
        guard->SetMode(options_.socket_mode, options_.socket_group));
  }
  JW_RETURN_IF_ERROR(StartHttp(cwd));
  std::vector<std::string> listeners = addresses_;
  if (http_ != nullptr) {
    listeners.insert(listeners.end(), http_->addresses().begin(),
                     http_->addresses().end());
  }
  admin_service_->SetListeners(listeners);
  for (const std::string& a : listeners) JW_LOG(INFO) << "listening on " << a;
  if (!options_.auth_token.empty()) {
    JW_LOG(INFO)
        << "bearer-token auth is on for every method but health and reflection";
  }
  if (tokens_ != nullptr) {
    JW_LOG(INFO) << "scoped bearer tokens from " << options_.auth_token_file
                 << " on every method but health and reflection";
  }
  if (tls_ != nullptr) {
    JW_LOG(INFO) << "TLS on the TCP listeners (gRPC and HTTPS) with "
                 << options_.tls_cert
                 << (tls_->requires_client_certificate()
                         ? ", client certificates required (--tls-client-ca)"
                         : "");
  }
  return absl::OkStatus();
}

absl::Status App::StartHttp(const std::string& cwd) {
  if (options_.http_listen.empty()) return absl::OkStatus();
  HttpServer::Options http;
  for (const std::string& text : options_.http_listen) {
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--http: ", parsed.status().message()));
    }
    http.listen.push_back(MakeAbsolute(*std::move(parsed), cwd));
  }
  http.socket_mode = options_.socket_mode;
  http.socket_group = options_.socket_group;
  http.auth_token = options_.auth_token;
  http.auth_tokens = tokens_;  // the same scopes as over gRPC
  http.tls = tls_;  // HTTPS on the TCP listeners, from the same files
  http.cors_origins = options_.http_cors_origins;
  http.max_connections = options_.http_max_connections;
  http.request_timeout = options_.http_request_timeout;
  // The same limit as a gRPC request message, and the same error (413).
  http.max_body_bytes = options_.max_receive_message_bytes;
  http.write_timeout = options_.http_write_timeout;
  http.draining = [this] { return draining(); };
  http.watches = job_service_.get();
  // The JSON routes call the services' unary methods in process, counted
  // with the gRPC calls for the drain (Stop).
  unary_methods_ = std::make_unique<UnaryMethods>();
  job_service_->AddUnaryMethods(unary_methods_.get());
  admin_service_->AddUnaryMethods(unary_methods_.get());
  http.unary = unary_methods_.get();
  http.open_calls = open_calls_;
  http.call_timeout = options_.http_call_timeout;
  // Rendered on the executor (it reads /proc and takes the dispatcher's
  // lock), never on the HTTP thread.
  http.metrics = [metrics = metrics_.get(), executor = executor_.get()](
                     std::function<void(std::string)> done) {
    std::function<void()> render = [metrics, done = std::move(done)] {
      done(metrics->RenderBlocking());
    };
    // The executor stops only after the HTTP face: inline is a last resort.
    if (!executor->Schedule(render)) render();
  };
  JW_ASSIGN_OR_RETURN(
      http_,
      HttpServer::Start(std::move(http),
                        server_->InProcessChannel(grpc::ChannelArguments()),
                        clock_.get()));
  http_serving_.store(http_.get(), std::memory_order_release);
  return absl::OkStatus();
}

void App::ShutDownStalledConnections(absl::Time deadline) {
  absl::Time at = deadline + kStalledWriteGrace;
  {
    absl::MutexLock lock(&mu_);
    bool skipped = false;
    while (!server_shut_down_) {
      const absl::Time now = absl::Now();
      if (skip_grace_ && !skipped) {
        skipped = true;
        at = std::min(at, now + kStalledWriteGrace);
      }
      if (now >= at) break;
      mu_.AwaitWithTimeout(absl::Condition(&server_shut_down_),
                           std::min(at - now, absl::Milliseconds(20)));
    }
    if (server_shut_down_) return;
  }
  const int n = ShutdownServedConnections(bound_);
  JW_LOG(WARNING) << "calls on " << n << " connections had not ended "
                  << kStalledWriteGrace
                  << " after the deadline (peers not reading); shut those "
                     "connections down";
}

void App::RetentionLoop() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stop_retention_),
                               options_.retention_interval)) {
    mu_.Unlock();
    absl::StatusOr<int64_t> deleted = store_->RunRetentionOnceBlocking();
    if (!deleted.ok()) {
      JW_LOG(WARNING) << "retention: " << deleted.status();
    } else if (*deleted > 0) {
      JW_LOG(INFO) << "retention deleted " << *deleted << " finished jobs";
    }
    mu_.Lock();
  }
}

void App::AddShutdownHook(std::string name, ShutdownHook hook) {
  shutdown_hooks_.emplace_back(std::move(name), std::move(hook));
}

void App::SkipGrace() {
  absl::MutexLock lock(&mu_);
  skip_grace_ = true;
  // Cancelling every call makes a waiting grpc::Server::Shutdown return.
  if (server_stopping_) grpc_server_cancel_all_calls(server_->c_server());
}

// Teardown, the reverse of Build():
//  1. draining_ = true and health NOT_SERVING, so probes and watchers learn
//     first;
//  2. each service's shutdown hook, in registration order: tell open streams
//     (draining / drain), take no new work;
//  3. grpc::Server::Shutdown(deadline): stop accepting, wait for open calls
//     until the deadline (or until none is open: then idle connections are
//     closed at once), cancel the rest (SkipGrace cancels at once), shut
//     down connections stuck writing to peers that stopped reading, then
//     Wait();
//  4. release every lease still held (the worker sessions are gone with the
//     server) back to QUEUED as "server shutting down", waiting up to 5 s for
//     those commits, then stop the dispatcher loop;
//  5. drain the executor (queued blocking work still finishes its reactors,
//     so it must outlive the server);
//  6. stop retention and close storage, after everything that uses it, then
//     release the database lock; the dispatcher, the metrics and the bus,
//     the store's commit listeners, are destroyed after it (the metrics
//     after the dispatcher, which reports assignments to them);
//  7. remove the Unix socket and lock files (socket_guards_), last, so no
//     second server can take the path while this one still serves.
void App::Stop() {
  if (stopped_) return;
  stopped_ = true;
  draining_.store(true);
  absl::Time deadline =
      clock_ ? clock_->Now() + options_.shutdown_grace : absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (skip_grace_) deadline = absl::Now();
  }
  if (server_ != nullptr) {
    JW_LOG(INFO) << "draining: health NOT_SERVING, open calls have until "
                 << absl::FormatTime("%H:%M:%E3SZ", deadline,
                                     absl::UTCTimeZone());
  }
  for (auto& [name, hook] : shutdown_hooks_) {
    JW_LOG(DEBUG) << "shutdown hook: " << name;
    hook(deadline);
  }
  if (server_ != nullptr) {
    {
      absl::MutexLock lock(&mu_);
      server_stopping_ = true;
      if (skip_grace_) deadline = absl::Now();
    }
    // Open watches end with UNAVAILABLE shortly before the deadline (or at
    // once on SkipGrace), rather than being cancelled by the server. Then,
    // if calls still have not ended kStalledWriteGrace after the deadline,
    // their connections are shut down under gRPC (served_connections.h).
    std::thread finisher([this, deadline] {
      const absl::Time finish_at =
          deadline -
          std::min(absl::Milliseconds(200), options_.shutdown_grace / 10);
      // Open calls (watches, worker sessions with jobs, backups, unary
      // calls in flight) get the grace period. At least kSettle first, so
      // grpc::Server::Shutdown has begun and calls just accepted are
      // counted.
      const absl::Time settled = absl::Now() + kSettle;
      // SSE streams are watches but not gRPC calls: they count too.
      auto open = [this] {
        return open_calls_->load() > 0 ||
               (http_ != nullptr && http_->open_event_streams() > 0);
      };
      while (absl::Now() < finish_at && (absl::Now() < settled || open())) {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&skip_grace_),
                                 absl::Milliseconds(20))) {
          break;
        }
      }
      if (!open() && absl::Now() < finish_at) {
        // Every call has ended: what is left are idle connections whose
        // clients did not close them after the GOAWAY. They would hold
        // Shutdown until the deadline; close them now.
        JW_LOG(INFO) << "no calls open; closing the idle connections";
        grpc_server_cancel_all_calls(server_->c_server());
      }
      job_service_->FinishShutdown(absl::ZeroDuration());
      ShutDownStalledConnections(deadline);
    });
    // No new connections from here.
    if (acceptor_ != nullptr) acceptor_->Stop();
    server_->Shutdown(absl::ToChronoTime(deadline));
    {
      absl::MutexLock lock(&mu_);
      server_shut_down_ = true;
    }
    finisher.join();
    server_->Wait();
    {
      absl::MutexLock lock(&mu_);
      server_stopping_ = false;
    }
  }
  // Every call has ended, the HTTP face's too: close its connections.
  if (http_ != nullptr) http_->Stop(absl::Seconds(2));
  if (dispatcher_ != nullptr) {
    if (!dispatcher_->ReleaseAllLeasesBlocking(absl::Seconds(5))) {
      JW_LOG(WARNING) << dispatcher_->LeaseCount()
                      << " leases not released at shutdown; those jobs go "
                         "back to QUEUED at the next start";
    }
    dispatcher_->Stop();
  }
  if (executor_ != nullptr) executor_->Shutdown();
  {
    absl::MutexLock lock(&mu_);
    stop_retention_ = true;
  }
  if (retention_thread_.joinable()) retention_thread_.join();
  // Transfers in flight are aborted; their rows stay pending for the next
  // start. Before the store closes, which answers the records in flight.
  if (webhooks_ != nullptr) webhooks_->Stop();
  if (store_ != nullptr) store_->Shutdown();
  http_.reset();
  unary_methods_.reset();
  if (acceptor_ != nullptr) acceptor_->Stop();
  server_.reset();
  tcp_handoff_.reset();
  unix_handoff_.reset();
  acceptor_.reset();
  relay_.reset();
  socket_guards_.clear();
  worker_service_.reset();
  job_service_.reset();
  admin_service_.reset();
  health_service_.reset();
  sqlite_store_ = nullptr;
  pg_store_ = nullptr;
  store_.reset();
  db_lock_.reset();
  dispatcher_.reset();
  webhooks_.reset();
  metrics_.reset();
  random_.reset();
  events_.reset();
  executor_.reset();
}

}  // namespace jobwire
