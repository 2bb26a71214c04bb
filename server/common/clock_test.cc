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

TEST(FakeClockTest, SetStepsOnlyTheWallClock) {
  FakeClock clock;
  const absl::Time m0 = clock.Monotonic();
  clock.Set(clock.Now() - absl::Hours(1));
  EXPECT_EQ(clock.Monotonic(), m0);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Monotonic(), m0 + absl::Seconds(5));
}

TEST(SystemClockTest, MonotonicNeverGoesBack) {
  const absl::Time a = Clock::Real()->Monotonic();
  const absl::Time b = Clock::Real()->Monotonic();
  EXPECT_LE(a, b);
}

TEST(SystemClockTest, IsCloseToAbslNow) {
  EXPECT_LT(absl::AbsDuration(Clock::Real()->Now() - absl::Now()),
            absl::Seconds(1));
}

}  // namespace
}  // namespace jobwire::test
