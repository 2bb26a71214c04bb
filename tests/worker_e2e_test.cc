// End to end through real processes: the jobwired binary, `jobwire worker`
// processes running shell commands, and a gRPC client. Checks what a user of
// workers sees: a job's life on its watch, a killed worker's job running
// again, a frozen worker losing its lease, and cancel reaching the command.
//
// The worker commands wait for "go" files the test creates, and write their
// process group id to a file, so the test decides when a job ends and can
// clean up what a killed worker leaves behind. Timing is by polling with
// deadlines.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {
namespace {

namespace v1 = ::jobwire::v1;

void Touch(const std::string& path) { std::ofstream(path) << "go\n"; }

// Polls `done` every 20 ms until it is true or `timeout` passes.
bool WaitFor(const std::function<bool()>& done,
             absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

// The shell command every worker runs: reports progress, records its process
// group, waits (at most ~40 s) for go.<job>.<attempt>, then prints a JSON
// result naming its attempt.
std::string WorkerCommand(const std::string& dir) {
  return absl::StrCat("echo $$ > ", dir,
                      "/pgid.$JOBWIRE_JOB_ID.$JOBWIRE_ATTEMPT; ",
                      "echo 'progress 1/2 halfway'; i=0; ", "while [ ! -f ",
                      dir, "/go.$JOBWIRE_JOB_ID.$JOBWIRE_ATTEMPT ] && ",
                      "[ $i -lt 800 ]; do sleep 0.05; i=$((i+1)); done; ",
                      "echo '{\"attempt\": '$JOBWIRE_ATTEMPT'}'");
}

class WorkerE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jobwire-worker-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }

