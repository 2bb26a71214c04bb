#include "server/storage/group_commit.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"

namespace jobwire::test {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// A database in memory with transactions and one level of savepoints: a map
// of keys to values. Every Put appends an event (job_id = key). It is the
// backend GroupCommit drives in these tests; knobs make its operations fail.
class FakeTransaction final : public GroupCommit::Transaction {
 public:
  // A request of these tests: `apply` runs against the fake, `finish` gets
  // the answer.
  struct Request final : GroupCommit::Request {
    std::function<absl::Status(FakeTransaction&)> apply;
    std::function<void(absl::Status)> finish;
    void Finish(absl::Status status) override { finish(std::move(status)); }
  };

  // Writes `value` at `key` in the open transaction.
  void Put(const std::string& key, int value) {
    pending_[key] = value;
    ++request_writes_;
    JobEvent e;
    e.job_id = key;
    e.event_id = next_event_id_++;
    events_.push_back(std::move(e));
  }

  // GroupCommit::Transaction.
  absl::Status Begin(absl::Time) override {
    absl::MutexLock lock(&mu_);
    log_.push_back("begin");
    if (!fail_begin_.ok()) return fail_begin_;
    pending_ = committed_;
    events_.clear();
    open_ = true;
    return absl::OkStatus();
  }
  absl::Status Apply(GroupCommit::Request& request) override {
    request_writes_ = 0;
    request_events_ = events_.size();
    {
      absl::MutexLock lock(&mu_);
      ++applies_;
    }
    return static_cast<Request&>(request).apply(*this);
  }
  Residue Failed() override {
    events_.resize(request_events_);
    if (lose_transaction_on_failure_) {
      open_ = false;
      return Residue::kLost;
    }
    return request_writes_ > 0 ? Residue::kPartial : Residue::kNone;
  }
  absl::Status Savepoint() override {
    savepoint_ = pending_;
    absl::MutexLock lock(&mu_);
    ++savepoints_;
    return absl::OkStatus();
  }
  absl::Status ReleaseSavepoint() override { return absl::OkStatus(); }
  absl::Status RollbackToSavepoint() override {
    pending_ = savepoint_;
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    absl::MutexLock lock(&mu_);
    log_.push_back("commit");
    if (!fail_commit_.ok()) return fail_commit_;
    committed_ = pending_;
    open_ = false;
    return absl::OkStatus();
  }
  void Committed(std::vector<JobEvent>* events) override {
    events->swap(events_);
    events_.clear();
  }
  void Rollback() override {
    absl::MutexLock lock(&mu_);
    log_.push_back("rollback");
    open_ = false;
    events_.clear();
  }

  std::map<std::string, int> committed() {
    absl::MutexLock lock(&mu_);
    return committed_;
  }
  std::vector<std::string> log() {
    absl::MutexLock lock(&mu_);
    return log_;
  }
  int savepoints() {
    absl::MutexLock lock(&mu_);
    return savepoints_;
  }
  void set_fail_commit(absl::Status s) {
    absl::MutexLock lock(&mu_);
    fail_commit_ = std::move(s);
  }
  void set_fail_begin(absl::Status s) {
    absl::MutexLock lock(&mu_);
    fail_begin_ = std::move(s);
  }
  // Set before the request that fails is enqueued (read on the writer).
  bool lose_transaction_on_failure_ = false;

 private:
  absl::Mutex mu_;
  std::map<std::string, int> committed_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
  int savepoints_ ABSL_GUARDED_BY(mu_) = 0;
  int applies_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_commit_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_begin_ ABSL_GUARDED_BY(mu_);
  // Writer thread only.
  bool open_ = false;
  std::map<std::string, int> pending_;
  std::map<std::string, int> savepoint_;
  std::vector<JobEvent> events_;
  int64_t next_event_id_ = 1;
  int request_writes_ = 0;
  size_t request_events_ = 0;
};

// Answers of the requests, in the order their Finish ran.
class Answers {
 public:
  void Add(const std::string& name, absl::Status status) {
    absl::MutexLock lock(&mu_);
    order_.push_back(name);
    status_[name] = std::move(status);
  }
  // Waits until `n` answers came.
  void WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertHeld();
      return order_.size() >= n;
    };
    mu_.Await(absl::Condition(&enough));
  }
  absl::Status status(const std::string& name) {
    absl::MutexLock lock(&mu_);
    return status_.at(name);
  }
  std::vector<std::string> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> status_ ABSL_GUARDED_BY(mu_);
};

