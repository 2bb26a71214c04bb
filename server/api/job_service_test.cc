// JobService over a real gRPC server on 127.0.0.1:0 with the real SQLite
// store in a temporary file. Time comes from a FakeClock; heartbeats and
// stall checks are driven by calling Tick().
#include "server/api/job_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "server/common/clock.h"
#include "server/common/errors.h"
#include "server/common/executor.h"
#include "server/core/retry.h"
#include "server/events/event_bus.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/sqlite_job_store.h"

namespace jobwire::test {
namespace {

using v1::WatchJobResponse;
using v1::WatchJobsResponse;

struct Fixture {
  explicit Fixture(JobServiceImpl::Options options,
                   SqliteJobStore::Retention retention = {},
                   bool with_dispatcher = false) {
    SqliteJobStore::Options so;
    so.path = ":memory:";  // a private temporary file
    so.synchronous = SqliteJobStore::Synchronous::kOff;
    so.clock = &clock;
    so.retention = retention;
    auto opened = SqliteJobStore::Open(so);
    EXPECT_TRUE(opened.ok()) << opened.status();
    store = *std::move(opened);
    store->AddCommitListener(&bus);
    options.tick_period = absl::ZeroDuration();
    if (with_dispatcher) {
      // Not started: ExplainJob only reads its gates.
      dispatcher = std::make_unique<Dispatcher>(store.get(), &clock, &random,
                                                DispatcherOptions());
      store->AddCommitListener(dispatcher.get());
      options.dispatcher = dispatcher.get();
    }
    service = std::make_unique<JobServiceImpl>(store.get(), &bus, &executor,
                                               &clock, options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                  grpc::InsecureChannelCredentials());
    stub = v1::JobService::NewStub(channel);
  }
  ~Fixture() {
    service->Shutdown(clock.Now());
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    executor.Shutdown();
    store->Shutdown();
  }

  v1::Job Submit(const std::string& kind, const std::string& request_id = "",
                 const std::string& queue = "") {
    v1::SubmitJobRequest req;
    req.mutable_job()->set_kind(kind);
    req.mutable_job()->set_queue(queue);
    req.set_request_id(request_id);
    v1::SubmitJobResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub->SubmitJob(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.job();
  }

  // Appends a log event to job `id` through the store, as a worker would.
  void Log(const std::string& id, const std::string& line) {
    absl::Notification done;
    store->Mutate(
        id,
        [line](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
          JobChange change;
          change.job = current;
          JobEvent e;
          e.type = EventType::kLog;
          e.log_line = line;
          change.events.push_back(e);
          return change;
        },
        [&done](absl::StatusOr<Job> job) {
          EXPECT_TRUE(job.ok()) << job.status();
          done.Notify();
        });
    done.WaitForNotification();
  }

  grpc::Status Cancel(const std::string& id, v1::Job* out = nullptr) {
    v1::CancelJobRequest req;
    req.set_id(id);
    v1::Job job;
    grpc::ClientContext ctx;
    grpc::Status s = stub->CancelJob(&ctx, req, out ? out : &job);
    return s;
  }

  // Waits until every stream's writes have completed (the peer took them).
  void WaitForWritesDone() {
    for (int i = 0; i < 10000 && service->buffered_messages() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(service->buffered_messages(), 0u);
  }

  int64_t CountJobs() {
    v1::ListJobsRequest req;
    req.set_page_size(1000);
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub->ListJobs(&ctx, req, &resp).ok());
    return resp.jobs_size();
  }

  FakeClock clock;
  EventBus bus;
  Executor executor{4};
  FixedRandomSource random{0.5};
  std::unique_ptr<Dispatcher> dispatcher;  // outlives store's commits
  std::unique_ptr<SqliteJobStore> store;
  std::unique_ptr<JobServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::JobService::Stub> stub;
};

JobServiceImpl::Options DefaultOptions() { return JobServiceImpl::Options(); }

google::rpc::Status Details(const grpc::Status& s) {
  google::rpc::Status rich;
  rich.ParseFromString(s.error_details());
  return rich;
}

std::vector<std::string> ViolationFields(const grpc::Status& s) {
  std::vector<std::string> fields;
  const google::rpc::Status rich = Details(s);
  for (const auto& any : rich.details()) {
    google::rpc::BadRequest bad;
    if (any.UnpackTo(&bad)) {
      for (const auto& v : bad.field_violations()) fields.push_back(v.field());
    }
  }
  return fields;
}

TEST(JobServiceTest, SubmitWithSameRequestIdReturnsTheFirstJob) {
  Fixture f(DefaultOptions());
  v1::Job first = f.Submit("resize", "req-1");
  v1::SubmitJobRequest req;
  req.mutable_job()->set_kind("resize");
  req.set_request_id("req-1");
  v1::SubmitJobResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(f.stub->SubmitJob(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.job().id(), first.id());
  EXPECT_FALSE(resp.created());
  EXPECT_EQ(f.CountJobs(), 1);
}

// The byte budget counts the serialized jobs, not their JSON text: args of
// small numbers take ~5x more bytes as a Struct than as JSON.
TEST(JobServiceTest, ListJobsPagesEndAtTheSerializedByteBudget) {
  JobServiceImpl::Options options;
  options.list_max_bytes = 10000;
  Fixture f(options);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    v1::SubmitJobRequest req;
    req.mutable_job()->set_kind("numbers");
    auto* list = (*req.mutable_job()->mutable_args()->mutable_fields())["n"]
                     .mutable_list_value();
    for (int k = 0; k < 500; ++k) list->add_values()->set_number_value(k % 10);
    v1::SubmitJobResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(f.stub->SubmitJob(&ctx, req, &resp).ok());
    ids.push_back(resp.job().id());
  }
  v1::ListJobsRequest req;
  std::vector<std::string> listed;
  while (true) {
    grpc::ClientContext ctx;
    v1::ListJobsResponse resp;
    ASSERT_TRUE(f.stub->ListJobs(&ctx, req, &resp).ok());
    const std::string token = resp.next_page_token();
    resp.clear_next_page_token();
    // ~5.5 KB a job: one a page fits in 10,000 bytes, two do not.
    EXPECT_LE(resp.ByteSizeLong(), 10000u);
    EXPECT_EQ(resp.jobs_size(), 1);
    for (const v1::Job& job : resp.jobs()) listed.push_back(job.id());
    if (token.empty()) break;
    req.set_page_token(token);
  }
  EXPECT_EQ(listed, ids);
}

// SubmitJob builds half of its answer from the request and half from the
// store's row; together they must be exactly what GetJob reads back.
TEST(JobServiceTest, SubmitAnswersWithTheJobAsGetJobReadsIt) {
  JobServiceImpl::Options options;
  options.check_webhook = [](const WebhookSpec&) { return absl::OkStatus(); };
  Fixture f(options);
  v1::SubmitJobRequest req;
  v1::Job* in = req.mutable_job();
  in->set_queue("media");
  in->set_kind("resize");
  auto& fields = *in->mutable_args()->mutable_fields();
  fields["width"].set_number_value(640);
  fields["src"].set_string_value("s3://b/k.png");
  fields["tags"].mutable_list_value()->add_values()->set_bool_value(true);
  in->set_payload("raw bytes");
  in->set_priority(7);
  (*in->mutable_labels())["tenant"] = "acme";
  (*in->mutable_labels())["tier"] = "gold";
  in->mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(f.clock.Now()) +
                                           60);
  in->mutable_retry_policy()->mutable_initial_backoff()->set_seconds(2);
  in->mutable_retry_policy()->set_multiplier(3);
  in->mutable_attempt_timeout()->set_seconds(30);
  in->mutable_webhook()->set_url("http://127.0.0.1:9/done");
  in->mutable_webhook()->add_events(v1::Webhook::EVENT_FAILED);
  req.set_request_id("req-all-fields");
  v1::SubmitJobResponse resp;
  {
    grpc::ClientContext ctx;
    grpc::Status s = f.stub->SubmitJob(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_TRUE(resp.created());
  EXPECT_EQ(resp.job().state(), v1::Job::STATE_SCHEDULED);
  EXPECT_GT(resp.job().max_attempts(), 0);  // the store's default

  v1::GetJobRequest get;
  get.set_id(resp.job().id());
  v1::Job stored;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(f.stub->GetJob(&ctx, get, &stored).ok());
  }
  EXPECT_EQ(resp.job().DebugString(), stored.DebugString());

  // The same request_id with other inputs answers with the first job whole,
  // none of the second request's fields.
  v1::SubmitJobRequest again;
  again.mutable_job()->set_kind("other-kind");
  again.mutable_job()->set_queue("media");
  again.mutable_job()->set_payload("other");
  again.set_request_id("req-all-fields");
  v1::SubmitJobResponse second;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(f.stub->SubmitJob(&ctx, again, &second).ok());
  }
  EXPECT_FALSE(second.created());
  EXPECT_EQ(second.job().DebugString(), stored.DebugString());
}

TEST(JobServiceTest,
     WatchWithoutCursorSendsSnapshotThenLiveEventsAndEndsAfterTerminal) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_id(job.id());
  auto reader = f.stub->WatchJob(&ctx, req);
  WatchJobResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_TRUE(msg.event().has_snapshot());
  EXPECT_EQ(msg.event().seq(), 1);
  EXPECT_EQ(msg.event().snapshot().state(), v1::Job::STATE_QUEUED);

