#include "server/storage/sqlite_job_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/storage/list_query.h"
#include "server/storage/migrations.h"
#include "server/storage/sqlite_rows.h"
#include "server/storage/temp_db_dir.h"
#include "server/storage/wal_write_buffer.h"

namespace jobwire::test {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

NewJob MakeJob(std::string kind = "resize", std::string queue = "default") {
  NewJob j;
  j.job.kind = std::move(kind);
  j.job.queue = std::move(queue);
  return j;
}

NewJob WithRequestId(NewJob job, std::string request_id) {
  job.job.request_id = std::move(request_id);
  return job;
}

absl::StatusOr<std::vector<SubmitOutcome>> SubmitSync(
    JobStore& store, std::vector<NewJob> jobs) {
  absl::Notification n;
  absl::StatusOr<std::vector<SubmitOutcome>> out;
  store.Submit(std::move(jobs),
               [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                 out = std::move(r);
                 n.Notify();
               });
  n.WaitForNotification();
  return out;
}

absl::StatusOr<Job> SubmitOne(JobStore& store, NewJob job) {
  auto r = SubmitSync(store, {std::move(job)});
  if (!r.ok()) return r.status();
  return (*r)[0].job;
}

// Starts a write with a JobCallback and waits for its answer.
absl::StatusOr<Job> AwaitJob(const std::function<void(JobCallback)>& start) {
  absl::Notification n;
  absl::StatusOr<Job> out;
  start([&](absl::StatusOr<Job> r) {
    out = std::move(r);
    n.Notify();
  });
  n.WaitForNotification();
  return out;
}

absl::StatusOr<Job> MutateSync(JobStore& store, const std::string& id,
                               JobMutation m) {
  return AwaitJob(
      [&](JobCallback done) { store.Mutate(id, std::move(m), done); });
}

// A mutation that holds the writer thread until released: lets a test queue
// several writes so that they land in one batch.
class WriterGate {
 public:
  void Block(JobStore& store, const std::string& job_id) {
    store.Mutate(
        job_id,
        [this](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
          entered_.Notify();
          release_.WaitForNotification();
          return JobChange{current, {}};
        },
        [this](absl::StatusOr<Job>) { done_.Notify(); });
    entered_.WaitForNotification();
  }
  void Release() {
    release_.Notify();
    done_.WaitForNotification();
  }

 private:
  absl::Notification entered_, release_, done_;
};

// Moves a job to `to` as the core transitions do: finish_time set exactly on
// terminal states.
JobMutation MoveTo(JobState to) {
  return [to](const Job& current, absl::Time now) -> absl::StatusOr<JobChange> {
    JobChange change{current, {}};
    change.job.state = to;
    change.job.finish_time = IsTerminal(to) ? now : absl::InfinitePast();
    JobEvent e;
    e.type = EventType::kStateChanged;
    e.from = current.state;
    e.to = to;
    change.events.push_back(e);
    return change;
  };
}

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  // Makes every insert of a job of kind "b2" fail inside SQLite: a real
  // statement failure that leaves the writer's transaction open.
  void RefuseInsertsOfKindB2() {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec(
        "CREATE TRIGGER refuse_b2 BEFORE INSERT ON jobs WHEN NEW.kind = 'b2' "
        "BEGIN SELECT RAISE(ABORT, 'b2 refused'); END");
  }

  // Opens a store that refuses kind "b2" and holds its writer in `gate` on
  // a job submitted first (the gate's job has the first event).
  std::unique_ptr<SqliteJobStore> OpenHeldRefusingB2(WriterGate& gate) {
    auto store = Open();
    RefuseInsertsOfKindB2();
    absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
    EXPECT_TRUE(job.ok()) << job.status();
    gate.Block(*store, job->id);
    return store;
  }

  std::unique_ptr<SqliteJobStore> Open(SqliteJobStore::Options options = {}) {
    if (options.path == ":memory:") options.path = dir_.db();
    options.clock = &clock_;
    auto store = SqliteJobStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  TempDbDir dir_;
  FakeClock clock_;
};

TEST_F(SqliteJobStoreTest, SubmitCreatesAQueuedJobWithASubmittedEvent) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.queue = "";
  in.job.labels = {{"tenant", "acme"}};
  in.job.payload = std::string("\0bin\xff", 5);
  in.job.retry_policy = RetryPolicy{};
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->queue, "default");
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->create_time, clock_.Now());
  EXPECT_EQ(job->version, 1);

  absl::StatusOr<Job> got = store->GetJobBlocking(job->id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->payload, in.job.payload);
  EXPECT_EQ(got->labels, in.job.labels);
  EXPECT_TRUE(got->retry_policy.has_value());
  EXPECT_FALSE(got->progress.has_value());
  EXPECT_EQ(got->create_time, clock_.Now());

  auto events = store->ReadJobEventsBlocking(job->id, 0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_THAT(*events, SizeIs(1));
  const JobEvent& e = (*events)[0];
  EXPECT_EQ(e.seq, 1);
  EXPECT_GT(e.event_id, 0);
  EXPECT_EQ(e.to, JobState::kQueued);
  EXPECT_EQ(e.reason, "submitted");
  EXPECT_EQ(e.queue, "default");
  EXPECT_EQ(e.labels, in.job.labels);
  EXPECT_EQ(e.state, JobState::kQueued);
}

TEST_F(SqliteJobStoreTest, FutureScheduleTimeMakesAScheduledJob) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.schedule_time = clock_.Now() + absl::Minutes(1);
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kScheduled);
}

TEST_F(SqliteJobStoreTest, InvalidJobIsRefused) {
  auto store = Open();
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob("", "default"));
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteJobStoreTest, ConcurrentSubmitsAreAllAnsweredAndStoredOnce) {
  auto store = Open();
  constexpr int kThreads = 8, kPerThread = 100;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
        ASSERT_TRUE(job.ok()) << job.status();
        ids[t].push_back(job->id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  auto counts = store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok());
  ASSERT_THAT(*counts, SizeIs(1));
  EXPECT_EQ((*counts)[0].count, kThreads * kPerThread);
  auto events = store->ReadEventsBlocking(0, 10000);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, SizeIs(kThreads * kPerThread));
}

TEST_F(SqliteJobStoreTest, GroupCommitPutsQueuedWritesInOneTransaction) {
  auto store = Open();
  absl::StatusOr<Job> first = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(first.ok());
  const int64_t commits_before = store->stats().commits;

  WriterGate gate;
  gate.Block(*store, first->id);
  std::atomic<int> answered{0};
  absl::Notification all_done;
  for (int i = 0; i < 100; ++i) {
    store->Submit({MakeJob()},
                  [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                    EXPECT_TRUE(r.ok());
                    if (++answered == 100) all_done.Notify();
                  });
  }
  gate.Release();
  all_done.WaitForNotification();
  // The gate's own transaction, then one for the 100 queued submits.
  EXPECT_EQ(store->stats().commits - commits_before, 2);
}

TEST_F(SqliteJobStoreTest, WriteStatsCountCommitsRequestsAndQueueWait) {
  auto store = Open();
  absl::StatusOr<Job> first = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(first.ok());
  const WriteStats before = store->write_stats();
  EXPECT_GE(before.commits, 1);
  EXPECT_GE(before.write_requests, 1);

  // Ten submits wait 5 ms (of the store's clock) behind a held writer.
  WriterGate gate;
  gate.Block(*store, first->id);
  std::atomic<int> answered{0};
  absl::Notification all_done;
  for (int i = 0; i < 10; ++i) {
    store->Submit({MakeJob()},
                  [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                    EXPECT_TRUE(r.ok());
                    if (++answered == 10) all_done.Notify();
                  });
  }
  clock_.Advance(absl::Milliseconds(5));
  gate.Release();
  all_done.WaitForNotification();

  const WriteStats after = store->write_stats();
  EXPECT_GE(after.commits - before.commits, 2);  // the gate's, then ours
  EXPECT_GE(after.requests - before.requests, 11);
  EXPECT_GE(after.write_requests - before.write_requests, 11);
  EXPECT_GE(after.queue_wait - before.queue_wait, absl::Milliseconds(50));
  EXPECT_GE(after.apply, before.apply);
  EXPECT_GE(after.commit, before.commit);
  EXPECT_GE(after.complete, before.complete);
}

TEST_F(SqliteJobStoreTest, SameRequestIdReturnsTheFirstJob) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.request_id = "req-1";
  absl::StatusOr<std::vector<SubmitOutcome>> first = SubmitSync(*store, {in});
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE((*first)[0].created);
  absl::StatusOr<std::vector<SubmitOutcome>> again = SubmitSync(*store, {in});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE((*again)[0].created);
  EXPECT_EQ((*again)[0].job.id, (*first)[0].job.id);
}

TEST_F(SqliteJobStoreTest, SameRequestIdWritesNoSecondLabelsOrEvents) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.request_id = "req-labels";
  in.job.labels = {{"tenant", "acme"}};
  ASSERT_TRUE(SubmitSync(*store, {in}).ok());
  absl::StatusOr<std::vector<SubmitOutcome>> again = SubmitSync(*store, {in});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE((*again)[0].created);
  ListJobsQuery query;
  query.filter = "labels.tenant = \"acme\"";
  absl::StatusOr<ListJobsResult> listed = store->ListJobsBlocking(query);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(listed->jobs, SizeIs(1));
  absl::StatusOr<std::vector<JobEvent>> events =
      store->ReadEventsBlocking(0, 100);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, SizeIs(1));
}

TEST_F(SqliteJobStoreTest, SameRequestIdWithinOneBatchCreatesOneJob) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.request_id = "req-2";
  // Twice in one call...
  absl::StatusOr<std::vector<SubmitOutcome>> both =
      SubmitSync(*store, {in, in});
  ASSERT_TRUE(both.ok());
  EXPECT_TRUE((*both)[0].created);
  EXPECT_FALSE((*both)[1].created);
  EXPECT_EQ((*both)[0].job.id, (*both)[1].job.id);

  // ...and in two calls committed together.
  absl::StatusOr<Job> holder = SubmitOne(*store, MakeJob());
  WriterGate gate;
  gate.Block(*store, holder->id);
  in.job.request_id = "req-3";
  std::vector<absl::StatusOr<std::vector<SubmitOutcome>>> out(2);
  absl::Notification n1, n2;
  store->Submit({in}, [&](auto r) {
    out[0] = std::move(r);
    n1.Notify();
  });
  store->Submit({in}, [&](auto r) {
    out[1] = std::move(r);
    n2.Notify();
  });
  gate.Release();
  n1.WaitForNotification();
  n2.WaitForNotification();
  ASSERT_TRUE(out[0].ok() && out[1].ok());
  EXPECT_TRUE((*out[0])[0].created);
  EXPECT_FALSE((*out[1])[0].created);
  EXPECT_EQ((*out[0])[0].job.id, (*out[1])[0].job.id);
}

TEST_F(SqliteJobStoreTest, ReopenKeepsDataAndEventIdsKeepGrowing) {
  std::string id;
  int64_t last_event = 0;
  {
    auto store = Open();
    absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
    ASSERT_TRUE(job.ok());
    id = job->id;
    last_event = *store->LastEventIdBlocking();
  }
  auto store = Open();
  EXPECT_TRUE(store->GetJobBlocking(id).ok());
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  EXPECT_GT(job->id, id);
  auto events = store->ReadJobEventsBlocking(job->id, 0, 10);
  ASSERT_TRUE(events.ok());
  EXPECT_GT((*events)[0].event_id, last_event);
}

TEST_F(SqliteJobStoreTest, MutateWritesOnlyChangedColumnsAndAppendsDenseSeq) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.payload = "big input";
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  {
    // Records every UPDATE that names payload or args_json in its SET list.
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec("CREATE TABLE touched (col TEXT)");
    db.exec(
        "CREATE TRIGGER t AFTER UPDATE OF payload, args_json ON jobs "
        "BEGIN INSERT INTO touched VALUES ('payload'); END");
  }
  clock_.Advance(absl::Seconds(3));
  absl::StatusOr<Job> after = MutateSync(
      *store, job->id,
      [](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
        JobChange c{current, {}};
        c.job.priority = 7;
        c.job.labels["tier"] = "gold";
        JobEvent a, b;
        a.type = EventType::kUpdated;
        a.paths = {"priority", "labels"};
        b.type = EventType::kLog;
        b.log_line = "bumped";
        c.events = {a, b};
        return c;
      });
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->version, 2);
  EXPECT_EQ(after->last_seq, 3);
  EXPECT_EQ(after->update_time, clock_.Now());
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("SELECT COUNT(*) FROM touched").getInt(), 0);
  }
  absl::StatusOr<Job> got = store->GetJobBlocking(job->id);
  EXPECT_EQ(got->priority, 7);
  EXPECT_EQ(got->payload, "big input");
  auto events = store->ReadJobEventsBlocking(job->id, 1, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_THAT(*events, SizeIs(2));
  EXPECT_EQ((*events)[0].seq, 2);
  EXPECT_EQ((*events)[1].seq, 3);
  EXPECT_EQ((*events)[0].paths,
            (std::vector<std::string>{"priority", "labels"}));
  EXPECT_EQ((*events)[1].log_line, "bumped");
  EXPECT_EQ((*events)[1].priority, 7);
  EXPECT_EQ((*events)[1].labels.at("tier"), "gold");
  EXPECT_EQ((*events)[1].time, clock_.Now());
  auto by_label =
      store->ListJobsBlocking(ListJobsQuery{"labels.tier = gold", "", 0, ""});
  ASSERT_TRUE(by_label.ok());
  EXPECT_THAT(by_label->jobs, SizeIs(1));
}

