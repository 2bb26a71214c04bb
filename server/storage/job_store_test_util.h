// Helpers of the JobStore tests (job_store_contract_test.cc, which runs on
// every backend, and the backends' own tests). Test-only.
#ifndef JOBWIRE_SERVER_STORAGE_JOB_STORE_TEST_UTIL_H_
#define JOBWIRE_SERVER_STORAGE_JOB_STORE_TEST_UTIL_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/job_store.h"
#include "server/storage/sqlite_rows.h"

namespace jobwire::test {
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

inline NewJob MakeJob(std::string kind = "resize",
                      std::string queue = "default") {
  NewJob j;
  j.job.kind = std::move(kind);
  j.job.queue = std::move(queue);
  return j;
}

inline NewJob WithRequestId(NewJob job, std::string request_id) {
  job.job.request_id = std::move(request_id);
  return job;
}

inline absl::StatusOr<std::vector<SubmitOutcome>> SubmitSync(
    JobStore& store, std::vector<NewJob> jobs) {
  absl::Notification n;
  absl::StatusOr<std::vector<SubmitOutcome>> out;
  store.Submit(std::move(jobs),
               [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                 out = std::move(r);
                 n.Notify();
               });
  n.WaitForNotification();
  return out;
}

// Submits `jobs` and returns them as stored: none, and a test failure, when
// the submit fails.
inline std::vector<Job> SubmitJobs(JobStore& store, std::vector<NewJob> jobs) {
  absl::StatusOr<std::vector<SubmitOutcome>> r =
      SubmitSync(store, std::move(jobs));
  EXPECT_TRUE(r.ok()) << r.status();
  std::vector<Job> out;
  if (r.ok()) {
    for (SubmitOutcome& o : *r) out.push_back(o.job);
  }
  return out;
}

inline absl::StatusOr<Job> SubmitOne(JobStore& store, NewJob job) {
  auto r = SubmitSync(store, {std::move(job)});
  if (!r.ok()) return r.status();
  return (*r)[0].job;
}

// Starts a write with a JobCallback and waits for its answer.
inline absl::StatusOr<Job> AwaitJob(
    const std::function<void(JobCallback)>& start) {
  absl::Notification n;
  absl::StatusOr<Job> out;
  start([&](absl::StatusOr<Job> r) {
    out = std::move(r);
    n.Notify();
  });
  n.WaitForNotification();
  return out;
}

inline absl::StatusOr<Job> MutateSync(JobStore& store, const std::string& id,
                                      JobMutation m) {
  return AwaitJob(
      [&](JobCallback done) { store.Mutate(id, std::move(m), done); });
}

// A mutation that holds the writer thread until released: lets a test queue
// several writes so that they land in one batch.
class WriterGate {
 public:
  void Block(JobStore& store, const std::string& job_id) {
    store.Mutate(
        job_id,
        [this](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
          entered_.Notify();
          release_.WaitForNotification();
          return JobChange{current, {}};
        },
        [this](absl::StatusOr<Job>) { done_.Notify(); });
    entered_.WaitForNotification();
  }
  void Release() {
    release_.Notify();
    done_.WaitForNotification();
  }

 private:
  absl::Notification entered_, release_, done_;
};

// Moves a job to `to` as the core transitions do: finish_time set exactly on
// terminal states.
inline JobMutation MoveTo(JobState to) {
  return [to](const Job& current, absl::Time now) -> absl::StatusOr<JobChange> {
    JobChange change{current, {}};
    change.job.state = to;
    change.job.finish_time = IsTerminal(to) ? now : absl::InfinitePast();
    JobEvent e;
    e.type = EventType::kStateChanged;
    e.from = current.state;
    e.to = to;
    change.events.push_back(e);
    return change;
  };
}

// Records listener calls and `done`s in one log, in the order they ran.
class OrderLog : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override {
    absl::MutexLock lock(&mu_);
    for (const JobEvent& e : events) {
      entries_.push_back(absl::StrCat("event ", e.job_id));
      event_ids_.push_back(e.event_id);
    }
  }
  void Done(const std::string& job_id) {
    absl::MutexLock lock(&mu_);
    entries_.push_back(absl::StrCat("done ", job_id));
  }
  std::vector<std::string> entries() {
    absl::MutexLock lock(&mu_);
    return entries_;
  }
  std::vector<int64_t> event_ids() {
    absl::MutexLock lock(&mu_);
    return event_ids_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> event_ids_ ABSL_GUARDED_BY(mu_);
};

inline absl::StatusOr<Job> DeleteSync(
    JobStore& store, const std::string& id,
    std::function<absl::Status(const Job&)> check) {
  return AwaitJob(
      [&](JobCallback done) { store.Delete(id, std::move(check), done); });
}

// "queue/STATE=n" per count, in order: the store's in-memory counts, or
// what SQL counts on a connection of its own.
inline std::vector<std::string> Describe(
    const std::vector<QueueStateCount>& counts) {
  std::vector<std::string> out;
  for (const QueueStateCount& c : counts)
    out.push_back(
        absl::StrCat(c.queue, "/", JobStateName(c.state), "=", c.count));
  return out;
}

// The row a mutation of `id` gets as `current` (the writer's view), written
// back unchanged.
inline absl::StatusOr<Job> RowSeenByWriter(JobStore& store,
                                           const std::string& id) {
  Job seen;
  absl::StatusOr<Job> r = MutateSync(
      store, id,
      [&seen](const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
        seen = current;
        return JobChange{current, {}};
      });
  if (!r.ok()) return r.status();
  return seen;
}

// Applies `edit` to the job and records one `updated` event naming `path`.
inline JobMutation UpdateWith(std::string path,
                              std::function<void(Job&)> edit) {
  return [path = std::move(path), edit = std::move(edit)](
             const Job& current, absl::Time) -> absl::StatusOr<JobChange> {
    JobChange change{current, {}};
    edit(change.job);
    JobEvent e;
    e.type = EventType::kUpdated;
    e.paths = {path};
    change.events.push_back(std::move(e));
    return change;
  };
}

inline JobMutation BumpPriority() {
  return UpdateWith("priority", [](Job& job) { ++job.priority; });
}

// A running job's pending stop request, as worker_transitions::RequestStop
// writes it (the store test does not depend on core/worker_transitions).
inline JobMutation RunWithStopRequest(StopRequest request, std::string reason) {
  return UpdateWith("cancel_requested",
                    [request, reason = std::move(reason)](Job& job) {
                      job.state = JobState::kRunning;
                      job.attempt = 1;
                      job.stop_request = request;
                      job.stop_reason = reason;
                    });
}

inline std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> ids;
  for (const Job& j : jobs) ids.push_back(j.id);
  return ids;
}