  f.Log(job.id(), "hello");
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.event().seq(), 2);
  EXPECT_EQ(msg.event().log().line(), "hello");

  ASSERT_TRUE(f.Cancel(job.id()).ok());
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.event().seq(), 3);
  EXPECT_EQ(msg.event().state_changed().to(), v1::Job::STATE_CANCELLED);
  EXPECT_FALSE(reader->Read(&msg));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST(JobServiceTest, WatchWithAfterSeqReplaysTheLogThenGoesLive) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  for (int i = 0; i < 5; ++i) f.Log(job.id(), absl::StrCat("line ", i));
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_id(job.id());
  req.set_after_seq(3);
  auto reader = f.stub->WatchJob(&ctx, req);
  WatchJobResponse msg;
  for (int seq = 4; seq <= 6; ++seq) {
    ASSERT_TRUE(reader->Read(&msg));
    EXPECT_EQ(msg.event().seq(), seq);
  }
  f.Log(job.id(), "live");
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.event().seq(), 7);
  EXPECT_EQ(msg.event().log().line(), "live");
  ctx.TryCancel();
}

TEST(JobServiceTest, WatchOfATerminalJobAtItsLastSeqEndsAtOnce) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  v1::Job cancelled;
  ASSERT_TRUE(f.Cancel(job.id(), &cancelled).ok());
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_id(job.id());
  req.set_after_seq(cancelled.last_seq());
  auto reader = f.stub->WatchJob(&ctx, req);
  WatchJobResponse msg;
  EXPECT_FALSE(reader->Read(&msg));
  EXPECT_TRUE(reader->Finish().ok());
}

// Watchers connect, read a little, drop and resume from their last seq at
// random while a writer appends events: every stream sees each event after
// its cursor exactly once, in order, and the union covers the whole log.
TEST(JobServiceTest, ResumingWatchersSeeEveryEventOnceInOrderWhileAWriterRuns) {
  JobServiceImpl::Options options;
  options.watch.buffer = 16;  // force lagging and catch-up often
  Fixture f(options);
  v1::Job job = f.Submit("k");
  constexpr int kEvents = 600;
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int i = 0; i < kEvents; ++i) f.Log(job.id(), absl::StrCat(i));
    writing = false;
  });
  constexpr int kWatchers = 4;
  std::vector<std::thread> watchers;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWatchers; ++w) {
    watchers.emplace_back([&, w] {
      absl::BitGen gen;
      int64_t last = 1;  // resume after the "submitted" event
      int reconnects = 0;
      while (last < kEvents + 1 && reconnects < 1000) {
        ++reconnects;
        grpc::ClientContext ctx;
        v1::WatchJobRequest req;
        req.set_id(job.id());
        req.set_after_seq(last);
        auto reader = f.stub->WatchJob(&ctx, req);
        const int take = absl::Uniform(gen, 1, 80);
        WatchJobResponse msg;
        for (int n = 0; n < take && last < kEvents + 1 && reader->Read(&msg);
             ++n) {
          if (!msg.has_event()) continue;
          if (msg.event().seq() != last + 1) {
            ADD_FAILURE() << "watcher " << w << " got seq " << msg.event().seq()
                          << " after " << last;
            ++failures;
            return;
          }
          EXPECT_EQ(msg.event().log().line(), absl::StrCat(last - 1));
          last = msg.event().seq();
        }
        ctx.TryCancel();
        reader->Finish();
      }
      EXPECT_EQ(last, kEvents + 1) << "watcher " << w;
    });
  }
  writer.join();
  for (std::thread& t : watchers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_FALSE(writing.load());
}

TEST(JobServiceTest, WatchJobsFiltersAndResumesFromAfterEventId) {
  Fixture f(DefaultOptions());
  v1::Job a = f.Submit("k", "", "alpha");
  v1::Job b = f.Submit("k", "", "beta");
  v1::Job a2 = f.Submit("k", "", "alpha");
  f.Log(b.id(), "b-line");
  f.Log(a.id(), "a-line");

  grpc::ClientContext ctx;
  v1::WatchJobsRequest req;
  req.set_filter("queue = alpha");
  req.set_after_event_id(0);
  auto reader = f.stub->WatchJobs(&ctx, req);
  std::vector<std::pair<std::string, int64_t>> seen;
  WatchJobsResponse msg;
  int64_t last_event_id = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(reader->Read(&msg));
    ASSERT_TRUE(msg.has_event());
    EXPECT_GT(msg.event().event_id(), last_event_id);
    last_event_id = msg.event().event_id();
    seen.emplace_back(msg.event().job_id(), msg.event().seq());
  }
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, int64_t>>{
                      {a.id(), 1}, {a2.id(), 1}, {a.id(), 2}}));
  // Live: an alpha event arrives, a beta one does not.
  f.Log(b.id(), "b-live");
  f.Log(a2.id(), "a2-live");
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.event().job_id(), a2.id());
  EXPECT_EQ(msg.event().log().line(), "a2-live");
  ctx.TryCancel();
  reader->Finish();

  // Resume after the second alpha event.
  grpc::ClientContext ctx2;
  req.set_after_event_id(last_event_id);
  auto again = f.stub->WatchJobs(&ctx2, req);
  ASSERT_TRUE(again->Read(&msg));
  EXPECT_EQ(msg.event().log().line(), "a2-live");
  ctx2.TryCancel();
  again->Finish();
}

