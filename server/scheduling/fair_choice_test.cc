#include "server/scheduling/fair_choice.h"

#include <map>

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(FairChoiceTest, WeightThreeGetsThreeTurnsForOne) {
  FairChoice choice;
  std::vector<FairChoice::Candidate> both = {{"a", 3}, {"b", 1}};
  std::map<std::string, int> turns;
  for (int i = 0; i < 400; ++i) ++turns[both[choice.Choose(both)].queue];
  EXPECT_EQ(turns["a"], 300);
  EXPECT_EQ(turns["b"], 100);
}

TEST(FairChoiceTest, TurnsAreSpreadOut) {
  FairChoice choice;
  std::vector<FairChoice::Candidate> both = {{"a", 3}, {"b", 1}};
  std::string order;
  for (int i = 0; i < 8; ++i) order += both[choice.Choose(both)].queue;
  EXPECT_EQ(order, "aabaaaba");
}

TEST(FairChoiceTest, EmptyQueueCostsNothing) {
  FairChoice choice;
  std::vector<FairChoice::Candidate> only_b = {{"b", 1}};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(choice.Choose(only_b), 0u);
  // a did not bank credit while it had no work: shares stay 1:1 afterwards.
  std::vector<FairChoice::Candidate> both = {{"a", 1}, {"b", 1}};
  std::map<std::string, int> turns;
  for (int i = 0; i < 10; ++i) ++turns[both[choice.Choose(both)].queue];
  EXPECT_EQ(turns["a"], 5);
  EXPECT_EQ(turns["b"], 5);
}

}  // namespace
}  // namespace jobwire::test
