// WorkerService over a real gRPC server, the real SqliteJobStore (temp
// file) and a FakeClock: sessions, leases, fencing, retries, cancel,
// fairness, explain and drain.
#include "server/api/worker_service.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/api/worker_test_util.h"
#include "server/common/clock.h"
#include "server/core/retry.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/sqlite_job_store.h"

namespace jobwire::test {
namespace {

using v1::ConnectResponse;

class WorkerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(DispatcherOptions{}); }

  void StartServer(DispatcherOptions options) {
    char tmpl[] = "/tmp/jobwire_worker_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
    options.lease_ttl = absl::Seconds(30);
    options_ = options;
    OpenServer();
  }

  // Opens the store in dir_, recovers a dispatcher from it and serves.
  void OpenServer() {
    SqliteJobStore::Options store_options;
    store_options.path = dir_ + "/jobs.db";
    store_options.clock = &clock_;
    auto store = SqliteJobStore::Open(store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    dispatcher_ =
        std::make_unique<Dispatcher>(store_.get(), &clock_, &random_, options_);
    store_->AddCommitListener(&events_);
    store_->AddCommitListener(dispatcher_.get());
    ASSERT_TRUE(dispatcher_->RecoverBlocking().ok());
    dispatcher_->Start();
    service_ = std::make_unique<WorkerServiceImpl>(dispatcher_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    addr_ = absl::StrCat("127.0.0.1:", port);
    channel_ = grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials());
  }

  // As if the server were killed: the dispatcher and the store stop before
  // the worker streams close, so nothing is released (RUNNING jobs stay
  // RUNNING in the file); then a new server recovers from the same file.
  void CrashAndRestart() {
    dispatcher_->Stop();
    store_->Shutdown();
    service_->Shutdown(clock_.Now());
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    server_.reset();
    service_.reset();
    dispatcher_.reset();
    store_.reset();
    OpenServer();
  }

  void SetConcurrency(const std::string& queue, int32_t limit) {
    ASSERT_TRUE(dispatcher_
                    ->UpdateQueueBlocking(queue,
                                          [limit](QueueRow* row) {
                                            row->concurrency_limit = limit;
                                          })
                    .ok());
  }

  void TearDown() override {
    service_->Shutdown(clock_.Now());
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    dispatcher_->ReleaseAllLeasesBlocking(absl::Seconds(5));
    dispatcher_->Stop();
    store_->Shutdown();
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }

  std::string Submit(Job job) {
    return SubmitBlocking(*store_, std::move(job));
  }

  // Submits `n` jobs of kind "k" in one commit; returns their ids.
  std::set<std::string> SubmitMany(int n) {
    std::vector<NewJob> jobs(n);
    for (NewJob& j : jobs) j.job.kind = "k";
    absl::Notification done;
    std::set<std::string> ids;
    store_->Submit(std::move(jobs),
                   [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                     EXPECT_TRUE(r.ok()) << r.status();
                     if (r.ok()) {
                       for (const SubmitOutcome& o : *r) ids.insert(o.job.id);
                     }
                     done.Notify();
                   });
    done.WaitForNotification();
    return ids;
  }

  std::string SubmitTo(const std::string& queue) {
    Job job;
    job.queue = queue;
    return Submit(job);
  }

  Job Get(const std::string& id) {
    absl::StatusOr<Job> job = store_->GetJobBlocking(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : Job{};
  }

  std::unique_ptr<TestWorker> Connect(const std::string& id,
                                      std::vector<std::string> queues = {},
                                      int slots = 1) {
    auto w = std::make_unique<TestWorker>(channel_, id, queues, slots);
    auto welcome = w->Next();
    EXPECT_TRUE(welcome.has_value() && welcome->has_welcome());
    return w;
  }

  FakeClock clock_;
  FixedRandomSource random_{0.5};
  DispatcherOptions options_;
  std::string dir_;
  EventRecorder events_;
  std::unique_ptr<SqliteJobStore> store_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<WorkerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string addr_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(WorkerServiceTest, WelcomeCarriesLeaseTtlAndHeartbeat) {
  TestWorker w(channel_, "w1", {}, 1);
  auto welcome = w.Next();
  ASSERT_TRUE(welcome.has_value());
  ASSERT_TRUE(welcome->has_welcome());
  EXPECT_EQ(welcome->welcome().lease_ttl().seconds(), 30);
  EXPECT_EQ(welcome->welcome().heartbeat_interval().seconds(), 10);
  EXPECT_FALSE(welcome->welcome().session_id().empty());
}

TEST_F(WorkerServiceTest, FirstMessageMustBeHello) {
  auto stub = v1::WorkerService::NewStub(channel_);
  grpc::ClientContext ctx;
  auto stream = stub->Connect(&ctx);
  v1::ConnectRequest msg;
  msg.mutable_heartbeat();
  stream->Write(msg);
  v1::ConnectResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadRequestFieldsOf(status), std::vector<std::string>{"hello"});
}

TEST_F(WorkerServiceTest, SecondHelloEndsTheStreamWithBadRequest) {
  auto w = Connect("w1");
  v1::ConnectRequest hello;
  hello.mutable_hello()->set_worker_id("w1");
  hello.mutable_hello()->set_slots(1);
  w->Send(hello);
  const grpc::Status status = w->AwaitEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadRequestFieldsOf(status), std::vector<std::string>{"hello"});
}

TEST_F(WorkerServiceTest, JobRunsOnAWorkerAndCompletesDurably) {
  auto w = Connect("w1");
  const std::string id = SubmitTo("default");
  auto assign = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->assign().job().id(), id);
  EXPECT_EQ(assign->assign().attempt(), 1);
  w->Complete(id, 1);
  ASSERT_TRUE(events_.WaitForState(id, JobState::kSucceeded));
  Job job = Get(id);
  EXPECT_EQ(job.state, JobState::kSucceeded);
  EXPECT_EQ(job.attempt, 1);
}