  void TearDown() override {
    workers_.clear();
    server_.reset();
    // Commands of killed workers run on in their own process groups.
    for (const std::string& pgid_file : pgid_files_) {
      int pgid = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadWholeFile(pgid_file)),
                           &pgid) &&
          pgid > 1) {
        ::kill(-pgid, SIGKILL);
      }
    }
    std::string rm = absl::StrCat("rm -rf '", dir_, "'");
    (void)std::system(rm.c_str());
  }

  // Starts jobwired on `listen` (default 127.0.0.1:0) and connects a client.
  void StartServer(std::vector<std::string> extra = {},
                   const std::string& listen = "127.0.0.1:0") {
    std::vector<std::string> args = {"--listen",
                                     listen,
                                     "--db",
                                     dir_ + "/jobwire.db",
                                     "--synchronous",
                                     "off",
                                     "--shutdown-grace",
                                     "2s"};
    for (std::string& a : extra) args.push_back(std::move(a));
    server_ = std::make_unique<JobwiredProcess>(dir_, args);
    std::vector<std::string> addresses = server_->WaitListening(1);
    ASSERT_EQ(addresses.size(), 1u) << server_->log();
    address_ = addresses[0];
    stub_ = v1::JobService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  // Starts a `jobwire worker` on the default queue running `command`
  // (default: WorkerCommand).
  ChildProcess* StartWorker(const std::string& name,
                            const std::string& command = "") {
    workers_.push_back(std::make_unique<ChildProcess>(
        JOBWIRE_CLI_PATH,
        std::vector<std::string>{
            "worker", "--addr", address_, "--queue", "default", "--worker-id",
            name, "--grace", "1s", "--exec",
            command.empty() ? WorkerCommand(dir_) : command},
        dir_ + "/" + name + ".log"));
    return workers_.back().get();
  }

  std::string Submit(int max_attempts = 5) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    v1::SubmitJobRequest request;
    request.mutable_job()->set_queue("default");
    request.mutable_job()->set_kind("e2e");
    request.mutable_job()->set_max_attempts(max_attempts);
    v1::SubmitJobResponse response;
    grpc::Status status = stub_->SubmitJob(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job().id();
  }

  v1::Job Get(const std::string& id) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    v1::GetJobRequest request;
    request.set_id(id);
    v1::Job job;
    grpc::Status status = stub_->GetJob(&context, request, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }

  // Every event of the job from its first, until the terminal one (WatchJob
  // ends there); at most 60 s.
  std::vector<v1::JobEvent> WatchToEnd(const std::string& id) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
    v1::WatchJobRequest request;
    request.set_id(id);
    request.set_after_seq(0);
    auto reader = stub_->WatchJob(&context, request);
    std::vector<v1::JobEvent> events;
    v1::WatchJobResponse response;
    while (reader->Read(&response)) {
      if (response.has_event()) events.push_back(response.event());
    }
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return events;
  }

  // Lets attempt 1 of job `id` start on a worker and succeed.
  void RunToSuccess(const std::string& id) {
    ASSERT_TRUE(WaitFor([&] { return RunningAttempt(id, 1); })) << Logs(id);
    Go(id, 1);
    ASSERT_TRUE(WaitFor([&] {
      return Get(id).state() == v1::Job::STATE_SUCCEEDED;
    })) << Logs(id);
  }

  bool RunningAttempt(const std::string& id, int attempt) {
    v1::Job job = Get(id);
    return job.state() == v1::Job::STATE_RUNNING && job.attempt() == attempt &&
           Exists(PgidFile(id, attempt));
  }

  std::string PgidFile(const std::string& id, int attempt) {
    std::string path = absl::StrCat(dir_, "/pgid.", id, ".", attempt);
    pgid_files_.push_back(path);
    return path;
  }
  void Go(const std::string& id, int attempt) {
    Touch(absl::StrCat(dir_, "/go.", id, ".", attempt));
  }
  static bool Exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }
  // True once no process of the group is left (reaped by its worker).
  bool GroupGone(const std::string& pgid_file) {
    int pgid = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadWholeFile(pgid_file)),
                          &pgid)) {
      return false;
    }
    return ::kill(-pgid, 0) != 0 && errno == ESRCH;
  }

  std::string Logs(const std::string& id = "") {
    std::string all;
    if (!id.empty()) all = absl::StrCat("--- job\n", Get(id).DebugString());
    absl::StrAppend(&all, "--- jobwired\n", server_->log());
    for (const auto& w : workers_)
      absl::StrAppend(&all, "--- worker\n", w->log());
    return all;
  }

  static int CountState(const std::vector<v1::JobEvent>& events,
                        v1::Job::State to) {
    int n = 0;
    for (const v1::JobEvent& e : events) {
      if (e.has_state_changed() && e.state_changed().to() == to) ++n;
    }
    return n;
  }

  std::string dir_;
  std::string address_;
  std::unique_ptr<JobwiredProcess> server_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  std::vector<std::string> pgid_files_;
};

TEST_F(WorkerE2eTest, WatchShowsQueuedRunningProgressAndSucceededWithResult) {
  StartServer();
  const std::string id = Submit();
  StartWorker("w1");
  ASSERT_TRUE(WaitFor([&] { return RunningAttempt(id, 1); })) << Logs();
  // The progress line is reported before the command waits.
  ASSERT_TRUE(WaitFor([&] { return Get(id).progress().done() == 1; }))
      << Logs();
  EXPECT_EQ(Get(id).worker_id(), "w1");
  Go(id, 1);

  std::vector<v1::JobEvent> events = WatchToEnd(id);
  std::vector<std::string> seen;
  for (const v1::JobEvent& e : events) {
    if (e.has_state_changed()) {
      seen.push_back(v1::Job::State_Name(e.state_changed().to()));
    } else if (e.has_progress()) {
      seen.push_back(absl::StrCat("progress ", e.progress().done(), "/",
                                  e.progress().total()));
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"STATE_QUEUED", "STATE_RUNNING",
                                            "progress 1/2", "STATE_SUCCEEDED"}))
      << Logs();
  ASSERT_FALSE(events.empty());
  const v1::StateChanged& last = events.back().state_changed();
  EXPECT_EQ(last.to(), v1::Job::STATE_SUCCEEDED);
  EXPECT_EQ(last.result().data().fields().at("attempt").number_value(), 1);
}

