#include "server/storage/sqlite_job_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"
#include "server/storage/job_store_test_util.h"
#include "server/storage/list_query.h"
#include "server/storage/migrations.h"
#include "server/storage/sqlite_rows.h"
#include "server/storage/temp_db_dir.h"
#include "server/storage/wal_write_buffer.h"

namespace jobwire::test {
namespace {

using ::testing::Each;

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  // Makes every insert of a job of kind "b2" fail inside SQLite: a real
  // statement failure that leaves the writer's transaction open.
  void RefuseInsertsOfKindB2() {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec(
        "CREATE TRIGGER refuse_b2 BEFORE INSERT ON jobs WHEN NEW.kind = 'b2' "
        "BEGIN SELECT RAISE(ABORT, 'b2 refused'); END");
  }

  // Opens a store that refuses kind "b2" and holds its writer in `gate` on
  // a job submitted first (the gate's job has the first event).
  std::unique_ptr<SqliteJobStore> OpenHeldRefusingB2(WriterGate& gate) {
    auto store = Open();
    RefuseInsertsOfKindB2();
    absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
    EXPECT_TRUE(job.ok()) << job.status();
    gate.Block(*store, job->id);
    return store;
  }

  std::unique_ptr<SqliteJobStore> Open(SqliteJobStore::Options options = {}) {
    if (options.path == ":memory:") options.path = dir_.db();
    options.clock = &clock_;
    auto store = SqliteJobStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  TempDbDir dir_;
  FakeClock clock_;
};

// Jobs stored so far (read beside the writer, not through a `done`).
int64_t StoredJobs(SqliteJobStore& store) {
  auto counts = store.CountJobsByQueueAndStateBlocking();
  EXPECT_TRUE(counts.ok()) << counts.status();
  int64_t n = 0;
  if (counts.ok()) {
    for (const QueueStateCount& c : *counts) n += c.count;
  }
  return n;
}

// Polls (bounded) until `store` holds `n` jobs; false when it never does.
bool AwaitStoredJobs(SqliteJobStore& store, int64_t n) {
  for (int i = 0; i < 1000; ++i) {
    if (StoredJobs(store) >= n) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

std::string ThisThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

std::string ThreadThatAnswersALoneSubmit(SqliteJobStore& store) {
  std::string thread;
  absl::Notification done;
  store.Submit({MakeJob()}, [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    thread = ThisThreadName();
    done.Notify();
  });
  done.WaitForNotification();
  return thread;
}

// Holds the writer in the `done` of a lone Submit (which the idle writer
// answers itself), queues `count` writes made by `write` (each given a
// callback to run on the thread that answers it), then lets the writer go
// on. With max_batch_jobs 1, each queued write is a commit of its own that
// finds more writes queued behind it, but the last. Returns the names of the
// answering threads, in answer order.
std::vector<std::string> ThreadsThatAnswerQueuedWrites(
    SqliteJobStore& store, int count,
    const std::function<void(std::function<void()>)>& write) {
  absl::Notification held, release;
  store.Submit({MakeJob()}, [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    held.Notify();
    release.WaitForNotification();
  });
  held.WaitForNotification();
  absl::Mutex mu;
  std::vector<std::string> threads;
  absl::BlockingCounter answered(count);
  for (int i = 0; i < count; ++i) {
    write([&] {
      {
        absl::MutexLock lock(&mu);
        threads.push_back(ThisThreadName());
      }
      answered.DecrementCount();
    });
  }
  release.Notify();
  answered.Wait();
  absl::MutexLock lock(&mu);
  return threads;
}

constexpr JobState kEveryState[] = {JobState::kQueued,    JobState::kScheduled,
                                    JobState::kRunning,   JobState::kPaused,
                                    JobState::kSucceeded, JobState::kFailed,
                                    JobState::kCancelled};

// Filters on state alone and mixed with other fields, through NOT, OR, !=.
constexpr const char* kStateFilters[] = {
    "state = QUEUED",
    "state = SCHEDULED",
    "state = RUNNING",
    "state = PAUSED",
    "state = SUCCEEDED",
    "state = FAILED",
    "state = CANCELLED",
    "state != QUEUED",
    "state != SUCCEEDED",
    "NOT state = RUNNING",
    "-state = FAILED",
    "state = QUEUED OR state = PAUSED",
    "state = QUEUED OR state = FAILED",
    "state = SUCCEEDED OR state = CANCELLED",
    "NOT (state = SUCCEEDED OR state = FAILED OR state = CANCELLED)",
    ("state != QUEUED AND state != SCHEDULED AND state != RUNNING AND "
     "state != PAUSED"),
    "queue = q1 AND state = RUNNING",
    "queue = q1 OR state = RUNNING",
    "NOT (queue = q1 AND state = SUCCEEDED)",
    "queue = q2 AND -state = SCHEDULED",
    "state = QUEUED AND state = SUCCEEDED",
};

// The ids the filter selects when compiled without the implied term, in id
// order, read straight from the database file.
std::vector<std::string> IdsByPlainFilter(const std::string& path,
                                          const char* filter) {
  absl::StatusOr<FilterExpr> f = ParseFilter(filter);
  EXPECT_TRUE(f.ok()) << f.status();
  std::string sql = "SELECT id FROM jobs WHERE ";
  std::vector<SqlValue> params;
  AppendFilterSql(*f, &sql, &params);
  sql.append(" ORDER BY id");
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  SQLite::Statement stmt(db, sql);
  for (size_t i = 0; i < params.size(); ++i) {
    BindValue(stmt, static_cast<int>(i) + 1, params[i]);
  }
  std::vector<std::string> ids;
  while (stmt.executeStep()) ids.push_back(stmt.getColumn(0).getString());
  return ids;
}

// The details of EXPLAIN QUERY PLAN of `sql`, one line each.
std::string QueryPlan(const std::string& path, const std::string& sql) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  SQLite::Statement stmt(db, "EXPLAIN QUERY PLAN " + sql);
  std::string plan;
  while (stmt.executeStep()) {
    absl::StrAppend(&plan, stmt.getColumn(3).getString(), "\n");
  }
  return plan;
}

// The CREATE TABLE statement of job_events.
std::string EventsTableSql(SQLite::Database& db) {
  return db
      .execAndGet("SELECT sql FROM sqlite_master WHERE name = 'job_events'")
      .getString();
}
class WebhookOutboxTest : public SqliteJobStoreTest {
 protected:
  std::unique_ptr<SqliteJobStore> OpenWithWebhooks() {
    SqliteJobStore::Options options;
    options.webhook_body = TestWebhookBody();
    return Open(options);
  }
};

TEST_F(SqliteJobStoreTest, MutateWritesOnlyChangedColumnsAndAppendsDenseSeq) {
  auto store = Open();
  NewJob in = MakeJob();
  in.job.payload = "big input";
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  {
    // Records every UPDATE that names payload or args_json in its SET list.
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec("CREATE TABLE touched (col TEXT)");
    db.exec(
        "CREATE TRIGGER t AFTER UPDATE OF payload, args_json ON jobs "
        "BEGIN INSERT INTO touched VALUES ('payload'); END");
  }
  clock_.Advance(absl::Seconds(3));
  absl::StatusOr<Job> after = MutateSync(
      *store, job->id,
      [](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
        JobChange c{current, {}};
        c.job.priority = 7;
        c.job.labels["tier"] = "gold";
        JobEvent a, b;
        a.type = EventType::kUpdated;
        a.paths = {"priority", "labels"};
        b.type = EventType::kLog;
        b.log_line = "bumped";
        c.events = {a, b};
        return c;
      });
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->version, 2);
  EXPECT_EQ(after->last_seq, 3);
  EXPECT_EQ(after->update_time, clock_.Now());
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("SELECT COUNT(*) FROM touched").getInt(), 0);
  }
  absl::StatusOr<Job> got = store->GetJobBlocking(job->id);
  EXPECT_EQ(got->priority, 7);
  EXPECT_EQ(got->payload, "big input");
  auto events = store->ReadJobEventsBlocking(job->id, 1, 10);
  ASSERT_TRUE(events.ok());
  ASSERT_THAT(*events, SizeIs(2));
  EXPECT_EQ((*events)[0].seq, 2);
  EXPECT_EQ((*events)[1].seq, 3);
  EXPECT_EQ((*events)[0].paths,
            (std::vector<std::string>{"priority", "labels"}));
  EXPECT_EQ((*events)[1].log_line, "bumped");
  EXPECT_EQ((*events)[1].priority, 7);
  EXPECT_EQ((*events)[1].labels.at("tier"), "gold");
  EXPECT_EQ((*events)[1].time, clock_.Now());
  auto by_label =
      store->ListJobsBlocking(ListJobsQuery{"labels.tier = gold", "", 0, ""});
  ASSERT_TRUE(by_label.ok());
  EXPECT_THAT(by_label->jobs, SizeIs(1));
}

