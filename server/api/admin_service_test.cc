#include "server/api/admin_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Statement.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/api/convert.h"
#include "server/api/worker_service.h"
#include "server/api/worker_test_util.h"
#include "server/core/retry.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/sqlite_job_store.h"

namespace jobwire::test {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using v1::ConnectResponse;

class AdminServiceTest : public ::testing::Test {
 protected:
  AdminServiceTest() : executor_(1) {
    char tmpl[] = "/tmp/jobwire-admin-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    db_path_ = tmpl;
    std::ofstream(db_path_) << std::string(1000, 'x');
    std::ofstream(db_path_ + "-wal") << std::string(24, 'w');
    AdminServiceImpl::Options options;
    options.version = "1.2.3";
    options.storage_path = db_path_;
    options.draining = [this] { return draining_; };
    service_ = std::make_unique<AdminServiceImpl>(options, &clock_, &executor_);
  }
  ~AdminServiceTest() override {
    std::remove(db_path_.c_str());
    std::remove((db_path_ + "-wal").c_str());
  }

  FakeClock clock_;
  Executor executor_;
  std::string db_path_;
  bool draining_ = false;
  std::unique_ptr<AdminServiceImpl> service_;
};

TEST_F(AdminServiceTest, ServerInfoReportsVersionUptimeListenersAndStorage) {
  service_->SetListeners({"unix:/tmp/j.sock", "127.0.0.1:4000"});
  clock_.Advance(absl::Seconds(90) + absl::Milliseconds(250));
  jobwire::v1::ServerInfo info;
  ASSERT_TRUE(service_->GetServerInfoBlocking(&info).ok());
  EXPECT_EQ(info.version(), "1.2.3");
  EXPECT_EQ(info.uptime().seconds(), 90);
  EXPECT_EQ(info.uptime().nanos(), 250000000);
  ASSERT_EQ(info.listeners_size(), 2);
  EXPECT_EQ(info.listeners(1), "127.0.0.1:4000");
  EXPECT_EQ(info.storage_path(), db_path_);
  EXPECT_EQ(info.storage_bytes(), 1024);
  EXPECT_FALSE(info.draining());
}

TEST_F(AdminServiceTest, ServerInfoReportsWorkersAndWatchersFromTheServices) {
  AdminServiceImpl::Options options;
  options.workers = [] { return 3; };
  options.watchers = [] { return 7; };
  AdminServiceImpl service(options, &clock_, &executor_);
  jobwire::v1::ServerInfo info;
  ASSERT_TRUE(service.GetServerInfoBlocking(&info).ok());
  EXPECT_EQ(info.workers(), 3);
  EXPECT_EQ(info.watchers(), 7);
  EXPECT_TRUE(info.job_counts().empty());
}

TEST_F(AdminServiceTest, ServerInfoReportsDraining) {
  draining_ = true;
  jobwire::v1::ServerInfo info;
  ASSERT_TRUE(service_->GetServerInfoBlocking(&info).ok());
  EXPECT_TRUE(info.draining());
}

TEST_F(AdminServiceTest,
       WithoutADispatcherTheControlsAndBackupAreUnimplemented) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service_.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = jobwire::v1::AdminService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  grpc::ClientContext info_context;
  jobwire::v1::ServerInfo info;
  ASSERT_TRUE(stub->GetServerInfo(&info_context, {}, &info).ok());
  EXPECT_EQ(info.version(), "1.2.3");
  EXPECT_FALSE(info.dispatch().paused());

  grpc::ClientContext queues_context;
  jobwire::v1::ListQueuesResponse queues;
  grpc::Status s = stub->ListQueues(&queues_context, {}, &queues);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);

  grpc::ClientContext backup_context;
  auto reader = stub->Backup(&backup_context, {});
  jobwire::v1::BackupChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
  server->Shutdown();
}

