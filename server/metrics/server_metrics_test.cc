#include "server/metrics/server_metrics.h"

#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/core/job_update.h"
#include "server/core/retry.h"
#include "server/core/transitions.h"
#include "server/core/worker_transitions.h"
#include "server/metrics/promtool_check.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/job_store_test_util.h"
#include "server/storage/sqlite_job_store.h"
#include "server/storage/sqlite_test_store.h"
#include "server/storage/temp_db_dir.h"

namespace jobwire::test {
namespace {

namespace wt = worker_transitions;

// The value of one series ("name{labels}") in the text exposition; NaN when
// the series is missing.
double Value(const std::string& text, const std::string& series) {
  const std::string key = "\n" + series + " ";
  const size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return std::numeric_limits<double>::quiet_NaN();
  return std::strtod(text.c_str() + at + key.size() - 1, nullptr);
}

// jobwire_jobs{queue,state}.
double Jobs(const std::string& text, const std::string& queue,
            const std::string& state) {
  return Value(text,
               "jobwire_jobs{queue=\"" + queue + "\",state=\"" + state + "\"}");
}

bool Has(const std::string& text, const std::string& name) {
  return ("\n" + text).find("\n" + name) != std::string::npos;
}

// Records what the Dispatcher sends to one worker.
class RecordingConnection final : public WorkerConnection {
 public:
  const AssignEncoder& assign_encoder() const override {
    return JobAssignEncoder();
  }
  void SendAssign(std::unique_ptr<EncodedAssign> assign) override {
    absl::MutexLock lock(&mu_);
    assigned_.push_back(static_cast<JobAssign&>(*assign).job);
  }
  void SendCancel(const std::string&, int32_t, const std::string&) override {}
  void SendPause(const std::string&, int32_t) override {}
  void SendDrain(absl::Time) override {}
  void EndSession() override {}

  // Waits (real time, up to 10 s) for `n` assigns; returns them.
  std::vector<Job> AwaitAssigned(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n] {
      mu_.AssertReaderHeld();
      return assigned_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return assigned_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Job> assigned_ ABSL_GUARDED_BY(mu_);
};

class ServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }

  void TearDown() override {
    if (dispatcher_ != nullptr) dispatcher_->Stop();
    if (store_ != nullptr) store_->Shutdown();
  }