// A worker may close its side right after its last report: the stream ends
// OK only once that report is durable, and a refusal arrives before the end.
TEST_F(WorkerServiceTest, ClosingAfterAReportEndsOnlyOnceItIsAnswered) {
  auto w = Connect("w1");
  const std::string id = SubmitTo("default");
  auto assign = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  w->Complete(id, 1);
  w->Complete(id, 7);  // an attempt that never ran: rejected
  EXPECT_TRUE(w->Close().ok());
  EXPECT_EQ(Get(id).state, JobState::kSucceeded);  // durable before the OK
  std::optional<ConnectResponse> rejected;
  while (auto msg = w->Next(absl::Milliseconds(1))) {
    if (msg->has_rejected()) rejected = msg;
  }
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->rejected().attempt(), 7);
}

TEST_F(WorkerServiceTest, SlotsBoundTheJobsAWorkerHolds) {
  auto w = Connect("w1", {}, 2);
  for (int i = 0; i < 5; ++i) SubmitTo("default");
  auto a1 = w->NextOf(ConnectResponse::kAssign);
  auto a2 = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(a1.has_value() && a2.has_value());
  EXPECT_FALSE(
      w->NextOf(ConnectResponse::kAssign, absl::Milliseconds(300)).has_value());
  w->Complete(a1->assign().job().id(), 1);
  EXPECT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
}

// A job queued while no slot is free wakes no dispatch pass
// (Dispatcher::AnySessionHasRoomLocked); whatever frees a slot must then
// send it: here a `ready` that grants one more slot, then a new worker.
TEST_F(WorkerServiceTest, JobsQueuedWhileEverySlotIsTakenGoOutWhenOneFrees) {
  auto w = Connect("w1", {}, 1);
  const std::string first = SubmitTo("default");
  auto a1 = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(a1.has_value());
  EXPECT_EQ(a1->assign().job().id(), first);
  const std::string second = SubmitTo("default");
  const std::string third = SubmitTo("default");
  EXPECT_FALSE(
      w->NextOf(ConnectResponse::kAssign, absl::Milliseconds(300)).has_value());
  v1::ConnectRequest ready;
  ready.mutable_ready()->set_slots(1);
  ASSERT_TRUE(w->Send(ready));
  auto a2 = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(a2.has_value());
  EXPECT_EQ(a2->assign().job().id(), second);
  auto w2 = Connect("w2", {}, 1);
  auto a3 = w2->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(a3.has_value());
  EXPECT_EQ(a3->assign().job().id(), third);
}