// Every event of the log in event_id order.
inline std::vector<JobEvent> AllEvents(JobStore& store) {
  absl::StatusOr<std::vector<JobEvent>> events =
      store.ReadEventsBlocking(0, 10000);
  EXPECT_TRUE(events.ok()) << events.status();
  return events.ok() ? *std::move(events) : std::vector<JobEvent>{};
}

inline void ExpectIncreasingIds(const std::vector<JobEvent>& events) {
  for (size_t i = 1; i < events.size(); ++i)
    EXPECT_LT(events[i - 1].event_id, events[i].event_id) << i;
}

class RecordingListener final : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override {
    absl::MutexLock lock(&mu_);
    for (const JobEvent& e : events) {
      if (e.webhook_queued) queued_.push_back(e.event_id);
    }
  }
  std::vector<int64_t> queued() {
    absl::MutexLock lock(&mu_);
    return queued_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> queued_ ABSL_GUARDED_BY(mu_);
};

// BulkWrite: set-based chunks of bulk updates.

inline absl::StatusOr<std::vector<BulkItemResult>> BulkWriteSync(
    JobStore& store, std::vector<std::string> ids, BulkWriteSpec spec) {
  absl::Notification n;
  absl::StatusOr<std::vector<BulkItemResult>> out;
  store.BulkWrite(std::move(ids),
                  std::make_shared<const BulkWriteSpec>(std::move(spec)),
                  [&](absl::StatusOr<std::vector<BulkItemResult>> r) {
                    out = std::move(r);
                    n.Notify();
                  });
  n.WaitForNotification();
  return out;
}

class EventRecorder final : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override {
    absl::MutexLock lock(&mu_);
    for (const JobEvent& e : events) seen_.push_back(e);
  }
  std::vector<JobEvent> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  absl::Mutex mu_;
  std::vector<JobEvent> seen_ ABSL_GUARDED_BY(mu_);
};

// Refused unless QUEUED (as BulkUpdateJobs' expected_states); adds 10 to the
// priority (so jobs of different priorities change differently), and to a job
// of kind "lab" a label too (the row-by-row path).
inline BulkWriteSpec QueuedOnlyPlusTen() {
  BulkWriteSpec spec;
  spec.mutation = [](const Job& current,
                     absl::Time) -> absl::StatusOr<JobChange> {
    if (current.state != JobState::kQueued)
      return absl::FailedPreconditionError("not queued");
    JobChange change{current, {}};
    change.job.priority = current.priority + 10;
    if (current.kind == "lab") change.job.labels["x"] = "y";
    JobEvent e;
    e.type = EventType::kUpdated;
    e.paths = {"priority"};
    change.events.push_back(std::move(e));
    return change;
  };
  return spec;
}

// Expects the writer's view of job `id` to equal the stored row.
inline void ExpectWriterSeesStoredRow(JobStore& store, const std::string& id) {
  absl::StatusOr<Job> seen = RowSeenByWriter(store, id);
  absl::StatusOr<Job> stored = store.GetJobBlocking(id);
  ASSERT_TRUE(seen.ok()) << seen.status();
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(JobColumnsEqual(*seen, *stored))
      << "version " << seen->version << " vs " << stored->version << ", state "
      << static_cast<int>(seen->state) << " vs "
      << static_cast<int>(stored->state);
}
// The body of a webhook delivery in these tests: names the job, the event
// and the job's state.
inline std::function<std::string(const Job&, const JobEvent&)>
TestWebhookBody() {
  return [](const Job& job, const JobEvent& e) {
    return absl::StrCat("{\"job\":\"", job.id, "\",\"event\":", e.event_id,
                        ",\"state\":\"", JobStateName(job.state), "\"}");
  };
}

inline absl::Status RecordAttemptSync(JobStore& store, WebhookAttempt a) {
  absl::Notification n;
  absl::Status out;
  store.RecordWebhookAttempt(std::move(a), [&](absl::Status s) {
    out = std::move(s);
    n.Notify();
  });
  n.WaitForNotification();
  return out;
}

inline absl::StatusOr<WebhookOutboxRow> RedeliverSync(JobStore& store,
                                                      int64_t id) {
  absl::Notification n;
  absl::StatusOr<WebhookOutboxRow> out;
  store.RedeliverWebhook(id, [&](absl::StatusOr<WebhookOutboxRow> r) {
    out = std::move(r);
    n.Notify();
  });
  n.WaitForNotification();
  return out;
}

}  // namespace jobwire::test

#endif  // JOBWIRE_SERVER_STORAGE_JOB_STORE_TEST_UTIL_H_