TEST_F(SqliteJobStoreTest, RepeatedMutationShapesReuseUpdatesCorrectly) {
  auto store = Open();
  absl::StatusOr<Job> a = SubmitOne(*store, MakeJob("a"));
  absl::StatusOr<Job> b = SubmitOne(*store, MakeJob("b"));
  ASSERT_TRUE(a.ok() && b.ok());
  auto set_priority = [](int p) -> JobMutation {
    return [p](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
      JobChange c{current, {}};
      c.job.priority = p;
      return c;
    };
  };
  auto set_worker = [](std::string w) -> JobMutation {
    return [w](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
      JobChange c{current, {}};
      c.job.worker_id = w;
      c.job.labels["w"] = w;
      return c;
    };
  };
  // Same column set on two jobs, another set, then the first set again.
  ASSERT_TRUE(MutateSync(*store, a->id, set_priority(1)).ok());
  ASSERT_TRUE(MutateSync(*store, b->id, set_priority(2)).ok());
  ASSERT_TRUE(MutateSync(*store, a->id, set_worker("wa")).ok());
  ASSERT_TRUE(MutateSync(*store, b->id, set_worker("wb")).ok());
  ASSERT_TRUE(MutateSync(*store, a->id, set_priority(3)).ok());
  absl::StatusOr<Job> got_a = store->GetJobBlocking(a->id);
  absl::StatusOr<Job> got_b = store->GetJobBlocking(b->id);
  ASSERT_TRUE(got_a.ok() && got_b.ok());
  EXPECT_EQ(got_a->priority, 3);
  EXPECT_EQ(got_a->worker_id, "wa");
  EXPECT_EQ(got_a->version, 4);
  EXPECT_EQ(got_b->priority, 2);
  EXPECT_EQ(got_b->worker_id, "wb");
  EXPECT_EQ(got_b->version, 3);
  auto by_label =
      store->ListJobsBlocking(ListJobsQuery{"labels.w = wb", "", 0, ""});
  ASSERT_TRUE(by_label.ok());
  ASSERT_THAT(by_label->jobs, SizeIs(1));
  EXPECT_EQ(by_label->jobs[0].id, b->id);
}

TEST_F(SqliteJobStoreTest, EveryFieldOfJobsAndEventsRoundTrips) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.args_json = R"({"a":1})";
  in.job.retry_policy =
      RetryPolicy{absl::Seconds(2), absl::Minutes(1), 3.0, 0.5};
  in.job.attempt_timeout = absl::Seconds(30);
  in.job.webhook = WebhookSpec{"https://example.com/hook", {1, 3}};
  in.job.request_id = "rid";
  in.job.max_attempts = 7;
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  absl::StatusOr<Job> done = MutateSync(
      *store, job->id,
      [this](const Job& c, absl::Time) -> absl::StatusOr<JobChange> {
        JobChange change{c, {}};
        Job& j = change.job;
        j.state = JobState::kFailed;
        j.progress = Progress{5, 10, "half", R"({"p":1})"};
        j.result = JobResult{R"({"r":2})", std::string("\0res", 4)};
        j.error = JobError{13, "boom", R"({"e":3})", true};
        j.attempt = 2;
        j.checkpoint = "ck";
        j.backoff_until = clock_.Now() + absl::Seconds(9);
        j.worker_id = "w1";
        j.lease_expire_time = clock_.Now() + absl::Seconds(8);
        j.start_time = clock_.Now();
        j.finish_time = clock_.Now();
        JobEvent e;
        e.type = EventType::kStateChanged;
        e.from = c.state;
        e.to = JobState::kFailed;
        e.reason = "failed";
        e.attempt = 2;
        e.result = j.result;
        e.error = j.error;
        e.progress = *j.progress;
        e.webhook_delivery = WebhookDeliveryInfo{1, 500, false, "nope"};
        change.events.push_back(e);
        return change;
      });
  ASSERT_TRUE(done.ok()) << done.status();
  absl::StatusOr<Job> got = store->GetJobBlocking(job->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->args_json, in.job.args_json);
  EXPECT_EQ(got->retry_policy->max_backoff, absl::Minutes(1));
  EXPECT_EQ(got->retry_policy->multiplier, 3.0);
  EXPECT_EQ(got->retry_policy->jitter, 0.5);
  EXPECT_EQ(got->attempt_timeout, absl::Seconds(30));
  EXPECT_EQ(got->webhook->url, "https://example.com/hook");
  EXPECT_EQ(got->webhook->events, (std::vector<int>{1, 3}));
  EXPECT_EQ(got->request_id, "rid");
  EXPECT_EQ(got->max_attempts, 7);
  EXPECT_EQ(got->progress->message, "half");
  EXPECT_EQ(got->progress->details_json, R"({"p":1})");
  EXPECT_EQ(got->result->payload, std::string("\0res", 4));
  EXPECT_EQ(got->error->code, 13);
  EXPECT_TRUE(got->error->retryable);
  EXPECT_EQ(got->error->details_json, R"({"e":3})");
  EXPECT_EQ(got->checkpoint, "ck");
  EXPECT_EQ(got->backoff_until, done->backoff_until);
  EXPECT_EQ(got->worker_id, "w1");
  EXPECT_EQ(got->lease_expire_time, done->lease_expire_time);
  EXPECT_EQ(got->finish_time, clock_.Now());
  auto events = store->ReadJobEventsBlocking(job->id, 1, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_THAT(*events, SizeIs(1));
  const JobEvent& e = (*events)[0];
  EXPECT_EQ(e.from, JobState::kQueued);
  EXPECT_EQ(e.to, JobState::kFailed);
  EXPECT_EQ(e.attempt, 2);
  EXPECT_EQ(e.result->data_json, R"({"r":2})");
  EXPECT_EQ(e.error->message, "boom");
  EXPECT_EQ(e.progress.total, 10);
  EXPECT_EQ(e.webhook_delivery.http_status, 500);
  EXPECT_EQ(e.webhook_delivery.error, "nope");
  EXPECT_EQ(e.run_after, done->backoff_until);
  EXPECT_EQ(e.state, JobState::kFailed);
}

TEST_F(SqliteJobStoreTest, UnchangedMutationWritesNothing) {
  auto store = Open();
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  absl::StatusOr<Job> same =
      MutateSync(*store, job->id,
                 [](const Job& c, absl::Time) -> absl::StatusOr<JobChange> {
                   return JobChange{c, {}};
                 });
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->version, 1);
}

TEST_F(SqliteJobStoreTest, MutateUnknownJobIsNotFound) {
  auto store = Open();
  EXPECT_EQ(
      MutateSync(*store, "nope", MoveTo(JobState::kCancelled)).status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetJobBlocking("nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SqliteJobStoreTest, AMutationErrorLeavesTheOtherWritesOfTheBatchIntact) {
  auto store = Open();
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  WriterGate gate;
  gate.Block(*store, job->id);
  absl::StatusOr<Job> a, c;
  absl::StatusOr<Job> b;
  absl::Notification na, nb, nc;
  store->Submit({MakeJob("a")}, [&](auto r) {
    a = r.ok() ? absl::StatusOr<Job>((*r)[0].job) : r.status();
    na.Notify();
  });
  store->Mutate(
      job->id,
      [](const Job&, absl::Time) -> absl::StatusOr<JobChange> {
        return FailedPreconditionError(
            "no", PreconditionViolation{"STATE", "job", "no"});
      },
      [&](absl::StatusOr<Job> r) {
        b = std::move(r);
        nb.Notify();
      });
  store->Submit({MakeJob("c")}, [&](auto r) {
    c = r.ok() ? absl::StatusOr<Job>((*r)[0].job) : r.status();
    nc.Notify();
  });
  const int64_t commits_before = store->stats().commits;
  gate.Release();
  na.WaitForNotification();
  nb.WaitForNotification();
  nc.WaitForNotification();
  EXPECT_TRUE(a.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(c.ok());
  EXPECT_TRUE(store->GetJobBlocking(a->id).ok());
  EXPECT_TRUE(store->GetJobBlocking(c->id).ok());
  // The gate's own transaction, then one for all three requests.
  EXPECT_EQ(store->stats().commits - commits_before, 2);
  // The mutation failed before writing: no second run with savepoints.
  EXPECT_EQ(store->stats().rerun_batches, 0);
}

TEST_F(SqliteJobStoreTest,
       ARequestThatFailsHalfwayIsUndoneAloneAndTheBatchCommits) {
  auto store = Open();
  RefuseInsertsOfKindB2();
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  WriterGate gate;
  gate.Block(*store, job->id);
  absl::StatusOr<std::vector<SubmitOutcome>> a, b, c;
  absl::Notification na, nb, nc;
  store->Submit({MakeJob("a")}, [&](auto r) {
    a = std::move(r);
    na.Notify();
  });
  // b's first job is written, its second refused: b fails after writing.
  // (b1 has a request_id: it is inserted alone, not in one multi-row INSERT
  // with b2, which would fail as a whole before writing anything.)
  store->Submit({WithRequestId(MakeJob("b1"), "b1"), MakeJob("b2")},
                [&](auto r) {
                  b = std::move(r);
                  nb.Notify();
                });
  store->Submit({MakeJob("c")}, [&](auto r) {
    c = std::move(r);
    nc.Notify();
  });
  const SqliteJobStore::Stats before = store->stats();
  gate.Release();
  na.WaitForNotification();
  nb.WaitForNotification();
  nc.WaitForNotification();
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(b.ok());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(store->GetJobBlocking((*a)[0].job.id).ok());
  EXPECT_TRUE(store->GetJobBlocking((*c)[0].job.id).ok());
  // b1 was undone with b2: only the gate's job, a and c exist.
  auto counts = store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok());
  ASSERT_THAT(*counts, SizeIs(1));
  EXPECT_EQ((*counts)[0].count, 3);
  auto events = store->ReadEventsBlocking(0, 100);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, SizeIs(3));
  const SqliteJobStore::Stats after = store->stats();
  EXPECT_EQ(after.rerun_batches - before.rerun_batches, 1);
  EXPECT_EQ(after.commits - before.commits, 2);  // the gate's, then a + c
}

TEST_F(SqliteJobStoreTest,
       FullDiskIsResourceExhaustedAndNothingIsAcknowledged) {
  SqliteJobStore::Options options;
  options.max_db_pages = 64;
  auto store = Open(options);
  int acknowledged = 0;
  absl::Status failure;
  for (int i = 0; i < 100 && failure.ok(); ++i) {
    NewJob in = MakeJob();
    in.job.payload = std::string(64 << 10, 'x');
    absl::StatusOr<Job> job = SubmitOne(*store, in);
    if (job.ok()) {
      ++acknowledged;
    } else {
      failure = job.status();
    }
  }
  ASSERT_FALSE(failure.ok()) << "the database never filled up";
  EXPECT_EQ(failure.code(), absl::StatusCode::kResourceExhausted) << failure;
  EXPECT_EQ(GetErrorReason(failure), "DISK_FULL");
  auto counts = store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok());
  int64_t stored = counts->empty() ? 0 : (*counts)[0].count;
  EXPECT_EQ(stored, acknowledged);
  // Small writes still fit and the store keeps working.
  EXPECT_TRUE(SubmitOne(*store, MakeJob()).ok());
}

TEST_F(SqliteJobStoreTest, CommitListenerSeesEventsBeforeDone) {
  class Recorder : public CommitListener {
   public:
    void OnCommit(const std::vector<JobEvent>& events) override {
      for (const JobEvent& e : events) seen.push_back(e);
    }
    std::vector<JobEvent> seen;
  };
  auto store = Open();
  Recorder recorder;
  store->AddCommitListener(&recorder);
  absl::Notification n;
  size_t seen_at_done = 0;
  std::string id;
  store->Submit({MakeJob(), MakeJob()},
                [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                  seen_at_done = recorder.seen.size();
                  id = (*r)[1].job.id;
                  n.Notify();
                });
  n.WaitForNotification();
  EXPECT_EQ(seen_at_done, 2u);
  EXPECT_LT(recorder.seen[0].event_id, recorder.seen[1].event_id);
  EXPECT_EQ(recorder.seen[1].job_id, id);
  EXPECT_EQ(recorder.seen[1].queue, "default");
}

// Records listener calls and `done`s in one log, in the order they ran.
class OrderLog : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override {
    absl::MutexLock lock(&mu_);
    for (const JobEvent& e : events) {
      entries_.push_back(absl::StrCat("event ", e.job_id));
      event_ids_.push_back(e.event_id);
    }
  }
  void Done(const std::string& job_id) {
    absl::MutexLock lock(&mu_);
    entries_.push_back(absl::StrCat("done ", job_id));
  }
  std::vector<std::string> entries() {
    absl::MutexLock lock(&mu_);
    return entries_;
  }
  std::vector<int64_t> event_ids() {
    absl::MutexLock lock(&mu_);
    return event_ids_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> event_ids_ ABSL_GUARDED_BY(mu_);
};

// Jobs stored so far (read beside the writer, not through a `done`).
int64_t StoredJobs(SqliteJobStore& store) {
  auto counts = store.CountJobsByQueueAndStateBlocking();
  EXPECT_TRUE(counts.ok()) << counts.status();
  int64_t n = 0;
  if (counts.ok()) {
    for (const QueueStateCount& c : *counts) n += c.count;
  }
  return n;
}

