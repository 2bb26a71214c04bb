#include "server/api/health_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

namespace jobwire::test {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = Health::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                            grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    service_.Shutdown(absl::Now());
    server_->Shutdown();
  }

  grpc::Status Check(const std::string& name, HealthCheckResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    HealthCheckRequest request;
    request.set_service(name);
    return stub_->Check(&context, request, response);
  }

  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> Watch(
      grpc::ClientContext* context, const std::string& name) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(10));
    HealthCheckRequest request;
    request.set_service(name);
    return stub_->Watch(context, request);
  }

  HealthServiceImpl service_{{"jobwire.v1.JobService"}};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Health::Stub> stub_;
};

TEST_F(HealthServiceTest, CheckAnswersServingForServerAndKnownServices) {
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(Check("jobwire.v1.JobService", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
}

TEST_F(HealthServiceTest, CheckOfUnknownServiceIsNotFound) {
  HealthCheckResponse response;
  EXPECT_EQ(Check("nope.Service", &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(HealthServiceTest, CheckSeesSetServingStatus) {
  service_.SetServingStatus("jobwire.v1.JobService",
                            HealthCheckResponse::NOT_SERVING);
  HealthCheckResponse response;
  ASSERT_TRUE(Check("jobwire.v1.JobService", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthServiceTest, WatchSendsCurrentStatusThenEveryChange) {
  grpc::ClientContext context;
  auto reader = Watch(&context, "jobwire.v1.JobService");
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  EXPECT_EQ(service_.watchers(), 1);

  service_.SetServingStatus("jobwire.v1.JobService",
                            HealthCheckResponse::NOT_SERVING);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  context.TryCancel();
}

TEST_F(HealthServiceTest, WatchOfUnknownServiceSaysServiceUnknownAndStaysOpen) {
  grpc::ClientContext context;
  auto reader = Watch(&context, "later.Service");
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  service_.SetServingStatus("later.Service", HealthCheckResponse::SERVING);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  context.TryCancel();
}

TEST_F(HealthServiceTest, ShutdownSendsNotServingThenEndsWatchWithUnavailable) {
  grpc::ClientContext context;
  auto reader = Watch(&context, "");
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  service_.Shutdown(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(HealthServiceTest, AfterShutdownCheckIsNotServingAndSetIsIgnored) {
  service_.Shutdown(absl::Now());
  service_.SetServingStatus("", HealthCheckResponse::SERVING);
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthServiceTest, CancelledWatchIsRemoved) {
  {
    grpc::ClientContext context;
    auto reader = Watch(&context, "");
    HealthCheckResponse response;
    ASSERT_TRUE(reader->Read(&response));
    context.TryCancel();
    reader->Finish();
  }
  // OnDone runs on a gRPC thread after the client sees the cancel; a new
  // watch proves the service still serves, and Shutdown in TearDown must not
  // touch the finished reactor.
  grpc::ClientContext context;
  auto reader = Watch(&context, "");
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  context.TryCancel();
}

}  // namespace
}  // namespace jobwire::test
