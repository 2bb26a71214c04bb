#include "server/scheduling/dispatcher.h"

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/core/retry.h"
#include "server/storage/job_store_test_util.h"
#include "server/storage/sqlite_job_store.h"
#include "server/storage/sqlite_test_store.h"
#include "server/storage/temp_db_dir.h"

namespace jobwire::test {
namespace {

// What the Dispatcher sent to one worker, in order.
struct Sent {
  std::string what;  // assign, cancel, pause, drain, end
  std::string job_id;
  int32_t attempt = 0;
  std::string reason;
};

// A worker's connection that records what it is sent. The Dispatcher calls
// it with its lock held, as the real stream reactor is.
class RecordingConnection final : public WorkerConnection {
 public:
  // `encoder` makes JobAssigns; not owned.
  explicit RecordingConnection(
      const AssignEncoder* encoder = &JobAssignEncoder())
      : encoder_(encoder) {}

  const AssignEncoder& assign_encoder() const override { return *encoder_; }
  void SendAssign(std::unique_ptr<EncodedAssign> assign) override {
    const Job& job = static_cast<JobAssign&>(*assign).job;
    Add({"assign", job.id, job.attempt, ""});
  }
  void SendCancel(const std::string& job_id, int32_t attempt,
                  const std::string& reason) override {
    Add({"cancel", job_id, attempt, reason});
  }
  void SendPause(const std::string& job_id, int32_t attempt) override {
    Add({"pause", job_id, attempt, ""});
  }
  void SendDrain(absl::Time) override { Add({"drain", "", 0, ""}); }
  void EndSession() override { Add({"end", "", 0, ""}); }

  // Waits (real time, at most 10 s) until `n` messages of kind `what` were
  // sent; returns every message sent so far.
  std::vector<Sent> Await(const std::string& what, size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertReaderHeld();
      size_t count = 0;
      for (const Sent& s : sent_) count += s.what == what ? 1 : 0;
      return count >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return sent_;
  }
  // The job ids of the assigns sent so far.
  std::vector<std::string> Assigned() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const Sent& s : sent_) {
      if (s.what == "assign") ids.push_back(s.job_id);
    }
    return ids;
  }

 private:
  void Add(Sent s) {
    absl::MutexLock lock(&mu_);
    sent_.push_back(std::move(s));
  }

  const AssignEncoder* const encoder_;
  absl::Mutex mu_;
  std::vector<Sent> sent_ ABSL_GUARDED_BY(mu_);
};

// Encodes assigns as JobAssigns and, while doing so, takes the Dispatcher's
// lock (Stats): were it called with that lock held, the test would hang.
class LockProbingEncoder final : public AssignEncoder {
 public:
  void set_dispatcher(Dispatcher* d) { dispatcher_ = d; }
  std::unique_ptr<EncodedAssign> Encode(
      const Job& job, absl::Time lease_deadline) const override {
    if (dispatcher_ != nullptr) dispatcher_->Stats();
    return JobAssignEncoder().Encode(job, lease_deadline);
  }

 private:
  Dispatcher* dispatcher_ = nullptr;
};

