#include "server/scheduling/timer_heap.h"

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(TimerHeapTest, PopsDueTimersEarliestFirst) {
  TimerHeap heap;
  heap.Push({kT0 + absl::Seconds(3), TimerKind::kLease, "c", 1});
  heap.Push({kT0 + absl::Seconds(1), TimerKind::kRunAfter, "a", 0});
  heap.Push({kT0 + absl::Seconds(2), TimerKind::kAttemptTimeout, "b", 1});
  EXPECT_EQ(heap.NextDeadline(), kT0 + absl::Seconds(1));
  auto due = heap.PopDue(kT0 + absl::Seconds(2));
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].job_id, "a");
  EXPECT_EQ(due[1].job_id, "b");
  EXPECT_EQ(heap.size(), 1u);
  EXPECT_TRUE(heap.PopDue(kT0).empty());
}

TEST(TimerHeapTest, EmptyHeapHasNoDeadline) {
  TimerHeap heap;
  EXPECT_EQ(heap.NextDeadline(), absl::InfiniteFuture());
}

}  // namespace
}  // namespace jobwire::test