// The controls over a real gRPC server on a temp Unix socket, with the real
// SqliteJobStore (temp file), Dispatcher and WorkerService and a FakeClock.
class AdminControlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jobwire_admin_test_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    Open();
  }

  void TearDown() override {
    Close();
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }

  // Store, dispatcher (recovered from the file), services and server.
  void Open() {
    SqliteJobStore::Options store_options;
    store_options.path = dir_ + "/jobs.db";
    store_options.clock = &clock_;
    auto store = SqliteJobStore::Open(store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    dispatcher_ = std::make_unique<Dispatcher>(store_.get(), &clock_, &random_,
                                               DispatcherOptions{});
    // The dispatcher hears each commit before the recorder, so a test that
    // waited for an event sees the dispatcher's view of it.
    store_->AddCommitListener(dispatcher_.get());
    store_->AddCommitListener(&events_);
    ASSERT_TRUE(dispatcher_->RecoverBlocking().ok());
    dispatcher_->Start();
    workers_ = std::make_unique<WorkerServiceImpl>(dispatcher_.get());
    AdminServiceImpl::Options options;
    options.store = store_.get();
    options.dispatcher = dispatcher_.get();
    options.storage_path = store_->path();
    admin_ = std::make_unique<AdminServiceImpl>(options, &clock_, &executor_);
    const std::string address = absl::StrCat("unix:", dir_, "/admin.sock");
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(workers_.get());
    builder.RegisterService(admin_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub_ = jobwire::v1::AdminService::NewStub(channel_);
  }

  // A clean stop: leases go back to QUEUED.
  void Close() {
    workers_->Shutdown(clock_.Now());
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    dispatcher_->ReleaseAllLeasesBlocking(absl::Seconds(5));
    dispatcher_->Stop();
    store_->Shutdown();
    stub_.reset();
    channel_.reset();
    server_.reset();
    admin_.reset();
    workers_.reset();
    dispatcher_.reset();
    store_.reset();
  }

  std::string Submit(const std::string& queue) {
    Job job;
    job.queue = queue;
    return SubmitBlocking(*store_, std::move(job));
  }

  std::unique_ptr<TestWorker> Connect(const std::string& queue) {
    auto w = std::make_unique<TestWorker>(channel_, "w-" + queue,
                                          std::vector<std::string>{queue}, 1);
    auto welcome = w->Next();
    EXPECT_TRUE(welcome.has_value() && welcome->has_welcome());
    return w;
  }

  std::vector<std::string> GateTypes(const std::string& id) {
    absl::StatusOr<Job> job = store_->GetJobBlocking(id);
    EXPECT_TRUE(job.ok()) << job.status();
    std::vector<std::string> types;
    if (!job.ok()) return types;
    for (const ExplainGate& g : dispatcher_->Explain(*job)) {
      types.push_back(g.type);
    }
    return types;
  }

  grpc::Status PauseDispatch(const std::string& reason) {
    grpc::ClientContext context;
    jobwire::v1::PauseDispatchRequest request;
    request.set_reason(reason);
    jobwire::v1::DispatchState state;
    return stub_->PauseDispatch(&context, request, &state);
  }

  jobwire::v1::ServerInfo Info() {
    grpc::ClientContext context;
    jobwire::v1::ServerInfo info;
    EXPECT_TRUE(stub_->GetServerInfo(&context, {}, &info).ok());
    return info;
  }

  absl::StatusOr<jobwire::v1::Queue> FindQueue(const std::string& name) {
    grpc::ClientContext context;
    jobwire::v1::ListQueuesResponse response;
    grpc::Status s = stub_->ListQueues(&context, {}, &response);
    if (!s.ok()) return absl::InternalError(s.error_message());
    for (const auto& q : response.queues()) {
      if (q.name() == name) return q;
    }
    return absl::NotFoundError(name);
  }

  FakeClock clock_;
  FixedRandomSource random_{0.5};
  Executor executor_{2};
  std::string dir_;
  EventRecorder events_;
  std::unique_ptr<SqliteJobStore> store_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<WorkerServiceImpl> workers_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<jobwire::v1::AdminService::Stub> stub_;
};

TEST_F(AdminControlsTest, BackupStreamsAConsistentCopyWhileWritesGoOn) {
  std::vector<std::string> ids;
  for (int i = 0; i < 2000; ++i) {
    Job job;
    job.queue = "backup";
    job.args_json =
        absl::StrCat("{\"n\":", i, ",\"pad\":\"", std::string(400, 'p'), "\"}");
    ids.push_back(SubmitBlocking(*store_, std::move(job)));
  }
  // Writers go on during the backup; the copy has at least what came before.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) Submit("later");
  });
  grpc::ClientContext context;
  auto reader = stub_->Backup(&context, {});
  jobwire::v1::BackupChunk chunk;
  std::string copy;
  int64_t total = -1;
  int chunks = 0;
  while (reader->Read(&chunk)) {
    EXPECT_EQ(chunk.offset(), static_cast<int64_t>(copy.size()));
    if (total < 0) total = chunk.total_bytes();
    EXPECT_EQ(chunk.total_bytes(), total);
    copy += chunk.data();
    ++chunks;
  }
  grpc::Status status = reader->Finish();
  stop = true;
  writer.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(static_cast<int64_t>(copy.size()), total);
  EXPECT_GE(chunks, 2);  // > 1 MiB

  const std::string path = dir_ + "/copy.db";
  std::ofstream(path, std::ios::binary) << copy;
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
  EXPECT_EQ(db.execAndGet("SELECT COUNT(*) FROM jobs WHERE queue = 'backup'")
                .getInt(),
            2000);
  SQLite::Statement last(db, "SELECT id FROM jobs WHERE id = ?");
  last.bind(1, ids.back());
  ASSERT_TRUE(last.executeStep());
  // No temporary file is left beside the database.
  int leftovers = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.path().filename().string().find(".backup-") != std::string::npos)
      ++leftovers;
  }
  EXPECT_EQ(leftovers, 0);
}

