#include "server/storage/job_row_cache.h"

#include <string>

#include "gtest/gtest.h"

namespace jobwire {
namespace {

Job MakeRow(const std::string& id, JobState state = JobState::kQueued) {
  Job job;
  job.id = id;
  job.kind = "k";
  job.state = state;
  job.version = 1;
  return job;
}

TEST(JobRowCacheTest, PutThenFindReturnsTheRow) {
  JobRowCache cache({});
  EXPECT_EQ(cache.Find("a"), nullptr);
  cache.Put(MakeRow("a"));
  const Job* row = cache.Find("a");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->kind, "k");
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 1);
}

TEST(JobRowCacheTest, RollbackForgetsRowsTouchedSinceTheMark) {
  JobRowCache cache({});
  cache.Put(MakeRow("a"));
  cache.Commit();
  const size_t mark = cache.mark();
  Job a2 = MakeRow("a");
  a2.version = 2;
  cache.Put(a2);
  cache.Put(MakeRow("b"));
  cache.RollbackTo(mark);
  // Forgotten, not restored: the next read goes to the database.
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.Find("b"), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(JobRowCacheTest, CommittedRowsSurviveALaterRollback) {
  JobRowCache cache({});
  cache.Put(MakeRow("a"));
  cache.Commit();
  cache.Put(MakeRow("b"));
  cache.RollbackTo(0);
  EXPECT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.Find("b"), nullptr);
}

TEST(JobRowCacheTest, TerminalAndHeavyJobsAreNotKept) {
  JobRowCache::Limits limits;
  limits.max_job_bytes = 100;
  JobRowCache cache(limits);
  cache.Put(MakeRow("a"));
  cache.Put(MakeRow("a", JobState::kSucceeded));
  EXPECT_EQ(cache.Find("a"), nullptr);
  Job heavy = MakeRow("h");
  heavy.payload = std::string(101, 'x');
  cache.Put(heavy);
  EXPECT_EQ(cache.Find("h"), nullptr);
}

TEST(JobRowCacheTest, GoingPastTheJobLimitEmptiesTheCache) {
  JobRowCache::Limits limits;
  limits.max_jobs = 2;
  JobRowCache cache(limits);
  cache.Put(MakeRow("a"));
  cache.Put(MakeRow("b"));
  cache.Put(MakeRow("c"));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.Find("c"), nullptr);
  // Rewriting a held row does not count as a new one.
  cache.Put(MakeRow("c"));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(JobRowCacheTest, ZeroJobsDisablesTheCache) {
  JobRowCache::Limits limits;
  limits.max_jobs = 0;
  JobRowCache cache(limits);
  cache.Put(MakeRow("a"));
  EXPECT_EQ(cache.Find("a"), nullptr);
}

TEST(JobRowCacheTest, TimesAreKeptToTheMicrosecondLikeTheDatabase) {
  JobRowCache cache({});
  Job job = MakeRow("a");
  job.create_time = absl::FromUnixNanos(1'700'000'000'123'456'789);
  job.attempt_timeout = absl::Nanoseconds(2'500);
  cache.Put(job);
  const Job* row = cache.Find("a");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->create_time, absl::FromUnixMicros(1'700'000'000'123'456));
  EXPECT_EQ(row->attempt_timeout, absl::Microseconds(2));
  EXPECT_EQ(row->finish_time, absl::InfinitePast());
}

}  // namespace
}  // namespace jobwire