// Records each commit's events (their keys) and the answers between them in
// one log, to check what runs before what.
class RecordingListener final : public CommitListener {
 public:
  RecordingListener(std::string name, absl::Mutex* mu,
                    std::vector<std::string>* log)
      : name_(std::move(name)), mu_(mu), log_(log) {}
  void OnCommit(const std::vector<JobEvent>& events) override {
    std::string keys;
    for (const JobEvent& e : events) keys += e.job_id;
    absl::MutexLock lock(mu_);
    log_->push_back(name_ + ":" + keys);
  }

 private:
  const std::string name_;
  absl::Mutex* const mu_;
  std::vector<std::string>* const log_;
};

class SampleObserver final : public CommitObserver {
 public:
  void OnCommitSample(const CommitSample& sample) override {
    absl::MutexLock lock(&mu_);
    requests_.push_back(sample.requests);
    events_.push_back(sample.events);
    queue_waits_.push_back(sample.queue_wait);
  }
  std::vector<int64_t> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::vector<int64_t> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  std::vector<absl::Duration> queue_waits() {
    absl::MutexLock lock(&mu_);
    return queue_waits_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> events_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> queue_waits_ ABSL_GUARDED_BY(mu_);
};

// Parameter: GroupCommit::Options::complete_on_idle_writer, so every test
// runs with commits completed by the completion thread only, and with the
// writer completing some itself.
class GroupCommitTest : public ::testing::TestWithParam<bool> {
 protected:
  GroupCommitTest() { options_.complete_on_idle_writer = GetParam(); }

  void Open() {
    engine_ = std::make_unique<GroupCommit>(options_, &txn_);
    engine_->SetCommitObserver(&observer_);
  }

  // A request that writes `key` = `value` and answers into answers_ under
  // `name` (the key).
  std::unique_ptr<FakeTransaction::Request> Write(const std::string& key,
                                                  int value = 1) {
    auto r = std::make_unique<FakeTransaction::Request>();
    r->apply = [key, value](FakeTransaction& t) {
      t.Put(key, value);
      return absl::OkStatus();
    };
    r->finish = [this, key](absl::Status s) { answers_.Add(key, s); };
    return r;
  }

  // A bulk request (100 jobs) that writes `key`.
  std::unique_ptr<FakeTransaction::Request> Bulk(const std::string& key) {
    auto r = Write(key);
    r->bulk = true;
    r->jobs = 100;
    return r;
  }

  // A request that fails with `error`, after writing `key` when `halfway`.
  std::unique_ptr<FakeTransaction::Request> Failing(const std::string& key,
                                                    absl::Status error,
                                                    bool halfway) {
    auto r = std::make_unique<FakeTransaction::Request>();
    r->apply = [key, error, halfway](FakeTransaction& t) {
      if (halfway) t.Put(key, 1);
      return error;
    };
    r->finish = [this, key](absl::Status s) { answers_.Add(key, s); };
    return r;
  }

  // Enqueues a request ("gate") that holds the writer inside its transaction
  // until ReleaseGate(), and waits until the writer runs it: what is queued
  // meanwhile goes in the next batch, together.
  void HoldWriter() {
    auto r = std::make_unique<FakeTransaction::Request>();
    r->apply = [this](FakeTransaction& t) {
      t.Put("g", 1);
      entered_.Notify();
      release_.WaitForNotification();
      return absl::OkStatus();
    };
    r->finish = [this](absl::Status s) { answers_.Add("g", s); };
    engine_->Enqueue(std::move(r));
    entered_.WaitForNotification();
  }
  void ReleaseGate() { release_.Notify(); }

  // Runs one batch of three requests, "a", "b" failing with `error` (after
  // writing when `halfway`) and "c", behind the gate, then shuts down.
  void RunBatchWithMiddleRequestFailing(absl::Status error, bool halfway) {
    engine_->Start();
    HoldWriter();
    engine_->Enqueue(Write("a"));
    engine_->Enqueue(Failing("b", std::move(error), halfway));
    engine_->Enqueue(Write("c"));
    ReleaseGate();
    answers_.WaitFor(4);
    engine_->Shutdown();
  }