// Fills the store with `mib` MiB of job args, so a Backup takes many chunks.
void FillStore(JobStore& store, int mib) {
  for (int i = 0; i < mib * 4; ++i) {
    Job job;
    job.queue = "big";
    job.args_json =
        absl::StrCat("{\"pad\":\"", std::string(256 << 10, 'p'), "\"}");
    SubmitBlocking(store, std::move(job));
  }
}

// The `.backup-` files beside the database in `dir`.
int BackupFiles(const std::string& dir) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename().string().find(".backup-") != std::string::npos)
      ++n;
  }
  return n;
}

// Waits (real time, at most 10 s) until no Backup stream is open.
bool AwaitNoBackups(AdminServiceImpl& admin) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (admin.open_backups() > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  return admin.open_backups() == 0;
}

TEST_F(AdminControlsTest, BackupInProgressEndsAtShutdownWithRetryInfo) {
  FillStore(*store_, 24);
  grpc::ClientContext context;
  auto reader = stub_->Backup(&context, {});
  jobwire::v1::BackupChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));
  ASSERT_GT(chunk.total_bytes(), 20 << 20);

  admin_->Shutdown();

  // The chunks already under way may still arrive; then the end.
  int64_t received = static_cast<int64_t>(chunk.data().size());
  while (reader->Read(&chunk)) received += chunk.data().size();
  const grpc::Status status = reader->Finish();
  EXPECT_LT(received, chunk.total_bytes());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(1));
  // The file went before the stream ended.
  EXPECT_EQ(BackupFiles(dir_), 0);
  EXPECT_TRUE(AwaitNoBackups(*admin_));
}

TEST_F(AdminControlsTest, BackupAfterShutdownIsRefusedWithRetryInfo) {
  admin_->Shutdown();

  grpc::ClientContext context;
  auto reader = stub_->Backup(&context, {});
  jobwire::v1::BackupChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  const grpc::Status status = reader->Finish();

  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(1));
  EXPECT_EQ(admin_->open_backups(), 0u);
}

TEST_F(AdminControlsTest, BackupCancelledByTheClientEndsAndRemovesItsFile) {
  FillStore(*store_, 8);
  grpc::ClientContext context;
  auto reader = stub_->Backup(&context, {});
  jobwire::v1::BackupChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk));

  context.TryCancel();

  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(AwaitNoBackups(*admin_));
  EXPECT_EQ(BackupFiles(dir_), 0);
}

TEST_F(AdminControlsTest, PausedDispatchAssignsNothingUntilResumed) {
  auto w = Connect("default");
  ASSERT_TRUE(PauseDispatch("maintenance").ok());
  const std::string id = Submit("default");
  EXPECT_FALSE(
      w->NextOf(ConnectResponse::kAssign, absl::Milliseconds(300)).has_value());
  jobwire::v1::ServerInfo info = Info();
  EXPECT_TRUE(info.dispatch().paused());
  EXPECT_EQ(info.dispatch().reason(), "maintenance");
  EXPECT_THAT(GateTypes(id), Contains("DISPATCH_PAUSED"));

  grpc::ClientContext context;
  jobwire::v1::DispatchState state;
  ASSERT_TRUE(stub_->ResumeDispatch(&context, {}, &state).ok());
  EXPECT_FALSE(state.paused());
  auto assign = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->assign().job().id(), id);
  EXPECT_FALSE(Info().dispatch().paused());
}

TEST_F(AdminControlsTest, DispatchPauseSurvivesARestart) {
  ASSERT_TRUE(PauseDispatch("upgrade").ok());
  Close();
  Open();
  jobwire::v1::ServerInfo info = Info();
  EXPECT_TRUE(info.dispatch().paused());
  EXPECT_EQ(info.dispatch().reason(), "upgrade");
  auto w = Connect("default");
  Submit("default");
  EXPECT_FALSE(
      w->NextOf(ConnectResponse::kAssign, absl::Milliseconds(300)).has_value());
}