// What --exec tells: a line per job on the worker's stderr, the command's
// other output as the job's log events, its exit status in the job's error.
TEST_F(WorkerE2eTest, ExecRecordsOutputAsLogEventsAndTheExitStatusAsTheError) {
  StartServer();
  const std::string id = Submit(/*max_attempts=*/1);
  ChildProcess* worker =
      StartWorker("w1",
                  "echo hello; echo 'progress 1/1 done'; echo oops >&2; "
                  "echo '{\"not\": \"a result\"}'; exit 3");
  std::vector<v1::JobEvent> events = WatchToEnd(id);
  std::vector<std::string> logs;
  for (const v1::JobEvent& e : events) {
    if (e.has_log()) logs.push_back(e.log().line());
  }
  EXPECT_EQ(logs, (std::vector<std::string>{"hello", "stderr: oops",
                                            "{\"not\": \"a result\"}"}))
      << Logs(id);
  v1::Job job = Get(id);
  EXPECT_EQ(job.state(), v1::Job::STATE_FAILED);
  EXPECT_EQ(job.error().message(), "exit status 3: oops") << Logs(id);
  EXPECT_EQ(job.error().details().fields().at("exit_status").number_value(), 3)
      << Logs(id);
  EXPECT_EQ(job.progress().done(), 1) << Logs(id);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(worker->log(),
                             absl::StrCat("job ", id, " attempt 1 failed in "));
  })) << worker->log();
  EXPECT_TRUE(absl::StrContains(
      worker->log(), absl::StrCat("job ", id, " (e2e) attempt 1 started")))
      << worker->log();
  EXPECT_TRUE(absl::StrContains(worker->log(), ": exit status 3"))
      << worker->log();
}

// #27: a result over the server's 1 MiB cap was refused and the job stayed
// RUNNING while the worker's heartbeats renewed its lease. The worker now
// fails the attempt with the server's refusal.
TEST_F(WorkerE2eTest, ExecResultOverTheLimitFailsTheJobNamingTheLimit) {
  StartServer();
  const std::string id = Submit(/*max_attempts=*/1);
  StartWorker("w1",
              "printf '{\"r\": \"'; head -c 2097152 /dev/zero | tr '\\0' r; "
              "printf '\"}\\n'");
  WatchToEnd(id);
  v1::Job job = Get(id);
  EXPECT_EQ(job.state(), v1::Job::STATE_FAILED) << Logs(id);
  EXPECT_TRUE(absl::StrContains(job.error().message(), "at most 1048576"))
      << job.error().message();
}

TEST_F(WorkerE2eTest, ExecRecordsASignalAndBoundsTheLog) {
  StartServer();
  const std::string id = Submit(/*max_attempts=*/1);
  // 200 lines of 2,000 characters, then a SIGKILL of itself.
  ChildProcess* worker = StartWorker(
      "w1",
      "i=0; line=$(printf '%2000s' | tr ' ' x); while [ $i -lt 200 ]; do "
      "echo $line; i=$((i+1)); done; kill -9 $$");
  std::vector<v1::JobEvent> events = WatchToEnd(id);
  size_t bytes = 0;
  std::vector<std::string> logs;
  for (const v1::JobEvent& e : events) {
    if (!e.has_log()) continue;
    logs.push_back(e.log().line());
    bytes += e.log().line().size();
    EXPECT_LE(e.log().line().size(), 1024u + 3) << "cut at 1 KiB";
  }
  ASSERT_FALSE(logs.empty()) << Logs(id);
  EXPECT_LE(bytes, 64u * 1024 + 100) << logs.size() << " lines";
  EXPECT_TRUE(absl::StartsWith(logs.back(), "(log limit of 64 KiB reached"))
      << logs.back();
  v1::Job job = Get(id);
  EXPECT_EQ(job.state(), v1::Job::STATE_FAILED);
  EXPECT_EQ(job.error().message(), "killed by signal 9 (SIGKILL)") << Logs(id);
  EXPECT_EQ(job.error().details().fields().at("signal").number_value(), 9);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(worker->log(), "killed by signal 9 (SIGKILL)");
  })) << worker->log();
}