  GroupCommit::Options options_;
  FakeTransaction txn_;
  SampleObserver observer_;
  Answers answers_;
  absl::Notification entered_;
  absl::Notification release_;
  std::unique_ptr<GroupCommit> engine_;
};

TEST_P(GroupCommitTest, RequestsQueuedTogetherCommitInOneTransaction) {
  Open();
  engine_->Start();
  HoldWriter();
  for (const char* key : {"a", "b", "c", "d"}) engine_->Enqueue(Write(key));
  ReleaseGate();
  answers_.WaitFor(5);
  engine_->Shutdown();

  EXPECT_THAT(observer_.requests(), ElementsAre(1, 4));
  EXPECT_THAT(txn_.log(), ElementsAre("begin", "commit", "begin", "commit"));
  for (const char* key : {"g", "a", "b", "c", "d"})
    EXPECT_TRUE(answers_.status(key).ok()) << key;
  const WriteStats stats = engine_->write_stats();
  EXPECT_EQ(stats.commits, 2);
  EXPECT_EQ(stats.requests, 5);
  EXPECT_EQ(stats.write_requests, 5);
}

TEST_P(GroupCommitTest, BatchCapsSplitTheQueueIntoSeveralTransactions) {
  options_.max_batch_jobs = 2;
  Open();
  engine_->Start();
  HoldWriter();
  for (const char* key : {"a", "b", "c", "d", "e"})
    engine_->Enqueue(Write(key));
  ReleaseGate();
  answers_.WaitFor(6);
  engine_->Shutdown();

  EXPECT_THAT(observer_.requests(), ElementsAre(1, 2, 2, 1));
  // Answered in queue order.
  EXPECT_THAT(answers_.order(), ElementsAre("g", "a", "b", "c", "d", "e"));
}

TEST_P(GroupCommitTest, RequestThatFailsBeforeWritingFailsAloneWithoutRerun) {
  Open();
  RunBatchWithMiddleRequestFailing(absl::NotFoundError("no b"), false);

  EXPECT_TRUE(answers_.status("a").ok());
  EXPECT_EQ(answers_.status("b"), absl::NotFoundError("no b"));
  EXPECT_TRUE(answers_.status("c").ok());
  EXPECT_THAT(txn_.committed(),
              ElementsAre(Pair("a", 1), Pair("c", 1), Pair("g", 1)));
  EXPECT_EQ(engine_->rerun_batches(), 0);
  EXPECT_EQ(txn_.savepoints(), 0);
  EXPECT_EQ(engine_->write_stats().write_requests, 3);
}

TEST_P(GroupCommitTest, RequestThatFailsHalfwayIsUndoneAloneBySavepointRerun) {
  absl::Mutex mu;
  std::vector<std::string> log;
  RecordingListener listener("events", &mu, &log);
  Open();
  engine_->AddCommitListener(&listener);
  RunBatchWithMiddleRequestFailing(absl::InternalError("disk hiccup"), true);

  EXPECT_TRUE(answers_.status("a").ok());
  EXPECT_EQ(answers_.status("b"), absl::InternalError("disk hiccup"));
  EXPECT_TRUE(answers_.status("c").ok());
  // b's write is gone, a's and c's are committed, in one transaction.
  EXPECT_THAT(txn_.committed(),
              ElementsAre(Pair("a", 1), Pair("c", 1), Pair("g", 1)));
  EXPECT_EQ(engine_->rerun_batches(), 1);
  EXPECT_EQ(txn_.savepoints(), 3);  // one per request of the rerun
  EXPECT_THAT(txn_.log(), ElementsAre("begin", "commit", "begin", "rollback",
                                      "begin", "commit"));
  absl::MutexLock lock(&mu);
  EXPECT_THAT(log, ElementsAre("events:g", "events:ac"));
}

TEST_P(GroupCommitTest, LostTransactionFailsEveryRequestOfTheBatch) {
  Open();
  txn_.lose_transaction_on_failure_ = true;  // before the writer starts
  RunBatchWithMiddleRequestFailing(absl::ResourceExhaustedError("disk full"),
                                   true);

  for (const char* key : {"a", "b", "c"})
    EXPECT_EQ(answers_.status(key), absl::ResourceExhaustedError("disk full"))
        << key;
  EXPECT_THAT(txn_.committed(), ElementsAre(Pair("g", 1)));
  EXPECT_EQ(engine_->write_stats().commits, 1);
  EXPECT_EQ(engine_->write_stats().write_requests, 1);
}

TEST_P(GroupCommitTest, FailedCommitAnswersEveryRequestWithItsError) {
  Open();
  engine_->Start();
  HoldWriter();
  // The gate's own commit fails too: it is in the open transaction.
  txn_.set_fail_commit(absl::UnavailableError("database is locked"));
  engine_->Enqueue(Write("a"));
  ReleaseGate();
  answers_.WaitFor(2);
  engine_->Shutdown();

  EXPECT_EQ(answers_.status("g"), absl::UnavailableError("database is locked"));
  EXPECT_EQ(answers_.status("a"), absl::UnavailableError("database is locked"));
  EXPECT_TRUE(txn_.committed().empty());
  EXPECT_EQ(engine_->write_stats().commits, 0);
  EXPECT_EQ(engine_->write_stats().write_requests, 0);
  EXPECT_THAT(txn_.log(), ElementsAre("begin", "commit", "rollback", "begin",
                                      "commit", "rollback"));
}

TEST_P(GroupCommitTest, FailedBeginAnswersTheBatchAndTheNextOneCommits) {
  Open();
  txn_.set_fail_begin(absl::UnavailableError("database is locked"));
  engine_->Enqueue(Write("a"));
  engine_->Start();
  answers_.WaitFor(1);
  txn_.set_fail_begin(absl::OkStatus());
  engine_->Enqueue(Write("b"));
  answers_.WaitFor(2);
  engine_->Shutdown();

  EXPECT_EQ(answers_.status("a"), absl::UnavailableError("database is locked"));
  EXPECT_TRUE(answers_.status("b").ok());
  EXPECT_THAT(txn_.committed(), ElementsAre(Pair("b", 1)));
}

TEST_P(GroupCommitTest, ListenersRunBeforeTheCommitsDonesAndAfterEarlierOnes) {
  absl::Mutex mu;
  std::vector<std::string> log;
  RecordingListener first("first", &mu, &log);
  RecordingListener second("second", &mu, &log);
  Open();
  engine_->AddCommitListener(&first);
  engine_->AddCommitListener(&second);
  engine_->Start();
  auto logged = [&](const std::string& key) {
    auto r = Write(key);
    r->finish = [&mu, &log, this, key](absl::Status s) {
      {
        absl::MutexLock lock(&mu);
        log.push_back("done:" + key);
      }
      answers_.Add(key, s);
    };
    return r;
  };
  engine_->Enqueue(logged("x"));
  answers_.WaitFor(1);
  HoldWriter();
  engine_->Enqueue(logged("a"));
  engine_->Enqueue(logged("b"));
  ReleaseGate();
  answers_.WaitFor(4);
  engine_->Shutdown();

  absl::MutexLock lock(&mu);
  EXPECT_THAT(log, ElementsAre("first:x", "second:x", "done:x",  //
                               "first:g", "second:g",            //
                               "first:ab", "second:ab", "done:a", "done:b"));
}

TEST_P(GroupCommitTest, DoneMayQueueAWriteThatCommitsInALaterTransaction) {
  Open();
  engine_->Start();
  auto first = Write("a");
  first->finish = [this](absl::Status s) {
    answers_.Add("a", s);
    engine_->Enqueue(Write("b"));  // from the completion's thread
  };
  engine_->Enqueue(std::move(first));
  answers_.WaitFor(2);
  engine_->Shutdown();

  EXPECT_TRUE(answers_.status("b").ok());
  EXPECT_THAT(observer_.requests(), ElementsAre(1, 1));
  EXPECT_THAT(txn_.committed(), ElementsAre(Pair("a", 1), Pair("b", 1)));
}

TEST_P(GroupCommitTest, ShutdownCommitsWhatIsQueuedAndAnswersEachRequestOnce) {
  Open();
  engine_->Start();
  HoldWriter();
  constexpr int kRequests = 300;
  std::vector<std::atomic<int>> answered(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    auto r = Write("k" + std::to_string(i));
    r->finish = [&answered, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      answered[i].fetch_add(1);
    };
    engine_->Enqueue(std::move(r));
  }
  std::thread shutdown([this] { engine_->Shutdown(); });
  ReleaseGate();
  shutdown.join();

  // Every Finish ran before Shutdown returned, exactly once.
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(answered[i].load(), 1) << i;
  EXPECT_EQ(txn_.committed().size(), kRequests + 1u);
  engine_->Shutdown();  // idempotent
}

TEST_P(GroupCommitTest, WriteQueuedByADoneDuringShutdownIsAnsweredUnavailable) {
  Open();
  engine_->Start();
  HoldWriter();
  absl::Status late;
  bool late_answered_inline = false;
  auto r = Write("a");
  r->finish = [&, this](absl::Status s) {
    answers_.Add("a", s);
    bool inline_answer = false;
    auto next = Write("b");
    next->finish = [&late, &inline_answer](absl::Status s2) {
      late = s2;
      inline_answer = true;
    };
    engine_->Enqueue(std::move(next));
    late_answered_inline = inline_answer;  // answered inside Enqueue
  };
  engine_->Enqueue(std::move(r));
  std::thread shutdown([this] { engine_->Shutdown(); });
  // Once Shutdown has started, a write is refused inside Enqueue.
  while (true) {
    // A probe that was queued is answered later: it owns its flag.
    auto refused = std::make_shared<std::atomic<bool>>(false);
    auto probe = std::make_unique<FakeTransaction::Request>();
    probe->apply = [](FakeTransaction&) { return absl::OkStatus(); };
    probe->finish = [refused](absl::Status s) {
      *refused = absl::IsUnavailable(s);
    };
    engine_->Enqueue(std::move(probe));
    if (*refused) break;
    std::this_thread::yield();
  }
  ReleaseGate();
  shutdown.join();

  EXPECT_TRUE(answers_.status("a").ok());
  EXPECT_TRUE(late_answered_inline);
  EXPECT_TRUE(absl::IsUnavailable(late)) << late;
  EXPECT_THAT(txn_.committed(), ElementsAre(Pair("a", 1), Pair("g", 1)));
}

TEST_P(GroupCommitTest, EnqueueAfterShutdownIsAnsweredUnavailableOnTheCaller) {
  Open();
  engine_->Start();
  engine_->Shutdown();
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id answered_on;
  absl::Status status;
  auto r = std::make_unique<FakeTransaction::Request>();
  r->apply = [](FakeTransaction&) { return absl::OkStatus(); };
  r->finish = [&](absl::Status s) {
    status = s;
    answered_on = std::this_thread::get_id();
  };
  engine_->Enqueue(std::move(r));

  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_EQ(answered_on, caller);
  EXPECT_TRUE(txn_.log().empty());
}

TEST_P(GroupCommitTest, ShutdownWithoutStartAnswersWhatWasQueued) {
  Open();
  engine_->Enqueue(Write("a"));
  engine_->Shutdown();

  EXPECT_TRUE(absl::IsUnavailable(answers_.status("a")));
  EXPECT_TRUE(txn_.log().empty());
}

TEST_P(GroupCommitTest, BulkRequestsCommitAfterSmallOnesQueuedBehindThem) {
  Open();
  engine_->Start();
  HoldWriter();
  engine_->Enqueue(Bulk("x"));
  engine_->Enqueue(Bulk("y"));
  engine_->Enqueue(Write("a"));
  engine_->Enqueue(Write("b"));
  ReleaseGate();
  answers_.WaitFor(5);
  engine_->Shutdown();

  // The gate; the small ones queued behind the chunks; then the chunks,
  // never with a small one.
  EXPECT_THAT(observer_.requests(), ElementsAre(1, 2, 2));
  EXPECT_THAT(answers_.order(), ElementsAre("g", "a", "b", "x", "y"));
}

TEST_P(GroupCommitTest, BulkRequestsQueuedTogetherShareCommitsUpToMaxBulkJobs) {
  options_.max_bulk_jobs = 250;
  Open();
  engine_->Start();
  HoldWriter();
  for (const char* key : {"x", "y", "z", "w", "v"}) engine_->Enqueue(Bulk(key));
  ReleaseGate();
  answers_.WaitFor(6);
  engine_->Shutdown();

  // 100 jobs each: two per commit, and the last alone.
  EXPECT_THAT(observer_.requests(), ElementsAre(1, 2, 2, 1));
  EXPECT_THAT(observer_.events(), ElementsAre(1, 2, 2, 1));
  EXPECT_THAT(answers_.order(), ElementsAre("g", "x", "y", "z", "w", "v"));
  EXPECT_EQ(engine_->write_stats().requests, 6);
  EXPECT_EQ(engine_->write_stats().write_requests, 6);
}

TEST_P(GroupCommitTest, ZeroMaxBulkJobsCommitsEachBulkRequestAlone) {
  options_.max_bulk_jobs = 0;
  Open();
  engine_->Start();
  HoldWriter();
  for (const char* key : {"x", "y", "z"}) engine_->Enqueue(Bulk(key));
  ReleaseGate();
  answers_.WaitFor(4);
  engine_->Shutdown();

  EXPECT_THAT(observer_.requests(), ElementsAre(1, 1, 1, 1));
}

TEST_P(GroupCommitTest, ASmallRequestArrivingDuringABulkCommitEndsItThere) {
  Open();
  engine_->Start();
  HoldWriter();
  // "x" is applied when "a" arrives: "y", queued before "a", waits for the
  // commit after "a".
  auto x = Bulk("x");
  x->apply = [this](FakeTransaction& t) {
    t.Put("x", 1);
    engine_->Enqueue(Write("a"));
    return absl::OkStatus();
  };
  engine_->Enqueue(std::move(x));
  engine_->Enqueue(Bulk("y"));
  ReleaseGate();
  answers_.WaitFor(4);
  engine_->Shutdown();

  EXPECT_THAT(observer_.requests(), ElementsAre(1, 1, 1, 1));
  EXPECT_THAT(answers_.order(), ElementsAre("g", "x", "a", "y"));
}

TEST_P(GroupCommitTest, AFailingBulkRequestInASharedCommitFailsAlone) {
  Open();
  engine_->Start();
  HoldWriter();
  engine_->Enqueue(Bulk("x"));
  auto y = Failing("y", absl::InternalError("halfway"), /*halfway=*/true);
  y->bulk = true;
  y->jobs = 100;
  engine_->Enqueue(std::move(y));
  engine_->Enqueue(Bulk("z"));
  ReleaseGate();
  answers_.WaitFor(4);
  engine_->Shutdown();

  // "y" failed after writing, in the first run, before "z" was taken: the
  // rerun (with savepoints) of "x" and "y" undoes "y" alone; "z" follows.
  EXPECT_THAT(observer_.requests(), ElementsAre(1, 2, 1));
  EXPECT_THAT(answers_.order(), ElementsAre("g", "x", "y", "z"));
  EXPECT_TRUE(answers_.status("x").ok());
  EXPECT_TRUE(absl::IsInternal(answers_.status("y")));
  EXPECT_TRUE(answers_.status("z").ok());
  EXPECT_EQ(engine_->rerun_batches(), 1);
  EXPECT_THAT(txn_.committed(),
              ElementsAre(Pair("g", 1), Pair("x", 1), Pair("z", 1)));
}

TEST_P(GroupCommitTest, QueueWaitRunsFromEnqueueToTheTransaction) {
  FakeClock clock;
  options_.clock = &clock;
  Open();
  engine_->Start();
  HoldWriter();  // queued and taken at the same fake time: no wait
  engine_->Enqueue(Write("a"));
  clock.Advance(absl::Seconds(2));
  engine_->Enqueue(Write("b"));
  clock.Advance(absl::Seconds(1));
  ReleaseGate();
  answers_.WaitFor(3);
  engine_->Shutdown();

  // Summed over requests (3 s + 1 s); per commit, the longest.
  const WriteStats stats = engine_->write_stats();
  EXPECT_EQ(stats.queue_wait, absl::Seconds(4));
  EXPECT_EQ(stats.requests, 3);
  EXPECT_THAT(observer_.queue_waits(),
              ElementsAre(absl::ZeroDuration(), absl::Seconds(3)));
  EXPECT_THAT(observer_.events(), ElementsAre(1, 2));
}

INSTANTIATE_TEST_SUITE_P(CompletionThreadOnlyOrWriterToo, GroupCommitTest,
                         ::testing::Bool());

}  // namespace
}  // namespace jobwire::test