TEST_F(SqliteJobStoreTest,
       ARequestThatFailsHalfwayIsUndoneAloneAndTheBatchCommits) {
  auto store = Open();
  RefuseInsertsOfKindB2();
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  WriterGate gate;
  gate.Block(*store, job->id);
  absl::StatusOr<std::vector<SubmitOutcome>> a, b, c;
  absl::Notification na, nb, nc;
  store->Submit({MakeJob("a")}, [&](auto r) {
    a = std::move(r);
    na.Notify();
  });
  // b's first job is written, its second refused: b fails after writing.
  // (b1 has a request_id: it is inserted alone, not in one multi-row INSERT
  // with b2, which would fail as a whole before writing anything.)
  store->Submit({WithRequestId(MakeJob("b1"), "b1"), MakeJob("b2")},
                [&](auto r) {
                  b = std::move(r);
                  nb.Notify();
                });
  store->Submit({MakeJob("c")}, [&](auto r) {
    c = std::move(r);
    nc.Notify();
  });
  const SqliteJobStore::Stats before = store->stats();
  gate.Release();
  na.WaitForNotification();
  nb.WaitForNotification();
  nc.WaitForNotification();
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(b.ok());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(store->GetJobBlocking((*a)[0].job.id).ok());
  EXPECT_TRUE(store->GetJobBlocking((*c)[0].job.id).ok());
  // b1 was undone with b2: only the gate's job, a and c exist.
  auto counts = store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok());
  ASSERT_THAT(*counts, SizeIs(1));
  EXPECT_EQ((*counts)[0].count, 3);
  auto events = store->ReadEventsBlocking(0, 100);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, SizeIs(3));
  const SqliteJobStore::Stats after = store->stats();
  EXPECT_EQ(after.rerun_batches - before.rerun_batches, 1);
  EXPECT_EQ(after.commits - before.commits, 2);  // the gate's, then a + c
}

TEST_F(SqliteJobStoreTest,
       FullDiskIsResourceExhaustedAndNothingIsAcknowledged) {
  SqliteJobStore::Options options;
  options.max_db_pages = 64;
  auto store = Open(options);
  int acknowledged = 0;
  absl::Status failure;
  for (int i = 0; i < 100 && failure.ok(); ++i) {
    NewJob in = MakeJob();
    in.job.payload = std::string(64 << 10, 'x');
    absl::StatusOr<Job> job = SubmitOne(*store, in);
    if (job.ok()) {
      ++acknowledged;
    } else {
      failure = job.status();
    }
  }
  ASSERT_FALSE(failure.ok()) << "the database never filled up";
  EXPECT_EQ(failure.code(), absl::StatusCode::kResourceExhausted) << failure;
  EXPECT_EQ(GetErrorReason(failure), "DISK_FULL");
  auto counts = store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok());
  int64_t stored = counts->empty() ? 0 : (*counts)[0].count;
  EXPECT_EQ(stored, acknowledged);
  // Small writes still fit and the store keeps working.
  EXPECT_TRUE(SubmitOne(*store, MakeJob()).ok());
}

TEST_F(SqliteJobStoreTest, LoneWriteIsAnsweredByTheIdleWriter) {
  auto store = Open(SqliteJobStore::Options());
  EXPECT_EQ(ThreadThatAnswersALoneSubmit(*store), "jw-writer");
}