struct JobSpec {
  std::string queue = "default";
  int32_t priority = 0;
  absl::Time schedule_time = absl::InfinitePast();
};

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }

  void OpenStore() {
    absl::StatusOr<std::unique_ptr<SqliteJobStore>> store =
        OpenTestSqliteStore(dir_, &clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  void TearDown() override {
    if (dispatcher_ != nullptr) dispatcher_->Stop();
    if (store_ != nullptr) store_->Shutdown();
  }

  // Builds the dispatcher over the store, recovers and starts it, as App
  // does.
  void StartDispatcher(DispatcherOptions options = {}) {
    dispatcher_ =
        std::make_unique<Dispatcher>(store_.get(), &clock_, &random_, options);
    store_->AddCommitListener(dispatcher_.get());
    ASSERT_TRUE(dispatcher_->RecoverBlocking().ok());
    dispatcher_->Start();
  }

  std::vector<Job> Submit(const std::vector<JobSpec>& specs) {
    std::vector<NewJob> jobs(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      jobs[i].job.queue = specs[i].queue;
      jobs[i].job.kind = "k";
      jobs[i].job.priority = specs[i].priority;
      jobs[i].job.schedule_time = specs[i].schedule_time;
    }
    return SubmitJobs(*store_, std::move(jobs));
  }
  Job SubmitOne(JobSpec spec = {}) { return Submit({spec}).at(0); }

  Job Get(const std::string& id) {
    absl::StatusOr<Job> job = store_->GetJobBlocking(id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : Job{};
  }

  // A connection that lives as long as the fixture.
  RecordingConnection& NewConnection(
      const AssignEncoder* encoder = &JobAssignEncoder()) {
    connections_.push_back(std::make_unique<RecordingConnection>(encoder));
    return *connections_.back();
  }

  int64_t Connect(RecordingConnection* conn,
                  std::vector<WorkerQueueSpec> queues = {}, int32_t slots = 1,
                  const std::string& worker_id = "w1") {
    WorkerHello hello;
    hello.worker_id = worker_id;
    hello.queues = std::move(queues);
    hello.slots = slots;
    absl::StatusOr<int64_t> session = dispatcher_->AddSession(hello, conn);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *session : 0;
  }

  absl::Status Complete(int64_t session, const Job& job) {
    return Wait([&](StatusCallback done) {
      dispatcher_->Complete(session, job.id, job.attempt, JobResult{},
                            std::move(done));
    });
  }

  // Calls `start` with a callback and waits for its status.
  static absl::Status Wait(const std::function<void(StatusCallback)>& start) {
    absl::Notification done;
    absl::Status status;
    start([&](absl::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  }

  // Waits (real time, at most 10 s) until the store has `id` in `state`.
  JobState AwaitState(const std::string& id, JobState state) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    JobState now = Get(id).state;
    while (now != state && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));
      now = Get(id).state;
    }
    return now;
  }

  static std::vector<std::string> GateTypes(
      const std::vector<ExplainGate>& gates) {
    std::vector<std::string> types;
    for (const ExplainGate& g : gates) types.push_back(g.type);
    return types;
  }

  TempDbDir dir_;
  FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  FixedRandomSource random_{0.5};
  LockProbingEncoder probing_encoder_;  // outlives the dispatcher
  // Outlive the dispatcher and the store, whose callbacks may still call them
  // after a test's body returned.
  std::deque<std::unique_ptr<RecordingConnection>> connections_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<SqliteJobStore> store_;
};

TEST_F(DispatcherTest, AssignsByPriorityThenAge) {
  StartDispatcher();
  std::vector<Job> jobs =
      Submit({{"default", 0}, {"default", 5}, {"default", 0}, {"default", 9}});
  RecordingConnection& conn = NewConnection();
  const int64_t session = Connect(&conn);

  std::vector<std::string> order;
  for (size_t i = 1; i <= jobs.size(); ++i) {
    ASSERT_EQ(conn.Await("assign", i).size(), i);
    order.push_back(conn.Assigned().back());
    ASSERT_TRUE(Complete(session, Get(order.back())).ok());
  }

  EXPECT_EQ(order, (std::vector<std::string>{jobs[3].id, jobs[1].id, jobs[0].id,
                                             jobs[2].id}));
  EXPECT_EQ(Get(jobs[2].id).state, JobState::kSucceeded);
}

TEST_F(DispatcherTest, AssignIsEncodedOutsideTheDispatchersLock) {
  StartDispatcher();
  probing_encoder_.set_dispatcher(dispatcher_.get());
  Job job = SubmitOne();
  RecordingConnection& conn = NewConnection(&probing_encoder_);
  Connect(&conn);

  conn.Await("assign", 1);
  EXPECT_EQ(conn.Assigned(), std::vector<std::string>{job.id});
}

TEST_F(DispatcherTest, BusyQueuesShareSlotsByTheirWeights) {
  StartDispatcher();
  std::vector<JobSpec> specs;
  for (int i = 0; i < 8; ++i) specs.push_back({"heavy"});
  for (int i = 0; i < 8; ++i) specs.push_back({"light"});
  std::vector<Job> jobs = Submit(specs);
  RecordingConnection& conn = NewConnection();
  Connect(&conn, {{"heavy", 3}, {"light", 1}}, /*slots=*/8);

  conn.Await("assign", 8);

  int heavy = 0;
  for (const std::string& id : conn.Assigned()) {
    heavy += Get(id).queue == "heavy" ? 1 : 0;
  }
  EXPECT_EQ(conn.Assigned().size(), 8u);
  EXPECT_EQ(heavy, 6);
}

TEST_F(DispatcherTest, ConcurrencyLimitHoldsAQueueUntilALeaseEnds) {
  DispatcherOptions options;
  options.queue_concurrency["q"] = 2;
  StartDispatcher(options);
  std::vector<Job> jobs = Submit({{"q"}, {"q"}, {"q"}});
  RecordingConnection& conn = NewConnection();
  const int64_t session = Connect(&conn, {{"q", 0}}, /*slots=*/5);

  conn.Await("assign", 2);
  // The limit is taken at pick time: the third job stays ready.
  EXPECT_EQ(dispatcher_->Stats().leases, 2);
  EXPECT_EQ(dispatcher_->Stats().ready, 1);
  EXPECT_EQ(GateTypes(dispatcher_->Explain(Get(jobs[2].id))),
            std::vector<std::string>{"CONCURRENCY_LIMIT"});

  ASSERT_TRUE(Complete(session, Get(conn.Assigned()[0])).ok());

  conn.Await("assign", 3);
  EXPECT_EQ(conn.Assigned().size(), 3u);
  EXPECT_EQ(conn.Assigned()[2], jobs[2].id);
}

TEST_F(DispatcherTest, DispatchPauseHoldsEveryQueueUntilResumed) {
  StartDispatcher();
  ASSERT_TRUE(dispatcher_->SetDispatchPausedBlocking(true, "deploy").ok());
  Job job = SubmitOne();
  RecordingConnection& conn = NewConnection();
  Connect(&conn);
  dispatcher_->Wake();

  EXPECT_EQ(dispatcher_->dispatch_pause().reason, "deploy");
  std::vector<ExplainGate> gates = dispatcher_->Explain(Get(job.id));
  ASSERT_EQ(GateTypes(gates), std::vector<std::string>{"DISPATCH_PAUSED"});
  EXPECT_NE(gates[0].description.find("(deploy)"), std::string::npos);
  EXPECT_TRUE(conn.Assigned().empty());

  ASSERT_TRUE(dispatcher_->SetDispatchPausedBlocking(false, "").ok());

  conn.Await("assign", 1);
  EXPECT_EQ(conn.Assigned(), std::vector<std::string>{job.id});
  EXPECT_FALSE(dispatcher_->dispatch_pause().paused);
}

TEST_F(DispatcherTest, PausedQueueWaitsWhileAnotherQueueOfTheWorkerRuns) {
  StartDispatcher();
  ASSERT_TRUE(dispatcher_
                  ->UpdateQueueBlocking(
                      "held", [](QueueRow* row) { row->paused = true; })
                  .ok());
  Job held = SubmitOne({"held"});
  Job open = SubmitOne({"open"});
  RecordingConnection& conn = NewConnection();
  const int64_t session = Connect(&conn, {{"held", 0}, {"open", 0}}, 2);

  // The held job was ready first and the worker has a free slot: only the
  // pause keeps it back.
  conn.Await("assign", 1);
  ASSERT_TRUE(Complete(session, Get(open.id)).ok());
  EXPECT_EQ(conn.Assigned(), std::vector<std::string>{open.id});
  EXPECT_EQ(GateTypes(dispatcher_->Explain(Get(held.id))),
            std::vector<std::string>{"QUEUE_PAUSED"});

  ASSERT_TRUE(dispatcher_
                  ->UpdateQueueBlocking(
                      "held", [](QueueRow* row) { row->paused = false; })
                  .ok());

  conn.Await("assign", 2);
  EXPECT_EQ(conn.Assigned(), (std::vector<std::string>{open.id, held.id}));
}

TEST_F(DispatcherTest, TimedQueuePauseEndsAtItsResumeTimeOnTheInjectedClock) {
  StartDispatcher();
  const absl::Time resume = clock_.Now() + absl::Minutes(5);
  absl::StatusOr<QueueRow> row =
      dispatcher_->UpdateQueueBlocking("held", [&](QueueRow* r) {
        r->paused = true;
        r->resume_time = resume;
      });
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(row->resume_time, resume);
  Job held = SubmitOne({"held"});
  Job open = SubmitOne({"open"});
  RecordingConnection& conn = NewConnection();
  const int64_t session = Connect(&conn, {{"held", 0}, {"open", 0}}, 2);
  conn.Await("assign", 1);
  ASSERT_EQ(conn.Assigned(), std::vector<std::string>{open.id});
  // Done before the clock jumps, so no lease expires (that would make the
  // session silent).
  ASSERT_TRUE(Complete(session, Get(open.id)).ok());
  std::vector<ExplainGate> gates = dispatcher_->Explain(Get(held.id));
  ASSERT_EQ(GateTypes(gates), std::vector<std::string>{"QUEUE_PAUSED"});
  EXPECT_NE(gates[0].description.find("until "), std::string::npos);

  clock_.Advance(absl::Minutes(5));
  dispatcher_->Wake();

  conn.Await("assign", 2);
  EXPECT_EQ(conn.Assigned(), (std::vector<std::string>{open.id, held.id}));
  std::vector<Dispatcher::QueueView> queues = dispatcher_->Queues({});
  ASSERT_EQ(queues.size(), 2u);
  EXPECT_EQ(queues[0].settings.name, "held");
  EXPECT_FALSE(queues[0].settings.paused);
  EXPECT_TRUE(queues[0].stored);
}

TEST_F(DispatcherTest, QueuePauseAndLimitSurviveARestartOfTheDispatcher) {
  StartDispatcher();
  ASSERT_TRUE(dispatcher_->SetDispatchPausedBlocking(true, "night").ok());
  ASSERT_TRUE(dispatcher_
                  ->UpdateQueueBlocking("q",
                                        [](QueueRow* row) {
                                          row->paused = true;
                                          row->concurrency_limit = 4;
                                          row->weight = 7;
                                        })
                  .ok());
  // A restart: the store closes and opens again under a new dispatcher.
  dispatcher_->Stop();
  store_->Shutdown();
  dispatcher_.reset();
  store_.reset();
  OpenStore();

  StartDispatcher();

  EXPECT_TRUE(dispatcher_->dispatch_pause().paused);
  EXPECT_EQ(dispatcher_->dispatch_pause().reason, "night");
  std::vector<Dispatcher::QueueView> queues = dispatcher_->Queues({});
  ASSERT_EQ(queues.size(), 1u);
  EXPECT_TRUE(queues[0].settings.paused);
  EXPECT_EQ(queues[0].settings.concurrency_limit, 4);
  EXPECT_EQ(queues[0].settings.weight, 7);
}

TEST_F(DispatcherTest, ExpiredLeaseCancelsOnTheWorkerAndHandsTheJobBack) {
  DispatcherOptions options;
  options.lease_ttl = absl::Seconds(30);
  StartDispatcher(options);
  Job job = SubmitOne();
  RecordingConnection& silent = NewConnection();
  Connect(&silent, {}, 1, "silent");
  silent.Await("assign", 1);

  clock_.Advance(absl::Seconds(31));
  dispatcher_->Wake();

  std::vector<Sent> sent = silent.Await("cancel", 1);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].what, "cancel");
  EXPECT_EQ(sent[1].job_id, job.id);
  EXPECT_EQ(sent[1].attempt, 1);
  EXPECT_EQ(AwaitState(job.id, JobState::kQueued), JobState::kQueued);
  EXPECT_EQ(dispatcher_->Stats().lease_expiries, 1);

  // The silent session gets nothing more; another worker runs attempt 2.
  RecordingConnection& other = NewConnection();
  const int64_t session = Connect(&other, {}, 1, "other");
  other.Await("assign", 1);
  ASSERT_EQ(other.Assigned(), std::vector<std::string>{job.id});
  Job again = Get(job.id);
  EXPECT_EQ(again.attempt, 2);
  EXPECT_EQ(again.worker_id, "other");
  EXPECT_TRUE(Complete(session, again).ok());
  EXPECT_EQ(silent.Assigned().size(), 1u);
}