// UpdateJob reaches the dispatcher: a job scheduled for later on a queue no
// worker serves runs at once when moved to the worker's queue and to now.
TEST_F(WorkerE2eTest, JobUpdatedToTheWorkersQueueAndToNowRuns) {
  StartServer();
  StartWorker("w1");
  v1::SubmitJobRequest submit;
  submit.mutable_job()->set_queue("elsewhere");
  submit.mutable_job()->set_kind("e2e");
  submit.mutable_job()->mutable_schedule_time()->set_seconds(
      absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
  v1::SubmitJobResponse submitted;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->SubmitJob(&context, submit, &submitted).ok());
  }
  const std::string id = submitted.job().id();
  ASSERT_EQ(submitted.job().state(), v1::Job::STATE_SCHEDULED);

  v1::UpdateJobRequest update;
  update.mutable_job()->set_id(id);
  update.mutable_job()->set_queue("default");
  update.mutable_update_mask()->add_paths("queue");
  update.mutable_update_mask()->add_paths("schedule_time");  // unset: now
  v1::Job updated;
  {
    grpc::ClientContext context;
    grpc::Status status = stub_->UpdateJob(&context, update, &updated);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(updated.queue(), "default");
  ASSERT_NO_FATAL_FAILURE(RunToSuccess(id));
  std::vector<v1::JobEvent> events = WatchToEnd(id);
  std::vector<std::string> seen;
  for (const v1::JobEvent& e : events) {
    if (e.has_updated()) {
      seen.push_back(
          absl::StrCat("updated ", absl::StrJoin(e.updated().paths(), ",")));
    } else if (e.has_state_changed()) {
      seen.push_back(v1::Job::State_Name(e.state_changed().to()));
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "STATE_SCHEDULED", "updated queue,schedule_time",
                      "STATE_QUEUED", "STATE_RUNNING", "STATE_SUCCEEDED"}))
      << Logs(id);
}

TEST_F(WorkerE2eTest, KilledWorkersJobRunsAgainOnAnotherWorkerAndEndsOnce) {
  StartServer();
  const std::string id = Submit();
  ChildProcess* w1 = StartWorker("w1");
  ASSERT_TRUE(WaitFor([&] { return RunningAttempt(id, 1); })) << Logs();

  w1->Signal(SIGKILL);
  ASSERT_TRUE(w1->Exited(absl::Seconds(10)));
  // The machine died with it: so does its command.
  const std::string pgid1 = PgidFile(id, 1);
  int pgid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadWholeFile(pgid1)),
                               &pgid));
  ::kill(-pgid, SIGKILL);

  StartWorker("w2");
  ASSERT_TRUE(WaitFor([&] { return RunningAttempt(id, 2); })) << Logs(id);
  EXPECT_EQ(Get(id).worker_id(), "w2");
  Go(id, 2);

  std::vector<v1::JobEvent> events = WatchToEnd(id);
  EXPECT_EQ(CountState(events, v1::Job::STATE_SUCCEEDED), 1) << Logs();
  v1::Job job = Get(id);
  EXPECT_EQ(job.state(), v1::Job::STATE_SUCCEEDED);
  EXPECT_EQ(job.attempt(), 2);
  EXPECT_EQ(job.result().data().fields().at("attempt").number_value(), 2);
}

