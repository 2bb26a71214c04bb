// Issue #27 through the real jobwired: what an attacker on the host or a
// careless operator can do to the listeners and the state files. Each test
// starts its own jobwired in a temp directory on 127.0.0.1:0.
#include <arpa/inet.h>
#include <dirent.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "jobwire/v1/worker_service.grpc.pb.h"
#include "tests/jobwired_process.h"

namespace jobwire::test {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

int PortOf(const std::string& address) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port))
      << address;
  return port;
}

// A health check over a fresh channel that waits for the server to accept
// it, for up to `timeout`.
grpc::Status CheckHealth(const std::string& target, absl::Duration timeout,
                         const HealthCheckRequest& request = {}) {
  auto stub = grpc::health::v1::Health::NewStub(ReconnectingChannel(target));
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  HealthCheckResponse response;
  return stub->Check(&context, request, &response);
}

// A plain TCP connection to 127.0.0.1:port that sends nothing; -1 when
// connect fails.
int ConnectTcp(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True when the server closes `fd` (EOF or reset) before `timeout`; false
// when data arrives or the wait times out.
bool ServerCloses(int fd, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
    // The server's HTTP/2 SETTINGS: keep reading until it closes.
  }
}

int CountOpenDescriptors(pid_t pid) {
  DIR* dir = ::opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n;
}

// "Max open files  SOFT  HARD  files" from /proc/PID/limits.
std::pair<std::string, std::string> OpenFileLimits(pid_t pid) {
  const std::string limits =
      ReadWholeFile(absl::StrCat("/proc/", pid, "/limits"));
  for (absl::string_view line : absl::StrSplit(limits, '\n')) {
    if (!absl::StartsWith(line, "Max open files")) continue;
    std::vector<std::string> words =
        absl::StrSplit(line.substr(14), ' ', absl::SkipEmpty());
    if (words.size() >= 2) return {words[0], words[1]};
  }
  return {};
}

bool WaitForLog(const ChildProcess& process, absl::string_view text,
                absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    if (absl::StrContains(process.log(), text)) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("jobwire-sec"); }
  void TearDown() override { RemoveDir(dir_); }

  // One TCP listener (127.0.0.1:0), a Unix socket and a database in dir_.
  std::vector<std::string> Args(std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"--listen", "unix:var/j.sock",
                                     "--listen", "127.0.0.1:0",
                                     "--db",     "var/j.db"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }

  std::string dir_;
};

// Defect 3: gRPC binds with SO_REUSEPORT, so a second server could share
// the port and take half its connections.
TEST_F(SecurityTest, SecondServerOnATakenPortExitsAndNamesIt) {
  JobwiredProcess first(dir_, Args());
  std::vector<std::string> addresses = first.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << first.log();
  const std::string taken = addresses[1];

  JobwiredProcess second(dir_, {"--listen", "unix:var/other.sock", "--listen",
                                taken, "--db", "var/other.db"});
  ASSERT_TRUE(second.Exited(absl::Seconds(20))) << second.log();
  EXPECT_NE(second.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(second.log(), taken)) << second.log();
  EXPECT_TRUE(absl::StrContains(second.log(), "taken")) << second.log();
  // The first server still serves every connection on the port.
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(CheckHealth(taken, absl::Seconds(10)).ok());
  }
}

TEST_F(SecurityTest, SoftOpenFileLimitIsRaisedToTheHardLimit) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max <= 256) GTEST_SKIP() << "hard limit too low to lower";
  rlimit lowered = saved;
  lowered.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  JobwiredProcess server(dir_, Args());  // inherits the soft limit of 256
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  auto [soft, hard] = OpenFileLimits(server.pid());
  EXPECT_EQ(soft, hard);
  EXPECT_EQ(hard, absl::StrCat(saved.rlim_max));
  EXPECT_TRUE(
      absl::StrContains(server.log(), "open-file limit raised from 256"))
      << server.log();
}

// Defect 1: after one accept4() EMFILE, gRPC 1.51 never accepted on the
// port again. Here jobwired's limit is lowered under it, the test takes
// every descriptor it has left with idle connections, lets them go, and
// the port serves again.
TEST_F(SecurityTest, TcpListenerRecoversAfterRunningOutOfDescriptors) {
  JobwiredProcess server(dir_, Args());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  const std::string tcp = addresses[1];
  ASSERT_TRUE(CheckHealth(tcp, absl::Seconds(10)).ok());

  const int in_use = CountOpenDescriptors(server.pid());
  ASSERT_GT(in_use, 0);
  rlimit low{};
  low.rlim_cur = low.rlim_max = in_use + 40;
  ASSERT_EQ(::prlimit(server.pid(), RLIMIT_NOFILE, &low, nullptr), 0)
      << std::strerror(errno);

  std::vector<int> idle;
  for (int i = 0; i < 200; ++i) {
    const int fd = ConnectTcp(PortOf(tcp));
    if (fd >= 0) idle.push_back(fd);
  }
  EXPECT_TRUE(WaitForLog(server, "closing new connections until descriptors",
                         absl::Seconds(20)))
      << server.log();
  for (int fd : idle) ::close(fd);

  EXPECT_TRUE(CheckHealth(tcp, absl::Seconds(30)).ok()) << server.log();
  EXPECT_TRUE(CheckHealth(addresses[0], absl::Seconds(10)).ok());
}

