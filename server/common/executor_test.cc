#include "server/common/executor.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(ExecutorTest, RunsEveryScheduledClosureBeforeShutdownReturns) {
  Executor executor(2);
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(executor.Schedule([&ran] { ran.fetch_add(1); }));
  }
  executor.Shutdown();
  EXPECT_EQ(ran.load(), 1000);
}

TEST(ExecutorTest, RefusesWorkAfterShutdown) {
  Executor executor(1);
  executor.Shutdown();
  EXPECT_FALSE(executor.Schedule([] {}));
}

TEST(ExecutorTest, RunsOnAnotherThread) {
  Executor executor(1);
  absl::Notification done;
  std::thread::id ran_on;
  executor.Schedule([&] {
    ran_on = std::this_thread::get_id();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

}  // namespace
}  // namespace jobwire::test
