// The real jobwired on PostgreSQL (--db postgres:...), on a private server
// the test starts (server/storage/pg_test_cluster.h): a job submitted,
// worked by a worker stream and watched to its end; what survives a SIGKILL
// and restart; GetServerInfo naming the backend; Backup refused naming
// pg_dump; a second jobwired on the same database refused, saying why.
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

  void StartServer() { JobwiredGrpcTest::StartServer(db_); }

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
  // The node lock died with the process: the restart takes it.
  StartServer();
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

TEST_F(PostgresTest, ASecondServerOnTheSameDatabaseIsRefusedSayingWhy) {
  StartServer();
  JobwiredProcess second(
      dir_, std::vector<std::string>{"--listen", "127.0.0.1:0", "--db", db_});
  ASSERT_TRUE(second.Exited(absl::Seconds(30)));
  EXPECT_NE(second.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(
      second.log(), "several jobwired nodes on one database are not supported"))
      << second.log();
  // The first one still serves.
  EXPECT_FALSE(Submit().empty());
}

}  // namespace
}  // namespace jobwire::test