// A burst of assigns goes out coalesced into few socket writes
// (server/api/write_coalescing.h): every assign must still arrive, the last
// one included, although nothing follows it to flush the stream. Connecting
// after the submit also puts the burst right behind the welcome (the
// stream's first write).
TEST_F(WorkerServiceTest, BurstOfAssignsArrivesWholeAndTheLastIsNotHeldBack) {
  constexpr int kJobs = 300;
  const std::set<std::string> ids = SubmitMany(kJobs);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kJobs));
  auto w = Connect("w1", {}, kJobs + 1);
  std::set<std::string> assigned;
  for (int i = 0; i < kJobs; ++i) {
    auto a = w->NextOf(ConnectResponse::kAssign);
    ASSERT_TRUE(a.has_value()) << "only " << i << " of " << kJobs;
    assigned.insert(a->assign().job().id());
  }
  EXPECT_EQ(assigned, ids);
  // A lone assign after the burst is not held back either.
  const std::string lone = SubmitTo("default");
  auto a = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->assign().job().id(), lone);
}

TEST_F(WorkerServiceTest, KilledWorkerJobRunsAgainOnAnotherWorkerOnce) {
  auto a = Connect("a");
  const std::string id = SubmitTo("default");
  auto first = a->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(first.has_value());
  a->Kill();
  EXPECT_EQ(
      events_.WaitForTransition(id, JobState::kRunning, JobState::kQueued),
      "worker disconnected");
  auto b = Connect("b");
  auto second = b->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->assign().attempt(), 2);
  b->Complete(id, 2);
  ASSERT_TRUE(events_.WaitForState(id, JobState::kSucceeded));
  EXPECT_EQ(events_.CountState(id, JobState::kSucceeded), 1);
}

TEST_F(WorkerServiceTest, LateCompleteAfterLeaseExpiryIsRejected) {
  auto a = Connect("a");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(a->NextOf(ConnectResponse::kAssign).has_value());
  // Worker a goes silent past its lease.
  clock_.Advance(absl::Seconds(31));
  dispatcher_->Wake();
  auto cancel = a->NextOf(ConnectResponse::kCancel);
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->cancel().reason(), "lease expired");
  EXPECT_EQ(
      events_.WaitForTransition(id, JobState::kRunning, JobState::kQueued),
      "lease expired");
  auto b = Connect("b");
  auto second = b->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->assign().attempt(), 2);
  // a wakes up and reports its old attempt: refused, nothing changes.
  a->Complete(id, 1);
  auto rejected = a->NextOf(ConnectResponse::kRejected);
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->rejected().code(), 10);  // ABORTED
  EXPECT_EQ(Get(id).state, JobState::kRunning);
  b->Complete(id, 2);
  ASSERT_TRUE(events_.WaitForState(id, JobState::kSucceeded));
  EXPECT_EQ(events_.CountState(id, JobState::kSucceeded), 1);
}

TEST_F(WorkerServiceTest, HeartbeatsKeepTheLease) {
  auto a = Connect("a");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(a->NextOf(ConnectResponse::kAssign).has_value());
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(absl::Seconds(20));
    v1::ConnectRequest hb;
    hb.mutable_heartbeat();
    a->Send(hb);
    // A progress report is a message too; its answer proves the heartbeat
    // before it was handled.
    v1::ConnectRequest p;
    p.mutable_progress()->set_job_id(id);
    p.mutable_progress()->set_attempt(1);
    p.mutable_progress()->mutable_progress()->set_done(i);
    a->Send(p);
    ASSERT_TRUE(events_.WaitFor([&](const std::vector<JobEvent>& events) {
      int n = 0;
      for (const JobEvent& e : events) n += e.type == EventType::kProgress;
      return n == i + 1;
    }));
    dispatcher_->Wake();
  }
  a->Complete(id, 1);
  ASSERT_TRUE(events_.WaitForState(id, JobState::kSucceeded));
  EXPECT_EQ(events_.CountState(id, JobState::kQueued), 1);  // only the submit
}

