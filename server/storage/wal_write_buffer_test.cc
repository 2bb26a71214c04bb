#include "server/storage/wal_write_buffer.h"

#include <memory>
#include <string>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Statement.h"
#include "gtest/gtest.h"
#include "server/storage/temp_db_dir.h"

namespace jobwire::test {
namespace {

const int kRw =
    SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX;

// A connection through the gathering VFS, WAL, synchronous = FULL.
std::unique_ptr<SQLite::Database> OpenGathering(const std::string& path) {
  EXPECT_TRUE(RegisterWalWriteBufferVfs());
  auto db =
      std::make_unique<SQLite::Database>(path, kRw, 5000, kWalWriteBufferVfs);
  EXPECT_EQ(db->execAndGet("PRAGMA journal_mode = WAL").getString(), "wal");
  db->exec("PRAGMA synchronous = FULL");
  return db;
}

int64_t Count(SQLite::Database& db) {
  return db.execAndGet("SELECT COUNT(*) FROM t").getInt64();
}

// Inserts `rows` rows of about 1 KB each in one transaction.
void InsertRows(SQLite::Database& db, int rows, bool commit) {
  db.exec("BEGIN IMMEDIATE");
  SQLite::Statement insert(db, "INSERT INTO t (v) VALUES (randomblob(1000))");
  for (int i = 0; i < rows; ++i) {
    insert.exec();
    insert.reset();
  }
  db.exec(commit ? "COMMIT" : "ROLLBACK");
}

std::string IntegrityCheck(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  return db.execAndGet("PRAGMA integrity_check").getString();
}

TEST(WalWriteBufferTest, ACommitIsOnePwriteAndOtherConnectionsSeeIt) {
  TempDbDir dir;
  auto writer = OpenGathering(dir.db());
  writer->exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  SQLite::Database reader(dir.db(), SQLite::OPEN_READONLY);
  for (int round = 1; round <= 5; ++round) {
    const WalWriteBufferStats before = GetWalWriteBufferStats();
    InsertRows(*writer, 20, /*commit=*/true);  // some 6 pages, 12 writes
    const WalWriteBufferStats after = GetWalWriteBufferStats();
    EXPECT_GE(after.writes_gathered - before.writes_gathered, 10);
    EXPECT_EQ(after.writes_issued - before.writes_issued, 1);
    // Another connection (the default VFS) reads the committed rows.
    EXPECT_EQ(Count(reader), 20 * round);
  }
  writer.reset();
  EXPECT_EQ(IntegrityCheck(dir.db()), "ok");
}

// A transaction larger than the page cache writes frames to the WAL before
// it commits and reads them back; one larger than 1 MiB flushes on the way.
// Rolled back, none of it counts; committed, all of it does.
TEST(WalWriteBufferTest, SpilledAndLargeTransactionsCommitOrRollBackWhole) {
  TempDbDir dir;
  auto writer = OpenGathering(dir.db());
  writer->exec("PRAGMA cache_size = 10");
  writer->exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  writer->exec("CREATE INDEX t_v ON t (v)");
  SQLite::Database reader(dir.db(), SQLite::OPEN_READONLY);
  InsertRows(*writer, 3000, /*commit=*/false);
  EXPECT_EQ(Count(reader), 0);
  EXPECT_EQ(Count(*writer), 0);
  const WalWriteBufferStats before = GetWalWriteBufferStats();
  InsertRows(*writer, 3000, /*commit=*/true);
  const WalWriteBufferStats after = GetWalWriteBufferStats();
  EXPECT_GT(after.writes_issued - before.writes_issued, 1);
  EXPECT_LT(after.writes_issued - before.writes_issued,
            after.writes_gathered - before.writes_gathered);
  EXPECT_EQ(Count(reader), 3000);
  EXPECT_EQ(
      writer->execAndGet("SELECT COUNT(*) FROM t INDEXED BY t_v").getInt64(),
      3000);
  // A checkpoint reads the WAL through another connection.
  reader.exec("PRAGMA wal_checkpoint(PASSIVE)");
  InsertRows(*writer, 10, /*commit=*/true);
  EXPECT_EQ(Count(reader), 3010);
  writer.reset();
  EXPECT_EQ(IntegrityCheck(dir.db()), "ok");
  SQLite::Database reopened(dir.db(), SQLite::OPEN_READONLY);
  EXPECT_EQ(Count(reopened), 3010);
}

}  // namespace
}  // namespace jobwire::test
