#include "server/storage/sqlite_malloc.h"

#include <sqlite3.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Statement.h"
#include "gtest/gtest.h"

namespace jobwire {
namespace {

// Installed before anything in this test binary opens a connection.
class SqliteMallocTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { installed_ = InstallSqliteMalloc(); }
  static bool installed_;
};
bool SqliteMallocTest::installed_ = false;

TEST_F(SqliteMallocTest, BlocksHoldWhatWasAskedAndReportTheirSize) {
  if (!installed_) GTEST_SKIP() << "sanitized build: SQLite's own allocator";
  for (int n :
       {1, 15, 16, 17, 100, 1000, 1024, 1025, 4096, 8192, 8193, 100000}) {
    auto* p = static_cast<unsigned char*>(sqlite3_malloc(n));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0xab, static_cast<size_t>(n));
    EXPECT_GE(sqlite3_msize(p), static_cast<sqlite3_uint64>(n));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 8, 0u);
    p = static_cast<unsigned char*>(sqlite3_realloc(p, n * 3));
    ASSERT_NE(p, nullptr);
    for (int i = 0; i < n; ++i) ASSERT_EQ(p[i], 0xab) << n << " " << i;
    EXPECT_GE(sqlite3_msize(p), static_cast<sqlite3_uint64>(n) * 3);
    sqlite3_free(p);
  }
  sqlite3_free(nullptr);
}

TEST_F(SqliteMallocTest, FreedBlocksAreReusedBySameSizedRequests) {
  if (!installed_) GTEST_SKIP() << "sanitized build: SQLite's own allocator";
  void* a = sqlite3_malloc(200);
  sqlite3_free(a);
  void* b = sqlite3_malloc(196);  // the same 16-byte class (193..208)
  EXPECT_EQ(a, b);
  sqlite3_free(b);
  void* page = sqlite3_malloc(4096);
  sqlite3_free(page);
  void* again = sqlite3_malloc(4000);  // the same 256-byte class
  EXPECT_EQ(page, again);
  sqlite3_free(again);
}

TEST_F(SqliteMallocTest, BlocksMayBeFreedOnAnotherThread) {
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(sqlite3_malloc(16 + i % 900));
  std::thread([&blocks] {
    for (void* p : blocks) sqlite3_free(p);
    // This thread's cache is given back to malloc when it exits.
  }).join();
  void* p = sqlite3_malloc(64);
  EXPECT_NE(p, nullptr);
  sqlite3_free(p);
}

TEST_F(SqliteMallocTest, ADatabaseWorksOnTopOfIt) {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)");
  db.exec("BEGIN");
  SQLite::Statement insert(db, "INSERT INTO t (k, v) VALUES (?, ?)");
  for (int i = 0; i < 5000; ++i) {
    const std::string key = "key-" + std::to_string(i);
    const std::string value(static_cast<size_t>(i % 3000), 'v');
    insert.bind(1, key);
    insert.bind(2, value.data(), static_cast<int>(value.size()));
    insert.exec();
    insert.reset();
  }
  db.exec("COMMIT");
  SQLite::Statement sum(db, "SELECT COUNT(*), SUM(LENGTH(v)) FROM t");
  ASSERT_TRUE(sum.executeStep());
  EXPECT_EQ(sum.getColumn(0).getInt(), 5000);
  int64_t expected = 0;
  for (int i = 0; i < 5000; ++i) expected += i % 3000;
  EXPECT_EQ(sum.getColumn(1).getInt64(), expected);
}

}  // namespace
}  // namespace jobwire