TEST_F(DispatcherTest, ReportOfAnAttemptWhoseLeaseEndedIsAborted) {
  StartDispatcher();
  Job job = SubmitOne();
  RecordingConnection& conn = NewConnection();
  const int64_t session = Connect(&conn);
  conn.Await("assign", 1);
  Job running = Get(job.id);

  dispatcher_->CloseSession(session);
  EXPECT_EQ(AwaitState(job.id, JobState::kQueued), JobState::kQueued);

  EXPECT_EQ(Complete(session, running).code(), absl::StatusCode::kAborted);
}

TEST_F(DispatcherTest, CancelOfARunningJobReachesItsWorkerAfterTheAssign) {
  StartDispatcher();
  Job job = SubmitOne();
  RecordingConnection& conn = NewConnection();
  const int64_t session = Connect(&conn);
  conn.Await("assign", 1);

  absl::StatusOr<Job> asked = AwaitJob([&](JobCallback done) {
    dispatcher_->RequestCancel(job.id, "not needed", std::move(done));
  });
  ASSERT_TRUE(asked.ok()) << asked.status();
  EXPECT_EQ(asked->state, JobState::kRunning);

  std::vector<Sent> sent = conn.Await("cancel", 1);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].what, "assign");
  EXPECT_EQ(sent[1].what, "cancel");
  EXPECT_EQ(sent[1].reason, "not needed");

  ASSERT_TRUE(Wait([&](StatusCallback done) {
                dispatcher_->Ack(session, job.id, asked->attempt,
                                 /*stopped=*/true, std::move(done));
              }).ok());
  EXPECT_EQ(Get(job.id).state, JobState::kCancelled);
  EXPECT_EQ(dispatcher_->Stats().leases, 0);
}

