#include "tools/bench/bench_server.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "tools/bench/machine.h"

namespace jobwire::bench {

BenchServer::BenchServer(const ServerConfig& config) {
  std::string tmpl = config.dir + "/jobwire-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    perror("mkdtemp");
    exit(1);
  }
  dir_ = tmpl;
  std::vector<std::string> args = {
      "--listen",         "unix:" + dir_ + "/j.sock",
      "--listen",         "127.0.0.1:0",
      "--log-level",      "warning",
      "--shutdown-grace", "2s"};
  if (config.db.empty()) {
    args.insert(args.end(), {"--db", db_path(), "--synchronous", config.sync});
  } else {
    args.insert(args.end(), {"--db", config.db});
  }
  args.insert(args.end(), config.extra_args.begin(), config.extra_args.end());
  process_ = std::make_unique<test::JobwiredProcess>(dir_, std::move(args),
                                                     config.jobwired);
  // --log-level warning hides the listeners: wait for the socket instead.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && !Serving()) {
    if (process_->Exited(absl::ZeroDuration())) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (!Serving()) {
    std::cerr << "jobwired did not start:\n" << process_->log();
    exit(1);
  }
}

BenchServer::~BenchServer() {
  Stop();
  process_.reset();
  test::RemoveDir(dir_);
}

void BenchServer::Stop() {
  if (process_->Exited(absl::ZeroDuration())) return;
  process_->Signal(SIGTERM);
  if (!process_->Exited(absl::Seconds(30))) process_->Signal(SIGKILL);
  process_->Exited(absl::Seconds(5));
}

int BenchServer::pid() const { return process_->pid(); }

double BenchServer::CpuSeconds() const {
  return ProcessCpuSeconds(process_->pid());
}

std::optional<v1::StorageStats> BenchServer::Storage() const {
  std::optional<v1::ServerInfo> info = Info(absl::Seconds(5));
  if (!info || !info->has_storage()) return std::nullopt;
  return info->storage();
}

int64_t BenchServer::StatusKib(absl::string_view field) const {
  std::ifstream in(absl::StrCat("/proc/", process_->pid(), "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::string_view(line).substr(0, field.size()) == field) {
      int64_t kib = 0;
      std::istringstream(line.substr(field.size())) >> kib;
      return kib;
    }
  }
  return -1;
}

std::optional<v1::ServerInfo> BenchServer::Info(absl::Duration timeout) const {
  auto channel =
      grpc::CreateChannel(unix_target(), grpc::InsecureChannelCredentials());
  auto stub = v1::AdminService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::ServerInfo info;
  if (!stub->GetServerInfo(&context, {}, &info).ok()) return std::nullopt;
  return info;
}

bool BenchServer::Serving() {
  std::optional<v1::ServerInfo> info = Info(absl::Seconds(1));
  if (!info) return false;
  // gRPC listeners come first, then HTTP ones ("http://HOST:PORT",
  // "http+unix:PATH").
  for (const std::string& l : info->listeners()) {
    if (l.rfind("http://", 0) == 0) {
      if (http_.empty()) http_ = l.substr(7);
    } else if (l.rfind("unix:", 0) != 0 && l.rfind("http", 0) != 0) {
      tcp_ = l;
    }
  }
  return !tcp_.empty();
}

double Samples::QuantileMs(double q) {
  absl::MutexLock lock(&mu_);
  if (values_.empty()) return 0;
  std::sort(values_.begin(), values_.end());
  size_t i = static_cast<size_t>(q * (values_.size() - 1) + 0.5);
  return values_[std::min(i, values_.size() - 1)] / 1000.0;
}

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target, int n) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("jobwire.bench.channel", n);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

void FillSampleJob(v1::Job* job) {
  job->set_queue("bench");
  job->set_kind("resize-image");
  auto& fields = *job->mutable_args()->mutable_fields();
  fields["width"].set_number_value(640);
  fields["height"].set_number_value(480);
  fields["src"].set_string_value("s3://bucket/key.png");
  (*job->mutable_labels())["tenant"] = "acme";
}

std::vector<std::string> CreateJobs(v1::JobService::Stub* stub, int n) {
  std::vector<std::string> ids;
  grpc::ClientContext context;
  auto stream = stub->SubmitJobs(&context);
  while (static_cast<int>(ids.size()) < n) {
    v1::SubmitJobsRequest batch;
    const int size = std::min(1000, n - static_cast<int>(ids.size()));
    for (int i = 0; i < size; ++i)
      FillSampleJob(batch.add_jobs()->mutable_job());
    v1::SubmitJobsResponse response;
    if (!stream->Write(batch) || !stream->Read(&response)) break;
    for (const std::string& id : response.ids()) ids.push_back(id);
  }
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  if (!status.ok())
    std::cerr << "SubmitJobs: " << status.error_message() << "\n";
  return ids;
}

void RaiseFdLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string SectionStart(absl::string_view title,
                         const std::string& load_at_start) {
  return absl::StrCat(
      "\n## ", title, ", ",
      absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(), absl::UTCTimeZone()),
      "\n\n- machine: ", MachineDescription(), ", load average at the start ",
      load_at_start, ", at the end ", LoadAverage());
}

void Emit(const std::string& append_path, const std::string& md) {
  std::cout << md;
  if (!append_path.empty()) {
    std::ofstream out(append_path, std::ios::app);
    out << md;
  }
}

}  // namespace jobwire::bench
