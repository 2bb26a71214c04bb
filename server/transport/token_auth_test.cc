#include "server/transport/token_auth.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "server/transport/access_log.h"

namespace jobwire::test {
namespace {

TEST(TokenAuthTest, HealthAndReflectionAreOpen) {
  EXPECT_TRUE(IsOpenMethod("/grpc.health.v1.Health/Check"));
  EXPECT_TRUE(IsOpenMethod("/grpc.health.v1.Health/Watch"));
  EXPECT_TRUE(IsOpenMethod(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
  EXPECT_TRUE(IsOpenMethod(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
  EXPECT_FALSE(IsOpenMethod("/jobwire.v1.JobService/SubmitJob"));
  EXPECT_FALSE(IsOpenMethod("/grpc.health.v1.HealthX/Check"));
  EXPECT_FALSE(IsOpenMethod(""));
}

TEST(TokenAuthTest, BearerTokenMustMatchExactly) {
  EXPECT_TRUE(BearerTokenMatches("Bearer s3cret", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("Bearer s3cretX", "s3cret"));
  // The scheme is case-insensitive (RFC 7235).
  EXPECT_TRUE(BearerTokenMatches("bearer s3cret", "s3cret"));
  EXPECT_TRUE(BearerTokenMatches("BEARER  s3cret", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("Basic s3cret", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("Bearers3cret", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("s3cret", "s3cret"));
  EXPECT_FALSE(BearerTokenMatches("Bearer ", ""));
}

// A real server with the token credentials. The services are the generated
// base classes: a call that gets past auth answers UNIMPLEMENTED.
class TokenAuthServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", TokenServerCredentials("s3cret"),
                             &port);
    builder.RegisterService(&health_);
    builder.RegisterService(&admin_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override { server_->Shutdown(); }

  grpc::StatusCode CallAdmin(const std::string& authorization) {
    auto stub = jobwire::v1::AdminService::NewStub(channel_);
    grpc::ClientContext context;
    if (!authorization.empty())
      context.AddMetadata("authorization", authorization);
    jobwire::v1::ServerInfo info;
    return stub->GetServerInfo(&context, {}, &info).error_code();
  }

  grpc::health::v1::Health::CallbackService health_;
  jobwire::v1::AdminService::CallbackService admin_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(TokenAuthServerTest, CallWithoutTokenIsUnauthenticated) {
  EXPECT_EQ(CallAdmin(""), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TokenAuthServerTest, CallWithWrongTokenIsUnauthenticated) {
  EXPECT_EQ(CallAdmin("Bearer nope"), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TokenAuthServerTest, CallWithTokenReachesTheService) {
  EXPECT_EQ(CallAdmin("Bearer s3cret"), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(CallAdmin("bearer s3cret"), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(TokenAuthServerTest, HealthNeedsNoToken) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  EXPECT_EQ(stub->Check(&context, {}, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

// Records, on each GetServerInfo, the caller the access log names for it
// and how many properties the call's auth context holds.
class CallerNamingAdmin final
    : public jobwire::v1::AdminService::CallbackService {
 public:
  explicit CallerNamingAdmin(const AccessLog* log) : log_(log) {}
  grpc::ServerUnaryReactor* GetServerInfo(
      grpc::CallbackServerContext* context,
      const jobwire::v1::GetServerInfoRequest*,
      jobwire::v1::ServerInfo*) override {
    auto it = context->client_metadata().find("authorization");
    const absl::string_view authorization =
        it == context->client_metadata().end()
            ? absl::string_view()
            : absl::string_view(it->second.data(), it->second.size());
    size_t properties = 0;
    for (auto p = context->auth_context()->begin();
         p != context->auth_context()->end(); ++p) {
      ++properties;
    }
    {
      absl::MutexLock lock(&mu_);
      callers_.push_back(
          log_->CallerOf(authorization, context->auth_context().get()));
      properties_.push_back(properties);
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::vector<std::string> callers() {
    absl::MutexLock lock(&mu_);
    return callers_;
  }
  std::vector<size_t> properties() {
    absl::MutexLock lock(&mu_);
    return properties_;
  }

 private:
  const AccessLog* const log_;
  absl::Mutex mu_;
  std::vector<std::string> callers_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> properties_ ABSL_GUARDED_BY(mu_);
};

// #27: gRPC 1.51 hands the auth processor the connection's auth context,
// shared by all its calls: a caller recorded there named the connection's
// first caller on every later call (and, added per call, grew the
// connection by ~90 bytes a call). Each call is named by its own token, and
// the connection's context gains nothing.
TEST(TokenAuthConnectionTest, EachCallOnOneConnectionIsNamedByItsOwnToken) {
  char dir[] = "/tmp/jobwire-token-auth-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string file = std::string(dir) + "/tokens";
  {
    std::ofstream out(file);
    out << "ci s3cret-ci read\ndash s3cret-dash read\n";
  }
  absl::StatusOr<std::shared_ptr<TokenTable>> table = TokenTable::Load(file);
  ASSERT_TRUE(table.ok()) << table.status();
  AccessLog log("", *table);
  CallerNamingAdmin admin(&log);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0",
                           TokenServerCredentials("", nullptr, *table), &port);
  builder.RegisterService(&admin);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = jobwire::v1::AdminService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  const std::vector<std::string> tokens = {"s3cret-ci", "s3cret-dash",
                                           "s3cret-dash", "s3cret-ci"};
  for (int round = 0; round < 25; ++round) {
    for (const std::string& token : tokens) {
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + token);
      jobwire::v1::ServerInfo info;
      ASSERT_TRUE(stub->GetServerInfo(&context, {}, &info).ok());
    }
  }
  const std::vector<std::string> callers = admin.callers();
  ASSERT_EQ(callers.size(), 100u);
  for (size_t i = 0; i < callers.size(); ++i) {
    EXPECT_EQ(callers[i],
              tokens[i % 4] == "s3cret-ci" ? "token:ci" : "token:dash")
        << "call " << i;
  }
  const std::vector<size_t> properties = admin.properties();
  EXPECT_EQ(properties.front(), properties.back());
  server->Shutdown();
  std::remove(file.c_str());
  ::rmdir(dir);
}

TEST(AccessLogTest, NamesTheTokenThenTheCertificateThenAnonymous) {
  AccessLog log("s3cret", nullptr);
  EXPECT_EQ(log.CallerOf("Bearer s3cret", nullptr), "token:token");
  EXPECT_EQ(log.CallerOf("bearer s3cret", nullptr), "token:token");
  EXPECT_EQ(log.CallerOf("Bearer wrong!", nullptr), "anonymous");
  EXPECT_EQ(log.CallerOf("", nullptr), "anonymous");
  AccessLog open("", nullptr);
  EXPECT_EQ(open.CallerOf("Bearer s3cret", nullptr), "anonymous");
}

TEST(TokenAuthCredentialsTest, EmptyTokenMeansNoAuth) {
  jobwire::v1::AdminService::CallbackService admin;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", TokenServerCredentials(""), &port);
  builder.RegisterService(&admin);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = jobwire::v1::AdminService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  jobwire::v1::ServerInfo info;
  EXPECT_EQ(stub->GetServerInfo(&context, {}, &info).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  server->Shutdown();
}

}  // namespace
}  // namespace jobwire::test
