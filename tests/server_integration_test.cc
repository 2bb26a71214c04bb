// Starts the real jobwired binary (and the jobwire CLI) as processes and
// checks what a user or a supervisor sees: listeners, health, reflection,
// socket files and permissions, a second instance, stale sockets, signals,
// auth. Each test uses its own temp directory and 127.0.0.1:0.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Statement.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "proto/reflection_subset.grpc.pb.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {
namespace {

using grpc::health::v1::HealthCheckResponse;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

using ServerProcess = JobwiredProcess;

grpc::Status CheckHealth(const std::string& target,
                         HealthCheckResponse* response) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  return stub->Check(&context, {}, response);
}

bool IsServing(const std::string& target) {
  HealthCheckResponse response;
  return CheckHealth(target, &response).ok() &&
         response.status() == HealthCheckResponse::SERVING;
}

std::vector<std::string> ListServices(const std::string& target) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("*");
  std::vector<std::string> names;
  if (!stream->Write(request)) return names;
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  while (stream->Read(&response)) {
    for (const auto& s : response.list_services_response().service()) {
      names.push_back(s.name());
    }
  }
  stream->Finish();
  return names;
}

struct CliResult {
  int code;
  std::string out;
};

// Runs `shell_command` with sh; stderr is folded into `out`.
CliResult RunCommand(const std::string& shell_command) {
  std::string command = shell_command + " 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Runs the jobwire CLI; stderr is folded into `out`.
CliResult RunCli(const std::string& args) {
  return RunCommand(std::string(JOBWIRE_CLI_PATH) + " " + args);
}

// The value of string field `name` in the CLI's JSON output; "" if absent.
std::string JsonString(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\": \"";
  const size_t at = json.find(key);
  if (at == std::string::npos) return "";
  const size_t begin = at + key.size();
  return json.substr(begin, json.find('"', begin) - begin);
}

void MakeStaleSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
}

// Whether `process` has written `text` to its log within `timeout`.
bool LogSays(ChildProcess& process, const std::string& text,
             absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!absl::StrContains(process.log(), text) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::StrContains(process.log(), text);
}

class ServerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jobwire-it-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/var/j.sock";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::vector<std::string> DefaultArgs() {
    return {"--listen", "unix:var/j.sock", "--listen", "127.0.0.1:0",
            "--db",     "var/j.db"};
  }

  // The CLI's --addr for the server on socket_, with a trailing space.
  std::string CliAddr() const { return "--addr unix://" + socket_ + " "; }

  // Submits a job with `jobwire submit FLAGS`; its id, or "" on failure.
  std::string SubmitWithCli(const std::string& flags) const {
    return JsonString(RunCli(CliAddr() + "submit " + flags).out, "id");
  }

  // `jobwire watch ID` of the server on socket_, as a process.
  ChildProcess StartWatch(const std::string& id) const {
    return ChildProcess(JOBWIRE_CLI_PATH,
                        {"--addr", "unix://" + socket_, "watch", id},
                        dir_ + "/watch.log");
  }

  std::string dir_;
  std::string socket_;
};

TEST_F(ServerIntegrationTest, ServesHealthOnUnixSocketAndTcpAtOnce) {
  ServerProcess server(dir_, DefaultArgs());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  EXPECT_EQ(addresses[0], "unix:" + socket_);
  ASSERT_TRUE(absl::StartsWith(addresses[1], "127.0.0.1:"));
  EXPECT_NE(addresses[1], "127.0.0.1:0");
  EXPECT_TRUE(IsServing(addresses[0]));
  EXPECT_TRUE(IsServing(addresses[1]));
}

TEST_F(ServerIntegrationTest, ReflectionListsEveryService) {
  ServerProcess server(dir_, DefaultArgs());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  std::vector<std::string> names = ListServices(addresses[1]);
  for (const char* want :
       {"jobwire.v1.JobService", "jobwire.v1.WorkerService",
        "jobwire.v1.AdminService", "grpc.health.v1.Health"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
}

TEST_F(ServerIntegrationTest, SocketIsOwnerOnlyAndLogLinesHaveTimeAndLevel) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(Exists(socket_ + ".lock"));
  for (absl::string_view line :
       absl::StrSplit(server.log(), '\n', absl::SkipEmpty())) {
    // 2026-01-02T03:04:05.123456Z INFO ...
    EXPECT_TRUE(line.size() > 28 && line[4] == '-' && line[10] == 'T') << line;
    EXPECT_TRUE(absl::StrContains(line, " INFO ") ||
                absl::StrContains(line, " WARNING ") ||
                absl::StrContains(line, " ERROR "))
        << line;
  }
}

TEST_F(ServerIntegrationTest, JsonLogFormatWritesOneObjectPerLine) {
  std::vector<std::string> args = DefaultArgs();
  args.push_back("--log-format=json");
  ServerProcess server(dir_, args);
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  for (absl::string_view line :
       absl::StrSplit(server.log(), '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "{\"time\":\"") &&
                absl::EndsWith(line, "}"))
        << line;
    EXPECT_TRUE(absl::StrContains(line, "\"level\":\"")) << line;
  }
}

TEST_F(ServerIntegrationTest,
       SecondServerOnTheSameSocketFailsAndTheFirstGoesOn) {
  ServerProcess first(dir_, DefaultArgs());
  std::vector<std::string> addresses = first.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << first.log();

  // Its own database, the first one's socket.
  ServerProcess second(dir_,
                       {"--listen", "unix:var/j.sock", "--db", "var/other.db"});
  ASSERT_TRUE(second.Exited(absl::Seconds(20)));
  EXPECT_NE(second.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(second.log(), "another jobwired is serving"))
      << second.log();

  EXPECT_TRUE(Exists(socket_));
  EXPECT_TRUE(IsServing(addresses[0]));
}

// Two servers on one database would both dispatch its jobs, and the second
// one's start would hand the first one's running jobs back to QUEUED.
TEST_F(ServerIntegrationTest,
       SecondServerOnTheSameDatabaseFailsAndTheFirstGoesOn) {
  ServerProcess first(dir_, DefaultArgs());
  std::vector<std::string> addresses = first.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << first.log();

  ServerProcess second(dir_,
                       {"--listen", "unix:var/other.sock", "--db", "var/j.db"});
  ASSERT_TRUE(second.Exited(absl::Seconds(20)));
  EXPECT_NE(second.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(
      second.log(),
      "another jobwired is using the database " + dir_ + "/var/j.db"))
      << second.log();
  EXPECT_TRUE(absl::StrContains(second.log(), "--db")) << second.log();
  EXPECT_FALSE(Exists(dir_ + "/var/other.sock"));
  EXPECT_TRUE(IsServing(addresses[0]));

  // Once the first has stopped, the database is free again.
  first.Signal(SIGTERM);
  ASSERT_TRUE(first.Exited(absl::Seconds(20))) << first.log();
  ServerProcess third(dir_,
                      {"--listen", "unix:var/other.sock", "--db", "var/j.db"});
  EXPECT_EQ(third.WaitListening(1).size(), 1u) << third.log();
}

// A backup interrupted by a crash leaves its temporary file; the next start
// removes it, and nothing else.
TEST_F(ServerIntegrationTest, StartRemovesTheFilesOfBackupsACrashCutShort) {
  ASSERT_EQ(::mkdir((dir_ + "/var").c_str(), 0755), 0);
  for (const char* name : {"j.db.backup-a1B2c3", "j.db.backup-zzzzzz",
                           "j.db.backup-keep-me", "other.db.backup-a1B2c3"}) {
    std::ofstream(dir_ + "/var/" + name) << "partial";
  }
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  EXPECT_FALSE(Exists(dir_ + "/var/j.db.backup-a1B2c3"));
  EXPECT_FALSE(Exists(dir_ + "/var/j.db.backup-zzzzzz"));
  EXPECT_TRUE(Exists(dir_ + "/var/j.db.backup-keep-me"));
  EXPECT_TRUE(Exists(dir_ + "/var/other.db.backup-a1B2c3"));
  EXPECT_TRUE(
      absl::StrContains(server.log(), "removed 2 unfinished backup files"))
      << server.log();
}

TEST_F(ServerIntegrationTest, StaleSocketFromACrashedServerIsReplaced) {
  ASSERT_EQ(::mkdir((dir_ + "/var").c_str(), 0755), 0);
  MakeStaleSocket(socket_);
  ServerProcess server(dir_, DefaultArgs());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  EXPECT_TRUE(IsServing(addresses[0]));
}

TEST_F(ServerIntegrationTest,
       KilledServerLeavesAStaleSocketThatTheNextOneReplaces) {
  {
    ServerProcess crashed(dir_, DefaultArgs());
    ASSERT_EQ(crashed.WaitListening(2).size(), 2u) << crashed.log();
    crashed.Signal(SIGKILL);
    ASSERT_TRUE(crashed.Exited(absl::Seconds(10)));
  }
  ASSERT_TRUE(Exists(socket_));
  ServerProcess server(dir_, DefaultArgs());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  EXPECT_TRUE(IsServing(addresses[0]));
}

class StopSignalTest : public ServerIntegrationTest,
                       public ::testing::WithParamInterface<int> {};

TEST_P(StopSignalTest, ExitsZeroAndRemovesSocketAndLock) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  server.Signal(GetParam());
  ASSERT_TRUE(server.Exited(absl::Seconds(20))) << server.log();
  EXPECT_EQ(server.exit_code(), 0) << server.log();
  EXPECT_FALSE(Exists(socket_));
  EXPECT_FALSE(Exists(socket_ + ".lock"));
  EXPECT_TRUE(absl::StrContains(server.log(), "stopping")) << server.log();
}