// Polls (bounded) until `store` holds `n` jobs; false when it never does.
bool AwaitStoredJobs(SqliteJobStore& store, int64_t n) {
  for (int i = 0; i < 1000; ++i) {
    if (StoredJobs(store) >= n) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

TEST_F(SqliteJobStoreTest,
       CommitsAreAnsweredInOrderEachListenerBeforeItsDones) {
  SqliteJobStore::Options options;
  options.max_batch_jobs = 1;  // one commit per request
  auto store = Open(options);
  OrderLog log;
  store->AddCommitListener(&log);
  constexpr int kJobs = 300;
  std::vector<std::string> ids(kJobs);
  absl::Notification all_done;
  std::atomic<int> answered{0};
  for (int i = 0; i < kJobs; ++i) {
    store->Submit({MakeJob()},
                  [&, i](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                    ASSERT_TRUE(r.ok()) << r.status();
                    ids[i] = (*r)[0].job.id;
                    log.Done(ids[i]);
                    if (++answered == kJobs) all_done.Notify();
                  });
  }
  all_done.WaitForNotification();
  EXPECT_EQ(store->stats().commits, kJobs);
  // Queue order is commit order, and each commit's event came before its
  // done and after the previous commit's done.
  std::vector<std::string> want;
  for (const std::string& id : ids) {
    want.push_back(absl::StrCat("event ", id));
    want.push_back(absl::StrCat("done ", id));
  }
  EXPECT_EQ(log.entries(), want);
  std::vector<int64_t> event_ids = log.event_ids();
  EXPECT_TRUE(std::is_sorted(event_ids.begin(), event_ids.end()));
}

std::string ThisThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

std::string ThreadThatAnswersALoneSubmit(SqliteJobStore& store) {
  std::string thread;
  absl::Notification done;
  store.Submit({MakeJob()}, [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    thread = ThisThreadName();
    done.Notify();
  });
  done.WaitForNotification();
  return thread;
}

TEST_F(SqliteJobStoreTest, LoneWriteIsAnsweredByTheIdleWriter) {
  auto store = Open(SqliteJobStore::Options());
  EXPECT_EQ(ThreadThatAnswersALoneSubmit(*store), "jw-writer");
}

TEST_F(SqliteJobStoreTest,
       WithoutCompleteOnIdleWriterTheCompletionThreadAnswers) {
  SqliteJobStore::Options options;
  options.complete_on_idle_writer = false;
  auto store = Open(options);
  EXPECT_EQ(ThreadThatAnswersALoneSubmit(*store), "jw-complete");
}

TEST_F(SqliteJobStoreTest, WriterCommitsAheadOfASlowDoneUpToTheHandOffBound) {
  SqliteJobStore::Options options;
  options.max_batch_jobs = 1;
  // The first commit may find the writer idle: keep every `done` on the
  // completion thread, which the slow one holds.
  options.complete_on_idle_writer = false;
  auto store = Open(options);
  OrderLog log;
  store->AddCommitListener(&log);
  absl::Notification first_entered, release_first;
  std::vector<std::string> answered_ids;
  absl::Mutex answered_mu;
  absl::Notification all_done;
  constexpr int kJobs = 20;
  for (int i = 0; i < kJobs; ++i) {
    store->Submit({MakeJob()},
                  [&, i](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                    ASSERT_TRUE(r.ok()) << r.status();
                    if (i == 0) {
                      first_entered.Notify();
                      release_first.WaitForNotification();
                    }
                    absl::MutexLock lock(&answered_mu);
                    answered_ids.push_back((*r)[0].job.id);
                    if (answered_ids.size() == kJobs) all_done.Notify();
                  });
  }
  first_entered.WaitForNotification();
  // The first `done` holds the completion thread; the writer still commits
  // the next requests: two wait for the completion thread, and one more is
  // committed and waits for room. Then it stops.
  constexpr int64_t kBound = 4;
  EXPECT_TRUE(AwaitStoredJobs(*store, kBound));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(StoredJobs(*store), kBound);
  // Only the first commit's events were announced so far.
  EXPECT_THAT(log.entries(), SizeIs(1));
  release_first.Notify();
  all_done.WaitForNotification();
  EXPECT_EQ(StoredJobs(*store), kJobs);
  // Answered in commit (= event_id) order.
  std::vector<std::string> events;
  for (const std::string& entry : log.entries()) {
    if (absl::StartsWith(entry, "event ")) events.push_back(entry.substr(6));
  }
  absl::MutexLock lock(&answered_mu);
  EXPECT_EQ(answered_ids, events);
}

TEST_F(SqliteJobStoreTest, ShutdownRunsEveryPendingCompletionExactlyOnce) {
  SqliteJobStore::Options options;
  options.max_batch_jobs = 1;
  auto store = Open(options);
  absl::Notification first_entered, release_first;
  constexpr int kJobs = 50;
  std::vector<std::atomic<int>> calls(kJobs);
  std::vector<absl::StatusCode> codes(kJobs, absl::StatusCode::kUnknown);
  std::atomic<int> follow_up_calls{0};
  absl::StatusCode follow_up_code = absl::StatusCode::kUnknown;
  for (int i = 0; i < kJobs; ++i) {
    store->Submit(
        {MakeJob()}, [&, i](absl::StatusOr<std::vector<SubmitOutcome>> r) {
          ++calls[i];
          codes[i] = r.status().code();
          if (i == 0) {
            first_entered.Notify();
            release_first.WaitForNotification();
          }
          if (i == kJobs - 1) {
            // A write made by a `done` while Shutdown drains: refused at once.
            store->Submit({MakeJob()},
                          [&](absl::StatusOr<std::vector<SubmitOutcome>> f) {
                            ++follow_up_calls;
                            follow_up_code = f.status().code();
                          });
          }
        });
  }
  first_entered.WaitForNotification();
  std::atomic<bool> shut_down{false};
  std::thread stopper([&] {
    store->Shutdown();
    shut_down = true;
  });
  // Wait until Shutdown stopped taking writes: a probe is then refused on
  // this thread. Probes taken before that are committed like the rest.
  std::atomic<int> probes_ok{0};
  for (int i = 0; i < 1000; ++i) {
    auto refused = std::make_shared<std::atomic<bool>>(false);
    store->Submit(
        {MakeJob()},
        [&probes_ok, refused](absl::StatusOr<std::vector<SubmitOutcome>> r) {
          if (r.ok()) {
            ++probes_ok;
          } else {
            *refused = true;
          }
        });
    if (*refused) break;
    absl::SleepFor(absl::Milliseconds(2));
  }
  // Shutdown waits for the held completion.
  EXPECT_FALSE(shut_down.load());
  release_first.Notify();
  stopper.join();
  for (int i = 0; i < kJobs; ++i) {
    EXPECT_EQ(calls[i].load(), 1) << "request " << i;
    EXPECT_EQ(codes[i], absl::StatusCode::kOk) << "request " << i;
  }
  EXPECT_EQ(follow_up_calls.load(), 1);
  EXPECT_EQ(follow_up_code, absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->stats().write_requests, kJobs + probes_ok.load());
}

TEST_F(SqliteJobStoreTest, WritesAfterShutdownAreUnavailable) {
  auto store = Open();
  store->Shutdown();
  EXPECT_EQ(SubmitOne(*store, MakeJob()).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->GetJobBlocking("x").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->CountJobsByQueueAndStateBlocking().status().code(),
            absl::StatusCode::kUnavailable);
  store->Shutdown();  // idempotent
}

TEST_F(SqliteJobStoreTest, ShutdownAnswersEveryQueuedWrite) {
  auto store = Open();
  std::atomic<int> ok{0};
  for (int i = 0; i < 200; ++i) {
    store->Submit({MakeJob()}, [&](auto r) {
      if (r.ok()) ++ok;
    });
  }
  store->Shutdown();
  EXPECT_EQ(ok.load(), 200);
}

TEST_F(SqliteJobStoreTest, BackgroundCheckpointsKeepTheWalSmall) {
  SqliteJobStore::Options options;
  options.checkpoint_pages = 8;
  auto store = Open(options);
  for (int i = 0; i < 50; ++i) {
    NewJob in = MakeJob();
    in.job.payload = std::string(8 << 10, 'p');
    ASSERT_TRUE(SubmitOne(*store, in).ok());
  }
  // Checkpoints run on their own thread; wait (bounded) for one to finish.
  for (int i = 0; i < 500 && store->stats().checkpoints == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT(store->stats().checkpoints, 0);
  auto page = store->ListJobsBlocking(ListJobsQuery{"", "", 1000, ""});
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->jobs, SizeIs(50));
}

// A lone caller's commits leave no pause in which the background
// checkpoint could catch up with the WAL; the writer finishes it, so the WAL
// starts over instead of growing with every commit (appending, which syncs
// slower than overwriting), and each checkpoint covers many commits.
TEST_F(SqliteJobStoreTest, SteadyCommitsStartTheWalOverInsteadOfGrowingIt) {
  SqliteJobStore::Options options;
  options.checkpoint_pages = 32;
  auto store = Open(options);
  constexpr int kJobs = 400;
  int64_t max_wal_bytes = 0;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
    struct stat st;
    if (stat((store->path() + "-wal").c_str(), &st) == 0)
      max_wal_bytes = std::max<int64_t>(max_wal_bytes, st.st_size);
  }
  const SqliteJobStore::Stats stats = store->stats();
  EXPECT_EQ(stats.commits, kJobs);
  // Every submit writes several pages (the job, its event, their indexes):
  // kJobs commits put about 4 * kJobs pages through the WAL, one checkpoint
  // per 32 of them. A WAL that never started over would hold them all, and
  // be checkpointed after nearly every commit.
  const int64_t page = 4096 + 24;  // a WAL frame: header and page
  EXPECT_LT(max_wal_bytes, kJobs * page) << "the WAL kept growing";
  EXPECT_GT(stats.writer_checkpoints, 0);
  EXPECT_LT(stats.checkpoints, kJobs / 2) << "a checkpoint after each commit";
  auto page_of_jobs = store->ListJobsBlocking(ListJobsQuery{"", "", 1000, ""});
  ASSERT_TRUE(page_of_jobs.ok());
  EXPECT_THAT(page_of_jobs->jobs, SizeIs(kJobs));
}

TEST_F(SqliteJobStoreTest, MemoryPathUsesAPrivateTemporaryFile) {
  SqliteJobStore::Options options;
  options.clock = &clock_;
  auto store = SqliteJobStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  std::string path = (*store)->path();
  EXPECT_TRUE(SubmitOne(**store, MakeJob()).ok());
  EXPECT_EQ(access(path.c_str(), F_OK), 0);
  (*store)->Shutdown();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST_F(SqliteJobStoreTest, ListJobsEndsAPageEarlyAtItsByteBudget) {
  auto store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    NewJob in = MakeJob();
    in.job.args_json =
        absl::StrCat("{\"blob\":\"", std::string(1000, 'x'), "\"}");
    ids.push_back(SubmitOne(*store, in)->id);
    clock_.Advance(absl::Milliseconds(1));
  }
  ListJobsQuery q;
  q.page_size = 1000;
  q.max_bytes = 3500;
  std::vector<size_t> measured;  // job_bytes calls, per page
  q.job_bytes = [&measured](const Job& job) -> size_t {
    ++measured.back();
    return job.args_json.size();  // 1011 each: three fit in 3,500
  };
  std::vector<std::string> seen;
  int pages = 0;
  while (true) {
    measured.push_back(0);
    absl::StatusOr<ListJobsResult> page = store->ListJobsBlocking(q);
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    // Three jobs a page, the last one excepted; the job that did not fit
    // was measured and left for the next page.
    EXPECT_EQ(page->jobs.size(), pages < 4 ? 3u : 1u);
    EXPECT_EQ(measured.back(), pages < 4 ? 4u : 1u);
    for (const Job& j : page->jobs) seen.push_back(j.id);
    if (page->next_page_token.empty()) break;
    q.page_token = page->next_page_token;
  }
  EXPECT_EQ(pages, 4);
  EXPECT_EQ(seen, ids);

  // A job larger than the whole budget still comes, alone on its page.
  q.page_token.clear();
  q.max_bytes = 10;
  q.job_bytes = nullptr;  // ApproxBytes
  absl::StatusOr<ListJobsResult> one = store->ListJobsBlocking(q);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_THAT(one->jobs, SizeIs(1));
  EXPECT_EQ(one->jobs[0].id, ids[0]);
  EXPECT_FALSE(one->next_page_token.empty());
}

TEST_F(SqliteJobStoreTest, ListJobsFiltersOrdersAndPagesStablyWhileInserting) {
  auto store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) {
    NewJob in = MakeJob(i % 2 == 0 ? "even" : "odd");
    in.job.priority = i % 5;
    in.job.labels = {{"n", absl::StrCat(i)}};
    ids.push_back(SubmitOne(*store, in)->id);
    clock_.Advance(absl::Milliseconds(1));
  }
  ListJobsQuery q;
  q.filter = "kind = even";
  q.page_size = 5;
  std::vector<std::string> seen;
  while (true) {
    absl::StatusOr<ListJobsResult> page = store->ListJobsBlocking(q);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const Job& j : page->jobs) seen.push_back(j.id);
    // New matching jobs arrive between pages.
    ASSERT_TRUE(SubmitOne(*store, MakeJob("odd")).ok());
    if (page->next_page_token.empty()) break;
    q.page_token = page->next_page_token;
  }
  std::vector<std::string> want;
  for (int i = 0; i < 25; i += 2) want.push_back(ids[i]);
  EXPECT_EQ(seen, want);

  // priority desc, then oldest first; paged across ties.
  ListJobsQuery p;
  p.filter = "kind = even OR kind = odd AND priority >= 3";
  p.order_by = "priority desc";
  p.page_size = 3;
  std::vector<std::pair<int, std::string>> got;
  while (true) {
    absl::StatusOr<ListJobsResult> page = store->ListJobsBlocking(p);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const Job& j : page->jobs) got.emplace_back(j.priority, j.id);
    if (page->next_page_token.empty()) break;
    p.page_token = page->next_page_token;
  }
  ASSERT_EQ(got.size(), 10u);  // priorities 3 and 4 among the first 25
  for (size_t i = 1; i < got.size(); ++i) {
    EXPECT_TRUE(got[i - 1].first > got[i].first ||
                (got[i - 1].first == got[i].first &&
                 got[i - 1].second < got[i].second));
  }

  absl::StatusOr<ListJobsResult> newest = store->ListJobsBlocking(ListJobsQuery{
      "labels.n = \"24\" OR labels.n = \"23\"", "create_time desc", 1, ""});
  ASSERT_TRUE(newest.ok());
  ASSERT_THAT(newest->jobs, SizeIs(1));
  EXPECT_EQ(newest->jobs[0].id, ids[24]);
  EXPECT_FALSE(newest->next_page_token.empty());
}

TEST_F(SqliteJobStoreTest, ListJobsRejectsBadTokensOrdersAndFilters) {
  auto store = Open();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
  absl::StatusOr<ListJobsResult> page =
      store->ListJobsBlocking(ListJobsQuery{"", "", 1, ""});
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->next_page_token.empty());
  auto field_of = [](const absl::Status& s) {
    auto v = GetFieldViolations(s);
    return v.empty() ? std::string() : v[0].field;
  };
  auto other_filter = store->ListJobsBlocking(
      ListJobsQuery{"kind = x", "", 1, page->next_page_token});
  EXPECT_EQ(field_of(other_filter.status()), "page_token");
  auto other_order = store->ListJobsBlocking(
      ListJobsQuery{"", "create_time desc", 1, page->next_page_token});
  EXPECT_EQ(field_of(other_order.status()), "page_token");
  auto garbage =
      store->ListJobsBlocking(ListJobsQuery{"", "", 1, "!!not a token"});
  EXPECT_EQ(field_of(garbage.status()), "page_token");
  auto order = store->ListJobsBlocking(ListJobsQuery{"", "kind", 1, ""});
  EXPECT_EQ(field_of(order.status()), "order_by");
  auto filter = store->ListJobsBlocking(ListJobsQuery{"kind ==", "", 1, ""});
  EXPECT_EQ(field_of(filter.status()), "filter");
  auto size = store->ListJobsBlocking(ListJobsQuery{"", "", -1, ""});
  EXPECT_EQ(field_of(size.status()), "page_size");
}

