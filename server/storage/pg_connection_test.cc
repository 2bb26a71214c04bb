// PgConnection's queued statements (libpq pipeline mode) against a real
// PostgreSQL: they run, in order, with the next call; their errors surface
// from that call; a statement prepared on first use behind a queue stays
// usable after a failure.
#include "server/storage/pg_connection.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/pg_test_cluster.h"

namespace jobwire::test {
namespace {

std::unique_ptr<PgConnection> Connect() {
  auto conn = PgConnection::Open(SharedPgTestCluster().NewSchema());
  EXPECT_TRUE(conn.ok()) << conn.status();
  return conn.ok() ? *std::move(conn) : nullptr;
}

TEST(PgConnectionTest, QueuedStatementsRunWithTheNextCallInOrder) {
  std::unique_ptr<PgConnection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  conn->ExecScript("CREATE TABLE t (v BIGINT NOT NULL)");

  conn->Queue("BEGIN");
  conn->Queue("INSERT INTO t VALUES ($1)", {SqlValue::Int(1)});
  conn->Queue("UPDATE t SET v = v + $1", {SqlValue::Int(10)});
  EXPECT_FALSE(conn->InTransaction());  // nothing sent yet
  PgResult r = conn->Exec("SELECT v FROM t", {});

  ASSERT_EQ(r.rows(), 1);
  EXPECT_EQ(r.Int64(0, 0), 11);
  EXPECT_TRUE(conn->InTransaction());
  conn->Queue("UPDATE t SET v = $1", {SqlValue::Int(5)});
  conn->ExecScript("COMMIT");
  EXPECT_FALSE(conn->InTransaction());
  EXPECT_EQ(conn->ExecOnce("SELECT v FROM t", {}).Int64(0, 0), 5);
}

TEST(PgConnectionTest, AQueuedStatementsErrorIsThrownByTheNextCall) {
  std::unique_ptr<PgConnection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  conn->ExecScript("CREATE TABLE t (v BIGINT PRIMARY KEY)");

  conn->Queue("BEGIN");
  conn->Queue("INSERT INTO t VALUES (1), (1)");  // duplicate key
  try {
    // Prepared on its first use, behind the failing queue.
    conn->Exec("SELECT COUNT(*) FROM t", {});
    FAIL() << "the queued INSERT's error was not thrown";
  } catch (const PgError& e) {
    EXPECT_EQ(e.sqlstate(), "23505");
  }
  EXPECT_TRUE(conn->InFailedTransaction());
  conn->ExecScript("ROLLBACK");

  // The statement the failed pipeline skipped prepares and runs now.
  EXPECT_EQ(conn->Exec("SELECT COUNT(*) FROM t", {}).Int64(0, 0), 0);
  conn->Queue("BEGIN");
  EXPECT_EQ(conn->Exec("SELECT COUNT(*) FROM t", {}).Int64(0, 0), 0);
  conn->ExecScript("ROLLBACK");
}

// A queued statement is prepared in the pipeline on its first use; one
// whose pipeline then failed stays prepared and usable.
TEST(PgConnectionTest, QueuedStatementsArePreparedOnceAcrossFailures) {
  std::unique_ptr<PgConnection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  conn->ExecScript("CREATE TABLE t (v BIGINT PRIMARY KEY)");
  conn->ExecScript("INSERT INTO t VALUES (1)");

  for (int round = 0; round < 3; ++round) {
    conn->Queue("BEGIN");
    conn->Queue("UPDATE t SET v = v + $1", {SqlValue::Int(1)});
    conn->Queue("UPDATE t SET v = v + $1", {SqlValue::Int(1)});
    if (round == 1) conn->Queue("INSERT INTO t VALUES (5), (5)");
    try {
      conn->ExecScript("COMMIT");
      EXPECT_NE(round, 1);
    } catch (const PgError& e) {
      EXPECT_EQ(round, 1) << e.what();
      EXPECT_EQ(e.sqlstate(), "23505");
      conn->ExecScript("ROLLBACK");
    }
  }

  EXPECT_EQ(conn->ExecOnce("SELECT v FROM t", {}).Int64(0, 0), 5);
  EXPECT_EQ(conn->ExecOnce("SELECT COUNT(*) FROM pg_prepared_statements "
                           "WHERE statement LIKE 'UPDATE t SET%'",
                           {})
                .Int64(0, 0),
            1);
}

TEST(PgConnectionTest, AScriptOfSeveralStatementsRunsAfterTheQueue) {
  std::unique_ptr<PgConnection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  conn->ExecScript("CREATE TABLE t (v BIGINT NOT NULL)");

  conn->Queue("BEGIN");
  conn->Queue("INSERT INTO t VALUES (7)");
  conn->ExecScript("SAVEPOINT op; RELEASE op");
  conn->ExecScript("COMMIT");

  EXPECT_EQ(conn->ExecOnce("SELECT v FROM t", {}).Int64(0, 0), 7);
}

}  // namespace
}  // namespace jobwire::test
