#include "server/common/clock.h"

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(FakeClockTest, MovesOnlyWhenAdvanced) {
  FakeClock clock;
  absl::Time t0 = clock.Now();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), t0 + absl::Seconds(5));
}

TEST(SystemClockTest, IsCloseToAbslNow) {
  EXPECT_LT(absl::AbsDuration(Clock::Real()->Now() - absl::Now()),
            absl::Seconds(1));
}

}  // namespace
}  // namespace jobwire::test