  void OpenStore() {
    absl::StatusOr<std::unique_ptr<SqliteJobStore>> store =
        OpenTestSqliteStore(dir_, &clock_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // Builds the metrics over the store (and the dispatcher, if any) and wires
  // them like App does.
  void StartMetrics(ServerMetrics::Sources sources = {}) {
    sources.store = store_.get();
    if (sources.dispatcher == nullptr) sources.dispatcher = dispatcher_.get();
    metrics_ = std::make_unique<ServerMetrics>(std::move(sources));
    store_->AddCommitListener(metrics_.get());
    store_->SetCommitObserver(metrics_.get());
    if (dispatcher_ != nullptr) dispatcher_->SetAssignObserver(metrics_.get());
    ASSERT_TRUE(metrics_->LoadBlocking().ok());
  }

  void StartDispatcher() {
    DispatcherOptions options;
    options.lease_ttl = absl::Seconds(30);
    dispatcher_ =
        std::make_unique<Dispatcher>(store_.get(), &clock_, &random_, options);
    store_->AddCommitListener(dispatcher_.get());
  }

  std::vector<Job> Submit(const std::string& queue, int n) {
    std::vector<NewJob> jobs(n);
    for (NewJob& j : jobs) {
      j.job.queue = queue;
      j.job.kind = "k";
    }
    return SubmitJobs(*store_, std::move(jobs));
  }

  Job Mutate(const std::string& id, JobMutation mutation) {
    absl::StatusOr<Job> r = MutateSync(*store_, id, std::move(mutation));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : Job{};
  }

  Job Assign(const std::string& id) {
    return Mutate(id, [](const Job& j, absl::Time now) {
      return wt::Assign(j, now, "w1", absl::Seconds(30));
    });
  }
  Job Complete(const Job& job) {
    return Mutate(job.id,
                  [attempt = job.attempt](const Job& j, absl::Time now) {
                    return wt::Complete(j, now, attempt, JobResult{});
                  });
  }
  Job Fail(const Job& job, bool retryable) {
    return Mutate(job.id, [attempt = job.attempt, retryable](const Job& j,
                                                             absl::Time now) {
      JobError error;
      error.message = "boom";
      error.retryable = retryable;
      return wt::Fail(j, now, attempt, error, 0.5);
    });
  }

  TempDbDir dir_;
  FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  FixedRandomSource random_{0.5};
  // Destroyed after the store and the dispatcher, which call them.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<SqliteJobStore> store_;
};

TEST_F(ServerMetricsTest, CountersAndRunTimesFollowCommittedEvents) {
  StartMetrics();
  std::vector<Job> emails = Submit("emails", 3);
  Submit("reports", 1);

  // emails[0]: runs 2 s and succeeds.
  Job a = Assign(emails[0].id);
  clock_.Advance(absl::Seconds(2));
  Complete(a);
  // emails[1]: runs 1 s, fails for good, then RetryJob queues it again.
  Job b = Assign(emails[1].id);
  clock_.Advance(absl::Seconds(1));
  Fail(b, /*retryable=*/false);
  Mutate(b.id, RetryMutation(1));
  // emails[2]: cancelled before it ran.
  Mutate(emails[2].id, CancelMutation("no"));

  const std::string text = metrics_->RenderBlocking();
  EXPECT_EQ(Value(text, R"(jobwire_jobs_submitted_total{queue="emails"})"), 3);
  EXPECT_EQ(Value(text, R"(jobwire_jobs_submitted_total{queue="reports"})"), 1);
  EXPECT_EQ(Value(text, R"(jobwire_jobs_succeeded_total{queue="emails"})"), 1);
  EXPECT_EQ(Value(text, R"(jobwire_jobs_failed_total{queue="emails"})"), 1);
  EXPECT_EQ(Value(text, R"(jobwire_jobs_retried_total{queue="emails"})"), 1);
  EXPECT_EQ(Value(text, R"(jobwire_jobs_cancelled_total{queue="emails"})"), 1);
  EXPECT_EQ(Value(text, R"(jobwire_jobs_succeeded_total{queue="reports"})"), 0);
  EXPECT_EQ(
      Value(text, R"(jobwire_job_run_duration_seconds_count{queue="emails"})"),
      2);
  EXPECT_DOUBLE_EQ(
      Value(text, R"(jobwire_job_run_duration_seconds_sum{queue="emails"})"),
      3.0);
  EXPECT_EQ(
      Value(
          text,
          R"(jobwire_job_run_duration_seconds_bucket{queue="emails",le="1"})"),
      1);
  // Only the retried job is still active.
  EXPECT_EQ(Jobs(text, "emails", "queued"), 1);
  EXPECT_EQ(Jobs(text, "emails", "running"), 0);
  EXPECT_EQ(Jobs(text, "reports", "queued"), 1);
}

TEST_F(ServerMetricsTest, AFailedAttemptWithAttemptsLeftCountsAsRetried) {
  StartMetrics();
  Job job = Submit("default", 1)[0];
  Job running = Assign(job.id);
  Job after = Fail(running, /*retryable=*/true);
  ASSERT_EQ(after.state, JobState::kScheduled);  // backoff

  const std::string text = metrics_->RenderBlocking();
  EXPECT_EQ(Value(text, R"(jobwire_jobs_retried_total{queue="default"})"), 1);
  EXPECT_EQ(Value(text, R"(jobwire_jobs_failed_total{queue="default"})"), 0);
  EXPECT_EQ(Jobs(text, "default", "scheduled"), 1);
  EXPECT_EQ(Jobs(text, "default", "running"), 0);
}

TEST_F(ServerMetricsTest, JobCountsStartFromTheStoreAndFollowStatesAndMoves) {
  // Jobs written before the metrics existed (a restart) are counted by
  // LoadBlocking; ended ones are not in jobwire_jobs.
  std::vector<Job> old = Submit("emails", 4);
  Mutate(old[3].id, CancelMutation("no"));
  store_->Shutdown();
  store_.reset();
  OpenStore();
  StartMetrics();
  std::string text = metrics_->RenderBlocking();
  EXPECT_EQ(Jobs(text, "emails", "queued"), 3);
  EXPECT_FALSE(Has(text, R"(jobwire_jobs{queue="emails",state="cancelled"})"));
  // Counters count from the start of this process only.
  EXPECT_EQ(Value(text, R"(jobwire_jobs_submitted_total{queue="emails"})"), 0);

  // Paused, moved to another queue, and moved while rescheduled.
  Mutate(old[0].id, PauseMutation());
  JobPatch move;
  move.paths = {{UpdateField::kQueue, "", "queue"}};
  move.values.queue = "bulk";
  Mutate(old[1].id, UpdateMutation(move, ""));
  JobPatch move_later;
  move_later.paths = {{UpdateField::kQueue, "", "queue"},
                      {UpdateField::kScheduleTime, "", "schedule_time"}};
  move_later.values.queue = "bulk";
  move_later.values.schedule_time = clock_.Now() + absl::Hours(1);
  Job later = Mutate(old[2].id, UpdateMutation(move_later, ""));
  ASSERT_EQ(later.state, JobState::kScheduled);
  // A paused job moved to another queue.
  JobPatch move_paused;
  move_paused.paths = {{UpdateField::kQueue, "", "queue"}};
  move_paused.values.queue = "bulk";
  Mutate(old[0].id, UpdateMutation(move_paused, ""));

  text = metrics_->RenderBlocking();
  EXPECT_EQ(Jobs(text, "emails", "queued"), 0);
  EXPECT_EQ(Jobs(text, "emails", "paused"), 0);
  EXPECT_EQ(Jobs(text, "emails", "scheduled"), 0);
  EXPECT_EQ(Jobs(text, "bulk", "queued"), 1);
  EXPECT_EQ(Jobs(text, "bulk", "scheduled"), 1);
  EXPECT_EQ(Jobs(text, "bulk", "paused"), 1);
}

TEST_F(ServerMetricsTest, CommitObserverFeedsGroupCommitHistograms) {
  StartMetrics();
  Submit("default", 5);  // one request
  Submit("default", 1);

  const std::string text = metrics_->RenderBlocking();
  EXPECT_EQ(Value(text, "jobwire_store_commit_batch_requests_count"), 2);
  EXPECT_EQ(Value(text, "jobwire_store_commit_batch_requests_sum"), 2);
  EXPECT_EQ(Value(text, "jobwire_store_transaction_seconds_count"), 2);
  EXPECT_EQ(Value(text, "jobwire_store_commit_seconds_count"), 2);
  EXPECT_EQ(Value(text, R"(jobwire_store_commit_seconds_bucket{le="+Inf"})"),
            2);
  EXPECT_EQ(Value(text, "jobwire_store_queue_wait_seconds_count"), 2);
}

TEST_F(ServerMetricsTest, DispatcherGaugesAndDispatchLatency) {
  StartDispatcher();
  StartMetrics();
  ASSERT_TRUE(dispatcher_->RecoverBlocking().ok());
  dispatcher_->Start();
  RecordingConnection conn;
  WorkerHello hello;
  hello.worker_id = "w1";
  hello.queues = {{"default", 0}};
  hello.slots = 3;
  absl::StatusOr<int64_t> session = dispatcher_->AddSession(hello, &conn);
  ASSERT_TRUE(session.ok()) << session.status();

  Submit("default", 1);
  ASSERT_EQ(conn.AwaitAssigned(1).size(), 1u);

  std::string text = metrics_->RenderBlocking();
  EXPECT_EQ(Value(text, "jobwire_workers_connected"), 1);
  EXPECT_EQ(Value(text, "jobwire_worker_slots_free"), 2);
  EXPECT_EQ(Value(text, "jobwire_leases"), 1);
  EXPECT_EQ(Value(text, "jobwire_lease_expiries_total"), 0);
  EXPECT_EQ(Value(text, "jobwire_dispatch_paused"), 0);
  EXPECT_EQ(Value(text, R"(jobwire_queue_paused{queue="default"})"), 0);
  // The fake clock stood still: the latency is 0, but it was observed.
  EXPECT_EQ(
      Value(text, R"(jobwire_dispatch_latency_seconds_count{queue="default"})"),
      1);
  EXPECT_EQ(Jobs(text, "default", "running"), 1);

  // The worker goes silent past the lease TTL: the lease expires.
  clock_.Advance(absl::Seconds(31));
  dispatcher_->Wake();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (dispatcher_->Stats().lease_expiries == 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(dispatcher_
                  ->UpdateQueueBlocking(
                      "default", [](QueueRow* row) { row->paused = true; })
                  .ok());
  ASSERT_TRUE(dispatcher_->SetDispatchPausedBlocking(true, "test").ok());

  text = metrics_->RenderBlocking();
  EXPECT_EQ(Value(text, "jobwire_lease_expiries_total"), 1);
  EXPECT_EQ(Value(text, "jobwire_dispatch_paused"), 1);
  EXPECT_EQ(Value(text, R"(jobwire_queue_paused{queue="default"})"), 1);
  dispatcher_->CloseSession(*session);
}

TEST_F(ServerMetricsTest, HooksAndProcessMetrics) {
  ServerMetrics::Sources sources;
  sources.watch_streams = [] { return int64_t{7}; };
  sources.sse_streams = [] { return int64_t{3}; };
  StartMetrics(std::move(sources));

  const std::string text = metrics_->RenderBlocking();
  EXPECT_EQ(Value(text, "jobwire_grpc_watch_streams"), 7);
  EXPECT_EQ(Value(text, "jobwire_sse_streams"), 3);
  // No hook, no metric; no dispatcher, no dispatcher metrics.
  EXPECT_FALSE(Has(text, "jobwire_http_connections"));
  EXPECT_FALSE(Has(text, "jobwire_workers_connected"));
  EXPECT_GT(Value(text, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Value(text, "process_open_fds"), 2);
  EXPECT_GT(Value(text, "process_cpu_seconds_total"), 0);
  const double start = Value(text, "process_start_time_seconds");
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600);
}

TEST_F(ServerMetricsTest, WebhookAttemptsByOutcomeTimesAndOutboxDepth) {
  // Without webhooks: no webhook metric, and attempts are ignored.
  StartMetrics();
  metrics_->OnWebhookAttempt(WebhookAttemptResult::kDelivered,
                             absl::Milliseconds(5));
  std::string text = metrics_->RenderBlocking();
  EXPECT_FALSE(Has(text, "jobwire_webhook_"));

  ServerMetrics::Sources sources;
  sources.store = store_.get();
  sources.webhook_outbox_pending = [this] {
    return store_->CountPendingWebhooksBlocking();
  };
  ServerMetrics metrics(std::move(sources));
  text = metrics.RenderBlocking();
  // Every outcome is there from the start, at zero.
  for (const char* outcome :
       {"delivered", "failed_will_retry", "dead", "refused"}) {
    EXPECT_EQ(Value(text, absl::StrCat("jobwire_webhook_deliveries_total{"
                                       "outcome=\"",
                                       outcome, "\"}")),
              0)
        << outcome;
  }
  EXPECT_EQ(Value(text, "jobwire_webhook_outbox_pending"), 0);

  metrics.OnWebhookAttempt(WebhookAttemptResult::kFailedWillRetry,
                           absl::Milliseconds(3));
  metrics.OnWebhookAttempt(WebhookAttemptResult::kDelivered,
                           absl::Milliseconds(40));
  metrics.OnWebhookAttempt(WebhookAttemptResult::kDead, absl::Seconds(2));
  metrics.OnWebhookAttempt(WebhookAttemptResult::kRefused,
                           absl::ZeroDuration());
  metrics.OnWebhookAttempt(WebhookAttemptResult::kDelivered,
                           absl::Milliseconds(1));
  text = metrics.RenderBlocking();
  EXPECT_EQ(
      Value(text, "jobwire_webhook_deliveries_total{outcome=\"delivered\"}"),
      2);
  EXPECT_EQ(Value(text,
                  "jobwire_webhook_deliveries_total{outcome=\"failed_"
                  "will_retry\"}"),
            1);
  EXPECT_EQ(Value(text, "jobwire_webhook_deliveries_total{outcome=\"dead\"}"),
            1);
  EXPECT_EQ(
      Value(text, "jobwire_webhook_deliveries_total{outcome=\"refused\"}"), 1);
  EXPECT_EQ(Value(text, "jobwire_webhook_delivery_duration_seconds_count"), 5);
  EXPECT_EQ(
      Value(text,
            "jobwire_webhook_delivery_duration_seconds_bucket{le=\"0.005\"}"),
      3);
  EXPECT_NEAR(Value(text, "jobwire_webhook_delivery_duration_seconds_sum"),
              2.044, 1e-9);
  const absl::Status check = PromtoolCheckMetrics(text);
  EXPECT_TRUE(check.ok()) << check << "\n" << text;
}

// `promtool check metrics` (Debian's `prometheus` package) on a scrape with
// every metric present. Fails, saying so, when promtool is missing.
TEST_F(ServerMetricsTest, RenderedTextPassesPromtoolCheckMetrics) {
  StartDispatcher();
  ServerMetrics::Sources sources;
  sources.watch_streams = [] { return int64_t{1}; };
  sources.sse_streams = [] { return int64_t{2}; };
  sources.http_connections = [] { return int64_t{3}; };
  StartMetrics(std::move(sources));
  ASSERT_TRUE(dispatcher_->RecoverBlocking().ok());
  dispatcher_->Start();
  RecordingConnection conn;
  WorkerHello hello;
  hello.worker_id = "w1";
  hello.queues = {{"default", 0}, {"emails", 0}};
  absl::StatusOr<int64_t> session = dispatcher_->AddSession(hello, &conn);
  ASSERT_TRUE(session.ok());
  Submit("default", 2);
  Submit("emails", 1);
  std::vector<Job> assigned = conn.AwaitAssigned(1);
  ASSERT_FALSE(assigned.empty());
  clock_.Advance(absl::Milliseconds(1500));
  Complete(assigned[0]);

  const std::string text = metrics_->RenderBlocking();
  const char* keep = std::getenv("JOBWIRE_METRICS_SAMPLE");
  if (keep != nullptr && *keep != '\0') std::ofstream(keep) << text;
  const absl::Status check = PromtoolCheckMetrics(text);
  EXPECT_TRUE(check.ok()) << check << "\n" << text;
  dispatcher_->CloseSession(*session);
}

}  // namespace
}  // namespace jobwire::test