TEST_F(DispatcherTest, CancelOfAJobThatIsNotRunningIsAFailedPrecondition) {
  StartDispatcher();
  Job job = SubmitOne();

  absl::StatusOr<Job> asked = AwaitJob([&](JobCallback done) {
    dispatcher_->RequestCancel(job.id, "", std::move(done));
  });

  EXPECT_EQ(asked.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(DispatcherTest, PauseOfARunningJobAskedOfItsWorkerEndsPausedOnAck) {
  StartDispatcher();
  Job job = SubmitOne();
  RecordingConnection& conn = NewConnection();
  const int64_t session = Connect(&conn);
  conn.Await("assign", 1);

  ASSERT_TRUE(AwaitJob([&](JobCallback done) {
                dispatcher_->RequestPause(job.id, std::move(done));
              }).ok());
  std::vector<Sent> sent = conn.Await("pause", 1);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].job_id, job.id);
  ASSERT_TRUE(Wait([&](StatusCallback done) {
                dispatcher_->Ack(session, job.id, 1, /*stopped=*/true,
                                 std::move(done));
              }).ok());

  EXPECT_EQ(Get(job.id).state, JobState::kPaused);
  EXPECT_EQ(GateTypes(dispatcher_->Explain(Get(job.id))),
            std::vector<std::string>{"JOB_PAUSED"});
}

