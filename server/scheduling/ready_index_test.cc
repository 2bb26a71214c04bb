#include "server/scheduling/ready_index.h"

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
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

TEST(ReadyIndexTest, RekeyMovesAJobAndKeepsWhenItBecameReady) {
  ReadyIndex index;
  const absl::Time t0 = absl::FromUnixSeconds(100);
  index.Add({"01", "q", "a", 0, t0});
  index.Add({"02", "q", "a", 1, t0 + absl::Seconds(1)});
  EXPECT_FALSE(index.Rekey("09", "q", "a", 5));
  EXPECT_EQ(index.size(), 2);

  ASSERT_TRUE(index.Rekey("01", "r", "b", 3));
  EXPECT_EQ(index.QueueSize("q"), 1);
  std::optional<ReadyJob> moved = index.Peek("r", Any);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->id, "01");
  EXPECT_EQ(moved->kind, "b");
  EXPECT_EQ(moved->priority, 3);
  EXPECT_EQ(moved->ready_since, t0);

  // Add replaces the job whole, its ready time too.
  index.Add({"01", "r", "b", 3, t0 + absl::Seconds(5)});
  EXPECT_EQ(index.Peek("r", Any)->ready_since, t0 + absl::Seconds(5));
  EXPECT_EQ(index.size(), 2);
}

// Many jobs, added, re-keyed and removed at random, against a plain model.
TEST(ReadyIndexTest, StaysInTheOrderOfAModelUnderRandomChanges) {
  ReadyIndex index;
  struct Model {
    std::string queue;
    int32_t priority;
  };
  std::map<std::string, Model> model;
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; ++step) {
    const std::string id = absl::StrFormat("%05d", rng() % 500);
    const std::string queue = rng() % 2 ? "q" : "r";
    const int32_t priority = static_cast<int32_t>(rng() % 4);
    switch (rng() % 3) {
      case 0:
        index.Add({id, queue, "k", priority});
        model[id] = {queue, priority};
        break;
      case 1:
        EXPECT_EQ(index.Rekey(id, queue, "k", priority), model.count(id) > 0);
        if (model.count(id) > 0) model[id] = {queue, priority};
        break;
      case 2:
        EXPECT_EQ(index.Remove(id), model.erase(id) > 0);
        break;
    }
  }
  ASSERT_EQ(index.size(), static_cast<int64_t>(model.size()));
  for (const std::string queue : {"q", "r"}) {
    // The model's best: highest priority, then lowest id.
    std::vector<std::pair<int32_t, std::string>> order;
    for (const auto& [id, m] : model) {
      if (m.queue == queue) order.push_back({-m.priority, id});
    }
    std::sort(order.begin(), order.end());
    ASSERT_EQ(index.QueueSize(queue), static_cast<int64_t>(order.size()));
    for (const auto& [neg_priority, id] : order) {
      std::optional<ReadyJob> best = index.Peek(queue, Any);
      ASSERT_TRUE(best.has_value());
      EXPECT_EQ(best->id, id);
      EXPECT_EQ(best->priority, -neg_priority);
      ASSERT_TRUE(index.Remove(best->id));
    }
  }
  EXPECT_EQ(index.size(), 0);
  EXPECT_TRUE(index.NonEmptyQueues().empty());
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
