// Tests of what only the PostgreSQL store has: several nodes on one schema
// (event ids in commit order, each node's listeners handed every node's
// events, claims that apply once, the node registry and dead nodes' leases),
// connection strings, Backup's refusal. The JobStore contract itself is tested
// on both backends by job_store_contract_test.cc.
#include "server/storage/pg_job_store.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/storage/job_store_test_util.h"
#include "server/storage/pg_connection.h"
#include "server/storage/pg_test_cluster.h"

namespace jobwire::test {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

PgTestCluster& Cluster() { return SharedPgTestCluster(); }

std::unique_ptr<PgJobStore> OpenStore(const std::string& conninfo,
                                      const std::string& name = "") {
  PgJobStore::Options options;
  options.conninfo = conninfo;
  options.node_name = name;
  auto store = PgJobStore::Open(std::move(options));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

absl::StatusOr<std::vector<SubmitOutcome>> SubmitBlocking(JobStore& store,
                                                          int n) {
  std::vector<NewJob> jobs(n);
  for (NewJob& j : jobs) j.job.kind = "k";
  absl::StatusOr<std::vector<SubmitOutcome>> out;
  absl::Notification done;
  store.Submit(std::move(jobs), [&](auto r) {
    out = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

// Records every event a store's listeners get, in order.
class EventLog : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override {
    absl::MutexLock lock(&mu_);
    for (const JobEvent& e : events) {
      ids_.push_back(e.event_id);
      if (e.remote) ++remote_;
    }
  }
  // Waits until an event with id `last` arrived (or a minute passed).
  std::vector<int64_t> WaitFor(int64_t last) {
    absl::MutexLock lock(&mu_);
    want_ = last;
    mu_.AwaitWithTimeout(absl::Condition(this, &EventLog::ReachedLocked),
                         absl::Minutes(1));
    return ids_;
  }
  int64_t remote() {
    absl::MutexLock lock(&mu_);
    return remote_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> ids_ ABSL_GUARDED_BY(mu_);
  int64_t remote_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t want_ ABSL_GUARDED_BY(mu_) = 0;

  bool ReachedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !ids_.empty() && ids_.back() >= want_;
  }
};

TEST(PgJobStoreTest, TwoNodesOnOneSchemaListEachOtherAsLive) {
  const std::string conninfo = Cluster().NewSchema();
  std::unique_ptr<PgJobStore> a = OpenStore(conninfo, "a");
  std::unique_ptr<PgJobStore> b = OpenStore(conninfo, "b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto nodes = a->ListNodesBlocking();
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_EQ(nodes->size(), 2u);
  EXPECT_EQ((*nodes)[0].name, "a");
  EXPECT_TRUE((*nodes)[0].self);
  EXPECT_EQ((*nodes)[1].name, "b");
  EXPECT_EQ((*nodes)[1].id, b->node_id());
  // A node that stops leaves the registry.
  b->Shutdown();
  nodes = a->ListNodesBlocking();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].name, "a");
}

// The same Assign-like claim (QUEUED -> RUNNING, refused otherwise) sent to
// two nodes at once applies once per job.
TEST(PgJobStoreTest, AClaimRacingOnTwoNodesAppliesOnce) {
  const std::string conninfo = Cluster().NewSchema();
  std::unique_ptr<PgJobStore> a = OpenStore(conninfo);
  std::unique_ptr<PgJobStore> b = OpenStore(conninfo);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  constexpr int kJobs = 300;
  auto jobs = SubmitBlocking(*a, kJobs);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  JobMutation claim = [](const Job& job,
                         absl::Time now) -> absl::StatusOr<JobChange> {
    if (job.state != JobState::kQueued)
      return absl::FailedPreconditionError("not queued");
    return MoveTo(JobState::kRunning)(job, now);
  };
  absl::Mutex mu;
  int ok = 0;
  int refused = 0;
  int answered = 0;
  for (const SubmitOutcome& o : *jobs) {
    for (PgJobStore* store : {a.get(), b.get()}) {
      store->Mutate(o.job.id, claim, [&](absl::StatusOr<Job> r) {
        absl::MutexLock lock(&mu);
        ++answered;
        if (r.ok()) ++ok;
        if (absl::IsFailedPrecondition(r.status())) ++refused;
      });
    }
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int* n) { return *n == 2 * kJobs; }, &answered));
  EXPECT_EQ(ok, kJobs);
  EXPECT_EQ(refused, kJobs);
}

absl::Status MutateBlocking(JobStore& store, const std::string& id,
                            JobMutation mutation) {
  absl::Status status;
  absl::Notification done;
  store.Mutate(id, std::move(mutation), [&](absl::StatusOr<Job> r) {
    status = r.status();
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

// A queue's concurrency limit counts the RUNNING jobs of every node: the
// claim that would pass it is refused (RESOURCE_EXHAUSTED), whichever node
// makes it, until a job of the queue leaves RUNNING.
TEST(PgJobStoreTest, AQueuesConcurrencyLimitHoldsAcrossNodes) {
  const std::string conninfo = Cluster().NewSchema();
  std::unique_ptr<PgJobStore> a = OpenStore(conninfo);
  std::unique_ptr<PgJobStore> b = OpenStore(conninfo);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  QueueRow row;
  row.name = "default";
  row.concurrency_limit = 1;
  absl::Notification upserted;
  a->UpsertQueue(row, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    upserted.Notify();
  });
  upserted.WaitForNotification();
  auto jobs = SubmitBlocking(*a, 2);
  ASSERT_TRUE(jobs.ok());
  const std::string first = (*jobs)[0].job.id;
  const std::string second = (*jobs)[1].job.id;

  ASSERT_TRUE(MutateBlocking(*a, first, MoveTo(JobState::kRunning)).ok());
  EXPECT_EQ(MutateBlocking(*b, second, MoveTo(JobState::kRunning)).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(MutateBlocking(*a, first, MoveTo(JobState::kSucceeded)).ok());
  EXPECT_TRUE(MutateBlocking(*b, second, MoveTo(JobState::kRunning)).ok());
}

// A node that goes away with a RUNNING job: the other node's orphan handler
// gets the job and its attempt (the Dispatcher hands it back).
TEST(PgJobStoreTest, ADeadNodesLeasesAreHandedToTheOtherNodes) {
  const std::string conninfo = Cluster().NewSchema();
  std::unique_ptr<PgJobStore> a = OpenStore(conninfo);
  ASSERT_NE(a, nullptr);
  PgJobStore::Options options;
  options.conninfo = conninfo;
  options.node_ttl = absl::Seconds(1);
  options.heartbeat_interval = absl::Milliseconds(100);
  auto b = PgJobStore::Open(options);
  ASSERT_TRUE(b.ok()) << b.status();
  absl::Mutex mu;
  std::vector<std::pair<std::string, int32_t>> orphans;
  (*b)->SetOrphanHandler([&](const std::string& id, int32_t attempt) {
    absl::MutexLock lock(&mu);
    orphans.emplace_back(id, attempt);
  });
  auto jobs = SubmitBlocking(*a, 1);
  ASSERT_TRUE(jobs.ok());
  const std::string id = (*jobs)[0].job.id;
  absl::Notification running;
  a->Mutate(
      id,
      [](const Job& job, absl::Time now) {
        auto c = MoveTo(JobState::kRunning)(job, now);
        if (c.ok()) c->job.attempt = 1;
        return c;
      },
      [&](absl::StatusOr<Job> r) {
        EXPECT_TRUE(r.ok()) << r.status();
        running.Notify();
      });
  running.WaitForNotification();
  {
    // Node a holds the lease: not an orphan.
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(orphans.empty());
  }
  a->Shutdown();  // as good as dead: its row is gone
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(mu.AwaitWithTimeout(
      absl::Condition(
          +[](std::vector<std::pair<std::string, int32_t>>* o) {
            return !o->empty();
          },
          &orphans),
      absl::Minutes(1)));
  EXPECT_EQ(orphans[0].first, id);
  EXPECT_EQ(orphans[0].second, 1);
}

// A batch's jobs are read in one statement before its writes (Prefetch):
// a second Mutate of a job in the batch sees the first one's write, a
// failed Mutate leaves the others alone, and a job another node changed is
// read as committed.
TEST(PgJobStoreTest, MutatesOfOneBatchSeeEachOthersWrites) {
  const std::string conninfo = Cluster().NewSchema();
  std::unique_ptr<PgJobStore> a = OpenStore(conninfo);
  std::unique_ptr<PgJobStore> b = OpenStore(conninfo);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  constexpr int kJobs = 200;
  auto jobs = SubmitBlocking(*a, kJobs);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  // Node b bumps every job once, so a's reads must be as committed.
  for (const SubmitOutcome& j : *jobs)
    ASSERT_TRUE(MutateSync(*b, j.job.id, BumpPriority()).ok());
  absl::Mutex mu;
  int answered = 0;
  int failed = 0;
  auto count = [&](absl::StatusOr<Job> r) {
    absl::MutexLock lock(&mu);
    ++answered;
    if (!r.ok()) ++failed;
  };
  // Not awaited one by one: they share batches.
  for (const SubmitOutcome& j : *jobs) {
    a->Mutate(j.job.id, BumpPriority(), count);
    a->Mutate(
        j.job.id,
        [](const Job&, absl::Time) -> absl::StatusOr<JobChange> {
          return absl::FailedPreconditionError("refused");
        },
        count);
    a->Mutate(j.job.id, BumpPriority(), count);
  }
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(
        absl::Condition(
            +[](int* n) { return *n == 3 * kJobs; }, &answered),
        absl::Minutes(1)));
    EXPECT_EQ(failed, kJobs);
  }
  for (const SubmitOutcome& j : *jobs) {
    absl::StatusOr<Job> got = a->GetJobBlocking(j.job.id);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->priority, j.job.priority + 3) << j.job.id;
    EXPECT_EQ(got->state, JobState::kQueued);
  }
}

// Each pending webhook delivery is claimed by the node that reads it due, so
// one node sends each attempt; recording the attempt releases the claim, and
// a dead node's claims expire (its node_ttl) and go to another node.
TEST(PgJobStoreTest, AWebhookDeliveryIsClaimedByOneNodeAtATime) {
  const std::string conninfo = Cluster().NewSchema();
  PgJobStore::Options options;
  options.conninfo = conninfo;
  options.webhook_body = TestWebhookBody();
  auto b = PgJobStore::Open(options);
  ASSERT_TRUE(b.ok()) << b.status();
  options.node_ttl = absl::Seconds(1);
  options.heartbeat_interval = absl::Milliseconds(100);
  auto a = PgJobStore::Open(options);
  ASSERT_TRUE(a.ok()) << a.status();
  std::vector<std::string> jobs;
  for (int i = 0; i < 3; ++i) {
    NewJob in = MakeJob();
    in.job.webhook = WebhookSpec{"https://example.com/hook", {}};
    absl::StatusOr<Job> job = SubmitOne(**a, in);
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(MutateSync(**a, job->id, MoveTo(JobState::kCancelled)).ok());
    jobs.push_back(job->id);
  }
  auto on_a = (*a)->PendingWebhooksBlocking(10);
  ASSERT_TRUE(on_a.ok()) << on_a.status();
  ASSERT_THAT(*on_a, SizeIs(3));
  EXPECT_THAT(*(*b)->PendingWebhooksBlocking(10), IsEmpty());
  // a reads them again: its own claims are renewed, not lost.
  EXPECT_THAT(*(*a)->PendingWebhooksBlocking(10), SizeIs(3));

  // a's failed attempt, due again at once, releases the first row.
  WebhookAttempt failed;
  failed.delivery_id = (*on_a)[0].id;
  failed.job_id = (*on_a)[0].job_id;
  failed.attempt = 1;
  failed.http_status = 500;
  failed.attempt_time = absl::Now();
  failed.next_state = WebhookDeliveryState::kPending;
  failed.next_attempt_time = absl::Now();
  ASSERT_TRUE(RecordAttemptSync(**a, failed).ok());
  auto on_b = (*b)->PendingWebhooksBlocking(10);
  ASSERT_TRUE(on_b.ok()) << on_b.status();
  ASSERT_THAT(*on_b, SizeIs(1));
  EXPECT_EQ((*on_b)[0].id, (*on_a)[0].id);
  EXPECT_EQ((*on_b)[0].attempts, 1);
  EXPECT_THAT(*(*a)->PendingWebhooksBlocking(10), SizeIs(2));
  // A record by a node that lost the claim leaves the holder's claim alone.
  failed.attempt = 2;
  ASSERT_TRUE(RecordAttemptSync(**a, failed).ok());
  EXPECT_THAT(*(*a)->PendingWebhooksBlocking(10), SizeIs(2));

  // a dies: after its node_ttl, b takes its two rows too.
  (*a)->Shutdown();
  const absl::Time deadline = absl::Now() + absl::Minutes(1);
  std::vector<WebhookOutboxRow> rows;
  while (absl::Now() < deadline) {
    auto r = (*b)->PendingWebhooksBlocking(10);
    ASSERT_TRUE(r.ok()) << r.status();
    rows = *std::move(r);
    if (rows.size() == 3) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(rows, SizeIs(3));
}

// Two nodes starting together on an empty schema: the migration lock lets
// one create the tables and the other find them done (no "already exists").
TEST(PgJobStoreTest, StoresOpeningTogetherMigrateOnce) {
  const std::string conninfo = Cluster().NewSchema();
  constexpr int kStores = 4;
  std::vector<std::unique_ptr<PgJobStore>> stores(kStores);
  std::vector<std::thread> openers;
  for (int i = 0; i < kStores; ++i) {
    openers.emplace_back([&, i] { stores[i] = OpenStore(conninfo); });
  }
  for (std::thread& t : openers) t.join();
  for (const auto& store : stores) ASSERT_NE(store, nullptr);
  EXPECT_TRUE(SubmitBlocking(*stores[0], 1).ok());
}

TEST(PgJobStoreTest, StoresOnOtherSchemasOpenSideBySide) {
  std::unique_ptr<PgJobStore> a = OpenStore(Cluster().NewSchema());
  std::unique_ptr<PgJobStore> b = OpenStore(Cluster().NewSchema());
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
}

TEST(PgJobStoreTest, BackupIsRefusedNamingPgDump) {
  std::unique_ptr<PgJobStore> store = OpenStore(Cluster().NewSchema());
  ASSERT_NE(store, nullptr);
  auto size = store->BackupBlocking("/tmp/never-written");
  EXPECT_EQ(size.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(size.status().message(), HasSubstr("pg_dump"));
}

TEST(PgJobStoreTest, ReopenKeepsJobsAndEventIdsGrow) {
  const std::string conninfo = Cluster().NewSchema();
  int64_t last = 0;
  std::string id;
  {
    std::unique_ptr<PgJobStore> store = OpenStore(conninfo);
    auto out = SubmitBlocking(*store, 3);
    ASSERT_TRUE(out.ok()) << out.status();
    id = (*out)[0].job.id;
    last = *store->LastEventIdBlocking();
    EXPECT_EQ(last, 3);
  }
  std::unique_ptr<PgJobStore> store = OpenStore(conninfo);
  EXPECT_TRUE(store->GetJobBlocking(id).ok());
  ASSERT_TRUE(SubmitBlocking(*store, 1).ok());
  EXPECT_EQ(*store->LastEventIdBlocking(), last + 1);
}

// Two stores (as two nodes would) commit on one schema at once while a
// reader follows ReadEventsBlocking with a cursor, as a WatchJobs stream
// does. Had ids been handed out in insert order (a sequence), an id below
// the cursor could commit after the reader passed it, and the reader would
// miss it. It must see every event.
TEST(PgJobStoreTest, EventIdsFollowCommitOrderAcrossConnections) {
  const std::string conninfo = Cluster().NewSchema();
  std::unique_ptr<PgJobStore> a = OpenStore(conninfo);
  std::unique_ptr<PgJobStore> b = OpenStore(conninfo);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EventLog a_log;
  EventLog b_log;
  a->AddCommitListener(&a_log);
  b->AddCommitListener(&b_log);

  std::atomic<bool> writing{true};
  std::set<int64_t> seen;
  std::thread reader([&] {
    int64_t cursor = 0;
    while (true) {
      const bool last_round = !writing.load();
      auto events = a->ReadEventsBlocking(cursor, 1000);
      ASSERT_TRUE(events.ok()) << events.status();
      for (const JobEvent& e : *events) {
        EXPECT_GT(e.event_id, cursor);
        cursor = e.event_id;
        seen.insert(e.event_id);
      }
      if (last_round && events->empty()) return;
    }
  });
  constexpr int kWritersPerStore = 4;
  constexpr int kSubmitsPerWriter = 60;
  std::vector<std::thread> writers;
  for (JobStore* store :
       {static_cast<JobStore*>(a.get()), static_cast<JobStore*>(b.get())}) {
    for (int w = 0; w < kWritersPerStore; ++w) {
      writers.emplace_back([store] {
        for (int i = 0; i < kSubmitsPerWriter; ++i)
          ASSERT_TRUE(SubmitBlocking(*store, 1 + i % 3).ok());
      });
    }
  }
  for (std::thread& t : writers) t.join();
  writing = false;
  reader.join();

  auto all = b->ReadEventsBlocking(0, 10000);
  ASSERT_TRUE(all.ok());
  std::set<int64_t> committed;
  for (const JobEvent& e : *all) committed.insert(e.event_id);
  EXPECT_EQ(committed.size(), static_cast<size_t>(2 * kWritersPerStore *
                                                  (kSubmitsPerWriter / 3) * 6));
  EXPECT_EQ(seen, committed);
  EXPECT_EQ(*a->LastEventIdBlocking(), *committed.rbegin());
  // Each node's listeners got every node's events, in order, once each
  // (the other node's through NOTIFY and a catch-up of the idle writer).
  const std::vector<int64_t> want(committed.begin(), committed.end());
  EXPECT_EQ(a_log.WaitFor(want.back()), want);
  EXPECT_EQ(b_log.WaitFor(want.back()), want);
  EXPECT_EQ(a_log.remote() + b_log.remote(), static_cast<int64_t>(want.size()));
}

// While PostgreSQL is down, writes and reads fail with UNAVAILABLE (nothing
// is acknowledged); once it is back, the store reconnects by itself.
TEST(PgJobStoreTest, AServerRestartIsUnavailableMeanwhileThenRecovers) {
  const std::string conninfo = Cluster().NewSchema();
  std::unique_ptr<PgJobStore> store = OpenStore(conninfo);
  ASSERT_NE(store, nullptr);
  auto before = SubmitBlocking(*store, 1);
  ASSERT_TRUE(before.ok()) << before.status();

  Cluster().Stop();
  auto during = SubmitBlocking(*store, 1);
  EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable)
      << during.status();
  EXPECT_EQ(store->GetJobBlocking((*before)[0].job.id).status().code(),
            absl::StatusCode::kUnavailable);
  Cluster().Start();

  auto after = SubmitBlocking(*store, 1);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(store->GetJobBlocking((*before)[0].job.id).ok());
  // The failed write left no event behind, and ids go on growing.
  auto events = store->ReadEventsBlocking(0, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_LT((*events)[0].event_id, (*events)[1].event_id);
}

TEST(PgJobStoreTest, UnreachableServerIsUnavailableWithoutThePassword) {
  PgJobStore::Options options;
  options.conninfo =
      "postgresql://jw:s3cret-pw@/jobs?host=/nonexistent-socket-dir";
  auto store = PgJobStore::Open(options);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(store.status().message()),
              ::testing::Not(HasSubstr("s3cret-pw")));
}

TEST(PgConnectionTest, DbValuesNamePostgres) {
  EXPECT_TRUE(IsPostgresDb("postgres://u@h/db"));
  EXPECT_TRUE(IsPostgresDb("postgresql://"));
  EXPECT_TRUE(IsPostgresDb("postgres:host=/run/postgresql dbname=jobs"));
  EXPECT_FALSE(IsPostgresDb("jobs.db"));
  EXPECT_FALSE(IsPostgresDb("/var/lib/jobwire/postgres.db"));
  EXPECT_EQ(PgConnInfo("postgres:host=/tmp dbname=x"), "host=/tmp dbname=x");
  EXPECT_EQ(PgConnInfo("postgresql://u@h/db"), "postgresql://u@h/db");
  EXPECT_EQ(NumberPlaceholders("a = ? AND b = '?' AND c = ?"),
            "a = $1 AND b = '?' AND c = $2");
}

}  // namespace
}  // namespace jobwire::test