TEST_F(DispatcherTest, ExplainNamesEachGateOfAJob) {
  StartDispatcher();
  Job later = SubmitOne({"default", 0, clock_.Now() + absl::Hours(1)});
  Job waiting = SubmitOne();

  std::vector<ExplainGate> gates = dispatcher_->Explain(Get(later.id));
  EXPECT_EQ(GateTypes(gates),
            (std::vector<std::string>{"SCHEDULE_TIME", "NO_WORKER"}));
  EXPECT_EQ(gates[0].description, "scheduled for 2027-01-15T09:00:00.000Z");
  gates = dispatcher_->Explain(Get(waiting.id));
  ASSERT_EQ(GateTypes(gates), std::vector<std::string>{"NO_WORKER"});
  EXPECT_EQ(gates[0].description,
            "no connected worker serves queue default and kind k");

  RecordingConnection& conn = NewConnection();
  const int64_t session = Connect(&conn, {}, 1, "w7");
  conn.Await("assign", 1);
  Job another = SubmitOne();
  gates = dispatcher_->Explain(Get(waiting.id));
  ASSERT_EQ(GateTypes(gates), std::vector<std::string>{"LEASED"});
  EXPECT_EQ(gates[0].description,
            "lease held by worker w7 until 2027-01-15T08:00:30.000Z");
  gates = dispatcher_->Explain(Get(another.id));
  ASSERT_EQ(GateTypes(gates), std::vector<std::string>{"NO_WORKER"});
  EXPECT_EQ(gates[0].description,
            "all 1 workers for queue default and kind k are busy");

  ASSERT_TRUE(Complete(session, Get(waiting.id)).ok());
  gates = dispatcher_->Explain(Get(waiting.id));
  ASSERT_EQ(GateTypes(gates), std::vector<std::string>{"TERMINAL"});
  EXPECT_EQ(gates[0].description, "job is SUCCEEDED and will not run again");

  dispatcher_->Drain(clock_.Now() + absl::Minutes(1));
  EXPECT_EQ(GateTypes(dispatcher_->Explain(Get(later.id))),
            (std::vector<std::string>{"SCHEDULE_TIME", "DRAINING"}));
}

TEST_F(DispatcherTest, DrainEndsIdleSessionsAndRefusesNewOnes) {
  StartDispatcher();
  RecordingConnection& conn = NewConnection();
  Connect(&conn);

  dispatcher_->Drain(clock_.Now() + absl::Minutes(1));

  std::vector<Sent> sent = conn.Await("end", 1);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].what, "drain");
  EXPECT_EQ(sent[1].what, "end");
  RecordingConnection& late = NewConnection();
  WorkerHello hello;
  hello.worker_id = "late";
  EXPECT_EQ(dispatcher_->AddSession(hello, &late).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace jobwire::test
