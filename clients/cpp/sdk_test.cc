// The C++ SDK against a real jobwired (tests/jobwired_process.h) on a Unix
// socket in a temp directory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "clients/cpp/client.h"
#include "clients/cpp/progress.h"
#include "clients/cpp/version.h"
#include "clients/cpp/worker.h"
#include "tests/jobwired_process.h"

namespace jobwire::sdk {
namespace {

using test::JobwiredProcess;

class SdkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeTempDir("jobwire-sdk");
    addr_ = "unix:" + dir_ + "/j.sock";
    StartServer();
  }
  void TearDown() override {
    server_.reset();
    test::RemoveDir(dir_);
  }
  void StartServer() {
    std::vector<std::string> args = {
        "--listen",      addr_, "--db", "j.db", "--shutdown-grace=2s",
        "--lease-ttl=3s"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    server_ = std::make_unique<JobwiredProcess>(dir_, args);
    ASSERT_EQ(server_->WaitListening(1).size(), 1u) << server_->log();
  }
  void StopServer() {
    server_->Signal(SIGTERM);
    ASSERT_TRUE(server_->Exited(absl::Seconds(20))) << server_->log();
  }

  static v1::Job JobOf(const std::string& kind) {
    v1::Job job;
    job.set_kind(kind);
    return job;
  }

  std::string dir_;
  std::string addr_;
  std::vector<std::string> extra_;
  std::unique_ptr<JobwiredProcess> server_;
};

TEST_F(SdkTest, SubmitsGetsListsAndCancels) {
  Client client(addr_);
  v1::Job job = JobOf("email");
  job.set_queue("mail");
  (*job.mutable_labels())["team"] = "growth";
  absl::StatusOr<v1::SubmitJobResponse> first = client.SubmitJob(job, "req-1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created());
  absl::StatusOr<v1::SubmitJobResponse> again = client.SubmitJob(job, "req-1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created());
  EXPECT_EQ(again->job().id(), first->job().id());
  absl::StatusOr<v1::Job> got = client.GetJob(first->job().id());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->labels().at("team"), "growth");

  for (int i = 0; i < 4; ++i) ASSERT_TRUE(client.SubmitJob(job).ok());
  int listed = 0;
  ASSERT_TRUE(client
                  .ListJobs(
                      "queue = \"mail\"",
                      [&](const v1::Job&) {
                        ++listed;
                        return true;
                      },
                      /*page_size=*/2)
                  .ok());
  EXPECT_EQ(listed, 5);
  absl::StatusOr<v1::Job> cancelled = client.CancelJob(first->job().id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::Job::STATE_CANCELLED);
}

TEST_F(SdkTest, BadInputCarriesTheFieldViolations) {
  Client client(addr_);
  v1::Job bad;
  bad.set_queue("Bad Queue");
  absl::StatusOr<v1::SubmitJobResponse> r = client.SubmitJob(bad);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  std::set<std::string> fields;
  for (const FieldViolation& v : Violations(r.status())) fields.insert(v.field);
  EXPECT_TRUE(fields.count("job.kind") && fields.count("job.queue"))
      << r.status();
  EXPECT_EQ(client.GetJob("01M9715MHTFBGAGMKPGD3MGD0W").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      client.ListJobs("state = = RUNNING", [](const v1::Job&) { return true; })
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(SdkTest, WorkerRunsAJobAndTheWatchResumesAcrossARestart) {
  Client client(addr_);
  absl::StatusOr<v1::SubmitJobResponse> r = client.SubmitJob(JobOf("steps"));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string id = r->job().id();

  std::vector<v1::JobEvent> seen;
  absl::Status watched;
  std::thread watcher([&] {
    watched = client.WatchJob(id, std::nullopt, [&](const v1::JobEvent& e) {
      seen.push_back(e);
      return true;
    });
  });

  absl::Notification at_step_3;
  absl::Notification release;
  Worker worker(&client, {.grace = absl::Seconds(5)});
  worker.Handle("steps", [&](Task& task) -> absl::StatusOr<v1::JobResult> {
    for (int i = 1; i <= 6; ++i) {
      task.Progress(i, 6);
      if (i == 3) {
        if (!at_step_3.HasBeenNotified()) at_step_3.Notify();
        release.WaitForNotification();
      }
    }
    v1::JobResult result;
    result.set_payload("done");
    return result;
  });
  absl::Status ran;
  std::thread runner([&] { ran = worker.Run(); });
  at_step_3.WaitForNotification();
  // Mid-job the server stops; at the end of its grace the job goes back to
  // its queue. After the restart the worker runs it again and the watch
  // resumes from its cursor.
  StopServer();
  absl::SleepFor(absl::Seconds(1));  // down for a while
  StartServer();
  release.Notify();
  watcher.join();
  worker.Stop();
  runner.join();
  ASSERT_TRUE(watched.ok()) << watched;
  EXPECT_TRUE(ran.ok()) << ran;

  std::vector<v1::Job::State> states;
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].seq(), seen[0].seq() + static_cast<int64_t>(i));
    if (seen[i].has_state_changed())
      states.push_back(seen[i].state_changed().to());
  }
  EXPECT_TRUE(seen.front().has_snapshot());
  EXPECT_EQ(states, (std::vector<v1::Job::State>{
                        v1::Job::STATE_RUNNING, v1::Job::STATE_QUEUED,
                        v1::Job::STATE_RUNNING, v1::Job::STATE_SUCCEEDED}));
  absl::StatusOr<v1::Job> job = client.GetJob(id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->result().payload(), "done");
}

// A watch closes its stream on `draining`: the server's stop is not held
// for its grace period (an hour here), and the watch resumes after it.
TEST_F(SdkTest, AWatchDoesNotHoldAStopAndResumesAfterIt) {
  extra_ = {"--shutdown-grace=1h"};
  server_.reset();
  StartServer();
  Client client(addr_);
  absl::StatusOr<v1::SubmitJobResponse> r = client.SubmitJob(JobOf("idle"));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string id = r->job().id();
  absl::Notification snapshot;
  std::vector<v1::JobEvent> seen;
  absl::Status watched;
  std::thread watcher([&] {
    watched = client.WatchJob(id, std::nullopt, [&](const v1::JobEvent& e) {
      seen.push_back(e);
      if (!snapshot.HasBeenNotified()) snapshot.Notify();
      return true;
    });
  });
  snapshot.WaitForNotification();
  StopServer();  // within 20 s, or it fails
  StartServer();
  ASSERT_TRUE(client.CancelJob(id).ok());
  watcher.join();
  ASSERT_TRUE(watched.ok()) << watched;
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().has_state_changed());
  EXPECT_EQ(seen.back().state_changed().to(), v1::Job::STATE_CANCELLED);
}

