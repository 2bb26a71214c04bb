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

}  // namespace
}  // namespace jobwire::test