TEST_F(WorkerE2eTest, FrozenWorkerLosesItsLeaseAndItsLateResultIsNotRecorded) {
  StartServer({"--lease-ttl", "2s"});
  const std::string id = Submit();
  ChildProcess* w1 = StartWorker("w1");
  ASSERT_TRUE(WaitFor([&] { return RunningAttempt(id, 1); })) << Logs();

  // Freeze w1; its command finishes meanwhile, so w1 holds a result it
  // reports when it thaws, after its lease is gone.
  w1->Signal(SIGSTOP);
  Go(id, 1);
  StartWorker("w2");
  ASSERT_TRUE(WaitFor([&] { return RunningAttempt(id, 2); })) << Logs(id);
  EXPECT_EQ(Get(id).worker_id(), "w2");

  w1->Signal(SIGCONT);
  // w1 reaps its command and reports (or first hears its lease is gone).
  ASSERT_TRUE(WaitFor([&] { return GroupGone(PgidFile(id, 1)); })) << Logs();
  // If w1 got to send its result before it handled the lease's cancel, the
  // server refused it and logged so; give that report time to arrive
  // (bounded; either way attempt 2 must still hold the job).
  const std::string refusal = absl::StrCat("attempt 1 of job ", id);
  const bool refused =
      WaitFor([&] { return absl::StrContains(server_->log(), refusal); },
              absl::Seconds(3));
  std::cerr << (refused ? "w1's late result was refused\n"
                        : "w1 handled the lease's cancel before its result; "
                          "it sent none\n");
  v1::Job job = Get(id);
  EXPECT_EQ(job.state(), v1::Job::STATE_RUNNING) << Logs();
  EXPECT_EQ(job.attempt(), 2);

  Go(id, 2);
  std::vector<v1::JobEvent> events = WatchToEnd(id);
  EXPECT_EQ(CountState(events, v1::Job::STATE_SUCCEEDED), 1) << Logs();
  job = Get(id);
  EXPECT_EQ(job.state(), v1::Job::STATE_SUCCEEDED);
  EXPECT_EQ(job.attempt(), 2);
  EXPECT_EQ(job.result().data().fields().at("attempt").number_value(), 2);
  EXPECT_EQ(job.last_seq(), events.back().seq());
}

TEST_F(WorkerE2eTest, CancelOfRunningJobStopsTheCommandAndEndsCancelled) {
  StartServer();
  const std::string id = Submit();
  StartWorker("w1");
  ASSERT_TRUE(WaitFor([&] { return RunningAttempt(id, 1); })) << Logs();

  grpc::ClientContext context;
  v1::CancelJobRequest request;
  request.set_id(id);
  request.set_reason("no longer needed");
  v1::Job answer;
  grpc::Status status = stub_->CancelJob(&context, request, &answer);
  ASSERT_TRUE(status.ok()) << status.error_message();

  std::vector<v1::JobEvent> events = WatchToEnd(id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state_changed().to(), v1::Job::STATE_CANCELLED)
      << Logs();
  EXPECT_EQ(CountState(events, v1::Job::STATE_SUCCEEDED), 0);
  // The worker killed the command (it never got its go file).
  EXPECT_TRUE(WaitFor([&] { return GroupGone(PgidFile(id, 1)); })) << Logs();
}