TEST_F(SdkTest, WorkerFailsRetriesAndStopsOnCancel) {
  Client client(addr_);
  Worker worker(&client, {.slots = 2, .grace = absl::Seconds(5)});
  worker.Handle("bad", [](Task&) -> absl::StatusOr<v1::JobResult> {
    return PermanentFailure("input is wrong");
  });
  worker.Handle("flaky", [](Task& task) -> absl::StatusOr<v1::JobResult> {
    if (task.attempt() == 1) return absl::InternalError("transient");
    return v1::JobResult();
  });
  absl::Notification long_started;
  std::optional<StopReason> long_reason;
  worker.Handle("long", [&](Task& task) -> absl::StatusOr<v1::JobResult> {
    long_started.Notify();
    task.WaitForStop(absl::Seconds(20));
    long_reason = task.stop_reason();
    return v1::JobResult();
  });
  absl::Status ran;
  std::thread runner([&] { ran = worker.Run(); });

  const std::string bad = client.SubmitJob(JobOf("bad"))->job().id();
  const std::string flaky = client.SubmitJob(JobOf("flaky"))->job().id();
  absl::StatusOr<v1::Job> failed = client.WaitJob(bad);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->state(), v1::Job::STATE_FAILED);
  EXPECT_EQ(failed->error().message(), "input is wrong");
  EXPECT_FALSE(failed->error().retryable());
  absl::StatusOr<v1::Job> retried = client.WaitJob(flaky);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->state(), v1::Job::STATE_SUCCEEDED);
  EXPECT_EQ(retried->attempt(), 2);

  const std::string long_id = client.SubmitJob(JobOf("long"))->job().id();
  long_started.WaitForNotification();
  ASSERT_TRUE(client.CancelJob(long_id, "changed my mind").ok());
  absl::StatusOr<v1::Job> ended = client.WaitJob(long_id);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::Job::STATE_CANCELLED);
  worker.Stop();
  runner.join();  // Run() returns after every handler has
  EXPECT_TRUE(ran.ok()) << ran;
  EXPECT_EQ(long_reason, StopReason::kCancelled);
}