// The next message that is not a heartbeat.
std::optional<ConnectResponse> NextNotHeartbeat(TestWorker& w) {
  for (;;) {
    std::optional<ConnectResponse> m = w.Next();
    if (!m.has_value() || m->kind_case() != ConnectResponse::kHeartbeat) {
      return m;
    }
  }
}

// #27: a step of the system clock (FakeClock::Set moves only the wall clock)
// must not expire a lease or an attempt timeout, nor stop them from expiring.
// A second job's assign shows that a dispatch pass ran after the step: a lease
// or timeout ended by that pass would send its cancel first.
TEST_F(WorkerServiceTest,
       AWallClockStepForwardNeitherExpiresLeasesNorTimeouts) {
  auto w = Connect("w", {}, /*slots=*/3);
  Job timed;
  timed.attempt_timeout = absl::Seconds(10);
  const std::string timed_id = Submit(timed);
  const std::string plain_id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  clock_.Set(clock_.Now() + absl::Hours(2));
  const std::string third = SubmitTo("default");
  dispatcher_->Wake();
  auto next = NextNotHeartbeat(*w);
  ASSERT_TRUE(next.has_value());
  ASSERT_EQ(next->kind_case(), ConnectResponse::kAssign)
      << "a wall-clock step ended a lease: " << next->DebugString();
  EXPECT_EQ(next->assign().job().id(), third);
  EXPECT_EQ(dispatcher_->Stats().lease_expiries, 0);
  EXPECT_EQ(Get(timed_id).state, JobState::kRunning);
  EXPECT_EQ(Get(plain_id).state, JobState::kRunning);
  // Real time still ends the attempt timeout, 10 s after the assign.
  clock_.Advance(absl::Seconds(11));
  dispatcher_->Wake();
  auto cancel = w->NextOf(ConnectResponse::kCancel);
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->cancel().job_id(), timed_id);
  EXPECT_EQ(cancel->cancel().reason(), "attempt timeout");
}

TEST_F(WorkerServiceTest, AWallClockStepBackDoesNotExtendALease) {
  auto w = Connect("w");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  clock_.Set(clock_.Now() - absl::Hours(2));
  // 31 s of silence, the lease being 30 s: it ends as if no step happened.
  clock_.Advance(absl::Seconds(31));
  dispatcher_->Wake();
  auto cancel = w->NextOf(ConnectResponse::kCancel);
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->cancel().reason(), "lease expired");
  EXPECT_EQ(
      events_.WaitForTransition(id, JobState::kRunning, JobState::kQueued),
      "lease expired");
}

// #27: what a worker reports is bounded, so that a job never grows past what
// a client with gRPC's default 4 MiB limit can read back (GetJob, a watch).
TEST_F(WorkerServiceTest,
       ReportsThatWouldOutgrowAClientsMessageLimitAreRejected) {
  auto w = Connect("w");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  auto expect_rejected = [&](const v1::ConnectRequest& report,
                             const std::string& field) {
    ASSERT_TRUE(w->Send(report));
    auto rejected = w->NextOf(ConnectResponse::kRejected);
    ASSERT_TRUE(rejected.has_value());
    EXPECT_EQ(rejected->rejected().code(), 3);  // INVALID_ARGUMENT
    EXPECT_NE(rejected->rejected().message().find(field), std::string::npos)
        << rejected->rejected().message();
    EXPECT_NE(rejected->rejected().message().find("at most"), std::string::npos)
        << rejected->rejected().message();
  };
  v1::ConnectRequest complete;
  complete.mutable_complete()->set_job_id(id);
  complete.mutable_complete()->set_attempt(1);
  complete.mutable_complete()->mutable_result()->set_payload(
      std::string((1 << 20) + 1, 'r'));
  expect_rejected(complete, "complete.result");
  v1::ConnectRequest checkpoint;
  checkpoint.mutable_checkpoint()->set_job_id(id);
  checkpoint.mutable_checkpoint()->set_attempt(1);
  checkpoint.mutable_checkpoint()->set_data(std::string((512 << 10) + 1, 'c'));
  expect_rejected(checkpoint, "checkpoint.data");
  v1::ConnectRequest progress;
  progress.mutable_progress()->set_job_id(id);
  progress.mutable_progress()->set_attempt(1);
  progress.mutable_progress()->set_log(std::string((64 << 10) + 1, 'l'));
  expect_rejected(progress, "progress.log");
  v1::ConnectRequest fail;
  fail.mutable_fail()->set_job_id(id);
  fail.mutable_fail()->set_attempt(1);
  fail.mutable_fail()->mutable_error()->set_message(
      std::string((64 << 10) + 1, 'e'));
  expect_rejected(fail, "fail.error");
  // Nothing was written; a report within the limits still completes it.
  EXPECT_EQ(Get(id).state, JobState::kRunning);
  complete.mutable_complete()->mutable_result()->set_payload(
      std::string(1 << 19, 'r'));
  ASSERT_TRUE(w->Send(complete));
  ASSERT_TRUE(events_.WaitForState(id, JobState::kSucceeded));
  EXPECT_EQ(Get(id).result->payload.size(), 1u << 19);
}

