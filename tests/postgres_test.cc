// The real jobwired on PostgreSQL (--db postgres:...), on a private server
// the test starts (server/storage/pg_test_cluster.h): a job submitted,
// worked by a worker stream and watched to its end; what survives a SIGKILL
// and restart; GetServerInfo naming the backend; Backup refused naming
// pg_dump; a second jobwired on the same database joins as a second node
// (tests/cluster_test.cc runs three under load).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "server/api/worker_test_util.h"
#include "server/storage/pg_test_cluster.h"
#include "tests/jobwired_grpc_test.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {
namespace {

using v1::ConnectResponse;

class PostgresTest : public JobwiredGrpcTest {
 protected:
  PostgresTest() : JobwiredGrpcTest("jobwire-pg", absl::Seconds(20)) {}

  void SetUp() override {
    JobwiredGrpcTest::SetUp();
    // A keyword string: the schema of this test through search_path.
    db_ = "postgres:" + SharedPgTestCluster().NewSchema();
  }

  // A short lease TTL: a killed node's leases come back within the test.
  void StartServer() {
    JobwiredGrpcTest::StartServer(db_, {"--lease-ttl", "2s"});
  }

  std::string db_;
};

TEST_F(PostgresTest, AJobIsSubmittedWorkedAndWatchedToItsEnd) {
  StartServer();
  const std::string id = Submit();
  // The watch, opened before the work, sees the job's whole life.
  v1::WatchJobRequest watch;
  watch.set_id(id);
  watch.set_after_seq(0);
  auto watch_context = Call();
  auto reader = jobs_->WatchJob(watch_context.get(), watch);

  TestWorker worker(channel_, "w1", {"default"}, 1);
  ASSERT_TRUE(worker.NextOf(ConnectResponse::kWelcome).has_value());
  std::optional<v1::ConnectResponse> assign =
      worker.NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value()) << server_->log();
  EXPECT_EQ(assign->assign().job().id(), id);
  worker.Complete(id, assign->assign().job().attempt());

  std::vector<v1::Job::State> states;
  v1::WatchJobResponse response;
  while (reader->Read(&response)) {
    if (response.has_event() && response.event().has_state_changed())
      states.push_back(response.event().state_changed().to());
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(states, (std::vector<v1::Job::State>{v1::Job::STATE_QUEUED,
                                                 v1::Job::STATE_RUNNING,
                                                 v1::Job::STATE_SUCCEEDED}));
  EXPECT_EQ(Get(id).state(), v1::Job::STATE_SUCCEEDED);
}

TEST_F(PostgresTest, ARunningJobRunsAgainAfterAKillAndRestart) {
  StartServer();
  const std::string id = Submit();
  {
    TestWorker worker(channel_, "w1", {"default"}, 1);
    ASSERT_TRUE(worker.NextOf(ConnectResponse::kWelcome).has_value());
    ASSERT_TRUE(worker.NextOf(ConnectResponse::kAssign).has_value());
    server_->Signal(SIGKILL);
    ASSERT_TRUE(server_->Exited(absl::Seconds(10)));
  }
  // The restarted node is a new node: the dead one's lease comes back once
  // its heartbeat is older than --lease-ttl.
  StartServer();
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60);
       Get(id).state() != v1::Job::STATE_QUEUED && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Get(id).state(), v1::Job::STATE_QUEUED);
  TestWorker worker(channel_, "w2", {"default"}, 1);
  ASSERT_TRUE(worker.NextOf(ConnectResponse::kWelcome).has_value());
  std::optional<v1::ConnectResponse> assign =
      worker.NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->assign().job().attempt(), 2);
  worker.Complete(id, 2);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (Get(id).state() != v1::Job::STATE_SUCCEEDED && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(Get(id).state(), v1::Job::STATE_SUCCEEDED);
}

TEST_F(PostgresTest, ServerInfoNamesPostgresAndBackupIsRefusedNamingPgDump) {
  StartServer();
  v1::GetServerInfoRequest request;
  v1::ServerInfo info;
  grpc::Status s = admin_->GetServerInfo(Call().get(), request, &info);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(absl::StartsWith(info.storage_path(), "postgresql://"))
      << info.storage_path();
  EXPECT_GT(info.storage_bytes(), 0);

  v1::BackupRequest backup;
  auto context = Call();
  auto reader = admin_->Backup(context.get(), backup);
  v1::BackupChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "pg_dump"))
      << status.error_message();
}