INSTANTIATE_TEST_SUITE_P(EverySignal, StopSignalTest,
                         ::testing::Values(SIGTERM, SIGINT, SIGHUP, SIGQUIT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(sigabbrev_np(info.param));
                         });

// An open reflection stream keeps the server in its grace period.
class OpenStream {
 public:
  explicit OpenStream(const std::string& target)
      : stub_(grpc::reflection::v1alpha::ServerReflection::NewStub(
            grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))),
        stream_(stub_->ServerReflectionInfo(&context_)) {
    grpc::reflection::v1alpha::ServerReflectionRequest request;
    request.set_list_services("*");
    stream_->Write(request);
    grpc::reflection::v1alpha::ServerReflectionResponse response;
    stream_->Read(&response);  // the call is now open on the server
  }
  ~OpenStream() {
    context_.TryCancel();
    stream_->Finish();
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::reflection::v1alpha::ServerReflection::Stub> stub_;
  std::unique_ptr<grpc::ClientReaderWriter<
      grpc::reflection::v1alpha::ServerReflectionRequest,
      grpc::reflection::v1alpha::ServerReflectionResponse>>
      stream_;
};

TEST_F(ServerIntegrationTest, GracePeriodEndsOpenStreams) {
  std::vector<std::string> args = DefaultArgs();
  args.push_back("--shutdown-grace=1s");
  ServerProcess server(dir_, args);
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  OpenStream stream(addresses[1]);
  server.Signal(SIGTERM);
  ASSERT_TRUE(server.Exited(absl::Seconds(20))) << server.log();
  EXPECT_EQ(server.exit_code(), 0);
}

// With no call open, idle connections (a client that does not close them
// after the GOAWAY) do not hold a stop for the grace period.
TEST_F(ServerIntegrationTest, IdleConnectionsDoNotHoldAStop) {
  std::vector<std::string> args = DefaultArgs();
  args.push_back("--shutdown-grace=30s");
  ServerProcess server(dir_, args);
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  ASSERT_TRUE(IsServing(addresses[0]));  // its channel stays open, idle
  auto channel =
      grpc::CreateChannel(addresses[1], grpc::InsecureChannelCredentials());
  HealthCheckResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel)
                  ->Check(&context, {}, &response)
                  .ok());
  const absl::Time signalled = absl::Now();
  server.Signal(SIGTERM);
  ASSERT_TRUE(server.Exited(absl::Seconds(40))) << server.log();
  EXPECT_EQ(server.exit_code(), 0);
  // Well short of the 30 s grace (gRPC's client backup poller alone would
  // take up to 5 s to notice the GOAWAY).
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(3)) << server.log();
  EXPECT_TRUE(absl::StrContains(server.log(), "no calls open")) << server.log();
}

TEST_F(ServerIntegrationTest, SecondSignalSkipsTheGracePeriod) {
  std::vector<std::string> args = DefaultArgs();
  args.push_back("--shutdown-grace=1h");
  ServerProcess server(dir_, args);
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  OpenStream stream(addresses[1]);
  server.Signal(SIGTERM);
  EXPECT_FALSE(server.Exited(absl::Milliseconds(300)));  // held by the stream
  server.Signal(SIGINT);
  ASSERT_TRUE(server.Exited(absl::Seconds(20))) << server.log();
  EXPECT_EQ(server.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(server.log(), "skipping the grace period"));
  EXPECT_FALSE(Exists(socket_));
}

TEST_F(ServerIntegrationTest, NonLoopbackListenerWithoutTokenIsRefused) {
  ServerProcess server(dir_, {"--listen", "0.0.0.0:0", "--db", "var/j.db"});
  ASSERT_TRUE(server.Exited(absl::Seconds(20)));
  EXPECT_NE(server.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(server.log(), "--auth-token")) << server.log();
}

TEST_F(ServerIntegrationTest, TokenGuardsEverythingButHealthAndReflection) {
  ServerProcess server(dir_, {"--listen", "unix:var/j.sock", "--listen",
                              "0.0.0.0:0", "--db", "var/j.db", "--auth-token",
                              "s3cret", "--insecure-allow-plaintext"});
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  std::string tcp =
      "127.0.0.1:" + addresses[1].substr(addresses[1].rfind(':') + 1);

  EXPECT_TRUE(IsServing(tcp));
  EXPECT_FALSE(ListServices(tcp).empty());
  CliResult denied = RunCli("info --addr " + tcp);
  EXPECT_EQ(denied.code, 1);
  EXPECT_TRUE(absl::StartsWith(denied.out, "jobwire: info: UNAUTHENTICATED: "))
      << denied.out;
  CliResult allowed = RunCli("info --token s3cret --addr unix://" + socket_);
  EXPECT_EQ(allowed.code, 0) << allowed.out;
}

TEST_F(ServerIntegrationTest, CliHealthAndInfoTalkToTheServer) {
  ServerProcess server(dir_, DefaultArgs());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();

  CliResult health = RunCli("health --addr " + addresses[0]);
  EXPECT_EQ(health.code, 0);
  EXPECT_EQ(health.out, "SERVING\n");
  CliResult info = RunCli("--addr " + addresses[1] + " info");
  EXPECT_EQ(info.code, 0) << info.out;
  EXPECT_TRUE(absl::StrContains(info.out, "\"version\"")) << info.out;
  EXPECT_TRUE(absl::StrContains(info.out, dir_ + "/var/j.db")) << info.out;

  CliResult unknown =
      RunCli("--addr " + addresses[1] + " health --service nope.Service");
  EXPECT_EQ(unknown.code, 1);
  EXPECT_TRUE(absl::StartsWith(unknown.out, "jobwire: health: NOT_FOUND: "))
      << unknown.out;
}