TEST_F(SecurityTest, ConnectionsBeyondMaxConnectionsAreClosedAtOnce) {
  JobwiredProcess server(dir_, Args({"--max-connections", "5"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  const int port = PortOf(addresses[1]);
  std::vector<int> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(ConnectTcp(port));
    ASSERT_GE(held.back(), 0);
  }
  const int extra = ConnectTcp(port);
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(ServerCloses(extra, absl::Seconds(20)));
  ::close(extra);
  EXPECT_TRUE(WaitForLog(server, "(--max-connections)", absl::Seconds(10)))
      << server.log();
  for (int fd : held) ::close(fd);
  EXPECT_TRUE(CheckHealth(addresses[1], absl::Seconds(30)).ok())
      << server.log();
}

TEST_F(SecurityTest, ConnectionThatNeverStartsHttp2IsClosed) {
  JobwiredProcess server(dir_, Args({"--idle-timeout", "1s"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  const int fd = ConnectTcp(PortOf(addresses[1]));
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(ServerCloses(fd, absl::Seconds(30)));
  ::close(fd);
}

// A job whose args are small as JSON but large as a protobuf Struct (one of
// many small numbers is ~5x its JSON) would pass the 1 MiB JSON check, and
// then no client with gRPC's default 4 MiB limit could read it back. Submit
// refuses it with INVALID_ARGUMENT naming the field and the limit.
TEST_F(SecurityTest, ArgsLargeAsProtobufAreRefusedNamingTheFieldAndLimit) {
  JobwiredProcess server(dir_, Args());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  auto stub = v1::JobService::NewStub(ReconnectingChannel(addresses[1]));
  v1::SubmitJobRequest request;
  request.mutable_job()->set_kind("k");
  google::protobuf::ListValue* list =
      (*request.mutable_job()->mutable_args()->mutable_fields())["n"]
          .mutable_list_value();
  for (int i = 0; i < 200000; ++i) list->add_values()->set_number_value(0);
  ASSERT_GT(request.ByteSizeLong(), 2u << 20);  // 200,000 x "0," is 400 KB
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::SubmitJobResponse response;
  grpc::Status status = stub->SubmitJob(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "job.args: is "))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "at most 1048576"))
      << status.error_message();
}

// A channel with a connection of its own (not shared with other channels
// to the same target) and `args`.
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target,
                                          grpc::ChannelArguments args = {}) {
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

// The ErrorInfo reason in a status's details; empty when there is none.
std::string ReasonOf(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) return "";
  for (const google::protobuf::Any& any : rich.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

// #27: a request over --max-receive-message-bytes got gRPC's own
// RESOURCE_EXHAUSTED (a message about gRPC's receive limit, no ErrorInfo).
// gRPC now receives up to twice the limit, and the services answer
// RESOURCE_EXHAUSTED with ErrorInfo reason REQUEST_TOO_LARGE and a message
// naming the limit and the flag: a unary call, a stream's message and the
// open health check alike.
TEST_F(SecurityTest, RequestOverMaxReceiveMessageBytesNamesTheLimitAndFlag) {
  JobwiredProcess server(dir_, Args({"--max-receive-message-bytes", "4096"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  auto expect_ours = [](const grpc::Status& status) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << status.error_message();
    EXPECT_EQ(ReasonOf(status), "REQUEST_TOO_LARGE");
    EXPECT_TRUE(
        absl::StrContains(status.error_message(),
                          "at most 4096 bytes (--max-receive-message-bytes)"))
        << status.error_message();
  };
  HealthCheckRequest big;
  big.set_service(std::string(5000, 'x'));
  expect_ours(CheckHealth(addresses[1], absl::Seconds(10), big));

  auto channel = OwnChannel(addresses[1]);
  auto jobs = jobwire::v1::JobService::NewStub(channel);
  {
    jobwire::v1::SubmitJobRequest request;
    request.mutable_job()->set_kind("k");
    request.mutable_job()->set_payload(std::string(5000, 'p'));
    jobwire::v1::SubmitJobResponse response;
    grpc::ClientContext context;
    grpc::Status status = jobs->SubmitJob(&context, request, &response);
    expect_ours(status);
    EXPECT_TRUE(absl::StartsWith(status.error_message(),
                                 "request message too large: 50"))
        << status.error_message();
  }
  {
    grpc::ClientContext context;
    auto stream = jobs->SubmitJobs(&context);
    jobwire::v1::SubmitJobsRequest batch;
    for (int i = 0; i < 3; ++i) {
      jobwire::v1::SubmitJobRequest* r = batch.add_jobs();
      r->mutable_job()->set_kind("k");
      r->mutable_job()->set_payload(std::string(2000, 'p'));
    }
    stream->Write(batch);
    stream->WritesDone();
    jobwire::v1::SubmitJobsResponse response;
    EXPECT_FALSE(stream->Read(&response));
    expect_ours(stream->Finish());
  }
  // Past twice the limit gRPC itself refuses (still RESOURCE_EXHAUSTED).
  big.set_service(std::string(9000, 'x'));
  EXPECT_EQ(CheckHealth(addresses[1], absl::Seconds(10), big).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A request within the limit is served.
  jobwire::v1::SubmitJobRequest small;
  small.mutable_job()->set_kind("k");
  jobwire::v1::SubmitJobResponse response;
  grpc::ClientContext context;
  EXPECT_TRUE(jobs->SubmitJob(&context, small, &response).ok());
  EXPECT_TRUE(CheckHealth(addresses[1], absl::Seconds(10)).ok());
}

// #27: on the worker stream a report over --max-receive-message-bytes is
// refused by `rejected` (RESOURCE_EXHAUSTED, naming the limit and flag) and
// the session goes on; a hello over it ends the stream with that error.
TEST_F(SecurityTest, WorkerMessageOverTheRequestLimitIsRefusedNamingTheFlag) {
  JobwiredProcess server(dir_, Args({"--max-receive-message-bytes", "4096"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  auto workers = jobwire::v1::WorkerService::NewStub(OwnChannel(addresses[1]));
  {
    grpc::ClientContext context;
    auto stream = workers->Connect(&context);
    jobwire::v1::ConnectRequest hello;
    hello.mutable_hello()->set_worker_id("w");
    hello.mutable_hello()->set_slots(1);
    ASSERT_TRUE(stream->Write(hello));
    jobwire::v1::ConnectResponse message;
    ASSERT_TRUE(stream->Read(&message));
    ASSERT_TRUE(message.has_welcome());
    jobwire::v1::ConnectRequest big;
    big.mutable_progress()->set_job_id("j1");
    big.mutable_progress()->set_attempt(1);
    big.mutable_progress()->set_log(std::string(5000, 'l'));
    ASSERT_TRUE(stream->Write(big));
    ASSERT_TRUE(stream->Read(&message));
    ASSERT_TRUE(message.has_rejected()) << message.DebugString();
    EXPECT_EQ(message.rejected().job_id(), "j1");
    EXPECT_EQ(message.rejected().code(),
              static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
    EXPECT_TRUE(
        absl::StrContains(message.rejected().message(),
                          "at most 4096 bytes (--max-receive-message-bytes)"))
        << message.rejected().message();
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());
  }
  grpc::ClientContext context;
  auto stream = workers->Connect(&context);
  jobwire::v1::ConnectRequest hello;
  hello.mutable_hello()->set_worker_id(std::string(5000, 'w'));
  hello.mutable_hello()->set_slots(1);
  stream->Write(hello);
  jobwire::v1::ConnectResponse message;
  EXPECT_FALSE(stream->Read(&message));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ReasonOf(status), "REQUEST_TOO_LARGE");
}

TEST_F(SecurityTest, CallsBeyondMaxConcurrentStreamsWaitForTheirTurn) {
  JobwiredProcess server(dir_, Args({"--max-concurrent-streams", "1"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  auto channel = OwnChannel(addresses[1]);
  auto stub = grpc::health::v1::Health::NewStub(channel);
  // One stream open on the connection: the health watch.
  grpc::ClientContext watch_context;
  auto watch = stub->Watch(&watch_context, {});
  HealthCheckResponse first;
  ASSERT_TRUE(watch->Read(&first));
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    HealthCheckResponse response;
    EXPECT_EQ(stub->Check(&context, {}, &response).error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // Per connection: another connection is served.
  {
    auto other = grpc::health::v1::Health::NewStub(OwnChannel(addresses[1]));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    HealthCheckResponse response;
    EXPECT_TRUE(other->Check(&context, {}, &response).ok());
  }
  watch_context.TryCancel();
  watch->Finish();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  HealthCheckResponse response;
  EXPECT_TRUE(stub->Check(&context, {}, &response).ok());
}

TEST_F(SecurityTest, ClientPingingTooOftenIsDisconnected) {
  JobwiredProcess server(
      dir_, Args({"--min-ping-interval", "1m", "--max-ping-strikes", "1"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 100);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS, 100);
  auto stub = grpc::health::v1::Health::NewStub(OwnChannel(addresses[1], args));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto watch = stub->Watch(&context, {});
  HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  while (watch->Read(&response)) {
  }
  grpc::Status status = watch->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
}

// Appends one HTTP/2 frame to `out`.
void AppendFrame(std::string* out, uint8_t type, uint8_t flags, uint32_t stream,
                 absl::string_view payload) {
  const uint32_t len = static_cast<uint32_t>(payload.size());
  for (int shift : {16, 8, 0}) out->push_back(static_cast<char>(len >> shift));
  out->push_back(static_cast<char>(type));
  out->push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) {
    out->push_back(static_cast<char>(stream >> shift));
  }
  out->append(payload.data(), payload.size());
}

// The error code of the first GOAWAY among HTTP/2 frames `bytes` (from the
// server: no preface); -1 when there is none.
int64_t GoAwayError(absl::string_view bytes) {
  size_t at = 0;
  while (at + 9 <= bytes.size()) {
    const auto b = [&](size_t i) {
      return static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + i]));
    };
    const uint32_t len = (b(0) << 16) | (b(1) << 8) | b(2);
    if (b(3) == 0x7 && at + 9 + 8 <= bytes.size()) {
      return (b(13) << 24) | (b(14) << 16) | (b(15) << 8) | b(16);
    }
    at += 9 + len;
  }
  return -1;
}

struct AttackResult {
  int sent = 0;
  bool server_closed = false;  // before the attacker stopped
  std::string from_server;
};

// One rapid-reset attacker on 127.0.0.1:port: HEADERS + RST_STREAM pairs
// for Health/Check as fast as the socket takes them, at most `streams`
// pairs and 20 s, then waits (up to the same 20 s) for the server to close.
AttackResult RapidReset(int port, int streams) {
  AttackResult result;
  const int fd = ConnectTcp(port);
  if (fd < 0) return result;
  timeval tv = absl::ToTimeval(absl::Seconds(30));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::atomic<bool> server_closed{false};
  std::thread reader([&] {
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
      result.from_server.append(buf, static_cast<size_t>(n));
    }
    server_closed.store(n == 0 || errno == ECONNRESET);
  });
  std::string block;
  block.push_back(static_cast<char>(0x83));  // :method POST
  block.push_back(static_cast<char>(0x86));  // :scheme http
  for (const auto& [name, value] :
       {std::pair<std::string, std::string>{":path",
                                            "/grpc.health.v1.Health/Check"},
        {":authority", "localhost"},
        {"content-type", "application/grpc"},
        {"te", "trailers"}}) {
    block.push_back(0x00);  // literal without indexing, new name
    block.push_back(static_cast<char>(name.size()));
    block += name;
    block.push_back(static_cast<char>(value.size()));
    block += value;
  }
  std::string out("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  AppendFrame(&out, 0x4, 0, 0, "");  // SETTINGS
  const absl::Time until = absl::Now() + absl::Seconds(20);
  for (uint32_t id = 1; result.sent < streams && absl::Now() < until; id += 2) {
    AppendFrame(&out, 0x1, 0x4, id, block);  // HEADERS, END_HEADERS
    AppendFrame(&out, 0x3, 0, id, absl::string_view("\0\0\0\x08", 4));
    ++result.sent;
    if (out.size() < 16 * 1024 && result.sent < streams) continue;
    if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(out.size())) {
      break;  // closed by the server
    }
    out.clear();
  }
  while (!server_closed.load() && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  result.server_closed = server_closed.load();
  ::shutdown(fd, SHUT_RDWR);
  reader.join();
  ::close(fd);
  return result;
}

// Defect 2: HTTP/2 rapid reset (CVE-2023-44487). One connection opens and
// resets Health/Check streams as fast as it can (at most 20,000, at most
// 20 s); past --max-stream-resets it gets GOAWAY ENHANCE_YOUR_CALM and is
// closed, while another client's calls go on being answered.
TEST_F(SecurityTest, RapidResetPastTheBudgetGetsGoAwayWhileOthersAreServed) {
  JobwiredProcess server(dir_, Args({"--max-stream-resets", "100"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  ASSERT_TRUE(CheckHealth(addresses[1], absl::Seconds(10)).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::thread other([&] {
    auto stub = grpc::health::v1::Health::NewStub(OwnChannel(addresses[1]));
    while (!stop.load()) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      HealthCheckResponse response;
      if (stub->Check(&context, {}, &response).ok()) {
        ++ok;
      } else {
        ++failed;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  while (ok.load() == 0 && failed.load() == 0) {
    absl::SleepFor(absl::Milliseconds(5));
  }

  const AttackResult attack = RapidReset(PortOf(addresses[1]), 20000);
  stop.store(true);
  other.join();

  EXPECT_TRUE(attack.server_closed) << attack.sent << " streams sent";
  EXPECT_EQ(GoAwayError(attack.from_server), 0xb)  // ENHANCE_YOUR_CALM
      << attack.from_server.size() << " bytes from the server";
  EXPECT_TRUE(
      WaitForLog(server, "reset more than 100 streams", absl::Seconds(10)))
      << server.log();
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  // The attacker's next connection is served as anyone's.
  EXPECT_TRUE(CheckHealth(addresses[1], absl::Seconds(10)).ok());
}

// A rapid-reset client that reconnects gains nothing: for 10 s after its
// connection went over budget, its address's connections share a tenth of
// the budget, while connections from it that reset nothing are served.
TEST_F(SecurityTest, RapidResetClientThatReconnectsIsClosedAfterAFewResets) {
  JobwiredProcess server(dir_, Args({"--max-stream-resets", "100"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  const int port = PortOf(addresses[1]);
  const AttackResult first = RapidReset(port, 20000);
  EXPECT_TRUE(first.server_closed) << first.sent << " streams sent";
  // 50 resets: within the connection's own budget, past the address's.
  const AttackResult again = RapidReset(port, 50);
  EXPECT_TRUE(again.server_closed);
  EXPECT_EQ(GoAwayError(again.from_server), 0xb)
      << again.from_server.size() << " bytes from the server";
  EXPECT_TRUE(CheckHealth(addresses[1], absl::Seconds(10)).ok());
}

// What a well-behaved client does goes through the relay as before: a
// long-lived stream, many unary calls, and cancelled calls (each a
// RST_STREAM) below the budget, all on one connection that stays open.
TEST_F(SecurityTest, CallsStreamsAndCancelsBelowTheBudgetPassTheRelay) {
  JobwiredProcess server(dir_, Args());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  auto channel = OwnChannel(addresses[1]);
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext watch_context;
  auto watch = stub->Watch(&watch_context, {});
  HealthCheckResponse first;
  ASSERT_TRUE(watch->Read(&first));
  int ok = 0;
  for (int i = 0; i < 2000; ++i) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    HealthCheckResponse response;
    if (stub->Check(&context, {}, &response).ok()) ++ok;
  }
  EXPECT_EQ(ok, 2000);
  for (int i = 0; i < 200; ++i) {  // 200 client resets, under 1000
    grpc::ClientContext context;
    auto cancelled = stub->Watch(&context, {});
    HealthCheckResponse response;
    ASSERT_TRUE(cancelled->Read(&response));
    context.TryCancel();
    while (cancelled->Read(&response)) {
    }
    EXPECT_EQ(cancelled->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  HealthCheckResponse response;
  EXPECT_TRUE(stub->Check(&context, {}, &response).ok());
  // The first stream lived through it all: the connection was never closed.
  watch_context.TryCancel();
  EXPECT_FALSE(watch->Read(&response));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_FALSE(absl::StrContains(server.log(), "reset more than"))
      << server.log();
}

// A TLS channel to `target` trusting `ca` (a PEM file), with the client
// certificate `client` (NAME for NAME.pem and NAME.key in `dir`) if given.
std::shared_ptr<grpc::Channel> TlsChannel(const std::string& dir,
                                          const std::string& target,
                                          const std::string& ca,
                                          const std::string& client = "") {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadWholeFile(dir + "/" + ca);
  if (!client.empty()) {
    tls.pem_cert_chain = ReadWholeFile(dir + "/" + client + ".pem");
    tls.pem_private_key = ReadWholeFile(dir + "/" + client + ".key");
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetSslTargetNameOverride("localhost");
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(tls), args);
}

grpc::Status CheckOver(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  HealthCheckResponse response;
  return stub->Check(&context, {}, &response);
}

TEST_F(SecurityTest, TlsOnTcpWhileTheUnixSocketStaysPlaintext) {
  MakeTestCertificates(dir_);
  JobwiredProcess server(dir_, Args({"--tls-cert", "server.pem", "--tls-key",
                                     "server.key", "--auth-token", "s3cret"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  EXPECT_TRUE(CheckOver(TlsChannel(dir_, addresses[1], "ca.pem")).ok());
  // Not trusted: a server certificate from another CA.
  EXPECT_FALSE(CheckOver(TlsChannel(dir_, addresses[1], "ca2.pem")).ok());
  // Plaintext on the TLS port is refused.
  EXPECT_FALSE(CheckOver(OwnChannel(addresses[1])).ok());
  EXPECT_TRUE(CheckOver(OwnChannel(addresses[0])).ok());
  // The token is still checked over TLS.
  auto admin = jobwire::v1::AdminService::NewStub(
      TlsChannel(dir_, addresses[1], "ca.pem"));
  for (const char* token : {"", "s3cret"}) {
    grpc::ClientContext context;
    if (*token != '\0') {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    }
    jobwire::v1::ServerInfo info;
    grpc::Status status = admin->GetServerInfo(&context, {}, &info);
    EXPECT_EQ(status.error_code(), *token == '\0'
                                       ? grpc::StatusCode::UNAUTHENTICATED
                                       : grpc::StatusCode::OK)
        << status.error_message();
  }
}

TEST_F(SecurityTest, MutualTlsNeedsAValidClientCertificateFromTheCa) {
  MakeTestCertificates(dir_);
  // With client certificates required, a non-loopback listener needs no
  // token.
  JobwiredProcess server(
      dir_, {"--listen", "unix:var/j.sock", "--listen", "0.0.0.0:0", "--db",
             "var/j.db", "--tls-cert", "server.pem", "--tls-key", "server.key",
             "--tls-client-ca", "ca.pem", "--log-level", "debug"});
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  const std::string tcp = absl::StrCat("127.0.0.1:", PortOf(addresses[1]));
  EXPECT_TRUE(CheckOver(TlsChannel(dir_, tcp, "ca.pem", "client")).ok());
  EXPECT_FALSE(CheckOver(TlsChannel(dir_, tcp, "ca.pem")).ok());
  EXPECT_FALSE(CheckOver(TlsChannel(dir_, tcp, "ca.pem", "client2")).ok());
  EXPECT_FALSE(CheckOver(TlsChannel(dir_, tcp, "ca.pem", "expired")).ok());
  EXPECT_TRUE(CheckOver(TlsChannel(dir_, tcp, "ca.pem", "client")).ok());
  // The certificate's subject is the caller in the access log.
  EXPECT_TRUE(absl::StrContains(
      server.log(), "call /grpc.health.v1.Health/Check by cert:CN=client"))
      << server.log();
  // The CLI, with and without its client certificate.
  const std::string cli = absl::StrCat(JOBWIRE_CLI_PATH, " --addr ", tcp,
                                       " --tls-ca ", dir_, "/ca.pem ");
  EXPECT_EQ(std::system((cli + "--tls-cert " + dir_ + "/client.pem --tls-key " +
                         dir_ + "/client.key health >/dev/null 2>&1")
                            .c_str()),
            0);
  EXPECT_NE(std::system((cli + "--timeout 3s health >/dev/null 2>&1").c_str()),
            0);
}

TEST_F(SecurityTest, ChangedCertificateIsServedWithoutARestart) {
  MakeTestCertificates(dir_);
  MakeTestCertificates(dir_, "b-");  // another set: b-server is by b-ca
  JobwiredProcess server(
      dir_, Args({"--tls-cert", "server.pem", "--tls-key", "server.key"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  ASSERT_TRUE(CheckOver(TlsChannel(dir_, addresses[1], "ca.pem")).ok());
  ASSERT_EQ(::rename((dir_ + "/b-server.key").c_str(),
                     (dir_ + "/server.key").c_str()),
            0);
  ASSERT_EQ(::rename((dir_ + "/b-server.pem").c_str(),
                     (dir_ + "/server.pem").c_str()),
            0);
  EXPECT_TRUE(CheckOver(TlsChannel(dir_, addresses[1], "b-ca.pem")).ok())
      << server.log();
  EXPECT_FALSE(CheckOver(TlsChannel(dir_, addresses[1], "ca.pem")).ok());
  EXPECT_TRUE(
      absl::StrContains(server.log(), "loaded the changed certificate"));
}

TEST_F(SecurityTest, BadTlsFilesAreRefusedAtStartNamingTheFlag) {
  MakeTestCertificates(dir_);
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{
           {{"--tls-cert", "server.pem"}, "--tls-cert: needs --tls-key"},
           {{"--tls-cert", "server.pem", "--tls-key", "client.key"},
            "--tls-key: "},
           {{"--tls-cert", "missing.pem", "--tls-key", "server.key"},
            "--tls-cert: cannot read"},
           {{"--tls-cert", "server.pem", "--tls-key", "server.key",
             "--tls-client-ca", "server.key"},
            "--tls-client-ca: no PEM certificate"},
           {{"--tls-cert", "server.pem", "--tls-key", "server.key", "--http",
             "0.0.0.0:0"},
            "refusing to serve it without --auth-token"},
       }) {
    JobwiredProcess server(dir_, Args(c.args));
    ASSERT_TRUE(server.Exited(absl::Seconds(20)));
    EXPECT_NE(server.exit_code(), 0);
    EXPECT_TRUE(absl::StrContains(server.log(), c.says)) << c.says << "\n"
                                                         << server.log();
  }
}

int ConnectUnix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Defect 1 on the Unix socket: gRPC's own listener died the same way.
TEST_F(SecurityTest, UnixListenerRecoversAfterRunningOutOfDescriptors) {
  JobwiredProcess server(dir_, Args());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  const std::string path = addresses[0].substr(5);  // "unix:"
  const int in_use = CountOpenDescriptors(server.pid());
  rlimit low{};
  low.rlim_cur = low.rlim_max = in_use + 40;
  ASSERT_EQ(::prlimit(server.pid(), RLIMIT_NOFILE, &low, nullptr), 0);
  std::vector<int> idle;
  for (int i = 0; i < 200; ++i) {
    const int fd = ConnectUnix(path);
    if (fd >= 0) idle.push_back(fd);
  }
  EXPECT_TRUE(WaitForLog(server, "closing new connections until descriptors",
                         absl::Seconds(20)))
      << server.log();
  for (int fd : idle) ::close(fd);
  EXPECT_TRUE(CheckHealth(addresses[0], absl::Seconds(30)).ok())
      << server.log();
}

// Runs `jobwire health` on `address` as uid and gid 65534 (nobody); its
// exit code.
int HealthAsNobody(const std::string& address) {
  return std::system(absl::StrCat("setpriv --reuid 65534 --regid 65534 "
                                  "--clear-groups ",
                                  JOBWIRE_CLI_PATH, " --addr ", address,
                                  " --timeout 5s health >/dev/null 2>&1")
                         .c_str());
}

TEST_F(SecurityTest, UnixSocketServesOnlyAllowedPeers) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to act as another uid";
  // The socket file lets everyone in; only the peer check stands.
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir_ + "/var").c_str(), 0755), 0);
  const std::vector<std::string> base = {"--listen", "unix:var/j.sock", "--db",
                                         "var/j.db", "--socket-mode",   "0666"};
  {
    std::vector<std::string> args = base;
    args.insert(args.end(), {"--socket-allow-uid", "65533"});
    JobwiredProcess server(dir_, args);
    std::vector<std::string> addresses = server.WaitListening(1);
    ASSERT_EQ(addresses.size(), 1u) << server.log();
    EXPECT_NE(HealthAsNobody(addresses[0]), 0);
    EXPECT_TRUE(WaitForLog(server,
                           "refused a Unix socket connection from uid 65534",
                           absl::Seconds(10)))
        << server.log();
    // jobwired's own user is always served.
    EXPECT_TRUE(CheckHealth(addresses[0], absl::Seconds(10)).ok());
    server.Signal(SIGTERM);
    ASSERT_TRUE(server.Exited(absl::Seconds(20)));
  }
  {
    // --socket-group with 0660: the group's members get in by file mode.
    JobwiredProcess server(
        dir_, {"--listen", "unix:var/j.sock", "--db", "var/j.db",
               "--socket-mode", "0660", "--socket-group", "65534"});
    std::vector<std::string> addresses = server.WaitListening(1);
    ASSERT_EQ(addresses.size(), 1u) << server.log();
    struct stat st;
    ASSERT_EQ(::stat((dir_ + "/var/j.sock").c_str(), &st), 0);
    EXPECT_EQ(st.st_gid, 65534u);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    EXPECT_EQ(HealthAsNobody(addresses[0]), 0) << server.log();
    server.Signal(SIGTERM);
    ASSERT_TRUE(server.Exited(absl::Seconds(20)));
  }
  for (const char* flag : {"--socket-allow-uid", "--socket-allow-gid"}) {
    std::vector<std::string> args = base;
    args.insert(args.end(), {flag, "65534", "--log-level", "debug"});
    JobwiredProcess server(dir_, args);
    std::vector<std::string> addresses = server.WaitListening(1);
    ASSERT_EQ(addresses.size(), 1u) << server.log();
    EXPECT_EQ(HealthAsNobody(addresses[0]), 0) << flag << server.log();
    // At debug each Unix peer is logged by uid, gid and pid, at accept and
    // on each call's access line.
    EXPECT_TRUE(absl::StrContains(
        server.log(), "Unix socket connection from uid 65534 gid 65534 pid"))
        << server.log();
    EXPECT_TRUE(absl::StrContains(server.log(),
                                  "call /grpc.health.v1.Health/Check by "
                                  "anonymous from unix:uid=65534,gid=65534,"
                                  "pid="))
        << server.log();
    server.Signal(SIGTERM);
    ASSERT_TRUE(server.Exited(absl::Seconds(20)));
  }
}

// The access line of a call over the Unix socket names the peer process by
// uid, gid and pid (SO_PEERCRED at accept), so two local clients can be told
// apart; before, every Unix call read "from unix:".
TEST_F(SecurityTest, AccessLogNamesEachUnixPeerByUidGidAndPid) {
  JobwiredProcess server(dir_, Args({"--log-level", "debug"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  ASSERT_TRUE(CheckHealth(addresses[0], absl::Seconds(10)).ok());
  const std::string line = absl::StrCat(
      "call /grpc.health.v1.Health/Check by anonymous from unix:", "uid=",
      ::getuid(), ",gid=", ::getgid(), ",pid=", ::getpid());
  EXPECT_TRUE(WaitForLog(server, line, absl::Seconds(10))) << server.log();
  // A TCP peer is still named by its address.
  ASSERT_TRUE(CheckHealth(addresses[1], absl::Seconds(10)).ok());
  EXPECT_TRUE(WaitForLog(server,
                         "call /grpc.health.v1.Health/Check by anonymous "
                         "from ipv4:127.0.0.1:",
                         absl::Seconds(10)))
      << server.log();
}

TEST_F(SecurityTest, NonLoopbackPlaintextNeedsToBeAskedForByName) {
  const std::vector<std::string> args = {"--listen", "0.0.0.0:0",    "--db",
                                         "var/j.db", "--auth-token", "s3cret"};
  {
    JobwiredProcess server(dir_, args);
    ASSERT_TRUE(server.Exited(absl::Seconds(20)));
    EXPECT_NE(server.exit_code(), 0);
    EXPECT_TRUE(absl::StrContains(server.log(), "--insecure-allow-plaintext"))
        << server.log();
  }
  std::vector<std::string> allowed = args;
  allowed.push_back("--insecure-allow-plaintext");
  JobwiredProcess server(dir_, allowed);
  ASSERT_EQ(server.WaitListening(1).size(), 1u) << server.log();
  EXPECT_TRUE(absl::StrContains(server.log(), "WARNING"));
  EXPECT_TRUE(absl::StrContains(server.log(), "in plaintext"));
}

// Calls GetServerInfo (scope read) and SubmitJob (scope submit) on `target`
// with `token`; their codes.
std::pair<grpc::StatusCode, grpc::StatusCode> ReadAndSubmit(
    const std::string& target, const std::string& token,
    std::string* message = nullptr) {
  auto channel = OwnChannel(target);
  auto admin = jobwire::v1::AdminService::NewStub(channel);
  auto jobs = jobwire::v1::JobService::NewStub(channel);
  grpc::ClientContext read_context;
  read_context.AddMetadata("authorization", "Bearer " + token);
  jobwire::v1::ServerInfo info;
  grpc::Status read = admin->GetServerInfo(&read_context, {}, &info);
  grpc::ClientContext submit_context;
  submit_context.AddMetadata("authorization", "Bearer " + token);
  jobwire::v1::SubmitJobRequest request;
  request.mutable_job()->set_kind("k");
  jobwire::v1::SubmitJobResponse submitted;
  grpc::Status submit = jobs->SubmitJob(&submit_context, request, &submitted);
  if (message != nullptr) {
    *message = read.ok() ? submit.error_message() : read.error_message();
  }
  return {read.error_code(), submit.error_code()};
}

TEST_F(SecurityTest, TokenFileGivesEachTokenItsScopesAndIsReRead) {
  const std::string file = dir_ + "/tokens";
  {
    std::ofstream out(file);
    out << "# name token scopes\nci s3cret-ci submit\n"
           "dash s3cret-dash read\n";
  }
  JobwiredProcess server(
      dir_, Args({"--auth-token-file", file, "--log-level", "debug"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  const std::string tcp = addresses[1];
  using Codes = std::pair<grpc::StatusCode, grpc::StatusCode>;
  std::string message;
  EXPECT_EQ(ReadAndSubmit(tcp, "s3cret-ci", &message),
            Codes(grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::OK));
  EXPECT_TRUE(absl::StrContains(message, "scope 'read'")) << message;
  EXPECT_EQ(ReadAndSubmit(tcp, "s3cret-dash", &message),
            Codes(grpc::StatusCode::OK, grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_TRUE(absl::StrContains(message, "scope 'submit'")) << message;
  EXPECT_EQ(ReadAndSubmit(tcp, "wrong-token"),
            Codes(grpc::StatusCode::UNAUTHENTICATED,
                  grpc::StatusCode::UNAUTHENTICATED));
  // Health needs no token.
  EXPECT_TRUE(CheckHealth(tcp, absl::Seconds(10)).ok());
  // Each call is logged at debug with its caller.
  EXPECT_TRUE(absl::StrContains(
      server.log(), "call /jobwire.v1.JobService/SubmitJob by token:ci from"))
      << server.log();

  // A new file version is served without a restart.
  {
    std::ofstream out(file + ".new");
    out << "ci s3cret-ci submit,read\n";
  }
  ASSERT_EQ(::rename((file + ".new").c_str(), file.c_str()), 0);
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (ReadAndSubmit(tcp, "s3cret-ci").first != grpc::StatusCode::OK &&
         absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(ReadAndSubmit(tcp, "s3cret-ci"),
            Codes(grpc::StatusCode::OK, grpc::StatusCode::OK));
  EXPECT_EQ(ReadAndSubmit(tcp, "s3cret-dash").first,
            grpc::StatusCode::UNAUTHENTICATED);
}

// #27: gRPC 1.51 hands every call of a connection the connection's auth
// context, so the access line named a connection's first caller on all of
// its calls. Two tokens on one channel: each call's line names its own.
TEST_F(SecurityTest, AccessLogNamesEachCallsOwnTokenOnOneConnection) {
  const std::string file = dir_ + "/tokens";
  {
    std::ofstream out(file);
    out << "ci s3cret-ci read\ndash s3cret-dash read\n";
  }
  JobwiredProcess server(
      dir_, Args({"--auth-token-file", file, "--log-level", "debug"}));
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  auto admin = jobwire::v1::AdminService::NewStub(OwnChannel(addresses[1]));
  for (const char* token : {"s3cret-ci", "s3cret-dash", "s3cret-ci"}) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    jobwire::v1::ServerInfo info;
    ASSERT_TRUE(admin->GetServerInfo(&context, {}, &info).ok());
  }
  const std::string line = "call /jobwire.v1.AdminService/GetServerInfo by ";
  std::vector<std::string> callers;
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (callers.size() < 3 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(20));
    callers.clear();
    const std::string log = server.log();
    for (absl::string_view text : absl::StrSplit(log, '\n')) {
      const size_t at = text.find(line);
      if (at == absl::string_view::npos) continue;
      absl::string_view rest = text.substr(at + line.size());
      callers.emplace_back(rest.substr(0, rest.find(' ')));
    }
  }
  EXPECT_EQ(callers,
            std::vector<std::string>({"token:ci", "token:dash", "token:ci"}))
      << server.log();
}

// Defect 6: a request with invalid UTF-8 in a string field made protobuf
// log two error lines per request (a log-amplification path). It is
// refused (gRPC 1.51's callback API answers UNIMPLEMENTED, with no way to
// change it) and logs nothing at the default level.
TEST_F(SecurityTest, MalformedRequestsDoNotFillTheLog) {
  JobwiredProcess server(dir_, Args());
  std::vector<std::string> addresses = server.WaitListening(2);
  ASSERT_EQ(addresses.size(), 2u) << server.log();
  grpc::GenericStub stub(OwnChannel(addresses[1]));
  // SubmitJobRequest{job: Job{kind: "\xff"}}: field 1 (job) holding field
  // kind; the exact field does not matter, any string with a bad byte does.
  jobwire::v1::SubmitJobRequest request;
  request.mutable_job()->set_kind("k");
  std::string bytes = request.SerializeAsString();
  const size_t at = bytes.rfind('k');
  ASSERT_NE(at, std::string::npos);
  bytes[at] = '\xff';
  const size_t log_before = server.log().size();
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    grpc::Slice slice(bytes);
    grpc::ByteBuffer in(&slice, 1);
    grpc::ByteBuffer out;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, "/jobwire.v1.JobService/SubmitJob", {}, &in, &out,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    EXPECT_FALSE(status.ok());
  }
  EXPECT_TRUE(CheckHealth(addresses[1], absl::Seconds(10)).ok());
  const std::string added = server.log().substr(log_before);
  EXPECT_FALSE(absl::StrContains(added, "UTF-8")) << added;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 07777;
  return st.st_mode & 0777;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Defect 5: the database, its -wal and -shm, the directories created for
// them and CLI backups were 0644/0755: another uid could read job args.
TEST_F(SecurityTest, StateFilesAndCreatedDirectoriesAreOwnerOnly) {
  const mode_t umask_before = ::umask(022);  // the usual, inherited
  JobwiredProcess server(
      dir_, {"--listen", "unix:var/j.sock", "--db", "state/sub/j.db"});
  ::umask(umask_before);
  std::vector<std::string> addresses = server.WaitListening(1);
  ASSERT_EQ(addresses.size(), 1u) << server.log();
  // A write, so the -wal and -shm exist.
  const std::string cli =
      std::string(JOBWIRE_CLI_PATH) + " --addr " + addresses[0] + " ";
  ASSERT_EQ(std::system((cli + "submit --kind k >/dev/null").c_str()), 0);
  for (const char* file : {"state/sub/j.db", "state/sub/j.db-wal",
                           "state/sub/j.db-shm", "state/sub/j.db.lock"}) {
    EXPECT_EQ(ModeOf(dir_ + "/" + file), 0600u) << file;
  }
  for (const char* d : {"state", "state/sub", "var"}) {
    EXPECT_EQ(ModeOf(dir_ + "/" + d), 0700u) << d;
  }
  const std::string backup = dir_ + "/copy.db";
  ::umask(022);
  const int rc = std::system((cli + "backup --out " + backup).c_str());
  ::umask(umask_before);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(ModeOf(backup), 0600u);
}

TEST_F(SecurityTest, ReadableDatabaseOfAnEarlierRunIsMadeOwnerOnly) {
  {
    JobwiredProcess server(dir_, Args());
    ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
    server.Signal(SIGTERM);
    ASSERT_TRUE(server.Exited(absl::Seconds(20)));
  }
  ASSERT_EQ(::chmod((dir_ + "/var/j.db").c_str(), 0644), 0);
  JobwiredProcess server(dir_, Args());
  ASSERT_EQ(server.WaitListening(2).size(), 2u) << server.log();
  EXPECT_EQ(ModeOf(dir_ + "/var/j.db"), 0600u);
  EXPECT_TRUE(absl::StrContains(server.log(), "owner-only (was 0644)"))
      << server.log();
}

// Defect 6: a start refused on the socket lock left a new database behind.
TEST_F(SecurityTest, StartRefusedOnTheSocketLeavesNoDatabase) {
  JobwiredProcess first(dir_, Args());
  ASSERT_EQ(first.WaitListening(2).size(), 2u) << first.log();
  JobwiredProcess second(
      dir_, {"--listen", "unix:var/j.sock", "--db", "var/other.db"});
  ASSERT_TRUE(second.Exited(absl::Seconds(20)));
  EXPECT_NE(second.exit_code(), 0);
  EXPECT_TRUE(absl::StrContains(second.log(), "another jobwired"))
      << second.log();
  EXPECT_FALSE(Exists(dir_ + "/var/other.db"));
  EXPECT_FALSE(Exists(dir_ + "/var/other.db.lock"));
}

}  // namespace
}  // namespace jobwire::test
