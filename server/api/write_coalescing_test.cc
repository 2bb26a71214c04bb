#include "server/api/write_coalescing.h"

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(WriteCoalescerTest, FirstWriteIsNeverHinted) {
  WriteCoalescer c;
  EXPECT_FALSE(c.Next(/*more_queued=*/true).get_buffer_hint());
  EXPECT_TRUE(c.Next(/*more_queued=*/true).get_buffer_hint());
}

TEST(WriteCoalescerTest, OnlyWritesWithMoreQueuedAreHinted) {
  WriteCoalescer c;
  c.Next(false);
  EXPECT_FALSE(c.Next(false).get_buffer_hint());
  EXPECT_TRUE(c.Next(true).get_buffer_hint());
  EXPECT_TRUE(c.Next(true).get_buffer_hint());
  EXPECT_FALSE(c.Next(false).get_buffer_hint());
}

TEST(WriteCoalescerTest, ALongBurstFlushesEveryMaxRunWrites) {
  WriteCoalescer c;
  c.Next(false);
  int flushes = 0;
  for (int i = 0; i < 3 * WriteCoalescer::kMaxRun; ++i) {
    if (!c.Next(true).get_buffer_hint()) ++flushes;
  }
  EXPECT_EQ(flushes, 3);
}

}  // namespace
}  // namespace jobwire::test