// 40 jobs of 300 KB args are 12 MB: ListJobs pages end at the server's
// byte budget, below the 4 MiB a gRPC client accepts by default, and every
// job comes back across the pages, to a gRPC client and to `jobwire list`.
TEST_F(ServerIntegrationTest, ListPagesStayUnderTheClientMessageLimit) {
  ServerProcess server(dir_, DefaultArgs());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  auto stub = v1::JobService::NewStub(
      grpc::CreateChannel(addresses[1], grpc::InsecureChannelCredentials()));
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    v1::SubmitJobRequest request;
    request.mutable_job()->set_kind("big");
    (*request.mutable_job()->mutable_args()->mutable_fields())["blob"]
        .set_string_value(
            std::string(300 * 1000, static_cast<char>('a' + i % 26)));
    v1::SubmitJobResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->SubmitJob(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ids.push_back(response.job().id());
  }

  v1::ListJobsRequest request;
  request.set_page_size(1000);
  std::vector<std::string> listed;
  int pages = 0;
  while (true) {
    v1::ListJobsResponse page;
    grpc::ClientContext context;
    grpc::Status status = stub->ListJobs(&context, request, &page);
    ASSERT_TRUE(status.ok())
        << status.error_code() << " " << status.error_message();
    ++pages;
    EXPECT_LE(page.ByteSizeLong(), 3u << 20);
    EXPECT_GE(page.jobs_size(), 1);
    for (const v1::Job& job : page.jobs()) {
      listed.push_back(job.id());
      EXPECT_EQ(job.args().fields().at("blob").string_value().size(),
                300u * 1000);
    }
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(listed, ids);
  EXPECT_GE(pages, 4);  // 12 MB in pages of at most 3 MiB

  CliResult cli = RunCli("--addr " + addresses[1] + " list --limit 1000");
  ASSERT_EQ(cli.code, 0) << cli.out.substr(0, 2000);
  for (const std::string& id : ids) EXPECT_TRUE(absl::StrContains(cli.out, id));
  EXPECT_FALSE(absl::StrContains(cli.out, "more jobs match")) << cli.out;
}

TEST_F(ServerIntegrationTest, CliPausesResumesAndListsQueues) {
  ServerProcess server(dir_, DefaultArgs());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  const std::string addr = "--addr " + addresses[1] + " ";

  CliResult paused = RunCli(addr + "pause --queue mail --for 10m");
  EXPECT_EQ(paused.code, 0) << paused.out;
  EXPECT_TRUE(absl::StartsWith(paused.out, "queue mail paused until "))
      << paused.out;
  CliResult table = RunCli(addr + "queues");
  EXPECT_EQ(table.code, 0) << table.out;
  EXPECT_TRUE(absl::StartsWith(table.out, "QUEUE ")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, " WORKERS    FREE ")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "mail ")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "paused until")) << table.out;
  CliResult resumed = RunCli(addr + "resume --queue mail");
  EXPECT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_EQ(resumed.out, "queue mail active\n");
  // The same answers as JSON, the flag before or after the others.
  CliResult paused_json = RunCli(addr + "pause -o json --queue mail");
  EXPECT_EQ(paused_json.code, 0) << paused_json.out;
  EXPECT_EQ(JsonString(paused_json.out, "name"), "mail") << paused_json.out;
  EXPECT_TRUE(absl::StrContains(paused_json.out, "\"paused\": true"))
      << paused_json.out;
  CliResult resumed_json = RunCli(addr + "resume --queue mail --output json");
  EXPECT_EQ(JsonString(resumed_json.out, "name"), "mail") << resumed_json.out;
  CliResult set_json = RunCli(addr + "set-queue mail --weight 3 -o json");
  EXPECT_EQ(set_json.code, 0) << set_json.out;
  EXPECT_TRUE(absl::StrContains(set_json.out, "\"weight\": 3")) << set_json.out;
  CliResult queues_json = RunCli(addr + "queues -o json");
  EXPECT_EQ(queues_json.code, 0) << queues_json.out;
  EXPECT_TRUE(absl::StrContains(queues_json.out, "\"queues\": ["))
      << queues_json.out;

  CliResult dispatch = RunCli(addr + "pause --reason 'db upgrade'");
  EXPECT_EQ(dispatch.code, 0) << dispatch.out;
  EXPECT_EQ(dispatch.out, "dispatch paused: db upgrade\n");
  CliResult info = RunCli(addr + "info");
  EXPECT_TRUE(absl::StrContains(info.out, "\"paused\": true")) << info.out;
  EXPECT_EQ(RunCli(addr + "resume").out, "dispatch resumed\n");

  // Usage errors name the flag.
  CliResult no_queue = RunCli(addr + "pause --for 10m");
  EXPECT_EQ(no_queue.code, 2);
  EXPECT_TRUE(absl::StrContains(no_queue.out, "--for: needs --queue"))
      << no_queue.out;
  CliResult bad_name = RunCli(addr + "pause --queue 'Bad Name'");
  EXPECT_EQ(bad_name.code, 2) << bad_name.out;
  EXPECT_TRUE(absl::StrContains(bad_name.out, "--queue: ")) << bad_name.out;
  CliResult unknown = RunCli(addr + "resume --queue never-seen");
  EXPECT_EQ(unknown.code, 1);
  EXPECT_TRUE(absl::StrContains(unknown.out, "NOT_FOUND")) << unknown.out;
}

// The default address is the user's (clients/cpp/default_address.h), the
// same from any folder; the old relative form still works when given.
TEST_F(ServerIntegrationTest, CliDefaultAddressDoesNotDependOnTheFolder) {
  ServerProcess server(
      dir_, {"--listen", "unix:var/jobwire.sock", "--db", "var/j.db"});
  ASSERT_EQ(server.WaitListening(1).size(), 1u) << server.log();
  std::string relative = "cd " + dir_ + " && " + JOBWIRE_CLI_PATH +
                         " health --addr unix:var/jobwire.sock";
  EXPECT_EQ(std::system(relative.c_str()), 0);
  // $XDG_RUNTIME_DIR/jobwire.sock, whatever the current folder.
  std::string from_root =
      "cd / && env -u JOBWIRE_ADDR XDG_RUNTIME_DIR=" + dir_ + "/var " +
      JOBWIRE_CLI_PATH + " health";
  EXPECT_EQ(std::system(from_root.c_str()), 0);
}

// `jobwire watch` across a restart: it says the server is draining and
// closes its stream at once (so the stop is not held for the hour of grace),
// keeps trying while the server is away, and resumes from its cursor about a
// second after the server is back (the CLI caps gRPC's reconnect backoff,
// whose default has grown to seconds after such an outage).
TEST_F(ServerIntegrationTest, CliWatchResumesSoonAfterTheServerRestarts) {
  std::vector<std::string> args = DefaultArgs();
  args.push_back("--shutdown-grace=1h");
  auto server = std::make_unique<ServerProcess>(dir_, args);
  ASSERT_EQ(server->WaitListening(2).size(), 2u) << server->log();
  const std::string addr = CliAddr();
  const std::string id = SubmitWithCli("--kind slow");
  ASSERT_FALSE(id.empty());
  ChildProcess watch = StartWatch(id);
  ASSERT_TRUE(LogSays(watch, id + " QUEUED", absl::Seconds(10))) << watch.log();

  server->Signal(SIGTERM);
  ASSERT_TRUE(LogSays(watch, "server draining; will resume", absl::Seconds(10)))
      << watch.log();
  // Held by the watch, it would take the hour.
  ASSERT_TRUE(server->Exited(Budget(absl::Seconds(20)))) << server->log();
  EXPECT_EQ(server->exit_code(), 0);
  server.reset();
  // Away for 6 s: gRPC's default reconnect backoff would then wait about
  // 3 s more after the restart before its next attempt.
  absl::SleepFor(absl::Seconds(6));
  EXPECT_FALSE(watch.Exited(absl::ZeroDuration())) << watch.log();

  server = std::make_unique<ServerProcess>(dir_, args);
  ASSERT_EQ(server->WaitListening(2).size(), 2u) << server->log();
  CliResult cancelled = RunCli(addr + "cancel " + id);
  ASSERT_EQ(cancelled.code, 0) << cancelled.out;
  // The channel reconnects within ~1 s of the restart.
  ASSERT_TRUE(watch.Exited(absl::Milliseconds(2500))) << watch.log();
  EXPECT_NE(watch.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(watch.log(), id + " QUEUED -> CANCELLED"))
      << watch.log();
  EXPECT_TRUE(absl::StrContains(watch.log(), "was cancelled")) << watch.log();
}