// #27: a result over the server's 1 MiB cap is refused (INVALID_ARGUMENT);
// the worker fails the attempt with the refusal instead of leaving the job
// RUNNING while its heartbeats renew the lease.
TEST_F(SdkTest, ARefusedResultFailsTheAttemptWithTheRefusal) {
  Client client(addr_);
  Worker worker(&client, {.grace = absl::Seconds(5)});
  worker.Handle("big", [](Task&) -> absl::StatusOr<v1::JobResult> {
    v1::JobResult result;
    result.set_payload(std::string(2 << 20, 'r'));
    return result;
  });
  absl::Status ran;
  std::thread runner([&] { ran = worker.Run(); });
  v1::Job job = JobOf("big");
  job.set_max_attempts(1);
  const std::string id = client.SubmitJob(job)->job().id();
  absl::StatusOr<v1::Job> ended = client.WaitJob(id);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::Job::STATE_FAILED);
  EXPECT_THAT(ended->error().message(),
              ::testing::HasSubstr("at most 1048576"));
  EXPECT_EQ(ended->error().code(), 3);  // INVALID_ARGUMENT
  worker.Stop();
  runner.join();
  EXPECT_TRUE(ran.ok()) << ran;
}

TEST_F(SdkTest, TokenGoesOnEveryCallAndStream) {
  server_.reset();
  extra_ = {"--auth-token=s3cret"};
  StartServer();
  ::unsetenv("JOBWIRE_TOKEN");
  Client anonymous(addr_);
  EXPECT_EQ(anonymous.SubmitJob(JobOf("k")).status().code(),
            absl::StatusCode::kUnauthenticated);
  Client client(addr_, {.token = "s3cret"});
  absl::StatusOr<v1::SubmitJobResponse> r = client.SubmitJob(JobOf("k"));
  ASSERT_TRUE(r.ok()) << r.status();
  Worker worker(&client, {});
  worker.Handle("k", [](Task&) -> absl::StatusOr<v1::JobResult> {
    return v1::JobResult();
  });
  std::thread runner([&] { worker.Run().IgnoreError(); });
  absl::StatusOr<v1::Job> done = client.WaitJob(r->job().id());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::Job::STATE_SUCCEEDED);
  worker.Stop();
  runner.join();
}