TEST_F(WorkerServiceTest, RetriesExhaustToFailedWithTheLastError) {
  auto w = Connect("w");
  Job job;
  job.max_attempts = 2;
  const std::string id = Submit(job);
  auto first = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(first.has_value());
  w->Fail(id, 1, "first error", /*retryable=*/true);
  ASSERT_TRUE(events_.WaitForState(id, JobState::kScheduled));
  EXPECT_EQ(Get(id).error->message, "first error");
  // The backoff (1s at the centre of the jitter band) passes.
  clock_.Advance(absl::Seconds(1));
  dispatcher_->Wake();
  auto second = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->assign().attempt(), 2);
  w->Fail(id, 2, "second error", /*retryable=*/true);
  ASSERT_TRUE(events_.WaitForState(id, JobState::kFailed));
  Job failed = Get(id);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_EQ(failed.error->message, "second error");
}

TEST_F(WorkerServiceTest, CancelOfARunningJobReachesTheWorker) {
  auto w = Connect("w");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  absl::Notification requested;
  dispatcher_->RequestCancel(id, "cancelled by user",
                             [&](absl::StatusOr<Job> r) {
                               EXPECT_TRUE(r.ok()) << r.status();
                               requested.Notify();
                             });
  requested.WaitForNotification();
  auto cancel = w->NextOf(ConnectResponse::kCancel);
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->cancel().job_id(), id);
  EXPECT_EQ(cancel->cancel().reason(), "cancelled by user");
  w->Ack(id, 1);
  ASSERT_TRUE(events_.WaitForState(id, JobState::kCancelled));
  EXPECT_EQ(Get(id).state, JobState::kCancelled);
}

TEST_F(WorkerServiceTest, CancelWithoutAckEndsWhenTheLeaseEnds) {
  auto w = Connect("w");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  absl::Notification requested;
  dispatcher_->RequestCancel(id, "stop",
                             [&](absl::StatusOr<Job>) { requested.Notify(); });
  requested.WaitForNotification();
  ASSERT_TRUE(w->NextOf(ConnectResponse::kCancel).has_value());
  w->Kill();
  ASSERT_TRUE(events_.WaitForState(id, JobState::kCancelled));
}

TEST_F(WorkerServiceTest, CancelRequestedBeforeACrashEndsCancelledOnRestart) {
  auto w = Connect("w");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  absl::Notification requested;
  dispatcher_->RequestCancel(id, "stop it", [&](absl::StatusOr<Job> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    requested.Notify();
  });
  requested.WaitForNotification();
  ASSERT_TRUE(w->NextOf(ConnectResponse::kCancel).has_value());
  EXPECT_EQ(Get(id).stop_request, StopRequest::kCancel);

  CrashAndRestart();
  // Ended by the recovery, not by the old stream's close.
  EXPECT_EQ(
      events_.WaitForTransition(id, JobState::kRunning, JobState::kCancelled),
      "stop it (server restarted)");
  Job job = Get(id);
  EXPECT_EQ(job.state, JobState::kCancelled);
  EXPECT_EQ(job.stop_request, StopRequest::kNone);
  ASSERT_TRUE(job.error.has_value());
  EXPECT_EQ(job.error->message, "stop it");
  // Nothing is left to assign.
  auto w2 = Connect("w2");
  EXPECT_FALSE(w2->NextOf(ConnectResponse::kAssign, absl::Milliseconds(300))
                   .has_value());
}