TEST(JobServiceTest, WatchJobsWithoutCursorStartsWithNewEventsOnly) {
  Fixture f(DefaultOptions());
  v1::Job before = f.Submit("k");
  grpc::ClientContext ctx;
  v1::WatchJobsRequest req;
  req.set_filter("kind = k");
  auto reader = f.stub->WatchJobs(&ctx, req);
  // The stream is live once the server registered it.
  for (int i = 0; i < 10000 && f.service->open_streams() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  f.Log(before.id(), "after");
  WatchJobsResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.event().job_id(), before.id());
  EXPECT_EQ(msg.event().log().line(), "after");
  ctx.TryCancel();
  reader->Finish();
}

// Events committed together go out coalesced into few socket writes
// (server/api/write_coalescing.h): the watcher gets every one of them, the
// last included, although nothing follows it to flush the stream; and a lone
// event after the burst is not held back either. The deadline only bounds a
// failure.
TEST(JobServiceTest, WatchJobsGetsABurstWholeAndALoneEventAfterIt) {
  Fixture f(DefaultOptions());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::WatchJobsRequest req;
  req.set_filter("kind = burst");
  auto reader = f.stub->WatchJobs(&ctx, req);
  for (int i = 0; i < 10000 && f.service->open_streams() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // The first write of the stream, alone.
  v1::Job first = f.Submit("burst");
  WatchJobsResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.event().job_id(), first.id());

  constexpr int kJobs = 200;  // below WatchOptions::buffer: one live burst
  std::vector<NewJob> jobs(kJobs);
  for (NewJob& j : jobs) j.job.kind = "burst";
  std::set<std::string> ids;
  absl::Notification submitted;
  f.store->Submit(std::move(jobs),
                  [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                    EXPECT_TRUE(r.ok()) << r.status();
                    if (r.ok()) {
                      for (const SubmitOutcome& o : *r) ids.insert(o.job.id);
                    }
                    submitted.Notify();
                  });
  submitted.WaitForNotification();
  ASSERT_EQ(ids.size(), static_cast<size_t>(kJobs));
  std::set<std::string> seen;
  while (seen.size() < ids.size()) {
    ASSERT_TRUE(reader->Read(&msg)) << "only " << seen.size() << " jobs seen";
    ASSERT_TRUE(msg.has_event());
    seen.insert(msg.event().job_id());
  }
  EXPECT_EQ(seen, ids);

  f.Log(first.id(), "lone");
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.event().job_id(), first.id());
  EXPECT_EQ(msg.event().log().line(), "lone");
  ctx.TryCancel();
  reader->Finish();
}

TEST(JobServiceTest, WatchJobsCursorOlderThanRetentionGetsReset) {
  SqliteJobStore::Retention retention;
  retention.max_terminal_jobs = 1;
  Fixture f(DefaultOptions(), retention);
  v1::Job old_job = f.Submit("k");
  ASSERT_TRUE(f.Cancel(old_job.id()).ok());
  f.clock.Advance(absl::Seconds(1));
  v1::Job newer = f.Submit("k");
  ASSERT_TRUE(f.Cancel(newer.id()).ok());
  absl::StatusOr<int64_t> pruned = f.store->RunRetentionOnceBlocking();
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  ASSERT_EQ(*pruned, 1);

  grpc::ClientContext ctx;
  v1::WatchJobsRequest req;
  req.set_after_event_id(0);
  auto reader = f.stub->WatchJobs(&ctx, req);
  WatchJobsResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_TRUE(msg.has_reset());
  EXPECT_GT(msg.reset().oldest_retained(), 0);
  ASSERT_TRUE(reader->Read(&msg));
  EXPECT_EQ(msg.event().job_id(), newer.id());
  ctx.TryCancel();
  reader->Finish();

  // The pruned job itself is gone.
  grpc::ClientContext ctx2;
  v1::WatchJobRequest one;
  one.set_id(old_job.id());
  auto gone = f.stub->WatchJob(&ctx2, one);
  WatchJobResponse m;
  EXPECT_FALSE(gone->Read(&m));
  EXPECT_EQ(gone->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(JobServiceTest, IdleWatchGetsHeartbeats) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_id(job.id());
  auto reader = f.stub->WatchJob(&ctx, req);
  WatchJobResponse msg;
  ASSERT_TRUE(reader->Read(&msg));  // snapshot
  f.WaitForWritesDone();
  f.service->Tick();  // not idle long enough yet
  EXPECT_EQ(f.service->buffered_messages(), 0u);
  f.clock.Advance(absl::Seconds(15));
  f.service->Tick();
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_TRUE(msg.has_heartbeat());
  EXPECT_EQ(msg.heartbeat().time().seconds(),
            absl::ToUnixSeconds(f.clock.Now()));
  ctx.TryCancel();
  reader->Finish();
}

TEST(JobServiceTest,
     WatcherThatStopsReadingIsEndedWithResourceExhaustedAndMemoryStaysBounded) {
  JobServiceImpl::Options options;
  options.watch.buffer = 8;
  options.watch.stall_timeout = absl::Seconds(30);
  Fixture f(options);
  v1::Job job = f.Submit("k");
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_id(job.id());
  auto reader = f.stub->WatchJob(&ctx, req);
  WatchJobResponse msg;
  ASSERT_TRUE(reader->Read(&msg));  // snapshot; then the client stops reading

  const std::string big(256 * 1024, 'x');
  for (int i = 0; i < 100; ++i) f.Log(job.id(), big);  // ~25 MiB
  EXPECT_LE(f.service->buffered_messages(), 8u + 1u);

  f.clock.Advance(absl::Seconds(31));
  f.service->Tick();
  int read = 0;
  while (reader->Read(&msg)) ++read;
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_LT(read, 100);
}

TEST(JobServiceTest,
     ShutdownSendsDrainingThenUnavailableAndRefusesSubmissions) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_id(job.id());
  auto reader = f.stub->WatchJob(&ctx, req);
  WatchJobResponse msg;
  ASSERT_TRUE(reader->Read(&msg));  // snapshot

  const absl::Time deadline = f.clock.Now() + absl::Seconds(5);
  f.service->StartShutdown(deadline);
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_TRUE(msg.has_draining());
  EXPECT_EQ(msg.draining().deadline().seconds(), absl::ToUnixSeconds(deadline));

  v1::SubmitJobRequest sreq;
  sreq.mutable_job()->set_kind("k");
  v1::SubmitJobResponse sresp;
  grpc::ClientContext sctx;
  grpc::Status s = f.stub->SubmitJob(&sctx, sreq, &sresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  bool has_retry_info = false;
  const google::rpc::Status rich = Details(s);
  for (const auto& any : rich.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info)) has_retry_info = true;
  }
  EXPECT_TRUE(has_retry_info);

  f.service->FinishShutdown(absl::Seconds(2));
  EXPECT_FALSE(reader->Read(&msg));
  const grpc::Status ended = reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE);
  int retry_infos = 0;
  const google::rpc::Status ended_details = Details(ended);
  for (const auto& any : ended_details.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info)) ++retry_infos;
  }
  EXPECT_EQ(retry_infos, 1);  // the stream's end carries it too
  EXPECT_EQ(f.service->open_streams(), 0u);
}