TEST_F(SdkTest, SubmitJobsYieldsIdsInOrderAndReadsAheadBoundedly) {
  Client client(addr_);
  std::atomic<int> read{0};
  int read_at_first_id = -1;
  std::vector<std::string> ids;
  absl::Status s = client.SubmitJobs(
      [&]() -> std::optional<v1::SubmitJobRequest> {
        if (read.load() == 95) return std::nullopt;
        v1::SubmitJobRequest request;
        *request.mutable_job() = JobOf("many");
        (*request.mutable_job()->mutable_labels())["i"] =
            std::to_string(read.fetch_add(1));
        return request;
      },
      [&](const std::string& id) {
        if (ids.empty()) read_at_first_id = read.load();
        ids.push_back(id);
      },
      {.batch_size = 10, .max_in_flight = 1});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(ids.size(), 95u);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 95u);
  EXPECT_EQ(client.GetJob(ids[0])->labels().at("i"), "0");
  EXPECT_EQ(client.GetJob(ids[94])->labels().at("i"), "94");
  // Back-pressure: the batch in flight, the next and one more being filled.
  EXPECT_LE(read_at_first_id, 31);
  bool sent = false;
  absl::Status bad = client.SubmitJobs(
      [&]() -> std::optional<v1::SubmitJobRequest> {
        if (sent) return std::nullopt;
        sent = true;
        return v1::SubmitJobRequest();  // no kind
      },
      [](const std::string&) {}, {});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
}

TEST_F(SdkTest, BulkUpdateJobsAndAdmin) {
  Client client(addr_);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    v1::Job job = JobOf("bulk");
    job.set_queue("bulkq");
    ids.push_back(client.SubmitJob(job)->job().id());
  }
  v1::BulkUpdateJobsRequest dry;
  dry.set_filter("queue = \"bulkq\"");
  dry.set_action(v1::BulkUpdateJobsRequest::ACTION_CANCEL);
  dry.set_dry_run(true);
  absl::StatusOr<v1::BulkUpdateJobsResponse> counted =
      client.BulkUpdateJobs(dry);
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_EQ(counted->matched(), 3);
  EXPECT_EQ(counted->updated(), 3);
  v1::BulkUpdateJobsRequest cancel;
  cancel.mutable_ids()->add_ids(ids[0]);
  cancel.set_action(v1::BulkUpdateJobsRequest::ACTION_CANCEL);
  absl::StatusOr<v1::BulkUpdateJobsResponse> done =
      client.BulkUpdateJobs(cancel);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->updated(), 1);
  EXPECT_EQ(client.GetJob(ids[0])->state(), v1::Job::STATE_CANCELLED);

  v1::ServerInfo info;
  auto context = client.NewContext(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(FromGrpc(client.admin_stub()->GetServerInfo(
                           context.get(), v1::GetServerInfoRequest(), &info))
                  .ok());
  EXPECT_EQ(info.version(), kVersion);
}

