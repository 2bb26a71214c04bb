// Watch across restarts: jobs are paused, resumed, cancelled and retried
// through the API, and new jobs submitted, while watchers disconnect at
// random and resume from their cursor (WatchJob after_seq, WatchJobs
// after_event_id). The real jobwired is stopped with SIGTERM and restarted
// twice mid-way. Afterwards each watcher's events, joined across all its
// streams, must be exactly the durable log of its jobs, in order, with no
// gap and no duplicate; the log is read from the database file after a clean
// stop.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Statement.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {
namespace {

using v1::Job;

constexpr int kWatchedJobs = 8;
constexpr int kJobsWatchers = 2;
// The states each watched job is driven through, in order.
const Job::State kSteps[] = {
    Job::STATE_PAUSED, Job::STATE_QUEUED,    Job::STATE_PAUSED,
    Job::STATE_QUEUED, Job::STATE_CANCELLED, Job::STATE_QUEUED,
    Job::STATE_PAUSED, Job::STATE_QUEUED,    Job::STATE_CANCELLED};
constexpr int kNumSteps = sizeof(kSteps) / sizeof(kSteps[0]);
// The server is stopped and restarted once the mutations reach these steps.
const int kRestartAt[] = {3, 6};

// The test's own time budgets grow under ThreadSanitizer (Budget(), and
// CTest's TIMEOUT, tests/CMakeLists.txt).
std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + Budget(d));
}

// An event as a watcher received it, or as the log holds it.
struct Seen {
  int64_t event_id;
  std::string job_id;
  int64_t seq;
  bool operator==(const Seen& o) const {
    return event_id == o.event_id && job_id == o.job_id && seq == o.seq;
  }
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  return os << "{" << s.event_id << " " << s.job_id << " #" << s.seq << "}";
}

// Codes a watch may end with across a restart or a disconnect of ours.
bool ExpectedEnd(const grpc::Status& s) {
  return s.ok() || s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::CANCELLED ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// What a watcher saw apart from events; any of these fails the test.
struct Anomalies {
  std::atomic<int> snapshots{0};
  std::atomic<int> resets{0};
  std::atomic<int> bad_status{0};
  // Not anomalies: how often streams were cut, by us or by a restart.
  std::atomic<int> our_disconnects{0};
  std::atomic<int> unavailable_ends{0};
  std::atomic<int> draining_messages{0};
  absl::Mutex mu;
  std::vector<std::string> messages ABSL_GUARDED_BY(mu);
  void Add(const std::string& m) {
    absl::MutexLock lock(&mu);
    if (messages.size() < 20) messages.push_back(m);
  }
  // Counts how a stream of `who` ended.
  void Ended(const grpc::Status& status, const std::string& who) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE)
      ++unavailable_ends;
    if (!ExpectedEnd(status)) {
      ++bad_status;
      Add(absl::StrCat(who, ": ", status.error_code(), " ",
                       status.error_message()));
    }
  }
};

// Watches one job from seq 0, cancelling its own stream at random and
// resuming with after_seq, until it has seen `*final_seq` (set at the end).
void WatchOneJob(std::shared_ptr<grpc::Channel> channel, std::string job_id,
                 uint32_t seed, const std::atomic<int64_t>* final_seq,
                 absl::Time deadline, std::vector<Seen>* seen,
                 Anomalies* anomalies) {
  auto stub = v1::JobService::NewStub(channel);
  std::mt19937 rng(seed);
  int64_t cursor = 0;
  while (absl::Now() < deadline) {
    const int64_t want = final_seq->load();
    if (want > 0 && cursor >= want) return;
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(In(absl::Seconds(5)));
    v1::WatchJobRequest request;
    request.set_id(job_id);
    request.set_after_seq(cursor);
    auto reader = stub->WatchJob(&context, request);
    v1::WatchJobResponse message;
    bool events_this_stream = false;
    while (reader->Read(&message)) {
      if (message.has_reset()) ++anomalies->resets;
      if (message.has_draining()) ++anomalies->draining_messages;
      if (!message.has_event()) continue;
      const v1::JobEvent& e = message.event();
      if (e.has_snapshot()) {
        ++anomalies->snapshots;
        continue;
      }
      seen->push_back({e.event_id(), e.job_id(), e.seq()});
      cursor = e.seq();
      events_this_stream = true;
      if (rng() % 6 == 0) {
        ++anomalies->our_disconnects;
        context.TryCancel();
        break;
      }
    }
    grpc::Status status = reader->Finish();
    anomalies->Ended(status, "WatchJob " + job_id);
    // Ended OK at a terminal state with nothing new (the job is retried
    // later): poll again shortly.
    if (status.ok() && !events_this_stream)
      absl::SleepFor(absl::Milliseconds(20));
  }
  anomalies->Add(
      absl::StrCat("WatchJob ", job_id, " timed out at seq ", cursor));
}