TEST_F(SqliteJobStoreTest,
       WithoutCompleteOnIdleWriterTheCompletionThreadAnswers) {
  SqliteJobStore::Options options;
  options.complete_on_idle_writer = false;
  auto store = Open(options);
  EXPECT_EQ(ThreadThatAnswersALoneSubmit(*store), "jw-complete");
}

TEST_F(SqliteJobStoreTest, WriterCommitsAheadOfASlowDoneUpToTheHandOffBound) {
  SqliteJobStore::Options options;
  options.max_batch_jobs = 1;
  // The first commit may find the writer idle: keep every `done` on the
  // completion thread, which the slow one holds.
  options.complete_on_idle_writer = false;
  auto store = Open(options);
  OrderLog log;
  store->AddCommitListener(&log);
  absl::Notification first_entered, release_first;
  std::vector<std::string> answered_ids;
  absl::Mutex answered_mu;
  absl::Notification all_done;
  constexpr int kJobs = 20;
  for (int i = 0; i < kJobs; ++i) {
    store->Submit({MakeJob()},
                  [&, i](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                    ASSERT_TRUE(r.ok()) << r.status();
                    if (i == 0) {
                      first_entered.Notify();
                      release_first.WaitForNotification();
                    }
                    absl::MutexLock lock(&answered_mu);
                    answered_ids.push_back((*r)[0].job.id);
                    if (answered_ids.size() == kJobs) all_done.Notify();
                  });
  }
  first_entered.WaitForNotification();
  // The first `done` holds the completion thread; the writer still commits
  // the next requests: two wait for the completion thread, and one more is
  // committed and waits for room. Then it stops.
  constexpr int64_t kBound = 4;
  EXPECT_TRUE(AwaitStoredJobs(*store, kBound));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(StoredJobs(*store), kBound);
  // Only the first commit's events were announced so far.
  EXPECT_THAT(log.entries(), SizeIs(1));
  release_first.Notify();
  all_done.WaitForNotification();
  EXPECT_EQ(StoredJobs(*store), kJobs);
  // Answered in commit (= event_id) order.
  std::vector<std::string> events;
  for (const std::string& entry : log.entries()) {
    if (absl::StartsWith(entry, "event ")) events.push_back(entry.substr(6));
  }
  absl::MutexLock lock(&answered_mu);
  EXPECT_EQ(answered_ids, events);
}

TEST_F(SqliteJobStoreTest, BackgroundCheckpointsKeepTheWalSmall) {
  SqliteJobStore::Options options;
  options.checkpoint_pages = 8;
  auto store = Open(options);
  for (int i = 0; i < 50; ++i) {
    NewJob in = MakeJob();
    in.job.payload = std::string(8 << 10, 'p');
    ASSERT_TRUE(SubmitOne(*store, in).ok());
  }
  // Checkpoints run on their own thread; wait (bounded) for one to finish.
  for (int i = 0; i < 500 && store->stats().checkpoints == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT(store->stats().checkpoints, 0);
  auto page = store->ListJobsBlocking(ListJobsQuery{"", "", 1000, ""});
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(page->jobs, SizeIs(50));
}

// A lone caller's commits leave no pause in which the background
// checkpoint could catch up with the WAL; the writer finishes it, so the WAL
// starts over instead of growing with every commit (appending, which syncs
// slower than overwriting), and each checkpoint covers many commits.
TEST_F(SqliteJobStoreTest, SteadyCommitsStartTheWalOverInsteadOfGrowingIt) {
  SqliteJobStore::Options options;
  options.checkpoint_pages = 32;
  auto store = Open(options);
  constexpr int kJobs = 400;
  int64_t max_wal_bytes = 0;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
    struct stat st;
    if (stat((store->path() + "-wal").c_str(), &st) == 0)
      max_wal_bytes = std::max<int64_t>(max_wal_bytes, st.st_size);
  }
  const SqliteJobStore::Stats stats = store->stats();
  EXPECT_EQ(stats.commits, kJobs);
  // Every submit writes several pages (the job, its event, their indexes):
  // kJobs commits put about 4 * kJobs pages through the WAL, one checkpoint
  // per 32 of them. A WAL that never started over would hold them all, and
  // be checkpointed after nearly every commit.
  const int64_t page = 4096 + 24;  // a WAL frame: header and page
  EXPECT_LT(max_wal_bytes, kJobs * page) << "the WAL kept growing";
  EXPECT_GT(stats.writer_checkpoints, 0);
  EXPECT_LT(stats.checkpoints, kJobs / 2) << "a checkpoint after each commit";
  auto page_of_jobs = store->ListJobsBlocking(ListJobsQuery{"", "", 1000, ""});
  ASSERT_TRUE(page_of_jobs.ok());
  EXPECT_THAT(page_of_jobs->jobs, SizeIs(kJobs));
}

