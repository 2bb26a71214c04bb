// Operator and job controls that must survive a crash of the real jobwired
// (SIGKILL, then a restart on the same database): a cancel asked of a running
// job whose worker never acknowledged it, and a dispatch pause.
//
// The worker is a bare WorkerService stream driven by the test (TestWorker),
// so it can receive the cancel and stay silent.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "server/api/worker_test_util.h"
#include "tests/jobwired_grpc_test.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {
namespace {

using v1::ConnectResponse;

class ControlRestartTest : public JobwiredGrpcTest {
 protected:
  ControlRestartTest()
      : JobwiredGrpcTest("jobwire-control", absl::Seconds(10)) {}

  void StartServer() { JobwiredGrpcTest::StartServer("jobwire.db"); }

  void KillAndRestart() {
    server_->Signal(SIGKILL);
    ASSERT_TRUE(server_->Exited(absl::Seconds(10)));
    StartServer();
  }

  // Every event of the job so far (its watch ends after a terminal one).
  std::vector<v1::JobEvent> Events(const std::string& id) {
    v1::WatchJobRequest request;
    request.set_id(id);
    request.set_after_seq(0);
    auto context = Call();
    auto reader = jobs_->WatchJob(context.get(), request);
    std::vector<v1::JobEvent> events;
    v1::WatchJobResponse response;
    while (reader->Read(&response)) {
      if (response.has_event()) events.push_back(response.event());
    }
    EXPECT_TRUE(reader->Finish().ok());
    return events;
  }
};

TEST_F(ControlRestartTest, UnackedCancelEndsCancelledAfterAKillAndRestart) {
  StartServer();
  const std::string id = Submit();
  {
    TestWorker worker(channel_, "w1", {"default"}, 1);
    ASSERT_TRUE(worker.NextOf(ConnectResponse::kWelcome).has_value());
    ASSERT_TRUE(worker.NextOf(ConnectResponse::kAssign).has_value());
    v1::CancelJobRequest cancel;
    cancel.set_id(id);
    cancel.set_reason("operator said stop");
    v1::Job job;
    grpc::Status s = jobs_->CancelJob(Call().get(), cancel, &job);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(job.state(), v1::Job::STATE_RUNNING);
    // The worker hears the cancel and never answers it.
    ASSERT_TRUE(worker.NextOf(ConnectResponse::kCancel).has_value());
    KillAndRestart();
  }
  v1::Job job = Get(id);
  EXPECT_EQ(job.state(), v1::Job::STATE_CANCELLED) << job.DebugString();
  EXPECT_EQ(job.error().message(), "operator said stop");

  // A new worker gets nothing: the job is not assigned again.
  TestWorker fresh(channel_, "w2", {"default"}, 1);
  ASSERT_TRUE(fresh.NextOf(ConnectResponse::kWelcome).has_value());
  EXPECT_FALSE(fresh.NextOf(ConnectResponse::kAssign, absl::Milliseconds(500))
                   .has_value());
  int running = 0;
  for (const v1::JobEvent& e : Events(id)) {
    if (e.has_state_changed() &&
        e.state_changed().to() == v1::Job::STATE_RUNNING) {
      ++running;
    }
  }
  EXPECT_EQ(running, 1) << server_->log();
}

TEST_F(ControlRestartTest, DispatchPauseHoldsAfterAKillAndRestart) {
  StartServer();
  v1::PauseDispatchRequest pause;
  pause.set_reason("upgrade");
  v1::DispatchState state;
  ASSERT_TRUE(admin_->PauseDispatch(Call().get(), pause, &state).ok());
  KillAndRestart();

  v1::ServerInfo info;
  ASSERT_TRUE(admin_->GetServerInfo(Call().get(), {}, &info).ok());
  EXPECT_TRUE(info.dispatch().paused());
  EXPECT_EQ(info.dispatch().reason(), "upgrade");
  const std::string id = Submit();
  TestWorker worker(channel_, "w1", {"default"}, 1);
  ASSERT_TRUE(worker.NextOf(ConnectResponse::kWelcome).has_value());
  EXPECT_FALSE(worker.NextOf(ConnectResponse::kAssign, absl::Milliseconds(500))
                   .has_value());

  ASSERT_TRUE(admin_->ResumeDispatch(Call().get(), {}, &state).ok());
  auto assign = worker.NextOf(ConnectResponse::kAssign);
  ASSERT_TRUE(assign.has_value());
  EXPECT_EQ(assign->assign().job().id(), id);
}

TEST_F(ControlRestartTest, ServerInfoReportsTheStoresGroupCommitTotals) {
  StartServer();
  v1::ServerInfo before;
  ASSERT_TRUE(admin_->GetServerInfo(Call().get(), {}, &before).ok());
  for (int i = 0; i < 3; ++i) Submit();

  v1::ServerInfo after;
  ASSERT_TRUE(admin_->GetServerInfo(Call().get(), {}, &after).ok());
  EXPECT_GE(after.storage().commits() - before.storage().commits(), 3);
  EXPECT_GE(
      after.storage().write_requests() - before.storage().write_requests(), 3);
  EXPECT_GE(after.storage().requests(), after.storage().write_requests());
  const auto nanos = [](const google::protobuf::Duration& d) {
    return d.seconds() * 1000000000 + d.nanos();
  };
  EXPECT_GT(nanos(after.storage().commit()), 0);  // fsyncs take time
  EXPECT_GE(nanos(after.storage().apply()), nanos(before.storage().apply()));
}

}  // namespace
}  // namespace jobwire::test