TEST_F(SqliteJobStoreTest, ListJobsFiltersOnTimesAndStates) {
  auto store = Open();
  absl::Time t0 = clock_.Now();
  absl::StatusOr<Job> a = SubmitOne(*store, MakeJob());
  clock_.Advance(absl::Hours(1));
  absl::StatusOr<Job> b = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(MutateSync(*store, b->id, MoveTo(JobState::kSucceeded)).ok());
  std::string after = absl::StrCat(
      "create_time > \"",
      absl::FormatTime(absl::RFC3339_full, t0, absl::UTCTimeZone()), "\"");
  auto later = store->ListJobsBlocking(ListJobsQuery{after, "", 0, ""});
  ASSERT_TRUE(later.ok()) << later.status();
  ASSERT_THAT(later->jobs, SizeIs(1));
  EXPECT_EQ(later->jobs[0].id, b->id);
  auto done =
      store->ListJobsBlocking(ListJobsQuery{"state = SUCCEEDED", "", 0, ""});
  ASSERT_THAT(done->jobs, SizeIs(1));
  auto unfinished = store->ListJobsBlocking(
      ListJobsQuery{"NOT finish_time > \"2000-01-01T00:00:00Z\"", "", 0, ""});
  ASSERT_TRUE(unfinished.ok());
  ASSERT_THAT(unfinished->jobs, SizeIs(1));
  EXPECT_EQ(unfinished->jobs[0].id, a->id);
}

TEST_F(SqliteJobStoreTest,
       RetentionPrunesTerminalJobsInBatchesAndEventIdsStayUnique) {
  SqliteJobStore::Options options;
  options.retention.max_terminal_jobs = 5;
  options.retention.batch_size = 4;
  auto store = Open(options);
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
    ids.push_back(job->id);
    clock_.Advance(absl::Seconds(1));
    if (i < 17) {
      ASSERT_TRUE(
          MutateSync(*store, job->id, MoveTo(JobState::kSucceeded)).ok());
    }
  }
  const int64_t last_before = *store->LastEventIdBlocking();
  const int64_t commits_before = store->stats().commits;
  absl::StatusOr<int64_t> deleted = store->RunRetentionOnceBlocking();
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 12);
  EXPECT_GE(store->stats().commits - commits_before, 3);  // 4 + 4 + 4
  EXPECT_EQ(store->GetJobBlocking(ids[0]).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store->GetJobBlocking(ids[12]).ok());
  EXPECT_TRUE(store->GetJobBlocking(ids[19]).ok());
  EXPECT_GT(*store->MaxPrunedEventIdBlocking(), 0);
  EXPECT_GT(*store->OldestEventIdBlocking(), 1);

  // Age limit: jobs that finished more than a minute ago.
  absl::StatusOr<int64_t> again = store->RunRetentionOnceBlocking();
  EXPECT_EQ(*again, 0);
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  auto events = store->ReadJobEventsBlocking(job->id, 0, 10);
  EXPECT_GT((*events)[0].event_id, last_before);
  EXPECT_EQ(*store->LastEventIdBlocking(), (*events)[0].event_id);
}

TEST_F(SqliteJobStoreTest, RetentionByAgeKeepsRecentAndLiveJobs) {
  SqliteJobStore::Options options;
  options.retention.terminal_max_age = absl::Hours(1);
  auto store = Open(options);
  absl::StatusOr<Job> old_done = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(MutateSync(*store, old_done->id, MoveTo(JobState::kFailed)).ok());
  absl::StatusOr<Job> live = SubmitOne(*store, MakeJob());
  clock_.Advance(absl::Hours(2));
  absl::StatusOr<Job> new_done = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(
      MutateSync(*store, new_done->id, MoveTo(JobState::kCancelled)).ok());
  EXPECT_EQ(*store->RunRetentionOnceBlocking(), 1);
  EXPECT_FALSE(store->GetJobBlocking(old_done->id).ok());
  EXPECT_TRUE(store->GetJobBlocking(live->id).ok());
  EXPECT_TRUE(store->GetJobBlocking(new_done->id).ok());
  // The pruned high-water mark survives a restart.
  int64_t pruned = *store->MaxPrunedEventIdBlocking();
  store.reset();
  store = Open(options);
  EXPECT_EQ(*store->MaxPrunedEventIdBlocking(), pruned);
}

absl::StatusOr<Job> DeleteSync(JobStore& store, const std::string& id,
                               std::function<absl::Status(const Job&)> check) {
  return AwaitJob(
      [&](JobCallback done) { store.Delete(id, std::move(check), done); });
}

TEST_F(SqliteJobStoreTest, DeleteRemovesOnlyTerminalJobsTheCheckAllows) {
  auto store = Open();
  NewJob labelled = MakeJob();
  labelled.job.labels["team"] = "a";
  absl::StatusOr<Job> done = SubmitOne(*store, labelled);
  ASSERT_TRUE(MutateSync(*store, done->id, MoveTo(JobState::kSucceeded)).ok());
  absl::StatusOr<Job> live = SubmitOne(*store, MakeJob());
  const int64_t last_event = *store->LastEventIdBlocking();

  // Not terminal: refused, kept.
  absl::StatusOr<Job> refused = DeleteSync(*store, live->id, nullptr);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(GetPreconditionViolations(refused.status()).size(), 1u);
  EXPECT_EQ(GetPreconditionViolations(refused.status())[0].type, "STATE");
  // The check refuses: kept.
  absl::StatusOr<Job> checked = DeleteSync(*store, done->id, [](const Job&) {
    return absl::AbortedError("not this one");
  });
  EXPECT_EQ(checked.status().code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(store->GetJobBlocking(done->id).ok());
  EXPECT_EQ(*store->MaxPrunedEventIdBlocking(), 0);

  absl::StatusOr<Job> deleted =
      DeleteSync(*store, done->id, [](const Job& job) {
        EXPECT_EQ(job.state, JobState::kSucceeded);
        return absl::OkStatus();
      });
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->id, done->id);
  EXPECT_EQ(deleted->labels.at("team"), "a");
  EXPECT_EQ(store->GetJobBlocking(done->id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store->ReadJobEventsBlocking(done->id, 0, 10)->empty());
  EXPECT_TRUE(store->GetJobBlocking(live->id).ok());
  ListJobsQuery by_label;
  by_label.filter = "labels.team = \"a\"";
  EXPECT_TRUE(store->ListJobsBlocking(by_label)->jobs.empty());
  // Watch cursors below the deleted events need a reset, also after a reopen.
  EXPECT_GT(*store->MaxPrunedEventIdBlocking(), 0);
  EXPECT_LT(*store->MaxPrunedEventIdBlocking(), last_event);
  const int64_t pruned = *store->MaxPrunedEventIdBlocking();
  EXPECT_EQ(DeleteSync(*store, done->id, nullptr).status().code(),
            absl::StatusCode::kNotFound);
  store.reset();
  store = Open();
  EXPECT_EQ(*store->MaxPrunedEventIdBlocking(), pruned);
}

// "queue/STATE=n" per count, in order: the store's in-memory counts, or
// what SQL counts on a connection of its own.
std::vector<std::string> Describe(const std::vector<QueueStateCount>& counts) {
  std::vector<std::string> out;
  for (const QueueStateCount& c : counts)
    out.push_back(
        absl::StrCat(c.queue, "/", JobStateName(c.state), "=", c.count));
  return out;
}

std::vector<std::string> CountedBySql(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  SQLite::Statement stmt(db, kCountJobsByQueueAndStateSql);
  std::vector<QueueStateCount> counts;
  while (stmt.executeStep()) {
    counts.push_back(
        QueueStateCount{stmt.getColumn(0).getString(),
                        static_cast<JobState>(stmt.getColumn(1).getInt()),
                        stmt.getColumn(2).getInt64()});
  }
  return Describe(counts);
}

TEST_F(SqliteJobStoreTest, JobCountsStayExactThroughEveryWriteAndAReopen) {
  SqliteJobStore::Options options;
  options.retention.terminal_max_age = absl::Hours(1);
  auto store = Open(options);
  auto expect_exact = [&](const std::string& when) {
    absl::StatusOr<std::vector<QueueStateCount>> counts =
        store->CountJobsByQueueAndStateBlocking();
    ASSERT_TRUE(counts.ok()) << counts.status();
    EXPECT_EQ(Describe(*counts), CountedBySql(dir_.db())) << when;
  };

  // One batch over two queues, some scheduled, some repeating a request id
  // (of the batch itself, then of an earlier batch): not created again.
  std::vector<NewJob> batch;
  for (int i = 0; i < 60; ++i) {
    NewJob j = MakeJob("k", i < 40 ? "a" : "b");
    if (i % 5 == 0) j.job.schedule_time = clock_.Now() + absl::Hours(3);
    if (i % 7 == 0) j.job.request_id = absl::StrCat("r", i % 14);
    batch.push_back(std::move(j));
  }
  absl::StatusOr<std::vector<SubmitOutcome>> submitted =
      SubmitSync(*store, std::move(batch));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  NewJob again = MakeJob("k", "a");
  again.job.request_id = "r0";
  ASSERT_TRUE(SubmitOne(*store, again).ok());
  expect_exact("after the submits");
  {
    auto counts = store->CountJobsByQueueAndStateBlocking();
    int64_t total = 0;
    for (const QueueStateCount& c : *counts) total += c.count;
    // i % 7 == 0 gives 9 jobs with request ids r0 or r7: 7 repeat one.
    EXPECT_EQ(total, 53);
  }

  // State changes, queue moves, and a mutation that fails.
  std::vector<std::string> ids;
  for (const SubmitOutcome& o : *submitted) {
    if (o.created) ids.push_back(o.job.id);
  }
  const JobState moves[] = {JobState::kRunning, JobState::kSucceeded,
                            JobState::kFailed, JobState::kCancelled,
                            JobState::kPaused};
  for (size_t i = 0; i < 30; ++i)
    ASSERT_TRUE(MutateSync(*store, ids[i], MoveTo(moves[i % 5])).ok());
  for (size_t i = 30; i < 36; ++i) {
    ASSERT_TRUE(MutateSync(*store, ids[i], [](const Job& current, absl::Time) {
                  JobChange change{current, {}};
                  change.job.queue = "moved";
                  JobEvent e;
                  e.type = EventType::kUpdated;
                  change.events.push_back(e);
                  return absl::StatusOr<JobChange>(change);
                }).ok());
  }
  EXPECT_FALSE(MutateSync(*store, ids[40], [](const Job&, absl::Time) {
                 return absl::StatusOr<JobChange>(
                     absl::FailedPreconditionError("no"));
               }).ok());
  expect_exact("after the mutations");

  // Deletes (one refused: the job is live), then retention.
  ASSERT_TRUE(DeleteSync(*store, ids[1], nullptr).ok());
  ASSERT_TRUE(DeleteSync(*store, ids[2], nullptr).ok());
  EXPECT_FALSE(DeleteSync(*store, ids[0], nullptr).ok());
  expect_exact("after the deletes");
  clock_.Advance(absl::Hours(2));
  absl::StatusOr<int64_t> pruned = store->RunRetentionOnceBlocking();
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_GT(*pruned, 0);
  expect_exact("after retention");

  // A reopen counts again from the database: the same numbers.
  const std::vector<std::string> before =
      Describe(*store->CountJobsByQueueAndStateBlocking());
  store.reset();
  store = Open(options);
  EXPECT_EQ(Describe(*store->CountJobsByQueueAndStateBlocking()), before);
  ASSERT_TRUE(MutateSync(*store, ids[0], MoveTo(JobState::kSucceeded)).ok());
  expect_exact("after the reopen and one more change");
}

TEST_F(SqliteJobStoreTest, LoadActiveJobsSkipsTerminalJobsAndHeavyColumns) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.payload = "payload";
  absl::StatusOr<Job> live = SubmitOne(*store, in);
  absl::StatusOr<Job> done = SubmitOne(*store, in);
  ASSERT_TRUE(MutateSync(*store, done->id, MoveTo(JobState::kSucceeded)).ok());
  std::vector<Job> seen;
  ASSERT_TRUE(
      store->LoadActiveJobsBlocking([&](const Job& j) { seen.push_back(j); })
          .ok());
  ASSERT_THAT(seen, SizeIs(1));
  EXPECT_EQ(seen[0].id, live->id);
  EXPECT_THAT(seen[0].payload, IsEmpty());
  EXPECT_EQ(seen[0].kind, "resize");
}

TEST_F(SqliteJobStoreTest, SettingsAndQueuesRoundTrip) {
  auto store = Open();
  EXPECT_FALSE(store->GetSettingBlocking("dispatch.paused")->has_value());
  absl::Notification n1;
  store->PutSetting("dispatch.paused", "1", [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    n1.Notify();
  });
  n1.WaitForNotification();
  EXPECT_EQ(store->GetSettingBlocking("dispatch.paused")->value(), "1");

  QueueRow row;
  row.name = "emails";
  row.paused = true;
  row.resume_time = clock_.Now() + absl::Hours(1);
  row.weight = 3;
  absl::Notification n2;
  store->UpsertQueue(row, [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    n2.Notify();
  });
  n2.WaitForNotification();
  auto rows = store->ListQueueRowsBlocking();
  ASSERT_TRUE(rows.ok());
  ASSERT_THAT(*rows, SizeIs(1));
  EXPECT_TRUE((*rows)[0].paused);
  EXPECT_EQ((*rows)[0].resume_time, row.resume_time);
  EXPECT_EQ((*rows)[0].weight, 3);
}

// The row a mutation of `id` gets as `current` (the writer's view), written
// back unchanged.
absl::StatusOr<Job> RowSeenByWriter(JobStore& store, const std::string& id) {
  Job seen;
  absl::StatusOr<Job> r = MutateSync(
      store, id,
      [&seen](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
        seen = current;
        return JobChange{current, {}};
      });
  if (!r.ok()) return r.status();
  return seen;
}

// Expects the writer's view of job `id` to equal the stored row.
void ExpectWriterSeesStoredRow(SqliteJobStore& store, const std::string& id) {
  absl::StatusOr<Job> seen = RowSeenByWriter(store, id);
  absl::StatusOr<Job> stored = store.GetJobBlocking(id);
  ASSERT_TRUE(seen.ok()) << seen.status();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(JobColumnsEqual(*seen, *stored))
      << "version " << seen->version << " vs " << stored->version << ", state "
      << static_cast<int>(seen->state) << " vs "
      << static_cast<int>(stored->state);
}

// Applies `edit` to the job and records one `updated` event naming `path`.
JobMutation UpdateWith(std::string path, std::function<void(Job&)> edit) {
  return [path = std::move(path), edit = std::move(edit)](
             const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
    JobChange change{current, {}};
    edit(change.job);
    JobEvent e;
    e.type = EventType::kUpdated;
    e.paths = {path};
    change.events.push_back(std::move(e));
    return change;
  };
}

JobMutation BumpPriority() {
  return UpdateWith("priority", [](Job& job) { ++job.priority; });
}