TEST_F(SqliteJobStoreTest, MemoryPathUsesAPrivateTemporaryFile) {
  SqliteJobStore::Options options;
  options.clock = &clock_;
  auto store = SqliteJobStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  std::string path = (*store)->path();
  EXPECT_TRUE(SubmitOne(**store, MakeJob()).ok());
  EXPECT_EQ(access(path.c_str(), F_OK), 0);
  (*store)->Shutdown();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST_F(SqliteJobStoreTest, SmallCommitsOfSubmitsAreAnsweredByTheBusyWriter) {
  constexpr int kWrites = 20;
  auto submit = [&](SqliteJobStore& store) {
    return [&store](std::function<void()> answered) {
      store.Submit({MakeJob()},
                   [answered](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                     EXPECT_TRUE(r.ok()) << r.status();
                     answered();
                   });
    };
  };
  SqliteJobStore::Options options;
  options.max_batch_jobs = 1;
  {
    auto store = Open(options);
    EXPECT_THAT(ThreadsThatAnswerQueuedWrites(*store, kWrites, submit(*store)),
                Each(Eq("jw-writer")));
  }
  // 0: only an idle writer answers; the completion thread takes every
  // commit that finds writes queued behind it.
  options.inline_completion_items = 0;
  auto store = Open(options);
  const std::vector<std::string> threads =
      ThreadsThatAnswerQueuedWrites(*store, kWrites, submit(*store));
  EXPECT_GE(std::count(threads.begin(), threads.end(), "jw-complete"),
            kWrites - 1);
}

TEST_F(SqliteJobStoreTest, OtherCommitsGoToTheCompletionThreadWhenQueued) {
  SqliteJobStore::Options options;
  options.max_batch_jobs = 1;
  auto store = Open(options);
  absl::StatusOr<Job> submitted = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string id = submitted->id;
  constexpr int kWrites = 20;
  // A Mutate's answer may dispatch or stream (a worker's report): it is
  // left to the completion thread unless the writer is idle.
  const std::vector<std::string> threads = ThreadsThatAnswerQueuedWrites(
      *store, kWrites, [&](std::function<void()> answered) {
        store->Mutate(id, BumpPriority(), [answered](absl::StatusOr<Job> r) {
          EXPECT_TRUE(r.ok()) << r.status();
          answered();
        });
      });
  EXPECT_GE(std::count(threads.begin(), threads.end(), "jw-complete"),
            kWrites - 1);
  // A large Submit (more jobs than inline_completion_items) likewise.
  std::vector<NewJob> many(SqliteJobStore::Options().inline_completion_items);
  for (NewJob& j : many) j = MakeJob();
  const std::vector<std::string> large = ThreadsThatAnswerQueuedWrites(
      *store, 3, [&](std::function<void()> answered) {
        store->Submit(many,
                      [answered](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                        EXPECT_TRUE(r.ok()) << r.status();
                        answered();
                      });
      });
  EXPECT_GE(std::count(large.begin(), large.end(), "jw-complete"), 2);
}

TEST_F(SqliteJobStoreTest, MutatesOfRecentlyWrittenJobsUseTheRowCache) {
  clock_.Advance(absl::Nanoseconds(1'234'567));  // not a whole microsecond
  auto store = Open();
  NewJob in = MakeJob();
  in.job.args_json = R"({"a":1})";
  in.job.labels = {{"tier", "gold"}};
  in.job.retry_policy =
      RetryPolicy{absl::Nanoseconds(2'000'500), absl::Minutes(1), 3.0, 0.5};
  in.job.webhook = WebhookSpec{"https://example.com/hook", {1, 3}};
  in.job.request_id = "rid";
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  const SqliteJobStore::Stats before = store->stats();
  ASSERT_TRUE(MutateSync(*store, job->id, BumpPriority()).ok());
  ExpectWriterSeesStoredRow(*store, job->id);
  ASSERT_TRUE(
      MutateSync(*store, job->id,
                 [this](const Job& c, absl::Time) -> absl::StatusOr<JobChange> {
                   JobChange change{c, {}};
                   change.job.state = JobState::kRunning;
                   change.job.attempt = 1;
                   change.job.worker_id = "w1";
                   change.job.progress = Progress{1, 2, "half", ""};
                   change.job.lease_expire_time =
                       clock_.Now() + absl::Nanoseconds(30'000'000'001);
                   change.job.labels.erase("tier");
                   return change;
                 })
          .ok());
  ExpectWriterSeesStoredRow(*store, job->id);
  const SqliteJobStore::Stats after = store->stats();
  EXPECT_GT(after.row_cache_hits, before.row_cache_hits);
  EXPECT_EQ(after.row_cache_misses, before.row_cache_misses);
  // A terminal job leaves the cache; it is read from SQLite again.
  ASSERT_TRUE(MutateSync(*store, job->id, MoveTo(JobState::kSucceeded)).ok());
  ExpectWriterSeesStoredRow(*store, job->id);
  EXPECT_GT(store->stats().row_cache_misses, after.row_cache_misses);
}

TEST_F(SqliteJobStoreTest, ARerunBatchDoesNotSeeRowsOfItsRolledBackFirstRun) {
  auto store = Open();
  RefuseInsertsOfKindB2();
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  WriterGate gate;
  gate.Block(*store, job->id);
  absl::StatusOr<Job> bumped;
  absl::Notification nm, nb;
  // Written (and cached) in the first run, which is then rolled back.
  store->Mutate(job->id, BumpPriority(), [&](absl::StatusOr<Job> r) {
    bumped = std::move(r);
    nm.Notify();
  });
  store->Submit({WithRequestId(MakeJob("b1"), "b1"), MakeJob("b2")},
                [&](auto) { nb.Notify(); });
  const SqliteJobStore::Stats before = store->stats();
  gate.Release();
  nm.WaitForNotification();
  nb.WaitForNotification();
  ASSERT_EQ(store->stats().rerun_batches - before.rerun_batches, 1);
  ASSERT_TRUE(bumped.ok()) << bumped.status();
  // Applied once: the second run started from the committed row.
  EXPECT_EQ(bumped->version, 2);
  EXPECT_EQ(bumped->last_seq, 2);
  EXPECT_EQ(bumped->priority, 1);
  ExpectWriterSeesStoredRow(*store, job->id);
  auto events = store->ReadJobEventsBlocking(job->id, 0, 10);
  ASSERT_TRUE(events.ok());
  EXPECT_THAT(*events, SizeIs(2));
  // b1, written and undone twice, is in neither the table nor the cache.
  auto counts = store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok());
  ASSERT_THAT(*counts, SizeIs(1));
  EXPECT_EQ((*counts)[0].count, 1);
}

TEST_F(SqliteJobStoreTest, AFailedTransactionLeavesNoWrittenRowInTheCache) {
  SqliteJobStore::Options options;
  options.max_db_pages = 64;
  auto store = Open(options);
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  WriterGate gate;
  gate.Block(*store, job->id);
  absl::Status bumped, big;
  absl::Notification nm, nb;
  store->Mutate(job->id, BumpPriority(), [&](absl::StatusOr<Job> r) {
    bumped = r.status();
    nm.Notify();
  });
  std::vector<NewJob> huge;
  for (int i = 0; i < 8; ++i) {
    huge.push_back(MakeJob());
    huge.back().job.payload = std::string(64 << 10, 'x');
  }
  store->Submit(std::move(huge), [&](auto r) {
    big = r.status();
    nb.Notify();
  });
  gate.Release();
  nm.WaitForNotification();
  nb.WaitForNotification();
  ASSERT_EQ(big.code(), absl::StatusCode::kResourceExhausted) << big;
  // Whether SQLite undid the statement or the whole transaction, the writer
  // sees exactly what is stored, and the bump counts once or not at all.
  ExpectWriterSeesStoredRow(*store, job->id);
  absl::StatusOr<Job> stored = store->GetJobBlocking(job->id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->version, bumped.ok() ? 2 : 1);
  ASSERT_TRUE(MutateSync(*store, job->id, BumpPriority()).ok());
  ExpectWriterSeesStoredRow(*store, job->id);
}

TEST_F(SqliteJobStoreTest, ADisabledRowCacheReadsEveryRow) {
  SqliteJobStore::Options options;
  options.row_cache_jobs = 0;
  auto store = Open(options);
  absl::StatusOr<Job> job = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(MutateSync(*store, job->id, BumpPriority()).ok());
  ExpectWriterSeesStoredRow(*store, job->id);
  EXPECT_EQ(store->stats().row_cache_hits, 0);
}

TEST_F(SqliteJobStoreTest, SchemaVersionOneGainsTheStopRequestColumns) {
  absl::StatusOr<Job> job;
  {
    auto store = Open();
    job = SubmitOne(*store, MakeJob());
    ASSERT_TRUE(job.ok());
  }
  {
    // Back to the first schema, as a jobwire before migration 2 left it.
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec("ALTER TABLE jobs DROP COLUMN stop_request");
    db.exec("ALTER TABLE jobs DROP COLUMN stop_reason");
    db.exec("PRAGMA user_version = 1");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<Job> read = store->GetJobBlocking(job->id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->stop_request, StopRequest::kNone);
  EXPECT_EQ(read->stop_reason, "");
}

TEST_F(SqliteJobStoreTest, StateFiltersSelectTheSameJobsAsWithoutTheIndexTerm) {
  auto store = Open();
  for (const char* queue : {"q1", "q2"}) {
    for (JobState state : kEveryState) {
      absl::StatusOr<Job> job = SubmitOne(*store, MakeJob("k", queue));
      ASSERT_TRUE(job.ok()) << job.status();
      if (state != JobState::kQueued) {
        ASSERT_TRUE(MutateSync(*store, job->id, MoveTo(state)).ok());
      }
    }
  }
  for (const char* filter : kStateFilters) {
    SCOPED_TRACE(filter);
    auto listed = store->ListJobsBlocking(ListJobsQuery{filter, "", 1000, ""});
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_EQ(Ids(listed->jobs), IdsByPlainFilter(dir_.db(), filter));
  }
  auto queued =
      store->ListJobsBlocking(ListJobsQuery{"state = QUEUED", "", 0, ""});
  EXPECT_THAT(queued->jobs, SizeIs(2));
  auto not_failed =
      store->ListJobsBlocking(ListJobsQuery{"NOT state = FAILED", "", 0, ""});
  EXPECT_THAT(not_failed->jobs, SizeIs(12));
}

TEST_F(SqliteJobStoreTest,
       RetentionRecoveryAndStateFiltersReadThePartialIndexes) {
  auto store = Open();
  ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
  const std::string path = dir_.db();
  EXPECT_THAT(QueryPlan(path, kOldFinishedJobsSql),
              HasSubstr("USING INDEX jobs_finished (finish_time>? AND "
                        "finish_time<?)"));
  EXPECT_THAT(QueryPlan(path, kFirstFinishedJobsSql),
              HasSubstr("USING INDEX jobs_finished (finish_time>?)"));
  EXPECT_THAT(QueryPlan(path, kCountFinishedJobsSql),
              HasSubstr("USING COVERING INDEX jobs_finished"));
  EXPECT_THAT(
      QueryPlan(path, absl::StrCat("SELECT ", JobColumnList(true),
                                   " FROM jobs WHERE ", kActiveJobsCondition)),
      HasSubstr("USING INDEX jobs_active"));
  const std::string counts = QueryPlan(path, kCountJobsByQueueAndStateSql);
  EXPECT_THAT(counts, HasSubstr("USING INDEX jobs_active"));
  EXPECT_THAT(counts, HasSubstr("USING COVERING INDEX jobs_finished_state"));
  const std::pair<const char*, const char*> filters[] = {
      {"state = QUEUED", "USING INDEX jobs_active"},
      {"queue = q1 AND state = RUNNING", "USING INDEX jobs_active"},
      {"state = QUEUED OR state = PAUSED", "USING INDEX jobs_active"},
      {"state = FAILED", "USING INDEX jobs_finished_state_id (state=?)"},
      // Two ranges merged: either index, then a sort.
      {"state = SUCCEEDED OR state = CANCELLED", "(state=?)"},
  };
  for (const auto& [filter, index] : filters) {
    SCOPED_TRACE(filter);
    absl::StatusOr<ListPlan> plan =
        PlanListJobs(ListJobsQuery{filter, "", 0, ""});
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_THAT(QueryPlan(path, plan->sql), HasSubstr(index));
  }
  // A later page of one terminal state is one index range, not a sort of
  // every job in that state.
  Job last;
  last.id = "01J0000000000000000000ZZZZ";
  absl::StatusOr<ListPlan> first =
      PlanListJobs(ListJobsQuery{"state = CANCELLED", "", 0, ""});
  ASSERT_TRUE(first.ok());
  absl::StatusOr<ListPlan> next = PlanListJobs(
      ListJobsQuery{"state = CANCELLED", "", 0, MakePageToken(*first, last)});
  ASSERT_TRUE(next.ok()) << next.status();
  const std::string page = QueryPlan(path, next->sql);
  EXPECT_THAT(page, HasSubstr("USING INDEX jobs_finished_state_id (state=? AND "
                              "id>?)"));
  EXPECT_THAT(page, Not(HasSubstr("TEMP B-TREE")));
}

// The writer's WAL writes are gathered into one per commit
// (wal_write_buffer.h) with synchronous FULL only.
TEST_F(SqliteJobStoreTest, TheWriterGathersWalWritesOnlyWhenCommitsSync) {
  for (auto sync : {SqliteJobStore::Synchronous::kFull,
                    SqliteJobStore::Synchronous::kNormal}) {
    const bool full = sync == SqliteJobStore::Synchronous::kFull;
    SCOPED_TRACE(full ? "full" : "normal");
    TempDbDir dir;
    SqliteJobStore::Options options;
    options.path = dir.db();
    options.synchronous = sync;
    auto store = Open(options);
    ASSERT_NE(store, nullptr);
    const WalWriteBufferStats before = GetWalWriteBufferStats();
    NewJob job = MakeJob();
    job.job.labels = {{"tenant", "acme"}};
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(SubmitOne(*store, job).ok());
    const WalWriteBufferStats after = GetWalWriteBufferStats();
    const int64_t gathered = after.writes_gathered - before.writes_gathered;
    const int64_t issued = after.writes_issued - before.writes_issued;
    // Each commit writes several frames, two writes each, as one.
    EXPECT_EQ(gathered >= 10 * 8, full) << gathered;
    EXPECT_EQ(issued, full ? 10 : 0);
    store->Shutdown();
    SQLite::Database db(dir.db(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("SELECT COUNT(*) FROM jobs").getInt(), 10);
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
  }
}

TEST_F(SqliteJobStoreTest, LabelFiltersProbeTheLabelsPrimaryKey) {
  auto store = Open();
  NewJob labelled = MakeJob();
  labelled.job.labels = {{"tenant", "acme"}, {"tier", "gold"}};
  absl::StatusOr<Job> acme = SubmitOne(*store, labelled);
  ASSERT_TRUE(acme.ok()) << acme.status();
  labelled.job.labels = {{"tenant", "other"}};
  ASSERT_TRUE(SubmitOne(*store, labelled).ok());
  ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
  const std::string path = dir_.db();
  for (const char* filter :
       {"labels.tenant = acme", "labels.tenant != other",
        "labels.tenant >= acme AND labels.tenant < b",
        "NOT labels.tier = silver AND labels.tenant = acme"}) {
    SCOPED_TRACE(filter);
    absl::StatusOr<ListPlan> plan =
        PlanListJobs(ListJobsQuery{filter, "", 0, ""});
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_THAT(QueryPlan(path, plan->sql),
                HasSubstr("USING PRIMARY KEY (job_id=? AND key=?)"));
    auto listed = store->ListJobsBlocking(ListJobsQuery{filter, "", 0, ""});
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_EQ(Ids(listed->jobs), std::vector<std::string>{acme->id});
  }
}

TEST_F(SqliteJobStoreTest, SchemaVersionFourLosesTheUnreadLabelIndex) {
  const std::string path = dir_.db();
  auto label_indexes = [&path] {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement stmt(db,
                           "SELECT COUNT(*) FROM sqlite_master WHERE type = "
                           "'index' AND name = 'job_labels_key_value'");
    stmt.executeStep();
    return stmt.getColumn(0).getInt();
  };
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    ASSERT_TRUE(MigrateBlocking(db, 4).ok());
    db.exec(
        "INSERT INTO jobs (id, queue, kind, max_attempts, state, create_time, "
        "update_time, version, last_seq, labels) VALUES "
        "('01JAAAAAAAAAAAAAAAAAAAAA01', 'q', 'k', 3, 2, 1000, 1000, 1, 0, "
        "'6:tenant4:acme')");
    db.exec(
        "INSERT INTO job_labels (job_id, key, value) VALUES "
        "('01JAAAAAAAAAAAAAAAAAAAAA01', 'tenant', 'acme')");
  }
  ASSERT_EQ(label_indexes(), 1);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(label_indexes(), 0);
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(),
              LatestSchemaVersion());
  }
  auto listed =
      store->ListJobsBlocking(ListJobsQuery{"labels.tenant = acme", "", 0, ""});
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(Ids(listed->jobs),
            std::vector<std::string>{"01JAAAAAAAAAAAAAAAAAAAAA01"});
}