TEST_F(AdminControlsTest, TimedQueuePauseResumesAtItsTimeOnTheInjectedClock) {
  auto w = Connect("mail");
  grpc::ClientContext context;
  jobwire::v1::PauseQueueRequest request;
  request.set_name("mail");
  TimeToProto(clock_.Now() + absl::Minutes(10), request.mutable_resume_time());
  jobwire::v1::Queue queue;
  ASSERT_TRUE(stub_->PauseQueue(&context, request, &queue).ok());
  EXPECT_TRUE(queue.paused());
  EXPECT_EQ(TimeFromProto(queue.resume_time()),
            clock_.Now() + absl::Minutes(10));
  EXPECT_EQ(queue.workers(), 1);

  const std::string id = Submit("mail");
  EXPECT_FALSE(
      w->NextOf(ConnectResponse::kAssign, absl::Milliseconds(300)).has_value());
  EXPECT_THAT(GateTypes(id), Contains("QUEUE_PAUSED"));

  clock_.Advance(absl::Minutes(10));
  dispatcher_->Wake();
  auto assign = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->assign().job().id(), id);
  absl::StatusOr<jobwire::v1::Queue> listed = FindQueue("mail");
  ASSERT_TRUE(listed.ok());
  EXPECT_FALSE(listed->paused());
  EXPECT_FALSE(listed->has_resume_time());
}

TEST_F(AdminControlsTest, QueuePauseSurvivesARestartAndResumeQueueLiftsIt) {
  grpc::ClientContext pause_context;
  jobwire::v1::PauseQueueRequest pause;
  pause.set_name("mail");
  jobwire::v1::Queue queue;
  ASSERT_TRUE(stub_->PauseQueue(&pause_context, pause, &queue).ok());
  Close();
  Open();
  absl::StatusOr<jobwire::v1::Queue> listed = FindQueue("mail");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->paused());
  auto w = Connect("mail");
  const std::string id = Submit("mail");
  EXPECT_FALSE(
      w->NextOf(ConnectResponse::kAssign, absl::Milliseconds(300)).has_value());

  grpc::ClientContext resume_context;
  jobwire::v1::ResumeQueueRequest resume;
  resume.set_name("mail");
  ASSERT_TRUE(stub_->ResumeQueue(&resume_context, resume, &queue).ok());
  EXPECT_FALSE(queue.paused());
  auto assign = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->assign().job().id(), id);
}