// Holds the writer in the `done` of a lone Submit (which the idle writer
// answers itself), queues `count` writes made by `write` (each given a
// callback to run on the thread that answers it), then lets the writer go
// on. With max_batch_jobs 1, each queued write is a commit of its own that
// finds more writes queued behind it, but the last. Returns the names of the
// answering threads, in answer order.
std::vector<std::string> ThreadsThatAnswerQueuedWrites(
    SqliteJobStore& store, int count,
    const std::function<void(std::function<void()>)>& write) {
  absl::Notification held, release;
  store.Submit({MakeJob()}, [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    held.Notify();
    release.WaitForNotification();
  });
  held.WaitForNotification();
  absl::Mutex mu;
  std::vector<std::string> threads;
  absl::BlockingCounter answered(count);
  for (int i = 0; i < count; ++i) {
    write([&] {
      {
        absl::MutexLock lock(&mu);
        threads.push_back(ThisThreadName());
      }
      answered.DecrementCount();
    });
  }
  release.Notify();
  answered.Wait();
  absl::MutexLock lock(&mu);
  return threads;
}

TEST_F(SqliteJobStoreTest, SmallCommitsOfSubmitsAreAnsweredByTheBusyWriter) {
  constexpr int kWrites = 20;
  auto submit = [&](SqliteJobStore& store) {
    return [&store](std::function<void()> answered) {
      store.Submit({MakeJob()},
                   [answered](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                     EXPECT_TRUE(r.ok()) << r.status();
                     answered();
                   });
    };
  };
  SqliteJobStore::Options options;
  options.max_batch_jobs = 1;
  {
    auto store = Open(options);
    EXPECT_THAT(ThreadsThatAnswerQueuedWrites(*store, kWrites, submit(*store)),
                Each(Eq("jw-writer")));
  }
  // 0: only an idle writer answers; the completion thread takes every
  // commit that finds writes queued behind it.
  options.inline_completion_items = 0;
  auto store = Open(options);
  const std::vector<std::string> threads =
      ThreadsThatAnswerQueuedWrites(*store, kWrites, submit(*store));
  EXPECT_GE(std::count(threads.begin(), threads.end(), "jw-complete"),
            kWrites - 1);
}

TEST_F(SqliteJobStoreTest, OtherCommitsGoToTheCompletionThreadWhenQueued) {
  SqliteJobStore::Options options;
  options.max_batch_jobs = 1;
  auto store = Open(options);
  absl::StatusOr<Job> submitted = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string id = submitted->id;
  constexpr int kWrites = 20;
  // A Mutate's answer may dispatch or stream (a worker's report): it is
  // left to the completion thread unless the writer is idle.
  const std::vector<std::string> threads = ThreadsThatAnswerQueuedWrites(
      *store, kWrites, [&](std::function<void()> answered) {
        store->Mutate(id, BumpPriority(), [answered](absl::StatusOr<Job> r) {
          EXPECT_TRUE(r.ok()) << r.status();
          answered();
        });
      });
  EXPECT_GE(std::count(threads.begin(), threads.end(), "jw-complete"),
            kWrites - 1);
  // A large Submit (more jobs than inline_completion_items) likewise.
  std::vector<NewJob> many(SqliteJobStore::Options().inline_completion_items);
  for (NewJob& j : many) j = MakeJob();
  const std::vector<std::string> large = ThreadsThatAnswerQueuedWrites(
      *store, 3, [&](std::function<void()> answered) {
        store->Submit(many,
                      [answered](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                        EXPECT_TRUE(r.ok()) << r.status();
                        answered();
                      });
      });
  EXPECT_GE(std::count(large.begin(), large.end(), "jw-complete"), 2);
}

TEST_F(SqliteJobStoreTest, MutatesOfRecentlyWrittenJobsUseTheRowCache) {
  clock_.Advance(absl::Nanoseconds(1'234'567));  // not a whole microsecond
  auto store = Open();
  NewJob in = MakeJob();
  in.job.args_json = R"({"a":1})";
  in.job.labels = {{"tier", "gold"}};
  in.job.retry_policy =
      RetryPolicy{absl::Nanoseconds(2'000'500), absl::Minutes(1), 3.0, 0.5};
  in.job.webhook = WebhookSpec{"https://example.com/hook", {1, 3}};
  in.job.request_id = "rid";
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  const SqliteJobStore::Stats before = store->stats();
  ASSERT_TRUE(MutateSync(*store, job->id, BumpPriority()).ok());
  ExpectWriterSeesStoredRow(*store, job->id);
  ASSERT_TRUE(
      MutateSync(*store, job->id,
                 [this](const Job& c, absl::Time) -> absl::StatusOr<JobChange> {
                   JobChange change{c, {}};
                   change.job.state = JobState::kRunning;
                   change.job.attempt = 1;
                   change.job.worker_id = "w1";
                   change.job.progress = Progress{1, 2, "half", ""};
                   change.job.lease_expire_time =
                       clock_.Now() + absl::Nanoseconds(30'000'000'001);
                   change.job.labels.erase("tier");
                   return change;
                 })
          .ok());
  ExpectWriterSeesStoredRow(*store, job->id);
  const SqliteJobStore::Stats after = store->stats();
  EXPECT_GT(after.row_cache_hits, before.row_cache_hits);
  EXPECT_EQ(after.row_cache_misses, before.row_cache_misses);
  // A terminal job leaves the cache; it is read from SQLite again.
  ASSERT_TRUE(MutateSync(*store, job->id, MoveTo(JobState::kSucceeded)).ok());
  ExpectWriterSeesStoredRow(*store, job->id);
  EXPECT_GT(store->stats().row_cache_misses, after.row_cache_misses);
}

TEST_F(SqliteJobStoreTest, ARerunBatchDoesNotSeeRowsOfItsRolledBackFirstRun) {
  auto store = Open();
  RefuseInsertsOfKindB2();
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  WriterGate gate;
  gate.Block(*store, job->id);
  absl::StatusOr<Job> bumped;
  absl::Notification nm, nb;
  // Written (and cached) in the first run, which is then rolled back.
  store->Mutate(job->id, BumpPriority(), [&](absl::StatusOr<Job> r) {
    bumped = std::move(r);
    nm.Notify();
  });
  store->Submit({WithRequestId(MakeJob("b1"), "b1"), MakeJob("b2")},
                [&](auto) { nb.Notify(); });
  const SqliteJobStore::Stats before = store->stats();
  gate.Release();
  nm.WaitForNotification();
  nb.WaitForNotification();
  ASSERT_EQ(store->stats().rerun_batches - before.rerun_batches, 1);
  ASSERT_TRUE(bumped.ok()) << bumped.status();
  // Applied once: the second run started from the committed row.
  EXPECT_EQ(bumped->version, 2);
  EXPECT_EQ(bumped->last_seq, 2);
  EXPECT_EQ(bumped->priority, 1);
  ExpectWriterSeesStoredRow(*store, job->id);
  auto events = store->ReadJobEventsBlocking(job->id, 0, 10);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, SizeIs(2));
  // b1, written and undone twice, is in neither the table nor the cache.
  auto counts = store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok());
  ASSERT_THAT(*counts, SizeIs(1));
  EXPECT_EQ((*counts)[0].count, 1);
}

TEST_F(SqliteJobStoreTest, AFailedTransactionLeavesNoWrittenRowInTheCache) {
  SqliteJobStore::Options options;
  options.max_db_pages = 64;
  auto store = Open(options);
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  WriterGate gate;
  gate.Block(*store, job->id);
  absl::Status bumped, big;
  absl::Notification nm, nb;
  store->Mutate(job->id, BumpPriority(), [&](absl::StatusOr<Job> r) {
    bumped = r.status();
    nm.Notify();
  });
  std::vector<NewJob> huge;
  for (int i = 0; i < 8; ++i) {
    huge.push_back(MakeJob());
    huge.back().job.payload = std::string(64 << 10, 'x');
  }
  store->Submit(std::move(huge), [&](auto r) {
    big = r.status();
    nb.Notify();
  });
  gate.Release();
  nm.WaitForNotification();
  nb.WaitForNotification();
  ASSERT_EQ(big.code(), absl::StatusCode::kResourceExhausted) << big;
  // Whether SQLite undid the statement or the whole transaction, the writer
  // sees exactly what is stored, and the bump counts once or not at all.
  ExpectWriterSeesStoredRow(*store, job->id);
  absl::StatusOr<Job> stored = store->GetJobBlocking(job->id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->version, bumped.ok() ? 2 : 1);
  ASSERT_TRUE(MutateSync(*store, job->id, BumpPriority()).ok());
  ExpectWriterSeesStoredRow(*store, job->id);
}

TEST_F(SqliteJobStoreTest, ADisabledRowCacheReadsEveryRow) {
  SqliteJobStore::Options options;
  options.row_cache_jobs = 0;
  auto store = Open(options);
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(MutateSync(*store, job->id, BumpPriority()).ok());
  ExpectWriterSeesStoredRow(*store, job->id);
  EXPECT_EQ(store->stats().row_cache_hits, 0);
}

// A running job's pending stop request, as worker_transitions::RequestStop
// writes it (the store test does not depend on core/worker_transitions).
JobMutation RunWithStopRequest(StopRequest request, std::string reason) {
  return UpdateWith("cancel_requested",
                    [request, reason = std::move(reason)](Job& job) {
                      job.state = JobState::kRunning;
                      job.attempt = 1;
                      job.stop_request = request;
                      job.stop_reason = reason;
                    });
}

TEST_F(SqliteJobStoreTest, StopRequestOfARunningJobSurvivesAReopen) {
  auto store = Open();
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(MutateSync(*store, job->id,
                         RunWithStopRequest(StopRequest::kCancel, "by user"))
                  .ok());
  store.reset();
  store = Open();
  absl::StatusOr<Job> read = store->GetJobBlocking(job->id);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->stop_request, StopRequest::kCancel);
  EXPECT_EQ(read->stop_reason, "by user");
  std::vector<Job> active;
  ASSERT_TRUE(
      store->LoadActiveJobsBlocking([&](const Job& j) { active.push_back(j); })
          .ok());
  ASSERT_THAT(active, SizeIs(1));
  EXPECT_EQ(active[0].state, JobState::kRunning);
  EXPECT_EQ(active[0].stop_request, StopRequest::kCancel);
  EXPECT_EQ(active[0].stop_reason, "by user");
}

TEST_F(SqliteJobStoreTest, SchemaVersionOneGainsTheStopRequestColumns) {
  absl::StatusOr<Job> job;
  {
    auto store = Open();
    job = SubmitOne(*store, MakeJob());
    ASSERT_TRUE(job.ok());
  }
  {
    // Back to the first schema, as a jobwire before migration 2 left it.
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec("ALTER TABLE jobs DROP COLUMN stop_request");
    db.exec("ALTER TABLE jobs DROP COLUMN stop_reason");
    db.exec("PRAGMA user_version = 1");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<Job> read = store->GetJobBlocking(job->id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->stop_request, StopRequest::kNone);
  EXPECT_EQ(read->stop_reason, "");
}

constexpr JobState kEveryState[] = {JobState::kQueued,    JobState::kScheduled,
                                    JobState::kRunning,   JobState::kPaused,
                                    JobState::kSucceeded, JobState::kFailed,
                                    JobState::kCancelled};

// Filters on state alone and mixed with other fields, through NOT, OR, !=.
constexpr const char* kStateFilters[] = {
    "state = QUEUED",
    "state = SCHEDULED",
    "state = RUNNING",
    "state = PAUSED",
    "state = SUCCEEDED",
    "state = FAILED",
    "state = CANCELLED",
    "state != QUEUED",
    "state != SUCCEEDED",
    "NOT state = RUNNING",
    "-state = FAILED",
    "state = QUEUED OR state = PAUSED",
    "state = QUEUED OR state = FAILED",
    "state = SUCCEEDED OR state = CANCELLED",
    "NOT (state = SUCCEEDED OR state = FAILED OR state = CANCELLED)",
    ("state != QUEUED AND state != SCHEDULED AND state != RUNNING AND "
     "state != PAUSED"),
    "queue = q1 AND state = RUNNING",
    "queue = q1 OR state = RUNNING",
    "NOT (queue = q1 AND state = SUCCEEDED)",
    "queue = q2 AND -state = SCHEDULED",
    "state = QUEUED AND state = SUCCEEDED",
};

std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> ids;
  for (const Job& j : jobs) ids.push_back(j.id);
  return ids;
}

// The ids the filter selects when compiled without the implied term, in id
// order, read straight from the database file.
std::vector<std::string> IdsByPlainFilter(const std::string& path,
                                          const char* filter) {
  absl::StatusOr<FilterExpr> f = ParseFilter(filter);
  EXPECT_TRUE(f.ok()) << f.status();
  std::string sql = "SELECT id FROM jobs WHERE ";
  std::vector<SqlValue> params;
  AppendFilterSql(*f, &sql, &params);
  sql.append(" ORDER BY id");
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  SQLite::Statement stmt(db, sql);
  for (size_t i = 0; i < params.size(); ++i) {
    BindValue(stmt, static_cast<int>(i) + 1, params[i]);
  }
  std::vector<std::string> ids;
  while (stmt.executeStep()) ids.push_back(stmt.getColumn(0).getString());
  return ids;
}

// The details of EXPLAIN QUERY PLAN of `sql`, one line each.
std::string QueryPlan(const std::string& path, const std::string& sql) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  SQLite::Statement stmt(db, "EXPLAIN QUERY PLAN " + sql);
  std::string plan;
  while (stmt.executeStep()) {
    absl::StrAppend(&plan, stmt.getColumn(3).getString(), "\n");
  }
  return plan;
}

TEST_F(SqliteJobStoreTest, StateFiltersSelectTheSameJobsAsWithoutTheIndexTerm) {
  auto store = Open();
  for (const char* queue : {"q1", "q2"}) {
    for (JobState state : kEveryState) {
      absl::StatusOr<Job> job = SubmitOne(*store, MakeJob("k", queue));
      ASSERT_TRUE(job.ok()) << job.status();
      if (state != JobState::kQueued) {
        ASSERT_TRUE(MutateSync(*store, job->id, MoveTo(state)).ok());
      }
    }
  }
  for (const char* filter : kStateFilters) {
    SCOPED_TRACE(filter);
    auto listed = store->ListJobsBlocking(ListJobsQuery{filter, "", 1000, ""});
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_EQ(Ids(listed->jobs), IdsByPlainFilter(dir_.db(), filter));
  }
  auto queued =
      store->ListJobsBlocking(ListJobsQuery{"state = QUEUED", "", 0, ""});
  EXPECT_THAT(queued->jobs, SizeIs(2));
  auto not_failed =
      store->ListJobsBlocking(ListJobsQuery{"NOT state = FAILED", "", 0, ""});
  EXPECT_THAT(not_failed->jobs, SizeIs(12));
}

