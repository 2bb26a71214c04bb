#include "server/app/app.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "server/metrics/promtool_check.h"

namespace jobwire::test {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// The whole response to `GET target` on the HTTP face at Unix socket `path`
// (HTTP/1.1, Connection: close); empty when it cannot connect.
std::string HttpGetOverUnixSocket(const std::string& path,
                                  const std::string& target) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = "GET " + target +
                              " HTTP/1.1\r\nHost: localhost\r\n"
                              "Connection: close\r\n\r\n";
  if (::write(fd, request.data(), request.size()) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "";
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  ::close(fd);
  return response;
}

class AppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jobwire-app-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.listen = {"unix:" + dir_ + "/run/j.sock", "127.0.0.1:0"};
    options_.db_path = dir_ + "/data/j.db";
    options_.shutdown_grace = absl::Seconds(2);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  static grpc::health::v1::HealthCheckResponse::ServingStatus Health(
      const std::string& target) {
    auto stub = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status s = stub->Check(&context, {}, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.status();
  }

  std::string dir_;
  ServerOptions options_;
};

TEST_F(AppTest, ServesHealthOnEveryListenerWithResolvedAddresses) {
  auto app = App::Start(options_);
  ASSERT_TRUE(app.ok()) << app.status();
  const auto& addresses = (*app)->addresses();
  ASSERT_EQ(addresses.size(), 2u);
  EXPECT_EQ(addresses[0], "unix:" + dir_ + "/run/j.sock");
  EXPECT_NE(addresses[1], "127.0.0.1:0");
  for (const std::string& a : addresses) {
    EXPECT_EQ(Health(a), grpc::health::v1::HealthCheckResponse::SERVING) << a;
  }
  EXPECT_TRUE(Exists(dir_ + "/data"));
}

TEST_F(AppTest, MetricsAreWiredToTheServer) {
  auto app = App::Start(options_);
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_NE((*app)->metrics(), nullptr);
  const std::string text = (*app)->metrics()->RenderBlocking();
  EXPECT_NE(text.find("\njobwire_workers_connected 0\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\njobwire_grpc_watch_streams 0\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\njobwire_dispatch_paused 0\n"), std::string::npos)
      << text;
}

TEST_F(AppTest, ServesMetricsOverHttpThatMoveWithJobsAndPassPromtool) {
  const std::string http_socket = dir_ + "/run/h.sock";
  options_.http_listen = {"unix:" + http_socket};
  auto app = App::Start(options_);
  ASSERT_TRUE(app.ok()) << app.status();
  auto stub = jobwire::v1::JobService::NewStub(grpc::CreateChannel(
      (*app)->addresses()[0], grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    jobwire::v1::SubmitJobRequest request;
    request.mutable_job()->set_queue("emails");
    request.mutable_job()->set_kind("send");
    jobwire::v1::SubmitJobResponse response;
    grpc::Status s = stub->SubmitJob(&context, request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  const std::string response = HttpGetOverUnixSocket(http_socket, "/metrics");
  ASSERT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;
  EXPECT_NE(response.find("text/plain; version=0.0.4"), std::string::npos)
      << response;
  const size_t body_at = response.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  const std::string body = response.substr(body_at + 4);
  EXPECT_NE(body.find("\njobwire_jobs_submitted_total{queue=\"emails\"} 2\n"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("\njobwire_jobs{queue=\"emails\",state=\"queued\"} 2\n"),
            std::string::npos)
      << body;
  // This scrape's own connection.
  EXPECT_NE(body.find("\njobwire_http_connections 1\n"), std::string::npos)
      << body;
  EXPECT_NE(body.find("\njobwire_sse_streams 0\n"), std::string::npos) << body;
  const absl::Status check = PromtoolCheckMetrics(body);
  EXPECT_TRUE(check.ok()) << check;
}

TEST_F(AppTest, ServesAnAbstractUnixSocket) {
  const std::string name = "jobwire-app-test-" + std::to_string(::getpid());
  options_.listen = {"unix-abstract:" + name};
  auto app = App::Start(options_);
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_EQ((*app)->addresses()[0], "unix-abstract:" + name);
  EXPECT_EQ(Health("unix-abstract:" + name),
            grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(AppTest, SocketIsOwnerOnlyByDefault) {
  auto app = App::Start(options_);
  ASSERT_TRUE(app.ok()) << app.status();
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/run/j.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AppTest, SocketModeIsConfigurable) {
  options_.socket_mode = 0660;
  auto app = App::Start(options_);
  ASSERT_TRUE(app.ok()) << app.status();
  struct stat st;
  ASSERT_EQ(::stat((dir_ + "/run/j.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(AppTest, StopRemovesSocketAndLockFile) {
  auto app = App::Start(options_);
  ASSERT_TRUE(app.ok());
  EXPECT_TRUE(Exists(dir_ + "/run/j.sock.lock"));
  (*app)->Stop();
  EXPECT_TRUE((*app)->draining());
  EXPECT_FALSE(Exists(dir_ + "/run/j.sock"));
  EXPECT_FALSE(Exists(dir_ + "/run/j.sock.lock"));
}

TEST_F(AppTest, SecondAppOnTheSameSocketFailsAndTheFirstKeepsServing) {
  auto first = App::Start(options_);
  ASSERT_TRUE(first.ok());
  auto second = App::Start(options_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Health((*first)->addresses()[0]),
            grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(AppTest, NonLoopbackTcpNeedsAToken) {
  options_.listen = {"0.0.0.0:0"};
  auto app = App::Start(options_);
  EXPECT_EQ(app.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(app.status().message().find("--auth-token"),
            absl::string_view::npos);

  options_.auth_token = "t";
  options_.insecure_allow_plaintext = true;
  auto with_token = App::Start(options_);
  EXPECT_TRUE(with_token.ok()) << with_token.status();
}

TEST_F(AppTest, BadListenAddressFailsAndLeavesNoFiles) {
  options_.listen = {"unix:" + dir_ + "/run/j.sock", "nonsense"};
  auto app = App::Start(options_);
  EXPECT_EQ(app.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Exists(dir_ + "/run/j.sock.lock"));
}

TEST_F(AppTest, SkipGraceBeforeStopMakesStopImmediate) {
  options_.shutdown_grace = absl::Hours(1);
  auto app = App::Start(options_);
  ASSERT_TRUE(app.ok());
  (*app)->SkipGrace();
  (*app)->Stop();  // would hang for an hour if the grace applied
  EXPECT_FALSE(Exists(dir_ + "/run/j.sock"));
}

}  // namespace
}  // namespace jobwire::test