// ListJobs with a limit, and ListWebhookDeliveries, go through one paging
// loop: a response with the jobs and the token that continues after them.
TEST_F(SdkTest, ListJobsWithALimitReturnsATokenThatContinues) {
  Client client(addr_);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    v1::Job job = JobOf("paged");
    job.set_queue("pages");
    ids.push_back(client.SubmitJob(job)->job().id());
  }
  v1::ListJobsRequest request;
  request.set_filter("queue = \"pages\"");
  request.set_page_size(1);  // pages of one: the loop follows the tokens
  absl::StatusOr<v1::ListJobsResponse> first = client.ListJobs(request, 3);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->jobs_size(), 3);
  EXPECT_EQ(first->jobs(0).id(), ids[0]);
  EXPECT_EQ(first->jobs(2).id(), ids[2]);
  ASSERT_FALSE(first->next_page_token().empty());
  request.set_page_token(first->next_page_token());
  absl::StatusOr<v1::ListJobsResponse> rest = client.ListJobs(request, 0);
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(rest->jobs_size(), 2);
  EXPECT_EQ(rest->jobs(1).id(), ids[4]);
  EXPECT_TRUE(rest->next_page_token().empty());
  v1::ListJobsRequest bad;
  bad.set_filter("queue = = 1");
  EXPECT_EQ(client.ListJobs(bad, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<v1::ListWebhookDeliveriesResponse> deliveries =
      client.ListWebhookDeliveries(v1::ListWebhookDeliveriesRequest(), 10);
  ASSERT_TRUE(deliveries.ok()) << deliveries.status();
  EXPECT_EQ(deliveries->deliveries_size(), 0);
}

// #27: six jobs of 900 KiB are 5.4 MiB, over the server's default 4 MiB
// request limit as one batch; SubmitJobs and SubmitBatches split them so a
// batch stays under Client::kDefaultBatchBytes, and every job goes in.
TEST_F(SdkTest, BatchSubmitsSplitBatchesUnderTheByteLimit) {
  Client client(addr_);
  std::vector<v1::SubmitJobRequest> requests(6);
  for (auto& r : requests) {
    r.mutable_job()->set_kind("big");
    r.mutable_job()->set_payload(std::string(900 << 10, 'p'));
  }
  size_t next = 0;
  std::vector<std::string> ids;
  absl::Status streamed = client.SubmitJobs(
      [&]() -> std::optional<v1::SubmitJobRequest> {
        if (next == requests.size()) return std::nullopt;
        return requests[next++];
      },
      [&](const std::string& id) { ids.push_back(id); }, {});
  ASSERT_TRUE(streamed.ok()) << streamed;
  EXPECT_EQ(ids.size(), 6u);

  std::vector<Client::BatchOutcome> batches;
  ASSERT_TRUE(client
                  .SubmitBatches(requests, 1000, 2,
                                 [&](Client::BatchOutcome b) {
                                   batches.push_back(std::move(b));
                                 })
                  .ok());
  ASSERT_EQ(batches.size(), 2u);  // 4 + 2 jobs of ~900 KiB
  size_t first = 0;
  for (const Client::BatchOutcome& b : batches) {
    EXPECT_TRUE(b.status.ok()) << b.status;
    EXPECT_EQ(b.first, first);
    EXPECT_EQ(static_cast<size_t>(b.response.ids_size()), b.count);
    first += b.count;
  }
  EXPECT_EQ(first, 6u);
}

// SubmitBatches: every batch's outcome in batch order, from several
// streams; after a refused batch nothing new is sent.
TEST_F(SdkTest, SubmitBatchesReportsEachBatchInOrder) {
  Client client(addr_);
  std::vector<v1::SubmitJobRequest> requests(25);
  for (auto& r : requests) r.mutable_job()->set_kind("batch");
  std::vector<int64_t> order;
  std::set<std::string> ids;
  ASSERT_TRUE(client
                  .SubmitBatches(requests, 4, 3,
                                 [&](Client::BatchOutcome b) {
                                   EXPECT_TRUE(b.status.ok()) << b.status;
                                   order.push_back(b.index);
                                   ids.insert(b.response.ids().begin(),
                                              b.response.ids().end());
                                 })
                  .ok());
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ids.size(), 25u);

  requests[5].mutable_job()->set_kind("");  // batch 1 is refused
  std::vector<absl::StatusCode> codes;
  EXPECT_TRUE(client
                  .SubmitBatches(requests, 4, 1,
                                 [&](Client::BatchOutcome b) {
                                   codes.push_back(b.status.code());
                                 })
                  .ok());
  EXPECT_EQ(codes,
            (std::vector<absl::StatusCode>{
                absl::StatusCode::kOk, absl::StatusCode::kInvalidArgument}));
}