TEST_F(SqliteJobStoreTest, AnOlderDatabaseWithJobsInEveryStateMigrates) {
  // Version 2: the schema before the partial indexes, with the indexes on
  // state; rows as an older jobwire wrote them, plus two that break the rule
  // "finish_time set exactly on terminal jobs" and are repaired.
  struct Row {
    std::string id;
    std::string queue;
    int state;
    bool finished;
  };
  std::vector<Row> rows;
  int n = 0;
  for (const char* queue : {"q1", "q2"}) {
    for (JobState state : kEveryState) {
      rows.push_back(
          Row{absl::StrCat("01JAAAAAAAAAAAAAAAAAAAAA", n / 10, n % 10), queue,
              static_cast<int>(state), IsTerminal(state)});
      ++n;
    }
  }
  rows.push_back(Row{"01JAAAAAAAAAAAAAAAAAAAAA90", "q1", 5, false});
  rows.push_back(Row{"01JAAAAAAAAAAAAAAAAAAAAA91", "q1", 3, true});
  std::vector<std::pair<std::string, std::vector<std::string>>> before;
  std::vector<std::string> counts_before;
  {
    SQLite::Database db(dir_.db(),
                        SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    ASSERT_TRUE(MigrateBlocking(db, 2).ok());
    ASSERT_EQ(db.execAndGet("PRAGMA user_version").getInt(), 2);
    SQLite::Statement insert(
        db,
        "INSERT INTO jobs (id, queue, kind, max_attempts, state, create_time, "
        "update_time, finish_time, version, last_seq) VALUES (?, ?, 'k', 3, ?, "
        "1000, 2000, ?, 1, 0)");
    for (const Row& r : rows) {
      insert.bind(1, r.id);
      insert.bind(2, r.queue);
      insert.bind(3, r.state);
      if (r.finished) {
        insert.bind(4, 1500);
      } else {
        insert.bind(4);
      }
      insert.exec();
      insert.reset();
    }
    for (const char* filter : kStateFilters) {
      before.emplace_back(filter, IdsByPlainFilter(dir_.db(), filter));
    }
    SQLite::Statement counts(db,
                             "SELECT queue, state, COUNT(*) FROM jobs GROUP "
                             "BY queue, state ORDER BY queue, state");
    while (counts.executeStep()) {
      counts_before.push_back(absl::StrCat(counts.getColumn(0).getString(), "/",
                                           counts.getColumn(1).getInt(), "=",
                                           counts.getColumn(2).getInt64()));
    }
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(),
              LatestSchemaVersion());
    std::set<std::string> indexes;
    SQLite::Statement names(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'index' AND "
        "tbl_name = 'jobs'");
    while (names.executeStep()) indexes.insert(names.getColumn(0).getString());
    EXPECT_EQ(indexes.count("jobs_active"), 1u);
    EXPECT_EQ(indexes.count("jobs_finished"), 1u);
    EXPECT_EQ(indexes.count("jobs_finished_state"), 1u);
    EXPECT_EQ(indexes.count("jobs_finished_state_id"), 1u);
    EXPECT_EQ(indexes.count("jobs_state_finish"), 0u);
    EXPECT_EQ(indexes.count("jobs_queue_state"), 0u);
    EXPECT_EQ(db.execAndGet("SELECT COUNT(*) FROM jobs WHERE (finish_time IS "
                            "NULL) = (state IN (5, 6, 7))")
                  .getInt(),
              0);
  }
  for (const auto& [filter, ids] : before) {
    SCOPED_TRACE(filter);
    auto listed = store->ListJobsBlocking(ListJobsQuery{filter, "", 1000, ""});
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_EQ(Ids(listed->jobs), ids);
  }
  absl::StatusOr<std::vector<QueueStateCount>> counts =
      store->CountJobsByQueueAndStateBlocking();
  ASSERT_TRUE(counts.ok()) << counts.status();
  std::vector<std::string> counts_after;
  for (const QueueStateCount& c : *counts) {
    counts_after.push_back(
        absl::StrCat(c.queue, "/", static_cast<int>(c.state), "=", c.count));
  }
  EXPECT_EQ(counts_after, counts_before);
  std::vector<std::string> active;
  ASSERT_TRUE(store
                  ->LoadActiveJobsBlocking(
                      [&](const Job& j) { active.push_back(j.id); })
                  .ok());
  std::sort(active.begin(), active.end());
  std::vector<std::string> want;
  for (const Row& r : rows) {
    if (r.state <= 4) want.push_back(r.id);
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(active, want);
  // The repaired terminal row counts for retention.
  SqliteJobStore::Options options;
  options.retention.max_terminal_jobs = 6;
  store.reset();
  store = Open(options);
  EXPECT_EQ(*store->RunRetentionOnceBlocking(), 1);
  EXPECT_TRUE(store->GetJobBlocking("01JAAAAAAAAAAAAAAAAAAAAA90").ok());
}

// A Submit's rows go in multi-row INSERTs whose NULL, integer and empty
// parameters are bound only when they change: every row, read back from a
// reopened database, holds its own values, wherever its neighbours in the
// statement (and the statement's last use) held others.
TEST_F(SqliteJobStoreTest, BatchRowsKeepTheirOwnValuesWhereNeighboursDiffer) {
  // Job i of round r: each field either shared with other rows or not,
  // NULL / '' / 0 or not, and flipped between the rounds.
  auto make = [](int r, int i) {
    NewJob j = MakeJob(absl::StrCat("k", r, "-", i), (i + r) % 2 ? "q" : "");
    j.job.priority = (i + r) % 3 == 0 ? 0 : i % 5 - 2;
    j.job.max_attempts = (i + r) % 4 == 0 ? 0 : 1 + i % 3;
    if ((i + r) % 5 == 1) {
      j.job.schedule_time = absl::FromUnixSeconds(2000000000 + i);
    }
    if ((i + r) % 2 == 0) j.job.args_json = absl::StrCat("{\"i\":", i, "}");
    if ((i + r) % 3 == 1) j.job.labels = {{"t", absl::StrCat(i)}};
    return j;
  };
  std::vector<std::vector<std::string>> ids(2);
  {
    auto store = Open();
    // 40 jobs: a 32-row INSERT and an 8-row one, then the same two again.
    for (int r = 0; r < 2; ++r) {
      std::vector<NewJob> jobs;
      for (int i = 0; i < 40; ++i) jobs.push_back(make(r, i));
      auto out = SubmitSync(*store, std::move(jobs));
      ASSERT_TRUE(out.ok()) << out.status();
      for (const SubmitOutcome& o : *out) ids[r].push_back(o.job.id);
    }
    store->Shutdown();
  }
  auto store = Open();
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 40; ++i) {
      const Job want = make(r, i).job;
      absl::StatusOr<Job> got = store->GetJobBlocking(ids[r][i]);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->kind, want.kind);
      EXPECT_EQ(got->queue, want.queue.empty() ? "default" : want.queue);
      EXPECT_EQ(got->priority, want.priority) << r << " " << i;
      EXPECT_EQ(got->max_attempts, want.max_attempts == 0 ? kDefaultMaxAttempts
                                                          : want.max_attempts)
          << r << " " << i;
      EXPECT_EQ(got->schedule_time, want.schedule_time) << r << " " << i;
      EXPECT_EQ(got->args_json, want.args_json) << r << " " << i;
      EXPECT_EQ(got->labels, want.labels) << r << " " << i;
      EXPECT_EQ(got->state, want.schedule_time > clock_.Now()
                                ? JobState::kScheduled
                                : JobState::kQueued);
    }
  }
}