TEST(JobServiceTest,
     SubmitJobsAnswersEachBatchAndRefusesABadBatchNamingTheJob) {
  Fixture f(DefaultOptions());
  grpc::ClientContext ctx;
  auto stream = f.stub->SubmitJobs(&ctx);
  v1::SubmitJobsRequest batch;
  for (int i = 0; i < 3; ++i) {
    auto* j = batch.add_jobs();
    j->mutable_job()->set_kind("k");
    j->set_request_id(absl::StrCat("r", i));
  }
  ASSERT_TRUE(stream->Write(batch));
  v1::SubmitJobsResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.ids_size(), 3);
  EXPECT_EQ(resp.created(), 3);

  ASSERT_TRUE(stream->Write(batch));  // the same request ids again
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.created(), 0);

  v1::SubmitJobsRequest bad;
  bad.add_jobs()->mutable_job()->set_kind("ok");
  bad.add_jobs()->mutable_job()->set_queue("Bad Queue");
  ASSERT_TRUE(stream->Write(bad));
  EXPECT_FALSE(stream->Read(&resp));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  std::vector<std::string> fields = ViolationFields(status);
  EXPECT_NE(std::find(fields.begin(), fields.end(), "jobs[1].job.queue"),
            fields.end())
      << status.error_message();
  EXPECT_NE(std::find(fields.begin(), fields.end(), "jobs[1].job.kind"),
            fields.end())
      << status.error_message();
  EXPECT_EQ(f.CountJobs(), 3);
}

TEST(JobServiceTest, CancelOfAFinishedJobIsFailedPreconditionWithDetails) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  ASSERT_TRUE(f.Cancel(job.id()).ok());
  grpc::Status s = f.Cancel(job.id());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  bool has_precondition = false;
  const google::rpc::Status rich = Details(s);
  for (const auto& any : rich.details()) {
    google::rpc::PreconditionFailure pf;
    if (any.UnpackTo(&pf)) has_precondition = pf.violations_size() == 1;
  }
  EXPECT_TRUE(has_precondition);
}

v1::ExplainJobResponse Explain(Fixture& f, const std::string& id,
                               grpc::Status* status) {
  v1::ExplainJobRequest req;
  req.set_id(id);
  v1::ExplainJobResponse resp;
  grpc::ClientContext ctx;
  *status = f.stub->ExplainJob(&ctx, req, &resp);
  return resp;
}