// SubmitBatches with several batches in flight on one stream: the answers
// still match their batches; when one is refused, the ones sent after it on
// its stream are reported failed (the server read none of them), and none
// of their jobs exists.
TEST_F(SdkTest, SubmitBatchesWithSeveralInFlightOnAStreamMatchesEachAnswer) {
  Client client(addr_);
  std::vector<v1::SubmitJobRequest> requests(30);
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].mutable_job()->set_kind("ahead");
    requests[i].set_request_id(absl::StrCat("ahead-", i));
  }
  std::vector<std::string> first;  // ids in request order
  ASSERT_TRUE(client
                  .SubmitBatches(
                      requests, 3, 1,
                      [&](Client::BatchOutcome b) {
                        EXPECT_TRUE(b.status.ok()) << b.status;
                        EXPECT_EQ(b.index,
                                  static_cast<int64_t>(first.size() / 3));
                        first.insert(first.end(), b.response.ids().begin(),
                                     b.response.ids().end());
                      },
                      /*per_stream=*/4)
                  .ok());
  ASSERT_EQ(first.size(), 30u);
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()).size(), 30u);
  // The same request ids again, one batch at a time: the same ids in order.
  std::vector<std::string> again;
  ASSERT_TRUE(client
                  .SubmitBatches(requests, 3, 1,
                                 [&](Client::BatchOutcome b) {
                                   again.insert(again.end(),
                                                b.response.ids().begin(),
                                                b.response.ids().end());
                                 })
                  .ok());
  EXPECT_EQ(again, first);

  // Fresh jobs; batch 2 (jobs 6-8) is refused with 4 batches in flight.
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].mutable_job()->set_kind("refused-ahead");
    requests[i].set_request_id(absl::StrCat("refused-ahead-", i));
  }
  requests[7].mutable_job()->set_kind("");
  std::vector<absl::StatusCode> codes;
  EXPECT_TRUE(
      client
          .SubmitBatches(
              requests, 3, 1,
              [&](Client::BatchOutcome b) { codes.push_back(b.status.code()); },
              /*per_stream=*/4)
          .ok());
  ASSERT_GE(codes.size(), 3u);
  EXPECT_EQ(codes[0], absl::StatusCode::kOk);
  EXPECT_EQ(codes[1], absl::StatusCode::kOk);
  EXPECT_EQ(codes[2], absl::StatusCode::kInvalidArgument);
  for (size_t i = 3; i < codes.size(); ++i)
    EXPECT_NE(codes[i], absl::StatusCode::kOk) << i;
  absl::StatusOr<v1::ListJobsResponse> listed = client.ListJobs(
      [] {
        v1::ListJobsRequest r;
        r.set_filter("kind = \"refused-ahead\"");
        return r;
      }(),
      /*limit=*/100);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->jobs_size(), 6);
}

// GetServerInfo's last_event_id is a cursor: a WatchJobs from it sees what
// was submitted after it, and nothing before.
TEST_F(SdkTest, LastEventIdIsAWatchJobsCursorTakenNow) {
  Client client(addr_);
  const std::string before = client.SubmitJob(JobOf("before"))->job().id();
  absl::StatusOr<v1::ServerInfo> info = client.GetServerInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GT(info->last_event_id(), 0);
  const std::string after = client.SubmitJob(JobOf("after"))->job().id();
  std::vector<std::string> seen;
  ASSERT_TRUE(client
                  .WatchJobs("", info->last_event_id(),
                             [&](const v1::JobEvent& e) {
                               seen.push_back(e.job_id());
                               EXPECT_GT(e.event_id(), info->last_event_id());
                               return false;  // the first is enough
                             })
                  .ok());
  EXPECT_EQ(seen, std::vector<std::string>{after});
  EXPECT_NE(before, after);
}

