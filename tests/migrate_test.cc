// `jobwired migrate` as a process: on a new and on a current database
// (SQLite and PostgreSQL), refused on a newer one, and two runs started at
// the same moment on one empty database applying each migration once.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "server/storage/pg_test_cluster.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {
namespace {

constexpr absl::Duration kExitWait = absl::Seconds(50);

class MigrateTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("jobwire-migrate"); }
  void TearDown() override {
    if (!HasFailure()) RemoveDir(dir_);
  }

  std::unique_ptr<JobwiredProcess> Start(const std::string& db) {
    return std::make_unique<JobwiredProcess>(
        dir_, std::vector<std::string>{"--db", db, "migrate"});
  }

  // Waits for `p` to exit 0 and returns the versions it says it applied.
  static std::vector<int> Applied(JobwiredProcess& p) {
    EXPECT_TRUE(p.Exited(kExitWait)) << p.log();
    EXPECT_EQ(p.exit_code(), 0) << p.log();
    std::vector<int> versions;
    for (absl::string_view line : absl::StrSplit(p.log(), '\n')) {
      int v = 0;
      if (absl::ConsumePrefix(&line, "applied migration ") &&
          absl::SimpleAtoi(line, &v)) {
        versions.push_back(v);
      }
    }
    return versions;
  }

  static std::vector<int> Range(int from, int to) {
    std::vector<int> v;
    for (int i = from; i <= to; ++i) v.push_back(i);
    return v;
  }

  // A new database, then the same one again: every migration, then none.
  void MigrateNewThenCurrent(const std::string& db) {
    std::unique_ptr<JobwiredProcess> first = Start(db);
    std::vector<int> applied = Applied(*first);
    ASSERT_FALSE(applied.empty()) << first->log();
    EXPECT_EQ(applied, Range(1, static_cast<int>(applied.size())));
    const std::string current =
        absl::StrCat("schema version ", applied.size(), " (was 0;");
    EXPECT_TRUE(absl::StrContains(first->log(), current)) << first->log();

    std::unique_ptr<JobwiredProcess> second = Start(db);
    EXPECT_TRUE(Applied(*second).empty()) << second->log();
    EXPECT_TRUE(absl::StrContains(
        second->log(), absl::StrCat("schema version ", applied.size(), " (was ",
                                    applied.size(), ";")))
        << second->log();
  }

  // Two runs started together on one empty database: both succeed, and
  // between them each migration is applied once.
  void TwoRunsAtOnce(const std::string& db) {
    std::unique_ptr<JobwiredProcess> a = Start(db);
    std::unique_ptr<JobwiredProcess> b = Start(db);
    std::vector<int> from_a = Applied(*a);
    std::vector<int> from_b = Applied(*b);
    std::vector<int> all = from_a;
    all.insert(all.end(), from_b.begin(), from_b.end());
    std::sort(all.begin(), all.end());
    ASSERT_FALSE(all.empty()) << a->log() << b->log();
    EXPECT_EQ(all, Range(1, static_cast<int>(all.size())))
        << a->log() << b->log();
  }

  std::string dir_;
};

TEST_F(MigrateTest, SqliteNewThenCurrentDatabase) {
  // Missing folders are created, as when jobwired starts.
  MigrateNewThenCurrent(dir_ + "/data/jobwire.db");
}

TEST_F(MigrateTest, SqliteTwoRunsAtOnceMigrateOnce) {
  TwoRunsAtOnce(dir_ + "/jobwire.db");
}

TEST_F(MigrateTest, SqliteNewerDatabaseIsRefused) {
  const std::string db = dir_ + "/jobwire.db";
  {
    SQLite::Database sqlite(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    sqlite.exec("PRAGMA user_version = 1000");
  }
  std::unique_ptr<JobwiredProcess> p = Start(db);
  ASSERT_TRUE(p->Exited(kExitWait));
  EXPECT_EQ(p->exit_code(), 1);
  EXPECT_TRUE(absl::StrContains(p->log(), "newer than this jobwire"))
      << p->log();
}

TEST_F(MigrateTest, PostgresNewThenCurrentSchema) {
  MigrateNewThenCurrent("postgres:" + SharedPgTestCluster().NewSchema());
}

TEST_F(MigrateTest, PostgresTwoRunsAtOnceMigrateOnceThenAServerStarts) {
  const std::string db = "postgres:" + SharedPgTestCluster().NewSchema();
  TwoRunsAtOnce(db);
  JobwiredProcess server(dir_, {"--listen", "127.0.0.1:0", "--db", db});
  EXPECT_EQ(server.WaitListening(1).size(), 1u) << server.log();
}

}  // namespace
}  // namespace jobwire::test
