#include "server/storage/job_row_cache.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/storage/sqlite_rows.h"

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

// Every field set, times on whole microseconds (what SQLite keeps).
Job FullRow(const std::string& id) {
  Job job = MakeRow(id, JobState::kRunning);
  job.queue = "emails";
  job.args_json = R"({"to":"a@b"})";
  job.payload = std::string("\0bin\xff", 5);
  job.priority = -7;
  job.labels = {{"team", "core"}, {"", "empty key"}, {"k", ""}};
  job.schedule_time = absl::FromUnixMicros(1'700'000'000'000'001);
  job.max_attempts = 9;
  job.retry_policy =
      RetryPolicy{absl::Microseconds(1500), absl::Seconds(90), 1.5, 0.25};
  job.attempt_timeout = absl::Seconds(30);
  job.webhook = WebhookSpec{"https://hook.example/x", {11, 12, 15}};
  job.request_id = "req-1";
  job.progress = Progress{3, 10, "three", R"({"p":1})"};
  job.result = JobResult{R"({"r":2})", std::string(300, 'r')};
  job.error = JobError{14, "unavailable", R"({"e":3})", true};
  job.attempt = 2;
  job.checkpoint = "ckpt";
  job.backoff_until = absl::FromUnixMicros(1'700'000'000'000'002);
  job.worker_id = "worker-with-a-rather-long-name-0001";
  job.lease_expire_time = absl::FromUnixMicros(1'700'000'000'000'003);
  job.stop_request = StopRequest::kPause;
  job.stop_reason = "maintenance";
  job.create_time = absl::FromUnixMicros(1'600'000'000'000'000);
  job.start_time = absl::FromUnixMicros(1'700'000'000'000'004);
  job.update_time = absl::FromUnixMicros(1'700'000'000'000'005);
  job.version = 1234567890123;
  job.last_seq = 77;
  return job;
}

TEST(JobRowCacheTest, EveryColumnSurvivesTheCompactForm) {
  JobRowCache cache({});
  const Job full = FullRow("01HZZZZZZZZZZZZZZZZZZZZZZZ");
  cache.Put(full);
  const Job* row = cache.Find(full.id);
  ASSERT_NE(row, nullptr);
  EXPECT_TRUE(JobColumnsEqual(*row, full));
  EXPECT_EQ(row->labels, full.labels);
  EXPECT_EQ(row->webhook->events, full.webhook->events);
  EXPECT_EQ(row->retry_policy->multiplier, 1.5);
  EXPECT_TRUE(row->error->retryable);
}

TEST(JobRowCacheTest, FindOfAPlainRowAfterAFullOneHasNoLeftovers) {
  JobRowCache cache({});
  cache.Put(FullRow("full"));
  const Job plain = MakeRow("plain");
  cache.Put(plain);
  ASSERT_NE(cache.Find("full"), nullptr);
  const Job* row = cache.Find("plain");
  ASSERT_NE(row, nullptr);
  EXPECT_TRUE(JobColumnsEqual(*row, plain));
  EXPECT_TRUE(row->labels.empty());
  EXPECT_FALSE(row->retry_policy.has_value());
  EXPECT_FALSE(row->webhook.has_value());
  EXPECT_FALSE(row->progress.has_value());
  EXPECT_FALSE(row->result.has_value());
  EXPECT_FALSE(row->error.has_value());
}

TEST(JobRowCacheTest, RowThatOutgrowsItsAllocationIsStillFoundByItsId) {
  JobRowCache cache({});
  Job job = MakeRow("grows");
  cache.Put(job);
  job.progress = Progress{1, 2, std::string(500, 'm'), ""};
  cache.Put(job);
  const Job* row = cache.Find("grows");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->progress->message.size(), 500u);
  EXPECT_EQ(cache.size(), 1u);
}

// A small job (what e2e_bench submits, once assigned to a worker).
Job SmallRunningJob(int i) {
  Job job = MakeRow(absl::StrCat("01J", 10'000'000'000'000'000'000ULL + i),
                    JobState::kRunning);
  job.kind = "noop";
  job.worker_id = "bench-0";
  job.attempt = 1;
  job.create_time = absl::FromUnixMicros(1'700'000'000'000'000);
  job.update_time = job.start_time = job.create_time;
  job.lease_expire_time = job.create_time + absl::Seconds(30);
  return job;
}

TEST(JobRowCacheTest, BudgetCountsWhatAnEntryHolds) {
  JobRowCache cache({});
  cache.Put(SmallRunningJob(0));
  // The packed row, its allocation's header and its table slot: far below
  // the ~1 KB of a Job.
  const size_t small = cache.bytes();
  EXPECT_GT(small, 100u);
  EXPECT_LT(small, 256u);
  // A row's text counts in full.
  Job big = SmallRunningJob(1);
  big.args_json = std::string(10'000, 'a');
  cache.Put(big);
  EXPECT_GE(cache.bytes(), small + 10'000);
  // Forgetting gives it back.
  cache.Forget(big.id);
  EXPECT_EQ(cache.bytes(), small);
}

TEST(JobRowCacheTest, ByteLimitEmptiesTheCacheWhenAnEntryWouldPassIt) {
  JobRowCache::Limits limits;
  JobRowCache probe(limits);
  probe.Put(SmallRunningJob(0));
  limits.max_bytes = 3 * probe.bytes();
  JobRowCache cache(limits);
  for (int i = 0; i < 3; ++i) cache.Put(SmallRunningJob(i));
  EXPECT_EQ(cache.size(), 3u);
  cache.Put(SmallRunningJob(3));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), probe.bytes());
}

TEST(JobRowCacheTest, DefaultLimitsHoldADeepQueueOfSmallJobs) {
  JobRowCache cache({});
  constexpr int kJobs = 300'000;
  for (int i = 0; i < kJobs; ++i) cache.Put(SmallRunningJob(i));
  EXPECT_EQ(cache.size(), static_cast<size_t>(kJobs));
  EXPECT_LE(cache.bytes(), size_t{64} << 20);
  EXPECT_NE(cache.Find(SmallRunningJob(0).id), nullptr);
}

}  // namespace
}  // namespace jobwire
