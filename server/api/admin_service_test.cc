#include "server/api/admin_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

namespace jobwire::test {
namespace {

class AdminServiceTest : public ::testing::Test {
 protected:
  AdminServiceTest() : executor_(1) {
    char tmpl[] = "/tmp/jobwire-admin-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    db_path_ = tmpl;
    std::ofstream(db_path_) << std::string(1000, 'x');
    std::ofstream(db_path_ + "-wal") << std::string(24, 'w');
    AdminServiceImpl::Options options;
    options.version = "1.2.3";
    options.storage_path = db_path_;
    options.draining = [this] { return draining_; };
    service_ = std::make_unique<AdminServiceImpl>(options, &clock_, &executor_);
  }
  ~AdminServiceTest() override {
    std::remove(db_path_.c_str());
    std::remove((db_path_ + "-wal").c_str());
  }

  FakeClock clock_;
  Executor executor_;
  std::string db_path_;
  bool draining_ = false;
  std::unique_ptr<AdminServiceImpl> service_;
};

TEST_F(AdminServiceTest, ServerInfoReportsVersionUptimeListenersAndStorage) {
  service_->SetListeners({"unix:/tmp/j.sock", "127.0.0.1:4000"});
  clock_.Advance(absl::Seconds(90) + absl::Milliseconds(250));
  jobwire::v1::ServerInfo info;
  ASSERT_TRUE(service_->GetServerInfoBlocking(&info).ok());
  EXPECT_EQ(info.version(), "1.2.3");
  EXPECT_EQ(info.uptime().seconds(), 90);
  EXPECT_EQ(info.uptime().nanos(), 250000000);
  ASSERT_EQ(info.listeners_size(), 2);
  EXPECT_EQ(info.listeners(1), "127.0.0.1:4000");
  EXPECT_EQ(info.storage_path(), db_path_);
  EXPECT_EQ(info.storage_bytes(), 1024);
  EXPECT_FALSE(info.draining());
}

TEST_F(AdminServiceTest, ServerInfoReportsWorkersAndWatchersFromTheServices) {
  AdminServiceImpl::Options options;
  options.workers = [] { return 3; };
  options.watchers = [] { return 7; };
  AdminServiceImpl service(options, &clock_, &executor_);
  jobwire::v1::ServerInfo info;
  ASSERT_TRUE(service.GetServerInfoBlocking(&info).ok());
  EXPECT_EQ(info.workers(), 3);
  EXPECT_EQ(info.watchers(), 7);
  EXPECT_TRUE(info.job_counts().empty());
}

TEST_F(AdminServiceTest, ServerInfoReportsDraining) {
  draining_ = true;
  jobwire::v1::ServerInfo info;
  ASSERT_TRUE(service_->GetServerInfoBlocking(&info).ok());
  EXPECT_TRUE(info.draining());
}

TEST_F(AdminServiceTest, RpcAnswersInfoAndUnimplementedMethodsSayWhich) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service_.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = jobwire::v1::AdminService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  grpc::ClientContext info_context;
  jobwire::v1::ServerInfo info;
  ASSERT_TRUE(stub->GetServerInfo(&info_context, {}, &info).ok());
  EXPECT_EQ(info.version(), "1.2.3");

  grpc::ClientContext queues_context;
  jobwire::v1::ListQueuesResponse queues;
  grpc::Status s = stub->ListQueues(&queues_context, {}, &queues);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(s.error_message().find("ListQueues"), std::string::npos);

  grpc::ClientContext backup_context;
  auto reader = stub->Backup(&backup_context, {});
  jobwire::v1::BackupChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
  server->Shutdown();
}

}  // namespace
}  // namespace jobwire::test
