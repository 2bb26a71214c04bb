#include "server/scheduling/ready_index.h"

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

bool Any(const std::string&) { return true; }

TEST(ReadyIndexTest, PeekGivesHighestPriorityThenOldest) {
  ReadyIndex index;
  index.Add({"03", "q", "k", 0});
  index.Add({"01", "q", "k", 0});
  index.Add({"02", "q", "k", 5});
  EXPECT_EQ(index.Peek("q", Any)->id, "02");
  index.Remove("02");
  EXPECT_EQ(index.Peek("q", Any)->id, "01");
}

TEST(ReadyIndexTest, PeekOnlyConsidersAcceptedKinds) {
  ReadyIndex index;
  index.Add({"01", "q", "a", 9});
  index.Add({"02", "q", "b", 0});
  auto only_b = [](const std::string& kind) { return kind == "b"; };
  EXPECT_EQ(index.Peek("q", only_b)->id, "02");
  auto none = [](const std::string&) { return false; };
  EXPECT_FALSE(index.Peek("q", none).has_value());
  EXPECT_FALSE(index.Peek("other", Any).has_value());
}

TEST(ReadyIndexTest, AddAgainRekeysTheJob) {
  ReadyIndex index;
  index.Add({"01", "q", "k", 0});
  index.Add({"02", "q", "k", 1});
  index.Add({"01", "q", "k", 7});
  EXPECT_EQ(index.size(), 2);
  EXPECT_EQ(index.Peek("q", Any)->id, "01");
  EXPECT_EQ(index.Rank("02"), 1);
  index.Add({"01", "r", "k", 7});
  EXPECT_EQ(index.QueueSize("q"), 1);
  EXPECT_EQ(index.QueueSize("r"), 1);
}

TEST(ReadyIndexTest, RemoveOfLastJobDropsTheQueue) {
  ReadyIndex index;
  index.Add({"01", "q", "k", 0});
  EXPECT_TRUE(index.Remove("01"));
  EXPECT_FALSE(index.Remove("01"));
  EXPECT_TRUE(index.NonEmptyQueues().empty());
}

}  // namespace
}  // namespace jobwire::test