TEST_F(WorkerServiceTest, PauseRequestedBeforeACrashEndsPausedOnRestart) {
  auto w = Connect("w");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  absl::Notification requested;
  dispatcher_->RequestPause(id, [&](absl::StatusOr<Job> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    requested.Notify();
  });
  requested.WaitForNotification();
  ASSERT_TRUE(w->NextOf(ConnectResponse::kPause).has_value());

  CrashAndRestart();
  EXPECT_EQ(
      events_.WaitForTransition(id, JobState::kRunning, JobState::kPaused),
      "paused (server restarted)");
  EXPECT_EQ(Get(id).state, JobState::kPaused);
}

TEST_F(WorkerServiceTest, RunningJobWithoutRequestIsRequeuedOnRestart) {
  auto w = Connect("w");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  CrashAndRestart();
  EXPECT_EQ(
      events_.WaitForTransition(id, JobState::kRunning, JobState::kQueued),
      "server restarted");
  EXPECT_EQ(Get(id).state, JobState::kQueued);
}

TEST_F(WorkerServiceTest, ScheduledJobIsPromotedWhenDue) {
  auto w = Connect("w");
  Job job;
  job.schedule_time = clock_.Now() + absl::Minutes(5);
  const std::string id = Submit(job);
  EXPECT_EQ(Get(id).state, JobState::kScheduled);
  EXPECT_FALSE(
      w->NextOf(ConnectResponse::kAssign, absl::Milliseconds(200)).has_value());
  clock_.Advance(absl::Minutes(5));
  dispatcher_->Wake();
  EXPECT_EQ(
      events_.WaitForTransition(id, JobState::kScheduled, JobState::kQueued),
      "schedule time reached");
  auto assign = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->assign().job().id(), id);
}

TEST_F(WorkerServiceTest, WorkersOnlyGetKindsTheyDeclared) {
  TestWorker images(channel_, "images", {}, 1, {"resize"});
  ASSERT_TRUE(images.Next().has_value());
  Job mail;
  mail.kind = "send-mail";
  const std::string mail_id = Submit(mail);
  Job resize;
  resize.kind = "resize";
  const std::string resize_id = Submit(resize);
  auto assign = images.NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->assign().job().id(), resize_id);
  std::vector<ExplainGate> gates = dispatcher_->Explain(Get(mail_id));
  ASSERT_EQ(gates.size(), 1u);
  EXPECT_EQ(gates[0].type, "NO_WORKER");
}

TEST_F(WorkerServiceTest, ExplainNamesScheduleLeaseAndConcurrencyGates) {
  Job later;
  later.schedule_time = clock_.Now() + absl::Hours(1);
  const std::string later_id = Submit(later);
  auto gates = dispatcher_->Explain(Get(later_id));
  ASSERT_FALSE(gates.empty());
  EXPECT_EQ(gates[0].type, "SCHEDULE_TIME");

  auto w = Connect("w1");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  ASSERT_TRUE(events_.WaitForState(id, JobState::kRunning));
  gates = dispatcher_->Explain(Get(id));
  ASSERT_EQ(gates.size(), 1u);
  EXPECT_EQ(gates[0].type, "LEASED");
  EXPECT_NE(gates[0].description.find("w1"), std::string::npos);

  SetConcurrency("default", 1);
  const std::string waiting = SubmitTo("default");
  gates = dispatcher_->Explain(Get(waiting));
  bool limit = false;
  for (const auto& g : gates) limit |= g.type == "CONCURRENCY_LIMIT";
  EXPECT_TRUE(limit);
}

TEST_F(WorkerServiceTest, ConcurrencyLimitHoldsAQueue) {
  SetConcurrency("default", 1);
  auto w = Connect("w", {}, 3);
  SubmitTo("default");
  SubmitTo("default");
  auto first = w->NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(
      w->NextOf(ConnectResponse::kAssign, absl::Milliseconds(300)).has_value());
  w->Complete(first->assign().job().id(), 1);
  EXPECT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
}

