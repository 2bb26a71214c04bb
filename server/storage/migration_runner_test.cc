// The one migration runner on both backends: a new database gets every
// migration, a current one none, a newer one is refused, and runners that
// start together on one empty database (PostgreSQL: two connections, as two
// nodes; SQLite: two connections to one file) apply each migration once.
#include "server/storage/migration_runner.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/database_migration.h"
#include "server/storage/migrations.h"
#include "server/storage/pg_connection.h"
#include "server/storage/pg_migrations.h"
#include "server/storage/pg_test_cluster.h"
#include "server/storage/temp_db_dir.h"

namespace jobwire::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<int> Range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i <= to; ++i) v.push_back(i);
  return v;
}

// Every run succeeded and reached `latest`; *applied: what they applied,
// run after run.
template <typename Run>
bool AllApplied(const std::vector<absl::StatusOr<Run>>& runs, int latest,
                std::vector<int>* applied) {
  for (const auto& run : runs) {
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return false;
    EXPECT_EQ(run->to_version, latest);
    applied->insert(applied->end(), run->applied.begin(), run->applied.end());
  }
  return true;
}

std::unique_ptr<PgConnection> Connect(const std::string& conninfo) {
  auto conn = PgConnection::Open(conninfo);
  EXPECT_TRUE(conn.ok()) << conn.status();
  return conn.ok() ? *std::move(conn) : nullptr;
}

TEST(MigrationRunnerTest, SqliteNewDatabaseGetsEveryMigrationThenNone) {
  TempDbDir dir;
  SQLite::Database db(dir.db(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);

  auto first = MigrateBlocking(db, LatestSchemaVersion());
  auto second = MigrateBlocking(db, LatestSchemaVersion());

  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->from_version, 0);
  EXPECT_EQ(first->to_version, LatestSchemaVersion());
  EXPECT_EQ(first->applied, Range(1, LatestSchemaVersion()));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->from_version, LatestSchemaVersion());
  EXPECT_THAT(second->applied, IsEmpty());
  EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(),
            LatestSchemaVersion());
}

TEST(MigrationRunnerTest, SqliteOlderDatabaseGetsTheMissingOnes) {
  TempDbDir dir;
  SQLite::Database db(dir.db(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  ASSERT_TRUE(MigrateBlocking(db, 4).ok());

  auto run = MigrateBlocking(db, LatestSchemaVersion());

  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->from_version, 4);
  EXPECT_EQ(run->applied, Range(5, LatestSchemaVersion()));
}

TEST(MigrationRunnerTest, SqliteNewerDatabaseIsRefusedUntouched) {
  TempDbDir dir;
  SQLite::Database db(dir.db(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("PRAGMA user_version = 1000");

  auto run = MigrateBlocking(db, LatestSchemaVersion());

  EXPECT_EQ(run.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run.status().message(), HasSubstr("newer than this jobwire"));
  EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(), 1000);
}

// Two connections to one new file migrate at once: BEGIN IMMEDIATE makes
// them take turns, and the second finds nothing left to do.
TEST(MigrationRunnerTest, SqliteRunnersTogetherApplyEachMigrationOnce) {
  TempDbDir dir;
  constexpr int kRunners = 4;
  std::vector<absl::StatusOr<DatabaseMigration>> runs(
      kRunners, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kRunners; ++i) {
    threads.emplace_back(
        [&, i] { runs[i] = MigrateDatabaseBlocking(dir.db()); });
  }
  for (std::thread& t : threads) t.join();

  std::vector<int> applied;
  ASSERT_TRUE(AllApplied(runs, LatestSchemaVersion(), &applied));
  std::sort(applied.begin(), applied.end());
  EXPECT_EQ(applied, Range(1, LatestSchemaVersion()));
}

TEST(MigrationRunnerTest, PgNewSchemaGetsEveryMigrationThenNone) {
  std::unique_ptr<PgConnection> conn =
      Connect(SharedPgTestCluster().NewSchema());
  ASSERT_NE(conn, nullptr);

  auto first = MigratePgBlocking(*conn, LatestPgSchemaVersion());
  auto second = MigratePgBlocking(*conn, LatestPgSchemaVersion());

  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->from_version, 0);
  EXPECT_EQ(first->applied, Range(1, LatestPgSchemaVersion()));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->from_version, LatestPgSchemaVersion());
  EXPECT_THAT(second->applied, IsEmpty());
  EXPECT_EQ(
      conn->ExecOnce("SELECT version FROM jobwire_schema", {}).Int64(0, 0),
      LatestPgSchemaVersion());
  EXPECT_FALSE(conn->InTransaction());
}

