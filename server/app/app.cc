#include "server/app/app.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/transport/listen_address.h"
#include "server/transport/token_auth.h"

#ifndef JOBWIRE_VERSION
#define JOBWIRE_VERSION "0.0.0-dev"
#endif

namespace jobwire {
namespace {

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

absl::StatusOr<std::string> CurrentDir() {
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof(buf)) == nullptr) {
    return absl::InternalError(absl::StrCat("getcwd: ", std::strerror(errno)));
  }
  return std::string(buf);
}

}  // namespace

const char* JobwireVersion() { return JOBWIRE_VERSION; }

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

// Composition, in dependency order. Plug-in points for the parts still to
// come are marked "Plug-in"; each owns its component here and hands
// non-owning pointers to the next.
absl::Status App::Build() {
  clock_ = std::make_unique<SystemClock>();
  executor_ = std::make_unique<Executor>(options_.executor_threads);

  JW_ASSIGN_OR_RETURN(std::string cwd, CurrentDir());
  std::string db_path = options_.db_path;
  if (db_path.empty() || db_path[0] != '/')
    db_path = absl::StrCat(cwd, "/", db_path);
  JW_RETURN_IF_ERROR(CreateParentDirectories(db_path));
  // Plug-in (storage, #3): open the store here; a bad file fails the start.
  //   JW_ASSIGN_OR_RETURN(store_, SqliteJobStore::Open(db_path, ...));
  // Plug-in (events, #4):
  //   events_ = std::make_unique<EventBus>(store_.get(), ...);
  // Plug-in (scheduling, #5): the dispatcher, fed by events_, using store_.

  health_service_ = std::make_unique<HealthServiceImpl>(ServiceNames());
  AdminServiceImpl::Options admin_options;
  admin_options.version = JobwireVersion();
  admin_options.storage_path = db_path;
  admin_options.draining = [this] { return draining(); };
  admin_service_ = std::make_unique<AdminServiceImpl>(
      std::move(admin_options), clock_.get(), executor_.get());
  // Plug-in (events + JobService, #4): replace with JobServiceImpl, built
  // from store_.get(), events_.get(), executor_.get() and clock_.get(), and
  // register its Shutdown below.
  job_service_ = std::make_unique<jobwire::v1::JobService::CallbackService>();
  // Plug-in (workers, #5): replace with WorkerServiceImpl, same pattern.
  worker_service_ =
      std::make_unique<jobwire::v1::WorkerService::CallbackService>();

  // Shutdown hooks run in this order at Stop(); health goes first, so
  // probes see NOT_SERVING before anything else drains. Later services add
  // theirs after it, for example:
  //   AddShutdownHook("jobs", [s](absl::Time d) { s->Shutdown(d); });
  AddShutdownHook(
      "health", [h = health_service_.get()](absl::Time d) { h->Shutdown(d); });

  return StartServer();
}

absl::Status App::StartServer() {
  JW_ASSIGN_OR_RETURN(std::string cwd, CurrentDir());
  std::vector<ListenAddress> addresses;
  for (const std::string& text : options_.listen) {
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen: ", parsed.status().message()));
    }
    ListenAddress address = MakeAbsolute(*std::move(parsed), cwd);
    if (!address.IsLoopback() && options_.auth_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--listen ", text,
          " is not a loopback address; refusing to serve it without "
          "--auth-token (or JOBWIRE_AUTH_TOKEN)"));
    }
    addresses.push_back(std::move(address));
  }
  if (addresses.empty())
    return absl::InvalidArgumentError("--listen: no address");

  for (const ListenAddress& a : addresses) {
    if (a.kind != ListenAddress::Kind::kUnixPath) continue;
    JW_ASSIGN_OR_RETURN(auto guard, UnixSocketGuard::Acquire(a.path));
    socket_guards_.push_back(std::move(guard));
  }

  LinkServiceDescriptors();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds =
      TokenServerCredentials(options_.auth_token);
  std::vector<int> ports(addresses.size(), 0);
  for (size_t i = 0; i < addresses.size(); ++i) {
    builder.AddListeningPort(addresses[i].ToUri(), creds, &ports[i]);
  }
  builder.RegisterService(health_service_.get());
  builder.RegisterService(admin_service_.get());
  builder.RegisterService(job_service_.get());
  builder.RegisterService(worker_service_.get());
  {
    // Socket files are born owner-only; SetMode below sets the final mode.
    ScopedUmask umask(0177);
    server_ = builder.BuildAndStart();
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
    if (ports[i] == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot bind ", bound.ToUri()));
    }
    if (bound.kind == ListenAddress::Kind::kTcp) bound.port = ports[i];
    addresses_.push_back(bound.ToUri());
  }
  for (const auto& guard : socket_guards_) {
    JW_RETURN_IF_ERROR(guard->SetMode(options_.socket_mode));
  }
  admin_service_->SetListeners(addresses_);
  for (const std::string& a : addresses_) JW_LOG(INFO) << "listening on " << a;
  if (!options_.auth_token.empty()) {
    JW_LOG(INFO)
        << "bearer-token auth is on for every method but health and reflection";
  }
  return absl::OkStatus();
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
//     until the deadline, cancel the rest (SkipGrace cancels at once), then
//     Wait();
//  4. drain the executor (queued blocking work still finishes its reactors,
//     so it must outlive the server);
//  5. close storage (plug-in: store_.reset()), after everything that uses it;
//  6. remove the Unix socket and lock files (socket_guards_), last, so no
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
    server_->Shutdown(absl::ToChronoTime(deadline));
    server_->Wait();
    {
      absl::MutexLock lock(&mu_);
      server_stopping_ = false;
    }
  }
  if (executor_ != nullptr) executor_->Shutdown();
  // Plug-in (storage): store_.reset();
  server_.reset();
  socket_guards_.clear();
  worker_service_.reset();
  job_service_.reset();
  admin_service_.reset();
  health_service_.reset();
  executor_.reset();
}

}  // namespace jobwire