// `watch --filter`: every job the filter matches until all have ended, a
// line each time one ends (into a pipe), counting jobs that had ended
// before it started.
TEST_F(ServerIntegrationTest, CliWatchOfAFilterFollowsEveryJobItMatches) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(SubmitWithCli("--kind k --label batch=b1"));
  ASSERT_FALSE(SubmitWithCli("--kind k --label batch=b2").empty());
  ASSERT_EQ(RunCli(addr + "cancel " + ids[0]).code, 0);
  ChildProcess watch(JOBWIRE_CLI_PATH,
                     {"--addr", "unix://" + socket_, "watch", "--filter",
                      "labels.batch = \"b1\""},
                     dir_ + "/watch.log");
  ASSERT_TRUE(LogSays(watch, "1/3 ended: 0 succeeded, 0 failed, 1 cancelled",
                      absl::Seconds(10)))
      << watch.log();
  ASSERT_EQ(RunCli(addr + "cancel " + ids[1]).code, 0);
  ASSERT_TRUE(LogSays(watch, "2/3 ended", absl::Seconds(10))) << watch.log();
  ASSERT_EQ(RunCli(addr + "cancel " + ids[2]).code, 0);
  ASSERT_TRUE(watch.Exited(absl::Seconds(10))) << watch.log();
  EXPECT_EQ(watch.exit_code(), 1) << watch.log();
  EXPECT_TRUE(absl::StrContains(watch.log(),
                                "3/3 ended: 0 succeeded, 0 failed, 3 "
                                "cancelled; 0 running;"))
      << watch.log();
  EXPECT_TRUE(absl::StrContains(watch.log(), "3 of 3 jobs did not succeed"))
      << watch.log();
  // Nothing to wait for: it says so at once.
  CliResult done = RunCli(addr + "watch --filter 'labels.batch = \"b1\"'");
  EXPECT_EQ(done.code, 1) << done.out;
  EXPECT_TRUE(absl::StartsWith(done.out, "3/3 ended")) << done.out;
  CliResult both = RunCli(addr + "watch --filter '' " + ids[0]);
  EXPECT_EQ(both.code, 2) << both.out;

  // -o json: only the events after the list, not those of the jobs' past
  // (j1's first job's cancel); none at all if the list saw both ended.
  const std::string j1 = SubmitWithCli("--kind k --label batch=j1");
  const std::string j2 = SubmitWithCli("--kind k --label batch=j1");
  ASSERT_EQ(RunCli(addr + "cancel " + j1).code, 0);
  ChildProcess json(JOBWIRE_CLI_PATH,
                    {"--addr", "unix://" + socket_, "watch", "-o", "json",
                     "--filter", "labels.batch = \"j1\""},
                    dir_ + "/watch-json.log");
  ASSERT_EQ(RunCli(addr + "cancel " + j2).code, 0);
  ASSERT_TRUE(json.Exited(absl::Seconds(10))) << json.log();
  EXPECT_FALSE(absl::StrContains(json.log(), j1)) << json.log();
}

// `submit-batch --watch`: the submitted jobs, followed to their end by a real
// `jobwire worker --exec` (exit 0: all succeeded); again with the same
// request ids (the jobs exist, followed by id); cancelled jobs exit 1.
TEST_F(ServerIntegrationTest, CliSubmitBatchWatchFollowsTheSubmittedJobs) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  const std::string file = dir_ + "/pb.jsonl";
  std::ofstream(file) << "{\"job\": {\"kind\": \"k\", \"queue\": \"pb\"}, "
                         "\"request_id\": \"pb1\"}\n"
                         "{\"job\": {\"kind\": \"k\", \"queue\": \"pb\"}, "
                         "\"request_id\": \"pb2\"}\n"
                         "{\"job\": {\"kind\": \"k\", \"queue\": \"pb\"}, "
                         "\"request_id\": \"pb3\"}\n";
  // Not in the batch: the bar counts 3 jobs, not 4.
  ASSERT_FALSE(SubmitWithCli("--kind k --queue pb").empty());
  ChildProcess watch(
      JOBWIRE_CLI_PATH,
      {"--addr", "unix://" + socket_, "submit-batch", file, "--watch"},
      dir_ + "/batch-watch.log");
  ASSERT_TRUE(LogSays(watch, "0/3 ended", absl::Seconds(10))) << watch.log();
  ChildProcess worker(JOBWIRE_CLI_PATH,
                      {"worker", "--addr", "unix://" + socket_, "--queue", "pb",
                       "--exec", "true"},
                      dir_ + "/pb-worker.log");
  ASSERT_TRUE(watch.Exited(absl::Seconds(20))) << watch.log() << worker.log();
  EXPECT_EQ(watch.exit_code(), 0) << watch.log();
  EXPECT_TRUE(absl::StrContains(watch.log(),
                                "3/3 ended: 3 succeeded, 0 failed, 0 "
                                "cancelled; 0 running;"))
      << watch.log();
  EXPECT_FALSE(absl::StrContains(watch.log(), "/4 ended")) << watch.log();
  worker.Signal(SIGTERM);
  ASSERT_TRUE(worker.Exited(absl::Seconds(10))) << worker.log();

  // The same request ids: the jobs that exist, followed by id.
  CliResult again = RunCli(addr + "submit-batch --watch " + file);
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_TRUE(absl::StrContains(again.out, "3 jobs, 0 new")) << again.out;
  EXPECT_TRUE(absl::StrContains(again.out, "3/3 ended: 3 succeeded"))
      << again.out;
  // On a terminal (script(1) gives it one): one bar, redrawn in place.
  CliResult tty = RunCommand(
      absl::StrCat("script -qec '", JOBWIRE_CLI_PATH, " --addr unix://",
                   socket_, " submit-batch --watch ", file, "' /dev/null"));
  EXPECT_EQ(tty.code, 0) << tty.out;
  EXPECT_TRUE(absl::StrContains(
      tty.out, absl::StrCat("\r[", std::string(30, '#'),
                            "] 3/3 ended: 3 succeeded, 0 failed")))
      << tty.out;
  EXPECT_TRUE(absl::StrContains(tty.out, "\x1b[K")) << tty.out;

  // Nobody runs queue "idle": cancelled, they did not succeed.
  const std::string idle = dir_ + "/idle.jsonl";
  std::ofstream(idle) << "{\"job\": {\"kind\": \"k\", \"queue\": \"idle\"}}\n"
                         "{\"job\": {\"kind\": \"k\", \"queue\": \"idle\"}}\n";
  ChildProcess cancelled(
      JOBWIRE_CLI_PATH,
      {"--addr", "unix://" + socket_, "submit-batch", idle, "--watch"},
      dir_ + "/idle-watch.log");
  ASSERT_TRUE(LogSays(cancelled, "0/2 ended", absl::Seconds(10)))
      << cancelled.log();
  ASSERT_EQ(
      RunCli(addr + "bulk --filter 'queue = \"idle\"' --action cancel").code,
      0);
  ASSERT_TRUE(cancelled.Exited(absl::Seconds(10))) << cancelled.log();
  EXPECT_EQ(cancelled.exit_code(), 1) << cancelled.log();
  EXPECT_TRUE(absl::StrContains(cancelled.log(), "2 of 2 jobs did not succeed"))
      << cancelled.log();
}

// #27: six jobs of 900 KiB are 5.4 MiB, over the server's 4 MiB request
// limit as one batch. submit-batch ends a batch before 4 MiB, so they go
// in; a line the server refuses in such a batch is still named by number.
TEST_F(ServerIntegrationTest, CliSubmitBatchSplitsBatchesUnderTheByteLimit) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  // 900 KiB of payload: base64 in JSON, 4 characters per 3 bytes.
  const std::string payload(900 * 1024 / 3 * 4, 'A');
  const std::string big = dir_ + "/big.jsonl";
  {
    std::ofstream out(big);
    for (int i = 0; i < 6; ++i) {
      out << "{\"job\": {\"kind\": \"k\", \"payload\": \"" << payload
          << "\"}}\n";
    }
  }
  CliResult ok = RunCli(addr + "submit-batch " + big);
  EXPECT_EQ(ok.code, 0) << ok.out.substr(0, 2000);
  EXPECT_TRUE(absl::StrContains(ok.out, "6 jobs, 6 new"))
      << ok.out.substr(0, 2000);
  {
    std::ofstream out(big, std::ios::app);
    out << "{\"job\": {\"kind\": \"k\", \"queue\": \"no spaces\"}}\n";
  }
  CliResult refused = RunCli(addr + "submit-batch " + big);
  EXPECT_NE(refused.code, 0);
  EXPECT_TRUE(absl::StrContains(refused.out, "line 7: job.queue"))
      << refused.out.substr(0, 2000);
  EXPECT_TRUE(
      absl::StrContains(refused.out, "the 4 jobs before line 5 were submitted"))
      << refused.out.substr(0, 2000);
}