TEST_F(WorkerServiceTest, BusyQueuesWithWeightsThreeToOneShareThreeToOne) {
  constexpr int kJobsPerQueue = 150;
  for (int i = 0; i < kJobsPerQueue; ++i) {
    SubmitTo("heavy");
    SubmitTo("light");
  }
  auto w = Connect("w", {"heavy:3", "light:1"}, 4);
  std::map<std::string, int> taken;
  constexpr int kSample = 160;  // both queues stay busy throughout
  for (int i = 0; i < kSample; ++i) {
    auto assign = w->NextOf(ConnectResponse::kAssign);
    ASSERT_TRUE(assign.has_value());
    ++taken[assign->assign().job().queue()];
    w->Complete(assign->assign().job().id(), assign->assign().attempt());
  }
  const double heavy = taken["heavy"] / static_cast<double>(kSample);
  EXPECT_NEAR(heavy, 0.75, 0.05) << taken["heavy"] << ":" << taken["light"];
}

TEST_F(WorkerServiceTest, ShutdownDrainsAndRequeuesRunningJobsDurably) {
  auto w = Connect("w");
  const std::string id = SubmitTo("default");
  ASSERT_TRUE(w->NextOf(ConnectResponse::kAssign).has_value());
  service_->Shutdown(clock_.Now() + absl::Seconds(1));
  auto drain = w->NextOf(ConnectResponse::kDrain);
  ASSERT_TRUE(drain.has_value());
  // The worker does not finish in time: the server's grace ends.
  server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(200)));
  EXPECT_TRUE(dispatcher_->ReleaseAllLeasesBlocking(absl::Seconds(10)));
  EXPECT_EQ(Get(id).state, JobState::kQueued);
  EXPECT_EQ(
      events_.WaitForTransition(id, JobState::kRunning, JobState::kQueued),
      "server shutting down");
}

TEST_F(WorkerServiceTest, IdleSessionsEndAtDrainWithUnavailable) {
  auto w = Connect("w");
  service_->Shutdown(clock_.Now() + absl::Seconds(30));
  ASSERT_TRUE(w->NextOf(ConnectResponse::kDrain).has_value());
  const grpc::Status status = w->AwaitEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(1));
}

TEST_F(WorkerServiceTest, SessionRefusedDuringShutdownCarriesRetryInfo) {
  service_->Shutdown(clock_.Now() + absl::Seconds(30));
  TestWorker late(channel_, "late", {}, 1);
  const grpc::Status status = late.AwaitEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(RetryDelayOf(status), absl::Seconds(1));
}

TEST_F(WorkerServiceTest, CliWorkerRunsTheCommandAndDrainsOnSigterm) {
  Job job;
  job.args_json = R"({"n":2})";
  const std::string id = Submit(job);
  const std::string cmd = absl::StrCat(
      JOBWIRE_CLI_PATH, " --addr ", addr_,
      " worker --queue default --slots 2 --exec "
      "'cat >/dev/null; echo progress 1/2 half; echo \"{\\\"ok\\\":true}\"'"
      " >/dev/null 2>&1 & echo $!");
  FILE* out = popen(cmd.c_str(), "r");
  ASSERT_NE(out, nullptr);
  int pid = 0;
  ASSERT_EQ(fscanf(out, "%d", &pid), 1);
  pclose(out);
  EXPECT_TRUE(events_.WaitForState(id, JobState::kSucceeded));
  Job done = Get(id);
  EXPECT_EQ(done.result->data_json, R"({"ok":true})");
  EXPECT_EQ(done.progress->done, 1);
  EXPECT_EQ(done.progress->total, 2);
  kill(pid, SIGTERM);
  // The worker drains, closes its session and exits (polled, bounded).
  bool exited = false;
  for (int i = 0; i < 400 && !exited; ++i) {
    exited = kill(pid, 0) != 0;
    if (!exited) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(exited);
  EXPECT_EQ(dispatcher_->Stats().sessions, 0);
}

}  // namespace
}  // namespace jobwire::test