TEST_F(SqliteJobStoreTest, RetentionByCountSkipsRetriedJobsAndPrunesOldest) {
  SqliteJobStore::Options options;
  options.retention.max_terminal_jobs = 1;
  auto store = Open(options);
  absl::StatusOr<Job> first = SubmitOne(*store, MakeJob());
  absl::StatusOr<Job> retried = SubmitOne(*store, MakeJob());
  absl::StatusOr<Job> last = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(MutateSync(*store, first->id, MoveTo(JobState::kFailed)).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(MutateSync(*store, retried->id, MoveTo(JobState::kFailed)).ok());
  // A retry takes the job out of the finished jobs again.
  ASSERT_TRUE(MutateSync(*store, retried->id, MoveTo(JobState::kQueued)).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(MutateSync(*store, last->id, MoveTo(JobState::kSucceeded)).ok());
  EXPECT_EQ(*store->RunRetentionOnceBlocking(), 1);
  EXPECT_FALSE(store->GetJobBlocking(first->id).ok());
  EXPECT_TRUE(store->GetJobBlocking(retried->id).ok());
  EXPECT_TRUE(store->GetJobBlocking(last->id).ok());
  EXPECT_EQ(*store->RunRetentionOnceBlocking(), 0);
}

TEST_F(SqliteJobStoreTest,
       RetentionRecoveryAndStateFiltersReadThePartialIndexes) {
  auto store = Open();
  ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
  const std::string path = dir_.db();
  EXPECT_THAT(QueryPlan(path, kOldFinishedJobsSql),
              HasSubstr("USING INDEX jobs_finished (finish_time>? AND "
                        "finish_time<?)"));
  EXPECT_THAT(QueryPlan(path, kFirstFinishedJobsSql),
              HasSubstr("USING INDEX jobs_finished (finish_time>?)"));
  EXPECT_THAT(QueryPlan(path, kCountFinishedJobsSql),
              HasSubstr("USING COVERING INDEX jobs_finished"));
  EXPECT_THAT(
      QueryPlan(path, absl::StrCat("SELECT ", JobColumnList(true),
                                   " FROM jobs WHERE ", kActiveJobsCondition)),
      HasSubstr("USING INDEX jobs_active"));
  const std::string counts = QueryPlan(path, kCountJobsByQueueAndStateSql);
  EXPECT_THAT(counts, HasSubstr("USING INDEX jobs_active"));
  EXPECT_THAT(counts, HasSubstr("USING COVERING INDEX jobs_finished_state"));
  const std::pair<const char*, const char*> filters[] = {
      {"state = QUEUED", "USING INDEX jobs_active"},
      {"queue = q1 AND state = RUNNING", "USING INDEX jobs_active"},
      {"state = QUEUED OR state = PAUSED", "USING INDEX jobs_active"},
      {"state = FAILED", "USING INDEX jobs_finished_state_id (state=?)"},
      // Two ranges merged: either index, then a sort.
      {"state = SUCCEEDED OR state = CANCELLED", "(state=?)"},
  };
  for (const auto& [filter, index] : filters) {
    SCOPED_TRACE(filter);
    absl::StatusOr<ListPlan> plan =
        PlanListJobs(ListJobsQuery{filter, "", 0, ""});
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_THAT(QueryPlan(path, plan->sql), HasSubstr(index));
  }
  // A later page of one terminal state is one index range, not a sort of
  // every job in that state.
  Job last;
  last.id = "01J0000000000000000000ZZZZ";
  absl::StatusOr<ListPlan> first =
      PlanListJobs(ListJobsQuery{"state = CANCELLED", "", 0, ""});
  ASSERT_TRUE(first.ok());
  absl::StatusOr<ListPlan> next = PlanListJobs(
      ListJobsQuery{"state = CANCELLED", "", 0, MakePageToken(*first, last)});
  ASSERT_TRUE(next.ok()) << next.status();
  const std::string page = QueryPlan(path, next->sql);
  EXPECT_THAT(page, HasSubstr("USING INDEX jobs_finished_state_id (state=? AND "
                              "id>?)"));
  EXPECT_THAT(page, Not(HasSubstr("TEMP B-TREE")));
}

// The writer's WAL writes are gathered into one per commit
// (wal_write_buffer.h) with synchronous FULL only.
TEST_F(SqliteJobStoreTest, TheWriterGathersWalWritesOnlyWhenCommitsSync) {
  for (auto sync : {SqliteJobStore::Synchronous::kFull,
                    SqliteJobStore::Synchronous::kNormal}) {
    const bool full = sync == SqliteJobStore::Synchronous::kFull;
    SCOPED_TRACE(full ? "full" : "normal");
    TempDbDir dir;
    SqliteJobStore::Options options;
    options.path = dir.db();
    options.synchronous = sync;
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    const WalWriteBufferStats before = GetWalWriteBufferStats();
    NewJob job = MakeJob();
    job.job.labels = {{"tenant", "acme"}};
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(SubmitOne(*store, job).ok());
    const WalWriteBufferStats after = GetWalWriteBufferStats();
    const int64_t gathered = after.writes_gathered - before.writes_gathered;
    const int64_t issued = after.writes_issued - before.writes_issued;
    // Each commit writes several frames, two writes each, as one.
    EXPECT_EQ(gathered >= 10 * 8, full) << gathered;
    EXPECT_EQ(issued, full ? 10 : 0);
    store->Shutdown();
    SQLite::Database db(dir.db(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("SELECT COUNT(*) FROM jobs").getInt(), 10);
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
  }
}

TEST_F(SqliteJobStoreTest, LabelFiltersProbeTheLabelsPrimaryKey) {
  auto store = Open();
  NewJob labelled = MakeJob();
  labelled.job.labels = {{"tenant", "acme"}, {"tier", "gold"}};
  absl::StatusOr<Job> acme = SubmitOne(*store, labelled);
  ASSERT_TRUE(acme.ok()) << acme.status();
  labelled.job.labels = {{"tenant", "other"}};
  ASSERT_TRUE(SubmitOne(*store, labelled).ok());
  ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
  const std::string path = dir_.db();
  for (const char* filter :
       {"labels.tenant = acme", "labels.tenant != other",
        "labels.tenant >= acme AND labels.tenant < b",
        "NOT labels.tier = silver AND labels.tenant = acme"}) {
    SCOPED_TRACE(filter);
    absl::StatusOr<ListPlan> plan =
        PlanListJobs(ListJobsQuery{filter, "", 0, ""});
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_THAT(QueryPlan(path, plan->sql),
                HasSubstr("USING PRIMARY KEY (job_id=? AND key=?)"));
    auto listed = store->ListJobsBlocking(ListJobsQuery{filter, "", 0, ""});
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_EQ(Ids(listed->jobs), std::vector<std::string>{acme->id});
  }
}

TEST_F(SqliteJobStoreTest, SchemaVersionFourLosesTheUnreadLabelIndex) {
  const std::string path = dir_.db();
  auto label_indexes = [&path] {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement stmt(db,
                           "SELECT COUNT(*) FROM sqlite_master WHERE type = "
                           "'index' AND name = 'job_labels_key_value'");
    stmt.executeStep();
    return stmt.getColumn(0).getInt();
  };
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    ASSERT_TRUE(MigrateBlocking(db, 4).ok());
    db.exec(
        "INSERT INTO jobs (id, queue, kind, max_attempts, state, create_time, "
        "update_time, version, last_seq, labels) VALUES "
        "('01JAAAAAAAAAAAAAAAAAAAAA01', 'q', 'k', 3, 2, 1000, 1000, 1, 0, "
        "'6:tenant4:acme')");
    db.exec(
        "INSERT INTO job_labels (job_id, key, value) VALUES "
        "('01JAAAAAAAAAAAAAAAAAAAAA01', 'tenant', 'acme')");
  }
  ASSERT_EQ(label_indexes(), 1);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(label_indexes(), 0);
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(),
              LatestSchemaVersion());
  }
  auto listed =
      store->ListJobsBlocking(ListJobsQuery{"labels.tenant = acme", "", 0, ""});
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(Ids(listed->jobs),
            std::vector<std::string>{"01JAAAAAAAAAAAAAAAAAAAAA01"});
}

TEST_F(SqliteJobStoreTest, AnOlderDatabaseWithJobsInEveryStateMigrates) {
  // Version 2: the schema before the partial indexes, with the indexes on
  // state; rows as an older jobwire wrote them, plus two that break the rule
  // "finish_time set exactly on terminal jobs" and are repaired.
  struct Row {
    std::string id;
    std::string queue;
    int state;
    bool finished;
  };
  std::vector<Row> rows;
  int n = 0;
  for (const char* queue : {"q1", "q2"}) {
    for (JobState state : kEveryState) {
      rows.push_back(
          Row{absl::StrCat("01JAAAAAAAAAAAAAAAAAAAAA", n / 10, n % 10), queue,
              static_cast<int>(state), IsTerminal(state)});
      ++n;
    }
  }
  rows.push_back(Row{"01JAAAAAAAAAAAAAAAAAAAAA90", "q1", 5, false});
  rows.push_back(Row{"01JAAAAAAAAAAAAAAAAAAAAA91", "q1", 3, true});
  std::vector<std::pair<std::string, std::vector<std::string>>> before;
  std::vector<std::string> counts_before;
  {
    SQLite::Database db(dir_.db(),
                        SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    ASSERT_TRUE(MigrateBlocking(db, 2).ok());
    ASSERT_EQ(db.execAndGet("PRAGMA user_version").getInt(), 2);
    SQLite::Statement insert(
        db,
        "INSERT INTO jobs (id, queue, kind, max_attempts, state, create_time, "
        "update_time, finish_time, version, last_seq) VALUES (?, ?, 'k', 3, ?, "
        "1000, 2000, ?, 1, 0)");
    for (const Row& r : rows) {
      insert.bind(1, r.id);
      insert.bind(2, r.queue);
      insert.bind(3, r.state);
      if (r.finished) {
        insert.bind(4, 1500);
      } else {
        insert.bind(4);
      }
      insert.exec();
      insert.reset();
    }
    for (const char* filter : kStateFilters) {
      before.emplace_back(filter, IdsByPlainFilter(dir_.db(), filter));
    }
    SQLite::Statement counts(db,
                             "SELECT queue, state, COUNT(*) FROM jobs GROUP "
                             "BY queue, state ORDER BY queue, state");
    while (counts.executeStep()) {
      counts_before.push_back(absl::StrCat(counts.getColumn(0).getString(), "/",
                                           counts.getColumn(1).getInt(), "=",
                                           counts.getColumn(2).getInt64()));
    }
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(),
              LatestSchemaVersion());
    std::set<std::string> indexes;
    SQLite::Statement names(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'index' AND "
        "tbl_name = 'jobs'");
    while (names.executeStep()) indexes.insert(names.getColumn(0).getString());
    EXPECT_EQ(indexes.count("jobs_active"), 1u);
    EXPECT_EQ(indexes.count("jobs_finished"), 1u);
    EXPECT_EQ(indexes.count("jobs_finished_state"), 1u);
    EXPECT_EQ(indexes.count("jobs_finished_state_id"), 1u);
    EXPECT_EQ(indexes.count("jobs_state_finish"), 0u);
    EXPECT_EQ(indexes.count("jobs_queue_state"), 0u);
    EXPECT_EQ(db.execAndGet("SELECT COUNT(*) FROM jobs WHERE (finish_time IS "
                            "NULL) = (state IN (5, 6, 7))")
                  .getInt(),
              0);
  }
  for (const auto& [filter, ids] : before) {
    SCOPED_TRACE(filter);
    auto listed = store->ListJobsBlocking(ListJobsQuery{filter, "", 1000, ""});
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_EQ(Ids(listed->jobs), ids);
  }
  absl::StatusOr<std::vector<QueueStateCount>> counts =
      store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok()) << counts.status();
  std::vector<std::string> counts_after;
  for (const QueueStateCount& c : *counts) {
    counts_after.push_back(
        absl::StrCat(c.queue, "/", static_cast<int>(c.state), "=", c.count));
  }
  EXPECT_EQ(counts_after, counts_before);
  std::vector<std::string> active;
  ASSERT_TRUE(store
                  ->LoadActiveJobsBlocking(
                      [&](const Job& j) { active.push_back(j.id); })
                  .ok());
  std::sort(active.begin(), active.end());
  std::vector<std::string> want;
  for (const Row& r : rows) {
    if (r.state <= 4) want.push_back(r.id);
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(active, want);
  // The repaired terminal row counts for retention.
  SqliteJobStore::Options options;
  options.retention.max_terminal_jobs = 6;
  store.reset();
  store = Open(options);
  EXPECT_EQ(*store->RunRetentionOnceBlocking(), 1);
  EXPECT_TRUE(store->GetJobBlocking("01JAAAAAAAAAAAAAAAAAAAAA90").ok());
}

// Every event of the log in event_id order.
std::vector<JobEvent> AllEvents(JobStore& store) {
  absl::StatusOr<std::vector<JobEvent>> events =
      store.ReadEventsBlocking(0, 10000);
  EXPECT_TRUE(events.ok()) << events.status();
  return events.ok() ? *std::move(events) : std::vector<JobEvent>{};
}

// The CREATE TABLE statement of job_events.
std::string EventsTableSql(SQLite::Database& db) {
  return db
      .execAndGet("SELECT sql FROM sqlite_master WHERE name = 'job_events'")
      .getString();
}

void ExpectIncreasingIds(const std::vector<JobEvent>& events) {
  for (size_t i = 1; i < events.size(); ++i)
    EXPECT_LT(events[i - 1].event_id, events[i].event_id) << i;
}

TEST_F(SqliteJobStoreTest, EventIdsIncreaseAcrossBatchesAndSeqStaysDense) {
  auto store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::vector<SubmitOutcome>> out =
        SubmitSync(*store, {MakeJob(), MakeJob()});
    ASSERT_TRUE(out.ok()) << out.status();
    for (const SubmitOutcome& o : *out) ids.push_back(o.job.id);
  }
  ASSERT_TRUE(MutateSync(*store, ids[0], MoveTo(JobState::kSucceeded)).ok());
  std::vector<JobEvent> events = AllEvents(*store);
  ASSERT_THAT(events, SizeIs(7));
  ExpectIncreasingIds(events);
  EXPECT_GT(events[0].event_id, 0);
  // The last event, in the last commit, is the finish of ids[0].
  EXPECT_EQ(events.back().job_id, ids[0]);
  EXPECT_EQ(events.back().seq, 2);
  EXPECT_EQ(*store->LastEventIdBlocking(), events.back().event_id);
}