TEST(MigrationRunnerTest, PgNewerSchemaIsRefused) {
  std::unique_ptr<PgConnection> conn =
      Connect(SharedPgTestCluster().NewSchema());
  ASSERT_NE(conn, nullptr);
  conn->ExecScript(
      "CREATE TABLE jobwire_schema (version INTEGER NOT NULL); "
      "INSERT INTO jobwire_schema VALUES (1000)");

  auto run = MigratePgBlocking(*conn, LatestPgSchemaVersion());

  EXPECT_EQ(run.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run.status().message(), HasSubstr("newer than this jobwire"));
  EXPECT_FALSE(conn->InTransaction());
}

// Two nodes' connections start migrating one empty schema while a third
// holds the migration lock (as a node in the middle of migrating would):
// both wait, then one applies every migration and the other none.
TEST(MigrationRunnerTest, PgRunnersTogetherWaitForTheLockAndMigrateOnce) {
  const std::string conninfo = SharedPgTestCluster().NewSchema();
  std::unique_ptr<PgConnection> holder = Connect(conninfo);
  ASSERT_NE(holder, nullptr);
  holder->ExecScript(
      "SELECT pg_advisory_lock(27256, hashtext(current_schema()))");
  std::vector<std::unique_ptr<PgConnection>> nodes;
  for (int i = 0; i < 2; ++i) nodes.push_back(Connect(conninfo));
  for (const auto& n : nodes) ASSERT_NE(n, nullptr);

  std::vector<absl::StatusOr<MigrationRun>> runs(nodes.size(),
                                                 absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nodes.size(); ++i) {
    threads.emplace_back([&, i] {
      runs[i] = MigratePgBlocking(*nodes[i], LatestPgSchemaVersion());
    });
  }
  // Both are waiting on the lock (pg_locks shows them, not granted), and
  // nothing was created meanwhile.
  for (int tries = 0;; ++tries) {
    PgResult waiting = holder->ExecOnce(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND "
        "classid = 27256 AND NOT granted",
        {});
    if (waiting.Int64(0, 0) == 2) break;
    ASSERT_LT(tries, 3000) << "the runners never waited for the lock";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(holder
                ->ExecOnce("SELECT COUNT(*) FROM pg_tables WHERE schemaname = "
                           "current_schema()",
                           {})
                .Int64(0, 0),
            0);
  holder->ExecScript(
      "SELECT pg_advisory_unlock(27256, hashtext(current_schema()))");
  for (std::thread& t : threads) t.join();

  std::vector<int> applied;
  ASSERT_TRUE(AllApplied(runs, LatestPgSchemaVersion(), &applied));
  EXPECT_EQ(applied, Range(1, LatestPgSchemaVersion()));  // once, in order
  EXPECT_THAT(runs[0]->applied.empty() || runs[1]->applied.empty(),
              ::testing::IsTrue());
  // The lock is free again: a later run takes it at once.
  auto later = MigratePgBlocking(*holder, LatestPgSchemaVersion());
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_THAT(later->applied, IsEmpty());
}

TEST(MigrationRunnerTest, MigrateDatabaseNamesThePgDatabaseWithoutPassword) {
  const std::string conninfo = SharedPgTestCluster().NewSchema();

  auto run = MigrateDatabaseBlocking("postgres:" + conninfo +
                                     " password=s3cret-never-shown");

  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_THAT(run->database, HasSubstr("postgresql://"));
  EXPECT_THAT(run->database, ::testing::Not(HasSubstr("s3cret")));
  EXPECT_EQ(run->applied, Range(1, LatestPgSchemaVersion()));
}

}  // namespace
}  // namespace jobwire::test