TEST_F(SqliteJobStoreTest, AFailedRequestOrBatchNeverLeadsToAReusedEventId) {
  WriterGate gate;
  auto store = OpenHeldRefusingB2(gate);
  absl::Notification na, nb, nc;
  bool b_failed = false;
  store->Submit({MakeJob("a")}, [&](auto) { na.Notify(); });
  // Written with its events, refused halfway: the batch runs again.
  store->Submit({MakeJob("b1"), MakeJob("b2")}, [&](auto r) {
    b_failed = !r.ok();
    nb.Notify();
  });
  store->Submit({MakeJob("c")}, [&](auto) { nc.Notify(); });
  gate.Release();
  na.WaitForNotification();
  nb.WaitForNotification();
  nc.WaitForNotification();
  EXPECT_TRUE(b_failed);
  // A batch of nothing but the failing request.
  EXPECT_FALSE(SubmitSync(*store, {MakeJob("b1"), MakeJob("b2")}).ok());
  ASSERT_TRUE(SubmitOne(*store, MakeJob("d")).ok());
  std::vector<JobEvent> events = AllEvents(*store);
  ASSERT_THAT(events, SizeIs(4));  // the gate's job, a, c, d
  ExpectIncreasingIds(events);
  EXPECT_EQ(*store->LastEventIdBlocking(), events.back().event_id);
  store.reset();
  store = Open();
  ASSERT_TRUE(SubmitOne(*store, MakeJob("e")).ok());
  std::vector<JobEvent> after = AllEvents(*store);
  ASSERT_THAT(after, SizeIs(5));
  EXPECT_GT(after.back().event_id, events.back().event_id);
}

