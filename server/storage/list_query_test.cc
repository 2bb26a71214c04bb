#include "server/storage/list_query.h"

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(AppendFilterSqlTest, ValuesBecomeParametersNeverSqlText) {
  absl::StatusOr<FilterExpr> f = ParseFilter(
      "queue = \"x'); DROP TABLE jobs; --\" AND labels.a = b OR NOT priority > "
      "3");
  ASSERT_TRUE(f.ok()) << f.status();
  std::string sql;
  std::vector<SqlValue> params;
  AppendFilterSql(*f, &sql, &params);
  EXPECT_EQ(sql,
            "(queue = ? AND (EXISTS (SELECT 1 FROM job_labels l WHERE l.job_id "
            "= jobs.id AND "
            "l.key = ? AND l.value = ?) OR NOT (priority > ?)))");
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0].str(), "x'); DROP TABLE jobs; --");
  EXPECT_EQ(params[1].str(), "a");
  EXPECT_EQ(params[3].i, 3);
}

TEST(PlanListJobsTest, ClampsPageSize) {
  EXPECT_EQ(PlanListJobs(ListJobsQuery{"", "", 0, ""})->page_size, 100);
  EXPECT_EQ(PlanListJobs(ListJobsQuery{"", "", 5000, ""})->page_size, 1000);
  EXPECT_EQ(PlanListJobs(ListJobsQuery{"", " PRIORITY   desc ", 0, ""})->order,
            ListOrder::kPriorityDesc);
}

const char* Implied(const char* filter) {
  absl::StatusOr<FilterExpr> f = ParseFilter(filter);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? ImpliedFinishTimeSql(*f) : nullptr;
}

TEST(ImpliedFinishTimeSqlTest, StateTermsNameTheActiveOrFinishedJobs) {
  EXPECT_STREQ(Implied("state = QUEUED"), "finish_time IS NULL");
  EXPECT_STREQ(Implied("state = PAUSED AND queue = q"), "finish_time IS NULL");
  EXPECT_STREQ(Implied("queue = q AND state = FAILED"),
               "finish_time IS NOT NULL");
  EXPECT_STREQ(Implied("state = RUNNING OR state = SCHEDULED"),
               "finish_time IS NULL");
  EXPECT_STREQ(Implied("state = SUCCEEDED OR state = CANCELLED"),
               "finish_time IS NOT NULL");
  EXPECT_STREQ(Implied("NOT (state = SUCCEEDED OR state = FAILED OR state = "
                       "CANCELLED)"),
               "finish_time IS NULL");
  EXPECT_STREQ(Implied("state != QUEUED AND state != SCHEDULED AND state != "
                       "RUNNING AND state != PAUSED"),
               "finish_time IS NOT NULL");
}

TEST(ImpliedFinishTimeSqlTest, MixedOrUnknownStatesImplyNothing) {
  EXPECT_EQ(Implied(""), nullptr);
  EXPECT_EQ(Implied("queue = q"), nullptr);
  EXPECT_EQ(Implied("state != QUEUED"), nullptr);
  EXPECT_EQ(Implied("NOT state = QUEUED"), nullptr);
  EXPECT_EQ(Implied("-state = SUCCEEDED"), nullptr);
  EXPECT_EQ(Implied("state = QUEUED OR state = SUCCEEDED"), nullptr);
  EXPECT_EQ(Implied("state = QUEUED OR queue = q"), nullptr);
  EXPECT_EQ(Implied("NOT (state = QUEUED AND queue = q)"), nullptr);
  // No job matches: nothing to add.
  EXPECT_EQ(Implied("state = QUEUED AND state = FAILED"), nullptr);
}

TEST(PlanListJobsTest, AddsTheImpliedTermOutsideTheFilter) {
  absl::StatusOr<ListPlan> plan = PlanListJobs(
      ListJobsQuery{"state = QUEUED OR state = PAUSED", "", 0, ""});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_NE(plan->sql.find(
                "WHERE (state = ? OR state = ?) AND finish_time IS NULL ORDER"),
            std::string::npos)
      << plan->sql;
  plan = PlanListJobs(ListJobsQuery{"NOT state = FAILED", "", 0, ""});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->sql.find("finish_time IS"), std::string::npos) << plan->sql;
}

}  // namespace
}  // namespace jobwire::test