// Watches queue "watch" from event 0 with WatchJobs, disconnecting at random
// and resuming with after_event_id, until it has seen the sentinel job.
void WatchQueue(std::shared_ptr<grpc::Channel> channel, uint32_t seed,
                absl::Mutex* sentinel_mu, const std::string* sentinel_id,
                absl::Time deadline, std::vector<Seen>* seen,
                Anomalies* anomalies) {
  auto stub = v1::JobService::NewStub(channel);
  std::mt19937 rng(seed);
  int64_t cursor = 0;
  std::set<std::string> jobs_seen;
  auto done = [&] {
    absl::MutexLock lock(sentinel_mu);
    return !sentinel_id->empty() && jobs_seen.count(*sentinel_id) > 0;
  };
  while (absl::Now() < deadline) {
    if (done()) return;
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    // WatchJobs never ends by itself: a deadline makes the loop look at the
    // sentinel again.
    context.set_deadline(In(absl::Seconds(2)));
    v1::WatchJobsRequest request;
    request.set_filter("queue = \"watch\"");
    request.set_after_event_id(cursor);
    auto reader = stub->WatchJobs(&context, request);
    v1::WatchJobsResponse message;
    while (reader->Read(&message)) {
      if (message.has_reset()) ++anomalies->resets;
      if (message.has_draining()) ++anomalies->draining_messages;
      if (!message.has_event()) continue;
      const v1::JobEvent& e = message.event();
      seen->push_back({e.event_id(), e.job_id(), e.seq()});
      jobs_seen.insert(e.job_id());
      cursor = e.event_id();
      if (rng() % 10 == 0 || done()) {
        ++anomalies->our_disconnects;
        context.TryCancel();
        break;
      }
    }
    grpc::Status status = reader->Finish();
    anomalies->Ended(status, "WatchJobs");
  }
  anomalies->Add(absl::StrCat("WatchJobs timed out at event ", cursor));
}

class WatchRestartTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("jobwire-watch-restart"); }
  void TearDown() override {
    server_.reset();
    if (!HasFailure()) RemoveDir(dir_);
  }

  void StartServer() {
    server_ = std::make_unique<JobwiredProcess>(
        dir_, std::vector<std::string>{"--listen", "unix:var/j.sock", "--db",
                                       "var/j.db", "--shutdown-grace", "1s"});
    ASSERT_EQ(server_->WaitListening(1).size(), 1u) << server_->log();
  }
  void StopServer() {
    server_->Signal(SIGTERM);
    ASSERT_TRUE(server_->Exited(Budget(absl::Seconds(20)))) << server_->log();
    ASSERT_EQ(server_->exit_code(), 0) << server_->log();
  }

  // Submits (retrying with the same request_id) and returns the job id.
  std::string Submit(v1::JobService::Stub* stub, const std::string& queue,
                     const std::string& rid) {
    v1::SubmitJobRequest request;
    request.set_request_id(rid);
    request.mutable_job()->set_queue(queue);
    request.mutable_job()->set_kind("watch-test");
    const absl::Time deadline = absl::Now() + Budget(absl::Seconds(30));
    while (absl::Now() < deadline) {
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      context.set_deadline(In(absl::Seconds(5)));
      v1::SubmitJobResponse response;
      if (stub->SubmitJob(&context, request, &response).ok())
        return response.job().id();
    }
    ADD_FAILURE() << "submit " << rid << " kept failing";
    return "";
  }

  // Drives job `id` to `target` with the one call that gets it there from
  // its current state; any error (a restart) is answered by looking again.
  void DriveTo(v1::JobService::Stub* stub, const std::string& id,
               Job::State target) {
    const absl::Time deadline = absl::Now() + Budget(absl::Seconds(30));
    while (absl::Now() < deadline) {
      Job job;
      {
        grpc::ClientContext context;
        context.set_wait_for_ready(true);
        context.set_deadline(In(absl::Seconds(5)));
        v1::GetJobRequest get;
        get.set_id(id);
        if (!stub->GetJob(&context, get, &job).ok()) continue;
      }
      if (job.state() == target) return;
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      context.set_deadline(In(absl::Seconds(5)));
      Job out;
      grpc::Status status;
      if (target == Job::STATE_PAUSED) {
        v1::PauseJobRequest r;
        r.set_id(id);
        status = stub->PauseJob(&context, r, &out);
      } else if (target == Job::STATE_CANCELLED) {
        v1::CancelJobRequest r;
        r.set_id(id);
        r.set_reason("watch_restart_test");
        status = stub->CancelJob(&context, r, &out);
      } else if (job.state() == Job::STATE_PAUSED) {
        v1::ResumeJobRequest r;
        r.set_id(id);
        status = stub->ResumeJob(&context, r, &out);
      } else {
        v1::RetryJobRequest r;
        r.set_id(id);
        status = stub->RetryJob(&context, r, &out);
      }
      (void)status;  // the next GetJob tells whether it took
    }
    ADD_FAILURE() << "job " << id << " never reached state " << target;
  }

  std::string dir_;
  std::unique_ptr<JobwiredProcess> server_;
};