TEST_F(SqliteJobStoreTest,
       AnOlderDatabaseMigratesAndKeepsTheAutoincrementHighWater) {
  std::vector<JobEvent> before;
  {
    auto store = Open();
    ASSERT_TRUE(SubmitSync(*store, {MakeJob(), MakeJob()}).ok());
    before = AllEvents(*store);
  }
  ASSERT_THAT(before, SizeIs(2));
  const int64_t high_water = before.back().event_id + 50;
  {
    // Back to the schema before job_events lost AUTOINCREMENT, after a
    // retention that deleted the 50 newest events: sqlite_sequence is above
    // MAX(event_id) and nothing else remembers those ids.
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    std::string ddl = EventsTableSql(db);
    const std::string key = "event_id INTEGER PRIMARY KEY";
    ASSERT_NE(ddl.find(key), std::string::npos) << ddl;
    ASSERT_EQ(ddl.find("AUTOINCREMENT"), std::string::npos) << ddl;
    ddl.insert(ddl.find(key) + key.size(), " AUTOINCREMENT");
    db.exec("ALTER TABLE job_events RENAME TO job_events_now");
    db.exec(ddl);
    db.exec("INSERT INTO job_events SELECT * FROM job_events_now");
    db.exec("DROP TABLE job_events_now");
    db.exec(absl::StrCat("UPDATE sqlite_sequence SET seq = ", high_water,
                         " WHERE name = 'job_events'"));
    db.exec("DELETE FROM settings");
    // The stop_request columns came with migration 2.
    db.exec("ALTER TABLE jobs DROP COLUMN stop_request");
    db.exec("ALTER TABLE jobs DROP COLUMN stop_reason");
    db.exec("PRAGMA user_version = 1");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA user_version").getInt(),
              LatestSchemaVersion());
    std::string ddl = EventsTableSql(db);
    EXPECT_EQ(ddl.find("AUTOINCREMENT"), std::string::npos) << ddl;
    EXPECT_NE(ddl.find("UNIQUE (job_id, seq)"), std::string::npos) << ddl;
  }
  // The events kept their ids and contents.
  std::vector<JobEvent> migrated = AllEvents(*store);
  ASSERT_THAT(migrated, SizeIs(2));
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(migrated[i].event_id, before[i].event_id);
    EXPECT_EQ(migrated[i].job_id, before[i].job_id);
    EXPECT_EQ(migrated[i].seq, before[i].seq);
    EXPECT_EQ(migrated[i].reason, before[i].reason);
  }
  EXPECT_EQ(*store->LastEventIdBlocking(), high_water);
  absl::StatusOr<Job> next = SubmitOne(*store, MakeJob());
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(AllEvents(*store).back().event_id, high_water);
  // And again after a restart: the high-water mark is durable.
  const int64_t last = *store->LastEventIdBlocking();
  store.reset();
  store = Open();
  ASSERT_TRUE(SubmitOne(*store, MakeJob()).ok());
  EXPECT_GT(AllEvents(*store).back().event_id, last);
}