TEST_F(SqliteJobStoreTest,
       EventIdsStayAboveEveryIdGivenAfterRetentionDeletedTheNewestAndReopen) {
  SqliteJobStore::Options options;
  options.retention.terminal_max_age = absl::Hours(1);
  int64_t newest = 0;
  {
    auto store = Open(options);
    absl::StatusOr<Job> live = SubmitOne(*store, MakeJob());
    absl::StatusOr<Job> done = SubmitOne(*store, MakeJob());
    ASSERT_TRUE(live.ok() && done.ok());
    ASSERT_TRUE(
        MutateSync(*store, done->id, MoveTo(JobState::kSucceeded)).ok());
    newest = AllEvents(*store).back().event_id;
    clock_.Advance(absl::Hours(2));
    ASSERT_EQ(*store->RunRetentionOnceBlocking(), 1);
    // Only the live job's event is left, below the deleted ones.
    std::vector<JobEvent> left = AllEvents(*store);
    ASSERT_THAT(left, SizeIs(1));
    EXPECT_LT(left[0].event_id, newest);
    EXPECT_EQ(*store->LastEventIdBlocking(), newest);
  }
  auto store = Open(options);
  EXPECT_EQ(*store->LastEventIdBlocking(), newest);
  absl::StatusOr<Job> next = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(next.ok());
  std::vector<JobEvent> events = AllEvents(*store);
  EXPECT_GT(events.back().event_id, newest);
  EXPECT_EQ(events.back().job_id, next->id);
  EXPECT_EQ(*store->LastEventIdBlocking(), events.back().event_id);
}

TEST_F(SqliteJobStoreTest, AFailedRequestOrBatchNeverLeadsToAReusedEventId) {
  WriterGate gate;
  auto store = OpenHeldRefusingB2(gate);
  absl::Notification na, nb, nc;
  bool b_failed = false;
  store->Submit({MakeJob("a")}, [&](auto) { na.Notify(); });
  // Written with its events, refused halfway: the batch runs again.
  store->Submit({MakeJob("b1"), MakeJob("b2")}, [&](auto r) {
    b_failed = !r.ok();
    nb.Notify();
  });
  store->Submit({MakeJob("c")}, [&](auto) { nc.Notify(); });
  gate.Release();
  na.WaitForNotification();
  nb.WaitForNotification();
  nc.WaitForNotification();
  EXPECT_TRUE(b_failed);
  // A batch of nothing but the failing request.
  EXPECT_FALSE(SubmitSync(*store, {MakeJob("b1"), MakeJob("b2")}).ok());
  ASSERT_TRUE(SubmitOne(*store, MakeJob("d")).ok());
  std::vector<JobEvent> events = AllEvents(*store);
  ASSERT_THAT(events, SizeIs(4));  // the gate's job, a, c, d
  ExpectIncreasingIds(events);
  EXPECT_EQ(*store->LastEventIdBlocking(), events.back().event_id);
  store.reset();
  store = Open();
  ASSERT_TRUE(SubmitOne(*store, MakeJob("e")).ok());
  std::vector<JobEvent> after = AllEvents(*store);
  ASSERT_THAT(after, SizeIs(5));
  EXPECT_GT(after.back().event_id, events.back().event_id);
}

TEST_F(SqliteJobStoreTest,
       AnOlderDatabaseMigratesAndKeepsTheAutoincrementHighWater) {
  std::vector<JobEvent> before;
  {
    auto store = Open();
    ASSERT_TRUE(SubmitSync(*store, {MakeJob(), MakeJob()}).ok());
    before = AllEvents(*store);
  }
  ASSERT_THAT(before, SizeIs(2));
  const int64_t high_water = before.back().event_id + 50;
  {
    // Back to the schema before job_events lost AUTOINCREMENT, after a
    // retention that deleted the 50 newest events: sqlite_sequence is above
    // MAX(event_id) and nothing else remembers those ids.
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    std::string ddl = EventsTableSql(db);
    const std::string key = "event_id INTEGER PRIMARY KEY";
    ASSERT_NE(ddl.find(key), std::string::npos) << ddl;
    ASSERT_EQ(ddl.find("AUTOINCREMENT"), std::string::npos) << ddl;
    ddl.insert(ddl.find(key) + key.size(), " AUTOINCREMENT");
    db.exec("ALTER TABLE job_events RENAME TO job_events_now");
    db.exec(ddl);
    db.exec("INSERT INTO job_events SELECT * FROM job_events_now");
    db.exec("DROP TABLE job_events_now");
    db.exec(absl::StrCat("UPDATE sqlite_sequence SET seq = ", high_water,
                         " WHERE name = 'job_events'"));
    db.exec("DELETE FROM settings");
    // The stop_request columns came with migration 2.
    db.exec("ALTER TABLE jobs DROP COLUMN stop_request");
    db.exec("ALTER TABLE jobs DROP COLUMN stop_reason");
    db.exec("PRAGMA user_version = 1");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(),
              LatestSchemaVersion());
    std::string ddl = EventsTableSql(db);
    EXPECT_EQ(ddl.find("AUTOINCREMENT"), std::string::npos) << ddl;
    EXPECT_NE(ddl.find("UNIQUE (job_id, seq)"), std::string::npos) << ddl;
  }
  // The events kept their ids and contents.
  std::vector<JobEvent> migrated = AllEvents(*store);
  ASSERT_THAT(migrated, SizeIs(2));
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(migrated[i].event_id, before[i].event_id);
    EXPECT_EQ(migrated[i].job_id, before[i].job_id);
    EXPECT_EQ(migrated[i].seq, before[i].seq);
    EXPECT_EQ(migrated[i].reason, before[i].reason);
  }
  EXPECT_EQ(*store->LastEventIdBlocking(), high_water);
  absl::StatusOr<Job> next = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(AllEvents(*store).back().event_id, high_water);
  // And again after a restart: the high-water mark is durable.
  const int64_t last = *store->LastEventIdBlocking();
  store.reset();
  store = Open();
  ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
  EXPECT_GT(AllEvents(*store).back().event_id, last);
}

// ---- Webhook outbox ----

class WebhookOutboxTest : public SqliteJobStoreTest {
 protected:
  std::unique_ptr<SqliteJobStore> OpenWithWebhooks() {
    SqliteJobStore::Options options;
    options.webhook_body = [](const Job& job, const JobEvent& e) {
      return absl::StrCat("{\"job\":\"", job.id, "\",\"event\":", e.event_id,
                          ",\"state\":\"", JobStateName(job.state), "\"}");
    };
    return Open(options);
  }

  static absl::Status Record(JobStore& store, WebhookAttempt a) {
    absl::Notification n;
    absl::Status out;
    store.RecordWebhookAttempt(std::move(a), [&](absl::Status s) {
      out = std::move(s);
      n.Notify();
    });
    n.WaitForNotification();
    return out;
  }

  static absl::StatusOr<WebhookOutboxRow> Redeliver(JobStore& store,
                                                    int64_t id) {
    absl::Notification n;
    absl::StatusOr<WebhookOutboxRow> out;
    store.RedeliverWebhook(id, [&](absl::StatusOr<WebhookOutboxRow> r) {
      out = std::move(r);
      n.Notify();
    });
    n.WaitForNotification();
    return out;
  }
};

class RecordingListener final : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override {
    absl::MutexLock lock(&mu_);
    for (const JobEvent& e : events) {
      if (e.webhook_queued) queued_.push_back(e.event_id);
    }
  }
  std::vector<int64_t> queued() {
    absl::MutexLock lock(&mu_);
    return queued_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> queued_ ABSL_GUARDED_BY(mu_);
};

TEST_F(WebhookOutboxTest, TheTerminalEventQueuesItsDeliveryInItsCommit) {
  auto store = OpenWithWebhooks();
  RecordingListener listener;
  store->AddCommitListener(&listener);
  NewJob in = MakeJob();
  in.job.webhook = WebhookSpec{"https://example.com/hook", {}};
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  absl::StatusOr<Job> plain = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(plain.ok());
  // Submitted: not a terminal event, nothing queued.
  EXPECT_THAT(*store->PendingWebhooksBlocking(10), IsEmpty());

  ASSERT_TRUE(MutateSync(*store, job->id, MoveTo(JobState::kSucceeded)).ok());
  ASSERT_TRUE(MutateSync(*store, plain->id, MoveTo(JobState::kSucceeded)).ok());

  auto events = store->ReadJobEventsBlocking(job->id, 0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_THAT(*events, SizeIs(2));
  const int64_t terminal_event_id = (*events)[1].event_id;
  auto pending = store->PendingWebhooksBlocking(10);
  ASSERT_TRUE(pending.ok()) << pending.status();
  ASSERT_THAT(*pending, SizeIs(1));
  const WebhookOutboxRow& row = (*pending)[0];
  EXPECT_EQ(row.job_id, job->id);
  EXPECT_EQ(row.event_id, terminal_event_id);
  EXPECT_EQ(row.type, "job.succeeded");
  EXPECT_EQ(row.url, "https://example.com/hook");
  EXPECT_EQ(row.body, absl::StrCat("{\"job\":\"", job->id,
                                   "\",\"event\":", terminal_event_id,
                                   ",\"state\":\"SUCCEEDED\"}"));
  EXPECT_EQ(row.state, WebhookDeliveryState::kPending);
  EXPECT_EQ(row.attempts, 0);
  EXPECT_EQ(row.next_attempt_time, clock_.Now());
  EXPECT_THAT(listener.queued(), ElementsAre(terminal_event_id));
}

TEST_F(WebhookOutboxTest, JobsWithoutAWebhookUseTheServerDefault) {
  SqliteJobStore::Options options;
  options.webhook_body = [](const Job&, const JobEvent&) { return "{}"; };
  options.default_webhook = WebhookSpec{"https://default.example.com/h", {}};
  auto store = Open(options);
  absl::StatusOr<Job> plain = SubmitOne(*store, MakeJob());
  NewJob own = MakeJob();
  own.job.webhook = WebhookSpec{"https://own.example.com/h", {}};
  absl::StatusOr<Job> with_own = SubmitOne(*store, own);
  ASSERT_TRUE(plain.ok() && with_own.ok());
  ASSERT_TRUE(MutateSync(*store, plain->id, MoveTo(JobState::kFailed)).ok());
  ASSERT_TRUE(MutateSync(*store, with_own->id, MoveTo(JobState::kFailed)).ok());
  auto pending = store->PendingWebhooksBlocking(10);
  ASSERT_TRUE(pending.ok());
  ASSERT_THAT(*pending, SizeIs(2));
  EXPECT_EQ((*pending)[0].url, "https://default.example.com/h");
  EXPECT_EQ((*pending)[1].url, "https://own.example.com/h");
}

TEST_F(WebhookOutboxTest, AFailedOutboxWriteFailsTheEventWithIt) {
  auto store = OpenWithWebhooks();
  NewJob in = MakeJob();
  in.job.webhook = WebhookSpec{"https://example.com/hook", {}};
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec(
        "CREATE TRIGGER refuse_outbox BEFORE INSERT ON webhook_outbox "
        "BEGIN SELECT RAISE(ABORT, 'outbox refused'); END");
  }
  EXPECT_FALSE(MutateSync(*store, job->id, MoveTo(JobState::kFailed)).ok());
  // Neither the terminal event nor its delivery: one transaction.
  absl::StatusOr<Job> got = store->GetJobBlocking(job->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kQueued);
  EXPECT_THAT(*store->ReadJobEventsBlocking(job->id, 0, 10), SizeIs(1));
  EXPECT_THAT(*store->PendingWebhooksBlocking(10), IsEmpty());
}

TEST_F(WebhookOutboxTest, AnAttemptUpdatesTheRowAndAppendsADeliveryEvent) {
  auto store = OpenWithWebhooks();
  NewJob in = MakeJob();
  in.job.webhook = WebhookSpec{"https://example.com/hook", {}};
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(MutateSync(*store, job->id, MoveTo(JobState::kCancelled)).ok());
  auto pending = store->PendingWebhooksBlocking(10);
  ASSERT_TRUE(pending.ok());
  ASSERT_THAT(*pending, SizeIs(1));
  const int64_t id = (*pending)[0].id;

  WebhookAttempt failed;
  failed.delivery_id = id;
  failed.job_id = job->id;
  failed.attempt = 1;
  failed.http_status = 500;
  failed.error = "HTTP 500";
  failed.attempt_time = clock_.Now();
  failed.next_state = WebhookDeliveryState::kPending;
  failed.next_attempt_time = clock_.Now() + absl::Seconds(5);
  ASSERT_TRUE(Record(*store, failed).ok());
  pending = store->PendingWebhooksBlocking(10);
  ASSERT_THAT(*pending, SizeIs(1));
  EXPECT_EQ((*pending)[0].attempts, 1);
  EXPECT_EQ((*pending)[0].next_attempt_time, clock_.Now() + absl::Seconds(5));
  EXPECT_EQ((*pending)[0].last_http_status, 500);
  WebhookDeliveryQuery failed_only;
  failed_only.failed_only = true;
  EXPECT_THAT(store->ListWebhookDeliveriesBlocking(failed_only)->deliveries,
              SizeIs(1));

  WebhookAttempt ok = failed;
  ok.attempt = 2;
  ok.http_status = 204;
  ok.delivered = true;
  ok.error.clear();
  ok.next_state = WebhookDeliveryState::kDelivered;
  ASSERT_TRUE(Record(*store, ok).ok());
  EXPECT_THAT(*store->PendingWebhooksBlocking(10), IsEmpty());
  EXPECT_THAT(store->ListWebhookDeliveriesBlocking(failed_only)->deliveries,
              IsEmpty());
  // A second record of a row that is not pending any more is refused.
  EXPECT_TRUE(absl::IsNotFound(Record(*store, ok)));

  auto events = store->ReadJobEventsBlocking(job->id, 0, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_THAT(*events, SizeIs(4));
  EXPECT_EQ((*events)[2].type, EventType::kWebhookDelivery);
  EXPECT_EQ((*events)[2].webhook_delivery.attempt, 1);
  EXPECT_EQ((*events)[2].webhook_delivery.http_status, 500);
  EXPECT_FALSE((*events)[2].webhook_delivery.delivered);
  EXPECT_EQ((*events)[3].webhook_delivery.attempt, 2);
  EXPECT_TRUE((*events)[3].webhook_delivery.delivered);
  EXPECT_EQ((*events)[3].state, JobState::kCancelled);

  // Operators: back to pending with its attempts reset; once only.
  absl::StatusOr<WebhookOutboxRow> again = Redeliver(*store, id);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->state, WebhookDeliveryState::kPending);
  EXPECT_EQ(again->attempts, 0);
  EXPECT_THAT(*store->PendingWebhooksBlocking(10), SizeIs(1));
  EXPECT_TRUE(absl::IsFailedPrecondition(Redeliver(*store, id).status()));
  EXPECT_TRUE(absl::IsNotFound(Redeliver(*store, id + 100).status()));
}

