#include "server/storage/database_lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"

namespace jobwire::test {
namespace {

class DatabaseLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jobwire-dblock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    db_ = std::string(tmpl) + "/j.db";
  }
  void TearDown() override {
    std::system(("rm -rf " + db_.substr(0, db_.rfind('/'))).c_str());
  }

  // Whether another process can take the lock now (flock locks belong to
  // the open file, so a second Acquire in this process would also fail;
  // a child shows what a second server sees).
  bool ChildCanAcquire() {
    const pid_t pid = ::fork();
    if (pid == 0) _exit(DatabaseLock::Acquire(db_).ok() ? 0 : 1);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  std::string db_;
};

TEST_F(DatabaseLockTest, ASecondHolderIsRefusedUntilTheFirstReleases) {
  auto first = DatabaseLock::Acquire(db_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->lock_path(), db_ + ".lock");
  EXPECT_FALSE(ChildCanAcquire());

  auto second = DatabaseLock::Acquire(db_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(second.status().message(), db_))
      << second.status();
  EXPECT_TRUE(absl::StrContains(second.status().message(), "--db"));

  first->reset();
  EXPECT_TRUE(ChildCanAcquire());
  EXPECT_TRUE(DatabaseLock::Acquire(db_).ok());
}

TEST_F(DatabaseLockTest, AMissingDirectoryIsAnError) {
  auto lock = DatabaseLock::Acquire(db_ + "-missing/sub/j.db");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(lock.status().message(), "cannot open"));
}

}  // namespace
}  // namespace jobwire::test