// `submit-batch --watch` follows the ids its SubmitJobs replies name, from
// a cursor taken before its first submit: no label is added (a job may have
// all 64 of its own), and any number of the jobs may have existed before
// (hundreds here, listed by id), while jobs outside the batch, even in the
// same queue and submitted meanwhile, are not counted.
TEST_F(ServerIntegrationTest,
       CliSubmitBatchWatchFollowsExistingJobsAndFullLabelSetsWithoutALabel) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  const std::string many = dir_ + "/many.jsonl";
  {
    std::ofstream out(many);
    for (int i = 0; i < 350; ++i) {
      out << "{\"job\": {\"kind\": \"k\", \"queue\": \"many\"}, "
             "\"request_id\": \"m"
          << i << "\"}\n";
    }
  }
  CliResult first = RunCli(addr + "submit-batch " + many);
  ASSERT_EQ(first.code, 0) << first.out;
  ASSERT_EQ(
      RunCli(addr + "bulk --filter 'queue = \"many\"' --action cancel").code,
      0);
  // Every job existed, and had ended: 350 of them, far past a filter's
  // length, followed by id.
  CliResult again = RunCli(addr + "submit-batch --watch " + many);
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_TRUE(absl::StrContains(again.out, "350 jobs, 0 new")) << again.out;
  EXPECT_TRUE(absl::StrContains(again.out,
                                "350/350 ended: 0 succeeded, 0 failed, 350 "
                                "cancelled; 0 running;"))
      << again.out;
  EXPECT_TRUE(absl::StrContains(again.out, "350 of 350 jobs did not succeed"))
      << again.out;

  // A job with 64 labels of its own (the most), beside a new one, and a job
  // of the same queue submitted while the batch is followed.
  std::string labels;
  for (int i = 0; i < 64; ++i)
    absl::StrAppend(&labels, i == 0 ? "" : ", ", "\"l", i, "\": \"v\"");
  const std::string full = dir_ + "/full.jsonl";
  std::ofstream(full) << "{\"job\": {\"kind\": \"k\", \"queue\": \"full\", "
                         "\"labels\": {"
                      << labels
                      << "}}}\n"
                         "{\"job\": {\"kind\": \"k\", \"queue\": \"full\"}}\n";
  ChildProcess watch(JOBWIRE_CLI_PATH,
                     {"--addr", "unix://" + socket_, "submit-batch", full,
                      "--watch", "-o", "table"},
                     dir_ + "/full-watch.log");
  ASSERT_TRUE(LogSays(watch, "0/2 ended", absl::Seconds(10))) << watch.log();
  const std::string outsider = SubmitWithCli("--kind k --queue full");
  ASSERT_FALSE(outsider.empty());
  ASSERT_EQ(
      RunCli(addr + "bulk --filter 'queue = \"full\"' --action cancel").code,
      0);
  ASSERT_TRUE(watch.Exited(absl::Seconds(10))) << watch.log();
  EXPECT_EQ(watch.exit_code(), 1) << watch.log();
  EXPECT_TRUE(absl::StrContains(watch.log(),
                                "2/2 ended: 0 succeeded, 0 "
                                "failed, 2 cancelled"))
      << watch.log();
  EXPECT_FALSE(absl::StrContains(watch.log(), "/3 ended")) << watch.log();
  // The jobs keep exactly their own labels.
  CliResult listed = RunCli(addr +
                            "list -o json --filter 'queue = \"full\" AND "
                            "labels.l63 = \"v\"'");
  ASSERT_EQ(listed.code, 0) << listed.out;
  EXPECT_FALSE(absl::StrContains(listed.out, "jobwire-batch")) << listed.out;
  EXPECT_TRUE(absl::StrContains(listed.out, "\"l0\": \"v\"")) << listed.out;
}

TEST_F(ServerIntegrationTest,
       CliWatchAfterTheLastSeqOfAnEndedJobSaysHowItEnded) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  const std::string id = SubmitWithCli("--kind k");
  ASSERT_FALSE(id.empty());
  CliResult cancelled = RunCli(addr + "cancel " + id);
  ASSERT_EQ(cancelled.code, 0) << cancelled.out;
  const std::string last_seq = JsonString(cancelled.out, "last_seq");
  ASSERT_FALSE(last_seq.empty()) << cancelled.out;
  // The server has nothing after that seq and ends the stream at once.
  CliResult watch = RunCli(addr + "watch " + id + " --after-seq " + last_seq);
  EXPECT_EQ(watch.code, 1) << watch.out;
  EXPECT_TRUE(absl::StrContains(watch.out, id + " CANCELLED\n")) << watch.out;
  EXPECT_TRUE(absl::StrContains(watch.out, "was cancelled")) << watch.out;
  // As JSON lines: one object a line, the snapshot (no replay before it).
  CliResult json = RunCli(addr + "watch -o json " + id);
  EXPECT_EQ(json.code, 1) << json.out;  // cancelled
  EXPECT_TRUE(absl::StartsWith(json.out, "{\"event\":{")) << json.out;
  EXPECT_TRUE(absl::StrContains(json.out, "\"state\":\"STATE_CANCELLED\""))
      << json.out;
}

TEST_F(ServerIntegrationTest, CliWatchOfAnUnreachableServerFailsAtOnce) {
  const absl::Time start = absl::Now();
  CliResult watch = RunCli("--addr unix://" + dir_ +
                           "/nothing.sock watch 01M9715MHTFBGAGMKPGD3MGD0W");
  EXPECT_EQ(watch.code, 1) << watch.out;
  EXPECT_TRUE(absl::StrContains(watch.out, "jobwire: watch: UNAVAILABLE: "))
      << watch.out;
  // Not the two minutes a watch keeps trying once it has had the server.
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

TEST_F(ServerIntegrationTest, CliRetriesACancelledJob) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  const std::string id = SubmitWithCli("--kind k");
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(RunCli(addr + "cancel " + id).code, 0);

  CliResult retried = RunCli(addr + "retry " + id);
  EXPECT_EQ(retried.code, 0) << retried.out;
  EXPECT_EQ(JsonString(retried.out, "state"), "STATE_QUEUED") << retried.out;
  CliResult again = RunCli(addr + "retry " + id);  // QUEUED now
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_TRUE(absl::StrContains(again.out, "FAILED_PRECONDITION")) << again.out;
  CliResult bad = RunCli(addr + "retry " + id + " --attempts 0");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_TRUE(absl::StrContains(bad.out, "--attempts")) << bad.out;
}

TEST_F(ServerIntegrationTest, CliUpdatesAJobAndNamesTheFlagOfABadValue) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  const std::string id = SubmitWithCli("--kind k --label team=a --label x=1");
  ASSERT_FALSE(id.empty());

  CliResult updated =
      RunCli(addr + "update " + id +
             " --priority 7 --queue emails --label team=b --remove-label x"
             " --schedule-in 1h --max-attempts 5");
  ASSERT_EQ(updated.code, 0) << updated.out;
  EXPECT_EQ(JsonString(updated.out, "queue"), "emails") << updated.out;
  EXPECT_EQ(JsonString(updated.out, "state"), "STATE_SCHEDULED") << updated.out;
  EXPECT_TRUE(absl::StrContains(updated.out, "\"priority\": 7")) << updated.out;
  EXPECT_TRUE(absl::StrContains(updated.out, "\"team\": \"b\"")) << updated.out;
  EXPECT_FALSE(absl::StrContains(updated.out, "\"x\":")) << updated.out;
  const std::string etag = JsonString(updated.out, "etag");

  // Due now again, guarded by the etag just read.
  CliResult now =
      RunCli(addr + "update " + id + " --schedule-in 0s --etag " + etag);
  ASSERT_EQ(now.code, 0) << now.out;
  EXPECT_EQ(JsonString(now.out, "state"), "STATE_QUEUED") << now.out;
  CliResult stale =
      RunCli(addr + "update " + id + " --priority 1 --etag " + etag);
  EXPECT_EQ(stale.code, 1) << stale.out;
  EXPECT_TRUE(absl::StrContains(stale.out, "ABORTED")) << stale.out;

  CliResult bad = RunCli(addr + "update " + id + " --queue UPPER");
  EXPECT_NE(bad.code, 0) << bad.out;
  EXPECT_TRUE(absl::StrContains(bad.out, "--queue: must match")) << bad.out;
  CliResult none = RunCli(addr + "update " + id);
  EXPECT_EQ(none.code, 2) << none.out;
  EXPECT_TRUE(absl::StrContains(none.out, "--priority")) << none.out;

  CliResult got = RunCli(addr + "get " + id);
  EXPECT_EQ(JsonString(got.out, "etag"), JsonString(now.out, "etag"))
      << got.out;

  // `watch` prints each update with the paths that changed.
  ASSERT_EQ(RunCli(addr + "cancel " + id).code, 0);
  CliResult watched = RunCli(addr + "watch " + id + " --after-seq 1");
  EXPECT_TRUE(absl::StrContains(
      watched.out,
      id +
          " updated: priority, queue, labels.team, labels.x, schedule_time, "
          "max_attempts\n" +
          id + " QUEUED -> SCHEDULED (rescheduled)\n" + id +
          " updated: schedule_time\n" + id +
          " SCHEDULED -> QUEUED (rescheduled)\n"))
      << watched.out;
}

