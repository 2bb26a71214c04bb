// Tests of what only the PostgreSQL store has: the single-node lock, event
// ids in commit order across connections, connection strings, Backup's
// refusal. The JobStore contract itself is tested on both backends by
// job_store_contract_test.cc.
#include "server/storage/pg_job_store.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/storage/pg_connection.h"
#include "server/storage/pg_test_cluster.h"

namespace jobwire::test {
namespace {

using ::testing::HasSubstr;

PgTestCluster& Cluster() { return SharedPgTestCluster(); }

std::unique_ptr<PgJobStore> OpenStore(const std::string& conninfo,
                                      bool exclusive = true) {
  PgJobStore::Options options;
  options.conninfo = conninfo;
  options.exclusive = exclusive;
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

TEST(PgJobStoreTest, SecondStoreOnTheSameSchemaIsRefusedWithTheReason) {
  const std::string conninfo = Cluster().NewSchema();
  std::unique_ptr<PgJobStore> first = OpenStore(conninfo);
  ASSERT_NE(first, nullptr);

  PgJobStore::Options options;
  options.conninfo = conninfo;
  auto second = PgJobStore::Open(options);

  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("another jobwired"));
  EXPECT_THAT(second.status().message(),
              HasSubstr("several jobwired nodes on one database are not "
                        "supported yet"));
  // Released with the first store: the next one opens.
  first->Shutdown();
  first.reset();
  EXPECT_NE(OpenStore(conninfo), nullptr);
}

// Two nodes starting together on an empty schema: the migration lock lets
// one create the tables and the other find them done (no "already exists").
TEST(PgJobStoreTest, StoresOpeningTogetherMigrateOnce) {
  const std::string conninfo = Cluster().NewSchema();
  constexpr int kStores = 4;
  std::vector<std::unique_ptr<PgJobStore>> stores(kStores);
  std::vector<std::thread> openers;
  for (int i = 0; i < kStores; ++i) {
    openers.emplace_back(
        [&, i] { stores[i] = OpenStore(conninfo, /*exclusive=*/false); });
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
  std::unique_ptr<PgJobStore> a = OpenStore(conninfo, /*exclusive=*/false);
  std::unique_ptr<PgJobStore> b = OpenStore(conninfo, /*exclusive=*/false);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

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
  // The reconnected writer holds the node lock again.
  PgJobStore::Options second;
  second.conninfo = conninfo;
  EXPECT_EQ(PgJobStore::Open(second).status().code(),
            absl::StatusCode::kFailedPrecondition);
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