TEST_F(WebhookOutboxTest, AFailedOutboxWriteFailsTheEventWithIt) {
  auto store = OpenWithWebhooks();
  NewJob in = MakeJob();
  in.job.webhook = WebhookSpec{"https://example.com/hook", {}};
  absl::StatusOr<Job> job = SubmitOne(*store, in);
  ASSERT_TRUE(job.ok());
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec(
        "CREATE TRIGGER refuse_outbox BEFORE INSERT ON webhook_outbox "
        "BEGIN SELECT RAISE(ABORT, 'outbox refused'); END");
  }
  EXPECT_FALSE(MutateSync(*store, job->id, MoveTo(JobState::kFailed)).ok());
  // Neither the terminal event nor its delivery: one transaction.
  absl::StatusOr<Job> got = store->GetJobBlocking(job->id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kQueued);
  EXPECT_THAT(*store->ReadJobEventsBlocking(job->id, 0, 10), SizeIs(1));
  EXPECT_THAT(*store->PendingWebhooksBlocking(10), IsEmpty());
}

TEST_F(SqliteJobStoreTest,
       ABulkChunkFailingInSqliteWritesNothingAndIsForgotten) {
  auto store = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    NewJob job = MakeJob();
    job.job.priority = i == 3 ? 89 : 0;
    ids.push_back(SubmitOne(*store, job)->id);
  }
  {
    SQLite::Database db(dir_.db(), SQLite::OPEN_READWRITE);
    db.exec(
        "CREATE TRIGGER refuse_99 BEFORE UPDATE ON jobs WHEN NEW.priority = 99 "
        "BEGIN SELECT RAISE(ABORT, '99 refused'); END");
  }
  const int64_t last_event = *store->LastEventIdBlocking();
  absl::StatusOr<std::vector<BulkItemResult>> results =
      BulkWriteSync(*store, ids, QueuedOnlyPlusTen());
  EXPECT_FALSE(results.ok());
  for (const std::string& id : ids) {
    absl::StatusOr<Job> job = store->GetJobBlocking(id);
    ASSERT_TRUE(job.ok());
    EXPECT_EQ(job->version, 1);
    EXPECT_EQ(job->last_seq, 1);
    ExpectWriterSeesStoredRow(*store, id);
  }
  EXPECT_EQ(*store->LastEventIdBlocking(), last_event);
  // The writer goes on; event ids are not reused.
  ASSERT_TRUE(MutateSync(*store, ids[0], BumpPriority()).ok());
  EXPECT_GT(*store->LastEventIdBlocking(), last_event);
}

}  // namespace
}  // namespace jobwire::test