TEST_F(ServerIntegrationTest, CliBulkPatchesActsAndNamesTheFlagOfABadValue) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  std::vector<std::string> mail;
  for (int i = 0; i < 3; ++i)
    mail.push_back(SubmitWithCli("--kind k --queue mail --label team=a"));
  const std::string other = SubmitWithCli("--kind k");
  ASSERT_FALSE(other.empty());

  CliResult patched = RunCli(addr +
                             "bulk --filter 'queue = \"mail\"' --priority 9 "
                             "--label tier=gold");
  EXPECT_EQ(patched.code, 0) << patched.out;
  EXPECT_EQ(patched.out, "matched 3, updated 3, skipped 0, failed 0\n");
  CliResult got = RunCli(addr + "get " + mail[1]);
  EXPECT_TRUE(absl::StrContains(got.out, "\"priority\": 9")) << got.out;
  EXPECT_TRUE(absl::StrContains(got.out, "\"tier\": \"gold\"")) << got.out;

  CliResult dry = RunCli(addr + "bulk --filter '' --action cancel --dry-run");
  EXPECT_EQ(dry.out,
            "dry run: matched 4, would update 4, skipped 0, would fail 0\n");
  CliResult dry_json =
      RunCli(addr + "bulk -o json --filter '' --action cancel --dry-run");
  EXPECT_EQ(dry_json.code, 0) << dry_json.out;
  EXPECT_TRUE(absl::StrContains(dry_json.out, "\"matched\": \"4\""))
      << dry_json.out;
  EXPECT_TRUE(absl::StrContains(dry_json.out, "\"failed\": \"0\""))
      << dry_json.out;
  CliResult cancelled =
      RunCli(addr +
             "bulk --filter 'labels.team = \"a\"' --action cancel "
             "--expect-state queued --expect-state STATE_SCHEDULED");
  EXPECT_EQ(cancelled.out, "matched 3, updated 3, skipped 0, failed 0\n");
  EXPECT_EQ(JsonString(RunCli(addr + "get " + other).out, "state"),
            "STATE_QUEUED");

  // A failed item: listed, and the exit code says so.
  const std::string unknown = "01J0000000000000000000ZZZZ";
  CliResult deleted = RunCli(addr + "bulk --action delete --id " + mail[0] +
                             " --id " + other + " --id " + unknown);
  EXPECT_EQ(deleted.code, 1) << deleted.out;
  EXPECT_TRUE(absl::StartsWith(
      deleted.out, "matched 3, updated 1, skipped 1, failed 1\n  " + unknown +
                       ": NOT_FOUND: "))
      << deleted.out;
  EXPECT_NE(RunCli(addr + "get " + mail[0]).code, 0);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"bulk --filter 'state = = 1' --action cancel", "--filter: "},
      {"bulk --filter '' --action explode", "--action: \"explode\""},
      {"bulk --filter '' --priority 1 --action cancel", "--action: cannot"},
      {"bulk --filter '' --id " + other + " --action cancel", "not both"},
      {"bulk --action cancel", "--filter EXPR or --id ID"},
      {"bulk --filter ''", "--action or at least one of --priority"},
      {"bulk --filter '' --queue UPPER", "--queue: must match"},
      {"bulk --id nope --action cancel", "--id [0]: is not a job id"},
      {"bulk --filter '' --action cancel --expect-state done",
       "--expect-state: \"done\""},
  };
  for (const auto& [args, message] : bad) {
    CliResult r = RunCli(addr + args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.out;
    EXPECT_TRUE(absl::StrContains(r.out, message)) << args << ": " << r.out;
  }
}

TEST_F(ServerIntegrationTest, CliListsNewestFirstPageByPageAndEmptyAsAList) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(SubmitWithCli("--kind k"));
  ASSERT_FALSE(ids.back().empty());

  CliResult newest = RunCli(addr +
                            "list --order-by 'create_time desc' "
                            "--limit 1 -o json");
  ASSERT_EQ(newest.code, 0) << newest.out;
  EXPECT_EQ(JsonString(newest.out, "id"), ids[2]) << newest.out;
  const std::string token = JsonString(newest.out, "next_page_token");
  ASSERT_FALSE(token.empty()) << newest.out;
  CliResult next = RunCli(addr +
                          "list --order-by 'create_time desc' "
                          "--limit 1 -o json --page-token " +
                          token);
  ASSERT_EQ(next.code, 0) << next.out;
  EXPECT_EQ(JsonString(next.out, "id"), ids[1]) << next.out;
  // The table says how to go on.
  CliResult table = RunCli(addr + "list --limit 1");
  EXPECT_TRUE(absl::StrContains(table.out, ids[0])) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "--page-token ")) << table.out;

  CliResult none = RunCli(addr + "list --filter 'queue = \"nope\"' -o json");
  ASSERT_EQ(none.code, 0) << none.out;
  EXPECT_TRUE(absl::StrContains(none.out, "\"jobs\": []")) << none.out;
  // States in any spelling, in the filter too; QUEUED in the table.
  for (const char* state : {"queued", "QUEUED", "STATE_QUEUED"}) {
    CliResult queued =
        RunCli(addr + "list --filter 'state = " + std::string(state) + "'");
    EXPECT_EQ(queued.code, 0) << queued.out;
    EXPECT_TRUE(absl::StrContains(queued.out, ids[1] + "  QUEUED "))
        << queued.out;
  }
  CliResult bad = RunCli(addr + "list --order-by 'kind sideways'");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_TRUE(absl::StrContains(bad.out, "INVALID_ARGUMENT: --order-by: "))
      << bad.out;
  // Every command that prints takes -o: one job, the server.
  CliResult row = RunCli(addr + "get -o table " + ids[0]);
  EXPECT_EQ(row.code, 0) << row.out;
  EXPECT_TRUE(absl::StartsWith(row.out, "ID ")) << row.out;
  EXPECT_TRUE(absl::StrContains(row.out, ids[0] + "  QUEUED ")) << row.out;
  CliResult info = RunCli(addr + "info -o table");
  EXPECT_EQ(info.code, 0) << info.out;
  EXPECT_TRUE(absl::StrContains(info.out, "\njobs ")) << info.out;
  EXPECT_TRUE(absl::StrContains(info.out, "QUEUED 3")) << info.out;
  // explain takes -o anywhere.
  CliResult explained = RunCli(addr + "explain -o json " + ids[0]);
  EXPECT_EQ(explained.code, 0) << explained.out;
  EXPECT_EQ(JsonString(explained.out, "state"), "STATE_QUEUED")
      << explained.out;
}

TEST_F(ServerIntegrationTest, CliQueuesTableCountsScheduledApart) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  ASSERT_FALSE(SubmitWithCli("--kind k --queue mail").empty());
  ASSERT_FALSE(SubmitWithCli("--kind k --queue mail --schedule-in 1h").empty());
  CliResult table = RunCli(addr + "queues");
  ASSERT_EQ(table.code, 0) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, " QUEUED  SCHEDULED  RUNNING "))
      << table.out;
  // mail: 1 queued, 1 scheduled.
  EXPECT_TRUE(absl::StrContains(
      table.out,
      absl::StrFormat("%-20s  %7s  %9s  %7s", "mail", "1", "1", "0")))
      << table.out;
}

TEST_F(ServerIntegrationTest, CliBackupWritesAWorkingCopyOfTheDatabase) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  const std::string id = SubmitWithCli("--kind k --label team=a");
  ASSERT_FALSE(id.empty());
  const std::string out = dir_ + "/copy.db";
  CliResult saved = RunCli(addr + "backup --out " + out);
  ASSERT_EQ(saved.code, 0) << saved.out;
  EXPECT_TRUE(absl::StrContains(saved.out, "bytes to " + out)) << saved.out;
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  {
    SQLite::Database db(out, SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("PRAGMA integrity_check").getString(), "ok");
    // One self-contained file, not a WAL database missing its -wal.
    EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "delete");
    SQLite::Statement job(db, "SELECT kind FROM jobs WHERE id = ?");
    job.bind(1, id);
    ASSERT_TRUE(job.executeStep());
    EXPECT_EQ(job.getColumn(0).getString(), "k");
  }
  // A server on the copy serves the job.
  std::vector<std::string> args = {"--listen", "unix:" + dir_ + "/copy.sock",
                                   "--db", out};
  ServerProcess restored(dir_, args);
  ASSERT_EQ(restored.WaitListening(1).size(), 1u) << restored.log();
  CliResult got = RunCli("--addr unix:" + dir_ + "/copy.sock get " + id);
  EXPECT_EQ(got.code, 0) << got.out;
  EXPECT_EQ(JsonString(got.out, "id"), id) << got.out;

  CliResult no_out = RunCli(addr + "backup");
  EXPECT_EQ(no_out.code, 2) << no_out.out;
  EXPECT_TRUE(absl::StrContains(no_out.out, "--out: ")) << no_out.out;
}