TEST_F(PostgresTest, ASecondServerOnTheSameDatabaseJoinsAsANode) {
  StartServer();
  JobwiredProcess second(
      dir_, std::vector<std::string>{"--listen", "127.0.0.1:0", "--db", db_,
                                     "--node-name", "second"});
  ASSERT_EQ(second.WaitListening(1).size(), 1u) << second.log();
  v1::ServerInfo info;
  ASSERT_TRUE(
      admin_->GetServerInfo(Call().get(), v1::GetServerInfoRequest(), &info)
          .ok());
  ASSERT_EQ(info.nodes_size(), 2);
  EXPECT_TRUE(info.nodes(0).answering());
  EXPECT_EQ(info.nodes(1).name(), "second");
  EXPECT_FALSE(Submit().empty());
}

// Two nodes each keep a timer for a scheduled job (the second hears of it
// through NOTIFY); the timer's Mutate checks the state under the row lock,
// so the job moves SCHEDULED -> QUEUED once.
TEST_F(PostgresTest, AScheduledJobsTimerFiresOnceOnTwoNodes) {
  StartServer();
  JobwiredProcess second(
      dir_, std::vector<std::string>{"--listen", "127.0.0.1:0", "--db", db_});
  ASSERT_EQ(second.WaitListening(1).size(), 1u) << second.log();
  v1::SubmitJobRequest request;
  request.mutable_job()->set_kind("k");
  const absl::Time at = absl::Now() + absl::Seconds(2);
  request.mutable_job()->mutable_schedule_time()->set_seconds(
      absl::ToUnixSeconds(at));
  v1::SubmitJobResponse response;
  ASSERT_TRUE(jobs_->SubmitJob(Call().get(), request, &response).ok());
  const std::string id = response.job().id();
  EXPECT_EQ(response.job().state(), v1::Job::STATE_SCHEDULED);
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60);
       Get(id).state() != v1::Job::STATE_QUEUED && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(Get(id).state(), v1::Job::STATE_QUEUED);
  // Both timers are due by now; the later one found the job moved on.
  absl::SleepFor(absl::Seconds(1));
  v1::WatchJobRequest watch;
  watch.set_id(id);
  watch.set_after_seq(0);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  auto reader = jobs_->WatchJob(&context, watch);
  int queued = 0;
  v1::WatchJobResponse event;
  while (reader->Read(&event)) {
    if (event.has_event() && event.event().has_state_changed() &&
        event.event().state_changed().to() == v1::Job::STATE_QUEUED) {
      ++queued;
    }
  }
  reader->Finish();
  EXPECT_EQ(queued, 1);
}

// A dispatch pause written on one node is re-read by the other (a NOTIFY
// that says settings changed), and so is the resume.
TEST_F(PostgresTest, ADispatchPauseOnOneNodeReachesTheOther) {
  StartServer();
  JobwiredProcess second(
      dir_, std::vector<std::string>{"--listen", "127.0.0.1:0", "--db", db_});
  std::vector<std::string> addresses = second.WaitListening(1);
  ASSERT_EQ(addresses.size(), 1u) << second.log();
  auto other = v1::AdminService::NewStub(
      grpc::CreateChannel(addresses[0], grpc::InsecureChannelCredentials()));
  auto paused_there = [&](bool want) {
    for (const absl::Time deadline = absl::Now() + absl::Seconds(30);;) {
      v1::ServerInfo info;
      EXPECT_TRUE(
          other->GetServerInfo(Call().get(), v1::GetServerInfoRequest(), &info)
              .ok());
      if (info.dispatch().paused() == want || absl::Now() > deadline)
        return info.dispatch().paused();
      absl::SleepFor(absl::Milliseconds(50));
    }
  };
  v1::PauseDispatchRequest pause;
  pause.set_reason("maintenance");
  v1::DispatchState state;
  ASSERT_TRUE(admin_->PauseDispatch(Call().get(), pause, &state).ok());
  EXPECT_TRUE(paused_there(true));
  ASSERT_TRUE(
      admin_->ResumeDispatch(Call().get(), v1::ResumeDispatchRequest(), &state)
          .ok());
  EXPECT_FALSE(paused_there(false));
}

}  // namespace
}  // namespace jobwire::test