TEST_F(WebhookOutboxTest, DeliveriesListNewestFirstInPages) {
  auto store = OpenWithWebhooks();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    NewJob in = MakeJob();
    in.job.webhook = WebhookSpec{"https://example.com/hook", {}};
    absl::StatusOr<Job> job = SubmitOne(*store, in);
    ASSERT_TRUE(job.ok());
    ASSERT_TRUE(MutateSync(*store, job->id, MoveTo(JobState::kFailed)).ok());
    ids.push_back(job->id);
  }
  WebhookDeliveryQuery q;
  q.page_size = 2;
  auto first = store->ListWebhookDeliveriesBlocking(q);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_THAT(first->deliveries, SizeIs(2));
  EXPECT_EQ(first->deliveries[0].job_id, ids[2]);
  // Listings leave the body (a job result may make it large) unread.
  EXPECT_EQ(first->deliveries[0].body, "");
  ASSERT_FALSE(first->next_page_token.empty());
  q.page_token = first->next_page_token;
  auto second = store->ListWebhookDeliveriesBlocking(q);
  ASSERT_THAT(second->deliveries, SizeIs(1));
  EXPECT_EQ(second->deliveries[0].job_id, ids[0]);
  EXPECT_TRUE(second->next_page_token.empty());
  WebhookDeliveryQuery by_job;
  by_job.job_id = ids[1];
  EXPECT_THAT(store->ListWebhookDeliveriesBlocking(by_job)->deliveries,
              SizeIs(1));
  q.page_token = "garbage";
  EXPECT_TRUE(absl::IsInvalidArgument(
      store->ListWebhookDeliveriesBlocking(q).status()));
}

// BulkWrite: set-based chunks of bulk updates.

absl::StatusOr<std::vector<BulkItemResult>> BulkWriteSync(
    JobStore& store, std::vector<std::string> ids, BulkWriteSpec spec) {
  absl::Notification n;
  absl::StatusOr<std::vector<BulkItemResult>> out;
  store.BulkWrite(std::move(ids),
                  std::make_shared<const BulkWriteSpec>(std::move(spec)),
                  [&](absl::StatusOr<std::vector<BulkItemResult>> r) {
                    out = std::move(r);
                    n.Notify();
                  });
  n.WaitForNotification();
  return out;
}

class EventRecorder final : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override {
    absl::MutexLock lock(&mu_);
    for (const JobEvent& e : events) seen_.push_back(e);
  }
  std::vector<JobEvent> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  absl::Mutex mu_;
  std::vector<JobEvent> seen_ ABSL_GUARDED_BY(mu_);
};

// Refused unless QUEUED (as BulkUpdateJobs' expected_states); adds 10 to the
// priority (so jobs of different priorities change differently), and to a job
// of kind "lab" a label too (the row-by-row path).
BulkWriteSpec QueuedOnlyPlusTen() {
  BulkWriteSpec spec;
  spec.mutation = [](const Job& current,
                     absl::Time) -> absl::StatusOr<JobChange> {
    if (current.state != JobState::kQueued)
      return absl::FailedPreconditionError("not queued");
    JobChange change{current, {}};
    change.job.priority = current.priority + 10;
    if (current.kind == "lab") change.job.labels["x"] = "y";
    JobEvent e;
    e.type = EventType::kUpdated;
    e.paths = {"priority"};
    change.events.push_back(std::move(e));
    return change;
  };
  return spec;
}

TEST_F(SqliteJobStoreTest, BulkWriteChecksEachJobAsCommittedAndLogsEachChange) {
  auto store = Open();
  EventRecorder recorder;
  store->AddCommitListener(&recorder);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    NewJob job = MakeJob(i == 4 ? "lab" : "resize");
    job.job.priority = i % 2;
    ids.push_back(SubmitOne(*store, job)->id);
  }
  ASSERT_TRUE(MutateSync(*store, ids[1], MoveTo(JobState::kSucceeded)).ok());
  ASSERT_TRUE(MutateSync(*store, ids[2], MoveTo(JobState::kPaused)).ok());
  const std::string unknown = "01J0000000000000000000ZZZZ";
  const size_t events_before = recorder.seen().size();
  const int64_t commits_before = store->stats().commits;

  absl::StatusOr<std::vector<BulkItemResult>> results = BulkWriteSync(
      *store, {ids[0], ids[1], ids[2], ids[3], unknown, ids[4], ids[5]},
      QueuedOnlyPlusTen());
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 7u);
  const std::vector<absl::StatusCode> codes = {
      absl::StatusCode::kOk,
      absl::StatusCode::kFailedPrecondition,
      absl::StatusCode::kFailedPrecondition,
      absl::StatusCode::kOk,
      absl::StatusCode::kNotFound,
      absl::StatusCode::kOk,
      absl::StatusCode::kOk};
  for (size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ((*results)[i].status.code(), codes[i]) << i;
    EXPECT_EQ((*results)[i].changed, codes[i] == absl::StatusCode::kOk) << i;
  }
  // One commit, one event per changed job, in the order of the ids.
  EXPECT_EQ(store->stats().commits - commits_before, 1);
  std::vector<JobEvent> seen = recorder.seen();
  seen.erase(seen.begin(),
             seen.begin() + static_cast<ptrdiff_t>(events_before));
  ASSERT_EQ(seen.size(), 4u);
  const std::vector<std::string> changed = {ids[0], ids[3], ids[4], ids[5]};
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].job_id, changed[i]);
    EXPECT_EQ(seen[i].type, EventType::kUpdated);
    EXPECT_EQ(seen[i].seq, 2);
    EXPECT_EQ(seen[i].paths, std::vector<std::string>{"priority"});
    if (i > 0) {
      EXPECT_GT(seen[i].event_id, seen[i - 1].event_id);
    }
  }
  EXPECT_EQ(seen[0].priority, 10);
  EXPECT_EQ(seen[1].priority, 11);
  EXPECT_EQ(seen[2].labels.at("x"), "y");
  // The rows as stored: the patch, version and last_seq bumped once; the
  // writer's cached rows agree with them.
  for (size_t i = 0; i < changed.size(); ++i) {
    absl::StatusOr<Job> job = store->GetJobBlocking(changed[i]);
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->priority, seen[i].priority);
    EXPECT_EQ(job->version, 2);
    EXPECT_EQ(job->last_seq, 2);
    EXPECT_EQ(job->update_time, clock_.Now());
    auto log = store->ReadJobEventsBlocking(changed[i], 0, 10);
    ASSERT_TRUE(log.ok());
    EXPECT_EQ(log->size(), 2u);
    ExpectWriterSeesStoredRow(*store, changed[i]);
  }
  EXPECT_EQ(store->GetJobBlocking(ids[1])->priority, 1);
  EXPECT_EQ(store->GetJobBlocking(ids[2])->version, 2);  // the pause only
  ListJobsQuery by_label;
  by_label.filter = "labels.x = \"y\"";
  EXPECT_EQ(Ids(store->ListJobsBlocking(by_label)->jobs),
            std::vector<std::string>{ids[4]});
  // Again, from a cold cache: the rows are read in one statement.
  store.reset();
  store = Open();
  results = BulkWriteSync(*store, {ids[0], ids[3]}, QueuedOnlyPlusTen());
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(store->GetJobBlocking(ids[0])->priority, 20);
  EXPECT_EQ(store->GetJobBlocking(ids[3])->last_seq, 3);
  ExpectWriterSeesStoredRow(*store, ids[3]);
}

TEST_F(SqliteJobStoreTest, BulkWriteDeletesTerminalJobsTheCheckAllows) {
  auto store = Open();
  NewJob labelled = MakeJob();
  labelled.job.labels["team"] = "a";
  const std::string done = SubmitOne(*store, labelled)->id;
  const std::string kept = SubmitOne(*store, MakeJob())->id;
  const std::string live = SubmitOne(*store, MakeJob())->id;
  ASSERT_TRUE(MutateSync(*store, done, MoveTo(JobState::kSucceeded)).ok());
  ASSERT_TRUE(MutateSync(*store, kept, MoveTo(JobState::kCancelled)).ok());
  const int64_t last_event = *store->LastEventIdBlocking();
  const std::string unknown = "01J0000000000000000000ZZZZ";
  BulkWriteSpec spec;
  spec.del = true;
  spec.check = [kept](const Job& job) {
    return job.id == kept ? absl::AbortedError("not this one")
                          : absl::OkStatus();
  };
  absl::StatusOr<std::vector<BulkItemResult>> results =
      BulkWriteSync(*store, {done, kept, live, unknown}, spec);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE((*results)[0].status.ok());
  EXPECT_TRUE((*results)[0].changed);
  EXPECT_EQ((*results)[1].status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ((*results)[2].status.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(GetPreconditionViolations((*results)[2].status).size(), 1u);
  EXPECT_EQ(GetPreconditionViolations((*results)[2].status)[0].type, "STATE");
  EXPECT_EQ((*results)[3].status.code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(store->GetJobBlocking(done).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store->ReadJobEventsBlocking(done, 0, 10)->empty());
  ListJobsQuery by_label;
  by_label.filter = "labels.team = \"a\"";
  EXPECT_TRUE(store->ListJobsBlocking(by_label)->jobs.empty());
  EXPECT_TRUE(store->GetJobBlocking(kept).ok());
  EXPECT_EQ(store->ReadJobEventsBlocking(kept, 0, 10)->size(), 2u);
  ExpectWriterSeesStoredRow(*store, live);
  const int64_t pruned = *store->MaxPrunedEventIdBlocking();
  EXPECT_GT(pruned, 0);
  EXPECT_LT(pruned, last_event);
  store.reset();
  store = Open();
  EXPECT_EQ(*store->MaxPrunedEventIdBlocking(), pruned);
}

TEST_F(SqliteJobStoreTest,
       ABulkChunkFailingInSqliteWritesNothingAndIsForgotten) {
  auto store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    NewJob job = MakeJob();
    job.job.priority = i == 3 ? 89 : 0;
    ids.push_back(SubmitOne(*store, job)->id);
  }
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec(
        "CREATE TRIGGER refuse_99 BEFORE UPDATE ON jobs WHEN NEW.priority = 99 "
        "BEGIN SELECT RAISE(ABORT, '99 refused'); END");
  }
  const int64_t last_event = *store->LastEventIdBlocking();
  absl::StatusOr<std::vector<BulkItemResult>> results =
      BulkWriteSync(*store, ids, QueuedOnlyPlusTen());
  EXPECT_FALSE(results.ok());
  for (const std::string& id : ids) {
    absl::StatusOr<Job> job = store->GetJobBlocking(id);
    ASSERT_TRUE(job.ok());
    EXPECT_EQ(job->version, 1);
    EXPECT_EQ(job->last_seq, 1);
    ExpectWriterSeesStoredRow(*store, id);
  }
  EXPECT_EQ(*store->LastEventIdBlocking(), last_event);
  // The writer goes on; event ids are not reused.
  ASSERT_TRUE(MutateSync(*store, ids[0], BumpPriority()).ok());
  EXPECT_GT(*store->LastEventIdBlocking(), last_event);
}

TEST_F(SqliteJobStoreTest, SmallWritesQueuedBehindABulkChunkCommitFirst) {
  auto store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(SubmitOne(*store, MakeJob())->id);
  WriterGate gate;
  gate.Block(*store, ids[0]);
  absl::Mutex mu;
  std::vector<std::string> order;
  absl::BlockingCounter answered(2);
  store->BulkWrite(ids,
                   std::make_shared<const BulkWriteSpec>(QueuedOnlyPlusTen()),
                   [&](absl::StatusOr<std::vector<BulkItemResult>> r) {
                     EXPECT_TRUE(r.ok()) << r.status();
                     absl::MutexLock lock(&mu);
                     order.push_back("bulk");
                     answered.DecrementCount();
                   });
  store->Submit({MakeJob()}, [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    absl::MutexLock lock(&mu);
    order.push_back("submit");
    answered.DecrementCount();
  });
  const int64_t commits_before = store->stats().commits;
  gate.Release();
  answered.Wait();
  EXPECT_EQ(order, (std::vector<std::string>{"submit", "bulk"}));
  // The gate's commit, the submit's, the chunk's alone.
  EXPECT_EQ(store->stats().commits - commits_before, 3);
}

TEST_F(SqliteJobStoreTest, ALargeSubmitWritesEveryRowLabelAndEventInOrder) {
  auto store = Open();
  // Runs of jobs without a request_id go in multi-row INSERTs; those with
  // one go alone, in the order given.
  std::vector<NewJob> jobs;
  for (int i = 0; i < 100; ++i) {
    NewJob job = MakeJob(absl::StrCat("k", i));
    job.job.labels["n"] = absl::StrCat(i);
    if (i % 2 == 0) job.job.labels["even"] = "yes";
    if (i == 40 || i == 41) job.job.request_id = absl::StrCat("r", i);
    jobs.push_back(std::move(job));
  }
  jobs.push_back(WithRequestId(MakeJob("again"), "r40"));
  absl::StatusOr<std::vector<SubmitOutcome>> out = SubmitSync(*store, jobs);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 101u);
  EXPECT_FALSE((*out)[100].created);
  EXPECT_EQ((*out)[100].job.id, (*out)[40].job.id);
  absl::StatusOr<std::vector<JobEvent>> events =
      store->ReadEventsBlocking(0, 1000);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 100u);
  for (int i = 0; i < 100; ++i) {
    const std::string& id = (*out)[i].job.id;
    EXPECT_TRUE((*out)[i].created);
    EXPECT_EQ((*events)[i].job_id, id);
    EXPECT_EQ((*events)[i].labels.at("n"), absl::StrCat(i));
    absl::StatusOr<Job> stored = store->GetJobBlocking(id);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->kind, absl::StrCat("k", i));
    EXPECT_EQ(stored->labels, jobs[i].job.labels);
  }
  ExpectWriterSeesStoredRow(*store, (*out)[7].job.id);
  ListJobsQuery even;
  even.filter = "labels.even = \"yes\"";
  even.page_size = 1000;
  EXPECT_THAT(store->ListJobsBlocking(even)->jobs, SizeIs(50));
}

}  // namespace
}  // namespace jobwire::test
