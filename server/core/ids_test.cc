#include "server/core/ids.h"

#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(IdGeneratorTest, IdsAreValidUlidsCarryingTheClockTime) {
  FakeClock clock(absl::FromUnixMillis(1767225600123));
  IdGenerator ids(&clock);
  std::string id = ids.Next();
  EXPECT_EQ(id.size(), 26u);
  EXPECT_TRUE(IsValidUlid(id)) << id;
  EXPECT_EQ(UlidTime(id), absl::FromUnixMillis(1767225600123));
}

TEST(IdGeneratorTest, IdsIncreaseStrictlyWithinOneMillisecond) {
  FakeClock clock;
  IdGenerator ids(&clock);
  std::string prev = ids.Next();
  for (int i = 0; i < 10000; ++i) {
    std::string next = ids.Next();
    ASSERT_LT(prev, next);
    prev = next;
  }
}

TEST(IdGeneratorTest, IdsIncreaseWhenTheClockStepsBack) {
  FakeClock clock;
  IdGenerator ids(&clock);
  std::string first = ids.Next();
  clock.Advance(-absl::Seconds(10));
  EXPECT_LT(first, ids.Next());
}

TEST(IdGeneratorTest, LaterMillisecondsSortLater) {
  FakeClock clock;
  IdGenerator ids(&clock);
  std::string first = ids.Next();
  clock.Advance(absl::Milliseconds(1));
  std::string second = ids.Next();
  EXPECT_LT(first, second);
  EXPECT_EQ(UlidTime(second) - UlidTime(first), absl::Milliseconds(1));
}

TEST(IdGeneratorTest, ConcurrentCallersGetDistinctIds) {
  FakeClock clock;
  IdGenerator ids(&clock);
  std::vector<std::vector<std::string>> got(4);
  std::vector<std::thread> threads;
  for (auto& out : got) {
    threads.emplace_back([&ids, &out] {
      for (int i = 0; i < 2000; ++i) out.push_back(ids.Next());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& out : got) {
    for (size_t i = 1; i < out.size(); ++i) ASSERT_LT(out[i - 1], out[i]);
    all.insert(out.begin(), out.end());
  }
  EXPECT_EQ(all.size(), 8000u);
}

TEST(IdGeneratorTest, AdvancePastKeepsIdsGrowingAcrossRestarts) {
  FakeClock clock;
  IdGenerator before(&clock);
  std::string stored = before.Next();
  IdGenerator after(&clock);
  after.AdvancePast(stored);
  EXPECT_LT(stored, after.Next());
  after.AdvancePast("garbage");
}

TEST(UlidTest, DecodeInvertsEncode) {
  absl::uint128 v =
      absl::MakeUint128(0x0123456789abcdefULL, 0xfedcba9876543210ULL);
  absl::uint128 back = 0;
  ASSERT_TRUE(DecodeUlid(EncodeUlid(v), &back));
  EXPECT_EQ(back, v);
}

TEST(UlidTest, EncodesTheSpecExample) {
  // Max value: 7ZZZZZZZZZZZZZZZZZZZZZZZZZ.
  EXPECT_EQ(EncodeUlid(~absl::uint128(0)), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
  EXPECT_EQ(EncodeUlid(0), "00000000000000000000000000");
}

TEST(UlidTest, RejectsMalformedText) {
  EXPECT_FALSE(IsValidUlid(""));
  EXPECT_FALSE(IsValidUlid("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
  EXPECT_FALSE(IsValidUlid("0000000000000000000000000U"));
  EXPECT_FALSE(IsValidUlid("0000000000000000000000000"));
  EXPECT_TRUE(IsValidUlid("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
}

}  // namespace
}  // namespace jobwire::test