TEST(JobServiceTest, ExplainJobNamesTheGatesOfQueuedAndFinishedJobs) {
  Fixture f(DefaultOptions(), {}, /*with_dispatcher=*/true);
  v1::Job queued = f.Submit("k");
  grpc::Status status;
  v1::ExplainJobResponse resp = Explain(f, queued.id(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.job().id(), queued.id());
  ASSERT_EQ(resp.gates_size(), 1);
  EXPECT_EQ(resp.gates(0).type(), "NO_WORKER");

  v1::Job cancelled = f.Submit("k");
  ASSERT_TRUE(f.Cancel(cancelled.id()).ok());
  resp = Explain(f, cancelled.id(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(resp.gates_size(), 1);
  EXPECT_EQ(resp.gates(0).type(), "TERMINAL");

  Explain(f, "01ARZ3NDEKTSV4RRFFQ69G5FAV", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  Explain(f, "nope", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(JobServiceTest, ExplainJobWithoutADispatcherIsUnimplemented) {
  Fixture f(DefaultOptions());
  grpc::Status status;
  Explain(f, f.Submit("k").id(), &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST(JobServiceTest, PauseResumeAndRetryChangeStates) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  v1::Job out;
  {
    grpc::ClientContext ctx;
    v1::PauseJobRequest req;
    req.set_id(job.id());
    ASSERT_TRUE(f.stub->PauseJob(&ctx, req, &out).ok());
    EXPECT_EQ(out.state(), v1::Job::STATE_PAUSED);
  }
  {
    grpc::ClientContext ctx;
    v1::ResumeJobRequest req;
    req.set_id(job.id());
    ASSERT_TRUE(f.stub->ResumeJob(&ctx, req, &out).ok());
    EXPECT_EQ(out.state(), v1::Job::STATE_QUEUED);
  }
  ASSERT_TRUE(f.Cancel(job.id()).ok());
  {
    grpc::ClientContext ctx;
    v1::RetryJobRequest req;
    req.set_id(job.id());
    ASSERT_TRUE(f.stub->RetryJob(&ctx, req, &out).ok());
    EXPECT_EQ(out.state(), v1::Job::STATE_QUEUED);
  }
}

// Issue #27: RetryJob's budget is bounded like submit's max_attempts, and a
// cancel reason like a pause reason.
TEST(JobServiceTest, RetryAttemptsAndCancelReasonAreBounded) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  {
    grpc::ClientContext ctx;
    v1::CancelJobRequest req;
    req.set_id(job.id());
    req.set_reason(std::string(1025, 'r'));
    v1::Job out;
    grpc::Status s = f.stub->CancelJob(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(ViolationFields(s), std::vector<std::string>{"reason"});
  }
  ASSERT_TRUE(f.Cancel(job.id()).ok());
  for (int32_t n : {1001, 2147483647, -1}) {
    grpc::ClientContext ctx;
    v1::RetryJobRequest req;
    req.set_id(job.id());
    req.set_additional_attempts(n);
    v1::Job out;
    grpc::Status s = f.stub->RetryJob(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << n;
    EXPECT_EQ(ViolationFields(s),
              std::vector<std::string>{"additional_attempts"});
  }
  grpc::ClientContext ctx;
  v1::RetryJobRequest req;
  req.set_id(job.id());
  req.set_additional_attempts(1000);
  v1::Job out;
  ASSERT_TRUE(f.stub->RetryJob(&ctx, req, &out).ok());
  EXPECT_EQ(out.max_attempts(), 1000);
}

grpc::Status Update(Fixture& f, const v1::Job& job,
                    const std::vector<std::string>& paths,
                    const std::string& etag, v1::Job* out) {
  v1::UpdateJobRequest req;
  *req.mutable_job() = job;
  for (const std::string& p : paths) req.mutable_update_mask()->add_paths(p);
  req.set_etag(etag);
  grpc::ClientContext ctx;
  return f.stub->UpdateJob(&ctx, req, out);
}

TEST(JobServiceTest, UpdateJobWritesTheMaskedFieldsAndRecordsThem) {
  Fixture f(DefaultOptions());
  v1::SubmitJobRequest submit;
  submit.mutable_job()->set_kind("k");
  submit.mutable_job()->set_priority(1);
  (*submit.mutable_job()->mutable_labels())["team"] = "a";
  (*submit.mutable_job()->mutable_labels())["tier"] = "1";
  v1::SubmitJobResponse submitted;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(f.stub->SubmitJob(&ctx, submit, &submitted).ok());
  }
  const v1::Job& job = submitted.job();

  v1::Job patch;
  patch.set_id(job.id());
  patch.set_priority(9);
  patch.set_kind("ignored, not in the mask");
  patch.set_queue("Not Masked Either");
  (*patch.mutable_labels())["team"] = "b";
  v1::Job out;
  grpc::Status s = Update(f, patch, {"priority", "labels.team", "labels.tier"},
                          job.etag(), &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.priority(), 9);
  EXPECT_EQ(out.kind(), "k");
  EXPECT_EQ(out.queue(), "default");
  EXPECT_EQ(out.labels().size(), 1u);
  EXPECT_EQ(out.labels().at("team"), "b");
  EXPECT_NE(out.etag(), job.etag());

  // GetJob reads what was answered; the log records the paths.
  v1::Job read;
  {
    v1::GetJobRequest req;
    req.set_id(job.id());
    grpc::ClientContext ctx;
    ASSERT_TRUE(f.stub->GetJob(&ctx, req, &read).ok());
  }
  EXPECT_EQ(read.priority(), 9);
  EXPECT_EQ(read.etag(), out.etag());
  absl::StatusOr<std::vector<JobEvent>> events =
      f.store->ReadJobEventsBlocking(job.id(), 0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].type, EventType::kUpdated);
  EXPECT_EQ((*events)[1].paths, (std::vector<std::string>{
                                    "priority", "labels.team", "labels.tier"}));

  // The old etag is stale now: ABORTED, nothing written.
  patch.set_priority(10);
  s = Update(f, patch, {"priority"}, job.etag(), &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  // The etag may also come in the job.
  patch.set_etag(read.etag());
  s = Update(f, patch, {"priority"}, "", &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.priority(), 10);
  patch.clear_etag();

  // A future schedule_time makes a queued job SCHEDULED.
  patch.mutable_schedule_time()->set_seconds(
      absl::ToUnixSeconds(f.clock.Now() + absl::Hours(1)));
  s = Update(f, patch, {"schedule_time"}, "", &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.state(), v1::Job::STATE_SCHEDULED);

  // Ended jobs are not updated.
  ASSERT_TRUE(f.Cancel(job.id()).ok());
  s = Update(f, patch, {"priority"}, "", &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();
}

TEST(JobServiceTest, UpdateJobRefusesBadMasksAndValuesAndWritesNothing) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  struct Case {
    std::string name;
    std::vector<std::string> paths;
    std::function<void(v1::Job*)> edit;
    std::vector<std::string> fields;
  };
  const std::vector<Case> cases = {
      {"no mask", {}, [](v1::Job*) {}, {"update_mask"}},
      {"state",
       {"priority", "state"},
       [](v1::Job*) {},
       {"update_mask.paths[1]"}},
      {"unknown", {"colour"}, [](v1::Job*) {}, {"update_mask.paths[0]"}},
      {"bad queue",
       {"queue"},
       [](v1::Job* j) { j->set_queue("UPPER"); },
       {"job.queue"}},
      {"priority range",
       {"priority"},
       [](v1::Job* j) { j->set_priority(5000000); },
       {"job.priority"}},
      {"bad label key",
       {"labels"},
       [](v1::Job* j) { (*j->mutable_labels())["Bad Key"] = "v"; },
       {"job.labels[Bad Key]"}},
      {"no id", {"priority"}, [](v1::Job* j) { j->clear_id(); }, {"job.id"}},
  };
  for (const Case& c : cases) {
    v1::Job patch;
    patch.set_id(job.id());
    c.edit(&patch);
    v1::Job out;
    grpc::Status s = Update(f, patch, c.paths, "", &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_EQ(ViolationFields(s), c.fields)
        << c.name << ": " << s.error_message();
  }
  {
    v1::Job patch;
    patch.set_id("01J0000000000000000000ZZZZ");
    v1::Job out;
    EXPECT_EQ(Update(f, patch, {"priority"}, "", &out).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  absl::StatusOr<Job> stored = f.store->GetJobBlocking(job.id());
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->etag(), job.etag());
  EXPECT_EQ(stored->last_seq, 1);
}

// Bad input: each gets its documented code, BadRequest names the field, and
// nothing is written.
// The responses of a BulkUpdateJobs stream that sends `requests`, and the
// stream's status.
struct BulkOutcome {
  std::vector<v1::BulkUpdateJobsResponse> responses;
  grpc::Status status;
};

BulkOutcome Bulk(Fixture& f,
                 const std::vector<v1::BulkUpdateJobsRequest>& requests) {
  BulkOutcome out;
  grpc::ClientContext ctx;
  auto stream = f.stub->BulkUpdateJobs(&ctx);
  for (const v1::BulkUpdateJobsRequest& req : requests) {
    if (!stream->Write(req)) break;
    v1::BulkUpdateJobsResponse resp;
    if (!stream->Read(&resp)) break;
    out.responses.push_back(resp);
  }
  stream->WritesDone();
  out.status = stream->Finish();
  return out;
}

v1::BulkUpdateJobsRequest BulkByFilter(const std::string& filter) {
  v1::BulkUpdateJobsRequest req;
  req.set_filter(filter);
  return req;
}

v1::BulkUpdateJobsRequest BulkByIds(const std::vector<std::string>& ids) {
  v1::BulkUpdateJobsRequest req;
  for (const std::string& id : ids) req.mutable_ids()->add_ids(id);
  return req;
}

v1::Job GetJob(Fixture& f, const std::string& id) {
  v1::GetJobRequest req;
  req.set_id(id);
  v1::Job job;
  grpc::ClientContext ctx;
  EXPECT_TRUE(f.stub->GetJob(&ctx, req, &job).ok()) << id;
  return job;
}

// matched, updated, skipped, failed.
std::vector<int64_t> Counts(const v1::BulkUpdateJobsResponse& r) {
  return {r.matched(), r.updated(), r.skipped(), r.failed()};
}

TEST(JobServiceTest, BulkUpdateJobsPatchesAndActsOnAFilterChunkByChunk) {
  JobServiceImpl::Options options;
  options.bulk_chunk_jobs = 7;
  Fixture f(options);
  std::vector<std::string> a, b;
  for (int i = 0; i < 30; ++i) a.push_back(f.Submit("k", "", "a").id());
  for (int i = 0; i < 5; ++i) b.push_back(f.Submit("k", "", "b").id());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(f.Cancel(a[i]).ok());
  const int64_t writes_before = f.store->stats().write_requests;

  v1::BulkUpdateJobsRequest patch = BulkByFilter("queue = \"a\"");
  patch.mutable_patch()->set_priority(5);
  patch.mutable_update_mask()->add_paths("priority");
  v1::BulkUpdateJobsRequest pause = BulkByFilter("queue = \"a\"");
  pause.set_action(v1::BulkUpdateJobsRequest::ACTION_PAUSE);
  pause.add_expected_states(v1::Job::STATE_QUEUED);
  v1::BulkUpdateJobsRequest dry_resume = BulkByFilter("queue = \"a\"");
  dry_resume.set_action(v1::BulkUpdateJobsRequest::ACTION_RESUME);
  dry_resume.set_dry_run(true);
  // Several requests on one stream, one response each, in order.
  BulkOutcome out = Bulk(f, {patch, patch, pause, dry_resume});
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(out.responses.size(), 4u);
  // The cancelled jobs are skipped: a finished job takes no patch.
  EXPECT_EQ(Counts(out.responses[0]), (std::vector<int64_t>{30, 27, 3, 0}));
  // The same patch again changes nothing.
  EXPECT_EQ(Counts(out.responses[1]), (std::vector<int64_t>{30, 0, 30, 0}));
  EXPECT_EQ(Counts(out.responses[2]), (std::vector<int64_t>{30, 27, 3, 0}));
  EXPECT_EQ(Counts(out.responses[3]), (std::vector<int64_t>{30, 27, 3, 0}));
  // 30 jobs in chunks of at most 7, three times: 5 store writes each (that
  // may share commits).
  EXPECT_GE(f.store->stats().write_requests - writes_before, 15);

  for (int i = 3; i < 30; ++i) {
    v1::Job job = GetJob(f, a[i]);
    EXPECT_EQ(job.priority(), 5);
    EXPECT_EQ(job.state(), v1::Job::STATE_PAUSED);  // the dry run left it
  }
  EXPECT_EQ(GetJob(f, a[0]).state(), v1::Job::STATE_CANCELLED);
  for (const std::string& id : b) {
    EXPECT_EQ(GetJob(f, id).priority(), 0);
    EXPECT_EQ(GetJob(f, id).state(), v1::Job::STATE_QUEUED);
  }
  // Each patched job has one `updated` event naming the path.
  auto events = f.store->ReadJobEventsBlocking(a[5], 0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);  // submitted, updated, paused
  EXPECT_EQ((*events)[1].type, EventType::kUpdated);
  EXPECT_EQ((*events)[1].paths, std::vector<std::string>{"priority"});
}

TEST(JobServiceTest, BulkUpdateJobsByIdsCountsEveryIdOnceAndListsFailures) {
  Fixture f(DefaultOptions());
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(f.Submit("k").id());
  ASSERT_TRUE(f.Cancel(ids[0]).ok());
  ASSERT_TRUE(f.Cancel(ids[1]).ok());
  const std::string unknown = "01J0000000000000000000ZZZZ";

  v1::BulkUpdateJobsRequest del =
      BulkByIds({ids[0], ids[1], ids[0], ids[2], unknown});
  del.set_action(v1::BulkUpdateJobsRequest::ACTION_DELETE);
  v1::BulkUpdateJobsRequest dry = del;
  dry.set_dry_run(true);
  v1::BulkUpdateJobsRequest retry = BulkByIds({ids[1], ids[3]});
  retry.set_action(v1::BulkUpdateJobsRequest::ACTION_RETRY);
  BulkOutcome out = Bulk(f, {dry, retry, del});
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(out.responses.size(), 3u);
  // Dry run: ids[0] (once) and ids[1] would go; ids[2] is QUEUED.
  EXPECT_EQ(Counts(out.responses[0]), (std::vector<int64_t>{4, 2, 1, 1}));
  EXPECT_EQ(Counts(out.responses[1]), (std::vector<int64_t>{2, 1, 1, 0}));
  // ids[1] was retried: only ids[0] is still finished.
  const v1::BulkUpdateJobsResponse& deleted = out.responses[2];
  EXPECT_EQ(Counts(deleted), (std::vector<int64_t>{4, 1, 2, 1}));
  ASSERT_EQ(deleted.failures_size(), 1);
  EXPECT_EQ(deleted.failures(0).id(), unknown);
  EXPECT_EQ(deleted.failures(0).code(), grpc::StatusCode::NOT_FOUND);

  v1::GetJobRequest get;
  get.set_id(ids[0]);
  v1::Job job;
  grpc::ClientContext ctx;
  EXPECT_EQ(f.stub->GetJob(&ctx, get, &job).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetJob(f, ids[1]).state(), v1::Job::STATE_QUEUED);
  EXPECT_EQ(GetJob(f, ids[2]).state(), v1::Job::STATE_QUEUED);
}

TEST(JobServiceTest, BulkCancelHandsRunningJobsToTheHookAndChecksStates) {
  JobServiceImpl::Options options;
  std::vector<std::string> handed;
  absl::Mutex mu;
  options.cancel_running = [&](const std::string& id, const std::string&,
                               JobCallback done) {
    {
      absl::MutexLock lock(&mu);
      handed.push_back(id);
    }
    Job job;
    job.id = id;
    done(job);
  };
  Fixture f(options);
  v1::Job queued = f.Submit("k");
  v1::Job running = f.Submit("k");
  v1::Job other = f.Submit("k");
  absl::Notification moved;
  f.store->Mutate(
      running.id(),
      [](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
        JobChange change{current, {}};
        change.job.state = JobState::kRunning;
        change.job.attempt = 1;
        JobEvent e;
        e.type = EventType::kStateChanged;
        e.from = current.state;
        e.to = JobState::kRunning;
        change.events.push_back(e);
        return change;
      },
      [&](absl::StatusOr<Job> job) {
        EXPECT_TRUE(job.ok()) << job.status();
        moved.Notify();
      });
  moved.WaitForNotification();

  // Guarded by expected_states: only the QUEUED job.
  v1::BulkUpdateJobsRequest guarded = BulkByIds({queued.id(), running.id()});
  guarded.set_action(v1::BulkUpdateJobsRequest::ACTION_CANCEL);
  guarded.add_expected_states(v1::Job::STATE_QUEUED);
  // Unguarded: the RUNNING job goes to the dispatcher.
  v1::BulkUpdateJobsRequest all = BulkByIds({running.id(), other.id()});
  all.set_action(v1::BulkUpdateJobsRequest::ACTION_CANCEL);
  BulkOutcome out = Bulk(f, {guarded, all});
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_EQ(out.responses.size(), 2u);
  EXPECT_EQ(Counts(out.responses[0]), (std::vector<int64_t>{2, 1, 1, 0}));
  EXPECT_EQ(Counts(out.responses[1]), (std::vector<int64_t>{2, 2, 0, 0}));
  EXPECT_EQ(handed, std::vector<std::string>{running.id()});
  EXPECT_EQ(GetJob(f, queued.id()).state(), v1::Job::STATE_CANCELLED);
  EXPECT_EQ(GetJob(f, other.id()).state(), v1::Job::STATE_CANCELLED);
  EXPECT_EQ(GetJob(f, running.id()).state(), v1::Job::STATE_RUNNING);
}

TEST(JobServiceTest, BulkUpdateJobsRefusesBadRequestsAndWritesNothing) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  struct Case {
    std::string name;
    std::function<void(v1::BulkUpdateJobsRequest*)> edit;
    std::string field;
  };
  auto action = [](v1::BulkUpdateJobsRequest* r) {
    r->set_action(v1::BulkUpdateJobsRequest::ACTION_PAUSE);
  };
  const std::vector<Case> cases = {
      {"no selector",
       [&](v1::BulkUpdateJobsRequest* r) {
         r->clear_selector();
         action(r);
       },
       "ids"},
      {"no ids",
       [&](v1::BulkUpdateJobsRequest* r) {
         r->mutable_ids()->clear_ids();
         action(r);
       },
       "ids.ids"},
      {"bad id",
       [&](v1::BulkUpdateJobsRequest* r) {
         r->mutable_ids()->add_ids("nope");
         action(r);
       },
       "ids.ids[1]"},
      {"bad filter",
       [&](v1::BulkUpdateJobsRequest* r) {
         r->set_filter("state = = QUEUED");
         action(r);
       },
       "filter"},
      {"unknown action",
       [](v1::BulkUpdateJobsRequest* r) {
         r->set_action(static_cast<v1::BulkUpdateJobsRequest::Action>(42));
       },
       "action"},
      {"mask with an action",
       [&](v1::BulkUpdateJobsRequest* r) {
         action(r);
         r->mutable_update_mask()->add_paths("priority");
       },
       "update_mask"},
      {"no mask, no action", [](v1::BulkUpdateJobsRequest*) {}, "update_mask"},
      {"state is not updatable",
       [](v1::BulkUpdateJobsRequest* r) {
         r->mutable_update_mask()->add_paths("state");
       },
       "update_mask.paths[0]"},
      {"bad value",
       [](v1::BulkUpdateJobsRequest* r) {
         r->mutable_update_mask()->add_paths("queue");
         r->mutable_patch()->set_queue("UPPER");
       },
       "patch.queue"},
      {"unspecified state",
       [&](v1::BulkUpdateJobsRequest* r) {
         action(r);
         r->add_expected_states(v1::Job::STATE_QUEUED);
         r->add_expected_states(v1::Job::STATE_UNSPECIFIED);
       },
       "expected_states[1]"},
  };
  for (const Case& c : cases) {
    v1::BulkUpdateJobsRequest req = BulkByIds({job.id()});
    c.edit(&req);
    BulkOutcome out = Bulk(f, {req});
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name;
    EXPECT_TRUE(out.responses.empty()) << c.name;
    std::vector<std::string> fields = ViolationFields(out.status);
    EXPECT_NE(std::find(fields.begin(), fields.end(), c.field), fields.end())
        << c.name << ": " << out.status.error_message();
  }
  const v1::Job after = GetJob(f, job.id());
  EXPECT_EQ(after.state(), v1::Job::STATE_QUEUED);
  EXPECT_EQ(after.etag(), job.etag());
}

TEST(JobServiceTest, BulkUpdateJobsWhileDrainingIsUnavailable) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  f.service->StartShutdown(f.clock.Now() + absl::Seconds(5));
  v1::BulkUpdateJobsRequest req = BulkByIds({job.id()});
  req.set_action(v1::BulkUpdateJobsRequest::ACTION_CANCEL);
  BulkOutcome out = Bulk(f, {req});
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetJob(f, job.id()).state(), v1::Job::STATE_QUEUED);
}

TEST(JobServiceTest, BadInputGetsTheDocumentedCodeAndWritesNothing) {
  Fixture f(DefaultOptions());
  f.Submit("k");
  const int64_t before = f.CountJobs();

  struct SubmitCase {
    std::string name;
    std::function<void(v1::SubmitJobRequest*)> edit;
    std::string field;
  };
  const std::vector<SubmitCase> submit_cases = {
      {"missing kind",
       [](v1::SubmitJobRequest* r) { r->mutable_job()->clear_kind(); },
       "job.kind"},
      {"bad queue",
       [](v1::SubmitJobRequest* r) { r->mutable_job()->set_queue("UPPER"); },
       "job.queue"},
      {"long queue",
       [](v1::SubmitJobRequest* r) {
         r->mutable_job()->set_queue(std::string(200, 'a'));
       },
       "job.queue"},
      {"oversized payload",
       [](v1::SubmitJobRequest* r) {
         r->mutable_job()->set_payload(std::string((1 << 20) + 1, 'p'));
       },
       "job.payload"},
      {"long request id",
       [](v1::SubmitJobRequest* r) {
         r->set_request_id(std::string(300, 'r'));
       },
       "request_id"},
      {"bad schedule time",
       [](v1::SubmitJobRequest* r) {
         r->mutable_job()->mutable_schedule_time()->set_nanos(-1);
       },
       "job.schedule_time"},
  };
  for (const SubmitCase& c : submit_cases) {
    v1::SubmitJobRequest req;
    req.mutable_job()->set_kind("k");
    c.edit(&req);
    v1::SubmitJobResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = f.stub->SubmitJob(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    std::vector<std::string> fields = ViolationFields(s);
    EXPECT_NE(std::find(fields.begin(), fields.end(), c.field), fields.end())
        << c.name << ": " << s.error_message();
  }

  struct ListCase {
    std::string name;
    v1::ListJobsRequest req;
    std::string field;
  };
  std::vector<ListCase> list_cases(3);
  list_cases[0] = {"bad filter", {}, "filter"};
  list_cases[0].req.set_filter("state = = QUEUED");
  list_cases[1] = {"bad page token", {}, "page_token"};
  list_cases[1].req.set_page_token("garbage!");
  list_cases[2] = {"bad order", {}, "order_by"};
  list_cases[2].req.set_order_by("kind sideways");
  for (const ListCase& c : list_cases) {
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = f.stub->ListJobs(&ctx, c.req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    std::vector<std::string> fields = ViolationFields(s);
    EXPECT_NE(std::find(fields.begin(), fields.end(), c.field), fields.end())
        << c.name << ": " << s.error_message();
  }

  {  // unknown and malformed ids
    v1::GetJobRequest req;
    req.set_id("01J0000000000000000000ZZZZ");
    v1::Job job;
    grpc::ClientContext ctx;
    EXPECT_EQ(f.stub->GetJob(&ctx, req, &job).error_code(),
              grpc::StatusCode::NOT_FOUND);
    req.set_id("nope");
    grpc::ClientContext ctx2;
    grpc::Status s = f.stub->GetJob(&ctx2, req, &job);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(ViolationFields(s), std::vector<std::string>{"id"});
    EXPECT_EQ(f.Cancel("01J0000000000000000000ZZZZ").error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {  // a watch filter on a field live events do not carry
    grpc::ClientContext ctx;
    v1::WatchJobsRequest req;
    req.set_filter("create_time > \"2026-01-01T00:00:00Z\"");
    auto reader = f.stub->WatchJobs(&ctx, req);
    WatchJobsResponse msg;
    EXPECT_FALSE(reader->Read(&msg));
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(ViolationFields(s), std::vector<std::string>{"filter"});
  }
  {  // a cursor beyond the end
    grpc::ClientContext ctx;
    v1::WatchJobsRequest req;
    req.set_after_event_id(1000000);
    auto reader = f.stub->WatchJobs(&ctx, req);
    WatchJobsResponse msg;
    EXPECT_FALSE(reader->Read(&msg));
    EXPECT_EQ(reader->Finish().error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(f.CountJobs(), before);
}

TEST(JobServiceTest, WebhooksAreRefusedWhenTheServerSendsNone) {
  Fixture f(DefaultOptions());
  v1::SubmitJobRequest req;
  req.mutable_job()->set_kind("resize");
  req.mutable_job()->mutable_webhook()->set_url("https://example.com/h");
  v1::SubmitJobResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = f.stub->SubmitJob(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("--webhook-secret-file"));
  EXPECT_EQ(f.CountJobs(), 0);
}

TEST(JobServiceTest, AWebhookUrlTheCheckRefusesIsAFieldViolation) {
  JobServiceImpl::Options options;
  options.check_webhook = [](const WebhookSpec& w) -> absl::Status {
    if (w.url == "http://127.0.0.1/") {
      return ::jobwire::InvalidArgumentError("job.webhook.url", "loopback");
    }
    return absl::OkStatus();
  };
  Fixture f(options);
  v1::SubmitJobRequest req;
  req.mutable_job()->set_kind("resize");
  req.mutable_job()->mutable_webhook()->set_url("http://127.0.0.1/");
  v1::SubmitJobResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = f.stub->SubmitJob(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ViolationFields(s), ::testing::ElementsAre("job.webhook.url"));
  EXPECT_EQ(f.CountJobs(), 0);
}

// A sink of a face other than gRPC (the HTTP face's SSE writer), driven by
// the test: it records what the watch writes and takes a write only when
// Take() is called, so a test can be a slow reader.
class RecordingSink : public WatchSink {
 public:
  void WriteMessage(const WatchMessage& message, bool) override {
    absl::MutexLock lock(&mu_);
    messages_.push_back(message);
  }
  void FinishWatch(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    finished_ = status;
  }

  // Waits for the `n`th message (1-based) and returns it.
  WatchMessage WaitForMessage(size_t n) {
    absl::MutexLock lock(&mu_);
    auto arrived = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return messages_.size() >= n;
    };
    mu_.Await(absl::Condition(&arrived));
    return messages_[n - 1];
  }
  absl::Status WaitForFinish() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::optional<absl::Status>* f) { return f->has_value(); },
        &finished_));
    return *finished_;
  }
  size_t written() {
    absl::MutexLock lock(&mu_);
    return messages_.size();
  }
  // Opens the watch of `request` on this sink.
  template <typename Request>
  absl::Status Open(JobServiceImpl* service, const Request& request) {
    absl::StatusOr<WatchReactorCore*> opened = service->NewWatch(request);
    if (!opened.ok()) return opened.status();
    watch = *opened;
    watch->Begin(this);
    return absl::OkStatus();
  }
  // The peer took the write in flight.
  void Take() { watch->WriteDone(true); }

  WatchReactorCore* watch = nullptr;

 private:
  absl::Mutex mu_;
  std::vector<WatchMessage> messages_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> finished_ ABSL_GUARDED_BY(mu_);
};

TEST(JobServiceTest, NewWatchRefusesBadRequestsAsTheGrpcMethodsDo) {
  Fixture f(DefaultOptions());
  v1::WatchJobRequest job_request;
  EXPECT_EQ(f.service->NewWatch(job_request).status().code(),
            absl::StatusCode::kInvalidArgument);
  job_request.set_id("j");
  job_request.set_after_seq(-1);
  EXPECT_EQ(f.service->NewWatch(job_request).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::WatchJobsRequest jobs_request;
  jobs_request.set_filter("queue = ");
  EXPECT_EQ(f.service->NewWatch(jobs_request).status().code(),
            absl::StatusCode::kInvalidArgument);
  jobs_request.set_filter("create_time > 5");
  EXPECT_EQ(f.service->NewWatch(jobs_request).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.service->open_streams(), 0u);
}

TEST(JobServiceTest, AWatchOnAnotherSinkGetsSnapshotEventsAndTheEnd) {
  Fixture f(DefaultOptions());
  v1::Job job = f.Submit("k");
  v1::WatchJobRequest req;
  req.set_id(job.id());
  RecordingSink sink;
  ASSERT_TRUE(sink.Open(f.service.get(), req).ok());
  EXPECT_EQ(f.service->open_streams(), 1u);  // the service's own registry
  WatchMessage m = sink.WaitForMessage(1);
  EXPECT_EQ(m.kind, WatchMessage::Kind::kSnapshot);
  EXPECT_EQ(m.job.id, job.id());
  sink.Take();
  f.Log(job.id(), "hello");
  m = sink.WaitForMessage(2);
  EXPECT_EQ(m.kind, WatchMessage::Kind::kEvent);
  EXPECT_EQ(m.event.log_line, "hello");
  EXPECT_EQ(m.event.seq, job.last_seq() + 1);
  sink.Take();
  ASSERT_TRUE(f.Cancel(job.id()).ok());
  m = sink.WaitForMessage(3);
  EXPECT_EQ(m.event.type, EventType::kStateChanged);
  EXPECT_EQ(m.event.to, JobState::kCancelled);
  sink.Take();
  // The terminal event ends the watch with OK, as WatchJob does.
  EXPECT_TRUE(sink.WaitForFinish().ok());
  sink.watch->Done();
  EXPECT_EQ(f.service->open_streams(), 0u);
}

TEST(JobServiceTest, ASinkThatStopsTakingWritesIsCutOffWithBoundedMemory) {
  JobServiceImpl::Options options;
  options.watch.buffer = 8;
  options.watch.stall_timeout = absl::Seconds(30);
  Fixture f(options);
  v1::Job job = f.Submit("k");
  v1::WatchJobRequest req;
  req.set_id(job.id());
  RecordingSink sink;
  ASSERT_TRUE(sink.Open(f.service.get(), req).ok());
  sink.WaitForMessage(1);  // the snapshot, never taken

  for (int i = 0; i < 100; ++i) f.Log(job.id(), "line");
  EXPECT_LE(f.service->buffered_messages(), 8u + 1u);
  EXPECT_EQ(sink.written(), 1u);  // one write at a time

  f.clock.Advance(absl::Seconds(31));
  f.service->Tick();
  absl::Status status = sink.WaitForFinish();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  // The write in flight may still end after the finish; then the sink lets go.
  sink.watch->WriteDone(false);
  EXPECT_EQ(f.service->buffered_messages(), 0u);  // the queue was dropped
  sink.watch->Done();
  EXPECT_EQ(f.service->open_streams(), 0u);
}

// #27: the queue of a watch is bounded in bytes as well as in events, the
// log is read back in pages within the same room, and an event larger than
// the whole budget goes out alone instead of wedging the watch.
TEST(JobServiceTest, AWatchQueueIsBoundedInBytesAndPassesAnEventLargerThanIt) {
  JobServiceImpl::Options options;
  options.watch.buffer = 256;
  options.watch.buffer_bytes = 1 << 20;
  Fixture f(options);
  v1::Job job = f.Submit("k");
  v1::WatchJobRequest req;
  req.set_id(job.id());
  RecordingSink sink;
  ASSERT_TRUE(sink.Open(f.service.get(), req).ok());
  sink.WaitForMessage(1);  // the snapshot, not taken yet

  const std::string big(256 * 1024, 'x');
  constexpr int kLines = 20;  // 5 MiB
  for (int i = 0; i < kLines; ++i) f.Log(job.id(), big);
  // 1 MiB holds three such events (and the snapshot in flight), not 20.
  EXPECT_LE(f.service->buffered_messages(), 5u);
  const std::string huge(3 << 20, 'y');  // three times the budget
  f.Log(job.id(), huge);

  // Every event arrives once, in order, the huge one too.
  int64_t seq = job.last_seq();
  for (int n = 2; n <= kLines + 2; ++n) {
    sink.Take();
    WatchMessage m = sink.WaitForMessage(n);
    ASSERT_EQ(m.kind, WatchMessage::Kind::kEvent) << n;
    EXPECT_EQ(m.event.seq, ++seq);
    EXPECT_EQ(m.event.log_line.size(),
              n <= kLines + 1 ? big.size() : huge.size());
    EXPECT_LE(f.service->buffered_messages(), 5u);
  }
  sink.Take();
  ASSERT_TRUE(f.Cancel(job.id()).ok());
  EXPECT_EQ(sink.WaitForMessage(kLines + 3).event.to, JobState::kCancelled);
  sink.Take();
  EXPECT_TRUE(sink.WaitForFinish().ok());
  sink.watch->Done();
}

TEST(JobServiceTest, AWatchOnAnotherSinkIsToldDrainingThenEndedAtShutdown) {
  Fixture f(DefaultOptions());
  v1::WatchJobsRequest req;
  req.set_filter("queue = \"q\"");
  RecordingSink sink;
  ASSERT_TRUE(sink.Open(f.service.get(), req).ok());
  const absl::Time deadline = f.clock.Now() + absl::Seconds(5);
  f.service->StartShutdown(deadline);
  WatchMessage m = sink.WaitForMessage(1);
  EXPECT_EQ(m.kind, WatchMessage::Kind::kDraining);
  EXPECT_EQ(m.time, deadline);
  sink.Take();
  f.service->FinishShutdown(absl::ZeroDuration());
  EXPECT_EQ(sink.WaitForFinish().code(), absl::StatusCode::kUnavailable);
  sink.watch->Done();
  EXPECT_EQ(f.service->open_streams(), 0u);
}

}  // namespace
}  // namespace jobwire::test
