// JobwiredGrpcTest: a test fixture over the real jobwired (JobwiredProcess)
// and its gRPC API, for the tests that start, kill and restart the server
// on one database: StartServer (again after a SIGKILL) connects the
// JobService and AdminService stubs; Submit and Get are the calls every such
// test makes. The fixture's folder is removed after a test that passed.
//
// Not thread-safe: the test's thread drives it.
#ifndef JOBWIRE_TESTS_JOBWIRED_GRPC_TEST_H_
#define JOBWIRE_TESTS_JOBWIRED_GRPC_TEST_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {

class JobwiredGrpcTest : public ::testing::Test {
 protected:
  // `dir_prefix` names the temporary folder (/tmp/PREFIX-XXXXXX); each call
  // of Call() gets `call_timeout`.
  JobwiredGrpcTest(std::string dir_prefix, absl::Duration call_timeout)
      : dir_prefix_(std::move(dir_prefix)), call_timeout_(call_timeout) {}

  void SetUp() override { dir_ = MakeTempDir(dir_prefix_); }
  void TearDown() override {
    server_.reset();
    if (!HasFailure()) RemoveDir(dir_);
  }

  // Starts jobwired in dir_ on 127.0.0.1:0 with `--db db` (a path relative
  // to dir_ or a postgres: string) and `flags`, and connects channel_, jobs_
  // and admin_ to it. A fatal failure (with the server's log) when it does
  // not listen.
  void StartServer(const std::string& db,
                   const std::vector<std::string>& flags = {}) {
    std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--db", db};
    args.insert(args.end(), flags.begin(), flags.end());
    server_ = std::make_unique<JobwiredProcess>(dir_, args);
    std::vector<std::string> addresses = server_->WaitListening(1);
    ASSERT_EQ(addresses.size(), 1u) << server_->log();
    channel_ =
        grpc::CreateChannel(addresses[0], grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  // A context whose deadline is call_timeout from now.
  std::unique_ptr<grpc::ClientContext> Call() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + call_timeout_));
    return context;
  }

  // Submits a job of kind "k" (a failure when the call fails); its id.
  std::string Submit() {
    v1::SubmitJobRequest request;
    request.mutable_job()->set_kind("k");
    v1::SubmitJobResponse response;
    grpc::Status s = jobs_->SubmitJob(Call().get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.job().id();
  }

  // The job `id` (a failure when the call fails).
  v1::Job Get(const std::string& id) {
    v1::GetJobRequest request;
    request.set_id(id);
    v1::Job job;
    grpc::Status s = jobs_->GetJob(Call().get(), request, &job);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return job;
  }

  std::string dir_;
  std::unique_ptr<JobwiredProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;

 private:
  const std::string dir_prefix_;
  const absl::Duration call_timeout_;
};

}  // namespace jobwire::test

#endif  // JOBWIRE_TESTS_JOBWIRED_GRPC_TEST_H_