TEST_F(WorkerE2eTest, BulkCancelEndsRunningAndQueuedJobsAlike) {
  StartServer();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Submit());
  StartWorker("w1");  // one slot: one job runs, two wait
  ASSERT_TRUE(WaitFor([&] {
    return RunningAttempt(ids[0], 1) || RunningAttempt(ids[1], 1) ||
           RunningAttempt(ids[2], 1);
  })) << Logs();
  std::string running;
  for (const std::string& id : ids) {
    if (Get(id).state() == v1::Job::STATE_RUNNING) running = id;
  }
  ASSERT_FALSE(running.empty());

  grpc::ClientContext context;
  auto stream = stub_->BulkUpdateJobs(&context);
  v1::BulkUpdateJobsRequest request;
  request.set_filter("kind = \"e2e\"");
  request.set_action(v1::BulkUpdateJobsRequest::ACTION_CANCEL);
  ASSERT_TRUE(stream->Write(request));
  v1::BulkUpdateJobsResponse response;
  ASSERT_TRUE(stream->Read(&response));
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(response.matched(), 3);
  EXPECT_EQ(response.updated(), 3);

  for (const std::string& id : ids) {
    std::vector<v1::JobEvent> events = WatchToEnd(id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().state_changed().to(), v1::Job::STATE_CANCELLED)
        << id << Logs();
  }
  // The worker killed the running command.
  EXPECT_TRUE(WaitFor([&] { return GroupGone(PgidFile(running, 1)); }))
      << Logs();
}

TEST_F(WorkerE2eTest, BulkPauseKeepsJobsFromWorkersUntilABulkResume) {
  StartServer();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Submit());
  auto bulk = [&](v1::BulkUpdateJobsRequest request) {
    grpc::ClientContext context;
    auto stream = stub_->BulkUpdateJobs(&context);
    v1::BulkUpdateJobsResponse response;
    EXPECT_TRUE(stream->Write(request));
    EXPECT_TRUE(stream->Read(&response));
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
    return response;
  };
  // Paused in one chunk before any worker connects: the dispatcher's queue
  // follows the chunk's events and offers only the third job.
  v1::BulkUpdateJobsRequest pause;
  pause.mutable_ids()->add_ids(ids[0]);
  pause.mutable_ids()->add_ids(ids[1]);
  pause.set_action(v1::BulkUpdateJobsRequest::ACTION_PAUSE);
  EXPECT_EQ(bulk(pause).updated(), 2);
  StartWorker("w1");
  ASSERT_NO_FATAL_FAILURE(RunToSuccess(ids[2]));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Get(ids[i]).state(), v1::Job::STATE_PAUSED) << Logs(ids[i]);
    EXPECT_FALSE(Exists(PgidFile(ids[i], 1)));
  }
  v1::BulkUpdateJobsRequest resume;
  resume.set_filter("state = PAUSED");
  resume.set_action(v1::BulkUpdateJobsRequest::ACTION_RESUME);
  EXPECT_EQ(bulk(resume).updated(), 2);
  Go(ids[0], 1);
  Go(ids[1], 1);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(WaitFor([&] {
      return Get(ids[i]).state() == v1::Job::STATE_SUCCEEDED;
    })) << Logs(ids[i]);
  }
}

TEST_F(WorkerE2eTest, WorkerReconnectsAfterTheServerRestartsAndRunsNewJobs) {
  // A socket path, so the restarted server has the same address.
  const std::string listen = absl::StrCat("unix:", dir_, "/j.sock");
  StartServer({}, listen);
  ChildProcess* worker = StartWorker("w1");
  ASSERT_NO_FATAL_FAILURE(RunToSuccess(Submit()));

  server_->Signal(SIGTERM);
  ASSERT_TRUE(server_->Exited(absl::Seconds(20))) << Logs();
  absl::SleepFor(absl::Seconds(2));  // the worker keeps trying meanwhile
  ASSERT_FALSE(worker->Exited(absl::ZeroDuration())) << worker->log();

  StartServer({}, listen);
  ASSERT_NO_FATAL_FAILURE(RunToSuccess(Submit()));
  EXPECT_TRUE(absl::StrContains(worker->log(), "reconnecting")) << Logs();

  // Its own SIGTERM still ends it, at once when it has nothing running.
  worker->Signal(SIGTERM);
  ASSERT_TRUE(worker->Exited(absl::Seconds(10))) << worker->log();
  EXPECT_EQ(worker->exit_code(), 0) << worker->log();
}

}  // namespace
}  // namespace jobwire::test