TEST_F(ServerIntegrationTest, CliListSaysWhenTheLimitCutsItShort) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(RunCli(addr + "submit --kind k").code, 0);
  CliResult cut = RunCli(addr + "list --limit 2");
  EXPECT_EQ(cut.code, 0) << cut.out;
  EXPECT_EQ(std::count(cut.out.begin(), cut.out.end(), '\n'), 4) << cut.out;
  EXPECT_TRUE(absl::StrContains(
      cut.out, "\n(more jobs match; --limit 2 stopped the list; --page-token "))
      << cut.out;
  EXPECT_TRUE(absl::EndsWith(cut.out, " continues it)\n")) << cut.out;
  CliResult whole = RunCli(addr + "list --limit 3");
  EXPECT_EQ(std::count(whole.out.begin(), whole.out.end(), '\n'), 4)
      << whole.out;
  EXPECT_FALSE(absl::StrContains(whole.out, "more jobs")) << whole.out;
  CliResult json = RunCli(addr + "list --limit 3 -o json");
  // Every field, also the empty token of the last page.
  EXPECT_TRUE(absl::StrContains(json.out, "\"next_page_token\": \"\""))
      << json.out;
}

TEST_F(ServerIntegrationTest, CliPausesAndResumesOneJob) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  const std::string id = SubmitWithCli("--kind k");
  ASSERT_FALSE(id.empty());

  CliResult paused = RunCli(addr + "pause --job " + id);
  EXPECT_EQ(paused.code, 0) << paused.out;
  EXPECT_EQ(paused.out, "job " + id + " PAUSED\n");
  CliResult again = RunCli(addr + "pause --job " + id);
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_TRUE(absl::StrContains(again.out, "FAILED_PRECONDITION")) << again.out;
  CliResult resumed = RunCli(addr + "resume --job " + id);
  EXPECT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_EQ(resumed.out, "job " + id + " QUEUED\n");

  CliResult bad_id = RunCli(addr + "pause --job nope");
  EXPECT_EQ(bad_id.code, 2) << bad_id.out;
  EXPECT_TRUE(absl::StrContains(bad_id.out, "--job: ")) << bad_id.out;
  CliResult mixed = RunCli(addr + "resume --job " + id + " --queue q");
  EXPECT_EQ(mixed.code, 2) << mixed.out;
  EXPECT_TRUE(absl::StrContains(mixed.out, "--job: ")) << mixed.out;
}

TEST_F(ServerIntegrationTest, CliExplainsWhatHoldsAJob) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  const std::string id = SubmitWithCli("--kind k --queue mail");
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(RunCli(addr + "pause --queue mail").code, 0);

  CliResult text = RunCli(addr + "explain " + id);
  EXPECT_EQ(text.code, 0) << text.out;
  EXPECT_TRUE(absl::StartsWith(text.out, id + " QUEUED\n")) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "\n  QUEUE_PAUSED: ")) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "\n  NO_WORKER: ")) << text.out;
  CliResult json = RunCli(addr + "explain " + id + " -o json");
  EXPECT_EQ(json.code, 0) << json.out;
  EXPECT_EQ(JsonString(json.out, "type"), "QUEUE_PAUSED") << json.out;
  CliResult unknown = RunCli(addr + "explain 01M9715MHTFBGAGMKPGD3MGD0W");
  EXPECT_EQ(unknown.code, 1) << unknown.out;
  EXPECT_TRUE(absl::StrContains(unknown.out, "NOT_FOUND")) << unknown.out;
}

// Runs `jobwire ARGS` with `input` on its stdin; stderr is folded into `out`.
CliResult RunCliWithInput(const std::string& args, const std::string& input,
                          const std::string& dir) {
  const std::string path = dir + "/stdin.jsonl";
  std::ofstream(path) << input;
  return RunCli(args + " < " + path);
}

// A file of more than two windows (each window is parsed while the one
// before it is sent): every job goes in once, and the ids come out in line
// order, the same as when standard input (one window) names the same jobs.
TEST_F(ServerIntegrationTest, CliSubmitsAFileOfSeveralWindowsInLineOrder) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  std::string lines;
  for (int i = 0; i < 70500; ++i) {
    absl::StrAppend(&lines, "{\"job\": {\"kind\": \"win\"}, ",
                    "\"request_id\": \"w", i, "\"}\n");
  }
  const std::string file = dir_ + "/windows.jsonl";
  std::ofstream(file) << lines;
  CliResult from_file = RunCli(addr + "submit-batch " + file);
  ASSERT_EQ(from_file.code, 0) << from_file.out.substr(0, 300);
  EXPECT_TRUE(absl::EndsWith(from_file.out,
                             "jobwire submit-batch: 70500 jobs, 70500 new\n"))
      << from_file.out.substr(from_file.out.size() - 200);
  CliResult from_stdin = RunCliWithInput(addr + "submit-batch -", lines, dir_);
  ASSERT_EQ(from_stdin.code, 0) << from_stdin.out.substr(0, 300);
  EXPECT_TRUE(absl::EndsWith(from_stdin.out,
                             "jobwire submit-batch: 70500 jobs, 0 new\n"));
  const size_t ids_end = from_file.out.rfind("jobwire submit-batch:");
  ASSERT_EQ(from_stdin.out.rfind("jobwire submit-batch:"), ids_end);
  EXPECT_TRUE(from_file.out.compare(0, ids_end, from_stdin.out, 0, ids_end) ==
              0);
}