// WatchProgress: counts over a filter's jobs, those that ended before it
// started included, and jobs that match later, until all have ended.
TEST_F(SdkTest, WatchProgressCountsAFiltersJobsToTheirEnd) {
  Client client(addr_);
  auto submit = [&] {
    v1::Job job = JobOf("p");
    job.set_queue("progress");
    return client.SubmitJob(job)->job().id();
  };
  const std::string a = submit();
  const std::string b = submit();
  ASSERT_TRUE(client.CancelJob(a).ok());  // ended before the watch
  std::vector<Progress> seen;
  absl::Notification started;
  std::thread watch([&] {
    absl::Status s =
        WatchProgress(&client, "queue = \"progress\"", [&](const Progress& p) {
          seen.push_back(p);
          if (!started.HasBeenNotified()) started.Notify();
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
  });
  started.WaitForNotification();
  const std::string c = submit();  // matches later: followed too
  Worker worker(&client, {.queues = {"progress"}, .slots = 2});
  worker.Handle("p", [](Task&) -> absl::StatusOr<v1::JobResult> {
    return v1::JobResult();
  });
  std::thread run([&] { (void)worker.Run(); });
  watch.join();
  worker.Stop();
  run.join();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().total, 2);
  EXPECT_EQ(seen.front().cancelled, 1);
  EXPECT_EQ(seen.front().ended(), 1);
  const Progress& last = seen.back();
  EXPECT_TRUE(last.done());
  EXPECT_EQ(last.total, 3);
  EXPECT_EQ(last.succeeded, 2);
  EXPECT_EQ(last.cancelled, 1);
  EXPECT_EQ(last.running, 0);
  EXPECT_TRUE(absl::StartsWith(last.ToString(),
                               "3/3 ended: 2 succeeded, "
                               "0 failed, 1 cancelled; 0 "
                               "running; "))
      << last.ToString();
  // Nothing left to follow: one Progress, at once.
  int calls = 0;
  ASSERT_TRUE(
      WatchProgress(&client, "queue = \"progress\"", [&](const Progress& p) {
        ++calls;
        EXPECT_TRUE(p.done());
        return true;
      }).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(WatchProgress(&client, "queue = = 1",
                          [](const Progress&) { return true; })
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// FollowProgress over a fixed set (what submit-batch --watch does): only
// those jobs, from a cursor taken before they were submitted.
TEST_F(SdkTest, FollowProgressFollowsExactlyTheJobsGiven) {
  Client client(addr_);
  const int64_t cursor = client.GetServerInfo()->last_event_id();
  JobsProgress progress(/*fixed=*/true, absl::Now());
  std::vector<std::string> mine;
  for (int i = 0; i < 3; ++i) {
    mine.push_back(client.SubmitJob(JobOf("mine"))->job().id());
    progress.Add(mine.back());
  }
  const std::string other = client.SubmitJob(JobOf("mine"))->job().id();
  for (const std::string& id : mine) ASSERT_TRUE(client.CancelJob(id).ok());
  ASSERT_TRUE(client.CancelJob(other).ok());
  Progress last;
  std::vector<std::string> events;
  WatchProgressOptions options;
  options.on_event = [&](const v1::JobEvent& e) {
    events.push_back(e.job_id());
  };
  ASSERT_TRUE(FollowProgress(
                  &client, "", cursor, &progress,
                  [&](const Progress& p) {
                    last = p;
                    return true;
                  },
                  options)
                  .ok());
  EXPECT_EQ(last.total, 3);
  EXPECT_EQ(last.cancelled, 3);
  EXPECT_EQ(std::count(events.begin(), events.end(), other), 0);
  EXPECT_GE(events.size(), 3u);
}

// The bookkeeping alone: replays and older events change nothing; a fixed
// set ignores other jobs; the rate counts jobs that ended while watched.
TEST(JobsProgressTest, CountsStatesAndSkipsReplays) {
  const absl::Time start = absl::FromUnixSeconds(1000);
  JobsProgress fixed(/*fixed=*/true, start);
  fixed.Add("a");
  fixed.Add("b");
  fixed.Add("a");  // once
  EXPECT_EQ(fixed.Get(start).total, 2);
  EXPECT_FALSE(fixed.AllEnded());
  EXPECT_FALSE(fixed.Observe("z", v1::Job::STATE_QUEUED, 1));  // not ours
  EXPECT_TRUE(fixed.Observe("a", v1::Job::STATE_RUNNING, 2));
  EXPECT_FALSE(fixed.Observe("a", v1::Job::STATE_QUEUED, 1));  // older
  EXPECT_FALSE(fixed.News("a", 2));
  EXPECT_TRUE(fixed.News("a", 3));
  EXPECT_EQ(fixed.Get(start).running, 1);
  EXPECT_TRUE(fixed.Observe("a", v1::Job::STATE_SUCCEEDED, 3));
  Progress half = fixed.Get(start + absl::Seconds(2));
  EXPECT_EQ(half.succeeded, 1);
  EXPECT_EQ(half.running, 0);
  EXPECT_DOUBLE_EQ(half.rate, 0.5);
  ASSERT_TRUE(half.eta.has_value());
  EXPECT_EQ(*half.eta, absl::Seconds(2));
  EXPECT_TRUE(fixed.Observe("b", v1::Job::STATE_QUEUED, 4));
  EXPECT_TRUE(fixed.Observe("b", v1::Job::STATE_FAILED, 5));
  EXPECT_TRUE(fixed.AllEnded());
  Progress done = fixed.Get(start + absl::Seconds(4));
  EXPECT_TRUE(done.done());
  EXPECT_FALSE(done.eta.has_value());
  EXPECT_EQ(done.ToString(),
            "2/2 ended: 1 succeeded, 1 failed, 0 cancelled; 0 running; "
            "0.5/s; ETA -");

  // Added, then first seen ended (a job that existed, listed): not in the
  // rate either.
  JobsProgress listed(/*fixed=*/true, start);
  listed.Add("old");
  EXPECT_TRUE(listed.Observe("old", v1::Job::STATE_CANCELLED, 9));
  EXPECT_EQ(listed.Get(start + absl::Seconds(1)).rate, 0);
  EXPECT_TRUE(listed.Get(start).done());

  JobsProgress open(/*fixed=*/false, start);
  EXPECT_TRUE(open.AllEnded());
  EXPECT_TRUE(open.News("new", 1));
  EXPECT_TRUE(open.Observe("new", v1::Job::STATE_CANCELLED, 4));
  // Seen ended at first sight: not counted in the rate.
  EXPECT_EQ(open.Get(start + absl::Seconds(1)).rate, 0);
  EXPECT_EQ(open.Get(start).cancelled, 1);
}

// TLS with a client certificate (issue #27): the CA and the client's
// certificate and key are options of the client.
TEST_F(SdkTest, TalksTlsWithAClientCertificate) {
  server_.reset();
  test::MakeTestCertificates(dir_);
  JobwiredProcess server(dir_, {"--listen", "127.0.0.1:0", "--db", "tls.db",
                                "--tls-cert", "server.pem", "--tls-key",
                                "server.key", "--tls-client-ca", "ca.pem"});
  std::vector<std::string> addresses = server.WaitListening(1);
  ASSERT_EQ(addresses.size(), 1u) << server.log();
  const std::string port = addresses[0].substr(addresses[0].rfind(':'));
  Client::Options options;
  options.timeout = absl::Seconds(3);
  options.tls_ca_pem = test::ReadWholeFile(dir_ + "/ca.pem");
  options.tls_cert_pem = test::ReadWholeFile(dir_ + "/client.pem");
  options.tls_key_pem = test::ReadWholeFile(dir_ + "/client.key");
  Client client("localhost" + port, options);
  absl::StatusOr<v1::SubmitJobResponse> r = client.SubmitJob(JobOf("k"));
  EXPECT_TRUE(r.ok()) << r.status();
  // Without the client certificate the handshake fails.
  options.tls_cert_pem.clear();
  options.tls_key_pem.clear();
  Client anonymous("localhost" + port, options);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
  v1::GetJobRequest request;
  request.set_id("x");
  v1::Job job;
  EXPECT_FALSE(v1::JobService::NewStub(anonymous.channel())
                   ->GetJob(&context, request, &job)
                   .ok());
}

}  // namespace
}  // namespace jobwire::sdk