TEST_F(AdminControlsTest, ResumeQueueOfAQueueNeverSeenIsNotFound) {
  grpc::ClientContext context;
  jobwire::v1::ResumeQueueRequest request;
  request.set_name("nowhere");
  jobwire::v1::Queue queue;
  EXPECT_EQ(stub_->ResumeQueue(&context, request, &queue).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(AdminControlsTest, UpdateQueueWritesTheMaskedFieldsDurably) {
  Submit("mail");
  grpc::ClientContext context;
  jobwire::v1::UpdateQueueRequest request;
  request.mutable_queue()->set_name("mail");
  request.mutable_queue()->set_concurrency_limit(4);
  request.mutable_queue()->set_weight(7);
  request.mutable_update_mask()->add_paths("weight");
  jobwire::v1::Queue queue;
  ASSERT_TRUE(stub_->UpdateQueue(&context, request, &queue).ok());
  EXPECT_EQ(queue.weight(), 7);
  EXPECT_EQ(queue.concurrency_limit(), 0);  // not in the mask
  EXPECT_EQ(queue.counts().at("QUEUED"), 1);
  Close();
  Open();
  absl::StatusOr<jobwire::v1::Queue> listed = FindQueue("mail");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->weight(), 7);
  EXPECT_EQ(listed->counts().at("QUEUED"), 1);
}

TEST_F(AdminControlsTest, UpdateQueueRejectsBadInputNamingTheField) {
  struct Case {
    std::string name;
    std::vector<std::string> paths;
    int32_t limit;
    int32_t weight;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"mail", {}, 1, 1, "update_mask"},
      {"mail", {"paused"}, 1, 1, "update_mask.paths[0]"},
      {"mail", {"weight", "name"}, 1, 1, "update_mask.paths[1]"},
      {"mail", {"concurrency_limit"}, -1, 1, "queue.concurrency_limit"},
      {"mail", {"weight"}, 1, 0, "queue.weight"},
      {"mail", {"weight"}, 1, 1001, "queue.weight"},
      {"Bad Name", {"weight"}, 1, 1, "queue.name"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    grpc::ClientContext context;
    jobwire::v1::UpdateQueueRequest request;
    request.mutable_queue()->set_name(c.name);
    request.mutable_queue()->set_concurrency_limit(c.limit);
    request.mutable_queue()->set_weight(c.weight);
    for (const std::string& p : c.paths) {
      request.mutable_update_mask()->add_paths(p);
    }
    jobwire::v1::Queue queue;
    grpc::Status s = stub_->UpdateQueue(&context, request, &queue);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    google::rpc::Status details;
    ASSERT_TRUE(details.ParseFromString(s.error_details()));
    std::vector<std::string> fields;
    for (const auto& any : details.details()) {
      google::rpc::BadRequest bad;
      if (!any.UnpackTo(&bad)) continue;
      for (const auto& v : bad.field_violations()) fields.push_back(v.field());
    }
    EXPECT_THAT(fields, ElementsAre(c.field));
  }
}

TEST_F(AdminControlsTest, PauseQueueRejectsAPastResumeTime) {
  grpc::ClientContext context;
  jobwire::v1::PauseQueueRequest request;
  request.set_name("mail");
  TimeToProto(clock_.Now() - absl::Seconds(1), request.mutable_resume_time());
  jobwire::v1::Queue queue;
  EXPECT_EQ(stub_->PauseQueue(&context, request, &queue).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminControlsTest, ListQueuesCountsJobsWorkersAndFinishedJobs) {
  auto w = Connect("mail");
  Submit("mail");
  Submit("mail");
  Submit("other");
  auto assign = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  w->Complete(assign->assign().job().id(), 1);
  ASSERT_TRUE(
      events_.WaitForState(assign->assign().job().id(), JobState::kSucceeded));
  absl::StatusOr<jobwire::v1::Queue> mail = FindQueue("mail");
  ASSERT_TRUE(mail.ok());
  EXPECT_EQ(mail->workers(), 1);
  EXPECT_EQ(mail->counts().at("SUCCEEDED"), 1);
  EXPECT_EQ(mail->finished_last_minute(), 1);
  EXPECT_EQ(mail->weight(), 1);
  absl::StatusOr<jobwire::v1::Queue> other = FindQueue("other");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->workers(), 0);
  EXPECT_EQ(other->counts().at("QUEUED"), 1);
}

TEST_F(AdminControlsTest, ListQueuesSumsTheFreeSlotsOfTheWorkersServingIt) {
  // Worker a serves both queues with 3 slots; b serves mail with 2.
  TestWorker a(channel_, "a", {"mail", "other"}, 3);
  TestWorker b(channel_, "b", {"mail"}, 2);
  for (TestWorker* w : {&a, &b}) {
    auto welcome = w->Next();
    ASSERT_TRUE(welcome.has_value() && welcome->has_welcome());
  }
  absl::StatusOr<jobwire::v1::Queue> mail = FindQueue("mail");
  ASSERT_TRUE(mail.ok());
  EXPECT_EQ(mail->workers(), 2);
  EXPECT_EQ(mail->free_slots(), 5);

  // A job of `other` can only go to a: one of its slots is taken, in both
  // queues it serves.
  Submit("other");
  ASSERT_TRUE(a.NextOf(ConnectResponse::kAssign).has_value());
  mail = FindQueue("mail");
  absl::StatusOr<jobwire::v1::Queue> other = FindQueue("other");
  ASSERT_TRUE(mail.ok() && other.ok());
  EXPECT_EQ(mail->free_slots(), 4);
  EXPECT_EQ(other->workers(), 1);
  EXPECT_EQ(other->free_slots(), 2);
  absl::StatusOr<jobwire::v1::Queue> idle = FindQueue("idle");
  EXPECT_FALSE(idle.ok());  // no worker, no job, no settings: not listed
}

TEST_F(AdminServiceTest, WebhookDeliveriesRefuseBadInputAndAServerWithout) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service_.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = jobwire::v1::AdminService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    jobwire::v1::RedeliverWebhookRequest request;
    jobwire::v1::WebhookDeliveryRecord record;
    grpc::Status s = stub->RedeliverWebhook(&context, request, &record);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    jobwire::v1::RedeliverWebhookRequest request;
    request.set_id(7);
    jobwire::v1::WebhookDeliveryRecord record;
    grpc::Status s = stub->RedeliverWebhook(&context, request, &record);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(s.error_message().find("--webhook-secret-file"),
              std::string::npos);
  }
  jobwire::v1::ListWebhookDeliveriesResponse page;
  EXPECT_TRUE(absl::IsUnimplemented(
      service_->ListWebhookDeliveriesBlocking({}, &page)));
  server->Shutdown();
}

}  // namespace
}  // namespace jobwire::test