TEST_F(WatchRestartTest, ResumingWatchersSeeEveryEventOnceInOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string target = "unix:" + dir_ + "/var/j.sock";
  auto channel = ReconnectingChannel(target);
  auto stub = v1::JobService::NewStub(channel);

  std::vector<std::string> ids;
  for (int i = 0; i < kWatchedJobs; ++i)
    ids.push_back(Submit(stub.get(), "watch", absl::StrCat("watched-", i)));
  ASSERT_FALSE(HasFailure());

  const absl::Time deadline = absl::Now() + Budget(absl::Seconds(50));
  Anomalies anomalies;
  std::vector<std::atomic<int64_t>> final_seq(kWatchedJobs);
  std::vector<std::vector<Seen>> job_seen(kWatchedJobs);
  std::vector<std::vector<Seen>> queue_seen(kJobsWatchers);
  absl::Mutex sentinel_mu;
  std::string sentinel_id;
  std::vector<std::thread> watchers;
  for (int i = 0; i < kWatchedJobs; ++i) {
    final_seq[i].store(0);
    // Each watcher on its own channel, as separate clients would be.
    watchers.emplace_back(WatchOneJob, ReconnectingChannel(target), ids[i],
                          1000 + i, &final_seq[i], deadline, &job_seen[i],
                          &anomalies);
  }
  for (int i = 0; i < kJobsWatchers; ++i) {
    watchers.emplace_back(WatchQueue, ReconnectingChannel(target), 2000 + i,
                          &sentinel_mu, &sentinel_id, deadline, &queue_seen[i],
                          &anomalies);
  }

  // Mutations on their own thread (with a few new jobs in the watched queue
  // and in another one along the way), while this thread stops the server
  // with SIGTERM and restarts it twice: calls in flight then fail and are
  // retried after looking at the job again.
  std::atomic<int> step_reached{0};
  std::thread mutator([&] {
    auto mutator_stub = v1::JobService::NewStub(ReconnectingChannel(target));
    for (int step = 0; step < kNumSteps; ++step) {
      step_reached.store(step);
      for (int i = 0; i < kWatchedJobs; ++i)
        DriveTo(mutator_stub.get(), ids[i], kSteps[step]);
      Submit(mutator_stub.get(), "watch", absl::StrCat("extra-", step));
      Submit(mutator_stub.get(), "other", absl::StrCat("other-", step));
    }
    step_reached.store(kNumSteps);
  });
  for (int restart_at : kRestartAt) {
    const absl::Time wait_until = absl::Now() + Budget(absl::Seconds(30));
    while (step_reached.load() < restart_at && absl::Now() < wait_until)
      absl::SleepFor(absl::Milliseconds(2));
    StopServer();
    StartServer();
    if (HasFatalFailure()) break;
  }
  mutator.join();
  ASSERT_FALSE(HasFatalFailure());
  for (int i = 0; i < kWatchedJobs; ++i) {
    grpc::ClientContext context;
    context.set_deadline(In(absl::Seconds(10)));
    v1::GetJobRequest get;
    get.set_id(ids[i]);
    Job job;
    ASSERT_TRUE(stub->GetJob(&context, get, &job).ok());
    final_seq[i].store(job.last_seq());
  }
  {
    std::string id = Submit(stub.get(), "watch", "sentinel");
    absl::MutexLock lock(&sentinel_mu);
    sentinel_id = id;
  }
  for (std::thread& t : watchers) t.join();
  ASSERT_NO_FATAL_FAILURE(StopServer());

  {
    absl::MutexLock lock(&anomalies.mu);
    for (const std::string& m : anomalies.messages) ADD_FAILURE() << m;
  }
  EXPECT_EQ(anomalies.snapshots.load(), 0);
  EXPECT_EQ(anomalies.resets.load(), 0);
  EXPECT_EQ(anomalies.bad_status.load(), 0);
  std::cout << "watchers cut their own stream " << anomalies.our_disconnects
            << " times; streams ended UNAVAILABLE "
            << anomalies.unavailable_ends << " times, got draining "
            << anomalies.draining_messages << " times\n";
  // The run really resumed: after our cuts and after the restarts.
  EXPECT_GT(anomalies.our_disconnects.load(), 0);
  EXPECT_GT(
      anomalies.unavailable_ends.load() + anomalies.draining_messages.load(),
      0);

  // The durable log.
  SQLite::Database db(dir_ + "/var/j.db", SQLite::OPEN_READONLY);
  std::map<std::string, std::vector<Seen>> log_by_job;
  std::vector<Seen> queue_log;
  SQLite::Statement query(
      db,
      "SELECT e.event_id, e.job_id, e.seq, j.queue FROM job_events e "
      "JOIN jobs j ON j.id = e.job_id ORDER BY e.event_id");
  while (query.executeStep()) {
    Seen s{query.getColumn(0).getInt64(), query.getColumn(1).getString(),
           query.getColumn(2).getInt64()};
    log_by_job[s.job_id].push_back(s);
    if (query.getColumn(3).getString() == "watch") queue_log.push_back(s);
  }

  for (int i = 0; i < kWatchedJobs; ++i) {
    const std::vector<Seen>& log = log_by_job[ids[i]];
    // Submitted, then 9 transitions at least.
    EXPECT_GE(log.size(), static_cast<size_t>(kNumSteps + 1));
    EXPECT_EQ(job_seen[i], log) << "WatchJob of " << ids[i];
    std::cout << "WatchJob " << ids[i] << ": " << job_seen[i].size()
              << " events\n";
  }
  for (int i = 0; i < kJobsWatchers; ++i) {
    // The watcher stops at the sentinel's event, the log's last in "watch".
    EXPECT_EQ(queue_seen[i], queue_log) << "WatchJobs watcher " << i;
    std::cout << "WatchJobs watcher " << i << ": " << queue_seen[i].size()
              << " events\n";
  }
}

}  // namespace
}  // namespace jobwire::test