TEST_F(ServerIntegrationTest, CliSubmitsABatchFromJsonLines) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  std::string lines;
  for (int i = 0; i < 1500; ++i) {
    absl::StrAppend(&lines,
                    "{\"job\": {\"kind\": \"k\", \"queue\": \"bulk\"}, ",
                    "\"request_id\": \"r", i, "\"}\n", i == 7 ? "\n" : "");
  }
  CliResult first = RunCliWithInput(addr + "submit-batch -", lines, dir_);
  EXPECT_EQ(first.code, 0) << first.out.substr(0, 500);
  EXPECT_EQ(std::count(first.out.begin(), first.out.end(), '\n'), 1501);
  EXPECT_TRUE(
      absl::EndsWith(first.out, "jobwire submit-batch: 1500 jobs, 1500 new\n"))
      << first.out.substr(first.out.size() - 200);
  // The same request ids again: the same jobs, none new.
  CliResult again = RunCliWithInput(addr + "submit-batch -", lines, dir_);
  EXPECT_EQ(again.code, 0);
  EXPECT_TRUE(
      absl::EndsWith(again.out, "jobwire submit-batch: 1500 jobs, 0 new\n"));
  EXPECT_EQ(again.out.substr(0, 26), first.out.substr(0, 26));

  // From a file (read twice, a window at a time), the same ids; a bad line
  // after the first window sends nothing.
  const std::string file = dir_ + "/batch.jsonl";
  std::ofstream(file) << lines;
  CliResult from_file = RunCli(addr + "submit-batch " + file);
  EXPECT_EQ(from_file.code, 0) << from_file.out.substr(0, 300);
  EXPECT_EQ(from_file.out, again.out);
  std::string late_bad;
  for (int i = 0; i < 70000; ++i)
    absl::StrAppend(&late_bad, "{\"job\": {\"kind\": \"late\"}}\n");
  absl::StrAppend(&late_bad, "{\"job\": 1}\n");
  std::ofstream(file) << late_bad;
  CliResult late_file = RunCli(addr + "submit-batch " + file);
  EXPECT_EQ(late_file.code, 2) << late_file.out.substr(0, 300);
  EXPECT_TRUE(absl::StrContains(late_file.out, ": line 70001: "))
      << late_file.out.substr(0, 300);
  CliResult none =
      RunCli(addr + "list --filter 'kind = \"late\"' -o json --limit 10");
  EXPECT_FALSE(absl::StrContains(none.out, "\"id\": ")) << none.out;

  // The fast path (the common shape) and protobuf's parser (a line with
  // another field) read the same job.
  const std::string job_json =
      "\"kind\": \"k\", \"queue\": \"shape\", \"priority\": -7, "
      "\"labels\": {\"t\": \"\\u00e9\"}, \"args\": {\"a\": [1, 2.5, "
      "\"x\\n\", null, true, 9007199254740993], \"b\": {\"c\": {}}}";
  CliResult shaped =
      RunCliWithInput(addr + "submit-batch -",
                      absl::StrCat("{\"job\": {", job_json, "}}\n{\"job\": {",
                                   job_json, ", \"max_attempts\": 3}}\n"),
                      dir_);
  ASSERT_EQ(shaped.code, 0) << shaped.out;
  std::vector<std::string> shaped_ids = absl::StrSplit(shaped.out, '\n');
  ASSERT_GE(shaped_ids.size(), 2u);
  auto jobs = jobwire::v1::JobService::NewStub(grpc::CreateChannel(
      "unix://" + socket_, grpc::InsecureChannelCredentials()));
  jobwire::v1::Job fast, full;
  for (auto [id, job] :
       {std::pair{shaped_ids[0], &fast}, std::pair{shaped_ids[1], &full}}) {
    grpc::ClientContext context;
    jobwire::v1::GetJobRequest get;
    get.set_id(id);
    ASSERT_TRUE(jobs->GetJob(&context, get, job).ok()) << id;
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(fast.args(),
                                                                 full.args()))
      << fast.args().DebugString() << " vs " << full.args().DebugString();
  EXPECT_EQ(fast.labels().at("t"), "\xc3\xa9");
  EXPECT_EQ(fast.priority(), -7);
  EXPECT_EQ(fast.queue(), "shape");

  // A line the server refuses, in the second batch: the first went in.
  std::string bad;
  for (int i = 0; i < 1200; ++i) {
    absl::StrAppend(&bad, "{\"job\": {\"kind\": \"", i == 1100 ? "" : "k",
                    "\", \"queue\": \"other\"}}\n");
  }
  CliResult refused = RunCliWithInput(addr + "submit-batch -", bad, dir_);
  EXPECT_EQ(refused.code, 2) << refused.out.substr(refused.out.size() - 300);
  EXPECT_TRUE(absl::StrContains(
      refused.out,
      "INVALID_ARGUMENT: line 1101: job.kind: is required; the 1000 jobs "
      "before line 1001 were submitted"))
      << refused.out.substr(refused.out.size() - 300);

  // A line that is not JSON: nothing is sent.
  CliResult typo =
      RunCliWithInput(addr + "submit-batch -",
                      "{\"job\": {\"kind\": \"k\"}}\n{\"job\":\n", dir_);
  EXPECT_EQ(typo.code, 2) << typo.out;
  EXPECT_TRUE(absl::StrContains(typo.out, "-: line 2: ")) << typo.out;
  // Lines are parsed in parallel; the first bad one is named.
  std::string late;
  for (int i = 1; i <= 1500; ++i) {
    absl::StrAppend(
        &late, i == 700 || i == 1400 ? "{\"job\": 1}\n" : "{\"job\": {}}\n");
  }
  CliResult late_typo = RunCliWithInput(addr + "submit-batch -", late, dir_);
  EXPECT_EQ(late_typo.code, 2) << late_typo.out;
  EXPECT_TRUE(absl::StrContains(late_typo.out, "-: line 700: "))
      << late_typo.out;
  // Exactly the first batch of the refused file is in.
  CliResult other =
      RunCli(addr + "list --filter 'queue = \"other\"' -o json --limit 2000");
  size_t ids = 0;
  for (size_t at = other.out.find("\"id\": "); at != std::string::npos;
       at = other.out.find("\"id\": ", at + 1)) {
    ++ids;
  }
  EXPECT_EQ(ids, 1000u);
}

// A client that opens a Backup or a watch and then stops reading must not
// hold the server past its grace period.
TEST_F(ServerIntegrationTest, StalledBackupAndWatchEndWithTheGracePeriod) {
  std::vector<std::string> args = DefaultArgs();
  args.push_back("--shutdown-grace=1s");
  ServerProcess server(dir_, args);
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  // Enough jobs that the backup and the watch's replay outgrow the
  // client's HTTP/2 window.
  std::string lines;
  const std::string args_json =
      absl::StrCat("{\"pad\": \"", std::string(400, 'x'), "\"}");
  for (int i = 0; i < 3000; ++i) {
    absl::StrAppend(&lines, "{\"job\": {\"kind\": \"k\", \"args\": ", args_json,
                    "}}\n");
  }
  CliResult loaded = RunCliWithInput(CliAddr() + "submit-batch -", lines, dir_);
  ASSERT_EQ(loaded.code, 0) << loaded.out.substr(0, 300);

  // A channel each: on one connection the stalled backup would also hold
  // up the watch (HTTP/2's connection window).
  auto admin = jobwire::v1::AdminService::NewStub(grpc::CreateChannel(
      "unix://" + socket_, grpc::InsecureChannelCredentials()));
  auto jobs = jobwire::v1::JobService::NewStub(grpc::CreateChannel(
      "unix://" + socket_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext backup_context;
  auto backup = admin->Backup(&backup_context, {});
  grpc::ClientContext watch_context;
  jobwire::v1::WatchJobsRequest watch_request;
  watch_request.set_after_event_id(0);  // replays every job's events
  auto watch = jobs->WatchJobs(&watch_context, watch_request);
  jobwire::v1::BackupChunk chunk;
  ASSERT_TRUE(backup->Read(&chunk));  // both calls are open; no more reads
  jobwire::v1::WatchJobsResponse first;
  ASSERT_TRUE(watch->Read(&first));
  absl::SleepFor(absl::Milliseconds(500));  // the server's writes stall

  const absl::Time signalled = absl::Now();
  server.Signal(SIGTERM);
  ASSERT_TRUE(server.Exited(absl::Seconds(30))) << server.log();
  const absl::Duration took = absl::Now() - signalled;
  EXPECT_EQ(server.exit_code(), 0);
  // The grace period (1 s), 250 ms for the cancelled calls to end, then
  // the stuck connections are shut down: ~1.3 s here. Before, gRPC waited
  // for the peers to read (4-25 s on this Unix socket). A wide bound.
  EXPECT_LT(took, absl::Seconds(6)) << server.log();
  backup_context.TryCancel();
  watch_context.TryCancel();
  // No backup temp file is left beside the database.
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/var")) {
    EXPECT_FALSE(absl::StrContains(entry.path().filename().string(), "backup-"))
        << entry.path();
  }
}

TEST_F(ServerIntegrationTest, CliSetsAQueuesWeightAndLimit) {
  ServerProcess server(dir_, DefaultArgs());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  const std::string addr = CliAddr();
  CliResult both =
      RunCli(addr + "set-queue mail --weight 3 --concurrency-limit 5");
  EXPECT_EQ(both.code, 0) << both.out;
  EXPECT_EQ(both.out, "queue mail: weight 3, at most 5 running\n");
  CliResult unlimited = RunCli(addr + "set-queue mail --concurrency-limit 0");
  EXPECT_EQ(unlimited.out, "queue mail: weight 3, no concurrency limit\n");
  CliResult table = RunCli(addr + "queues");
  EXPECT_TRUE(absl::StrContains(table.out, "mail ")) << table.out;

  CliResult nothing = RunCli(addr + "set-queue mail");
  EXPECT_EQ(nothing.code, 2) << nothing.out;
  CliResult zero = RunCli(addr + "set-queue mail --weight 0");
  EXPECT_EQ(zero.code, 2);
  EXPECT_TRUE(absl::StrContains(zero.out, "--weight: ")) << zero.out;
  CliResult bad_name = RunCli(addr + "set-queue 'Bad Name' --weight 2");
  EXPECT_EQ(bad_name.code, 2);
  EXPECT_TRUE(absl::StrContains(bad_name.out, "NAME: must match"))
      << bad_name.out;
}

}  // namespace
}  // namespace jobwire::test
